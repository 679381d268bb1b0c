"""`flask --app portal review sample --share 0.1 --from 2024-01-01 --to 2024-12-31`."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlmodel import Session

from portal import db as dbm


@click.group("review", cls=AppGroup)
def review_group():
    """The staff review desk."""


@review_group.command("sample")
@click.option("--share", type=float, default=0.1, show_default=True, help="share of the approved receipts, 0–1")
@click.option("--from", "start", type=click.DateTime(formats=["%Y-%m-%d"]), required=True,
              help="first invoice date of the period (YYYY-MM-DD)")
@click.option("--to", "end", type=click.DateTime(formats=["%Y-%m-%d"]), required=True,
              help="last invoice date of the period (YYYY-MM-DD)")
def review_sample(share, start, end):
    """Draw a share of the approved receipts of a period for a second check (recorded in the audit log)."""
    from portal.review.services import ReviewError, draw_sample

    with Session(dbm.engine(), expire_on_commit=False) as s:
        try:
            draw = draw_sample(s, None, share, start.date(), end.date())
        except ReviewError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"sample {draw.id}: {draw.drawn} of {draw.population} approved receipts drawn "
                   f"({start:%Y-%m-%d} to {end:%Y-%m-%d}, share {share})")
