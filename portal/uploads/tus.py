"""The tus 1.0 protocol's headers: reading them from requests, writing them on responses."""

from __future__ import annotations

import binascii
from base64 import b64decode
from datetime import datetime

from flask import Response
from werkzeug.http import http_date

VERSION = "1.0.0"
EXTENSIONS = "creation,termination,expiration"
OFFSET_TYPE = "application/offset+octet-stream"


class HeaderProblem(ValueError):
    """A tus header is missing or malformed (400)."""


def parse_metadata(value: str | None) -> dict[str, str]:
    """Upload-Metadata: comma-separated `key base64value` pairs (a key alone means an empty value)."""
    out: dict[str, str] = {}
    for item in (value or "").split(","):
        item = item.strip()
        if not item:
            continue
        key, _sep, encoded = item.partition(" ")
        try:
            out[key] = b64decode(encoded.strip(), validate=True).decode("utf-8") if encoded.strip() else ""
        except (binascii.Error, UnicodeDecodeError):
            raise HeaderProblem(f"bad Upload-Metadata value for {key!r}") from None
    return out


def parse_length(value: str | None, name: str) -> int:
    """A non-negative integer header (Upload-Length, Upload-Offset)."""
    if value is None or not value.strip().isdigit() or len(value.strip()) > 15:
        raise HeaderProblem(f"{name} must be a non-negative integer")
    return int(value.strip())


def headers(response: Response, *, offset: int | None = None, length: int | None = None,
            expires: datetime | None = None) -> Response:
    """Put the tus headers on a response (Tus-Resumable always)."""
    response.headers["Tus-Resumable"] = VERSION
    if offset is not None:
        response.headers["Upload-Offset"] = str(offset)
    if length is not None:
        response.headers["Upload-Length"] = str(length)
    if expires is not None:
        response.headers["Upload-Expires"] = http_date(expires)
    response.headers["Cache-Control"] = "no-store"
    return response
