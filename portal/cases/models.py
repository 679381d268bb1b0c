from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from flask_babel import lazy_gettext as _l
from sqlmodel import Field, SQLModel

from portal.clock import utcnow
from portal.labels import Titled


class MeasureType(Titled, StrEnum):
    VOCATIONAL = "vocational"
    BUSINESS = "business"
    BOTH = "both"
    __titles__ = {"vocational": _l("Vocational qualification"), "business": _l("Business start-up"),
                  "both": _l("Both")}


class CaseStatus(Titled, StrEnum):
    PLANNED = "planned"
    ACTIVE = "active"
    MONITORING = "monitoring"
    CLOSED = "closed"
    __titles__ = {"planned": _l("Planned"), "active": _l("Active"), "monitoring": _l("Monitoring"),
                  "closed": _l("Closed")}


# Allowed status changes: forward along the path, or one step back to correct a mistake.
STATUS_FLOW = {
    CaseStatus.PLANNED: (CaseStatus.ACTIVE,),
    CaseStatus.ACTIVE: (CaseStatus.MONITORING, CaseStatus.PLANNED),
    CaseStatus.MONITORING: (CaseStatus.CLOSED, CaseStatus.ACTIVE),
    CaseStatus.CLOSED: (CaseStatus.MONITORING,),
}


class BudgetCategory(Titled, StrEnum):
    TRAINING = "training"
    EQUIPMENT = "equipment"
    STOCK = "stock"
    SERVICES = "services"
    OTHER = "other"
    __titles__ = {"training": _l("Training and courses"), "equipment": _l("Tools and equipment"),
                  "stock": _l("Goods and stock"), "services": _l("Services"), "other": _l("Other")}


class Case(SQLModel, table=True):
    """One returnee's support, under a pseudonymous reference (no names here)."""

    __tablename__ = "cases"

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(max_length=20, unique=True)
    country: str = Field(max_length=2, index=True)
    organisation_id: int = Field(foreign_key="organisations.id", index=True)
    return_date: date | None = None
    measure_type: str = Field(max_length=16)
    status: str = Field(default=CaseStatus.PLANNED, max_length=16, index=True)
    notes: str = Field(default="", max_length=5000)
    eligibility_reason: str | None = Field(default=None, max_length=2000)
    created_by_id: int | None = Field(default=None, foreign_key="users.id")
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)


class BudgetLine(SQLModel, table=True):
    """A planned item of a case's plan. Amounts are whole euro cents."""

    __tablename__ = "budget_lines"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    category: str = Field(max_length=16)
    description: str = Field(max_length=500)
    planned_cents: int


class CountryRule(SQLModel, table=True):
    """Staff-kept eligibility list: countries already covered by another return programme."""

    __tablename__ = "country_rules"

    code: str = Field(primary_key=True, max_length=2)
    covered_by_other_programme: bool = True
    programme: str = Field(default="", max_length=200)
    updated_at: datetime = Field(default_factory=utcnow)
