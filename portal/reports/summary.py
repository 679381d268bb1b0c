"""The dashboard's summary tables (portal/reports/models.py), kept in step with every change.

One hook, not a call in each service: after every ORM flush that adds, changes or removes a receipt
(status, EUR amount, invoice date, case), a budget line (planned amount, case) or a case (organisation,
country), the affected cases are recomputed from their rows — in the same transaction, so the figures
commit or roll back with the change. Creating, correcting, deciding, reconverting at a new rate and
erasing all go through the ORM, and so does whatever is added later (the desk's bulk approval). A case's
summary row is locked first (PostgreSQL: SELECT … FOR UPDATE), so two transactions changing receipts of
one case take turns and the second one counts the first one's committed rows; the roll-ups (totals,
countries, organisations, months) are moved by the difference between the case's old and new figures
with `x = x + delta` upserts, which commute.

Core statements that bypass the ORM (bulk loads such as the bench data) must call `rebuild()`;
`flask --app portal reports reconcile` recomputes everything from scratch, names every difference and,
with `--fix`, rewrites the tables.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import case as when
from sqlalchemy import delete, event, inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlmodel import func

from portal.cases.models import BudgetLine, Case
from portal.receipts.models import COUNTED, Receipt, ReceiptStatus
from portal.reports.models import BudgetCaseMonth, BudgetRollup, BudgetSummary

_RECEIPT_FIELDS = ("status", "eur_cents", "invoice_date", "case_id")
_LINE_FIELDS = ("planned_cents", "case_id")
_CASE_FIELDS = ("organisation_id", "country")
_ROLLUP_FIELDS = ("planned", "submitted", "approved", "without_rate", "cases", "over_plan")

S, C, R = BudgetSummary.__table__, BudgetCaseMonth.__table__, BudgetRollup.__table__


@dataclass
class CaseSum:
    organisation_id: int
    country: str
    planned: int = 0
    submitted: int = 0
    approved: int = 0
    without_rate: int = 0
    months: dict[str, tuple[int, int]] = field(default_factory=dict)  # month → (submitted, approved)

    def rollup_keys(self) -> list[tuple[str, str]]:
        return [("total", ""), ("country", self.country), ("org", str(self.organisation_id))]

    def vector(self) -> tuple[int, ...]:
        return (self.planned, self.submitted, self.approved, self.without_rate, 1,
                int(self.submitted > self.planned))


def _month(day) -> str:
    return f"{day.year:04d}-{day.month:02d}"


# Keeping the tables in step ---------------------------------------------------------------------

def _changed(obj, names) -> bool:
    state = inspect(obj)
    return any(state.attrs[name].history.has_changes() for name in names)


def _old(obj, name):
    history = inspect(obj).attrs[name].history
    return history.deleted[0] if history.deleted else getattr(obj, name)


def affected_cases(session: Session) -> set[int]:
    """The ids of the cases whose figures the pending flush changes."""
    ids: set[int] = set()
    for obj in [*session.new, *session.deleted]:
        if isinstance(obj, Receipt | BudgetLine):
            ids.add(obj.case_id)
        elif isinstance(obj, Case):
            ids.add(obj.id)
    for obj in session.dirty:
        if isinstance(obj, Receipt) and _changed(obj, _RECEIPT_FIELDS) or \
                isinstance(obj, BudgetLine) and _changed(obj, _LINE_FIELDS):
            ids.update((obj.case_id, _old(obj, "case_id")))
        elif isinstance(obj, Case) and _changed(obj, _CASE_FIELDS):
            ids.add(obj.id)
    ids.discard(None)
    return ids


def _after_flush(session: Session, _context) -> None:
    ids = affected_cases(session)
    if ids:
        refresh_cases(session.connection(), ids)


def install() -> None:
    """Keep the summary tables in step with every ORM flush (called once by create_app)."""
    if not event.contains(Session, "after_flush", _after_flush):
        event.listen(Session, "after_flush", _after_flush)


def compute_case(conn: Connection, case_id: int) -> CaseSum | None:
    """One case's figures from its rows, as the transaction sees them now."""
    planned = (select(func.coalesce(func.sum(BudgetLine.planned_cents), 0))
               .where(BudgetLine.case_id == case_id).scalar_subquery())
    row = conn.execute(select(Case.organisation_id, Case.country, planned).where(Case.id == case_id)).first()
    if row is None:
        return None
    out = CaseSum(organisation_id=row[0], country=row[1], planned=int(row[2]))
    months: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for status, eur, day in conn.execute(select(Receipt.status, Receipt.eur_cents, Receipt.invoice_date)
                                         .where(Receipt.case_id == case_id, Receipt.status.in_(COUNTED))):
        if eur is None:
            out.without_rate += 1
            continue
        approved = eur if status == ReceiptStatus.APPROVED else 0
        out.submitted += eur
        out.approved += approved
        month = months[_month(day)]
        month[0] += eur
        month[1] += approved
    out.months = {m: (s, a) for m, (s, a) in months.items()}
    return out


