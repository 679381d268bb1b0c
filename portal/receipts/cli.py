"""`flask --app portal receipts …`: housekeeping of receipt uploads."""

from __future__ import annotations

import sys
from datetime import timedelta

import click
from flask.cli import AppGroup
from sqlmodel import Session

from portal import db as dbm
from portal.storage import get_storage

receipts_group = AppGroup("receipts", help="Receipts.")


@receipts_group.command("sweep")
@click.option("--minutes", default=60, show_default=True, type=click.IntRange(min=0),
              help="remove upload intents not confirmed for this long")
def sweep_command(minutes: int):
    """Remove unconfirmed upload intents with their objects, and stored objects no receipt refers to."""
    from portal.receipts.sweep import sweep
    from portal.uploads.cli import run_sweep

    failed = run_sweep()  # resumable uploads first: their expired files are then unreferenced
    with Session(dbm.engine(), expire_on_commit=False) as session:
        report = sweep(session, get_storage(), timedelta(minutes=minutes))
    click.echo(f"removed {report.intents} unconfirmed receipts, {report.files} unconfirmed files, "
               f"{report.orphans} unreferenced objects, {report.unfinished} unfinished uploads")
    for error in report.errors:
        click.echo(f"error: {error}", err=True)
    if report.errors or failed:
        sys.exit(1)


@receipts_group.command("fingerprints")
@click.option("--limit", type=click.IntRange(min=1), help="at most this many files in this run")
def fingerprints_command(limit: int | None):
    """Fingerprint the receipt files that have none yet (files stored before the near-duplicate check)
    and record the receipts whose pictures look alike. Safe to run twice: done files are skipped."""
    from portal.receipts.neardup import backfill

    with Session(dbm.engine(), expire_on_commit=False) as session:
        done, skipped = backfill(session, get_storage(), limit)
    click.echo(f"fingerprinted {done} files; {skipped} without a picture, not cleared by the virus scan "
               f"or not readable now")
