"""What a download or preview of a file that is not cleared answers (no routes of its own)."""

from __future__ import annotations

from portal.errors import error_page
from portal.scanning import services


def refused(row):
    """409 with the reason: the file is waiting for its virus scan, or was quarantined as infected."""
    title, text = services.refusal(row)
    return error_page(409, title, text), 409, {"Cache-Control": "no-store"}
