"""Receipts: upload (intent → store → confirm), EUR conversion, duplicates, budget figures, review, sweep.

Every query that takes an ID from a request goes through get_receipt_for()/get_file_for(), which scope
by the case's organisation exactly like cases.services.get_case_for().
"""

from __future__ import annotations

import csv
import io
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import BinaryIO

from babel.numbers import get_currency_precision, is_currency
from flask import abort, current_app
from flask_babel import gettext as _
from sqlalchemy import Integer, update
from sqlalchemy import column as sa_column
from sqlalchemy import text as sa_text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session, func, select

from portal import audit
from portal.audit import utcnow
from portal.auth.models import User
from portal.cases.models import BudgetLine, Case
from portal.cases.services import scope
from portal.notifications import services as notifications
from portal.notifications.models import NoticeKind
from portal.ocr import services as ocr
from portal.receipts.models import (
    RATE_SCALE,
    ExchangeRate,
    FileKind,
    Receipt,
    ReceiptEvent,
    ReceiptFile,
    ReceiptStatus,
)
from portal.receipts.previews import make_preview, preview_key
from portal.rules import RuleError
from portal.scanning import ScanStatus
from portal.scanning import services as scanning
from portal.storage import Storage, StorageError, new_key
from portal.uploads import services as uploads
from portal.uploads.files import MSG_FAILED, CleanFile, FileProblem, clean_upload

log = logging.getLogger(__name__)

RECEIPT_FIELDS = ("budget_line_id", "supplier", "invoice_number", "invoice_date", "amount_minor", "currency",
                  "eur_cents", "rate_micro", "rate_month", "rate_source", "description", "translation",
                  "paid_directly_confirmed", "status", "duplicate_suspected", "over_budget", "outside_period",
                  "rate_missing")
EDITABLE = (ReceiptStatus.SUBMITTED, ReceiptStatus.CORRECTION_REQUESTED)
# What counts as "submitted" in the budget: everything handed in and not rejected.
COUNTED = (ReceiptStatus.SUBMITTED, ReceiptStatus.CORRECTION_REQUESTED, ReceiptStatus.APPROVED)


# Errors -----------------------------------------------------------------------------------------

class ReceiptError(RuleError):
    """A rule was broken; `field` names the form field the message belongs to (None: the whole form)."""


class UploadFailed(ReceiptError):
    """Storage (or the database, after storing) failed: nothing was kept; the user may try again."""


class Conflict(ReceiptError):
    """Someone else changed the receipt since the form was loaded."""


class InFlight(ReceiptError):
    """The same form is being processed by another request right now."""


@dataclass
class DuplicateInvoice(Exception):
    """Receipts with the same supplier and invoice number exist: the user must confirm."""

    matches: list[tuple[Receipt, Case]]


@dataclass
class Upload:
    """A file as the browser sent it; views build these so services never see the request."""

    filename: str
    stream: BinaryIO


@dataclass
class Outcome:
    receipt: Receipt
    replayed: bool = False  # the same form was sent before: nothing new was saved
    warnings: list[str] = field(default_factory=list)
    files: list[ReceiptFile] = field(default_factory=list)  # with their malware scan status


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


# Loading, scoped ---------------------------------------------------------------------------------

def get_receipt_for(db: Session, user: User, receipt_id: int) -> Receipt:
    """The receipt if the user may see its case, else 404. Upload intents do not exist for anyone."""
    receipt = db.exec(
        select(Receipt).join(Case, Case.id == Receipt.case_id)
        .where(Receipt.id == receipt_id, Receipt.status != ReceiptStatus.PENDING, *scope(user))
    ).first()
    if receipt is None:
        abort(404)
    return receipt


def get_file_for(db: Session, user: User, receipt_id: int, file_id: int) -> tuple[Receipt, ReceiptFile]:
    receipt = get_receipt_for(db, user, receipt_id)
    row = db.exec(select(ReceiptFile).where(ReceiptFile.id == file_id, ReceiptFile.receipt_id == receipt.id,
                                            ReceiptFile.confirmed.is_(True))).first()
    if row is None:
        abort(404)
    return receipt, row


def case_of(db: Session, receipt: Receipt) -> Case:
    return db.get(Case, receipt.case_id)


def receipts_of_case(db: Session, case: Case) -> list[Receipt]:
    return list(db.exec(select(Receipt).where(Receipt.case_id == case.id, Receipt.status != ReceiptStatus.PENDING)
                        .order_by(Receipt.created_at.desc(), Receipt.id.desc())))


TIMELINE_EVENTS = ("submitted", "resubmitted", "approved", "first_approval", "rejected", "correction_requested")


def receipts_of_case_with_events(db: Session, case: Case) -> tuple[list[Receipt], list[tuple[ReceiptEvent, Receipt]]]:
    """receipts_of_case() and their history's submissions and decisions, in one statement."""
    rows = db.exec(select(Receipt, ReceiptEvent)
                   .outerjoin(ReceiptEvent, (ReceiptEvent.receipt_id == Receipt.id)
                              & ReceiptEvent.kind.in_(TIMELINE_EVENTS))
                   .where(Receipt.case_id == case.id, Receipt.status != ReceiptStatus.PENDING)
                   .order_by(Receipt.created_at.desc(), Receipt.id.desc(), ReceiptEvent.id)).all()
    receipts: dict[int, Receipt] = {}
    events = []
    for receipt, event in rows:
        receipts.setdefault(receipt.id, receipt)
        if event is not None:
            events.append((event, receipt))
    return list(receipts.values()), events


def files_of(db: Session, receipt: Receipt) -> list[ReceiptFile]:
    return list(db.exec(select(ReceiptFile).where(ReceiptFile.receipt_id == receipt.id,
                                                  ReceiptFile.confirmed.is_(True)).order_by(ReceiptFile.id)))


