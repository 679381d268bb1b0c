"""Suggestions from the photo: the new-receipt form offers what text recognition read on its first file.

When a receipt upload of the new-receipt form completes (portal/uploads/services.finish), the `read_upload`
job reads the stored file as the receipt job does (`services.read_stored`) and keeps what it found in
`upload_texts`, with a small picture of where on the page each field was. The form asks for
`suggestions_for()` every 2 seconds (portal/ocr/views.py) and shows each field with a button that fills that
field only, when the partner presses it (static/js/prefill.js): nothing is filled by itself, nothing typed is
changed without a click. When the receipt is saved, the receipt job takes the upload's reading over
(`carry_over`) instead of reading the same file again.

Safety: a picture was decoded and encoded again by the upload's checks (pixels only), so it is read before
the virus scan; a PDF only after clamd has found it clean when scanning is on (the receipt's own scan
follows as always). Every job is safe to run twice: one row per upload, kept.
"""

from __future__ import annotations

import base64
import io
import logging
import time
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from sqlmodel import Session, select

from portal import db as dbm
from portal import tasks
from portal.numbers import ascii_digits
from portal.ocr import engine
from portal.ocr.models import TextStatus, UploadText
from portal.storage import Storage, StorageError
from portal.uploads.models import Purpose, Upload, UploadStatus

log = logging.getLogger(__name__)

FIELDS = ("supplier", "invoice_number", "invoice_date", "amount", "currency")
POLL_SECONDS = 2  # the form asks again this often …
POLL_LIMIT = 60  # … for about a minute after its first question, then says nothing could be read
CROP_SIZE = (360, 72)  # px, the largest picture of where a field was
MAX_TEXT = 20_000


# The job ------------------------------------------------------------------------------------------------------

def wanted(row: Upload) -> bool:
    """Uploads the form offers suggestions for: receipt files of a new receipt (not added files, handovers)."""
    return row.purpose == Purpose.RECEIPT and row.receipt_id is None and row.visit_id is None


def queue(upload_id: int) -> bool:
    return tasks.enqueue("read_upload", upload_id)


def result_of(db: Session, upload_id: int) -> UploadText | None:
    return db.exec(select(UploadText).where(UploadText.upload_id == upload_id)).first()


def _pdf_cleared(storage: Storage, key: str) -> bool:
    """A PDF is opened by pdfium only once clamd found it clean (or when no scanner is configured)."""
    from portal.scanning import services as scanning

    scanner = scanning.client()
    if scanner is None:
        return True
    try:
        with storage.open(key) as fh:
            result = scanner.scan_stream(fh)
    except (StorageError, FileNotFoundError) as exc:
        log.warning("upload file %s not scanned before reading: %s", key, exc)
        return False
    return bool(result.clean)


def read_upload(db: Session, storage: Storage, upload_id: int, force: bool = False) -> str:
    """Read a completed receipt upload and keep what was found. Returns what happened, in a word or two."""
    from portal.ocr.services import read_stored

    row = db.get(Upload, upload_id)
    if row is None or row.status != UploadStatus.READY or not row.key or not wanted(row):
        return "gone"
    if result_of(db, upload_id) is not None and not force:
        return "read before"
    if row.content_type == "application/pdf":
        if not _pdf_cleared(storage, row.key):
            return "not cleared"
    elif not (row.content_type.startswith("image/") and engine.available()):
        return "no reader"
    started = time.monotonic()
    status = TextStatus.READ
    try:
        page, fields = read_stored(storage, row.key, row.content_type)
    except StorageError:
        raise  # the queue retries
    except Exception as exc:  # noqa: BLE001 - a file the readers cannot open: recorded, not retried
        log.warning("upload %s not readable: %s", upload_id, exc)
        page, fields, status = None, {}, TextStatus.UNREADABLE
    text = page.text[:MAX_TEXT] if page is not None else ""
    if status == TextStatus.READ and not text.strip():
        status = TextStatus.EMPTY
    crops = {}
    if page is not None and fields:
        try:
            crops = _crops(storage, row.key, row.content_type, page, fields)
        except Exception as exc:  # noqa: BLE001 - the pictures are a help, the fields matter
            log.warning("upload %s: no pictures of the fields: %s", upload_id, exc)
    values = {
        "status": status, "text": text, "fields": fields, "crops": crops,
        **engine.stored(page, started),
    }
    dbm.upsert(db, lambda: result_of(db, upload_id), lambda: UploadText(upload_id=upload_id), values,
               f"upload text of {upload_id}")
    return f"{status}: {', '.join(sorted(fields))}" if fields else str(status)


