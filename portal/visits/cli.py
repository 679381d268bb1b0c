"""`flask --app portal visits …`: the daily digest of due visits, and the photo upload sweep."""

from __future__ import annotations

import sys
from datetime import date

import click
from flask import current_app
from flask.cli import AppGroup
from sqlmodel import Session

from portal import db as dbm
from portal import mail
from portal.visits import due, photos


@click.group("visits", cls=AppGroup)
def visits_group():
    """Reintegration visits."""


@visits_group.command("digest")
@click.option("--today", "today_", default=None, help="the day to count from (YYYY-MM-DD); default today")
def digest(today_):
    """E-mail each partner user the due and overdue visits of their organisation (for a daily timer)."""
    today = date.fromisoformat(today_) if today_ else date.today()
    # Links and dates in the mails are built as in a request to BASE_URL.
    with current_app.test_request_context("/", base_url=current_app.config["BASE_URL"]), \
            Session(dbm.engine(), expire_on_commit=False) as session:
        queued = due.send_digest(session, today)
        sent, waiting = mail.deliver_pending(session, limit=10_000)
    click.echo(f"digests queued {queued}, mails sent {sent}, waiting {waiting}")
    if waiting:
        sys.exit(1)  # the timer's log shows the failure; `flask mail retry` sends them later


@visits_group.command("sweep-photos")
def sweep_photos():
    """Remove visit photo uploads never confirmed (older than an hour) and photo objects without a row."""
    with Session(dbm.engine(), expire_on_commit=False) as session:
        intents, orphans = photos.sweep_photos(session)
    click.echo(f"removed {intents} unconfirmed photo uploads, {orphans} unreferenced photo objects")


@visits_group.command("reconcile")
@click.option("--fix", is_flag=True, help="rewrite the kept latest visits from the visits")
def reconcile(fix):
    """Check each case's kept latest visit (the visits due list) against the visits; name every difference."""
    from portal.visits import latest

    dbm.reconcile_command(latest.reconcile, fix, "The kept latest visits match the visits.", "them")
