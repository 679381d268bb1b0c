"""Response headers that every response carries, errors and fragments included."""

from __future__ import annotations

from flask_login import current_user

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'self'; object-src 'none'"
)


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
