"""Cases and their budgets: every query here is scoped to what the user may see."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import cache
from typing import NamedTuple

import sqlalchemy as sa
from flask import abort
from flask_babel import gettext as _
from sqlalchemy import bindparam, or_
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, func, select

from portal import audit
from portal.auth.models import User
from portal.cases.models import STATUS_FLOW, BudgetLine, Case, CaseStatus, CountryRule
from portal.clock import utcnow
from portal.db import literal_param
from portal.orgs.models import Organisation
from portal.reports.models import BudgetRollup
from portal.rules import RuleError

CASE_FIELDS = ("country", "organisation_id", "return_date", "measure_type", "status", "notes",
               "eligibility_reason")
LINE_FIELDS = ("category", "description", "planned_cents")
PER_PAGE = 25


class CaseError(RuleError):
    """A rule about cases was broken; `field` names the form field the message belongs to."""


def scope(user: User) -> tuple:
    """The conditions that limit cases to what a user may see: staff all, partners their organisation's."""
    if user.is_staff:
        return ()
    return (Case.organisation_id == user.organisation_id,)


def scope_by_parameter() -> tuple:
    """scope() of a partner for a statement built once for every partner: their organisation is its parameter
    `scope_org` (scope_parameters())."""
    return (Case.organisation_id == bindparam("scope_org"),)


def scope_parameters(user: User) -> dict:
    return {"scope_org": user.organisation_id}


def visible_cases(user: User):
    """The base query of cases a user may see."""
    return select(Case).where(*scope(user))


def get_case_for(db: Session, user: User, case_id: int) -> Case:
    """The case if the user may see it, else 404 (never 403: it does not exist for them)."""
    case = db.exec(visible_cases(user).where(Case.id == case_id)).first()
    if case is None:
        abort(404)
    return case


def case_header(db: Session, user: User, case_id: int) -> tuple[Case, Organisation, CountryRule | None]:
    """The case (if the user may see it, else 404), its organisation and its country's eligibility rule,
    in one statement: the top of the case page."""
    row = db.exec(select(Case, Organisation, CountryRule)
                  .join(Organisation, Organisation.id == Case.organisation_id)
                  .outerjoin(CountryRule, CountryRule.code == Case.country)
                  .where(Case.id == case_id, *scope(user))).first()
    if row is None:
        abort(404)
    return row[0], row[1], row[2]


class LineRow(NamedTuple):
    """A budget line as the case page shows it (read-only)."""

    id: int
    category: str
    description: str
    planned_cents: int


@cache
def _case_page_statement(scoped: bool):
    """The case (if the user may see it) with its organisation's name and its budget lines, one row per
    line: the columns the case page shows, built once."""
    conditions = [Case.id == bindparam("case_id")]
    if scoped:
        conditions += scope_by_parameter()
    return (select(Case.id, Case.reference, Case.country, Case.organisation_id, Case.return_date,
                   Case.measure_type, Case.status, Case.notes, Case.eligibility_reason,
                   Organisation.name.label("organisation"), BudgetLine.id.label("line_id"),
                   BudgetLine.category, BudgetLine.description, BudgetLine.planned_cents)
            .join(Organisation, Organisation.id == Case.organisation_id)
            .outerjoin(BudgetLine, BudgetLine.case_id == Case.id)
            .where(*conditions).order_by(BudgetLine.id))


def case_page_header(db: Session, user: User, case_id: int) -> tuple[Row, str, list[LineRow]]:
    """The top of the case page in one statement, as Core rows (the page only reads): the case (404 if the
    user may not see it), its organisation's name and its budget lines."""
    rows = db.connection().execute(_case_page_statement(not user.is_staff),
                                   {"case_id": case_id, **scope_parameters(user)}).all()
    if not rows:
        abort(404)
    case = rows[0]
    return case, case.organisation, [LineRow(*row[-4:]) for row in rows if row.line_id is not None]


def get_line_for(db: Session, user: User, case_id: int, line_id: int) -> tuple[Case, BudgetLine]:
    case = get_case_for(db, user, case_id)
    line = db.exec(select(BudgetLine).where(BudgetLine.id == line_id, BudgetLine.case_id == case.id)).first()
    if line is None:
        abort(404)
    return case, line


