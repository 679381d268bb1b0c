"""`flask --app portal …` commands: database, organisations, users, demo data, mail."""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext
from sqlmodel import Session, select

from portal import db as dbm
from portal import mail
from portal.auth import services as accounts
from portal.cases.cli import privacy_group
from portal.orgs.models import Organisation
from portal.reports.cli import reports_group
from portal.review.cli import review_group
from portal.visits.cli import visits_group
from portal.workshop.cli import workshop_group


def _session() -> Session:
    return Session(dbm.engine(), expire_on_commit=False)


def init_cli(app) -> None:
    app.cli.add_command(db_group)
    app.cli.add_command(orgs_group)
    app.cli.add_command(users_group)
    app.cli.add_command(demo_group)
    app.cli.add_command(mail_group)
    app.cli.add_command(audit_group)
    app.cli.add_command(visits_group)
    app.cli.add_command(review_group)
    app.cli.add_command(workshop_group)
    app.cli.add_command(privacy_group)
    app.cli.add_command(reports_group)
    app.cli.add_command(worker_command)


@click.group("db", cls=AppGroup)
def db_group():
    """Database migrations."""


@db_group.command("upgrade")
def db_upgrade():
    """Apply every Alembic migration."""
    dbm.upgrade(current_app.config["DATABASE_URL"])
    click.echo("database is up to date")


@db_group.command("revision")
@click.option("-m", "--message", required=True)
def db_revision(message):
    """Write a new migration from the difference between the models and the database."""
    from alembic import command

    command.revision(dbm.alembic_config(current_app.config["DATABASE_URL"]), message=message, autogenerate=True)


@click.group("orgs", cls=AppGroup)
def orgs_group():
    """Partner organisations."""


@orgs_group.command("create")
@click.option("--name", required=True)
@click.option("--country", required=True, help="ISO 3166 alpha-2 code, e.g. GE")
@click.option("--email", required=True, help="contact e-mail")
def orgs_create(name, country, email):
    """Create a partner organisation."""
    from portal.orgs.services import save_org

    with _session() as s:
        org = save_org(s, None, None, {"name": name, "country": country.upper(), "contact_email": email,
                                       "active": True})
        click.echo(f"organisation {org.id}: {org.name}")


@click.group("users", cls=AppGroup)
def users_group():
    """Accounts."""


@users_group.command("create")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--role", type=click.Choice(["admin", "staff", "partner"]), required=True)
@click.option("--org", "org_name", help="organisation name (partners)")
@click.option("--locale", default=None)
def users_create(email, name, role, org_name, locale):
    """Create a user; the password is read from standard input."""
    password = sys.stdin.readline().rstrip("\n")
    with _session() as s:
        org_id = None
        if org_name:
            org = s.exec(select(Organisation).where(Organisation.name == org_name)).first()
            if org is None:
                raise click.ClickException(f"no organisation named {org_name!r}")
            org_id = org.id
        try:
            user = accounts.create_user(s, email=email, name=name, role=role, organisation_id=org_id,
                                        password=password, locale=locale)
        except accounts.AccountError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"user {user.id}: {user.email} ({user.role})")


@click.group("demo", cls=AppGroup)
def demo_group():
    """Demo data."""


@demo_group.command("load")
def demo_load():
    """Load the demo organisations, users and cases (once; does nothing if they exist).

    Refused in production and on a database with accounts of its own: the demo passwords are published."""
    from portal.demo import DemoRefused, check_demo_allowed, load_demo

    with _session() as s:
        try:
            check_demo_allowed(s, current_app.config["PORTAL_ENV"])
        except DemoRefused as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(load_demo(s))


@click.group("mail", cls=AppGroup)
def mail_group():
    """Outgoing mail."""


@mail_group.command("retry")
def mail_retry():
    """Send every message still waiting in the outbox."""
    with _session() as s:
        sent, waiting = mail.deliver_pending(s, limit=10_000)
    click.echo(f"sent {sent}, waiting {waiting}")
    if waiting:
        sys.exit(1)


@mail_group.command("digests")
def mail_digests():
    """Mail each user the decisions and comments that are new for them (one message an hour at most)."""
    from portal.notifications.services import send_digests

    with _session() as s:
        queued = send_digests(s)
        sent, waiting = mail.deliver_pending(s, limit=10_000)
    click.echo(f"digests {queued}, sent {sent}, waiting {waiting}")


@click.group("audit", cls=AppGroup)
def audit_group():
    """The audit log."""


@audit_group.command("verify")
def audit_verify():
    """Recompute the audit log's hash chain; exit 1 and name the first broken entry if it does not hold."""
    from portal.audit import verify_chain

    with _session() as s:
        checked, problem = verify_chain(s)
    if problem:
        click.echo(f"audit chain BROKEN after {checked} good entries: {problem}", err=True)
        sys.exit(1)
    click.echo(f"audit chain intact: {checked} entries")


@click.command("worker")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1), help="worker threads")
@click.option("--no-periodic", is_flag=True, help="do not enqueue the periodic jobs (run them in ONE process)")
@click.option("--drain", is_flag=True, help="run the jobs queued now, in this process, and exit")
@click.option("--list", "list_", is_flag=True, help="list the periodic jobs and exit")
@with_appcontext
def worker_command(workers, no_periodic, drain, list_):
    """Run the task queue's consumer (Huey): the jobs the portal enqueues (mail, virus scans) and, unless
    --no-periodic, the periodic schedule (its scheduler thread enqueues them; see README, Processes)."""
    import logging

    from portal import tasks

    app = current_app._get_current_object()
    if list_:
        for item in tasks.PERIODIC:
            click.echo(f"{item.name:<20} {item.every:<8} {item.job}")
        return
    if drain:
        click.echo(f"ran {tasks.run_pending(app)} jobs")
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # A SQLite queue is polled (at most a second's wait for a new job); Redis hands jobs over at once.
    consumer = tasks.huey_of(app).create_consumer(workers=workers, periodic=not no_periodic, worker_type="thread",
                                                  max_delay=1.0)
    consumer.run()
