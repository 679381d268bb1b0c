"""Near-duplicates: receipts that look like the same purchase although they are not typed the same.

Two receipts match when
- "invoice": their invoice numbers are the same once normalised (portal/receipts/keys.py) and either the
  suppliers are the same (normalised) or the amounts are within 1 % and the dates within 7 days;
- "amount": the same supplier (normalised), the same amount and currency, dates within 3 days;
- "image": the fingerprints of their first pages differ in at most THRESHOLD of 64 bits.

The field rules run when a receipt is submitted or corrected (in its transaction); the picture's rule runs
in the fingerprint job once the file is stored and cleared by the virus scan. Both write ReceiptMatch rows
(the later receipt first), which the receipt page and the review desk read. Who is told what: a partner
sees only matches within their own organisation ("looks like receipt R-… of case … (yours)"), never that
another organisation has something similar; staff see every match, another organisation's with a warning.

The fingerprint is a 64-bit pHash (DCT of a 32×32 grey image, the 8×8 lowest frequencies against their
median) of the page after the paper is found, straightened and cut from the background: receipts are
photographed on tables at a slant, and without that step the table and the slant, not the receipt, decide
the hash (scripts/bench/neardup.py measures it). Pillow only: imagehash would bring numpy, scipy and
PyWavelets for the same 20 lines and still lack the paper step.
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache

from PIL import Image, ImageChops, ImageDraw, ImageOps
from sqlalchemy import and_, bindparam, delete, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from portal.auth.models import User
from portal.cases.models import Case
from portal.receipts.keys import invoice_key, supplier_key
from portal.receipts.models import FileKind, Receipt, ReceiptFile, ReceiptMatch, ReceiptStatus

log = logging.getLogger(__name__)

THRESHOLD = 1  # bits of 64; tuned on scripts/bench/neardup.py (make bench-neardup): see its report
INVOICE, AMOUNT, IMAGE = "invoice", "amount", "image"
FIELD_REASONS = (INVOICE, AMOUNT)
REASONS = (INVOICE, AMOUNT, IMAGE)


# The rules, on plain facts (the benchmark uses them as they are) ------------------------------------------

@dataclass(frozen=True)
class Facts:
    supplier_norm: str
    invoice_norm: str
    amount_minor: int
    currency: str
    invoice_date: date
    eur_cents: int | None = None

    @classmethod
    def typed(cls, supplier: str, invoice_number: str, amount_minor: int, currency: str, invoice_date: date,
              eur_cents: int | None = None) -> Facts:
        return cls(supplier_key(supplier), invoice_key(invoice_number), amount_minor, currency, invoice_date,
                   eur_cents)

    @classmethod
    def of(cls, receipt: Receipt) -> Facts:
        return cls.typed(receipt.supplier, receipt.invoice_number, receipt.amount_minor, receipt.currency,
                         receipt.invoice_date, receipt.eur_cents)


def _within(a: int, b: int, share: float) -> bool:
    return abs(a - b) <= share * max(abs(a), abs(b))


def _amounts_close(a: Facts, b: Facts) -> bool:
    """Within 1 %: in the same currency, or in EUR when both have a rate."""
    if a.currency == b.currency:
        return _within(a.amount_minor, b.amount_minor, 0.01)
    return a.eur_cents is not None and b.eur_cents is not None and _within(a.eur_cents, b.eur_cents, 0.01)


def field_reasons(a: Facts, b: Facts) -> list[str]:
    """Why the typed fields of two receipts say they are one purchase (empty: they do not)."""
    days = abs((a.invoice_date - b.invoice_date).days)
    same_supplier = bool(a.supplier_norm) and a.supplier_norm == b.supplier_norm
    found = []
    if a.invoice_norm and a.invoice_norm == b.invoice_norm and (
            same_supplier or (_amounts_close(a, b) and days <= 7)):
        found.append(INVOICE)
    if same_supplier and a.currency == b.currency and a.amount_minor == b.amount_minor and days <= 3:
        found.append(AMOUNT)
    return found


def hamming(a: int, b: int) -> int:
    return ((a ^ b) & 0xFFFF_FFFF_FFFF_FFFF).bit_count()


def images_match(a: int | None, b: int | None) -> bool:
    return a is not None and b is not None and hamming(a, b) <= THRESHOLD


# The fingerprint -----------------------------------------------------------------------------------------

_N = 32
_COS = [[math.cos(math.pi * (2 * x + 1) * u / (2 * _N)) for x in range(_N)] for u in range(8)]


def _otsu(histogram: list[int]) -> int:
    """The grey level that best splits the image in two classes (paper and the rest)."""
    total = sum(histogram)
    weighted = sum(i * h for i, h in enumerate(histogram))
    below = below_weighted = 0
    best, level = -1.0, 128
    for i, h in enumerate(histogram):
        below += h
        if not below:
            continue
        above = total - below
        if not above:
            break
        below_weighted += i * h
        spread = below * above * (below_weighted / below - (weighted - below_weighted) / above) ** 2
        if spread > best:
            best, level = spread, i
    return level


def _paper(grey: Image.Image) -> Image.Image:
    """A small mask of the paper: bright, and not the dark surroundings reached from the image's edge."""
    small = grey.copy()
    small.thumbnail((200, 200))
    level = _otsu(small.histogram())
    mask = small.point(lambda v: 255 if v > level else 0)
    w, h = mask.size
    for point in ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1), (w // 2, 0), (w // 2, h - 1), (0, h // 2),
                  (w - 1, h // 2)):
        if mask.getpixel(point) == 0:
            ImageDraw.floodfill(mask, point, 128)
    return mask.point(lambda v: 0 if v == 128 else 255)


def _slant(mask: Image.Image) -> float:
    """Degrees the paper is turned, from the orientation of its mask (second moments); 0 when unclear."""
    w = mask.width
    points = [(i % w, i // w) for i, v in enumerate(mask.get_flattened_data()) if v]
    if len(points) < 100:
        return 0.0
    n = len(points)
    mx, my = sum(p[0] for p in points) / n, sum(p[1] for p in points) / n
    mu20 = sum((p[0] - mx) ** 2 for p in points) / n
    mu02 = sum((p[1] - my) ** 2 for p in points) / n
    mu11 = sum((p[0] - mx) * (p[1] - my) for p in points) / n
    angle = 0.5 * math.degrees(math.atan2(2 * mu11, mu20 - mu02))
    if abs(angle) >= 45:
        angle -= math.copysign(90, angle)
    return angle if abs(angle) <= 8 else 0.0  # a square page has no clear axis: leave it


def page_of(image: Image.Image) -> Image.Image:
    """The receipt itself, grey: the background whitened, the slant undone, cut to the paper."""
    grey = ImageOps.exif_transpose(image).convert("L")
    grey.thumbnail((600, 600))
    mask = _paper(grey)
    grey = ImageChops.lighter(grey, ImageOps.invert(mask).resize(grey.size))
    angle = _slant(mask)
    if angle:
        grey = grey.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
        mask = mask.rotate(angle, expand=True, fillcolor=0)
    box = mask.resize(grey.size).getbbox()
    if box:
        dx, dy = (box[2] - box[0]) * 0.01, (box[3] - box[1]) * 0.01  # the paper's own edge
        grey = grey.crop((int(box[0] + dx), int(box[1] + dy), int(box[2] - dx), int(box[3] - dy)))
    return grey


def fingerprint(image: Image.Image) -> int:
    """The 64-bit pHash of the receipt in `image`, as a signed 64-bit integer (a BIGINT column)."""
    grey = ImageOps.autocontrast(page_of(image), cutoff=1).resize((_N, _N), Image.Resampling.BOX)
    px = list(grey.get_flattened_data())
    rows = [px[y * _N:(y + 1) * _N] for y in range(_N)]
    across = [[sum(c * v for c, v in zip(_COS[u], row, strict=True)) for u in range(8)] for row in rows]
    coeffs = [sum(_COS[v][y] * across[y][u] for y in range(_N)) for v in range(8) for u in range(8)]
    median = sorted(coeffs[1:])[31]  # without the average brightness (the first)
    bits = 0
    for c in coeffs:
        bits = (bits << 1) | (c > median)
    return bits - (1 << 64) if bits >= 1 << 63 else bits


# Matches in the database -----------------------------------------------------------------------------------

def _pair(a: int, b: int) -> tuple[int, int]:
    return max(a, b), min(a, b)


def _store(db: Session, receipt_id: int, found: dict[int, tuple[str, int | None]]) -> None:
    """Add the pairs (other receipt → (reason, distance)) that are not recorded yet; not committed."""
    for other_id, (reason, distance) in found.items():
        first, second = _pair(receipt_id, other_id)
        exists = db.exec(select(ReceiptMatch.id).where(ReceiptMatch.receipt_id == first,
                                                       ReceiptMatch.other_id == second,
                                                       ReceiptMatch.reason == reason)).first()
        if exists is None:
            db.add(ReceiptMatch(receipt_id=first, other_id=second, reason=reason, distance=distance))


def record_field_matches(db: Session, receipt: Receipt) -> list[tuple[Receipt, Case, list[str]]]:
    """Match a receipt being submitted or corrected against every other by its typed fields, and record
    the matches in place of its earlier ones (in the caller's transaction). Returns what matched."""
    receipt.set_keys()
    me = Facts.of(receipt)
    conditions = [and_(Receipt.supplier_norm == me.supplier_norm, Receipt.amount_minor == me.amount_minor,
                       Receipt.currency == me.currency,
                       Receipt.invoice_date.between(me.invoice_date - timedelta(days=3),
                                                    me.invoice_date + timedelta(days=3)))]
    if me.invoice_norm:
        conditions.append(Receipt.invoice_norm == me.invoice_norm)
    rows = db.exec(select(Receipt, Case).join(Case, Case.id == Receipt.case_id)
                   .where(Receipt.id != receipt.id, Receipt.status != ReceiptStatus.PENDING, or_(*conditions))
                   .order_by(Receipt.id)).all()
    matched = [(other, case, reasons) for other, case in rows if (reasons := field_reasons(me, Facts.of(other)))]
    db.exec(delete(ReceiptMatch).where(or_(ReceiptMatch.receipt_id == receipt.id,
                                           ReceiptMatch.other_id == receipt.id),
                                       ReceiptMatch.reason.in_(FIELD_REASONS)))
    for other, _case, reasons in matched:
        for reason in reasons:
            first, second = _pair(receipt.id, other.id)
            db.add(ReceiptMatch(receipt_id=first, other_id=second, reason=reason))
    return matched


def record_image_matches(db: Session, row: ReceiptFile) -> int:
    """Match one fingerprinted file against every other receipt's files; record new pairs (committed).
    Returns how many receipts it matches. Safe to run twice and beside another job."""
    if row.phash is None:
        return 0
    closest: dict[int, int] = {}
    for receipt_id, phash in db.exec(select(ReceiptFile.receipt_id, ReceiptFile.phash)
                                     .where(ReceiptFile.phash.is_not(None), ReceiptFile.receipt_id != row.receipt_id,
                                            ReceiptFile.kind == FileKind.RECEIPT, ReceiptFile.confirmed.is_(True))):
        distance = hamming(row.phash, phash)
        if distance <= THRESHOLD and distance < closest.get(receipt_id, 65):
            closest[receipt_id] = distance
    for attempt in range(2):
        _store(db, row.receipt_id, {other: (IMAGE, d) for other, d in closest.items()})
        try:
            db.commit()
            break
        except IntegrityError:  # another job recorded the same pair meanwhile: read it and go on
            db.rollback()
            if attempt:
                raise
    return len(closest)


@dataclass
class Match:
    receipt: Receipt
    case: Case
    reasons: list[str]
    organisation: str
    own: bool  # the viewer's organisation's (partners see only these)


@cache
def _pairs_statement():
    # Built once (a receipt page asks it on every request), the ids as one expanding parameter.
    ids = bindparam("ids", expanding=True)
    return (select(ReceiptMatch).where(or_(ReceiptMatch.receipt_id.in_(ids), ReceiptMatch.other_id.in_(ids)))
            .order_by(ReceiptMatch.id))


def matches_of(db: Session, receipt_ids: list[int]) -> dict[int, list[tuple[Receipt, Case, str, list[str]]]]:
    """Every recorded match of these receipts, both ways: receipt id → [(other, its case, its organisation's
    name, reasons)], in two statements whatever the number of receipts."""
    from portal.orgs.models import Organisation

    ids = sorted(set(receipt_ids))
    if not ids:
        return {}
    pairs = db.exec(_pairs_statement(), params={"ids": ids}).all()
    wanted: dict[int, dict[int, list[str]]] = {}
    for pair in pairs:
        for mine, other in ((pair.receipt_id, pair.other_id), (pair.other_id, pair.receipt_id)):
            if mine in ids:
                reasons = wanted.setdefault(mine, {}).setdefault(other, [])
                if pair.reason not in reasons:
                    reasons.append(pair.reason)
    others = {o for found in wanted.values() for o in found}
    loaded = {r.id: (r, c, name) for r, c, name in db.exec(
        select(Receipt, Case, Organisation.name).join(Case, Case.id == Receipt.case_id)
        .join(Organisation, Organisation.id == Case.organisation_id)
        .where(Receipt.id.in_(sorted(others)), Receipt.status != ReceiptStatus.PENDING))} if others else {}
    out: dict[int, list] = {}
    for mine, found in wanted.items():
        for other, reasons in sorted(found.items()):
            if other in loaded:
                r, c, name = loaded[other]
                out.setdefault(mine, []).append((r, c, name, sorted(reasons, key=REASONS.index)))
    return out


def visible_matches(db: Session, user: User, receipt: Receipt, case: Case) -> list[Match]:
    """The matches of one receipt (of `case`) the user may be told of: staff all, a partner their own
    organisation's."""
    return only_visible(user, case, matches_of(db, [receipt.id]).get(receipt.id, []))


def only_visible(user: User, case: Case, found: list[tuple[Receipt, Case, str, list[str]]]) -> list[Match]:
    """`own`: the other receipt is of the same organisation as the receipt of `case`. A partner is told of
    those only, and only within their organisation: another organisation's receipt is never named or hinted."""
    out = []
    for other, other_case, organisation, reasons in found:
        own = other_case.organisation_id == case.organisation_id
        if user.is_staff or (own and other_case.organisation_id == user.organisation_id):
            out.append(Match(other, other_case, reasons, organisation, own))
    return out


# The job and the backfill ------------------------------------------------------------------------------------

def fingerprint_file(db: Session, storage, row: ReceiptFile) -> str:
    """Make the file's fingerprint once (from its preview: an image scaled down, a PDF's first page) and
    match it. Safe to run twice: a fingerprint is only written where none is, matches only added."""
    from sqlalchemy import update

    from portal.receipts.previews import has_preview, preview

    if not row.confirmed or row.kind != FileKind.RECEIPT:
        return "not a receipt file"
    if not has_preview(row):
        return "no picture (or not cleared by the virus scan)"
    if row.phash is None:
        data = preview(storage, row)
        if data is None:
            return "no picture"
        with Image.open(io.BytesIO(data)) as image:
            value = fingerprint(image)
        db.exec(update(ReceiptFile).where(ReceiptFile.id == row.id, ReceiptFile.phash.is_(None))
                .values(phash=value).execution_options(synchronize_session=False))
        db.commit()
        db.refresh(row)
    count = record_image_matches(db, row)
    return f"{count} similar"


def fingerprint_job(file_id: int) -> str:
    """The job: fingerprint one receipt file and record the receipts whose pictures look the same."""
    from portal import db as dbm
    from portal.storage import get_storage

    with Session(dbm.engine(), expire_on_commit=False) as db:
        row = db.get(ReceiptFile, file_id)
        if row is None:
            return "gone"
        return fingerprint_file(db, get_storage(), row)


def backfill(db: Session, storage, limit: int | None = None) -> tuple[int, int]:
    """Fingerprint every cleared receipt file that has none yet (oldest first): (files done, files without
    a picture or not reachable now). Safe to run twice: the second run finds nothing left to do."""
    from portal.storage import StorageError

    query = (select(ReceiptFile.id).where(ReceiptFile.phash.is_(None), ReceiptFile.confirmed.is_(True),
                                          ReceiptFile.kind == FileKind.RECEIPT).order_by(ReceiptFile.id))
    done = skipped = 0
    for file_id in db.exec(query.limit(limit) if limit else query).all():
        row = db.get(ReceiptFile, file_id)
        try:
            result = fingerprint_file(db, storage, row)
        except (StorageError, OSError) as exc:
            log.warning("no fingerprint for %s: %s", row.key, exc)
            db.rollback()
            result = "failed"
        if row.phash is None:
            skipped += 1
            log.info("file %s: %s", row.id, result)
        else:
            done += 1
    return done, skipped