def _stored(conn: Connection, case_id: int, lock: bool) -> CaseSum | None:
    query = select(S).where(S.c.case_id == case_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        return None
    months = {m: (int(s), int(a)) for m, s, a in conn.execute(
        select(C.c.month, C.c.submitted, C.c.approved).where(C.c.case_id == case_id))}
    return CaseSum(organisation_id=row.organisation_id, country=row.country, planned=int(row.planned),
                   submitted=int(row.submitted), approved=int(row.approved), without_rate=int(row.without_rate),
                   months=months)


def _upsert(conn: Connection, table, keys: list[str], values: dict, add: bool) -> None:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(table).values(**values)
    columns = [c for c in values if c not in keys]
    stmt = stmt.on_conflict_do_update(
        index_elements=keys,
        set_={c: (table.c[c] + stmt.excluded[c]) if add else stmt.excluded[c] for c in columns})
    conn.execute(stmt)


def _deltas(old: CaseSum | None, new: CaseSum | None) -> dict[tuple[str, str], list[int]]:
    """How the roll-up rows move when a case goes from `old` to `new` figures."""
    out: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * len(_ROLLUP_FIELDS))
    for sign, figures in ((-1, old), (1, new)):
        if figures is None:
            continue
        vector = figures.vector()
        for key in figures.rollup_keys():
            for i, v in enumerate(vector):
                out[key][i] += sign * v
        for month, (s, a) in figures.months.items():
            out[("month", month)][1] += sign * s
            out[("month", month)][2] += sign * a
    return {k: v for k, v in out.items() if any(v)}


def refresh_cases(conn: Connection, case_ids) -> None:
    """Recompute the given cases and move the roll-ups by the difference (in the caller's transaction)."""
    for case_id in sorted(case_ids):  # one order everywhere: two writers never wait for each other in a circle
        old = _stored(conn, case_id, lock=True)
        new = compute_case(conn, case_id)
        if old == new:
            continue
        if new is None:
            conn.execute(delete(S).where(S.c.case_id == case_id))
        else:
            _upsert(conn, S, ["case_id"], {"case_id": case_id, "organisation_id": new.organisation_id,
                                           "country": new.country, "planned": new.planned,
                                           "submitted": new.submitted, "approved": new.approved,
                                           "without_rate": new.without_rate}, add=False)
        if (old.months if old else {}) != (new.months if new else {}):
            conn.execute(delete(C).where(C.c.case_id == case_id))
            if new and new.months:
                conn.execute(C.insert(), [{"case_id": case_id, "month": m, "submitted": s, "approved": a}
                                          for m, (s, a) in sorted(new.months.items())])
        for (kind, key), vector in sorted(_deltas(old, new).items()):
            _upsert(conn, R, ["kind", "key"], {"kind": kind, "key": key, **dict(zip(_ROLLUP_FIELDS, vector,
                                                                                    strict=True))}, add=True)


# Reconcile --------------------------------------------------------------------------------------

@dataclass
class Tables:
    summary: dict[int, tuple] = field(default_factory=dict)
    months: dict[tuple[int, str], tuple[int, int]] = field(default_factory=dict)
    rollup: dict[tuple[str, str], tuple[int, ...]] = field(default_factory=dict)


def _month_sql(conn: Connection, column):
    if conn.dialect.name == "sqlite":
        return func.strftime("%Y-%m", column)
    return func.to_char(column, "YYYY-MM")


