"""The one clock of the portal: aware UTC datetimes (stored as UTC, shown in the user's time zone).

A module of its own, beneath everything: every feature's tables use it for their timestamps, and the audit
log, the database helpers and the tables would otherwise import each other."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
