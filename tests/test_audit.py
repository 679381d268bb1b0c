"""The audit log is append-only and hash-chained; the verifier names the first broken entry."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DatabaseError
from sqlmodel import Session, select

from portal import audit
from portal import db as dbm
from portal.audit import AuditEntry
from tests.factories import make_org, make_user
from tests.helpers import _drop_guard, _write_entries


def _verify(app):
    return app.test_cli_runner().invoke(args=["audit", "verify"])


def test_entries_are_chained_and_verify(app, client, db):
    client.login(make_user(db, role="admin"))
    client.submit("/organisations/new", {"name": "Chain Org", "country": "GE", "contact_email": "c@example.org"})
    _write_entries(app, 3)
    entries = db.exec(select(AuditEntry).order_by(AuditEntry.seq)).all()
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert entries[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:], strict=False))
    result = _verify(app)
    assert result.exit_code == 0 and f"intact: {len(entries)} entries" in result.output


def test_the_database_refuses_to_change_or_delete_entries(app, db):
    _write_entries(app, 1)
    for statement in ("UPDATE audit_log SET action = 'forged'", "DELETE FROM audit_log"):
        with pytest.raises(DatabaseError, match="append-only"):
            db.connection().execute(sa.text(statement))
        db.rollback()


def test_a_tampered_entry_is_named(app, db):
    _write_entries(app, 5)
    victim = db.exec(select(AuditEntry).where(AuditEntry.seq == 3)).one()
    _drop_guard(db)
    db.connection().execute(sa.text("UPDATE audit_log SET after = :a WHERE id = :id"),
                            {"a": '{"i": 999}', "id": victim.id})
    db.commit()
    result = _verify(app)
    assert result.exit_code == 1
    assert f"entry id {victim.id} (chain position 3) was changed" in result.output
    assert "after 2 good entries" in result.output


def test_deleted_entries_are_noticed(app, db):
    _write_entries(app, 4)
    _drop_guard(db)
    db.connection().execute(sa.text("DELETE FROM audit_log WHERE seq = 2"))
    db.commit()
    assert "entry 2 of the chain is missing" in _verify(app).output
    db.connection().execute(sa.text("DELETE FROM audit_log WHERE seq = 4"))
    db.connection().execute(sa.text("DELETE FROM audit_log WHERE seq >= 2"))
    db.commit()
    assert "the newest entries are missing" in _verify(app).output


def test_concurrent_writers_never_fork_the_chain(app, db):
    make_org(db)
    errors = []

    def writer():
        try:
            _write_entries(app, 15)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(db.exec(select(AuditEntry)).all()) == 60
    assert _verify(app).exit_code == 0


def test_migration_chains_entries_written_before_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    dbm.upgrade(url, "0006")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for i in range(3):
            conn.execute(sa.text("INSERT INTO audit_log (at, action, object_type, object_id) "
                                 "VALUES (:at, 'old.action', 'Thing', :id)"),
                         {"at": f"2024-01-0{i + 1} 10:00:00.000000", "id": str(i)})
    dbm.upgrade(url)
    with Session(engine) as s:
        checked, problem = audit.verify_chain(s)
    engine.dispose()
    assert (checked, problem) == (3, None)
