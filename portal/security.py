"""Response headers that every response carries, errors and fragments included."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import request
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.routing import IntegerConverter

# Ids are INTEGER columns (32-bit on PostgreSQL): a bigger number in a URL is a page that does not exist
# (404), not a database error (500). 2**31 - 1 is far above any id the portal will reach.
MAX_ID = 2**31 - 1

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'self'; object-src 'none'"
)


def safe_next(target: str | None) -> str | None:
    """The target if it is a path on this site, else None. Used wherever a `next` is followed.

    Checked after urlsplit, as browsers and Werkzeug read it: they drop tabs and newlines, so
    "/\t/evil.example" would become "//evil.example". Control characters and backslashes (which browsers
    read as "/") are refused outright; only a path starting with a single "/" is kept."""
    if not target or len(target) > 2000 or not target.startswith("/"):
        return None
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target) or "\\" in target:
        return None
    try:
        parts = urlsplit(target)
    except ValueError:
        return None
    if parts.scheme or parts.netloc or not parts.path.startswith("/") or parts.path.startswith("//"):
        return None
    return target


def parse_id(text: str | None) -> int | None:
    """An id from a query string: digits up to MAX_ID, else None (ignored, like any unknown filter)."""
    if not text or not text.isdigit() or not text.isascii() or len(text) > 10:
        return None
    value = int(text)
    return value if value <= MAX_ID else None


class BoundedIntConverter(IntegerConverter):
    """<int:...> for every route: at most MAX_ID, so a 20-digit id is a 404."""

    def __init__(self, map, fixed_digits=0, min=None, max=MAX_ID, signed=False):  # noqa: A002 - werkzeug's names
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def _has_nul(values) -> bool:
    return any("\x00" in key or any("\x00" in v for v in values.getlist(key)) for key in values)


def init_security(app) -> None:
    production = app.config["PORTAL_ENV"] == "production"
    from portal.errors import error_page

    def _limit_anonymous_posts():
        """Before anything reads the body (the CSRF check runs before the views): a visitor who is not
        signed in may send only a small form (ANONYMOUS_MAX_BYTES, 128 KB); uploads need a sign-in and keep
        MAX_CONTENT_LENGTH. Bodies without a length (chunked) are cut at the same limit when read."""
        if request.method in ("GET", "HEAD", "OPTIONS") or current_user.is_authenticated:
            return None
        limit = int(app.config["ANONYMOUS_MAX_BYTES"])
        request.max_content_length = limit
        if request.content_length is not None and request.content_length > limit:
            return error_page(413, _("Too much data"), _("The form sent more data than the portal accepts. "
                                                         "Shorten the text and try again.")), 413
        return None

    app.before_request_funcs.setdefault(None, []).insert(0, _limit_anonymous_posts)

    @app.before_request
    def _refuse_nul_characters():
        """A NUL character cannot be stored (PostgreSQL refuses it in text): a clear 400, not a 500."""
        values = [request.path, *(str(v) for v in (request.view_args or {}).values())]
        if any("\x00" in v for v in values) or _has_nul(request.args) or \
                (request.method not in ("GET", "HEAD") and _has_nul(request.form)):
            return error_page(400, _("Character not allowed"),
                              _("The text contains a character that is not allowed (a null character). Go back, "
                                "remove it and try again.")), 400
        return None

    @app.after_request
    def _headers(response):
        h = response.headers
        h.setdefault("Content-Security-Policy", CSP)
        h["X-Content-Type-Options"] = "nosniff"
        h["X-Frame-Options"] = "DENY"
        # same-origin keeps the Referer that Flask-WTF checks on HTTPS, and sends none elsewhere.
        h["Referrer-Policy"] = "same-origin"
        h["Cross-Origin-Opener-Policy"] = "same-origin"
        h["Permissions-Policy"] = "camera=(self), geolocation=(self), microphone=()"
        if production:
            h["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        if current_user and current_user.is_authenticated:
            h["Cache-Control"] = "no-store"
        return response
