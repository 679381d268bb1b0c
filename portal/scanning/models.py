"""The scan state that every scanned file row carries (receipt files, visit photos)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel


class ScanStatus(StrEnum):
    PENDING = "pending"
    CLEAN = "clean"
    INFECTED = "infected"
    UNSCANNED = "unscanned"


class Scanned(SQLModel):
    """The scan columns every scanned file row has (receipt files, visit photos): one definition."""

    # The malware scan (portal/scanning): "pending" until clamd found it clean, "infected" once quarantined,
    # "unscanned" when no scanner is configured (and for files stored before scanning existed).
    scan_status: str = Field(default=ScanStatus.UNSCANNED, max_length=16, index=True)
    scanned_at: datetime | None = None
    scan_signature: str | None = Field(default=None, max_length=200)  # the malware's name, if infected
