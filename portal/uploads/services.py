"""Resumable uploads: create, append a piece, finish (today's checks), terminate, claim by a form, sweep.

Staging is shared by every app server: each PATCH body is its own object in the storage backend
(`tus/<upload id>/<offset>-<random>`), listed on the row together with the offset it reached. A PATCH
claims its offset with one conditional UPDATE (`… WHERE offset = expected`), so of two PATCHes at the
same offset exactly one counts; the other removes its piece and answers 409.
"""

from __future__ import annotations

import logging
import secrets
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import BinaryIO

from flask import abort
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, func, select
from werkzeug.exceptions import ClientDisconnected

from portal import tasks
from portal.auth.models import User
from portal.cases.models import Case
from portal.clock import utcnow
from portal.storage import CHUNK_SIZE, Storage, StorageError, new_key, safe_download_name
from portal.uploads.files import JPEG, PNG, WEBP, CleanFile, FileProblem, clean_upload, max_upload_mb, sniff
from portal.uploads.models import Purpose, Upload, UploadStatus

log = logging.getLogger(__name__)

MAX_AGE = timedelta(hours=24)  # an upload nobody claimed is removed after this
MAX_OPEN = 100  # uploads of one user neither claimed nor expired
READ_SIZE = 64 * 1024
SPOOL_SIZE = 8 * 1024 * 1024  # pieces and assembled files larger than this go to a temporary file
# The refusal kept on the row is the English message (the catalog's msgid): shown translated later.
SIZE_MSGID = "The selected file must be smaller than %(size)s MB"
PHOTO_MSGID = "The selected file must be a JPG, PNG or WebP photo."
FAILED_MSGID = "The selected file could not be uploaded – try again"


class UploadProblem(ValueError):
    """The request cannot be honoured; `status` is the HTTP status the view answers with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class Adopted(CleanFile):
    """A completed upload a form claims: already checked and stored under `key` (no second copy)."""

    key: str = ""
    upload_id: int = 0


def max_bytes() -> int:
    return max_upload_mb() * 1024 * 1024


# Loading ----------------------------------------------------------------------------------------

def get_for(db: Session, user: User, token: str, now: datetime | None = None) -> Upload:
    """The user's own upload, unexpired and not yet claimed by a form; 404 for anything else."""
    row = db.exec(select(Upload).where(Upload.token == token[:64], Upload.user_id == user.id)).first()
    if row is None or row.claimed_at is not None or row.expires_at <= (now or utcnow()):
        abort(404)
    return row


# Creation -----------------------------------------------------------------------------------------

def create(db: Session, storage: Storage, user: User, case: Case, length: int, metadata: dict[str, str],
           receipt_id: int | None = None, visit_id: int | None = None) -> Upload:
    """Start an upload of `length` bytes for the case (already loaded for this user)."""
    purpose = metadata.get("purpose", "")
    if purpose not in set(Purpose):
        raise UploadProblem("purpose must be receipt, handover or photo")
    if length > max_bytes():
        raise UploadProblem("Upload-Length exceeds Tus-Max-Size", 413)
    now = utcnow()
    open_uploads = db.exec(select(func.count(Upload.id)).where(
        Upload.user_id == user.id, Upload.claimed_at.is_(None), Upload.expires_at > now)).one()
    if open_uploads >= MAX_OPEN:  # storage is not a dumping ground: forms claim uploads, or they expire
        raise UploadProblem("too many unfinished or unclaimed uploads; remove some first", 429)
    row = Upload(token=secrets.token_urlsafe(24), user_id=user.id, case_id=case.id, receipt_id=receipt_id,
                 visit_id=visit_id, purpose=purpose,
                 filename=safe_download_name(metadata.get("filename") or "upload")[:150],
                 filetype=(metadata.get("filetype") or "")[:100], length=length, created_at=now,
                 expires_at=now + MAX_AGE)
    db.add(row)
    db.commit()
    if length == 0:  # nothing will ever be sent: checked (and refused as empty) right away
        finish(db, storage, row)
    return row


# Appending ----------------------------------------------------------------------------------------

