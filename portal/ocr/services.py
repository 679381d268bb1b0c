"""Text recognition of receipts: the jobs that read a receipt's first file, and what other features ask.

For other features (prefill, search, near-duplicates):
- `text_of(db, receipt_id)` → the recognised text, or None (not read yet, or nothing to read);
- `fields_of(db, receipt_id)` → {"supplier"|"invoice_number"|"invoice_date"|"amount"|"currency":
  {"value", "box", "line"}} (only the fields found), or None when not read yet; `page_of` gives the size
  the boxes refer to;
- `result_of(db, receipt_id)` → the ReceiptText row itself;
- `read_stored(storage, key, content_type)` → (Page | None, fields) for any stored file, e.g. a
  completed upload before its receipt exists (no database involved).
These take ids, not users: the caller has found the receipt through `receipts.services.get_receipt_for`
(the organisation's scope) first, or uses `fields_for(db, user, receipt_id)`, which does.

Jobs (portal/tasks.py): `read_receipt(receipt_id)` after a receipt's files are confirmed, and the
periodic `ocr_catchup`, which reads receipts whose text is missing (a worker died, the scan was still
pending, tesseract was installed later). Both are safe to run twice: one row per receipt, updated in place.
A file is read only once the virus scanner has cleared it (as for previews).
"""

from __future__ import annotations

import logging
import time

from sqlmodel import Session, select

from portal import db as dbm
from portal import tasks
from portal.ocr import engine, prefill
from portal.ocr.fields import as_values, extract
from portal.ocr.models import ReceiptText, TextStatus
from portal.receipts.models import FileKind, Receipt, ReceiptFile, ReceiptStatus
from portal.scanning import services as scanning
from portal.scanning.models import ScanStatus
from portal.storage import Storage, StorageError

log = logging.getLogger(__name__)

CATCHUP_BATCH = 20  # receipts read per catch-up run (at most about a minute of a worker)
MAX_TEXT = 20_000  # characters of text kept


# What other features ask ---------------------------------------------------------------------------------

def result_of(db: Session, receipt_id: int) -> ReceiptText | None:
    return db.exec(select(ReceiptText).where(ReceiptText.receipt_id == receipt_id)).first()


def text_of(db: Session, receipt_id: int) -> str | None:
    row = result_of(db, receipt_id)
    return row.text if row is not None and row.text else None


def fields_of(db: Session, receipt_id: int) -> dict | None:
    row = result_of(db, receipt_id)
    return dict(row.fields) if row is not None else None


def page_of(db: Session, receipt_id: int) -> tuple[int, int] | None:
    """(width, height) the boxes of fields_of() refer to."""
    row = result_of(db, receipt_id)
    return (row.width, row.height) if row is not None else None


def fields_for(db: Session, user, receipt_id: int) -> dict | None:
    """fields_of() for a user: 404 when the receipt is not in the user's scope (as everywhere)."""
    from portal.receipts.services import get_receipt_for

    receipt = get_receipt_for(db, user, receipt_id)
    return fields_of(db, receipt.id)


def read_stored(storage: Storage, key: str, content_type: str) -> tuple[engine.Page | None, dict]:
    """Read any stored file: (the page, or None when it cannot be read here, and its fields)."""
    with storage.open(key) as fh:
        page = engine.recognise(fh, content_type)
    return page, (extract(page) if page is not None else {})


def queue(receipt_id: int) -> bool:
    """Put the reading of a receipt on the task queue (after its files are confirmed)."""
    return tasks.enqueue("read_receipt", receipt_id)


# The work ---------------------------------------------------------------------------------------------------

def first_file(db: Session, receipt_id: int) -> ReceiptFile | None:
    return db.exec(select(ReceiptFile).where(ReceiptFile.receipt_id == receipt_id, ReceiptFile.confirmed.is_(True),
                                             ReceiptFile.kind == FileKind.RECEIPT)
                   .order_by(ReceiptFile.id)).first()


def _readable(row: ReceiptFile) -> bool:
    if row.content_type == "application/pdf":
        return True
    return row.content_type.startswith("image/") and engine.available()


