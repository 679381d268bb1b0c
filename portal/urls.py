"""URLs for lists of many rows: one url_for per page, not one per row."""

from __future__ import annotations

from flask import url_for

from portal.security import MAX_ID


def url_pattern(endpoint: str, name: str, **values) -> str:
    """url_for(endpoint, **values) with the id `name` left open as %d: `pattern % row.id` is the URL of one
    row (url_for costs more than the rest of a row). Wherever the id sits in the URL."""
    marker = str(MAX_ID)
    url = url_for(endpoint, **values, **{name: MAX_ID})
    if url.count(marker) != 1:
        raise ValueError(f"{endpoint}: cannot tell the {name} in its URL ({url})")
    return url.replace("%", "%%").replace(marker, "%d")