def _picture(storage: Storage, key: str, content_type: str):
    from PIL import Image, ImageOps

    with storage.open(key) as fh:
        data = io.BytesIO(fh.read())
    if content_type == "application/pdf":
        import pypdfium2 as pdfium

        pdf = pdfium.PdfDocument(data)
        try:
            first = pdf[0]
            try:
                return first.render(scale=2).to_pil().convert("RGB")
            finally:
                first.close()
        finally:
            pdf.close()
    img = Image.open(data)
    img.load()
    return ImageOps.exif_transpose(img).convert("RGB")


def _crops(storage: Storage, key: str, content_type: str, page: engine.Page, fields: dict) -> dict[str, str]:
    """{field: a small JPEG (base64) of the part of the page the field was read from}."""
    if not page.width or not page.height:
        return {}
    img = _picture(storage, key, content_type)
    sx, sy = img.width / page.width, img.height / page.height
    if abs(sx - sy) > 0.02 * max(sx, sy):
        return {}  # the page was read turned (its boxes are of the turned page): no pictures
    crops = {}
    for name, found in fields.items():
        box = found.get("box")
        if not box or len(box) != 4 or box[2] <= 0 or box[3] <= 0:
            continue
        left, top, width, height = (v * sx for v in box)
        pad = height * 0.4
        area = (max(0, int(left - pad)), max(0, int(top - pad)),
                min(img.width, int(left + width + pad)), min(img.height, int(top + height + pad)))
        if area[2] <= area[0] or area[3] <= area[1]:
            continue
        part = img.crop(area)
        part.thumbnail(CROP_SIZE)
        out = io.BytesIO()
        part.save(out, "JPEG", quality=70)
        crops[name] = base64.b64encode(out.getvalue()).decode("ascii")
    return crops


def read_upload_job(upload_id: int) -> str:
    """The job: read one completed receipt upload (safe to run twice: read once)."""
    from portal.storage import get_storage

    with Session(dbm.engine(), expire_on_commit=False) as db:
        return read_upload(db, get_storage(), upload_id)


# Carried over to the receipt ----------------------------------------------------------------------------------

def carry_over(db: Session, receipt_id: int, file_id: int, key: str) -> dict | None:
    """The values of a ReceiptText for the receipt's first file from the reading of the upload it came from
    (the same stored object), or None when that upload was not read (or could not be)."""
    found = db.exec(select(UploadText).join(Upload, Upload.id == UploadText.upload_id)
                    .where(Upload.key == key, Upload.claimed_receipt_id == receipt_id)).first()
    if found is None or found.status == TextStatus.UNREADABLE:
        return None
    return {"file_id": file_id, "status": found.status, "text": found.text, "fields": found.fields,
            "lines": found.lines, "width": found.width, "height": found.height, "engine": found.engine,
            "script": found.script, "confidence": found.confidence, "millis": found.millis}


# What the form shows -----------------------------------------------------------------------------------------

@dataclass
class Suggestion:
    name: str  # the form field it fills
    shown: str  # as the user's language writes it
    value: str  # what goes into the field (amount: digits and "." — the page writes the user's separator)
    crop: str | None  # base64 JPEG


@dataclass
class Suggestions:
    done: bool  # read (or given up): the form stops asking
    items: list[Suggestion]


def _amount(value: str) -> Decimal | None:
    try:
        amount = Decimal(ascii_digits(value))
    except (InvalidOperation, ValueError):
        return None
    return amount if amount > 0 else None


def suggestions(db: Session, row: Upload, asked_since: float, now: float | None = None) -> Suggestions:
    """What to offer for the user's upload (loaded through uploads.services.get_for: 404 for others)."""
    from flask_babel import format_date, format_decimal

    from portal.i18n import amount as money_text
    from portal.receipts.forms import currency_choices

    found = result_of(db, row.id) if wanted(row) and row.status == UploadStatus.READY else None
    if found is None:
        waited = (now or time.time()) - asked_since
        given_up = row.status == UploadStatus.REFUSED or not wanted(row) or waited > POLL_LIMIT
        return Suggestions(done=given_up, items=[])
    fields, crops = found.fields or {}, found.crops or {}
    currency = (fields.get("currency") or {}).get("value") or ""
    currencies = {code for code, _label in currency_choices() if code}
    items = []
    for name in FIELDS:
        value = str((fields.get(name) or {}).get("value") or "").strip()
        if not value:
            continue
        shown = value
        if name == "invoice_date":
            try:
                shown = format_date(date.fromisoformat(ascii_digits(value)))
                value = ascii_digits(value)
            except ValueError:
                continue
        elif name == "amount":
            number = _amount(value)
            if number is None:
                continue
            shown = money_text(number, currency) if currency in currencies else format_decimal(number)
            value = format(number, "f")
        elif name == "currency" and value not in currencies:
            continue
        items.append(Suggestion(name, shown, value[:200], crops.get(name)))
    return Suggestions(done=True, items=items)