def history(db: Session, receipt: Receipt) -> list[tuple[ReceiptEvent, str]]:
    """Every submission and decision, oldest first, with the actor's name."""
    rows = db.exec(select(ReceiptEvent, User.name).outerjoin(User, User.id == ReceiptEvent.actor_id)
                   .where(ReceiptEvent.receipt_id == receipt.id).order_by(ReceiptEvent.at, ReceiptEvent.id))
    return [(event, name or "") for event, name in rows]


def can_edit(user: User, receipt: Receipt) -> bool:
    """Partners (and whoever uploaded it) may change a receipt until it is decided; staff review it."""
    return receipt.status in EDITABLE and (not user.is_staff or user.id == receipt.uploaded_by_id)


def can_add_handover(receipt: Receipt) -> bool:
    # A handover proof does not change what was approved, so it may follow an approval.
    return receipt.status != ReceiptStatus.REJECTED


# Money and exchange rates ------------------------------------------------------------------------

def currency_precision(currency: str) -> int:
    return int(get_currency_precision(currency))


def to_minor(amount: Decimal, currency: str) -> int:
    """Whole minor units; ReceiptError if the amount has more decimals than the currency."""
    places = currency_precision(currency)
    scaled = amount * (10 ** places)
    if scaled != scaled.to_integral_value():
        raise ReceiptError(_("Enter the amount with at most %(places)d decimal places for %(currency)s.",
                             places=places, currency=currency), "amount")
    return int(scaled)


def from_minor(amount_minor: int, currency: str) -> Decimal:
    return Decimal(amount_minor) / (10 ** currency_precision(currency))


def to_eur_cents(amount_minor: int, currency: str, units_per_eur_micro: int) -> int:
    """Convert with integer arithmetic, rounding half up to the cent."""
    numerator = amount_minor * 100 * RATE_SCALE
    denominator = (10 ** currency_precision(currency)) * units_per_eur_micro
    quotient, remainder = divmod(numerator, denominator)
    return quotient + (1 if 2 * remainder >= denominator else 0)


def rate_to_micro(value: Decimal) -> int:
    micro = value * RATE_SCALE
    if value <= 0 or micro != micro.to_integral_value():
        raise ReceiptError(_("Enter a rate above 0 with at most 6 decimal places."), "rate")
    return int(micro)


def first_of_month(d: date) -> date:
    return d.replace(day=1)


def rate_for(db: Session, currency: str, day: date) -> ExchangeRate | None:
    return db.exec(select(ExchangeRate).where(ExchangeRate.currency == currency,
                                              ExchangeRate.month == first_of_month(day))).first()


def apply_rate(db: Session, receipt: Receipt) -> None:
    """Set the EUR amount from the rate of the invoice month; no rate → flagged, not refused."""
    month = first_of_month(receipt.invoice_date)
    if receipt.currency == "EUR":
        receipt.eur_cents = to_eur_cents(receipt.amount_minor, "EUR", RATE_SCALE)
        receipt.rate_micro, receipt.rate_month, receipt.rate_source = RATE_SCALE, month, "EUR"
        receipt.rate_missing = False
        return
    rate = rate_for(db, receipt.currency, receipt.invoice_date)
    if rate is None:
        receipt.eur_cents = receipt.rate_micro = receipt.rate_month = receipt.rate_source = None
        receipt.rate_missing = True
        return
    receipt.eur_cents = to_eur_cents(receipt.amount_minor, receipt.currency, rate.units_per_eur_micro)
    receipt.rate_micro, receipt.rate_month, receipt.rate_source = rate.units_per_eur_micro, rate.month, rate.source
    receipt.rate_missing = False


RATES_PER_PAGE = 50


def list_rates(db: Session, currency: str = "", page: int = 1,
               per_page: int | None = None) -> tuple[list[ExchangeRate], int, int]:
    """One page of the rates, newest month first: (rates, page, pages), two statements."""
    per_page = per_page or RATES_PER_PAGE
    conditions = [ExchangeRate.currency == currency] if currency else []
    total = db.exec(select(func.count()).select_from(ExchangeRate).where(*conditions)).one()
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    query = (select(ExchangeRate).where(*conditions).order_by(ExchangeRate.month.desc(), ExchangeRate.currency)
             .offset((page - 1) * per_page).limit(per_page))
    return list(db.exec(query)), page, pages


def _upsert_rate(db: Session, actor: User, currency: str, month: date, micro: int, source: str) -> ExchangeRate:
    currency = currency.upper()
    if currency == "EUR" or not is_currency(currency):
        raise ReceiptError(_("Choose a currency other than the euro."), "currency")
    month = first_of_month(month)
    rate = db.exec(select(ExchangeRate).where(ExchangeRate.currency == currency,
                                              ExchangeRate.month == month)).first()
    before = audit.snapshot(rate, ("currency", "month", "units_per_eur_micro", "source")) if rate else None
    rate = rate or ExchangeRate(currency=currency, month=month, units_per_eur_micro=micro)
    rate.units_per_eur_micro, rate.source = micro, (source or "").strip()[:100] or "InforEuro"
    rate.updated_by_id, rate.updated_at = actor.id, utcnow()
    db.add(rate)
    db.flush()
    audit.record(db, actor, "exchange_rate.saved", rate, before,
                 audit.snapshot(rate, ("currency", "month", "units_per_eur_micro", "source")))
    _reconvert(db, actor, currency, month)
    return rate