def _read_body(stream: BinaryIO, limit: int) -> tuple[BinaryIO, int]:
    """Read up to limit bytes in pieces; a client that drops the connection keeps what arrived."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_SIZE)  # noqa: SIM115 - returned to the caller
    received = 0
    try:
        while received < limit:
            chunk = stream.read(min(READ_SIZE, limit - received))
            if not chunk:
                break
            spool.write(chunk)
            received += len(chunk)
    except (ClientDisconnected, OSError) as exc:  # the link dropped mid-body
        log.info("upload body cut after %d bytes: %s", received, exc)
    spool.seek(0)
    return spool, received


def append(db: Session, storage: Storage, row: Upload, offset: int, stream: BinaryIO,
           content_length: int | None) -> int:
    """Store the PATCH body as the next piece; returns the new offset. UploadProblem(409/413/…) otherwise."""
    if row.status != UploadStatus.INCOMPLETE:
        raise UploadProblem("the upload is complete", 409)
    if offset != row.offset:
        raise UploadProblem("Upload-Offset does not match the server's offset", 409)
    remaining = row.length - row.offset
    if content_length is not None and content_length > remaining:
        raise UploadProblem("the body goes beyond Upload-Length", 413)
    body, received = _read_body(stream, remaining)
    with body:
        if received == 0:
            return row.offset
        piece = f"tus/{row.id}/{offset:012d}-{secrets.token_hex(4)}"
        try:
            storage.put(piece, body, content_type="application/octet-stream")
        except StorageError as exc:
            log.warning("upload piece %s not stored: %s", piece, exc)
            raise UploadProblem("the storage could not keep the piece; try again", 503) from None
    pieces = [*row.pieces, piece]
    result = db.exec(update(Upload).where(Upload.id == row.id, Upload.offset == offset,
                                          Upload.status == UploadStatus.INCOMPLETE)
                     .values(offset=offset + received, pieces=pieces)
                     .execution_options(synchronize_session=False))
    db.commit()
    if result.rowcount != 1:  # another PATCH at the same offset won
        _delete_quietly(storage, [piece])
        raise UploadProblem("another request moved the offset on", 409)
    db.refresh(row)
    if row.offset == row.length:
        finish(db, storage, row)
    return row.offset


def _delete_quietly(storage: Storage, keys: Iterable[str]) -> list[str]:
    """Delete what can be deleted; returns the keys that could not (the sweep takes them)."""
    left = []
    for key in keys:
        try:
            storage.delete(key)
        except StorageError as exc:
            log.warning("could not remove %s (the sweep will): %s", key, exc)
            left.append(key)
    return left


# Finishing ----------------------------------------------------------------------------------------

def _assemble(storage: Storage, pieces: list[str]) -> BinaryIO:
    out = tempfile.SpooledTemporaryFile(max_size=SPOOL_SIZE)  # noqa: SIM115 - returned to the caller
    for key in pieces:
        with storage.open(key) as fh:
            while chunk := fh.read(CHUNK_SIZE):
                out.write(chunk)
    out.seek(0)
    return out


def _check(row: Upload, data: BinaryIO) -> CleanFile:
    if row.purpose == Purpose.PHOTO:  # as the photo form: photos only, no PDFs or HEIC
        head = data.read(32)
        data.seek(0)
        if sniff(head) not in (JPEG, PNG, WEBP):
            raise FileProblem(PHOTO_MSGID)
    return clean_upload(row.filename, data)


def _refuse(db: Session, row: Upload, message: str, args: dict | None = None) -> None:
    row.status, row.problem, row.problem_args = UploadStatus.REFUSED, message[:500], args
    row.key = None
    db.add(row)
    db.commit()


def finish(db: Session, storage: Storage, row: Upload) -> None:
    """The upload is complete: run today's checks, store the cleaned file once, drop the pieces."""
    try:
        data = _assemble(storage, row.pieces)
    except (StorageError, FileNotFoundError) as exc:
        log.warning("upload %s could not be assembled: %s", row.id, exc)
        _refuse(db, row, FAILED_MSGID)
        _delete_quietly(storage, row.pieces)
        return
    with data:
        try:
            with force_locale("en"):  # the refusal is kept as its msgid and shown in the reader's language
                clean = _check(row, data)
        except FileProblem as exc:
            message, args = str(exc), None
            with force_locale("en"):
                if message == _(SIZE_MSGID, size=max_upload_mb()):
                    message, args = SIZE_MSGID, {"size": max_upload_mb()}
            _refuse(db, row, message, args)
            _delete_quietly(storage, row.pieces)
            return
        prefix = f"visits/{row.case_id}" if row.purpose == Purpose.PHOTO else f"receipts/{row.case_id}"
        row.key = new_key(prefix)
        db.add(row)
        db.commit()  # the intent: the key is known (and kept by the sweeps) before the object exists
        try:
            stored = storage.put(row.key, clean.data, content_type=clean.content_type, sha256=clean.sha256,
                                 md5=clean.md5 or None)
        except StorageError as exc:
            log.warning("upload %s: the checked file could not be stored: %s", row.id, exc)
            _delete_quietly(storage, [row.key])
            _refuse(db, row, FAILED_MSGID)
            _delete_quietly(storage, row.pieces)
            return
    row.status, row.size, row.sha256 = UploadStatus.READY, stored.size, stored.sha256
    row.original_sha256, row.content_type = clean.original_sha256, clean.content_type
    row.filename, row.metadata_removed = clean.filename, clean.metadata_removed
    pieces, row.pieces = row.pieces, []
    db.add(row)
    db.commit()
    _delete_quietly(storage, pieces)
    if row.purpose == Purpose.RECEIPT and row.receipt_id is None:  # the new-receipt form's suggestions
        tasks.enqueue("read_upload", row.id)  # (portal/ocr/prefill.py), read on the task queue


