"""Workshop tables: the workshop, its registrations (personal data, purged after the event), and the
anonymous counts that outlive the purge."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from portal.clock import utcnow
from portal.labels import Titled


class RegStatus(Titled, StrEnum):
    UNCONFIRMED = "unconfirmed"  # the e-mail link was not opened yet: does not count
    PENDING = "pending"  # opted in, waits for a staff decision (moderated workshops)
    CONFIRMED = "confirmed"  # has a seat
    WAITLISTED = "waitlisted"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"
    __titles__ = {"unconfirmed": _l("E-mail not confirmed"), "pending": _l("Awaiting approval"),
                  "confirmed": _l("Confirmed"), "waitlisted": _l("Waitlist"), "declined": _l("Declined"),
                  "withdrawn": _l("Withdrawn")}


class RegRole(Titled, StrEnum):
    RETURN_COUNTRY = "return_country"
    EU_MEMBER_STATE = "eu_member_state"
    PARTNER_STAFF = "partner_staff"
    OTHER = "other"
    __titles__ = {"return_country": _l("Return counsellor in a return country"),
                  "eu_member_state": _l("Return counsellor in an EU member state"),
                  "partner_staff": _l("Partner organisation staff"), "other": _l("Other")}


class Workshop(SQLModel, table=True):
    __tablename__ = "workshops"

    id: int | None = Field(default=None, primary_key=True)
    public_key: str = Field(max_length=32, unique=True)  # the public page's address; not guessable
    title: str = Field(max_length=200)
    description: str = Field(default="", max_length=5000)
    # {"de": {"title": "...", "description": "..."}, ...}: the texts in other languages, where given.
    translations: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    starts_on: date
    ends_on: date
    city: str = Field(max_length=100)
    venue: str = Field(max_length=300)
    capacity: int
    registration_deadline: date
    working_languages: str = Field(default="", max_length=100)  # comma-separated language codes
    travel_support: bool = False
    visa_letters: bool = False
    moderated: bool = False
    passport_purged_at: datetime | None = None
    personal_data_purged_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class Registration(SQLModel, table=True):
    __tablename__ = "workshop_registrations"
    __table_args__ = (UniqueConstraint("workshop_id", "email", name="uq_workshop_registration_email"),)

    id: int | None = Field(default=None, primary_key=True)
    workshop_id: int = Field(foreign_key="workshops.id", index=True)
    status: str = Field(default=RegStatus.UNCONFIRMED, max_length=16, index=True)
    email: str = Field(max_length=254)
    name: str = Field(max_length=200)
    organisation: str = Field(max_length=200)
    country: str = Field(max_length=2)
    role: str = Field(max_length=20)
    languages: str = Field(default="", max_length=300)
    dietary_needs: str = Field(default="", max_length=1000)
    accessibility_needs: str = Field(default="", max_length=1000)
    travel_support: bool = False
    visa_letter: bool = False
    # Passport data: shown to staff only, deleted once the workshop has ended.
    passport_name: str | None = Field(default=None, max_length=200)
    nationality: str | None = Field(default=None, max_length=2)
    passport_number: str | None = Field(default=None, max_length=40)
    birth_date: date | None = None
    consent_processing: bool = False
    consent_list: bool = False
    locale: str = Field(default="en", max_length=8)
    link_nonce: str = Field(max_length=32)  # part of every signed link: a new nonce voids old links
    staff_message: str = Field(default="", max_length=2000)
    created_at: datetime = Field(default_factory=utcnow)
    confirmed_email_at: datetime | None = None
    waitlisted_at: datetime | None = Field(default=None, index=True)  # the waitlist's order
    updated_at: datetime = Field(default_factory=utcnow)


class WorkshopStat(SQLModel, table=True):
    """Anonymous counts kept after the personal data is purged (for the Sachbericht)."""

    __tablename__ = "workshop_stats"

    id: int | None = Field(default=None, primary_key=True)
    workshop_id: int = Field(foreign_key="workshops.id", index=True)
    country: str = Field(max_length=2)
    role: str = Field(max_length=20)
    status: str = Field(max_length=16)
    count: int