def read_receipt(db: Session, storage: Storage, receipt_id: int, force: bool = False) -> str:
    """Read the receipt's first file and keep what was found. Returns what happened, in a word or two."""
    receipt = db.get(Receipt, receipt_id)
    if receipt is None or receipt.status == ReceiptStatus.PENDING:
        return "gone"
    row = first_file(db, receipt_id)
    if row is None:
        return "no file"
    existing = result_of(db, receipt_id)
    if existing is not None and existing.file_id == row.id and not force:
        return "read before"
    if row.scan_status == ScanStatus.INFECTED:
        return "infected"
    if not scanning.is_cleared(row):
        return "waiting for the scan"  # the catch-up reads it once cleared
    taken = prefill.carry_over(db, receipt_id, row.id, row.key) if existing is None or existing.file_id != row.id else None
    if taken is not None:  # the form's upload was read for its suggestions: no second reading
        _upsert(db, receipt_id, taken)
        return f"{taken['status']} (from the upload)"
    if not _readable(row):
        return "no reader"  # not a picture or PDF, or no tesseract for a picture
    started = time.monotonic()
    status = TextStatus.READ
    try:
        page = read_stored(storage, row.key, row.content_type)[0]
    except StorageError:
        raise  # the storage cannot be reached: the queue retries, the catch-up reads it later
    except Exception as exc:  # noqa: BLE001 - a file pdfium/Pillow/tesseract cannot read: recorded, not retried
        log.warning("receipt %s: file %s not readable: %s", receipt_id, row.id, exc)
        page = None
        status = TextStatus.UNREADABLE
    fields = extract(page) if page is not None else {}
    text = page.text[:MAX_TEXT] if page is not None else ""
    if status == TextStatus.READ and not text.strip():
        status = TextStatus.EMPTY
    values = {
        "file_id": row.id, "status": status, "text": text, "fields": fields,
        **engine.stored(page, started),
    }
    _upsert(db, receipt_id, values)
    found = ", ".join(f"{k}={v}" for k, v in as_values(fields).items())
    return f"{status}: {found}" if found else str(status)


def _upsert(db: Session, receipt_id: int, values: dict) -> None:
    dbm.upsert(db, lambda: result_of(db, receipt_id), lambda: ReceiptText(receipt_id=receipt_id), values,
               f"receipt text of {receipt_id}")


def missing(db: Session, limit: int = CATCHUP_BATCH) -> list[int]:
    """Receipts (submitted, newest first) whose first file has not been read yet and may be read now."""
    read = select(ReceiptText.receipt_id)
    candidates = db.exec(select(ReceiptFile).join(Receipt, Receipt.id == ReceiptFile.receipt_id)
                         .where(Receipt.status != ReceiptStatus.PENDING, ReceiptFile.confirmed.is_(True),
                                ReceiptFile.kind == FileKind.RECEIPT,
                                ReceiptFile.scan_status != ScanStatus.INFECTED,
                                ReceiptFile.receipt_id.not_in(read))
                         .order_by(ReceiptFile.receipt_id.desc(), ReceiptFile.id)
                         .limit(limit * 4)).all()
    ids: list[int] = []
    seen: set[int] = set()
    for row in candidates:
        if row.receipt_id in seen:
            continue
        seen.add(row.receipt_id)  # only the first file of each receipt counts
        if scanning.is_cleared(row) and _readable(row):
            ids.append(row.receipt_id)
        if len(ids) >= limit:
            break
    return ids


# Jobs --------------------------------------------------------------------------------------------------------

def read_job(receipt_id: int) -> str:
    """The job: read one receipt's first file (safe to run twice: a receipt is read once per first file)."""
    from portal.storage import get_storage

    with Session(dbm.engine(), expire_on_commit=False) as db:
        return read_receipt(db, get_storage(), receipt_id)


def catchup_job() -> str:
    """The periodic job (every 10 minutes): read receipts whose text is missing, a batch at a time."""
    from portal.storage import get_storage

    storage = get_storage()
    with Session(dbm.engine(), expire_on_commit=False) as db:
        ids = missing(db)
        for receipt_id in ids:
            read_receipt(db, storage, receipt_id)
    return f"{len(ids)} read"
