"""The only module that imports htmx_flask: page-or-fragment rendering and response headers."""

from __future__ import annotations

import json

from flask import flash, make_response, redirect, render_template, request
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


def render(page: str, fragment: str | None = None, status: int = 200, **ctx):
    """Full page for normal and boosted requests, the fragment (if any) for an htmx swap."""
    return render_template(fragment if fragment and is_swap() else page, **ctx), status


def polled(fragment: str, **ctx):
    """A fragment the page asks for again every few seconds (a list while a file is being checked): never
    cached, so each poll sees the current state."""
    response = make_response(render_template(fragment, **ctx))
    response.headers["Cache-Control"] = "no-store"
    return response


def trigger(response, events: dict) -> None:
    """Fire client-side events (toasts, counters) after an htmx mutation."""
    response.headers["HX-Trigger"] = json.dumps(events)


def redirect_htmx(response, url: str) -> None:
    response.headers["HX-Redirect"] = url


def done(url: str, message: str | None = None, *, warnings=(), errors=()):
    """After a change: flash what happened, then 303 for a plain form post or HX-Redirect for an htmx
    (or upload.js) request, so the browser loads `url` as a whole page."""
    if message:
        flash(message, "success")
    for text in errors or ():
        flash(text, "error")
    for text in warnings or ():
        flash(text, "warning")
    if is_swap():
        response = make_response("", 200)
        redirect_htmx(response, url)
        return response
    return redirect(url, code=303)