def _reconvert(db: Session, actor: User, currency: str, month: date) -> None:
    """Receipts of that currency and month that are not decided yet take the new rate."""
    next_month = (month + timedelta(days=32)).replace(day=1)
    for receipt in db.exec(select(Receipt).where(Receipt.currency == currency, Receipt.invoice_date >= month,
                                                 Receipt.invoice_date < next_month,
                                                 Receipt.status.in_(EDITABLE))):
        before = audit.snapshot(receipt, ("eur_cents", "rate_micro", "rate_month", "rate_source", "rate_missing"))
        apply_rate(db, receipt)
        receipt.over_budget = _over_budget(db, receipt)
        db.add(receipt)
        audit.record(db, actor, "receipt.reconverted", receipt, before,
                     audit.snapshot(receipt, ("eur_cents", "rate_micro", "rate_month", "rate_source",
                                              "rate_missing")))


def save_rate(db: Session, actor: User, currency: str, month: date, rate: Decimal, source: str) -> ExchangeRate:
    """Add or replace the rate of one currency for one month (and reconvert undecided receipts)."""
    saved = _upsert_rate(db, actor, currency, month, rate_to_micro(rate), source)
    db.commit()
    return saved


def _parse_month(text: str) -> date:
    text = text.strip()
    if len(text) == 7:
        text += "-01"
    return first_of_month(date.fromisoformat(text))


def import_rates_csv(db: Session, actor: User, text: str) -> int:
    """Rows `currency,month,units_per_eur[,source]` (month as 2024-03); all rows or none."""
    reader = csv.reader(io.StringIO(text))
    count = 0
    for number, row in enumerate(reader, start=1):
        cells = [c.strip() for c in row]
        if not any(cells) or (number == 1 and cells[0].lower() in ("currency", "code", "iso")):
            continue
        try:
            currency, month, value = cells[0], _parse_month(cells[1]), Decimal(cells[2].replace(",", "."))
            source = cells[3] if len(cells) > 3 else "InforEuro"
            _upsert_rate(db, actor, currency, month, rate_to_micro(value), source)
        except (IndexError, ValueError, InvalidOperation) as exc:
            db.rollback()
            reason = str(exc) if isinstance(exc, ReceiptError) else _("expected currency, month, rate")
            raise ReceiptError(_("Line %(line)d: %(reason)s", line=number, reason=reason), "file") from None
        count += 1
    if count == 0:
        raise ReceiptError(_("The file has no rates."), "file")
    db.commit()
    return count


# Flags ------------------------------------------------------------------------------------------

def _line_used(db: Session, line_id: int, exclude_id: int | None) -> int:
    query = select(func.coalesce(func.sum(Receipt.eur_cents), 0)).where(
        Receipt.budget_line_id == line_id, Receipt.status.in_(COUNTED))
    if exclude_id is not None:
        query = query.where(Receipt.id != exclude_id)
    return int(db.exec(query).one())


def _over_budget(db: Session, receipt: Receipt) -> bool:
    line = db.get(BudgetLine, receipt.budget_line_id) if receipt.budget_line_id else None
    if line is None or receipt.eur_cents is None:
        return False
    return _line_used(db, line.id, receipt.id) + receipt.eur_cents > line.planned_cents


def outside_period(day: date) -> bool:
    cfg = current_app.config
    return not (cfg["PROJECT_START"] <= day <= cfg["PROJECT_END"])


def _set_flags(db: Session, receipt: Receipt) -> None:
    apply_rate(db, receipt)
    receipt.outside_period = outside_period(receipt.invoice_date)
    receipt.over_budget = _over_budget(db, receipt)


def warnings_for(receipt: Receipt) -> list[str]:
    """What the person who submitted should know right away."""
    out = []
    if receipt.over_budget:
        out.append(_("The receipts of this budget line are now above its planned amount. The reviewer will "
                     "see this."))
    if receipt.outside_period:
        out.append(_("The invoice date is outside the project period. The reviewer will see this."))
    if receipt.rate_missing:
        out.append(_("There is no exchange rate for %(currency)s in this month yet: the EUR amount will be "
                     "added by staff.", currency=receipt.currency))
    return out


# Duplicates -------------------------------------------------------------------------------------

def invoice_duplicates(db: Session, supplier: str, invoice_number: str,
                       exclude_id: int | None = None) -> list[tuple[Receipt, Case]]:
    """Other receipts with the same supplier and invoice number (case-insensitive), anywhere."""
    query = (select(Receipt, Case).join(Case, Case.id == Receipt.case_id)
             .where(func.lower(Receipt.supplier) == supplier.strip().lower(),
                    func.lower(Receipt.invoice_number) == invoice_number.strip().lower(),
                    Receipt.status != ReceiptStatus.PENDING)
             .order_by(Receipt.id))
    if exclude_id is not None:
        query = query.where(Receipt.id != exclude_id)
    return list(db.exec(query))


def may_see(user: User, case: Case) -> bool:
    return user.is_staff or case.organisation_id == user.organisation_id


def describe_receipt(user: User, receipt: Receipt, case: Case) -> str:
    """The receipt and its case if the user may see that case; another organisation's receipt is not
    named (its reference would tell what another organisation submits). Staff see every match on the
    receipt's page."""
    if may_see(user, case):
        return _("receipt %(ref)s of case %(case)s", ref=receipt.reference, case=case.reference)
    return _("a receipt of another organisation")


