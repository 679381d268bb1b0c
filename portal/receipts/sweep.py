"""The hourly sweep: upload intents never confirmed, and stored objects no row refers to."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session, select

from portal.clock import utcnow
from portal.receipts.models import (
    Receipt,
    ReceiptFile,
    ReceiptStatus,
)
from portal.storage import Storage, StorageError
from portal.uploads import services as uploads

log = logging.getLogger(__name__)


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
