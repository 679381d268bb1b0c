"""The budget dashboard's figures as the page shows them (templates/reports/dashboard.html): its five charts
and the rows of its tables, every figure formatted in the request's language once, for the template to
write (and escape) in plain loops.

The page shows ~150 bars and ~80 table rows of five or more figures: formatted in the template (a filter
or a call per value, an attribute lookup per field, a url_for per case) they would cost several times the
rest of the request. The figures come from services.dashboard().
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache, partial

from flask_babel import format_decimal
from flask_babel import gettext as _

from portal.cases.models import CaseStatus
from portal.i18n import country_name, locale_name, money, percent
from portal.layout import url_pattern
from portal.reports import charts
from portal.reports.services import Dashboard

# Formatted figures and texts, per locale: they stay the same for as long as the process runs. Each cache
# is keyed by the request's locale name and filled within a request in that locale.

@lru_cache(maxsize=8192)
def _money(_locale: str, cents: int) -> str:
    """EUR cents as money() writes them."""
    return money(cents)


@lru_cache(maxsize=4096)
def _whole_euros(_locale: str, cents: int) -> str:
    """Whole euros as the locale groups them (the charts' labels, bar titles and descriptions)."""
    return format_decimal(round(cents / 100), format="#,##0")


@lru_cache(maxsize=1024)
def _country(_locale: str, code: str | None) -> str:
    return country_name(code)


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
    }


@lru_cache(maxsize=4096)
def _share(_locale: str, part: int, whole: int) -> str | None:
    """`part` of `whole` as a whole percentage (None of nothing)."""
    return percent(part / whole, 0) if whole else None


@dataclass
class Tables:
    """Each table's rows as tuples of the texts its cells show, in the order of its columns (numbers as text
    too: the template writes a string with one call less)."""

    # key, country, cases, planned, submitted, over plan, approved
    country: list[tuple[str, str, str, str, str, bool, str]]
    # organisation, cases, planned, submitted, over plan, approved, approved of planned (None: nothing planned)
    organisation: list[tuple[str, str, str, str, bool, str, str | None]]
    # key ('YYYY-MM', also its label), submitted, approved
    months: list[tuple[str, str, str]]
    # case id, link, reference, over plan, country, organisation, status, status title, planned, submitted,
    # approved
    cases: list[tuple[str, str, str, bool, str, str, str, str, str, str, str]]


def _hundredths(fraction: float | None) -> int:
    """A share as whole hundredths of a percent, for the chart's integer geometry."""
    return round((fraction or 0) * 10_000)


def _percent_of_hundredths(hundredths: int) -> str:
    return percent(hundredths / 10_000)


def dashboard_charts(d: Dashboard) -> dict[str, charts.Chart]:
    """The dashboard's five charts, each with the table or list of its figures on the page."""
    locale = locale_name()
    tx = _texts(locale)
    eur = partial(_whole_euros, locale)
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
            [charts.Series(tx["eur"], charts.PLANNED)], eur,
            row_colors=[charts.PLANNED, charts.SUBMITTED, charts.APPROVED]),
        "pace": charts.hbar_chart(
            "chart-pace", tx["pace"],
            tx["pace_desc"] % {"elapsed": percent(d.elapsed), "planned": percent(d.share(t.planned)),
                               "submitted": percent(d.share(t.submitted)),
                               "approved": percent(d.share(t.approved))},
            [(tx["elapsed"], [_hundredths(d.elapsed)]), (tx["planned"], [_hundredths(d.share(t.planned))]),
             (tx["submitted"], [_hundredths(d.share(t.submitted))]),
             (tx["approved"], [_hundredths(d.share(t.approved))])],
            [charts.Series(tx["share"], charts.BUDGET)], _percent_of_hundredths,
            row_colors=[charts.BUDGET, charts.PLANNED, charts.SUBMITTED, charts.APPROVED]),
        "country": charts.hbar_chart(
            "chart-country", tx["country"], tx["country_desc"],
            [(country_name(g.key), [g.planned, g.submitted, g.approved]) for g in d.by_country], three, eur),
        "organisation": charts.hbar_chart(
            "chart-organisation", tx["organisation"], tx["organisation_desc"],
            [(g.label, [g.planned, g.submitted, g.approved]) for g in d.by_organisation], three, eur),
        "months": charts.vbar_chart(
            "chart-months", tx["months"], tx["months_desc"],
            [(m.label, [m.submitted, m.approved]) for m in d.months], [submitted, approved], eur),
    }


def dashboard_tables(d: Dashboard) -> Tables:
    """The rows of the dashboard's tables by country, organisation, month and case (its page of cases)."""
    locale = locale_name()
    m = partial(_money, locale)
    share = partial(_share, locale)
    country = partial(_country, locale)
    statuses = CaseStatus.titles()
    case_url = url_pattern("cases.show", "case_id")
    return Tables(
        country=[(g.key, country(g.key), str(g.cases), m(g.planned), m(g.submitted), g.submitted > g.planned,
                  m(g.approved)) for g in d.by_country],
        organisation=[(g.label, str(g.cases), m(g.planned), m(g.submitted), g.submitted > g.planned, m(g.approved),
                       share(g.approved, g.planned)) for g in d.by_organisation],
        months=[(g.key, m(g.submitted), m(g.approved)) for g in d.months],
        cases=[(str(case_id), case_url % case_id, reference, submitted > planned, country(code), organisation,
                status, statuses.get(status, status), m(planned), m(submitted), m(approved))
               for case_id, reference, organisation, code, status, planned, submitted, approved, _n in d.cases])
