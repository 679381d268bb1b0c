"""The budget dashboard's page text (templates/reports/dashboard.html): its five charts and the rows of its
tables, every figure formatted in the request's language and every text escaped, in one pass each.

The page shows ~150 bars and ~80 table rows of five or more figures. Written cell by cell in the template,
even as plain loops over tuples of preformatted texts, they cost ~25 % more CPU than here (an escape() and
a Markup() per value, ~1,300 a page; measured in commit 131412e, whose template version this replaced). The
figures come from services.dashboard(); the template keeps the page's structure (sections, captions,
headers) and puts these rows in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache, partial

from flask_babel import format_decimal
from flask_babel import gettext as _
from markupsafe import Markup

from portal.cases.models import CaseStatus
from portal.i18n import country_name, locale_name, money, percent
from portal.layout import url_pattern
from portal.reports import charts
from portal.reports.charts import escaped
from portal.reports.services import Dashboard

# Formatted figures and texts, per locale: they stay the same for as long as the process runs. Each cache
# is keyed by the request's locale name and filled within a request in that locale.

@lru_cache(maxsize=8192)
def _money_html(_locale: str, cents: int) -> str:
    """EUR cents as money() writes them, escaped."""
    return escaped(money(cents))


@lru_cache(maxsize=4096)
def _whole_euros(_locale: str, cents: int) -> str:
    """Whole euros as the locale groups them (the charts' labels, bar titles and descriptions)."""
    return format_decimal(round(cents / 100), format="#,##0")


@lru_cache(maxsize=4096)
def _whole_euros_html(locale: str, cents: int) -> str:
    return escaped(_whole_euros(locale, cents))


@lru_cache(maxsize=16)
def _texts(_locale: str) -> dict[str, str]:
    """The charts' titles, descriptions and names, translated (the descriptions still to be %-formatted)."""
    return {
        "planned": _("Planned"), "submitted": _("Submitted"), "approved": _("Approved"), "eur": _("EUR"),
        "elapsed": _("Project period elapsed"), "share": _("Share of the budget"),
        "totals": _("Planned, submitted and approved spending"),
        "totals_desc": _("Planned %(planned)s EUR, submitted %(submitted)s EUR, approved %(approved)s EUR; the "
                         "figures are listed above."),
        "pace": _("Spending against the time elapsed"),
        "pace_desc": _("%(elapsed)s of the project period has passed; %(planned)s of the budget is planned, "
                       "%(submitted)s submitted and %(approved)s approved. The table below has the figures."),
        "country": _("Spending by return country"),
        "country_desc": _("Planned, submitted and approved EUR for each return country; the table below has the "
                          "figures."),
        "organisation": _("Spending by partner organisation"),
        "organisation_desc": _("Planned, submitted and approved EUR for each partner organisation; the table below "
                               "has the figures."),
        "months": _("Spending by invoice month"),
        "months_desc": _("Submitted and approved EUR for each month of invoice dates; the table below has the "
                         "figures."),
        "over_plan": escaped(_("Over plan")),
    }


@lru_cache(maxsize=1024)
def _country_html(_locale: str, code: str | None) -> str:
    return escaped(country_name(code))


@lru_cache(maxsize=4096)
def _share_html(_locale: str, part: int, whole: int) -> str:
    """`part` of `whole` as a whole percentage ("–" of nothing)."""
    return f"<bdi>{escaped(percent(part / whole, 0))}</bdi>" if whole else "–"


@dataclass
class Tables:
    """Each table's body rows as escaped HTML ("" for a table without rows). Their figure cells carry no
    class: the tables' own class aligns them (static/css/portal.css, "figures")."""

    country: Markup
    organisation: Markup
    months: Markup
    cases: Markup


def _share(fraction: float | None) -> int:
    """A share as whole hundredths of a percent, for the chart's integer geometry."""
    return round((fraction or 0) * 10_000)


def _percent_html(hundredths: int) -> str:
    return escaped(percent(hundredths / 10_000))


def dashboard_charts(d: Dashboard) -> dict[str, charts.Chart]:
    """The dashboard's five charts, each with the table or list of its figures on the page."""
    locale = locale_name()
    tx = _texts(locale)
    eur = partial(_whole_euros, locale)
    eur_html = partial(_whole_euros_html, locale)
    planned, submitted, approved = (charts.Series(tx["planned"], charts.PLANNED),
                                    charts.Series(tx["submitted"], charts.SUBMITTED),
                                    charts.Series(tx["approved"], charts.APPROVED))
    three = [planned, submitted, approved]
    t = d.totals
    return {
        # Scaled to what is planned and spent: against the whole budget these bars would be hairlines.
        "totals": charts.hbar_chart(
            "chart-totals", tx["totals"],
            tx["totals_desc"] % {"planned": eur(t.planned), "submitted": eur(t.submitted),
                                 "approved": eur(t.approved)},
            [(tx["planned"], [t.planned]), (tx["submitted"], [t.submitted]), (tx["approved"], [t.approved])],
            [charts.Series(tx["eur"], charts.PLANNED)], eur_html,
            row_colors=[charts.PLANNED, charts.SUBMITTED, charts.APPROVED]),
        "pace": charts.hbar_chart(
            "chart-pace", tx["pace"],
            tx["pace_desc"] % {"elapsed": percent(d.elapsed), "planned": percent(d.share(t.planned)),
                               "submitted": percent(d.share(t.submitted)),
                               "approved": percent(d.share(t.approved))},
            [(tx["elapsed"], [_share(d.elapsed)]), (tx["planned"], [_share(d.share(t.planned))]),
             (tx["submitted"], [_share(d.share(t.submitted))]), (tx["approved"], [_share(d.share(t.approved))])],
            [charts.Series(tx["share"], charts.BUDGET)], _percent_html,
            row_colors=[charts.BUDGET, charts.PLANNED, charts.SUBMITTED, charts.APPROVED]),
        "country": charts.hbar_chart(
            "chart-country", tx["country"], tx["country_desc"],
            [(country_name(g.key), [g.planned, g.submitted, g.approved]) for g in d.by_country], three, eur_html),
        "organisation": charts.hbar_chart(
            "chart-organisation", tx["organisation"], tx["organisation_desc"],
            [(g.label, [g.planned, g.submitted, g.approved]) for g in d.by_organisation], three, eur_html),
        "months": charts.vbar_chart(
            "chart-months", tx["months"], tx["months_desc"],
            [(m.label, [m.submitted, m.approved]) for m in d.months], [submitted, approved], eur_html),
    }


def dashboard_tables(d: Dashboard) -> Tables:
    """The rows of the dashboard's tables by country, organisation, month and case (its page of cases)."""
    locale = locale_name()
    m = partial(_money_html, locale)
    over = f' <span class="badge badge-planned">{_texts(locale)["over_plan"]}</span>'
    country = partial(_country_html, locale)
    share = partial(_share_html, locale)
    by_country = "".join(
        f'<tr id="country-{escaped(g.key)}"><th scope="row">{country(g.key)}</th><td>{g.cases}</td>'
        f'<td>{m(g.planned)}</td><td>{m(g.submitted)}{over if g.submitted > g.planned else ""}</td>'
        f'<td>{m(g.approved)}</td></tr>\n' for g in d.by_country)
    by_organisation = "".join(
        f'<tr><th scope="row">{escaped(g.label)}</th><td>{g.cases}</td><td>{m(g.planned)}</td>'
        f'<td>{m(g.submitted)}{over if g.submitted > g.planned else ""}</td>'
        f'<td>{m(g.approved)}</td><td>{share(g.approved, g.planned)}</td></tr>\n' for g in d.by_organisation)
    by_month = "".join(  # a month's key and label are its 'YYYY-MM'
        f'<tr id="month-{escaped(g.key)}"><th scope="row">{escaped(g.label)}</th><td>{m(g.submitted)}</td>'
        f'<td>{m(g.approved)}</td></tr>\n' for g in d.months)
    statuses = CaseStatus.titles()
    case_url = url_pattern("cases.show", "case_id")
    rows = []
    for case_id, reference, organisation, code, status, planned, submitted, approved, _n in d.cases:
        is_over = submitted > planned
        rows.append(
            f'<tr id="case-{case_id}"><th scope="row"><a href="{case_url % case_id}">{escaped(reference)}</a>'
            f'{over if is_over else ""}</th><td>{country(code)}</td><td>{escaped(organisation)}</td>'
            f'<td><span class="badge badge-{escaped(status)}">{escaped(statuses.get(status, status))}</span></td>'
            f'<td>{m(planned)}</td>'
            f'<td>{f"<strong>{m(submitted)}</strong>" if is_over else m(submitted)}</td>'
            f'<td>{m(approved)}</td></tr>\n')
    return Tables(country=Markup(by_country), organisation=Markup(by_organisation),  # noqa: S704 - escaped above
                  months=Markup(by_month), cases=Markup("".join(rows)))  # noqa: S704 - escaped above
