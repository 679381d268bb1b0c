"""Visits: the visit form with its server-side draft, one visit with staff follow-up, the due list,
the staff queue of flagged visits, and the visits part of the case page."""

from __future__ import annotations

from datetime import UTC, date, datetime

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask_babel import format_time, ngettext
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.datastructures import MultiDict

from portal import db, htmx
from portal.auth.services import staff_required
from portal.cases.services import get_case_for
from portal.forms import device_draft_done, device_draft_key
from portal.htmx import is_swap, polled, render
from portal.orgs import services as orgs
from portal.rules import put_on_form, put_problems
from portal.scanning import services as scanning
from portal.uploads import services as uploads
from portal.uploads import serving
from portal.visits import drafts, followup, photos, services
from portal.visits.due import DUE_SOON_DAYS, due_page
from portal.visits.forms import LABELS, AcknowledgeForm, CommentForm, PhotoForm, VisitForm

bp = Blueprint("visits", __name__)


@bp.app_context_processor
def _visit_globals():
    # The navigation's count of flagged visits comes with the review desk's counts (portal.review).
    return {"visit_labels": LABELS, "format_time": format_time}


# Recording a visit ------------------------------------------------------------------------------

def _form_context(case, form, draft=None, restored=False):
    receipts = services.receipts_of_case(db.session(), case)
    source = request.form if request.method == "POST" else MultiDict(draft.data if draft else {})
    goods = {r.id: source.get(f"goods_{r.id}", "") for r in receipts}
    return {"case": case, "form": form, "draft": draft, "restored": restored, "receipts": receipts,
            "goods": goods, "device_draft": device_draft_key("visit", case.id),
            "draft_saved_ms": _epoch_ms(draft.updated_at) if draft else 0}


def _epoch_ms(moment: datetime) -> int:
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)


@bp.route("/cases/<int:case_id>/visits/new", methods=["GET", "POST"])
@login_required
def create(case_id: int):
    """Record a visit on a case; a draft saved earlier is restored."""
    session = db.session()
    case = get_case_for(session, current_user, case_id)
    if request.method == "GET":
        draft = drafts.latest_draft(session, current_user, case)
        form = VisitForm(formdata=MultiDict(draft.data) if draft else None)
        form.draft_key.data = draft.key if draft else drafts.new_draft_key()
        if draft is None:
            form.visit_date.data = date.today()  # most visits are recorded on the day
        return render("visits/new.html", "visits/_form.html", **_form_context(case, form, draft, bool(draft)))

    form = VisitForm()
    key = form.draft_key.data or ""
    if not drafts.valid_key(key):
        abort(400)
    done = drafts.visit_by_key(session, key)
    if done is None and form.validate_on_submit():
        try:
            # A flagged concern's mails go to the task queue when the visit commits.
            done, _created = services.create_visit(session, current_user, case, key,
                                                   services.data_from_form(form, request.form))
        except services.VisitError as exc:
            put_problems(form, exc.problems, "visit_date")
    elif done is None:
        # The cross-field rules too, for what the form could read: one answer lists every problem.
        data = services.data_from_form(form, request.form)
        problems = services.visit_problems(data, date.today(), met_known=form.returnee_met.data in ("yes", "no"))
        put_problems(form, problems, "visit_date")
    if done is not None:
        if done.case_id != case.id:
            abort(404)
        device_draft_done(device_draft_key("visit", case.id))
        return htmx.done(url_for("visits.show", visit_id=done.id), _("The visit is saved."))
    return render("visits/new.html", "visits/_form.html", 422, **_form_context(case, form))


@bp.post("/cases/<int:case_id>/visits/draft")
@login_required
def save_draft(case_id: int):
    """Autosave: keep what the visit form holds now; answer with the small status line."""
    session = db.session()
    case = get_case_for(session, current_user, case_id)
    key = request.form.get("draft_key", "")
    if not drafts.valid_key(key):
        abort(400)
    draft = drafts.save_draft(session, current_user, case, key, request.form)
    return render("visits/_draft_status.html", draft=draft,
                  submitted=draft is None)


@bp.post("/cases/<int:case_id>/visits/draft/discard")
@login_required
def discard_draft(case_id: int):
    """Throw the saved draft away and start an empty form."""
    session = db.session()
    case = get_case_for(session, current_user, case_id)
    key = request.form.get("draft_key", "")
    if drafts.valid_key(key):
        drafts.discard_draft(session, current_user, case, key)
    device_draft_done(device_draft_key("visit", case.id))  # and the device's copy
    flash(_("The draft is discarded."), "info")
    return redirect(url_for("visits.create", case_id=case.id), code=303)


# One visit and its follow-up --------------------------------------------------------------------

def _followup_context(visit, comment_form=None, ack_form=None):
    session = db.session()
    return {"visit": visit, "comments": followup.comments_of(session, visit),
            "comment_form": comment_form or CommentForm(formdata=None, prefix="comment"),
            "ack_form": ack_form or AcknowledgeForm(formdata=None, prefix="ack")}


def _visit_page(visit, status=200, photo_form=None, **ctx):
    session = db.session()
    case = get_case_for(session, current_user, visit.case_id)
    if request.method == "POST":  # a form error keeps the photos already uploaded
        ctx.setdefault("upload_cards", uploads.listed(session, current_user, case.id, request.form.getlist("uploads")))
    names = services.user_names(session, [visit.created_by_id, visit.acknowledged_by_id])
    return render("visits/show.html", "visits/_followup.html", status, case=case, names=names,
                  organisation=orgs.get_org(session, case.organisation_id),
                  receipts={r.id: r.label for r in services.receipts_of_case(session, case)},
                  photos=photos.photos_of(session, visit), photo_form=photo_form or PhotoForm(formdata=None),
                  **{**_followup_context(visit), **ctx})


