"""Cases: the list, one case with its budget, and the staff's create/edit/assign screens."""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from markupsafe import Markup

from portal import db
from portal.auth.services import admin_required, staff_required
from portal.cases import privacy, services, timeline
from portal.cases.forms import BudgetLineForm, CaseForm, CountryRuleForm, EraseForm, StatusForm
from portal.htmx import is_swap, render
from portal.i18n import is_country, parse_cents
from portal.layout import keep, url_pattern
from portal.orgs import services as orgs
from portal.receipts import services as receipts
from portal.rules import put_on_form
from portal.security import parse_id
from portal.storage import StorageError, get_storage
from portal.visits import services as visits
from portal.visits.forms import plain_labels

bp = Blueprint("cases", __name__, url_prefix="/cases")


def _filter_from_args() -> services.CaseFilter:
    args = request.args
    org = args.get("organisation", "")
    page = args.get("page", "1")
    return services.CaseFilter(q=args.get("q", "")[:100], status=args.get("status", ""),
                               country=args.get("country", "")[:2],
                               organisation_id=parse_id(org),
                               page=int(page) if page.isdigit() and len(page) < 7 else 1)


@bp.get("/")
@login_required
def index():
    """List the cases the user may see, filtered and paged."""
    f = _filter_from_args()
    session = db.session()
    result = services.list_cases(session, current_user, f, choices=not is_swap())  # a swap shows no filters
    return render("cases/index.html", "cases/_list.html", result=result, f=f)


def _case_data(form: CaseForm) -> dict:
    return {"country": form.country.data, "organisation_id": form.organisation_id.data,
            "return_date": form.return_date.data, "measure_type": form.measure_type.data,
            "notes": form.notes.data or "", "eligibility_reason": (form.eligibility_reason.data or "").strip() or None}


def _case_form(case=None):
    form = CaseForm(obj=case)
    form.organisation_id.choices = [(0, "—")] + orgs.choices(db.session())
    if form.validate_on_submit():
        if not is_country(form.country.data):
            form.country.errors.append(_("Choose the return country."))
        else:
            try:
                if case is None:
                    case = services.create_case(db.session(), current_user, _case_data(form))
                    flash(_("Case %(ref)s created.", ref=case.reference), "success")
                else:
                    services.update_case(db.session(), current_user, case, _case_data(form))
                    flash(_("Case %(ref)s saved.", ref=case.reference), "success")
            except services.CaseError as exc:
                put_on_form(form, exc, "country")
            else:
                return redirect(url_for("cases.show", case_id=case.id), code=303)
    status = 422 if form.errors else 200
    return render("cases/edit.html", "cases/_form.html", status, form=form, case=case)


@bp.route("/new", methods=["GET", "POST"])
@staff_required
def create():
    """Open a new case."""
    return _case_form()


@bp.route("/<int:case_id>/edit", methods=["GET", "POST"])
@staff_required
def edit(case_id: int):
    """Change a case's details or its partner organisation."""
    return _case_form(services.get_case_for(db.session(), current_user, case_id))


def _blank_line_fields() -> Markup:
    """The fields of an empty "Add a budget line" form, rendered once per language and then kept: they depend
    on nothing else (labels, choices, the amount's format). Its CSRF token is written beside them."""
    return keep("cases/blank-line-fields",
                lambda: render_template("cases/_line_fields.html", line_form=BudgetLineForm(formdata=None)))


def _budget_context(case, form=None, editing=None, edit_form=None, lines=None):
    """The budget part's context; `form` is the "Add a budget line" form sent back with its errors (without it
    the page shows the empty form's kept fields)."""
    return {"case": case, "lines": services.budget_lines(db.session(), case) if lines is None else lines,
            "line_form": form, "blank_line_fields": None if form else _blank_line_fields(),
            "editing": editing, "edit_form": edit_form,
            # One url_for per page: `line_urls.edit % line.id` is a line's editor.
            "line_urls": {"edit": url_pattern("cases.edit_line", "line_id", case_id=case.id),
                          "delete": url_pattern("cases.delete_line", "line_id", case_id=case.id),
                          "cancel": url_pattern("cases.line", "line_id", case_id=case.id)}}


@bp.get("/<int:case_id>")
@login_required
def show(case_id: int):
    """Show one case with its budget."""
    session = db.session()
    # Six statements in all (tests/test_cases.py), each of Core rows (the page only reads): the user; the
    # case with its organisation and lines; the receipts with their history; the visits with their comments;
    # the draft; the status history.
    case, organisation, lines = services.case_page_header(session, current_user, case_id)
    receipt_part = receipts.case_part(session, case, lines, with_events=True)
    visit_part = visits.case_part(session, current_user, case)
    known = {"visits": visit_part["visits"], "comments": visit_part.pop("visit_comments"),
             "receipt_events": receipt_part["receipt_events"]}
    entries = timeline.timeline(session, case, known=known)  # counts the comments per visit on the way
    return render("cases/show.html", "cases/_budget.html", organisation=organisation,
                  next_statuses=services.next_statuses(case), **_budget_context(case, lines=lines),
                  **receipt_part, **visit_part, timeline=timeline.shown(entries), visit_comment_counts=known["comment_counts"],
                  visit_labels=plain_labels(), receipt_url=url_pattern("receipts.show", "receipt_id"),
                  visit_url=url_pattern("visits.show", "visit_id"))