def problem_text(row: Upload) -> str:
    """The refusal in the current user's language."""
    if not row.problem:
        return ""
    return _(row.problem, **(row.problem_args or {}))


# Termination ------------------------------------------------------------------------------------

def terminate(db: Session, storage: Storage, row: Upload) -> None:
    """Remove the upload: its pieces, its stored file, its row."""
    left = _delete_quietly(storage, [*row.pieces, *([row.key] if row.key else [])])
    if left:  # keep the row so the sweep still knows the objects; expired now
        row.expires_at = utcnow()
        db.add(row)
    else:
        db.delete(row)
    db.commit()


# Claiming by a form -------------------------------------------------------------------------------

@dataclass
class Resolved:
    rows: list[Upload]
    problems: list[str]


def resolve(db: Session, user: User, case_id: int, tokens: Iterable[str],
            purposes: Iterable[str] = tuple(Purpose), now: datetime | None = None) -> Resolved:
    """The form's upload tokens → this user's ready, unexpired, unclaimed uploads for this case.

    Anything else is left out with a message (never another user's file: it is simply not found).
    """
    now = now or utcnow()
    wanted = list(dict.fromkeys(t[:64] for t in tokens if t))
    rows, problems = [], []
    found = {r.token: r for r in db.exec(select(Upload).where(Upload.token.in_(wanted), Upload.user_id == user.id,
                                                              Upload.case_id == case_id))} if wanted else {}
    for token in wanted:
        row = found.get(token)
        if row is None or row.claimed_at is not None or row.expires_at <= now or row.purpose not in purposes:
            problems.append(_("An uploaded file is no longer available (it was removed, used already or "
                              "kept for more than 24 hours). Choose it again."))
        elif row.status == UploadStatus.REFUSED:
            problems.append(_("%(name)s: %(problem)s", name=row.filename, problem=problem_text(row)))
        elif row.status != UploadStatus.READY:
            problems.append(_("%(name)s has not finished uploading. Wait until it is complete, then send the "
                              "form again.", name=row.filename))
        else:
            rows.append(row)
    return Resolved(rows, list(dict.fromkeys(problems)))


