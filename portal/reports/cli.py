"""`flask --app portal reports reconcile [--fix]`: check the dashboard's summary tables against the rows."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from portal import db as dbm


@click.group("reports", cls=AppGroup)
def reports_group():
    """Reports and the dashboard's summary tables."""


@reports_group.command("reconcile")
@click.option("--fix", is_flag=True, help="rewrite the summary tables from the receipts, lines and cases")
def reconcile(fix):
    """Recompute the dashboard's figures from scratch and name every difference (exit 1 if any remain)."""
    from portal.reports.summary import reconcile as run

    dbm.reconcile_command(run, fix, "The summary tables match the receipts, budget lines and cases.", "the tables")
