"""One thing a user should hear about: a decision on a receipt or a staff comment on a visit."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from portal.clock import utcnow


class NoticeKind(StrEnum):
    RECEIPT_APPROVED = "receipt_approved"
    RECEIPT_REJECTED = "receipt_rejected"
    RECEIPT_CORRECTION = "receipt_correction"
    VISIT_COMMENT = "visit_comment"


class Notification(SQLModel, table=True):
    """Written in the transaction of the decision; `sent_at` is set when a digest takes it (or it is
    dropped because its user turned the mails off)."""

    __tablename__ = "notifications"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    kind: str = Field(max_length=32)
    object_type: str = Field(max_length=16)  # receipt, visit
    object_id: int
    # What the text needs, stored as given (references, the reviewer's comment, names); the text itself
    # is written in the recipient's language when the digest is sent.
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, index=True)
    sent_at: datetime | None = Field(default=None, index=True)
