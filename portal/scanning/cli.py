"""`flask --app portal scanning …`: scan again what is still pending (for a timer, and after a clamd outage)."""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import AppGroup
from sqlmodel import Session

from portal import db as dbm
from portal.storage import get_storage

scanning_group = AppGroup("scanning", help="Malware scanning of uploaded files (clamd).")


@scanning_group.command("rescan")
def rescan_command():
    """Scan every receipt file and visit photo still pending (or stored before scanning was configured)."""
    from portal.scanning import services

    if not services.enabled():
        click.echo("scanning is not configured (set CLAMD_HOST): nothing scanned", err=True)
        sys.exit(2)
    # Mails to staff about infected files are built as in a request to BASE_URL (links, languages).
    with current_app.test_request_context("/", base_url=current_app.config["BASE_URL"]), \
            Session(dbm.engine(), expire_on_commit=False) as session:
        report = services.rescan(session, get_storage())
    click.echo(f"scanned {report.scanned} files: {report.clean} clean, {report.infected} infected "
               f"(quarantined); {report.pending} still pending")
    for error in report.errors:
        click.echo(f"not scanned: {error}", err=True)
    if report.pending:
        sys.exit(1)  # the timer's log shows that clamd (or storage) was not reachable
