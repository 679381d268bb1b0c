"""Response headers that every response carries, errors and fragments included."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask_login import current_user

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


def init_security(app) -> None:
    production = app.config["PORTAL_ENV"] == "production"

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
