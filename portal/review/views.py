"""The review desk: the queue with its filters, inline decisions, and the random sample audit."""

from __future__ import annotations

import time
from datetime import date
from functools import lru_cache

from flask import Blueprint, abort, current_app, flash, g, make_response, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import DateField, DecimalField, SelectField, StringField, SubmitField
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from portal import db, htmx
from portal.auth.services import staff_required
from portal.clock import utcnow
from portal.forms import AmountField, Finite, Form
from portal.htmx import is_swap, render, trigger
from portal.i18n import locale_name, parse_cents
from portal.receipts import decisions as receipt_decisions
from portal.receipts import errors as receipt_errors
from portal.receipts import services as receipts
from portal.receipts.forms import ReviewForm
from portal.receipts.models import ReceiptStatus
from portal.review import page, services
from portal.review.models import SampleDraw, SampleOutcome
from portal.rules import put_on_form
from portal.security import parse_id
from portal.visits import followup
from portal.visits import services as visits

bp = Blueprint("review", __name__, url_prefix="/review")


@bp.app_context_processor
def _review_globals():
    def review_open_count() -> int:
        if not (current_user.is_authenticated and current_user.is_staff):
            return 0
        return sum(_counts().values())

    def flagged_visits_count() -> int:
        """Flagged visits not yet acknowledged: one of the desk's counts, read in the same statement."""
        if not (current_user.is_authenticated and current_user.is_staff):
            return 0
        return _counts().get(services.VISIT, 0)

    return {"review_open_count": review_open_count, "flagged_visits_count": flagged_visits_count}


def _counts() -> dict[str, int]:
    """The counts per type, once per request (the navigation and the page share them).

    Outside the desk they only feed the navigation's badges, on every staff page: figures up to
    REVIEW_COUNTS_SECONDS old are reused there (the count reads the whole queue, 6-9 ms at 100,000
    receipts). The desk itself always counts afresh and refreshes the kept figures."""
    if "review_counts" not in g:
        kept = current_app.extensions.setdefault("review_counts", {})
        if current_app.config["REVIEW_COUNTS_SECONDS"] > 0 and kept.get("until", 0.0) > time.monotonic():
            g.review_counts = kept["counts"]
        else:
            _remember(services.counts(db.session()))
    return g.review_counts


def _remember(counts: dict[str, int]) -> None:
    g.review_counts = counts
    current_app.extensions["review_counts"] = {
        "counts": counts, "until": time.monotonic() + current_app.config["REVIEW_COUNTS_SECONDS"]}


# Forms ------------------------------------------------------------------------------------------

class QueueFilterForm(Form):
    """The queue's filters: a GET form, so they stay in the URL."""

    class Meta:
        csrf = False

    country = SelectField(_l("Country"), validators=[Optional()], validate_choice=False)
    organisation = SelectField(_l("Organisation"), validators=[Optional()], validate_choice=False)
    case = StringField(_l("Case reference"), validators=[Optional(), Length(max=20)])
    type = SelectField(_l("Type"), validators=[Optional()])
    status = SelectField(_l("Status"), validators=[Optional()])
    warning = SelectField(_l("Warning"), validators=[Optional()])
    age = SelectField(_l("Waiting at least"), validators=[Optional()])
    min_eur = AmountField(_l("EUR from"), validators=[
        Optional(), NumberRange(min=0, message=_l("Enter an amount of 0 or more, like 250 or 250.50"))])
    max_eur = AmountField(_l("EUR up to"), validators=[
        Optional(), NumberRange(min=0, message=_l("Enter an amount of 0 or more, like 250 or 250.50"))])
    sort = SelectField(_l("Sort by"), validators=[Optional()])
    q = StringField(_l("Search receipts"), validators=[Optional(), Length(max=200)],
                    description=_l("Supplier, invoice number, description or translation"))


@lru_cache(maxsize=16)
def _choices(_locale: str) -> dict:
    """The fixed choices of the filters in one language (the catalogs do not change while the process runs;
    WTForms only reads a field's choices)."""
    everything = ("", _("All"))
    t = page.labels()
    return {
        "everything": everything,
        "type": [everything] + [(name, t.types[name]) for name in services.TYPES],
        "status": [everything, ("submitted", _("Waiting for a decision")),
                   ("approved", _("Approved, drawn for a check")), ("flagged", _("Flagged visit"))],
        "warning": [("", _("Any or none"))] + list(t.warnings.items()),
        "age": [("", _("Any time"))] + [(str(d), _("%(num)d days", num=d)) for d in services.AGES],
        "sort": [("oldest", _("Oldest first")), ("newest", _("Newest first")),
                 ("amount_desc", _("Highest EUR amount first")), ("amount_asc", _("Lowest EUR amount first")),
                 ("case", _("Case reference")), ("organisation", _("Organisation"))],
    }