@dataclass
class CaseFilter:
    q: str = ""
    status: str = ""
    country: str = ""
    organisation_id: int | None = None
    page: int = 1


class CaseRow(NamedTuple):
    """One listed case: plain values (a SQLAlchemy Row's attributes cost ~1.5 µs a read in a template)."""
    id: int
    reference: str
    country: str
    measure_type: str
    status: str
    organisation: str
    planned_cents: int


@dataclass
class CasePage:
    rows: list[CaseRow]
    total: int
    page: int
    pages: int
    # The filter's choices (with choices=True): the return countries of the cases the user may see, and for
    # staff every organisation (id, name) by name.
    countries: list[str] = field(default_factory=list)
    orgs: list[tuple[int, str]] = field(default_factory=list)


def list_cases(db: Session, user: User, f: CaseFilter, choices: bool = False) -> CasePage:
    """One page of the cases a user may see, filtered, with each case's planned budget; with choices=True
    also the filter's choices. Two statements: the total with the choices, then the page."""
    params = {**scope_parameters(user), "offset": 0, "limit": PER_PAGE}
    if f.q:
        params["like"] = f"%{f.q.strip()[:50]}%"
    if f.status in tuple(CaseStatus):
        params["status"] = f.status
    if f.country:
        params["country"] = f.country[:2].upper()
    if f.organisation_id and user.is_staff:
        params["organisation_id"] = f.organisation_id
    filters = tuple(name in params for name in _FILTERS)
    kept = _kept_key(user, params)
    if kept:
        params["kind"], params["key"] = kept
    # Core statements on the session's connection: the list only reads, so no ORM objects are built.
    conn = db.connection()
    result = CasePage(rows=[], total=0, page=1, pages=1)
    for part, key, number, name in conn.execute(_facets_statement(user.is_staff, choices, bool(kept), *filters),
                                                params):
        if part == "total":
            result.total = int(number or 0)
        elif part == "country":
            result.countries.append(key)
        else:
            result.orgs.append((int(key), name))
    result.pages = max(1, -(-result.total // PER_PAGE))
    result.page = min(max(1, f.page), result.pages)
    params["offset"] = (result.page - 1) * PER_PAGE
    result.rows = [CaseRow(*row[:6], int(row[6])) for row in conn.execute(_page_statement(not user.is_staff, *filters),
                                                                            params)]
    return result


_FILTERS = ("like", "status", "country", "organisation_id")

# The number of cases per organisation, per country and in all is kept in the dashboard's roll-up
# (reports.models.BudgetRollup), in step with every change in the same transaction (reports.summary;
# `reports reconcile` checks it). Counting the cases themselves reads every one of them on every page.
_ROLLUP = BudgetRollup.__table__


def _kept_key(user: User, params: dict) -> tuple[str, str] | None:
    """The roll-up row that keeps the list's total: no filter, one organisation or one country (a partner's
    list is its organisation's); None for any other filter (counted from the cases)."""
    if "like" in params or "status" in params:
        return None
    if user.is_staff:
        if "organisation_id" in params:
            return ("org", str(params["organisation_id"])) if "country" not in params else None
        return ("country", params["country"]) if "country" in params else ("total", "")
    if user.organisation_id is not None and "country" not in params:
        return "org", str(user.organisation_id)
    return None


def _conditions(scoped: bool, like: bool, status: bool, country: bool, organisation: bool) -> list:
    conditions = [*scope_by_parameter()] if scoped else []
    if like:
        conditions.append(or_(Case.reference.ilike(bindparam("like")), Case.notes.ilike(bindparam("like"))))
    if status:
        conditions.append(Case.status == bindparam("status"))
    if country:
        conditions.append(Case.country == bindparam("country"))
    if organisation:
        conditions.append(Case.organisation_id == bindparam("organisation_id"))
    return conditions


@cache
def _facets_statement(staff: bool, choices: bool, kept: bool, *filters: bool):
    """The list's total and, with choices, the filter's choices, as rows (part, key, number, name) of one
    statement, built once per combination (the values are bound parameters): the total from the roll-up
    where it is kept, else counted; the countries from the roll-up (staff) or along the country index of the
    organisation's cases (partners); the organisations for staff."""
    nothing = sa.null()
    if kept:
        total = select(sa.literal("total"), sa.cast(nothing, sa.String), _ROLLUP.c.cases, sa.cast(nothing, sa.String)) \
            .where(_ROLLUP.c.kind == bindparam("kind"), _ROLLUP.c.key == bindparam("key"))
    else:
        total = select(sa.literal("total"), sa.cast(nothing, sa.String), func.count(), sa.cast(nothing, sa.String)) \
            .select_from(Case).where(*_conditions(not staff, *filters))
    parts = [total]
    if choices and staff:
        parts.append(select(sa.literal("country"), _ROLLUP.c.key, _ROLLUP.c.cases, sa.cast(nothing, sa.String))
                     .where(_ROLLUP.c.kind == "country", _ROLLUP.c.cases > 0))
        parts.append(select(sa.literal("org"), sa.cast(Organisation.id, sa.String), sa.cast(nothing, sa.Integer),
                            Organisation.name))
    elif choices:
        found = _countries_statement().subquery()
        parts.append(select(sa.literal("country"), found.c.country, sa.cast(nothing, sa.Integer),
                            sa.cast(nothing, sa.String)))
    # Part, then the organisation's name, then the key: countries by code, organisations by name.
    statement = sa.union_all(*parts) if len(parts) > 1 else parts[0]
    return statement.order_by(sa.literal_column("1"), sa.literal_column("4"), sa.literal_column("2"))


@cache
def _page_statement(scoped: bool, *filters: bool):
    """The case list's page for one combination of filters, built once (building and keying it cost more
    than running it); the values are bound parameters."""
    # A correlated subquery, summed for the page's 25 cases only (a grouped join summed every budget line).
    planned = (select(func.coalesce(func.sum(BudgetLine.planned_cents), 0))
               .where(BudgetLine.case_id == Case.id).correlate(Case).scalar_subquery())
    return (select(Case.id, Case.reference, Case.country, Case.measure_type, Case.status,
                   Organisation.name.label("organisation"), planned.label("planned_cents"))
            .join(Organisation, Organisation.id == Case.organisation_id)
            .where(*_conditions(scoped, *filters))
            .order_by(Case.created_at.desc(), Case.id.desc())
            .offset(literal_param("offset")).limit(literal_param("limit")))


def countries_select(*conditions):
    """The distinct return countries of the cases that meet the conditions (scope(user)), as a statement that
    skips along the country index (one probe per country, ~20) instead of reading every case's entry (10,000
    at bench volume): 1.0 -> 0.3 ms on PostgreSQL."""
    found = select(func.min(Case.country).label("country")).where(*conditions).cte("case_countries", recursive=True)
    after = select(func.min(Case.country)).where(Case.country > found.c.country, *conditions).scalar_subquery()
    found = found.union_all(select(after).where(found.c.country.is_not(None)))
    return select(found.c.country).where(found.c.country.is_not(None)).order_by(found.c.country)


@cache
def _countries_statement():
    return countries_select(*scope_by_parameter())


# Eligibility ------------------------------------------------------------------------------------

def country_rules(db: Session) -> list[CountryRule]:
    return list(db.exec(select(CountryRule).order_by(CountryRule.code)))


def rule_for(db: Session, country: str) -> CountryRule | None:
    rule = db.get(CountryRule, country)
    return rule if rule and rule.covered_by_other_programme else None


def save_rule(db: Session, actor: User, code: str, covered: bool, programme: str) -> CountryRule:
    rule = db.get(CountryRule, code)
    before = audit.snapshot(rule, ("covered_by_other_programme", "programme")) if rule else None
    rule = rule or CountryRule(code=code)
    rule.covered_by_other_programme = covered
    rule.programme = programme.strip()
    rule.updated_at = utcnow()
    db.add(rule)
    audit.record(db, actor, "country_rule.saved", ("CountryRule", code), before,
                 audit.snapshot(rule, ("covered_by_other_programme", "programme")))
    db.commit()
    return rule


def delete_rule(db: Session, actor: User, code: str) -> None:
    rule = db.get(CountryRule, code)
    if rule is None:
        abort(404)
    audit.record(db, actor, "country_rule.deleted", ("CountryRule", code),
                 audit.snapshot(rule, ("covered_by_other_programme", "programme")))
    db.delete(rule)
    db.commit()


# Cases ------------------------------------------------------------------------------------------

def _next_reference(db: Session, year: int) -> str:
    prefix = f"IP-{year}-"
    last = db.exec(select(Case.reference).where(Case.reference.like(prefix + "%"))
                   .order_by(Case.reference.desc()).limit(1)).first()
    number = int(last.removeprefix(prefix)) + 1 if last else 1
    return f"{prefix}{number:04d}"


def _check_case(db: Session, data: dict) -> None:
    org = db.get(Organisation, data["organisation_id"])
    if org is None:
        raise CaseError(_("Choose a partner organisation."), "organisation_id")
    if rule_for(db, data["country"]) and not (data.get("eligibility_reason") or "").strip():
        raise CaseError(_("This country is covered by another return programme. Explain why this case "
                          "is still eligible."), "eligibility_reason")


def create_case(db: Session, actor: User, data: dict, today: date | None = None) -> Case:
    """Open a case under a new pseudonymous reference."""
    _check_case(db, data)
    year = (today or date.today()).year
    for _attempt in range(5):
        case = Case(reference=_next_reference(db, year), created_by_id=actor.id,
                    **{k: data.get(k) for k in CASE_FIELDS if k != "status"})
        case.status = CaseStatus.PLANNED
        case.notes = case.notes or ""
        db.add(case)
        try:
            db.flush()
        except IntegrityError:  # someone took the same number at the same moment
            db.rollback()
            continue
        audit.record(db, actor, "case.created", case, after=audit.snapshot(case, ("reference", *CASE_FIELDS)))
        db.commit()
        return case
    raise CaseError(_("The case could not be saved. Please try again."))


def update_case(db: Session, actor: User, case: Case, data: dict) -> Case:
    _check_case(db, data)
    before = audit.snapshot(case, CASE_FIELDS)
    for key in ("country", "organisation_id", "return_date", "measure_type", "notes", "eligibility_reason"):
        setattr(case, key, data.get(key))
    case.notes = case.notes or ""
    case.updated_at = utcnow()
    db.add(case)
    audit.record(db, actor, "case.updated", case, before, audit.snapshot(case, CASE_FIELDS))
    db.commit()
    return case


def next_statuses(case: Case) -> tuple[CaseStatus, ...]:
    return STATUS_FLOW[CaseStatus(case.status)]


def change_status(db: Session, actor: User, case: Case, status: str) -> Case:
    if status not in next_statuses(case):
        raise CaseError(_("This status change is not possible."))
    before = {"status": case.status}
    case.status = status
    case.updated_at = utcnow()
    db.add(case)
    audit.record(db, actor, "case.status_changed", case, before, {"status": status})
    db.commit()
    return case


# Budget lines -----------------------------------------------------------------------------------

def budget_lines(db: Session, case: Case) -> list[BudgetLine]:
    return list(db.exec(select(BudgetLine).where(BudgetLine.case_id == case.id).order_by(BudgetLine.id)))


def add_line(db: Session, actor: User, case: Case, data: dict) -> BudgetLine:
    line = BudgetLine(case_id=case.id, **{k: data[k] for k in LINE_FIELDS})
    db.add(line)
    db.flush()
    audit.record(db, actor, "budget_line.created", line, after=audit.snapshot(line, ("case_id", *LINE_FIELDS)))
    db.commit()
    return line


def update_line(db: Session, actor: User, line: BudgetLine, data: dict) -> BudgetLine:
    before = audit.snapshot(line, LINE_FIELDS)
    for key in LINE_FIELDS:
        setattr(line, key, data[key])
    db.add(line)
    audit.record(db, actor, "budget_line.updated", line, before, audit.snapshot(line, LINE_FIELDS))
    db.commit()
    return line


def delete_line(db: Session, actor: User, line: BudgetLine) -> None:
    audit.record(db, actor, "budget_line.deleted", line, audit.snapshot(line, ("case_id", *LINE_FIELDS)))
    db.delete(line)
    db.commit()
