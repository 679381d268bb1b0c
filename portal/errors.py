"""Generic error pages in the user's language; a fragment when htmx asked."""

from __future__ import annotations

import logging

from flask import render_template
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException

from portal.htmx import is_swap

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


def init_errors(app) -> None:
    def render_error(code: int):
        title, text = _message(code)
        template = "errors/_error.html" if is_swap() else "errors/error.html"
        return render_template(template, code=code, title=title, text=text), code

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if exc.code in (301, 302, 303, 307, 308):
            return exc
        if exc.code == 400 and getattr(exc, "description", "").startswith("The CSRF"):
            return render_error(400)
        return render_error(exc.code or 500)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error", exc_info=exc)
        return render_error(500)