def _filter_form(countries: list[str], orgs: list[tuple[int, str]]) -> tuple[QueueFilterForm, services.QueueFilter]:
    from portal.i18n import country_name

    form = QueueFilterForm(request.args)
    choices = _choices(locale_name())
    everything = choices["everything"]
    form.country.choices = [everything] + [(c, country_name(c)) for c in countries]
    form.organisation.choices = [everything] + [(str(i), name) for i, name in orgs]
    for name in ("type", "status", "warning", "age", "sort"):
        form[name].choices = choices[name]
    form.validate()
    f = services.QueueFilter()

    def ok(field) -> bool:
        return not field.errors and field.data not in (None, "")

    if ok(form.country) and form.country.data in countries:
        f.country = form.country.data
    if ok(form.organisation) and form.organisation.data.isdigit():
        f.organisation_id = int(form.organisation.data)
    if ok(form.case):
        f.case = form.case.data.strip()
    if ok(form.q):
        f.q = form.q.data.strip()
    for name in ("type", "status", "warning", "sort"):
        if ok(getattr(form, name)):
            setattr(f, name, getattr(form, name).data)
    if ok(form.age):
        f.min_age_days = int(form.age.data)
    if ok(form.min_eur):
        f.min_eur_cents = parse_cents(form.min_eur.data)
    if ok(form.max_eur):
        f.max_eur_cents = parse_cents(form.max_eur.data)
    f.after = request.args.get("after", "")[:600]
    return form, f


def filter_args() -> dict[str, str]:
    """The queue's current filters and page, to keep them across a decision."""
    keep = ("country", "organisation", "case", "type", "status", "warning", "age", "min_eur", "max_eur", "sort",
            "q", "after")
    return {k: v for k, v in request.args.items() if k in keep and v}


class DrawForm(Form):
    share = DecimalField(_l("Share to draw"), places=3, default=0.1, validators=[
        Finite(), InputRequired(_l("Enter the share, like 0.1 for a tenth")),
        NumberRange(min=0.001, max=1, message=_l("Enter a share between 0 and 1, like 0.1 for a tenth."))],
        description=_l("A number between 0 and 1: 0.1 draws one in ten of the approved receipts, rounded up."))
    start = DateField(_l("Invoices from"), validators=[InputRequired(_l("Enter the first day of the period"))])
    end = DateField(_l("Invoices up to"), validators=[InputRequired(_l("Enter the last day of the period"))])
    submit = SubmitField(_l("Draw sample"))


# The queue --------------------------------------------------------------------------------------

def _queue(status: int = 200, message: str | None = None, problems: dict | None = None,
           typed: dict | None = None, focus: int | None = None, results: list | None = None):
    session = db.session()
    counts, orgs, countries = services.desk_summary(session)
    _remember(counts)
    form, f = _filter_form(countries, orgs)
    result = services.queue(session, f, counts=counts, viewer_id=current_user.id)
    services.add_details(session, result.items)
    if focus is not None and result.items:
        focus = min(focus, len(result.items) - 1)
    args = filter_args()
    shown = page.shown_items(result.items, args, current_user.id, utcnow(), receipt_decisions.four_eyes_cents(),
                             problems or {}, typed or {})
    return render("review/index.html", "review/_queue.html", status, form=form, f=f, result=result, shown=shown,
                  counts=_counts(), t=page.labels(), args=args, message=message, problems=problems or {},
                  typed=typed or {}, focus=focus, swap=is_swap(), results=results or [],
                  select_field=page.select_field, text_field=page.text_field)


@bp.get("/")
@staff_required
def index():
    """The review desk: everything waiting for staff across every organisation."""
    return _queue()


def _position() -> int:
    raw = request.form.get("position", "0")
    return int(raw) if raw.isdigit() and len(raw) < 6 else 0


def _done(message: str):
    """After a decision: the refreshed queue in place (htmx), or back to the queue (303)."""
    if is_swap():
        g.pop("review_counts", None)
        body, status = _queue(message=message, focus=_position())
        response = make_response(body, status)
        trigger(response, {"reviewQueueChanged": {"open": sum(_counts().values())}})
        return response
    flash(message, "success")
    return redirect(url_for("review.index", **filter_args()), code=303)


def _problem(key: str, message: str, comment: str = ""):
    """A decision that could not be recorded: the queue again, the message on the item, the text kept."""
    if is_swap():
        # No autofocus here: static/js/portal.js moves focus to the error summary after a 422 swap.
        return _queue(422, problems={key: message}, typed={key: comment})
    flash(message, "error")
    return redirect(url_for("review.index", **filter_args()), code=303)


