"""Each case's latest visit, kept (visits.models.LatestVisit) for the visits due list and the digest.

One hook, as for the dashboard's summary tables: after every ORM flush that adds a visit (visits are never
edited or deleted; erasure blanks their texts, not their dates), the cases concerned are looked up again in
the same transaction. On PostgreSQL the case row is locked first (FOR NO KEY UPDATE, which does not wait for
the key-share locks that inserting a visit takes), so two transactions adding visits to one case take turns
and the second sees the first one's visit. Bulk loads that bypass the ORM call rebuild();
`flask --app portal visits reconcile [--fix]` recomputes the table from the visits and names each difference.
"""

from __future__ import annotations

from sqlalchemy import bindparam, delete, event, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from portal.cases.models import Case
from portal.visits.models import LatestVisit, Visit

T = LatestVisit.__table__
_LATEST_OF_CASE = (select(Visit.id, Visit.visit_date, Visit.next_visit_date)
                   .where(Visit.case_id == bindparam("case_id"))
                   .order_by(Visit.visit_date.desc(), Visit.id.desc()).limit(1))
_LOCK_CASE = select(Case.id).where(Case.id == bindparam("case_id")).with_for_update(key_share=True)


def _after_flush(session: Session, _context) -> None:
    case_ids = {obj.case_id for obj in session.new if isinstance(obj, Visit)}
    if case_ids:
        refresh_cases(session.connection(), case_ids)


def install() -> None:
    """Keep the table in step with every ORM flush (called once by create_app)."""
    if not event.contains(Session, "after_flush", _after_flush):
        event.listen(Session, "after_flush", _after_flush)


def refresh_cases(conn: Connection, case_ids) -> None:
    """Look up the latest visit of each case again and store it (in the caller's transaction)."""
    for case_id in sorted(case_ids):
        if conn.dialect.name == "postgresql":
            conn.execute(_LOCK_CASE, {"case_id": case_id})
        row = conn.execute(_LATEST_OF_CASE, {"case_id": case_id}).first()
        conn.execute(delete(T).where(T.c.case_id == case_id))
        if row is not None:
            conn.execute(insert(T).values(case_id=case_id, visit_id=row.id, visit_date=row.visit_date,
                                          next_visit_date=row.next_visit_date))


def from_scratch(conn: Connection) -> dict[int, tuple]:
    """case id → (visit id, visit date, next visit date) of its latest visit, from the visits themselves."""
    ranked = select(Visit.case_id, Visit.id, Visit.visit_date, Visit.next_visit_date,
                    func.row_number().over(partition_by=Visit.case_id,
                                           order_by=(Visit.visit_date.desc(), Visit.id.desc())).label("rank")
                    ).subquery()
    rows = conn.execute(select(ranked.c.case_id, ranked.c.id, ranked.c.visit_date, ranked.c.next_visit_date)
                        .where(ranked.c.rank == 1))
    return {case_id: (visit_id, day, next_day) for case_id, visit_id, day, next_day in rows}


def rebuild(conn: Connection) -> None:
    """Fill the table from scratch (after a bulk load that bypassed the ORM)."""
    conn.execute(delete(T))
    found = from_scratch(conn)
    if found:
        conn.execute(insert(T), [{"case_id": c, "visit_id": v, "visit_date": d, "next_visit_date": n}
                                 for c, (v, d, n) in found.items()])


def reconcile(conn: Connection, fix: bool = False) -> list[str]:
    """Every difference between the table and the visits, as lines; with fix, the table is rewritten."""
    expected = from_scratch(conn)
    kept = {c: (v, d, n) for c, v, d, n in conn.execute(
        select(T.c.case_id, T.c.visit_id, T.c.visit_date, T.c.next_visit_date))}
    found = [f"case {case_id}: kept {kept.get(case_id)}, visits say {expected.get(case_id)}"
             for case_id in sorted(expected.keys() | kept.keys()) if kept.get(case_id) != expected.get(case_id)]
    if found and fix:
        rebuild(conn)
    return found
