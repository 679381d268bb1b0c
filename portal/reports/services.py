"""Figures for staff and the funder: the budget dashboard, the Belegliste, the narrative report's counts,
and the audit log. Every figure is aggregated in SQL; a page needs a fixed number of statements."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple

from flask import current_app
from sqlalchemy import Integer, String, and_, cast, literal_column, null, or_, union_all
from sqlmodel import Session, func, select

from portal.audit import AuditEntry
from portal.auth.models import User
from portal.cases.models import BudgetLine, Case
from portal.db import literal_param
from portal.orgs.models import Organisation
from portal.receipts import handover
from portal.receipts import rates as receipt_rates
from portal.receipts.handover import HandoverState
from portal.receipts.models import Receipt, ReceiptEvent, ReceiptStatus
from portal.reports.models import BudgetRollup, BudgetSummary
from portal.review.models import SampleItem
from portal.visits.models import DIMENSIONS, Visit
from portal.workshop.models import Registration, RegStatus, Workshop, WorkshopStat

# Dashboard --------------------------------------------------------------------------------------

@dataclass
class Figures:
    """Planned, submitted (handed in, not rejected) and approved EUR cents of a group of cases."""

    key: str = ""
    label: str = ""
    planned: int = 0
    submitted: int = 0
    approved: int = 0
    without_rate: int = 0
    cases: int = 0

    @property
    def over_plan(self) -> bool:
        return self.submitted > self.planned

    def add(self, other: Figures) -> None:
        self.planned += other.planned
        self.submitted += other.submitted
        self.approved += other.approved
        self.without_rate += other.without_rate
        self.cases += other.cases


class CaseRow(NamedTuple):
    """A case in the dashboard's table (a tuple: a page has 50, read field by field)."""

    case_id: int
    reference: str
    organisation: str  # its name
    country: str
    status: str
    planned: int
    submitted: int
    approved: int
    without_rate: int  # receipts without an exchange rate


@dataclass
class Dashboard:
    budget: int
    funding: int
    totals: Figures
    by_country: list[Figures]
    by_organisation: list[Figures]
    months: list[Figures]
    over_plan_count: int
    start: date
    end: date
    elapsed: float  # the share of the project period that has passed, 0–1
    cases: list[CaseRow] = field(default_factory=list)  # one page of cases
    case_page: int = 1
    case_pages: int = 1

    def share(self, cents: int) -> float | None:
        """A part of the project budget as a share of it."""
        return cents / self.budget if self.budget else None


def budget_cents() -> tuple[int, int]:
    """The project's total budget and its funding, in cents (configurable)."""
    config = current_app.config
    return int(config["PROJECT_BUDGET_EUR"]) * 100, int(config["PROJECT_FUNDING_EUR"]) * 100


def elapsed_share(start: date, end: date, today: date) -> float:
    """How much of the project period [start, end] has passed on `today` (whole days), 0–1."""
    days = (end - start).days + 1
    if days <= 0:
        return 1.0
    return min(1.0, max(0.0, ((today - start).days + 1) / days))


def _month_span(found: dict[str, tuple[int, int]]) -> list[Figures]:
    """Every month from the first to the last one with figures, the gaps as zero."""
    if not found:
        return []
    first, last = min(found), max(found)
    year, mon = int(first[:4]), int(first[5:7])
    out = []
    while True:
        key = f"{year:04d}-{mon:02d}"
        submitted, approved = found.get(key, (0, 0))
        out.append(Figures(key=key, label=key, submitted=submitted, approved=approved))
        if key >= last:
            return out
        year, mon = (year + 1, 1) if mon == 12 else (year, mon + 1)


# Built once (one for every case, one for the cases over their plan): the dashboard's statement, run as
# Core (rows of plain values, no ORM entities) with only the page's offset and size bound per request.
# The rollup rows (each organisation's with its name) and one page of cases come back together: the case
# rows last (part 1), by reference.

