"""The audit log: who did what to which object, with the state before and after.

Append-only and tamper-evident: every entry carries its position in a hash chain (`seq`), the hash of
the entry before it and its own hash over its content. A one-row table `audit_head` holds the newest
position and hash; taking it with an UPDATE serialises writers, so the chain never forks. The database
refuses UPDATE and DELETE on the log (triggers, migration 0007); `flask --app portal audit verify`
recomputes the chain and names the first entry that does not fit.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, text
from sqlmodel import Field, Session, SQLModel, select

from portal.clock import utcnow

GENESIS = "0" * 64


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    actor_id: int | None = Field(default=None, foreign_key="users.id", index=True)
    action: str = Field(max_length=64, index=True)
    object_type: str = Field(max_length=32)
    object_id: str = Field(max_length=64)
    before: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    after: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    seq: int | None = Field(default=None, unique=True)
    prev_hash: str | None = Field(default=None, max_length=64)
    hash: str | None = Field(default=None, max_length=64)


class AuditHead(SQLModel, table=True):
    """The newest link of the chain (one row, id 1)."""

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str = Field(default=GENESIS, max_length=64)


def entry_hash(entry: AuditEntry) -> str:
    """SHA-256 over the entry's content and the hash before it (canonical JSON)."""
    at = entry.at if entry.at.tzinfo else entry.at.replace(tzinfo=UTC)
    content = {"seq": entry.seq, "prev": entry.prev_hash, "at": at.astimezone(UTC).isoformat(),
               "actor": entry.actor_id, "action": entry.action, "type": entry.object_type, "id": entry.object_id,
               "before": entry.before, "after": entry.after}
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
                          .encode()).hexdigest()


def record(db: Session, actor, action: str, obj, before: dict | None = None, after: dict | None = None) -> None:
    """Add an audit entry to the caller's transaction (it commits with the change it describes)."""
    entry = AuditEntry(
        actor_id=getattr(actor, "id", None),
        action=action,
        object_type=type(obj).__name__ if not isinstance(obj, tuple) else obj[0],
        object_id=str(obj.id if not isinstance(obj, tuple) else obj[1]),
        before=before,
        after=after,
    )
    # Taking the head row locks it until this transaction ends: concurrent writers queue here.
    conn = db.connection()
    head = conn.execute(text("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")).one()
    entry.seq, entry.prev_hash = head.seq, head.hash
    entry.hash = entry_hash(entry)
    conn.execute(text("UPDATE audit_head SET hash = :hash WHERE id = 1"), {"hash": entry.hash})
    db.add(entry)


def verify_chain(db: Session) -> tuple[int, str | None]:
    """(entries checked, None) when the chain holds, else (checked, description of the first break)."""
    prev, expected = GENESIS, 1
    query = select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=1000)
    entries = db.exec(query)
    try:
        for entry in entries:
            if entry.seq != expected:
                return expected - 1, f"entry {expected} of the chain is missing (next found: id {entry.id})"
            if entry.prev_hash != prev or entry.hash != entry_hash(entry):
                return expected - 1, f"entry id {entry.id} (chain position {entry.seq}) was changed"
            prev, expected = entry.hash, expected + 1
    finally:
        entries.close()  # a server-side cursor on PostgreSQL: release it even when we stop early
    head = db.get(AuditHead, 1)
    if head is None or head.seq != expected - 1 or head.hash != prev:
        return expected - 1, "the newest entries are missing (the chain head points past the last entry)"
    return expected - 1, None


def snapshot(obj, fields: tuple[str, ...]) -> dict[str, Any]:
    """The audit-relevant fields of an object as JSON-friendly values."""
    out = {}
    for name in fields:
        value = getattr(obj, name)
        out[name] = value.isoformat() if hasattr(value, "isoformat") else value
    return out


def verify_job() -> str:
    """The daily job: verify the chain; if it is broken, mail every active admin (through the outbox, once
    per admin and day however often this runs)."""
    from datetime import date

    from flask import current_app, render_template
    from flask_babel import force_locale
    from flask_babel import gettext as _

    from portal import db as dbm
    from portal import mail
    from portal.auth.models import Role, User

    with Session(dbm.engine(), expire_on_commit=False) as db:
        checked, problem = verify_chain(db)
        if problem is None:
            return f"intact: {checked} entries"
        admins = db.exec(select(User).where(User.role == Role.ADMIN, User.active.is_(True)).order_by(User.id)).all()
        for user in admins:
            with force_locale(user.locale or current_app.config["BABEL_DEFAULT_LOCALE"]):
                subject = _("The audit log's hash chain is broken")
                body = render_template("audit/mail_broken.txt", user=user, problem=problem, checked=checked)
            mail.queue_once(db, f"audit-broken:{date.today().isoformat()}:{user.id}", user.email, subject, body)
    return f"BROKEN after {checked} entries: {problem}"
