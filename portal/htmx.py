"""The only module that imports htmx_flask: page-or-fragment rendering and response headers."""

from __future__ import annotations

import json

from flask import render_template, request
from htmx_flask import Htmx

htmx = Htmx()


def init_htmx(app) -> None:
    htmx.init_app(app)

    @app.after_request
    def _vary(response):
        response.vary.add("HX-Request")
        return response


def is_swap() -> bool:
    """An htmx request that swaps a part of the page (not boosted, not a history restore)."""
    return bool(request.htmx) and not request.htmx.boosted and not request.htmx.history_restore_request


def render(page: str, fragment: str, status: int = 200, **ctx):
    """Full page for normal and boosted requests, the fragment for an htmx swap."""
    return render_template(fragment if is_swap() else page, **ctx), status


def trigger(response, events: dict) -> None:
    """Fire client-side events (toasts, counters) after an htmx mutation."""
    response.headers["HX-Trigger"] = json.dumps(events)


def redirect_htmx(response, url: str) -> None:
    response.headers["HX-Redirect"] = url
