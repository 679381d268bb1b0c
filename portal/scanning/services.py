"""Scanning stored files: the verdict on the row, quarantine of infected files, audit, mail to staff.

Works on receipt files and visit photos alike (both have key, scan_status, scanned_at, scan_signature).
The scan reads the object back from storage, so what is judged is exactly what would be downloaded.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from flask import current_app, has_request_context, render_template, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from portal import audit, mail, tasks
from portal.auth.models import Role, User
from portal.cases.models import Case
from portal.clock import utcnow
from portal.receipts.models import Receipt, ReceiptFile
from portal.receipts.previews import preview_key
from portal.scanning.clamd import ClamdClient, ScanResult, Verdict
from portal.scanning.models import ScanStatus
from portal.storage import CHUNK_SIZE, Storage, StorageError
from portal.visits.models import Visit, VisitPhoto

log = logging.getLogger(__name__)

QUARANTINE_PREFIX = "quarantine"
ScannedRow = ReceiptFile | VisitPhoto


# Configuration and state ---------------------------------------------------------------------------

def enabled() -> bool:
    """Scanning is on when CLAMD_HOST names a clamd."""
    return bool(current_app.config.get("CLAMD_HOST"))


def client() -> ClamdClient | None:
    cfg = current_app.config
    if not enabled():
        return None
    return ClamdClient(cfg["CLAMD_HOST"], int(cfg.get("CLAMD_PORT", 3310)), float(cfg.get("CLAMD_TIMEOUT", 30)))


def initial_status() -> str:
    """The status of a file just uploaded: pending its scan, or unscanned when there is no scanner."""
    return ScanStatus.PENDING if enabled() else ScanStatus.UNSCANNED


def scan_state(row: ScannedRow) -> str:
    """What the interface shows: clean, infected, pending (also an old unscanned file once scanning is on),
    or "" (unscanned, no scanner configured: files behave as they always did)."""
    if row.scan_status == ScanStatus.UNSCANNED:
        return ScanStatus.PENDING if enabled() else ""
    return row.scan_status


def is_cleared(row: ScannedRow) -> bool:
    """Whether the file may be downloaded, previewed and approved."""
    return scan_state(row) in (ScanStatus.CLEAN, "")


def refusal(row: ScannedRow) -> tuple[str, str]:
    """Title and text of the page that refuses a file which is not cleared."""
    if row.scan_status == ScanStatus.INFECTED:
        return (_("File refused: malware found"),
                _("The virus scanner found malware in this file (%(signature)s). It has been quarantined and "
                  "cannot be opened.", signature=row.scan_signature or "?"))
    return (_("Pending virus scan"),
            _("This file has not been checked for viruses yet. It can be opened once the scan has found it "
              "clean. Please try again later."))


# Scanning --------------------------------------------------------------------------------------------

@dataclass
class ScanReport:
    clean: int = 0
    infected: int = 0
    pending: int = 0  # not scanned: scanner or storage unreachable
    errors: list[str] = field(default_factory=list)

    @property
    def scanned(self) -> int:
        return self.clean + self.infected


def _scan_object(storage: Storage, scanner: ClamdClient, key: str) -> ScanResult:
    try:
        with storage.open(key) as fh:
            return scanner.scan_stream(fh)
    except (StorageError, FileNotFoundError) as exc:
        return ScanResult(Verdict.UNREACHABLE, detail=f"storage: {key}: {exc}")


def scan_file(db: Session, storage: Storage, row: ScannedRow, actor: User | None = None,
              scanner: ClamdClient | None = None) -> ScanResult:
    """Scan one stored file and record the verdict. Infected: quarantined, audited, staff told.

    UNREACHABLE leaves the row as it is (pending): a file nobody could scan is never clean.
    """
    scanner = scanner or client()
    if scanner is None:
        return ScanResult(Verdict.UNREACHABLE, detail="scanning is not configured (CLAMD_HOST is empty)")
    result = _scan_object(storage, scanner, row.key)
    if result.verdict is Verdict.UNREACHABLE:
        log.warning("file %s (%s %s) not scanned, stays pending: %s", row.key, type(row).__name__, row.id,
                    result.detail)
        return result
    # Record the verdict only if the file is still waiting: of two scans of one file (the upload's job and
    # the rescan, or a job run twice) exactly one records it, quarantines and mails staff.
    before = row.scan_status
    if not _claim_verdict(db, row, ScanStatus.CLEAN if result.clean else ScanStatus.INFECTED):
        log.info("file %s already judged by another scan", row.key)
        return result
    if result.clean:
        db.commit()
        db.refresh(row)
        return result
    _mark_infected(db, row, actor, result.signature or "?", before)
    _quarantine(db, storage, row, actor)
    return result


def _claim_verdict(db: Session, row: ScannedRow, status: str) -> bool:
    """Set the verdict in one conditional UPDATE (… WHERE scan_status is still waiting); not committed."""
    model = type(row)
    result = db.execute(update(model)
                        .where(model.id == row.id, model.scan_status.in_((ScanStatus.PENDING, ScanStatus.UNSCANNED)))
                        .values(scan_status=status, scanned_at=utcnow(), scan_signature=None)
                        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        db.rollback()
        db.refresh(row)
        return False
    return True


def _mark_infected(db: Session, row: ScannedRow, actor: User | None, signature: str, before_status: str) -> None:
    # First the status, the audit entry and the mails in one commit: from here on nobody can open the file,
    # whatever happens to the quarantine move below.
    before = {"scan_status": before_status, "key": row.key}
    row.scan_status, row.scan_signature, row.scanned_at = ScanStatus.INFECTED, signature[:200], utcnow()
    db.add(row)
    audit.record(db, actor, "file.infected", row, before,
                 {"scan_status": row.scan_status, "signature": row.scan_signature, "key": row.key,
                  "filename": row.original_filename, "sha256": row.sha256})
    _queue_staff_mail(db, row, signature)
    db.commit()
    log.warning("malware %s found in %s (%s %s)", signature, row.key, type(row).__name__, row.id)


def quarantine_key(key: str) -> str:
    return f"{QUARANTINE_PREFIX}/{key}"


def _quarantine(db: Session, storage: Storage, row: ScannedRow, actor: User | None) -> bool:
    """Move the object under quarantine/ (kept for the investigation, outside every readable prefix) and
    remove the readable copy and any preview made from it. Returns whether the move happened."""
    old_key, new_key = row.key, quarantine_key(row.key)
    copied = False
    try:
        with storage.open(old_key) as src, tempfile.SpooledTemporaryFile(max_size=8 * CHUNK_SIZE) as spool:
            while chunk := src.read(CHUNK_SIZE):  # the object may be large: never all of it in memory
                spool.write(chunk)
            spool.seek(0)
            # The copy must be exactly what was judged (and recorded): the backend compares the SHA-256.
            storage.put(new_key, spool, content_type="application/octet-stream", sha256=row.sha256)
        copied = True
    except (StorageError, FileNotFoundError) as exc:
        log.error("could not copy infected %s to quarantine (removing the readable copy anyway): %s", old_key, exc)
    derived = [preview_key(row.id, row.sha256)] if isinstance(row, ReceiptFile) else []
    removed = True
    for key in [old_key, *derived]:
        try:
            storage.delete(key)
        except StorageError as exc:
            removed = False
            log.error("could not remove infected %s (downloads stay refused by its status): %s", key, exc)
    if copied and removed:
        row.key = new_key
    db.add(row)
    audit.record(db, actor, "file.quarantined", row, {"key": old_key},
                 {"key": row.key, "copied": copied, "readable_copy_removed": removed})
    try:
        db.commit()
    except SQLAlchemyError as exc:
        db.rollback()
        log.error("quarantine of %s not recorded (%s); the row stays infected", old_key, exc)
        return False
    return copied and removed


def scan_new(db: Session, storage: Storage, rows: Iterable[ScannedRow], actor: User | None) -> list[ScannedRow]:
    """Put the scan (and the preview) of files just stored and confirmed on the task queue; the upload
    answers at once and the file shows "being checked" until the job has judged it. A queue that cannot
    be reached leaves them pending for the rescan job. Returns the rows (pending, or unscanned)."""
    rows = list(rows)
    for row in rows:
        tasks.enqueue("scan_file", KINDS_BY_MODEL[type(row)], row.id)
    return rows


KINDS: dict[str, type[ReceiptFile] | type[VisitPhoto]] = {"receipt_file": ReceiptFile, "visit_photo": VisitPhoto}
KINDS_BY_MODEL = {model: kind for kind, model in KINDS.items()}


def scan_job(kind: str, row_id: int) -> str:
    """The job: scan one stored file (if a scanner is configured) and make its preview once it is cleared.
    Safe to run twice: a file already judged is not scanned again, and the preview is made once."""
    from portal import db as dbm
    from portal.storage import get_storage

    storage = get_storage()
    with Session(dbm.engine(), expire_on_commit=False) as db:
        row = db.get(KINDS[kind], row_id)
        if row is None or not row.confirmed:
            return "gone"
        verdict = "judged before"
        if enabled() and row.scan_status in (ScanStatus.PENDING, ScanStatus.UNSCANNED):
            verdict = scan_file(db, storage, row).verdict.value
        if isinstance(row, ReceiptFile) and is_cleared(row):
            _make_preview(storage, row)
            _fingerprint_later(row)
        return verdict


def _fingerprint_later(row: ScannedRow) -> None:
    """A receipt's picture, once cleared, is fingerprinted for the near-duplicate check (its own job)."""
    if isinstance(row, ReceiptFile) and row.kind == "receipt" and row.phash is None:
        tasks.enqueue("fingerprint_file", row.id)


