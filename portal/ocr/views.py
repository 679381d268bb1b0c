"""Text recognition on pages: the new-receipt form's suggestions and the recognised text for staff."""

from __future__ import annotations

import time

from flask import Blueprint, abort, make_response, render_template, request
from flask_login import current_user, login_required

from portal import db
from portal.auth.services import staff_required
from portal.htmx import polled
from portal.ocr import prefill, services
from portal.receipts.services import get_receipt_for
from portal.uploads import services as uploads

bp = Blueprint("ocr", __name__)


@bp.get("/uploads/<upload_id>/suggestions")
@login_required
def suggestions(upload_id: str):
    """What was read on the form's first receipt file, each field with a button that fills it (a fragment the
    form asks for every 2 seconds until the file is read, or for about a minute). The uploader's only: 404."""
    session = db.session()
    row = uploads.get_for(session, current_user, upload_id)
    if row.purpose != "receipt":
        abort(404)
    since = request.args.get("since", type=float)
    since = since if since and since <= time.time() else time.time()
    found = prefill.suggestions(session, row, since)
    if not found.done and "since" in request.args:
        response = make_response("", 204)  # still reading: htmx leaves the page as it is
        response.headers["Cache-Control"] = "no-store"
        return response
    return polled("ocr/_suggestions.html", upload=row, found=found, since=since,
                  poll_seconds=prefill.POLL_SECONDS)


@bp.get("/receipts/<int:receipt_id>/recognised-text")
@staff_required
def text(receipt_id: int):
    """The text read on the receipt's first file (staff; asked for when its box on the page is opened)."""
    session = db.session()
    receipt = get_receipt_for(session, current_user, receipt_id)
    response = make_response(render_template("ocr/_text.html", result=services.result_of(session, receipt.id)))
    response.headers["Cache-Control"] = "no-store"
    return response
