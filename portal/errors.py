"""Generic error pages in the user's language; a fragment when htmx asked."""

from __future__ import annotations

import logging
import sqlite3

import psycopg
from flask import current_app, g, render_template
from flask_babel import gettext as _
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from portal.htmx import is_swap
from portal.storage import StorageError

log = logging.getLogger(__name__)


def _message(code: int) -> tuple[str, str]:
    messages = {
        400: (_("Bad request"), _("The request could not be understood. Please go back and try again.")),
        403: (_("Not allowed"), _("You are not allowed to do this.")),
        404: (_("Page not found"), _("This page does not exist or you do not have access to it.")),
        405: (_("Not allowed"), _("This action is not possible on this page.")),
        413: (_("File too large"), _("The upload is too large.")),
        429: (_("Too many attempts"), _("Too many attempts. Please wait a minute and try again.")),
        503: (_("Service unavailable"), _("A service the portal needs is not reachable. Please try again "
                                         "in a few minutes.")),
    }
    return messages.get(code, (_("Something went wrong"),
                               _("Something went wrong on our side. Please try again later.")))


def error_page(code: int, title: str, text: str) -> str:
    """The error page (a fragment when htmx swaps it in) with this title and text."""
    template = "errors/_error.html" if is_swap() else "errors/error.html"
    return render_template(template, code=code, title=title, text=text)


def init_errors(app) -> None:
    def render_error(code: int):
        title, text = _message(code)
        return error_page(code, title, text), code

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if exc.code in (301, 302, 303, 307, 308):
            return exc
        if exc.code == 400 and getattr(exc, "description", "").startswith("The CSRF"):
            return render_error(400)
        return render_error(exc.code or 500)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        if is_outage(exc):
            log.warning("service unavailable: %s", exc)
            # The page is drawn without asking the database who is signed in: it may be what is down.
            g._login_user = current_app.login_manager.anonymous_user()
            return render_error(503)
        log.exception("unhandled error", exc_info=exc)
        return render_error(500)


def is_outage(exc: BaseException) -> bool:
    """A service the portal needs is down (the database restarting, the file storage unreachable): the
    user is told to try again in a moment (503), not that the portal is broken (500). The transaction
    was rolled back, so nothing half-done stays."""
    if isinstance(exc, StorageError):
        return True
    if isinstance(exc, DBAPIError):
        # connection refused / reset / server shutting down: psycopg's OperationalError, or a
        # connection SQLAlchemy saw die under it
        if exc.connection_invalidated or isinstance(exc.orig, psycopg.OperationalError | psycopg.InterfaceError):
            return True
        return isinstance(exc.orig, sqlite3.OperationalError) and "locked" in str(exc.orig)
    return False