def _check_file_duplicates(db: Session, user: User, files: list[tuple[str, str, CleanFile]]) -> None:
    seen: dict[str, str] = {}
    for field_name, _kind, clean in files:
        for digest in {clean.sha256, clean.original_sha256}:
            if digest in seen:
                raise ReceiptError(_("%(name)s: you chose the same file twice", name=clean.filename), field_name)
            seen[digest] = field_name
    if not seen:
        return
    hit = db.exec(
        select(ReceiptFile, Receipt, Case).join(Receipt, Receipt.id == ReceiptFile.receipt_id)
        .join(Case, Case.id == Receipt.case_id)
        .where(ReceiptFile.confirmed.is_(True), ReceiptFile.scan_status != ScanStatus.INFECTED,
               ReceiptFile.sha256.in_(list(seen)) | ReceiptFile.original_sha256.in_(list(seen)))
        .limit(1)
    ).first()
    if hit:
        row, receipt, case = hit
        field_name = seen.get(row.sha256) or seen.get(row.original_sha256) or "files"
        if may_see(user, case):
            raise ReceiptError(_("This file is already in the portal: it belongs to %(where)s.",
                                 where=describe_receipt(user, receipt, case)), field_name)
        # Not named to the partner; staff find the attempt, with the receipt it matched, in the audit log.
        tried = next((c.filename for f, _k, c in files if f == field_name), "")
        audit.record(db, user, "receipt.duplicate_file_refused", receipt,
                     after={"organisation_id": user.organisation_id, "filename": tried})
        db.commit()
        raise ReceiptError(_("This file is already in the portal. If it belongs to a different purchase, "
                             "please contact Micado staff."), field_name)


# Files: clean, intent, store, confirm --------------------------------------------------------------

def clean_uploads(uploads: Iterable[tuple[str, str, Upload]]) -> list[tuple[str, str, CleanFile]]:
    """(field, kind, upload) → (field, kind, cleaned file); ReceiptError naming the field otherwise."""
    uploads = list(uploads)
    out = []
    for field_name, kind, upload in uploads:
        try:
            clean = clean_upload(upload.filename, upload.stream)
        except FileProblem as exc:
            several = sum(1 for f, _k, _u in uploads if f == field_name) > 1
            message = _("%(name)s: %(problem)s", name=upload.filename, problem=str(exc)) if several else str(exc)
            raise ReceiptError(message, field_name) from None
        out.append((field_name, kind, clean))
    return out


def _adopted(clean: CleanFile) -> bool:
    """A completed resumable upload: checked and stored already, under its own key."""
    return bool(getattr(clean, "upload_id", 0))


def _intent_rows(receipt: Receipt, actor: User, case_id: int,
                 files: list[tuple[str, str, CleanFile]]) -> list[tuple[ReceiptFile, CleanFile]]:
    return [(ReceiptFile(receipt_id=receipt.id, kind=kind,
                         key=getattr(clean, "key", "") or new_key(f"receipts/{case_id}"), size=clean.size,
                         sha256=clean.sha256, original_sha256=clean.original_sha256,
                         content_type=clean.content_type, original_filename=clean.filename,
                         metadata_removed=clean.metadata_removed, confirmed=False, uploaded_by_id=actor.id,
                         scan_status=scanning.initial_status()),
             clean) for _field, kind, clean in files]


def _store(storage: Storage, pairs: list[tuple[ReceiptFile, CleanFile]]) -> None:
    for row, clean in pairs:
        if _adopted(clean):
            continue
        stored = storage.put(row.key, clean.data, content_type=row.content_type, sha256=row.sha256,
                             md5=clean.md5 or None)
        if (stored.size, stored.sha256) != (row.size, row.sha256):
            raise StorageError(f"{row.key}: stored {stored.sha256}, expected {row.sha256}")


def _abandon(db: Session, storage: Storage, keys: list[str], receipt_id: int | None,
             file_ids: list[int], upload_ids: list[int] | None = None) -> None:
    """Best effort after a failure: remove what was stored and the intent rows. What stays, the sweep takes.
    Claimed uploads keep their objects and can be used again (`keys` never names theirs)."""
    db.rollback()
    uploads.release(db, upload_ids or [])
    for key in keys:
        try:
            storage.delete(key)
        except StorageError as exc:
            log.warning("could not remove %s after a failed upload (the sweep will): %s", key, exc)
    try:
        for file_id in file_ids:
            row = db.get(ReceiptFile, file_id)
            if row is not None:
                db.delete(row)
        if receipt_id is not None:
            db.flush()
            receipt = db.get(Receipt, receipt_id)
            if receipt is not None and receipt.status == ReceiptStatus.PENDING:
                db.delete(receipt)
        db.commit()
    except SQLAlchemyError as exc:
        db.rollback()
        log.warning("could not remove upload intents %s/%s (the sweep will): %s", receipt_id, file_ids, exc)


def _own_keys(pairs) -> list[str]:
    """Keys this request stores itself (not those of claimed uploads, which stay theirs on failure)."""
    return [row.key for row, clean in pairs if not _adopted(clean)]


def _upload_ids(pairs) -> list[int]:
    return [clean.upload_id for _row, clean in pairs if _adopted(clean)]


def _claim_uploads(db: Session, pairs, receipt_id: int) -> None:
    """Claim the form's completed uploads in the receipt's transaction; a lost race saves nothing."""
    ids = _upload_ids(pairs)
    if ids and not uploads.claim(db, ids, receipt_id=receipt_id):
        db.rollback()
        raise ReceiptError(_("An uploaded file is no longer available (it was removed, used already or kept "
                             "for more than 24 hours). Choose it again."), "files")


def _store_or_abandon(db: Session, storage: Storage, pairs, receipt_id: int | None) -> None:
    try:
        _store(storage, pairs)
    except StorageError as exc:
        log.warning("upload failed: %s", exc)
        _abandon(db, storage, _own_keys(pairs), receipt_id, [row.id for row, _c in pairs], _upload_ids(pairs))
        raise UploadFailed(str(MSG_FAILED), "files") from None


def _snapshot(receipt: Receipt) -> dict:
    return audit.snapshot(receipt, RECEIPT_FIELDS)


def _replay(db: Session, case: Case, nonce: str) -> Outcome | None:
    """The receipt this form already made, if it was sent before; InFlight while that is still going on."""
    existing = db.exec(select(Receipt).where(Receipt.nonce == nonce)).first()
    if existing is None:
        return None
    if existing.status != ReceiptStatus.PENDING and existing.case_id == case.id:
        return Outcome(existing, replayed=True)
    raise InFlight(_("This form is already being sent. Wait a moment, then open the case to see the receipt."))