@bp.get("/<int:case_id>/privacy/export")
@admin_required
def privacy_export(case_id: int):
    """Everything the portal holds about a case, as one JSON file."""
    case = services.get_case_for(db.session(), current_user, case_id)
    body = privacy.export_case(db.session(), current_user, case)
    return Response(body, mimetype="application/json", headers={
        "Content-Disposition": f'attachment; filename="{case.reference}.json"'})


@bp.route("/<int:case_id>/privacy/erase", methods=["GET", "POST"])
@admin_required
def privacy_erase(case_id: int):
    """Erase a case's personal data (the financial proofs stay)."""
    case = services.get_case_for(db.session(), current_user, case_id)
    form = EraseForm()
    status = 200
    if form.validate_on_submit():
        try:
            privacy.erase_case(db.session(), get_storage(), current_user, case, form.reason.data.strip())
        except StorageError:
            db.session().rollback()  # nothing is marked erased; deleting again is harmless
            form.form_errors.append(_("The file storage could not be reached, so nothing was erased. "
                                      "Please try again in a few minutes."))
            status = 503
        else:
            flash(_("The personal data of case %(ref)s was erased. Receipts are kept for the audit.",
                    ref=case.reference), "success")
            return redirect(url_for("cases.show", case_id=case.id), code=303)
    if status == 200 and form.errors:
        status = 422
    return render("cases/erase.html", status=status, form=form, case=case)


@bp.post("/<int:case_id>/status")
@staff_required
def change_status(case_id: int):
    """Move a case along planned → active → monitoring → closed."""
    case = services.get_case_for(db.session(), current_user, case_id)
    form = StatusForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        services.change_status(db.session(), current_user, case, form.status.data)
    except services.CaseError as exc:
        flash(str(exc), "error")
    return redirect(url_for("cases.show", case_id=case.id), code=303)


def _line_data(form: BudgetLineForm) -> dict:
    return {"category": form.category.data, "description": form.description.data.strip(),
            "planned_cents": parse_cents(form.planned_amount.data)}


def _budget_done(case):
    if is_swap():
        return render("cases/_budget.html", **_budget_context(case))
    flash(_("Budget saved."), "success")
    return redirect(url_for("cases.show", case_id=case.id, _anchor="budget"), code=303)


@bp.post("/<int:case_id>/lines")
@staff_required
def add_line(case_id: int):
    """Add a budget line to a case."""
    case = services.get_case_for(db.session(), current_user, case_id)
    form = BudgetLineForm()
    if form.validate_on_submit():
        services.add_line(db.session(), current_user, case, _line_data(form))
        return _budget_done(case)
    return render("cases/line_page.html", "cases/_budget.html", 422, **_budget_context(case, form=form))


@bp.route("/<int:case_id>/lines/<int:line_id>/edit", methods=["GET", "POST"])
@staff_required
def edit_line(case_id: int, line_id: int):
    """Edit a budget line in place."""
    case, line = services.get_line_for(db.session(), current_user, case_id, line_id)
    form = BudgetLineForm(obj=line, planned_amount=line.planned_cents / 100 if request.method == "GET" else None)
    if form.validate_on_submit():
        services.update_line(db.session(), current_user, line, _line_data(form))
        return _budget_done(case)
    status = 422 if form.errors else 200
    return render("cases/line_page.html", "cases/_budget.html", status,
                  **_budget_context(case, editing=line.id, edit_form=form))


@bp.get("/<int:case_id>/lines/<int:line_id>")
@staff_required
def line(case_id: int, line_id: int):
    """The budget without an open editor (cancel)."""
    case, _line = services.get_line_for(db.session(), current_user, case_id, line_id)
    if not is_swap():
        return redirect(url_for("cases.show", case_id=case.id, _anchor="budget"))
    return render("cases/_budget.html", **_budget_context(case))


@bp.post("/<int:case_id>/lines/<int:line_id>/delete")
@staff_required
def delete_line(case_id: int, line_id: int):
    """Remove a budget line."""
    case, line = services.get_line_for(db.session(), current_user, case_id, line_id)
    services.delete_line(db.session(), current_user, line)
    return _budget_done(case)


@bp.route("/countries", methods=["GET", "POST"])
@staff_required
def countries():
    """The eligibility list: countries covered by other return programmes."""
    form = CountryRuleForm()
    if form.validate_on_submit() and is_country(form.code.data):
        services.save_rule(db.session(), current_user, form.code.data, form.covered.data, form.programme.data)
        flash(_("Country saved."), "success")
        return redirect(url_for("cases.countries"), code=303)
    status = 422 if form.errors else 200
    return render("cases/countries.html", status=status, form=form,
                  rules=services.country_rules(db.session()))


@bp.post("/countries/<code>/delete")
@staff_required
def delete_country(code: str):
    """Remove a country from the eligibility list."""
    services.delete_rule(db.session(), current_user, code[:2])
    flash(_("Country removed."), "success")
    return redirect(url_for("cases.countries"), code=303)