def from_scratch(conn: Connection) -> Tables:
    """Every summary row computed from the cases, budget lines and receipts (a few grouped statements)."""
    out = Tables()
    planned = dict(conn.execute(select(BudgetLine.case_id, func.sum(BudgetLine.planned_cents))
                                .group_by(BudgetLine.case_id)).all())
    counted = Receipt.status.in_(COUNTED)
    approved = when((Receipt.status == ReceiptStatus.APPROVED, Receipt.eur_cents), else_=0)
    spent = {cid: (int(s or 0), int(a or 0), int(n)) for cid, s, a, n in conn.execute(
        select(Receipt.case_id, func.sum(Receipt.eur_cents), func.sum(approved),
               func.count() - func.count(Receipt.eur_cents))
        .where(counted).group_by(Receipt.case_id))}
    month = _month_sql(conn, Receipt.invoice_date)
    for cid, m, s, a in conn.execute(select(Receipt.case_id, month, func.sum(Receipt.eur_cents), func.sum(approved))
                                     .where(counted, Receipt.eur_cents.is_not(None))
                                     .group_by(Receipt.case_id, month)):
        out.months[(cid, m)] = (int(s), int(a))
    rollup: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * len(_ROLLUP_FIELDS))
    for cid, org, country in conn.execute(select(Case.id, Case.organisation_id, Case.country)):
        s, a, n = spent.get(cid, (0, 0, 0))
        figures = CaseSum(organisation_id=org, country=country, planned=int(planned.get(cid) or 0), submitted=s,
                          approved=a, without_rate=n)
        out.summary[cid] = (org, country, figures.planned, s, a, n)
        for key in figures.rollup_keys():
            for i, v in enumerate(figures.vector()):
                rollup[key][i] += v
    for (_cid, m), (s, a) in out.months.items():
        rollup[("month", m)][1] += s
        rollup[("month", m)][2] += a
    out.rollup = {k: tuple(v) for k, v in rollup.items() if any(v)}
    return out


def stored(conn: Connection) -> Tables:
    out = Tables()
    for row in conn.execute(select(S)):
        out.summary[row.case_id] = (row.organisation_id, row.country, int(row.planned), int(row.submitted),
                                    int(row.approved), int(row.without_rate))
    for row in conn.execute(select(C)):
        out.months[(row.case_id, row.month)] = (int(row.submitted), int(row.approved))
    for row in conn.execute(select(R)):
        vector = tuple(int(getattr(row, f)) for f in _ROLLUP_FIELDS)
        if any(vector):  # a group that went back to nothing is the same as no group
            out.rollup[(row.kind, row.key)] = vector
    return out


def differences(want: Tables, have: Tables) -> list[str]:
    """Every row that differs, named: 'budget_summary case 12: submitted 1000 (stored 900)'."""
    out = []
    columns = {"budget_summary": ("organisation_id", "country", "planned", "submitted", "approved",
                                  "without_rate"),
               "budget_case_months": ("submitted", "approved"), "budget_rollup": _ROLLUP_FIELDS}
    for table, a, b, name in (("budget_summary", want.summary, have.summary, lambda k: f"case {k}"),
                              ("budget_case_months", want.months, have.months, lambda k: f"case {k[0]} month {k[1]}"),
                              ("budget_rollup", want.rollup, have.rollup, lambda k: f"{k[0]} {k[1]!r}")):
        for key in sorted(set(a) | set(b), key=str):
            if key not in b:
                out.append(f"{table} {name(key)}: missing")
            elif key not in a:
                out.append(f"{table} {name(key)}: should not exist")
            elif a[key] != b[key]:
                diffs = [f"{col} {x} (stored {y})" for col, x, y in zip(columns[table], a[key], b[key], strict=True)
                         if x != y]
                out.append(f"{table} {name(key)}: " + ", ".join(diffs))
    return out


def write(conn: Connection, tables: Tables) -> None:
    """Replace the three tables' rows with `tables`."""
    for table in (S, C, R):
        conn.execute(delete(table))
    if tables.summary:
        conn.execute(S.insert(), [{"case_id": cid, "organisation_id": org, "country": country, "planned": p,
                                   "submitted": s, "approved": a, "without_rate": n}
                                  for cid, (org, country, p, s, a, n) in tables.summary.items()])
    if tables.months:
        conn.execute(C.insert(), [{"case_id": cid, "month": m, "submitted": s, "approved": a}
                                  for (cid, m), (s, a) in tables.months.items()])
    if tables.rollup:
        conn.execute(R.insert(), [{"kind": k, "key": key, **dict(zip(_ROLLUP_FIELDS, v, strict=True))}
                                  for (k, key), v in tables.rollup.items()])


def reconcile(conn: Connection, fix: bool = False) -> list[str]:
    """Compare the summary tables with a computation from scratch; with `fix`, rewrite them. Returns the
    differences found (before fixing). The caller commits."""
    if conn.dialect.name == "postgresql" and fix:
        # No change of a receipt, line or case may slip in between computing and writing.
        conn.exec_driver_sql("LOCK TABLE receipts, budget_lines, cases IN SHARE MODE")
    want = from_scratch(conn)
    found = differences(want, stored(conn))
    if found and fix:
        write(conn, want)
    return found


def rebuild(conn: Connection) -> None:
    """Fill the tables from scratch (after a bulk load that bypassed the ORM)."""
    write(conn, from_scratch(conn))
