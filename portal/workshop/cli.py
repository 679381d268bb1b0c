"""`flask --app portal workshop purge`: the workshop's retention rule."""

from __future__ import annotations

from datetime import date

import click
from flask import current_app
from flask.cli import AppGroup
from sqlmodel import Session

from portal import db as dbm
from portal.workshop import services


@click.group("workshop", cls=AppGroup)
def workshop_group():
    """The advisor exchange workshop."""


@workshop_group.command("purge")
@click.option("--today", "today_", default=None, help="the day to count from (YYYY-MM-DD); default today")
def purge(today_):
    """Delete passport data of ended workshops, and all personal data WORKSHOP_RETENTION_DAYS after them."""
    today = date.fromisoformat(today_) if today_ else date.today()
    days = current_app.config["WORKSHOP_RETENTION_DAYS"]
    with Session(dbm.engine(), expire_on_commit=False) as session:
        passports, full = services.purge(session, today, days)
    click.echo(f"passport data purged for {passports} workshops, personal data purged for {full} workshops")
