"""The lean reference for `make bench`: the case list's work with nothing else, under the same gunicorn
configuration as the portal (`gunicorn -c python:portal.gunicorn_conf 'lean:create_app()'`).

Per request: read Flask's signed session cookie, load the user by id (Core), one Core query for a page of
25 cases with their organisation and planned budget (the portal's query), render a Jinja template of the
same size as the portal's case list (LEAN_PAD_BYTES tops the output up to the portal page's size; the
bench measures that first). No Flask-Login, Babel, CSRF, htmx, compression or security headers: what a
hand-written page of this stack costs. The portal's pages are reported as a share of its throughput.
"""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa
from flask import Flask, abort, redirect, render_template, session

HERE = Path(__file__).resolve().parent

CASES = sa.text(
    "SELECT c.id, c.reference, c.country, c.measure_type, c.status, o.name, "
    "(SELECT coalesce(sum(b.planned_cents), 0) FROM budget_lines b WHERE b.case_id = c.id) AS planned "
    "FROM cases c JOIN organisations o ON o.id = c.organisation_id "
    "ORDER BY c.created_at DESC, c.id DESC LIMIT 25")
USER = sa.text("SELECT id, email, name, role, organisation_id, locale, active, session_version "
               "FROM users WHERE id = :id")


def create_app() -> Flask:
    app = Flask(__name__, template_folder=str(HERE / "lean_templates"))
    app.secret_key = os.environ["SECRET_KEY"]
    url = os.environ["DATABASE_URL"]
    engine = sa.create_engine(url, pool_pre_ping=False)
    pad = "x" * int(os.environ.get("LEAN_PAD_BYTES", "0"))

    @app.get("/")
    def root():
        return "lean"

    @app.get("/login/<int:user_id>")
    def login(user_id: int):
        session["uid"] = user_id
        return redirect("/cases/")

    @app.get("/cases/")
    def cases():
        uid = session.get("uid")
        if uid is None:
            abort(401)
        with engine.connect() as conn:
            user = conn.execute(USER, {"id": uid}).mappings().first()
            if user is None or not user["active"]:
                abort(401)
            rows = conn.execute(CASES).all()
        return render_template("cases.html", user=user, rows=rows, total=len(rows), pad=pad)

    return app