def _dashboard_statement(over_only: bool):
    rollup, case, summary = BudgetRollup.__table__, Case.__table__, BudgetSummary.__table__
    org = Organisation.__table__
    r = rollup.c
    groups = (select(r.kind, r.key, org.c.name, r.planned, r.submitted, r.approved, r.without_rate, r.cases,
                     r.over_plan, cast(null(), Integer).label("case_id"), cast(null(), String).label("country"),
                     cast(null(), String).label("status"), literal_column("0", Integer).label("part"))
              .select_from(rollup)
              .outerjoin(org, and_(r.kind == "org", r.key == cast(org.c.id, String))))
    cases = (select(literal_column("'case'", String).label("kind"), case.c.reference.label("key"), org.c.name,
                    summary.c.planned, summary.c.submitted, summary.c.approved, summary.c.without_rate,
                    literal_column("1", Integer).label("cases"), literal_column("0", Integer).label("over_plan"),
                    case.c.id.label("case_id"), case.c.country, case.c.status,
                    literal_column("1", Integer).label("part"))
             .select_from(case)
             .join(summary, summary.c.case_id == case.c.id)
             .join(org, org.c.id == case.c.organisation_id))
    if over_only:
        cases = cases.where(summary.c.submitted > summary.c.planned)
    cases = cases.order_by(case.c.reference).offset(literal_param("offset")).limit(literal_param("limit")).subquery()
    both = union_all(groups, select(cases)).subquery()
    return select(both).order_by(both.c.part, both.c.key)


_DASHBOARD = {False: _dashboard_statement(False), True: _dashboard_statement(True)}


