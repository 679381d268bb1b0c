"""Due and overdue visits: the next visit date the latest visit set, the paged list partners and staff
see, and the daily digest mail. Scoped like the cases they belong to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import NamedTuple

from flask import current_app, render_template, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlmodel import Session, func, select

from portal import mail
from portal.auth.models import Role, User
from portal.cases.models import Case, CaseStatus
from portal.cases.services import scope
from portal.db import written
from portal.orgs.models import Organisation
from portal.visits.models import LatestVisit

DUE_SOON_DAYS = 14


@dataclass
class DueRow:
    case: Case
    organisation: str
    last_visit: date
    next_visit: date
    overdue: bool
    days: int  # days overdue (positive) or until due


def _due_select(columns, today: date, conditions: tuple, soon_days: int, names: bool = True):
    """Each case's latest visit is kept (portal/visits/latest.py): one row per case, indexed by the next visit
    date it set, instead of ranking every visit on each request. `names`: joined with the organisations (a
    count needs no names)."""
    latest = LatestVisit.__table__
    query = select(*columns(latest)).select_from(Case).join(latest, latest.c.case_id == Case.id)
    if names:
        query = query.join(Organisation, Organisation.id == Case.organisation_id)
    return (query
            .where(latest.c.next_visit_date.is_not(None),
                   latest.c.next_visit_date <= today + timedelta(days=soon_days),
                   Case.status != CaseStatus.CLOSED, *conditions)), latest


def due_visits(db: Session, today: date, conditions: tuple = (), soon_days: int = DUE_SOON_DAYS,
               offset: int = 0, limit: int | None = None) -> list[DueRow]:
    """Open cases whose latest visit set a next visit date that has passed or comes within soon_days."""
    query, latest = _due_select(lambda t: (Case, Organisation.name, t.c.visit_date, t.c.next_visit_date),
                                today, conditions, soon_days)
    query = query.order_by(latest.c.next_visit_date, Case.reference).offset(offset).limit(limit)
    return [DueRow(case, org, last, nxt, nxt < today, abs((today - nxt).days))
            for case, org, last, nxt in db.exec(query)]


DUE_PER_PAGE = 50


class DueLine(NamedTuple):
    """A row of the paged due list: a tuple of the values it shows, read field by field in the template's
    loop (an ORM case per row, and an attribute lookup per cell, cost more than the rest of the row)."""

    case_id: int
    reference: str
    organisation: str
    last_visit: date
    next_visit: date
    overdue: bool
    days: int  # days overdue (positive) or until due


@dataclass
class DuePage:
    rows: list[DueLine]
    overdue: int  # of all pages
    total: int
    page: int
    pages: int


def due_page(db: Session, user: User, today: date, page: int, per_page: int | None = None) -> DuePage:
    """One page of the due and overdue visits the user may see (overdue first). Two statements on the kept
    latest visits: the whole list's counts (narrow rows), then the page's rows along the next-date index (a
    page past the last shows the last). One statement with window counts would carry every due case's whole
    row through the count before cutting the page: 2-3 times slower at 10,000 cases."""
    per_page = per_page or DUE_PER_PAGE
    counts, _latest = _due_select(lambda t: (func.count(), func.count().filter(t.c.next_visit_date < today)),
                                  today, scope(user), DUE_SOON_DAYS, names=False)
    total, overdue = db.exec(counts).one()
    if not total:
        return DuePage([], 0, 0, 1, 1)
    pages = -(-total // per_page)
    page = min(max(1, page), pages)
    query, latest = _due_select(lambda t: (Case.id, Case.reference, Organisation.name, t.c.visit_date,
                                           t.c.next_visit_date), today, scope(user), DUE_SOON_DAYS)
    # The page's place written into the SQL: with OFFSET and LIMIT as parameters PostgreSQL plans it every time.
    query = query.order_by(latest.c.next_visit_date, Case.reference).offset(written((page - 1) * per_page)) \
        .limit(written(per_page))
    rows = [DueLine(case_id, reference, org, last, nxt, nxt < today, abs((today - nxt).days))
            for case_id, reference, org, last, nxt in db.exec(query)]
    return DuePage(rows, int(overdue or 0), int(total), page, pages)


def due_for(db: Session, user: User, today: date) -> list[DueRow]:
    """Due and overdue visits the user may see: partners their organisation's, staff all."""
    return due_visits(db, today, scope(user))


def send_digest(db: Session, today: date) -> int:
    """Queue one mail per active partner user whose organisation has due or overdue visits, each in the
    recipient's language, at most once per user and day. Returns the number of mails queued now (the task
    queue sends them)."""
    users = db.exec(select(User).where(User.role == Role.PARTNER, User.active.is_(True),
                                       User.password_hash.is_not(None), User.organisation_id.is_not(None))
                    .order_by(User.organisation_id, User.id)).all()
    by_org: dict[int, list[DueRow]] = {}
    queued = 0
    for user in users:
        if user.organisation_id not in by_org:
            by_org[user.organisation_id] = due_visits(db, today, (Case.organisation_id == user.organisation_id,))
        rows = by_org[user.organisation_id]
        if not rows:
            continue
        base = current_app.config["BASE_URL"].rstrip("/")
        links = {row.case.id: base + url_for("cases.show", case_id=row.case.id) for row in rows}
        with force_locale(user.locale or current_app.config["BABEL_DEFAULT_LOCALE"]):
            overdue = [r for r in rows if r.overdue]
            subject = _("Visits due: %(overdue)s overdue, %(due)s coming up", overdue=len(overdue),
                        due=len(rows) - len(overdue))
            body = render_template("visits/mail_digest.txt", user=user, overdue=overdue,
                                   due=[r for r in rows if not r.overdue], links=links, today=today,
                                   list_link=base + url_for("visits.due"))
        # One digest per user and day, however often this runs (the once-key is unique in the outbox).
        if mail.queue_once(db, f"visits-digest:{today.isoformat()}:{user.id}", user.email, subject, body):
            queued += 1
    db.commit()
    return queued


def digest_job() -> int:
    """The daily job: the digest of `flask --app portal visits digest` for today."""
    from portal import db as dbm

    with Session(dbm.engine(), expire_on_commit=False) as db:
        return send_digest(db, date.today())