def listed(db: Session, user: User, case_id: int, tokens: Iterable[str]) -> list[Upload]:
    """Uploads to show again as cards when a form comes back with an error (any still valid status)."""
    wanted = list(dict.fromkeys(t[:64] for t in tokens if t))
    if not wanted:
        return []
    now = utcnow()
    rows = db.exec(select(Upload).where(Upload.token.in_(wanted), Upload.user_id == user.id,
                                        Upload.case_id == case_id, Upload.claimed_at.is_(None))).all()
    order = {t: i for i, t in enumerate(wanted)}
    return sorted((r for r in rows if r.expires_at > now), key=lambda r: order[r.token])


def adopted(row: Upload) -> Adopted:
    return Adopted(data=None, size=row.size or 0, sha256=row.sha256,  # type: ignore[arg-type]
                   original_sha256=row.original_sha256, content_type=row.content_type, filename=row.filename,
                   metadata_removed=row.metadata_removed, key=row.key or "", upload_id=row.id)


def claim(db: Session, upload_ids: list[int], *, receipt_id: int | None = None,
          visit_id: int | None = None) -> bool:
    """Mark uploads as claimed in the caller's transaction (not committed here). False if any was claimed,
    removed or expired meanwhile: the caller rolls back."""
    now = utcnow()
    for upload_id in upload_ids:
        result = db.exec(update(Upload).where(Upload.id == upload_id, Upload.claimed_at.is_(None),
                                              Upload.status == UploadStatus.READY, Upload.expires_at > now)
                         .values(claimed_at=now, claimed_receipt_id=receipt_id, claimed_visit_id=visit_id)
                         .execution_options(synchronize_session=False))
        if result.rowcount != 1:
            return False
    return True


def release(db: Session, upload_ids: list[int]) -> None:
    """Undo a claim whose receipt or photo could not be saved (the upload can be used again)."""
    if not upload_ids:
        return
    try:
        db.exec(update(Upload).where(Upload.id.in_(upload_ids))
                .values(claimed_at=None, claimed_receipt_id=None, claimed_visit_id=None)
                .execution_options(synchronize_session=False))
        db.commit()
    except SQLAlchemyError as exc:
        db.rollback()
        log.warning("uploads %s stay claimed after a failure: %s", upload_ids, exc)


# Sweep ------------------------------------------------------------------------------------------

def kept_keys(db: Session) -> set[str]:
    """Stored keys that belong to upload rows: the receipts' and visits' sweeps must not take them."""
    return set(db.exec(select(Upload.key).where(Upload.key.is_not(None))).all())


@dataclass
class SweepReport:
    expired: int = 0
    claimed: int = 0
    orphans: int = 0
    errors: list[str] | None = None


def sweep(db: Session, storage: Storage, now: datetime | None = None) -> SweepReport:
    """Remove expired uploads nobody claimed (pieces, stored file, row), rows of claimed uploads past their
    expiry (their file belongs to a receipt or visit now), and pieces no row lists."""
    now = now or utcnow()
    report = SweepReport(errors=[])
    for row in db.exec(select(Upload).where(Upload.expires_at <= now)).all():
        if row.claimed_at is None:
            left = _delete_quietly(storage, [*row.pieces, *([row.key] if row.key else [])])
            if left:
                report.errors.extend(f"could not remove {key}" for key in left)
                continue
            report.expired += 1
        else:
            report.claimed += 1
        db.delete(row)
        db.commit()
    try:
        listed_keys = list(storage.keys("tus/"))
    except StorageError as exc:
        report.errors.append(str(exc))
        return report
    # Listed first, then read: a piece's row exists before the piece is stored, so a piece of a PATCH
    # still running belongs to a live row and stays; pieces of rows gone (removed above) are orphans.
    known = {key for pieces in db.exec(select(Upload.pieces)).all() for key in pieces}
    live = {row_id for row_id in db.exec(select(Upload.id)).all()}
    for key in listed_keys:
        parts = key.split("/")
        if key in known or (len(parts) == 3 and parts[1].isdigit() and int(parts[1]) in live):
            continue
        try:
            storage.delete(key)
            report.orphans += 1
        except StorageError as exc:
            report.errors.append(str(exc))
    return report