def create_receipt(db: Session, storage: Storage, actor: User, case: Case, data: dict,
                   files: list[tuple[str, str, CleanFile]], nonce: str, confirm_duplicate: bool) -> Outcome:
    """Save a new receipt with its files: intent row, objects stored with checksums, then confirmed."""
    replay = _replay(db, case, nonce)
    if replay is not None:
        return replay
    if not any(kind == FileKind.RECEIPT for _f, kind, _c in files):
        raise ReceiptError(_("Select at least one file of the receipt"), "files")
    line = db.exec(select(BudgetLine).where(BudgetLine.id == data["budget_line_id"],
                                            BudgetLine.case_id == case.id)).first()
    if line is None:
        raise ReceiptError(_("Choose the budget line this purchase belongs to."), "budget_line_id")
    _check_file_duplicates(db, actor, files)
    matches = invoice_duplicates(db, data["supplier"], data["invoice_number"])
    if matches and not confirm_duplicate:
        raise DuplicateInvoice(matches)

    receipt = Receipt(case_id=case.id, uploaded_by_id=actor.id, nonce=nonce, status=ReceiptStatus.PENDING,
                      duplicate_suspected=bool(matches), **data)
    _set_flags(db, receipt)
    db.add(receipt)
    try:
        db.flush()
    except IntegrityError:  # the same form, sent twice at the same moment
        db.rollback()
        replay = _replay(db, case, nonce)
        if replay is None:
            raise
        return replay
    pairs = _intent_rows(receipt, actor, case.id, files)
    db.add_all([row for row, _c in pairs])
    _claim_uploads(db, pairs, receipt.id)
    db.commit()  # the intent: from here on, the sweep knows about every object we store

    _store_or_abandon(db, storage, pairs, receipt.id)
    # Read before confirming: after a failed commit the objects are expired, and loading them again
    # would ask the database that just failed.
    receipt_id, keys, row_ids = receipt.id, _own_keys(pairs), [row.id for row, _c in pairs]
    upload_ids = _upload_ids(pairs)
    try:
        _confirm_new(db, actor, receipt, [row for row, _c in pairs])
    except SQLAlchemyError as exc:
        db.rollback()
        log.warning("receipt %s stored but not confirmed: %s", receipt_id, exc)
        _abandon(db, storage, keys, receipt_id, row_ids, upload_ids)
        raise UploadFailed(str(MSG_FAILED), "files") from None
    # Saved and acknowledged; an infected file is quarantined, the rest of the receipt stays.
    rows = scanning.scan_new(db, storage, [row for row, _c in pairs], actor)
    ocr.queue(receipt_id)  # text recognition, after the scan (portal/ocr)
    return Outcome(receipt, warnings=warnings_for(receipt), files=rows)


def _confirm_new(db: Session, actor: User, receipt: Receipt, rows: list[ReceiptFile]) -> None:
    receipt.status = ReceiptStatus.SUBMITTED
    receipt.over_budget = _over_budget(db, receipt)  # other receipts may have come in meanwhile
    receipt.updated_at = utcnow()
    for row in rows:
        row.confirmed = True
        db.add(row)
    db.add(receipt)
    after = _snapshot(receipt) | {"files": [row.key for row in rows]}
    db.add(ReceiptEvent(receipt_id=receipt.id, revision=receipt.revision, actor_id=actor.id, kind="submitted",
                        snapshot=after))
    audit.record(db, actor, "receipt.submitted", receipt, after=after)
    db.commit()


def add_files(db: Session, storage: Storage, actor: User, receipt: Receipt, kind: str,
              files: list[tuple[str, str, CleanFile]]) -> list[ReceiptFile]:
    """Attach more files (a handover proof, or a corrected receipt scan) with the same intent flow.

    Plain files take `kind` (the form's choice); completed uploads bring their own (their purpose)."""
    files = [(f, k if _adopted(c) else kind, c) for f, k, c in files]
    kinds = sorted({k for _f, k, _c in files}) or [kind]
    if FileKind.RECEIPT in kinds and not can_edit(actor, receipt):
        raise ReceiptError(_("Files of the receipt can only be added while it waits for review or "
                             "correction."), "files")
    if FileKind.HANDOVER in kinds and not can_add_handover(receipt):
        raise ReceiptError(_("This receipt was rejected: no files can be added."), "files")
    if not files:
        raise ReceiptError(_("Select a file"), "files")
    kind = ",".join(kinds)
    _check_file_duplicates(db, actor, files)
    pairs = _intent_rows(receipt, actor, receipt.case_id, files)
    db.add_all([row for row, _c in pairs])
    _claim_uploads(db, pairs, receipt.id)
    db.commit()
    _store_or_abandon(db, storage, pairs, None)
    rows = [row for row, _c in pairs]
    receipt_id, keys, row_ids = receipt.id, _own_keys(pairs), [row.id for row in rows]  # see create_receipt
    upload_ids = _upload_ids(pairs)
    try:
        for row in rows:
            row.confirmed = True
            db.add(row)
        names = [row.original_filename for row in rows]
        db.add(ReceiptEvent(receipt_id=receipt.id, revision=receipt.revision, actor_id=actor.id, kind="file_added",
                            snapshot={"kind": kind, "files": names}))
        audit.record(db, actor, "receipt.file_added", receipt,
                     after={"kind": kind, "files": [row.key for row in rows], "names": names})
        db.commit()
    except SQLAlchemyError as exc:
        db.rollback()
        log.warning("files of receipt %s stored but not confirmed: %s", receipt_id, exc)
        _abandon(db, storage, keys, None, row_ids, upload_ids)
        raise UploadFailed(str(MSG_FAILED), "files") from None
    return scanning.scan_new(db, storage, rows, actor)


