"""`flask --app portal privacy retention`: apply the retention periods (run daily, like a timer)."""

from __future__ import annotations

from datetime import datetime, time

import click
from flask import current_app
from flask.cli import AppGroup
from sqlmodel import Session

from portal import db as dbm
from portal.cases.retention import apply_retention
from portal.clock import utcnow
from portal.storage import get_storage

privacy_group = AppGroup("privacy", help="Personal data: retention periods.")


@privacy_group.command("retention")
@click.option("--dry-run", is_flag=True, help="only list what would be erased or deleted")
@click.option("--today", "today_", default=None, help="count from this day (YYYY-MM-DD); default now")
def retention_command(dry_run: bool, today_: str | None):
    """Erase personal data of cases closed longer than CASE_RETENTION_DAYS; delete stale visit drafts
    (DRAFT_RETENTION_DAYS) and sent e-mails (MAIL_RETENTION_DAYS). Receipts and their files are kept."""
    now = utcnow() if not today_ else datetime.combine(
        datetime.fromisoformat(today_).date(), time.max, tzinfo=utcnow().tzinfo)
    cfg = current_app.config
    with Session(dbm.engine(), expire_on_commit=False) as session:
        report = apply_retention(session, get_storage(), now, case_days=cfg["CASE_RETENTION_DAYS"],
                                 draft_days=cfg["DRAFT_RETENTION_DAYS"], mail_days=cfg["MAIL_RETENTION_DAYS"],
                                 dry_run=dry_run)
    verb = "would be" if dry_run else "were"
    click.echo(f"{len(report.cases_erased)} closed cases {verb} erased"
               + (f": {', '.join(report.cases_erased)}" if report.cases_erased else ""))
    click.echo(f"{report.drafts_deleted} visit drafts and {report.mails_deleted} sent e-mails {verb} deleted")
