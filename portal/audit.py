"""The audit log: who did what to which object, with the state before and after."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, Session, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


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


def record(db: Session, actor, action: str, obj, before: dict | None = None, after: dict | None = None) -> None:
    """Add an audit entry to the caller's transaction (it commits with the change it describes)."""
    db.add(
        AuditEntry(
            actor_id=getattr(actor, "id", None),
            action=action,
            object_type=type(obj).__name__ if not isinstance(obj, tuple) else obj[0],
            object_id=str(obj.id if not isinstance(obj, tuple) else obj[1]),
            before=before,
            after=after,
        )
    )


def snapshot(obj, fields: tuple[str, ...]) -> dict[str, Any]:
    """The audit-relevant fields of an object as JSON-friendly values."""
    out = {}
    for name in fields:
        value = getattr(obj, name)
        out[name] = value.isoformat() if hasattr(value, "isoformat") else value
    return out
