"""Visits to returnees, the drafts of the visit form, staff comments and visit photos."""

from __future__ import annotations

from datetime import date, datetime, time
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column
from sqlmodel import Field, SQLModel

from portal.clock import utcnow
from portal.scanning.models import Scanned


class VisitMode(StrEnum):
    HOME = "home"
    BUSINESS = "business"
    OFFICE = "office"
    CALL = "call"


class VisitPurpose(StrEnum):
    FIRST = "first"
    MONITORING = "monitoring"
    FINAL = "final"


class GoodsState(StrEnum):
    IN_USE = "in_use"
    PARTLY = "partly"
    SOLD = "sold"
    MISSING = "missing"
    NOT_APPLICABLE = "not_applicable"


class BusinessStatus(StrEnum):
    OPERATING = "operating"
    NOT_OPERATING = "not_operating"
    EMPLOYED = "employed"
    NOT_EMPLOYED = "not_employed"
    IN_TRAINING = "in_training"
    NOT_APPLICABLE = "not_applicable"


class IncomeBand(StrEnum):
    UNKNOWN = "unknown"
    NONE = "none"
    UNDER_100 = "under_100"
    FROM_100 = "100_300"
    FROM_300 = "300_600"
    OVER_600 = "over_600"


# The vulnerability and protection flags, in the order the form shows them.
FLAGS = ("flag_health", "flag_psychosocial", "flag_family", "flag_safety", "flag_legal")
DIMENSIONS = ("score_economic", "score_social", "score_psychosocial")


class Visit(SQLModel, table=True):
    """One visit (or call) to a returnee, recorded by the partner organisation. Never edited afterwards:
    corrections go into staff comments, so what staff acknowledged stays what was reported."""

    __tablename__ = "visits"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    # The id of the draft the visit was submitted from: the same draft sent twice makes one visit.
    draft_key: str = Field(max_length=32, unique=True)
    visit_date: date = Field(index=True)
    visit_time: time | None = None
    mode: str = Field(max_length=16)
    place: str = Field(default="", max_length=200)
    location_consent: bool = False
    latitude: float | None = None
    longitude: float | None = None
    attendees: str = Field(default="", max_length=500)
    returnee_met: bool = True
    not_met_reason: str = Field(default="", max_length=1000)
    purpose: str = Field(max_length=16)
    goods_state: str = Field(default=GoodsState.NOT_APPLICABLE, max_length=16)
    # {receipt id (as a string): GoodsState} where the case has receipts.
    goods_by_receipt: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    business_status: str = Field(default=BusinessStatus.NOT_APPLICABLE, max_length=16)
    income_band: str = Field(default=IncomeBand.UNKNOWN, max_length=16)
    people_employed: int | None = None
    # 1–5 each; empty when the returnee was not met (nobody to score).
    score_economic: int | None = None
    score_social: int | None = None
    score_psychosocial: int | None = None
    flag_health: bool = False
    flag_psychosocial: bool = False
    flag_family: bool = False
    flag_safety: bool = False
    flag_legal: bool = False
    flag_details: str = Field(default="", max_length=2000)
    actions_taken: str = Field(default="", max_length=2000)
    next_visit_date: date | None = Field(default=None, index=True)
    notes: str = Field(default="", max_length=5000)
    created_by_id: int | None = Field(default=None, foreign_key="users.id", index=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    acknowledged_at: datetime | None = None
    acknowledged_by_id: int | None = Field(default=None, foreign_key="users.id")

    @property
    def flags(self) -> list[str]:
        return [name for name in FLAGS if getattr(self, name)]

    @property
    def flagged(self) -> bool:
        return bool(self.flags)

    @property
    def scores(self) -> tuple[int | None, int | None, int | None]:
        return (self.score_economic, self.score_social, self.score_psychosocial)


class VisitDraft(SQLModel, table=True):
    """What a user has typed into a visit form so far, saved as they type; deleted when submitted."""

    __tablename__ = "visit_drafts"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=32, unique=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow, index=True)


class VisitComment(SQLModel, table=True):
    """A staff comment on a visit (an acknowledgement may carry one); the partner sees it."""

    __tablename__ = "visit_comments"

    id: int | None = Field(default=None, primary_key=True)
    visit_id: int = Field(foreign_key="visits.id", index=True)
    author_id: int | None = Field(default=None, foreign_key="users.id")
    body: str = Field(default="", max_length=4000)
    acknowledgement: bool = False
    created_at: datetime = Field(default_factory=utcnow, index=True)


class VisitPhoto(Scanned, table=True):
    """A photo taken at a visit, stored re-encoded (no EXIF, no GPS). Unconfirmed rows are upload
    intents: the object may not be stored yet, and the sweep removes them."""

    __tablename__ = "visit_photos"

    id: int | None = Field(default=None, primary_key=True)
    visit_id: int = Field(foreign_key="visits.id", index=True)
    key: str = Field(max_length=300, unique=True)
    size: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    sha256: str = Field(default="", max_length=64)
    content_type: str = Field(max_length=100)
    original_filename: str = Field(max_length=200)
    # The returnee agreed to the photo; recorded with every photo.
    consent: bool = False
    confirmed: bool = Field(default=False, index=True)
    uploaded_by_id: int | None = Field(default=None, foreign_key="users.id")
    created_at: datetime = Field(default_factory=utcnow, index=True)


class LatestVisit(SQLModel, table=True):
    """Each case's latest visit (by visit date, then id) and the next visit date it set, kept in step with
    every new visit in the same transaction (portal/visits/latest.py): the visits due list reads one row per
    case instead of ranking every visit on each request. Derived: `visits reconcile` checks and rewrites it."""

    __tablename__ = "case_latest_visits"

    case_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    visit_id: int
    visit_date: date
    next_visit_date: date | None = Field(default=None, index=True)
