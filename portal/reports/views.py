"""Reports for staff and the funder: the budget dashboard, the Belegliste, the narrative figures, the audit log."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, current_app, request
from flask_babel import format_datetime, format_decimal
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import DateField, SelectField, StringField
from wtforms.validators import Length, Optional

from portal import db
from portal.auth.services import staff_required
from portal.cases.models import BudgetCategory
from portal.clock import utcnow
from portal.forms import Form
from portal.htmx import render
from portal.reports import exports, services
from portal.reports import page as dashboard_page
from portal.security import parse_id
from portal.workshop.models import RegRole

bp = Blueprint("reports", __name__, url_prefix="/reports")

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


category_label = BudgetCategory.title


def _download(body: bytes, mimetype: str, filename: str):
    response = current_app.response_class(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# Period -----------------------------------------------------------------------------------------

class PeriodForm(Form):
    class Meta:
        csrf = False

    start = DateField(_l("From"), validators=[Optional()])
    end = DateField(_l("To"), validators=[Optional()])


def _period() -> tuple[PeriodForm, date, date]:
    """The period asked for in the URL; the whole project period where none (or a wrong one) is given."""
    form = PeriodForm(request.args)
    form.validate()
    start = form.start.data if not form.start.errors and form.start.data else current_app.config["PROJECT_START"]
    end = form.end.data if not form.end.errors and form.end.data else current_app.config["PROJECT_END"]
    if end < start:
        form.end.errors = [*form.end.errors, _("The end of the period must not be before its start.")]
        start, end = current_app.config["PROJECT_START"], current_app.config["PROJECT_END"]
    form.start.data, form.end.data = start, end
    return form, start, end


@bp.get("/")
@staff_required
def index():
    """Reports for the funder: the Belegliste downloads and the narrative report's figures for a period."""
    form, start, end = _period()
    figures = services.narrative(db.session(), start, end)
    return render("reports/index.html", "reports/_narrative.html", form=form, start=start, end=end, n=figures,
                  format_decimal=format_decimal, role_labels=RegRole.titles())


def _belegliste_name(start: date, end: date, ext: str) -> str:
    return f"belegliste_{start:%Y-%m-%d}_{end:%Y-%m-%d}.{ext}"


@bp.get("/belegliste.xlsx")
@staff_required
def belegliste_xlsx():
    """The Belegliste of a period as an Excel workbook."""
    _form, start, end = _period()
    rows = services.belegliste(db.session(), start, end)
    body = exports.belegliste_xlsx(rows, category_label, start, end, format_datetime(utcnow(), "short"))
    return _download(body, XLSX, _belegliste_name(start, end, "xlsx"))


@bp.get("/belegliste.csv")
@staff_required
def belegliste_csv():
    """The Belegliste of a period as CSV."""
    _form, start, end = _period()
    rows = services.belegliste(db.session(), start, end)
    return _download(exports.belegliste_csv(rows, category_label), "text/csv; charset=utf-8",
                     _belegliste_name(start, end, "csv"))


# Dashboard --------------------------------------------------------------------------------------

CASES_PER_PAGE = 25


@bp.get("/dashboard")
@staff_required
def dashboard():
    """The budget dashboard: planned, submitted and approved spending against the budget and the time."""
    show = request.args.get("cases", "")
    raw_page = request.args.get("page", "1")
    page = int(raw_page) if raw_page.isdigit() and len(raw_page) < 7 else 1
    # The per-case table is paged: thousands of rows would make the page heavy on a slow link.
    d = services.dashboard(db.session(), show == "over", page, CASES_PER_PAGE)
    return render("reports/dashboard.html", "reports/dashboard.html", d=d, charts=dashboard_page.dashboard_charts(d),
                  tables=dashboard_page.dashboard_tables(d), show=show)


# Audit log --------------------------------------------------------------------------------------

class AuditFilterForm(Form):
    class Meta:
        csrf = False

    user = SelectField(_l("User"), validators=[Optional()], validate_choice=False)
    object_type = SelectField(_l("Object type"), validators=[Optional()], validate_choice=False)
    object_id = StringField(_l("Object ID"), validators=[Optional(), Length(max=64)])
    action = StringField(_l("Action"), validators=[Optional(), Length(max=64)],
                         description=_l("The start or the end of an action, like “receipt.” or “approved”."))
    start = DateField(_l("From"), validators=[Optional()])
    end = DateField(_l("To"), validators=[Optional()])


def _audit_filter(with_options: bool) -> tuple[AuditFilterForm, services.AuditFilter]:
    form = AuditFilterForm(request.args)
    form.user.choices = [("", _("Everyone"))] + (
        [(str(uid), label) for uid, label in services.audit_options(db.session())] if with_options else [])
    types = list(services.AUDIT_OBJECT_TYPES)
    asked = (request.args.get("object_type") or "")[:32]
    if asked and asked not in types:  # a link from an entry of a type the list does not name yet
        types.append(asked)
    form.object_type.choices = [("", _("All"))] + [(t, t) for t in types]
    form.validate()
    f = services.AuditFilter()
    if not form.user.errors and parse_id(form.user.data) is not None:
        f.user_id = parse_id(form.user.data)
    if not form.object_type.errors and form.object_type.data:
        f.object_type = form.object_type.data
    if not form.object_id.errors and form.object_id.data:
        f.object_id = form.object_id.data.strip()
    if not form.action.errors and form.action.data:
        f.action = form.action.data.strip()
    if not form.start.errors:
        f.start = form.start.data
    if not form.end.errors:
        f.end = form.end.data
    page = request.args.get("page", "1")
    f.page = int(page) if page.isdigit() and len(page) < 7 else 1
    f.after = services.parse_cursor(request.args.get("after", "")[:64])
    return form, f


@bp.get("/audit")
@staff_required
def audit_log():
    """The audit log: who did what to which object, filtered and paged."""
    form, f = _audit_filter(with_options=True)
    result = services.audit_page(db.session(), f)
    args = {k: v for k, v in request.args.items() if k not in ("page", "after") and v}
    return render("reports/audit.html", "reports/_audit.html", form=form, result=result, args=args)


@bp.get("/audit.csv")
@staff_required
def audit_csv():
    """The filtered audit log as CSV."""
    _form, f = _audit_filter(with_options=False)
    body = exports.audit_csv(services.audit_rows(db.session(), f))
    return _download(body, "text/csv; charset=utf-8", f"audit_log_{utcnow():%Y-%m-%d}.csv")
