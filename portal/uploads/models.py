"""One resumable upload: who started it, for which case, how far it got, and what became of it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index
from sqlmodel import Field, SQLModel

from portal.clock import utcnow


class UploadStatus(StrEnum):
    INCOMPLETE = "incomplete"  # bytes still arriving
    READY = "ready"  # complete, checked and cleaned, stored under `key`; waits for a form to claim it
    REFUSED = "refused"  # complete but refused by the checks; nothing is stored


class Purpose(StrEnum):
    RECEIPT = "receipt"
    HANDOVER = "handover"
    PHOTO = "photo"


class Upload(SQLModel, table=True):
    """A tus upload. Its pieces are stored objects (`tus/<id>/…`, listed in `pieces`) until it completes."""

    __tablename__ = "upload"
    __table_args__ = (Index("ix_upload_user_id_status", "user_id", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    token: str = Field(max_length=64, unique=True)  # the opaque id in the URL
    user_id: int = Field(foreign_key="users.id")
    case_id: int = Field(foreign_key="cases.id", index=True)
    # Adding files to an existing receipt / photos to a visit: the form they were started from.
    receipt_id: int | None = None
    visit_id: int | None = None
    purpose: str = Field(max_length=16)
    filename: str = Field(max_length=200)  # as declared by the client (sanitised); the cleaned name once ready
    filetype: str = Field(default="", max_length=100)
    length: int = Field(sa_column=Column(BigInteger, nullable=False))
    offset: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    pieces: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: str = Field(default=UploadStatus.INCOMPLETE, max_length=16)
    problem: str = Field(default="", max_length=500)  # the refusal, in English: translated when shown
    problem_args: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    # What the checks found (status ready): the stored, cleaned file.
    key: str | None = Field(default=None, max_length=300)
    size: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    sha256: str = Field(default="", max_length=64)
    original_sha256: str = Field(default="", max_length=64)
    content_type: str = Field(default="", max_length=100)
    metadata_removed: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime = Field(index=True)
    # Claimed by a form: the receipt file or visit photo owns the stored object from then on.
    claimed_at: datetime | None = None
    claimed_receipt_id: int | None = None
    claimed_visit_id: int | None = None