def _make_preview(storage: Storage, row: ReceiptFile) -> None:
    from portal.receipts.previews import preview

    try:
        preview(storage, row)
    except Exception as exc:  # noqa: BLE001 - a preview is a convenience: the page makes it when asked
        log.warning("preview of %s not made: %s", row.key, exc)


RESCAN_AFTER = timedelta(minutes=2)  # fresh uploads are their own job's


def rescan_job() -> str:
    """The periodic job (every 10 minutes): scan what is still pending (clamd was down, a worker died)."""
    from portal import db as dbm
    from portal.storage import get_storage

    if not enabled():
        return "scanning is not configured"
    with Session(dbm.engine(), expire_on_commit=False) as db:
        report = rescan(db, get_storage(), older_than=RESCAN_AFTER)
    return f"{report.clean} clean, {report.infected} infected, {report.pending} pending"


def messages_for(rows: Iterable[ScannedRow]) -> tuple[list[str], list[str]]:
    """What the uploader must be told after an upload: (errors for files found infected, warnings). The scan
    runs after the upload on the task queue, so a file just stored is pending ("being checked" on its page,
    which updates itself) and needs no warning; a file known infected is refused."""
    errors: list[str] = []
    for row in rows:
        if row.scan_status == ScanStatus.INFECTED:
            errors.append(_("%(name)s was refused: the virus scanner found malware in it (%(signature)s). The "
                            "file has been quarantined; everything else was saved. Upload a clean copy of the "
                            "file.", name=row.original_filename, signature=row.scan_signature or "?"))
    return errors, []


