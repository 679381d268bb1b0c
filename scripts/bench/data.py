"""The bench volume, written fast with PostgreSQL COPY into the real tables (portal's models).

20 organisations, 10,000 cases with budget lines and audit entries, 30,000 visits, receipts (with their
submission/decision events) in two steps — first 1,000, later up to 100,000 — and 2,000 workshop
registrations when the workshop tables exist. Receipt file rows are skipped: no measured page lists files.
COPY bypasses the ORM, so each step rebuilds the dashboard's summary tables (portal/reports/summary.py).
"""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa

from portal.audit import AuditEntry
from portal.auth.models import User
from portal.auth.services import hasher
from portal.cases.models import BudgetLine, Case
from portal.orgs.models import Organisation
from portal.receipts.models import Receipt, ReceiptEvent
from portal.receipts.services import RECEIPT_FIELDS
from portal.reports.summary import rebuild
from portal.visits import latest
from portal.visits.models import Visit

PASSWORD = "bench-password-2025"  # noqa: S105 - bench-only accounts in a throwaway database
STAFF_EMAIL = "staff@bench.example.org"
ORGS, CASES, VISITS, REGISTRATIONS = 20, 10_000, 30_000, 2_000
RECEIPTS_PER_CASE = 10
COUNTRIES = ["GE", "SN", "NG", "IQ", "AF", "GM", "GN", "ML", "TN", "MA", "DZ", "AL", "XK", "RS", "MK", "AM",
             "AZ", "UA", "MD", "TR"]
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _copy(conn, model, rows: list[dict]) -> int:
    """COPY rows (dicts keyed by column name) into the model's table; JSON columns as JSON text."""
    if not rows:
        return 0
    table = model.__table__
    cols = list(rows[0])
    missing = [c for c in cols if c not in table.c]
    if missing:
        raise KeyError(f"{table.name} has no columns {missing}")
    json_cols = {c for c in cols if isinstance(table.c[c].type, sa.JSON)}
    raw = conn.connection.dbapi_connection
    with raw.cursor() as cur, cur.copy(f'COPY "{table.name}" ({", ".join(cols)}) FROM STDIN') as copy:  # noqa: S608
        for row in rows:
            copy.write_row([json.dumps(row[c]) if c in json_cols and row[c] is not None else row[c] for c in cols])
    return len(rows)


def _fix_sequences(conn, models) -> None:
    for model in models:
        name = model.__table__.name
        conn.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "  # noqa: S608
                             f"(SELECT coalesce(max(id), 1) FROM \"{name}\"))"))