def dashboard(db: Session, over_only: bool = False, page: int = 1, per_page: int = 25,
              today: date | None = None) -> Dashboard:
    """The budget dashboard from its summary tables (portal/reports/summary.py) with one page of cases
    (every case or those over their plan, by reference): one statement, however many cases and receipts
    there are (two for a page past the last one, which shows the last page)."""
    groups: dict[str, list[Figures]] = defaultdict(list)
    totals, over_plan, months, cases = Figures(key="total"), 0, {}, []
    page = max(1, page)
    rows = db.connection().execute(_DASHBOARD[over_only], {"offset": (page - 1) * per_page, "limit": per_page}).all()
    for kind, key, name, planned, submitted, approved, without_rate, count, over, case_id, country, status, _ in rows:
        if kind == "case":
            cases.append(CaseRow(case_id, key, name, country, status, planned, submitted, approved, without_rate))
        elif kind == "month":
            if submitted or approved:
                months[key] = (submitted, approved)
        elif kind == "total":
            totals = Figures(key=key, label=key, planned=planned, submitted=submitted, approved=approved,
                             without_rate=without_rate, cases=count)
            over_plan = over
        elif count:
            groups[kind].append(Figures(key=key, label=name or key, planned=planned, submitted=submitted,
                                        approved=approved, without_rate=without_rate, cases=count))
    pages = max(1, -(-(over_plan if over_only else totals.cases) // per_page))
    if page > pages:
        return dashboard(db, over_only, pages, per_page, today)
    order = lambda g: (-g.planned, g.label)  # noqa: E731
    budget, funding = budget_cents()
    config = current_app.config
    start, end = config["PROJECT_START"], config["PROJECT_END"]
    return Dashboard(budget=budget, funding=funding, totals=totals,
                     by_country=sorted(groups["country"], key=order),
                     by_organisation=sorted(groups["org"], key=order), months=_month_span(months),
                     over_plan_count=over_plan, start=start, end=end,
                     elapsed=elapsed_share(start, end, today or datetime.now(UTC).date()),
                     cases=cases, case_page=page, case_pages=pages)


# Belegliste -------------------------------------------------------------------------------------

@dataclass
class BelegRow:
    number: int
    case_reference: str
    receipt_reference: str
    supplier: str
    invoice_number: str
    invoice_date: date
    amount_minor: int
    currency: str
    rate_micro: int | None
    rate_month: date | None
    rate_source: str | None
    eur_cents: int | None
    budget_category: str
    budget_line: str
    approved_on: date | None
    approvers: list[str] = field(default_factory=list)
    translation: str = ""
    # The receipt's latest sample check: drawn or not, who checked it, its outcome ("ok", "issue", "" = open).
    sample_drawn: bool = False
    sample_checked_by: str = ""
    sample_outcome: str = ""
    rate_evidence: str = ""  # the kept file (name, number, SHA-256) or the reference typed with the rate
    rate_evidence_url: str = ""  # the kept file's download (staff)
    handover: HandoverState | None = None  # confirmed (date), missing, not applicable (reason), …


def belegliste(db: Session, start: date, end: date) -> list[BelegRow]:
    """The approved receipts invoiced in the period, numbered, with their approvals and their latest sample
    check, rate evidence and handover: a few statements."""
    listed = (Receipt.status == ReceiptStatus.APPROVED, Receipt.invoice_date >= start, Receipt.invoice_date <= end)
    rows = db.exec(select(Receipt, Case.reference, BudgetLine.category, BudgetLine.description)
                   .join(Case, Case.id == Receipt.case_id)
                   .outerjoin(BudgetLine, BudgetLine.id == Receipt.budget_line_id)
                   .where(*listed)
                   .order_by(Case.reference, Receipt.invoice_date, Receipt.id)).all()
    # The approvals of each receipt's current (approved) revision, first approval first.
    approvals: dict[int, list[tuple[datetime, str, str]]] = defaultdict(list)
    events = db.exec(select(ReceiptEvent.receipt_id, ReceiptEvent.at, ReceiptEvent.kind, User.name, User.email)
                     .join(Receipt, Receipt.id == ReceiptEvent.receipt_id)
                     .outerjoin(User, User.id == ReceiptEvent.actor_id)
                     .where(Receipt.status == ReceiptStatus.APPROVED, Receipt.invoice_date >= start,
                            Receipt.invoice_date <= end, ReceiptEvent.revision == Receipt.revision,
                            ReceiptEvent.kind.in_(("first_approval", "approved")))
                     .order_by(ReceiptEvent.at, ReceiptEvent.id))
    for receipt_id, at, kind, name, email in events:
        approvals[receipt_id].append((at, kind, name or email or ""))
    samples = {receipt_id: (outcome or "", name or email or "") for receipt_id, outcome, name, email in db.exec(
        select(SampleItem.receipt_id, SampleItem.outcome, User.name, User.email)
        .join(Receipt, Receipt.id == SampleItem.receipt_id).outerjoin(User, User.id == SampleItem.checked_by_id)
        .where(*listed).order_by(SampleItem.id))}  # the latest draw of a receipt wins
    proofs = receipt_rates.proofs_for(db, [receipt for receipt, *_rest in rows])
    handovers = handover.states_of(db, [row[0] for row in rows], condition=and_(*listed))
    out = []
    for number, (receipt, reference, category, description) in enumerate(rows, start=1):
        proof = proofs.get(receipt.id)
        mine = approvals.get(receipt.id, [])
        final = [at for at, kind, _n in mine if kind == "approved"]
        out.append(BelegRow(number=number, case_reference=reference, receipt_reference=receipt.reference,
                            supplier=receipt.supplier, invoice_number=receipt.invoice_number,
                            invoice_date=receipt.invoice_date, amount_minor=receipt.amount_minor,
                            currency=receipt.currency, rate_micro=receipt.rate_micro, rate_month=receipt.rate_month,
                            rate_source=receipt.rate_source, eur_cents=receipt.eur_cents,
                            budget_category=category or "", budget_line=description or "",
                            approved_on=final[-1].date() if final else None,
                            approvers=[name for _at, _k, name in mine], translation=receipt.translation,
                            sample_drawn=receipt.id in samples,
                            sample_outcome=samples.get(receipt.id, ("", ""))[0],
                            sample_checked_by=samples.get(receipt.id, ("", ""))[1],
                            rate_evidence=proof.reference() if proof else "",
                            rate_evidence_url=receipt_rates.evidence_url(proof.evidence.id)
                            if proof and proof.evidence else "",
                            handover=handovers.get(receipt.id)))
    return out


# Narrative report -------------------------------------------------------------------------------

@dataclass
class Count:
    key: str
    count: int


@dataclass
class ScoreFigures:
    key: str
    visits: int = 0
    met: int = 0
    sums: dict[str, int] = field(default_factory=dict)
    scored: dict[str, int] = field(default_factory=dict)

    def average(self, dimension: str) -> float | None:
        n = self.scored.get(dimension, 0)
        return self.sums.get(dimension, 0) / n if n else None


@dataclass
class Narrative:
    start: date
    end: date
    cases: int
    by_country: list[Count]
    by_measure: list[Count]
    by_status: list[Count]
    visits: ScoreFigures
    visits_by_country: list[ScoreFigures]
    participants: list[tuple[str, str, int]]  # (country, role, count)


def _counts(pairs: dict[str, int]) -> list[Count]:
    return [Count(k, n) for k, n in sorted(pairs.items(), key=lambda p: (-p[1], p[0]))]


def narrative(db: Session, start: date, end: date) -> Narrative:
    """Counts for the narrative report (Sachbericht) of a period.

    Cases: those whose return falls in the period (a case without a return date counts by the day it was
    opened), with their current measure and status. Visits: those done in the period.
    """
    day = func.coalesce(Case.return_date, func.date(Case.created_at))
    rows = db.exec(select(Case.country, Case.measure_type, Case.status, func.count(Case.id))
                   .where(day >= start, day <= end)
                   .group_by(Case.country, Case.measure_type, Case.status)).all()
    country: dict[str, int] = defaultdict(int)
    measure: dict[str, int] = defaultdict(int)
    status: dict[str, int] = defaultdict(int)
    for c, m, s, n in rows:
        country[c] += n
        measure[m] += n
        status[s] += n
    columns = [Case.country, func.count(Visit.id), func.count(Visit.id).filter(Visit.returnee_met.is_(True))]
    for name in DIMENSIONS:
        columns += [func.coalesce(func.sum(getattr(Visit, name)), 0), func.count(getattr(Visit, name))]
    visit_rows = db.exec(select(*columns).join(Case, Case.id == Visit.case_id)
                         .where(Visit.visit_date >= start, Visit.visit_date <= end)
                         .group_by(Case.country).order_by(Case.country)).all()
    total = ScoreFigures("total")
    per_country = []
    for row in visit_rows:
        figures = ScoreFigures(row[0], visits=int(row[1]), met=int(row[2]))
        for i, name in enumerate(DIMENSIONS):
            figures.sums[name] = int(row[3 + 2 * i])
            figures.scored[name] = int(row[4 + 2 * i])
            total.sums[name] = total.sums.get(name, 0) + figures.sums[name]
            total.scored[name] = total.scored.get(name, 0) + figures.scored[name]
        total.visits += figures.visits
        total.met += figures.met
        per_country.append(figures)
    return Narrative(start=start, end=end, cases=sum(country.values()), by_country=_counts(country),
                     by_measure=_counts(measure), by_status=_counts(status), visits=total,
                     visits_by_country=per_country, participants=participant_figures(db, start, end))


def participant_figures(db: Session, start: date, end: date) -> list[tuple[str, str, int]]:
    """Workshop participants (confirmed registrations) of workshops starting in the period, by country and
    role, in one statement: live registrations, plus the anonymous counts kept once a workshop's personal
    data was purged."""
    in_period = (Workshop.starts_on >= start, Workshop.starts_on <= end)
    live = (select(Registration.country.label("country"), Registration.role.label("role"),
                   func.count(Registration.id).label("n"))
            .join(Workshop, Workshop.id == Registration.workshop_id)
            .where(Registration.status == RegStatus.CONFIRMED, Workshop.personal_data_purged_at.is_(None), *in_period)
            .group_by(Registration.country, Registration.role))
    kept = (select(WorkshopStat.country.label("country"), WorkshopStat.role.label("role"),
                   func.sum(WorkshopStat.count).label("n"))
            .join(Workshop, Workshop.id == WorkshopStat.workshop_id)
            .where(WorkshopStat.status == RegStatus.CONFIRMED, Workshop.personal_data_purged_at.is_not(None),
                   *in_period)
            .group_by(WorkshopStat.country, WorkshopStat.role))
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for country, role, n in db.exec(union_all(live, kept)):
        totals[(country, role)] += int(n)
    return sorted(((c, r, n) for (c, r), n in totals.items()), key=lambda t: (t[0], t[1]))


# Audit log --------------------------------------------------------------------------------------

AUDIT_PER_PAGE = 50
AUDIT_EXPORT_LIMIT = 100_000


@dataclass
class AuditFilter:
    user_id: int | None = None
    object_type: str = ""
    object_id: str = ""
    action: str = ""
    start: date | None = None
    end: date | None = None
    page: int = 1
    after: tuple[datetime, int] | None = None  # keyset cursor: the (at, id) of the previous page's last row


@dataclass
class AuditPage:
    rows: list[tuple[AuditEntry, str]]
    total: int
    page: int
    pages: int

    @property
    def cursor(self) -> str:
        """Where the next page starts: after this page's last row (`after` in the next link)."""
        if not self.rows:
            return ""
        last = self.rows[-1][0]
        return f"{last.at.isoformat()}~{last.id}"


def parse_cursor(text: str) -> tuple[datetime, int] | None:
    """'2026-11-26T14:00:00.123456+00:00~123' → (at, id); None for anything else."""
    at, _sep, ident = (text or "").partition("~")
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        return None
    if not ident.isdigit() or len(ident) > 18:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)), int(ident)