@bp.post("/receipts/<int:receipt_id>/decide")
@staff_required
def decide(receipt_id: int):
    """Approve, reject or send back a receipt from the queue."""
    session = db.session()
    receipt = receipts.get_receipt_for(session, current_user, receipt_id)
    form = ReviewForm()
    key = f"receipt-{receipt.id}"
    comment = form.comment.data or ""
    if not form.validate_on_submit():
        errors = [e for field in form for e in field.errors]
        return _problem(key, errors[0] if errors else _("Choose a decision"), comment)
    # The desk's text box is the reason for a rejection or a correction; it shares the item's one form with
    # Approve, and an approval from the desk carries no comment (the partner would be told it).
    reason = "" if form.decision.data == receipt_decisions.APPROVE else comment
    try:
        kind = receipt_decisions.decide(session, current_user, receipt, form.decision.data, reason, int(form.version.data))
    except receipt_errors.ReceiptError as exc:
        return _problem(key, str(exc), comment)
    messages = {
        "approved": _("Receipt %(ref)s approved.", ref=receipt.reference),
        "first_approval": _("Your approval of %(ref)s is recorded. A second staff member must approve it too.",
                            ref=receipt.reference),
        "rejected": _("Receipt %(ref)s rejected.", ref=receipt.reference),
        "correction_requested": _("Correction of %(ref)s requested. The partner sees your comment on the receipt.",
                                  ref=receipt.reference),
    }
    return _done(messages[kind])


def _selected() -> list[tuple[int, int]]:
    """The ticked receipts as (id, version seen), from values like "12:3"; anything else is ignored."""
    found = []
    for value in request.form.getlist("selected")[:100]:
        receipt_id, _sep, version = value.partition(":")
        if parse_id(receipt_id) is not None and version.isdigit() and len(version) < 9:
            found.append((int(receipt_id), int(version)))
    return found


@bp.post("/approve-selected")
@staff_required
def approve_selected():
    """Approve the ticked receipts that pass every rule; say per receipt what was approved or skipped why."""
    selected = _selected()
    if not selected:
        return _problem("bulk", _("Select the receipts to approve."))
    results = services.approve_selected(db.session(), current_user, selected)
    approved = sum(r.approved for r in results)
    message = _("%(approved)d of %(selected)d selected receipts approved.", approved=approved,
                selected=len(results))
    if is_swap():
        g.pop("review_counts", None)
        body, status = _queue(message=message, results=results, focus=0)
        response = make_response(body, status)
        trigger(response, {"reviewQueueChanged": {"open": sum(_counts().values())}})
        return response
    flash(message, "success")
    for r in results:
        flash(f"{r.reference}: {r.message}", "success" if r.approved else "error")
    return redirect(url_for("review.index", **filter_args()), code=303)


@bp.post("/visits/<int:visit_id>/acknowledge")
@staff_required
def acknowledge(visit_id: int):
    """Acknowledge a flagged visit from the queue, with an optional comment."""
    session = db.session()
    visit = visits.get_visit_for(session, current_user, visit_id)
    comment = request.form.get("comment", "")[:4000]
    try:
        followup.acknowledge(session, current_user, visit, comment)
    except visits.VisitError as exc:
        return _problem(f"visit-{visit.id}", str(exc), comment)
    return _done(_("Visit acknowledged."))


@bp.post("/samples/items/<int:sample_item_id>/check")
@staff_required
def check_sample(sample_item_id: int):
    """Record the second check of a receipt drawn for the sample audit."""
    session = db.session()
    item = services.get_sample_item(session, sample_item_id)
    if item is None:
        abort(404)
    receipt = receipts.get_receipt_for(session, current_user, item.receipt_id)
    comment = request.form.get("comment", "")[:4000]
    try:
        services.check_sample(session, current_user, item, request.form.get("outcome", ""), comment)
    except services.ReviewError as exc:
        return _problem(f"sample-{item.id}", str(exc), comment)
    if item.outcome == SampleOutcome.ISSUE and receipt.status == ReceiptStatus.CORRECTION_REQUESTED:
        return _done(_("Problem found in %(ref)s recorded. The receipt is sent back to the partner for "
                       "correction with your findings.", ref=receipt.reference))
    return _done(_("Sample check of %(ref)s recorded.", ref=receipt.reference))


# Sample audit -----------------------------------------------------------------------------------

def _samples_page(status: int = 200, form: DrawForm | None = None):
    if form is None:
        today = date.today()
        form = DrawForm(formdata=None, start=today.replace(month=1, day=1), end=today)
    return render("review/samples.html", "review/_draw_form.html", status, form=form,
                  draws=services.draws(db.session()))


@bp.route("/samples", methods=["GET", "POST"])
@staff_required
def samples():
    """The random sample audit: draw a share of the approved receipts of a period for a second check."""
    if request.method == "GET":
        return _samples_page()
    form = DrawForm()
    if form.validate_on_submit():
        try:
            draw = services.draw_sample(db.session(), current_user, float(form.share.data), form.start.data,
                                        form.end.data)
        except services.ReviewError as exc:
            put_on_form(form, exc, "share")
        else:
            return htmx.done(url_for("review.sample", draw_id=draw.id),
                             _("%(drawn)d of %(population)d approved receipts drawn for a second check.",
                               drawn=draw.drawn, population=draw.population))
    return _samples_page(422, form)


@bp.get("/samples/<int:draw_id>")
@staff_required
def sample(draw_id: int):
    """One sample draw: the receipts drawn and the outcome of each check."""
    session = db.session()
    draw = session.get(SampleDraw, draw_id)
    if draw is None:
        abort(404)
    return render("review/sample.html", report=services.draw_report(session, draw))
