"""`flask --app portal uploads sweep`: remove resumable uploads nobody claimed within 24 hours."""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup
from sqlmodel import Session

from portal import db as dbm
from portal.storage import get_storage

uploads_group = AppGroup("uploads", help="Resumable uploads.")


def run_sweep() -> int:
    """Sweep and print what was removed; returns the exit status."""
    from portal.uploads.services import sweep

    with Session(dbm.engine(), expire_on_commit=False) as session:
        report = sweep(session, get_storage())
    click.echo(f"removed {report.expired} expired uploads, {report.claimed} rows of claimed uploads, "
               f"{report.orphans} unlisted pieces")
    for error in report.errors or []:
        click.echo(f"error: {error}", err=True)
    return 1 if report.errors else 0


@uploads_group.command("sweep")
def sweep_command():
    """Remove expired unclaimed uploads (pieces, checked file, row) and pieces no upload lists."""
    sys.exit(run_sweep())