def _audit_conditions(f: AuditFilter) -> list:
    conditions = []
    if f.user_id:
        conditions.append(AuditEntry.actor_id == f.user_id)
    if f.object_type:
        conditions.append(AuditEntry.object_type == f.object_type)
    if f.object_id:
        conditions.append(AuditEntry.object_id == f.object_id)
    if f.action:
        # "receipt." finds every receipt action; "approved" finds receipt.approved.
        conditions.append(or_(AuditEntry.action.startswith(f.action), AuditEntry.action.endswith(f.action)))
    if f.start:
        conditions.append(AuditEntry.at >= datetime.combine(f.start, time.min, tzinfo=UTC))
    if f.end:
        conditions.append(AuditEntry.at < datetime.combine(f.end + timedelta(days=1), time.min, tzinfo=UTC))
    return conditions


def _audit_query(f: AuditFilter):
    return (select(AuditEntry, User.name).outerjoin(User, User.id == AuditEntry.actor_id)
            .where(*_audit_conditions(f)).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()))


def audit_page(db: Session, f: AuditFilter) -> AuditPage:
    """One page of the audit log, newest first: two statements. With a cursor (the "Next" link's) the page
    starts right after the previous page's last row (keyset: an index range, however deep the page);
    without one it is counted from the start (OFFSET: a page number typed or a "Previous" link)."""
    total = db.exec(select(func.count()).select_from(AuditEntry).where(*_audit_conditions(f))).one()
    pages = max(1, math.ceil(total / AUDIT_PER_PAGE))
    page = min(max(1, f.page), pages)
    if f.after and page > 1:
        at, ident = f.after
        query = _audit_query(f).where(or_(AuditEntry.at < at, and_(AuditEntry.at == at, AuditEntry.id < ident)))
    else:
        query = _audit_query(f).offset((page - 1) * AUDIT_PER_PAGE)
    rows = db.exec(query.limit(AUDIT_PER_PAGE)).all()
    return AuditPage([(entry, name or "") for entry, name in rows], total, page, pages)


def audit_rows(db: Session, f: AuditFilter):
    """Every matching entry (up to the export limit), newest first, for the CSV export."""
    for entry, name in db.exec(_audit_query(f).limit(AUDIT_EXPORT_LIMIT)):
        yield entry, name or ""


def audit_options(db: Session) -> list[tuple[int, str]]:
    """(id, "name <e-mail>") of every account, for the user filter."""
    return [(uid, f"{name} <{email}>") for uid, name, email in
            db.exec(select(User.id, User.name, User.email).order_by(User.name, User.id))]


AUDIT_OBJECT_TYPES = ("Receipt", "ReceiptFile", "ExchangeRate", "Case", "BudgetLine", "CountryRule", "Visit",
                      "Organisation", "User", "SampleDraw", "SampleItem", "Workshop", "Registration")
