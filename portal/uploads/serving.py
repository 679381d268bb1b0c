"""Handing out a stored file (receipt file, visit photo): the one place that checks the virus scan, writes
the audit entry for staff downloads and answers 503 when storage fails."""

from __future__ import annotations

from flask import abort
from sqlmodel import Session

from portal import audit
from portal.errors import error_page
from portal.scanning import services as scanning
from portal.storage import StorageError, get_storage


def refused(row):
    """409 with the reason: the file is waiting for its virus scan, or was quarantined as infected."""
    title, text = scanning.refusal(row)
    return error_page(409, title, text), 409, {"Cache-Control": "no-store"}


def download(db: Session, actor, row, action: str, **about):
    """The file as an attachment (never inline from the portal's origin), once its scan cleared it; 409
    with the reason otherwise. A staff download is written to the audit log (`action`, with `about`)
    before the file is handed out. A row without a scan status (a rate file staff imported, read and
    checked line by line) is handed out as it is."""
    if hasattr(row, "scan_status") and not scanning.is_cleared(row):  # waiting for its scan, or infected
        return refused(row)
    if actor.is_staff:
        audit.record(db, actor, action, row, after={**about, "key": row.key, "sha256": row.sha256})
        db.commit()
    try:
        return get_storage().download_response(row.key, filename=row.original_filename,
                                               content_type=row.content_type)
    except (StorageError, FileNotFoundError):
        abort(503)
