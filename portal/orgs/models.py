from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from portal.clock import utcnow


class Organisation(SQLModel, table=True):
    """A partner organisation in a return country."""

    __tablename__ = "organisations"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    country: str = Field(max_length=2)
    contact_email: str = Field(max_length=254)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)