def pending_rows(db: Session, older_than: timedelta | None = None) -> list[ScannedRow]:
    """Confirmed files still waiting for a scan: pending, and files stored before scanning existed."""
    waiting = (ScanStatus.PENDING, ScanStatus.UNSCANNED)
    cutoff = utcnow() - (older_than or timedelta(0))
    rows: list[ScannedRow] = list(db.exec(select(ReceiptFile).where(ReceiptFile.confirmed.is_(True),
                                                                    ReceiptFile.scan_status.in_(waiting),
                                                                    ReceiptFile.created_at <= cutoff)
                                          .order_by(ReceiptFile.id)))
    rows += list(db.exec(select(VisitPhoto).where(VisitPhoto.confirmed.is_(True), VisitPhoto.scan_status.in_(waiting),
                                                  VisitPhoto.created_at <= cutoff)
                         .order_by(VisitPhoto.id)))
    return rows


def rescan(db: Session, storage: Storage, older_than: timedelta | None = None) -> ScanReport:
    """Scan every file still waiting (for a timer, and when clamd is back). Stops at the first time the
    scanner cannot be reached: the rest are counted as still pending."""
    report = ScanReport()
    scanner = client()
    rows = pending_rows(db, older_than)
    if scanner is None:
        report.pending = len(rows)
        report.errors.append("scanning is not configured (CLAMD_HOST is empty)")
        return report
    for index, row in enumerate(rows):
        result = scan_file(db, storage, row, None, scanner)
        if result.verdict is Verdict.CLEAN:
            report.clean += 1
            _fingerprint_later(row)
        elif result.verdict is Verdict.INFECTED:
            report.infected += 1
        else:
            report.errors.append(result.detail)
            if not result.detail.startswith("storage:"):
                report.pending += len(rows) - index
                break
            report.pending += 1
    return report


# Mail to staff ----------------------------------------------------------------------------------------

def _where(db: Session, row: ScannedRow) -> tuple[Case | None, str, str]:
    """The case, a description of what the file belongs to, and the path of its page."""
    if isinstance(row, ReceiptFile):
        receipt = db.get(Receipt, row.receipt_id)
        case = db.get(Case, receipt.case_id) if receipt else None
        what = _("receipt %(ref)s of case %(case)s", ref=receipt.reference if receipt else "?",
                 case=case.reference if case else "?")
        return case, what, url_for("receipts.show", receipt_id=row.receipt_id)
    visit = db.get(Visit, row.visit_id)
    case = db.get(Case, visit.case_id) if visit else None
    what = _("a visit photo of case %(case)s", case=case.reference if case else "?")
    return case, what, url_for("visits.show", visit_id=row.visit_id)


def _queue_staff_mail(db: Session, row: ScannedRow, signature: str) -> None:
    if not has_request_context():  # the rescan command: links and languages work as in a request to BASE_URL
        with current_app.test_request_context("/", base_url=current_app.config["BASE_URL"]):
            return _queue_staff_mail(db, row, signature)
    staff = db.exec(select(User).where(User.role.in_([Role.STAFF, Role.ADMIN]), User.active.is_(True),
                                       User.password_hash.is_not(None)).order_by(User.id)).all()
    uploader = db.get(User, row.uploaded_by_id) if row.uploaded_by_id else None
    base = current_app.config["BASE_URL"].rstrip("/")
    for person in staff:
        with force_locale(person.locale or current_app.config["BABEL_DEFAULT_LOCALE"]):
            _case, what, path = _where(db, row)
            subject = _("Malware found in an uploaded file (%(what)s)", what=what)
            body = render_template("scanning/mail_infected.txt", row=row, what=what, signature=signature,
                                   uploader=uploader, link=base + path)
        mail.queue(db, person.email, subject, body)
    return None