def preview(storage: Storage, row: ReceiptFile) -> bytes | None:
    """The preview JPEG of a stored file: made once from the stored file, then kept in storage.

    A file that is not there has no preview (None); a storage that cannot be reached raises
    StorageError, which the user sees as "try again in a few minutes" (503), not as "not found".
    """
    key = preview_key(row.id, row.sha256)
    try:
        if storage.exists(key):
            with storage.open(key) as fh:
                return fh.read()
        with storage.open(row.key) as fh:
            data = make_preview(fh, row.content_type)
    except FileNotFoundError:
        return None
    if data is not None:
        try:
            storage.put(key, io.BytesIO(data), content_type="image/jpeg")
        except StorageError as exc:  # shown now, made again next time
            log.warning("preview of %s not kept: %s", row.key, exc)
    return data


# Changing a receipt -------------------------------------------------------------------------------

def _claim(db: Session, receipt: Receipt, expected_version: int) -> None:
    """Move the version on if nobody else did since the form was loaded; Conflict otherwise.

    One conditional UPDATE: of two requests holding the same version, exactly one matches a row.
    """
    if receipt.version != expected_version:
        raise Conflict(_("Someone else changed this receipt while you were looking at it. Its current "
                         "state is shown below."))
    result = db.exec(update(Receipt).where(Receipt.id == receipt.id, Receipt.version == expected_version)
                     .values(version=expected_version + 1).execution_options(synchronize_session=False))
    if result.rowcount != 1:
        db.rollback()
        db.refresh(receipt)
        raise Conflict(_("Someone else changed this receipt while you were looking at it. Its current "
                         "state is shown below."))
    receipt.version = expected_version + 1


def update_receipt(db: Session, actor: User, receipt: Receipt, data: dict, expected_version: int,
                   confirm_duplicate: bool) -> Outcome:
    """The partner corrects a receipt: a new revision, submitted again; the old one stays in the history."""
    if receipt.status == ReceiptStatus.APPROVED:
        raise ReceiptError(_("This receipt is approved and locked."))
    if not can_edit(actor, receipt):
        raise ReceiptError(_("This receipt cannot be changed any more."))
    line = db.exec(select(BudgetLine).where(BudgetLine.id == data["budget_line_id"],
                                            BudgetLine.case_id == receipt.case_id)).first()
    if line is None:
        raise ReceiptError(_("Choose the budget line this purchase belongs to."), "budget_line_id")
    matches = invoice_duplicates(db, data["supplier"], data["invoice_number"], exclude_id=receipt.id)
    if matches and not confirm_duplicate:
        raise DuplicateInvoice(matches)
    _claim(db, receipt, expected_version)
    before = _snapshot(receipt)
    for key, value in data.items():
        setattr(receipt, key, value)
    receipt.duplicate_suspected = bool(matches)
    receipt.status = ReceiptStatus.SUBMITTED
    receipt.revision += 1
    receipt.updated_at = utcnow()
    _set_flags(db, receipt)
    db.add(receipt)
    after = _snapshot(receipt)
    db.add(ReceiptEvent(receipt_id=receipt.id, revision=receipt.revision, actor_id=actor.id, kind="resubmitted",
                        snapshot=after))
    audit.record(db, actor, "receipt.resubmitted", receipt, before, after)
    db.commit()
    return Outcome(receipt, warnings=warnings_for(receipt))


# Review -----------------------------------------------------------------------------------------

APPROVE, REJECT, CORRECTION = "approve", "reject", "correction"


def four_eyes_cents() -> int:
    return int(current_app.config["RECEIPT_FOUR_EYES_EUR"]) * 100


def needs_four_eyes(receipt: Receipt) -> bool:
    return receipt.eur_cents is not None and receipt.eur_cents > four_eyes_cents()


def first_approvals(db: Session, receipt: Receipt) -> list[ReceiptEvent]:
    """Approvals of the current revision that wait for a second reviewer."""
    return list(db.exec(select(ReceiptEvent).where(ReceiptEvent.receipt_id == receipt.id,
                                                   ReceiptEvent.revision == receipt.revision,
                                                   ReceiptEvent.kind == "first_approval")))


def decide(db: Session, actor: User, receipt: Receipt, decision: str, comment: str,
           expected_version: int) -> str:
    """Record a reviewer's decision; returns the event kind written. Audit and notifications commit with it."""
    comment = (comment or "").strip()
    if receipt.version != expected_version:
        _claim(db, receipt, expected_version)  # raises Conflict
    if receipt.status != ReceiptStatus.SUBMITTED:
        raise ReceiptError(_("This receipt is not waiting for a decision."))
    if decision not in (APPROVE, REJECT, CORRECTION):
        raise ReceiptError(_("Choose a decision."), "decision")
    if decision == REJECT and not comment:
        raise ReceiptError(_("Enter the reason for the rejection"), "comment")
    if decision == CORRECTION and not comment:
        raise ReceiptError(_("Enter what the partner must correct"), "comment")
    status = {REJECT: ReceiptStatus.REJECTED, CORRECTION: ReceiptStatus.CORRECTION_REQUESTED}.get(decision)
    kind = {REJECT: "rejected", CORRECTION: "correction_requested"}.get(decision, "approved")
    if decision == APPROVE:
        if actor.id == receipt.uploaded_by_id:
            raise ReceiptError(_("You uploaded this receipt, so another staff member must approve it."))
        if receipt.eur_cents is None:
            raise ReceiptError(_("Add the exchange rate for this currency and month before approving."))
        _check_scanned(db, receipt)
        status = ReceiptStatus.APPROVED
        if needs_four_eyes(receipt):
            earlier = first_approvals(db, receipt)
            if any(event.actor_id == actor.id for event in earlier):
                raise ReceiptError(_("You have already approved this receipt. A second, different staff "
                                     "member must approve it."))
            if not earlier:
                status, kind = ReceiptStatus.SUBMITTED, "first_approval"
    before = {"status": receipt.status, "version": receipt.version}
    _claim(db, receipt, expected_version)
    receipt.status = status
    receipt.updated_at = utcnow()
    db.add(receipt)
    db.add(ReceiptEvent(receipt_id=receipt.id, revision=receipt.revision, actor_id=actor.id, kind=kind,
                        comment=comment))
    audit.record(db, actor, f"receipt.{kind}", receipt, before,
                 {"status": status, "version": receipt.version, "comment": comment})
    _notify(db, actor, receipt, kind, comment)
    db.commit()
    return kind


