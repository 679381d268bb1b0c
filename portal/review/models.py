"""Random sample audits: a draw of approved receipts of a period, and each drawn receipt's second check."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from portal.clock import utcnow


class SampleOutcome:
    OK = "ok"
    ISSUE = "issue"


class SampleDraw(SQLModel, table=True):
    """One draw: which period, which share, how many approved receipts there were and how many were drawn."""

    __tablename__ = "review_sample_draws"

    id: int | None = Field(default=None, primary_key=True)
    period_start: date
    period_end: date
    share_permille: int  # the share asked for, in thousandths (0.1 → 100)
    population: int  # approved receipts of the period that could be drawn
    drawn: int
    drawn_by_id: int | None = Field(default=None, foreign_key="users.id")
    created_at: datetime = Field(default_factory=utcnow, index=True)


class SampleItem(SQLModel, table=True):
    """A receipt drawn for a second check; open until a staff member records the outcome."""

    __tablename__ = "review_sample_items"
    __table_args__ = (UniqueConstraint("draw_id", "receipt_id", name="uq_review_sample_items_draw_receipt"),)

    id: int | None = Field(default=None, primary_key=True)
    draw_id: int = Field(foreign_key="review_sample_draws.id", index=True)
    receipt_id: int = Field(foreign_key="receipts.id", index=True)
    checked_at: datetime | None = Field(default=None, index=True)
    checked_by_id: int | None = Field(default=None, foreign_key="users.id")
    outcome: str | None = Field(default=None, max_length=16)
    comment: str = Field(default="", max_length=4000)