def base(engine, n_orgs: int = ORGS, n_cases: int = CASES, n_visits: int = VISITS) -> dict:
    """Organisations, users, cases, budget lines, audit entries and visits. Returns ids the bench needs.

    The soak (scripts/soak.py) asks for a smaller volume; the bench takes the defaults."""
    rnd = random.Random(8)
    pw = hasher.hash(PASSWORD)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        _copy(conn, Organisation, [{"id": i, "name": f"Partner organisation {i:02d}", "country": COUNTRIES[i - 1],
                                    "contact_email": f"office{i}@bench.example.org", "active": True,
                                    "created_at": now} for i in range(1, n_orgs + 1)])
        users = [{"id": 1, "email": "admin@bench.example.org", "name": "Bench Admin", "role": "admin"},
                 {"id": 2, "email": STAFF_EMAIL, "name": "Bench Staff", "role": "staff"},
                 {"id": 3, "email": "staff2@bench.example.org", "name": "Bench Staff Two", "role": "staff"}]
        users += [{"id": 3 + i, "email": f"partner{i}@bench.example.org", "name": f"Partner {i}", "role": "partner",
                   "organisation_id": i} for i in range(1, n_orgs + 1)]
        _copy(conn, User, [{"organisation_id": None, **u, "password_hash": pw, "locale": "en", "active": True,
                            "session_version": 1, "created_at": now} for u in users])
        cases, lines, audit = [], [], []
        line_id = 0
        for cid in range(1, n_cases + 1):
            created = T0 + timedelta(minutes=cid * 50)
            org = (cid - 1) % n_orgs + 1
            cases.append({"id": cid, "reference": f"IP-{created.year}-{cid:05d}", "country": COUNTRIES[org - 1],
                          "organisation_id": org, "return_date": created.date(),
                          "measure_type": rnd.choice(["vocational", "business", "both"]),
                          "status": rnd.choice(["planned", "active", "active", "monitoring", "closed"]),
                          "notes": "", "eligibility_reason": None, "created_by_id": 2, "created_at": created,
                          "updated_at": created})
            for n in range(3):
                line_id += 1
                lines.append({"id": line_id, "case_id": cid, "category": ["equipment", "stock", "training"][n],
                              "description": f"Budget line {n + 1} of case {cid}",
                              "planned_cents": rnd.randrange(20_000, 400_000, 100)})
            audit.append({"at": created, "actor_id": 2, "action": "case.created", "object_type": "Case",
                          "object_id": str(cid), "before": None, "after": {"reference": cases[-1]["reference"]}})
            if cases[-1]["status"] != "planned":
                audit.append({"at": created + timedelta(days=3), "actor_id": 2, "action": "case.status_changed",
                              "object_type": "Case", "object_id": str(cid), "before": {"status": "planned"},
                              "after": {"status": cases[-1]["status"]}})
        _copy(conn, Case, cases)
        _copy(conn, BudgetLine, lines)
        _copy(conn, AuditEntry, audit)
        visits = []
        for vid in range(1, n_visits + 1):
            cid = (vid - 1) % n_cases + 1
            day = date(2024, 2, 1) + timedelta(days=(vid * 7) % 600)
            flagged = vid % 50 == 0
            visits.append({"id": vid, "case_id": cid, "draft_key": f"{vid:032x}", "visit_date": day,
                           "mode": rnd.choice(["home", "business", "office", "call"]), "place": "",
                           "location_consent": False, "attendees": "", "returnee_met": True, "not_met_reason": "",
                           "purpose": "monitoring", "goods_state": "in_use", "business_status": "operating",
                           "income_band": "100_300", "score_economic": rnd.randint(1, 5),
                           "score_social": rnd.randint(1, 5), "score_psychosocial": rnd.randint(1, 5),
                           "flag_health": flagged, "flag_psychosocial": False, "flag_family": False,
                           "flag_safety": False, "flag_legal": False,
                           "flag_details": "Needs a doctor" if flagged else "", "actions_taken": "",
                           "next_visit_date": day + timedelta(days=90), "notes": "", "created_by_id": 4 + (cid - 1) % n_orgs,
                           "created_at": datetime.combine(day, datetime.min.time(), UTC),
                           "acknowledged_at": None if vid % 200 == 0 else (now if flagged else None),
                           "acknowledged_by_id": None})
        _copy(conn, Visit, visits)
        latest.rebuild(conn)  # COPY bypasses the ORM that keeps each case's latest visit
        try:
            with conn.begin_nested():  # the workshop feature is being built: its tables may change under us
                registrations = _workshop(conn, rnd, now)
        except (sa.exc.SQLAlchemyError, KeyError) as exc:
            registrations = f"skipped: {str(exc).splitlines()[0][:120]}"
        _fix_sequences(conn, [Organisation, User, Case, BudgetLine, AuditEntry, Visit])
        rebuild(conn)
    return {"registrations": registrations}


def _workshop(conn, rnd, now) -> str:
    """2,000 registrations if the workshop tables exist (the workshop feature is being built meanwhile)."""
    insp = sa.inspect(conn)
    if not (insp.has_table("workshops") and insp.has_table("workshop_registrations")):
        return "skipped: the workshop tables do not exist yet"
    from portal.workshop.models import Registration, Workshop

    wcols = {c["name"]: c for c in insp.get_columns("workshops")}
    base_row = {"id": 1, "public_key": "b" * 32, "title": "Bench workshop",
                "description": "", "city": "Berlin", "venue": "Hall", "working_languages": "en,de",
                "created_at": now}
    for name, col in wcols.items():  # required columns the bench does not know: a plain value of their type
        if name not in base_row and not col["nullable"] and col.get("default") is None:
            base_row[name] = _plain(col["type"], now)
    _copy(conn, Workshop, [base_row])
    rcols = {c["name"]: c for c in insp.get_columns("workshop_registrations")}
    rows = []
    for i in range(1, REGISTRATIONS + 1):
        row = {"id": i, "workshop_id": 1, "status": "confirmed", "email": f"guest{i}@bench.example.org",
               "name": f"Guest {i}", "organisation": f"Partner organisation {i % ORGS + 1:02d}",
               "country": COUNTRIES[i % ORGS], "role": "partner", "languages": "en", "dietary_needs": "",
               "accessibility_needs": "", "locale": "en", "link_nonce": f"{i:032x}", "staff_message": "",
               "created_at": now, "updated_at": now}
        for name, col in rcols.items():
            if name not in row and not col["nullable"] and col.get("default") is None:
                row[name] = _plain(col["type"], now)
        rows.append(row)
    _copy(conn, Registration, rows)
    _fix_sequences(conn, [Workshop, Registration])
    return f"{len(rows)} registrations"


