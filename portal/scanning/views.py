"""What a download or preview of a file that is not cleared answers (no routes of its own)."""

from __future__ import annotations

from flask import render_template

from portal.htmx import is_swap
from portal.scanning import services


def refused(row):
    """409 with the reason: the file is waiting for its virus scan, or was quarantined as infected."""
    title, text = services.refusal(row)
    template = "errors/_error.html" if is_swap() else "errors/error.html"
    response = render_template(template, code=409, title=title, text=text)
    return response, 409, {"Cache-Control": "no-store"}
