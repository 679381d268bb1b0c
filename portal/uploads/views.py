"""Resumable uploads over tus 1.0 (core, creation, termination, expiration) and the card a form lists."""

from __future__ import annotations

from flask import Blueprint, Response, abort, make_response, render_template, request, url_for
from flask_login import current_user, login_required

from portal import db
from portal.cases.services import get_case_for
from portal.security import parse_id
from portal.storage import get_storage
from portal.uploads import services, tus

bp = Blueprint("uploads", __name__, url_prefix="/uploads")


def _answer(status: int, message: str = "", **tus_headers) -> Response:
    response = make_response(message, status)
    response.mimetype = "text/plain"
    return tus.headers(response, **tus_headers)


@bp.before_request
def _check_version():
    """A client speaking another tus version is told which one this server speaks (412)."""
    sent = request.headers.get("Tus-Resumable")
    if request.method != "OPTIONS" and sent is not None and sent != tus.VERSION:
        response = _answer(412, "unsupported tus version")
        response.headers["Tus-Version"] = tus.VERSION
        return response
    return None


def _optional_id(metadata: dict[str, str], name: str) -> int | None:
    value = metadata.get(name, "")
    if not value:
        return None
    found = parse_id(value)  # digits up to the id columns' range: a 20-digit id is "not found", not a 500
    if found is None:
        abort(404)
    return found


@bp.route("/", methods=["OPTIONS"], provide_automatic_options=False)
def options():
    """What this tus server supports."""
    response = _answer(204)
    response.headers.update({"Tus-Version": tus.VERSION, "Tus-Extension": tus.EXTENSIONS,
                             "Tus-Max-Size": str(services.max_bytes())})
    return response


@bp.post("/")
@login_required
def create():
    """Start an upload for one of the user's cases (tus creation)."""
    session = db.session()
    try:
        length = tus.parse_length(request.headers.get("Upload-Length"), "Upload-Length")
        metadata = tus.parse_metadata(request.headers.get("Upload-Metadata"))
    except tus.HeaderProblem as exc:
        return _answer(400, str(exc))
    case_id = _optional_id(metadata, "case")
    if case_id is None:
        return _answer(400, "Upload-Metadata needs the case")
    case = get_case_for(session, current_user, case_id)
    receipt_id, visit_id = _optional_id(metadata, "receipt"), _optional_id(metadata, "visit")
    if receipt_id is not None:
        from portal.receipts.services import get_receipt_for

        if get_receipt_for(session, current_user, receipt_id).case_id != case.id:
            abort(404)
    if visit_id is not None:
        from portal.visits.services import get_visit_for

        if get_visit_for(session, current_user, visit_id).case_id != case.id:
            abort(404)
    try:
        row = services.create(session, get_storage(), current_user, case, length, metadata,
                              receipt_id=receipt_id, visit_id=visit_id)
    except services.UploadProblem as exc:
        return _answer(exc.status, str(exc))
    response = _answer(201, expires=row.expires_at)
    response.headers["Location"] = url_for("uploads.upload", upload_id=row.token)
    return response


@bp.route("/<upload_id>", methods=["HEAD"])
@login_required
def upload(upload_id: str):
    """How far the upload got (tus HEAD)."""
    row = services.get_for(db.session(), current_user, upload_id)
    return _answer(200, offset=row.offset, length=row.length, expires=row.expires_at)


@bp.route("/<upload_id>", methods=["PATCH"])
@login_required
def patch(upload_id: str):
    """Append the body at the offset the server has (tus PATCH)."""
    session = db.session()
    row = services.get_for(session, current_user, upload_id)
    if request.mimetype != tus.OFFSET_TYPE:
        return _answer(415, f"Content-Type must be {tus.OFFSET_TYPE}")
    try:
        offset = tus.parse_length(request.headers.get("Upload-Offset"), "Upload-Offset")
    except tus.HeaderProblem as exc:
        return _answer(400, str(exc))
    try:
        new_offset = services.append(session, get_storage(), row, offset, request.stream, request.content_length)
    except services.UploadProblem as exc:
        return _answer(exc.status, str(exc))
    return _answer(204, offset=new_offset, expires=row.expires_at)


@bp.route("/<upload_id>", methods=["DELETE"])
@login_required
def delete(upload_id: str):
    """Remove the upload and everything stored for it (tus termination)."""
    session = db.session()
    row = services.get_for(session, current_user, upload_id)
    services.terminate(session, get_storage(), row)
    return _answer(204)


@bp.get("/<upload_id>/card")
@login_required
def card(upload_id: str):
    """The upload as an item of the form's upload list: name, size, state, remove button."""
    row = services.get_for(db.session(), current_user, upload_id)
    response = make_response(render_template("uploads/_card.html", upload=row))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.app_template_global()
def file_size(size: int | None) -> str:
    """A file size for people: 820 KB, 3.4 MB (in the user's number format)."""
    from flask_babel import format_decimal

    size = size or 0
    if size < 1024 * 1024:
        return f"{format_decimal(max(1, round(size / 1024)))} KB"
    return f"{format_decimal(round(size / 1024 / 1024, 1), format='#,##0.0')} MB"


@bp.app_template_global()
def upload_problem(row) -> str:
    return services.problem_text(row)


@bp.app_template_global()
def upload_percent(row) -> int:
    return int(row.offset * 100 / row.length) if row.length else 0


@bp.app_template_global()
def upload_max_bytes() -> int:
    return services.max_bytes()