def _check_scanned(db: Session, receipt: Receipt) -> None:
    """Approval needs every file found clean by the virus scanner (or no scanner configured)."""
    for row in files_of(db, receipt):
        if scanning.scan_state(row) == ScanStatus.INFECTED:
            raise ReceiptError(_("This receipt cannot be approved: %(name)s was refused as infected. Ask the "
                                 "partner for a clean copy of the file.", name=row.original_filename))
        if not scanning.is_cleared(row):
            raise ReceiptError(_("This receipt cannot be approved yet: %(name)s is waiting for its virus scan.",
                                 name=row.original_filename))


NOTICES = {"approved": NoticeKind.RECEIPT_APPROVED, "rejected": NoticeKind.RECEIPT_REJECTED,
           "correction_requested": NoticeKind.RECEIPT_CORRECTION}
DECISIONS = ("first_approval", "approved", "rejected", "correction_requested")


def _notify(db: Session, actor: User, receipt: Receipt, kind: str, comment: str) -> None:
    """Tell the organisation's partners and the staff following the receipt (those who decided on it
    before), in the decision's transaction; the hourly digest mails it."""
    notice = NOTICES.get(kind)
    if notice is None:
        return  # a first approval is no decision yet
    case = case_of(db, receipt)
    followers = db.exec(select(ReceiptEvent.actor_id).where(ReceiptEvent.receipt_id == receipt.id,
                                                            ReceiptEvent.kind.in_(DECISIONS)).distinct()).all()
    recipients = notifications.partners_of(db, case.organisation_id) + notifications.staff_among(db, followers)
    notifications.notify(db, recipients, actor, notice, "receipt", receipt.id, ref=receipt.reference,
                         case=case.reference, supplier=receipt.supplier, comment=comment)


# Budget -----------------------------------------------------------------------------------------

@dataclass
class LineFigures:
    submitted_cents: int = 0
    approved_cents: int = 0
    without_rate: int = 0


def figures_of(receipts: Iterable[Receipt]) -> dict[int | None, LineFigures]:
    """budget_figures, added up from a case's receipts already loaded (the case page has them all)."""
    figures: dict[int | None, LineFigures] = {}
    for receipt in receipts:
        if receipt.status not in COUNTED:
            continue
        fig = figures.setdefault(receipt.budget_line_id, LineFigures())
        fig.submitted_cents += receipt.eur_cents or 0
        fig.without_rate += receipt.eur_cents is None
        if receipt.status == ReceiptStatus.APPROVED:
            fig.approved_cents += receipt.eur_cents or 0
    return figures



def case_part(db: Session, case: Case, lines: list, with_events: bool = False) -> dict:
    """What the case page needs for its receipts section (and its budget's submitted/approved columns,
    added up from the same receipts); `with_events` adds their history for the timeline, read with them."""
    context = {}
    if with_events:
        receipts, context["receipt_events"] = receipts_of_case_with_events(db, case)
    else:
        receipts = receipts_of_case(db, case)
    return {"receipts": receipts, "receipt_lines": {line.id: line for line in lines},
            "receipt_figures": figures_of(receipts), **context}

def budget_figures(db: Session, case: Case) -> dict[int | None, LineFigures]:
    """Per budget line: EUR submitted (not rejected) and approved; receipts still without a rate counted."""
    figures: dict[int | None, LineFigures] = {}
    rows = db.exec(select(Receipt.budget_line_id, Receipt.status, func.coalesce(func.sum(Receipt.eur_cents), 0),
                          func.count(Receipt.id) - func.count(Receipt.eur_cents))
                   .where(Receipt.case_id == case.id, Receipt.status.in_(COUNTED))
                   .group_by(Receipt.budget_line_id, Receipt.status))
    for line_id, status, cents, no_rate in rows:
        fig = figures.setdefault(line_id, LineFigures())
        fig.submitted_cents += int(cents)
        fig.without_rate += int(no_rate)
        if status == ReceiptStatus.APPROVED:
            fig.approved_cents += int(cents)
    return figures


# Sweep ------------------------------------------------------------------------------------------

@dataclass
class SweepReport:
    intents: int = 0
    files: int = 0
    orphans: int = 0
    unfinished: int = 0  # uploads the storage server never completed (it stopped mid-upload)
    errors: list[str] = field(default_factory=list)


def sweep(db: Session, storage: Storage, older_than: timedelta, now: datetime | None = None) -> SweepReport:
    """Remove upload intents never confirmed (with their objects) and stored objects no row refers to."""
    report = SweepReport()
    cutoff = (now or utcnow()) - older_than
    stale = db.exec(select(ReceiptFile).where(ReceiptFile.confirmed.is_(False),
                                              ReceiptFile.created_at < cutoff)).all()
    for row in stale:
        try:
            storage.delete(row.key)
        except StorageError as exc:
            report.errors.append(str(exc))
            continue
        db.delete(row)
        db.commit()
        report.files += 1
    for receipt in db.exec(select(Receipt).where(Receipt.status == ReceiptStatus.PENDING,
                                                 Receipt.created_at < cutoff)).all():
        if db.exec(select(ReceiptFile.id).where(ReceiptFile.receipt_id == receipt.id)).first() is None:
            db.delete(receipt)
            db.commit()
            report.intents += 1
    try:
        report.unfinished = storage.abort_unfinished(older_than)
    except StorageError as exc:
        report.errors.append(str(exc))
    # List first, then read the rows: an object's row is committed before the object is stored, so
    # every key listed here that belongs to an upload in progress already has its row.
    try:
        listed = list(storage.keys("receipts/"))
    except StorageError as exc:
        report.errors.append(str(exc))
        return report
    known = set(db.exec(select(ReceiptFile.key)).all()) | uploads.kept_keys(db)  # ready uploads wait for a form
    for key in listed:
        if key in known:
            continue
        try:
            storage.delete(key)
            report.orphans += 1
        except StorageError as exc:
            report.errors.append(str(exc))
    return report