def _plain(coltype, now):
    kind = type(coltype).__name__.lower()
    if "int" in kind:
        return 0
    if "bool" in kind:
        return False
    if "datetime" in kind or "timestamp" in kind:
        return now
    if "date" in kind:
        return now.date()
    if "json" in kind:
        return {}
    return ""


def receipts(engine, first_case: int, last_case: int) -> int:
    """RECEIPTS_PER_CASE receipts on each case in [first_case, last_case], with their events and audit entries.

    Statuses as a review desk that keeps up: most decided, ~3 % waiting for a decision.
    """
    rnd = random.Random(first_case)
    rows, events, audit = [], [], []
    with engine.begin() as conn:
        rid = conn.execute(sa.text("SELECT coalesce(max(id), 0) FROM receipts")).scalar_one()
        eid = conn.execute(sa.text("SELECT coalesce(max(id), 0) FROM receipt_events")).scalar_one()
        for cid in range(first_case, last_case + 1):
            org = (cid - 1) % ORGS + 1
            for n in range(RECEIPTS_PER_CASE):
                rid += 1
                created = T0 + timedelta(minutes=cid * 50 + n * 7 + 60 * 24 * 10)
                status = rnd.choices(["approved", "rejected", "correction_requested", "submitted"],
                                     [90, 4, 3, 3])[0]
                cents = rnd.randrange(1_000, 200_000)
                rows.append({"id": rid, "case_id": cid, "budget_line_id": (cid - 1) * 3 + n % 3 + 1,
                             "supplier": f"Supplier {rnd.randrange(5000)}", "invoice_number": f"INV-{rid}",
                             "invoice_date": created.date(), "amount_minor": cents, "currency": "EUR",
                             "eur_cents": cents, "rate_micro": 1_000_000, "rate_month": created.date().replace(day=1),
                             "rate_source": "EUR", "description": "Goods for the business plan", "translation": "",
                             "paid_directly_confirmed": True, "status": status, "duplicate_suspected": False,
                             "over_budget": False, "outside_period": False, "rate_missing": False,
                             "nonce": f"bench-{rid:012d}-nonce", "uploaded_by_id": 3 + org, "created_at": created,
                             "updated_at": created, "revision": 1, "version": 1})
                # What the portal records on submission: every field as submitted (the receipt page shows
                # the amounts of each revision from it; a snapshot without them made /receipts/<id> a 500).
                snapshot = {k: (v.isoformat() if hasattr(v, "isoformat") else v)
                            for k, v in rows[-1].items() if k in RECEIPT_FIELDS}
                snapshot["status"] = "submitted"
                eid += 1
                events.append({"id": eid, "receipt_id": rid, "revision": 1, "actor_id": 3 + org, "kind": "submitted",
                               "comment": "", "snapshot": snapshot, "at": created})
                audit.append({"at": created, "actor_id": 3 + org, "action": "receipt.submitted",
                              "object_type": "Receipt", "object_id": str(rid), "before": None,
                              "after": snapshot})
                if status != "submitted":
                    eid += 1
                    kind = status if status != "correction_requested" else "correction_requested"
                    events.append({"id": eid, "receipt_id": rid, "revision": 1, "actor_id": 2, "kind": kind,
                                   "comment": "", "snapshot": None, "at": created + timedelta(days=2)})
        _copy(conn, Receipt, rows)
        _copy(conn, ReceiptEvent, events)
        _copy(conn, AuditEntry, audit)
        _fix_sequences(conn, [Receipt, ReceiptEvent, AuditEntry])
        rebuild(conn)  # COPY bypasses the ORM that keeps the dashboard's summary tables in step
    # VACUUM as well as ANALYZE: after a bulk load PostgreSQL's autovacuum would otherwise start on these
    # tables in the middle of the next measurement and take one of the two cores from it.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM (ANALYZE)"))
    return len(rows)