@bp.get("/visits/<int:visit_id>")
@login_required
def show(visit_id: int):
    """Show one visit with its staff comments and photos."""
    return _visit_page(services.get_visit_for(db.session(), current_user, visit_id))


@bp.get("/visits/<int:visit_id>/photos-list")
@login_required
def photos_part(visit_id: int):
    """The visit's photo list alone: the page asks for it every few seconds while a photo is being checked."""
    session = db.session()
    visit = services.get_visit_for(session, current_user, visit_id)
    return polled("visits/_photos.html", visit=visit, photos=photos.photos_of(session, visit))


def _followup_done(visit, message: str):
    if is_swap():
        return render("visits/_followup.html", message=message,
                      **_followup_context(visit))
    flash(message, "success")
    return redirect(url_for("visits.show", visit_id=visit.id, _anchor="followup"), code=303)


@bp.post("/visits/<int:visit_id>/comments")
@staff_required
def comment(visit_id: int):
    """Add a staff comment to a visit."""
    visit = services.get_visit_for(db.session(), current_user, visit_id)
    form = CommentForm(prefix="comment")
    if form.validate_on_submit():
        try:
            followup.add_comment(db.session(), current_user, visit, form.body.data or "")
        except services.VisitError as exc:
            put_on_form(form, exc, field="body")
        else:
            return _followup_done(visit, _("Comment added."))
    return _visit_page(visit, 422, comment_form=form)


@bp.post("/visits/<int:visit_id>/acknowledge")
@staff_required
def acknowledge(visit_id: int):
    """Mark a visit as seen by staff, with an optional comment."""
    visit = services.get_visit_for(db.session(), current_user, visit_id)
    form = AcknowledgeForm(prefix="ack")
    if form.validate_on_submit():
        try:
            followup.acknowledge(db.session(), current_user, visit, form.body.data or "")
        except services.VisitError as exc:
            put_on_form(form, exc, field="body")
        else:
            return _followup_done(visit, _("Visit acknowledged."))
    return _visit_page(visit, 422, ack_form=form)


@bp.post("/visits/<int:visit_id>/photos")
@login_required
def add_photo(visit_id: int):
    """Add a photo to a visit (stored without EXIF or location), with the returnee's consent."""
    session = db.session()
    visit = services.get_visit_for(session, current_user, visit_id)
    form = PhotoForm()
    upload = request.files.get("photo")
    if form.validate_on_submit():
        resolved = uploads.resolve(session, current_user, visit.case_id, request.form.getlist("uploads"), ("photo",))
        if resolved.problems:
            form.photo.errors.extend(resolved.problems)
        elif resolved.rows and not (upload and upload.filename):
            try:
                items = photos.add_uploaded_photos(session, current_user, visit, resolved.rows,
                                                   bool(form.consent.data))
            except services.VisitError as exc:
                put_on_form(form, exc, "photo")
            else:
                return _photos_done(visit, form, items)
        elif upload is None or not upload.filename:
            form.photo.errors.append(_("Choose a photo."))
        else:
            try:
                item = photos.add_photo(session, current_user, visit, upload.filename, upload.stream,
                                        bool(form.consent.data))
            except services.VisitError as exc:
                put_on_form(form, exc, "photo")
            else:
                return _photos_done(visit, form, [item])
    return _visit_page(visit, 422, photo_form=form)


def _photos_done(visit, form, items):
    refused, pending = scanning.messages_for(items)
    if refused and len(refused) == len(items):  # quarantined: the form says why, like any other refused file
        form.photo.errors.extend(refused)
        return _visit_page(visit, 422, photo_form=form)
    return htmx.done(url_for("visits.show", visit_id=visit.id, _anchor="photos"), _("Photo added."),
                     warnings=refused + pending)


@bp.get("/visits/<int:visit_id>/photos/<int:photo_id>")
@login_required
def photo(visit_id: int, photo_id: int):
    """Download a visit photo."""
    session = db.session()
    visit, item = services.get_photo_for(session, current_user, visit_id, photo_id)
    return serving.download(session, current_user, item, "visit_photo.downloaded", visit_id=visit.id)


# Lists ------------------------------------------------------------------------------------------

@bp.get("/visits/due")
@login_required
def due():
    """Cases whose next visit is overdue or due soon: partners their organisation's, staff all."""
    raw = request.args.get("page", "1")
    result = due_page(db.session(), current_user, date.today(),
                      int(raw) if raw.isdigit() and len(raw) < 7 else 1)
    # "5 days": one text for each number of days on the page, not an ngettext call per row.
    day_texts = {n: ngettext("%(num)s day", "%(num)s days", n) for n in {r.days for r in result.rows}}
    return render("visits/due.html", result=result,
                  overdue=[r for r in result.rows if r.overdue], soon=[r for r in result.rows if not r.overdue],
                  soon_days=DUE_SOON_DAYS, day_texts=day_texts)


@bp.get("/visits/flagged")
@staff_required
def flagged():
    """The staff queue: visits with a vulnerability or protection concern not yet acknowledged."""
    show_all = request.args.get("show") == "all"
    rows = followup.flagged_visits(db.session(), include_acknowledged=show_all)
    return render("visits/flagged.html", rows=rows, show_all=show_all)