def sweep_job() -> str:
    """The hourly job: the sweep of `flask --app portal receipts sweep` (intents older than an hour)."""
    from portal import db as dbm
    from portal.storage import get_storage

    with Session(dbm.engine(), expire_on_commit=False) as db:
        report = sweep(db, get_storage(), timedelta(hours=1))
    if report.errors:
        log.warning("receipts sweep: %s", "; ".join(report.errors[:5]))
    return f"{report.intents} intents, {report.files} files, {report.orphans} orphans, {report.unfinished} unfinished"


# The review desk's context and search ------------------------------------------------------------

@dataclass
class LineSummary:
    """A budget line's figures beside a decision: planned, submitted (not rejected), approved, remaining."""

    planned_cents: int
    submitted_cents: int
    approved_cents: int

    @property
    def remaining_cents(self) -> int:
        return self.planned_cents - self.submitted_cents


def line_summaries(db: Session, line_ids: Iterable[int]) -> dict[int, LineSummary]:
    """The figures of several budget lines in one statement (a page of the review desk)."""
    ids = sorted({i for i in line_ids if i is not None})
    if not ids:
        return {}
    counted = Receipt.status.in_(COUNTED)
    rows = db.exec(select(BudgetLine.id, BudgetLine.planned_cents,
                          func.coalesce(func.sum(Receipt.eur_cents).filter(counted), 0),
                          func.coalesce(func.sum(Receipt.eur_cents).filter(Receipt.status == ReceiptStatus.APPROVED),
                                        0))
                   .outerjoin(Receipt, Receipt.budget_line_id == BudgetLine.id)
                   .where(BudgetLine.id.in_(ids)).group_by(BudgetLine.id, BudgetLine.planned_cents))
    return {line_id: LineSummary(int(planned), int(submitted), int(approved))
            for line_id, planned, submitted, approved in rows}


def first_files(db: Session, receipt_ids: Iterable[int]) -> dict[int, ReceiptFile]:
    """The first receipt file (not a handover proof) of each receipt, in one statement: what a preview shows."""
    ids = sorted(set(receipt_ids))
    if not ids:
        return {}
    found: dict[int, ReceiptFile] = {}
    for row in db.exec(select(ReceiptFile).where(ReceiptFile.receipt_id.in_(ids), ReceiptFile.confirmed.is_(True),
                                                 ReceiptFile.kind == FileKind.RECEIPT)
                       .order_by(ReceiptFile.receipt_id, ReceiptFile.id)):
        found.setdefault(row.receipt_id, row)
    return found


def has_preview(row: ReceiptFile | None) -> bool:
    """Whether the desk may show the file's picture: an image or PDF the virus scanner has cleared."""
    return row is not None and scanning.is_cleared(row) and (
        row.content_type == "application/pdf" or row.content_type.startswith("image/"))


SEARCH_PER_PAGE = 25
SEARCH_MAX_WORDS = 8


def search_words(text: str) -> list[str]:
    """The words of a search, at most a few, each of a sensible length."""
    return [w[:100] for w in (text or "").replace('"', " ").split()][:SEARCH_MAX_WORDS]


def search_condition(text: str, dialect: str):
    """Receipts whose supplier, invoice number, description or translation hold every word searched.

    PostgreSQL: the generated tsvector column `search_vector` (GIN index, `simple` configuration);
    SQLite: the FTS5 table `receipts_fts`, kept in step by triggers (migration 0015_desk)."""
    words = search_words(text)
    if not words:
        return None
    if dialect == "postgresql":
        return sa_text("receipts.search_vector @@ plainto_tsquery('simple'::regconfig, :search_words)").bindparams(
            search_words=" ".join(words))
    match = " ".join('"' + w + '"' for w in words)  # each word a phrase: no FTS5 operators from the user
    return Receipt.id.in_(sa_text("SELECT rowid FROM receipts_fts WHERE receipts_fts MATCH :search_match")
                          .bindparams(search_match=match).columns(sa_column("rowid", Integer)))


@dataclass
class SearchPage:
    rows: list[tuple[Receipt, Case]]
    next_before: int | None  # the id to continue after (newest first), None on the last page


def search(db: Session, user: User, text: str, before: int | None = None) -> SearchPage:
    """Receipts the user may see (staff: all; partners: their organisation's) matching every word, newest
    first, one page after `before` (keyset by id)."""
    condition = search_condition(text, db.get_bind().dialect.name)
    if condition is None:
        return SearchPage([], None)
    query = (select(Receipt, Case).join(Case, Case.id == Receipt.case_id)
             .where(condition, Receipt.status != ReceiptStatus.PENDING, *scope(user)))
    if before is not None:
        query = query.where(Receipt.id < before)
    rows = list(db.exec(query.order_by(Receipt.id.desc()).limit(SEARCH_PER_PAGE + 1)))
    more = len(rows) > SEARCH_PER_PAGE
    rows = rows[:SEARCH_PER_PAGE]
    return SearchPage(rows, rows[-1][0].id if more else None)
