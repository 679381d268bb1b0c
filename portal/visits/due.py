"""Due and overdue visits: the next visit date the latest visit set, the paged list partners and staff
see, and the daily digest mail. Scoped like the cases they belong to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from flask import current_app, render_template, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlmodel import Session, func, select

from portal import mail
from portal.auth.models import Role, User
from portal.cases.models import Case, CaseStatus
from portal.cases.services import scope
from portal.orgs.models import Organisation
from portal.visits.models import Visit

DUE_SOON_DAYS = 14


@dataclass
class DueRow:
    case: Case
    organisation: str
    last_visit: date
    next_visit: date
    overdue: bool
    days: int  # days overdue (positive) or until due


def _due_select(columns, today: date, conditions: tuple, soon_days: int):
    latest = select(
        Visit.case_id, Visit.visit_date, Visit.next_visit_date,
        func.row_number().over(partition_by=Visit.case_id,
                               order_by=(Visit.visit_date.desc(), Visit.id.desc())).label("rank"),
    ).subquery()
    return (select(*columns(latest)).select_from(Case)
            .join(latest, latest.c.case_id == Case.id)
            .join(Organisation, Organisation.id == Case.organisation_id)
            .where(latest.c.rank == 1, latest.c.next_visit_date.is_not(None),
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


@dataclass
class DuePage:
    rows: list[DueRow]
    overdue: int  # of all pages
    total: int
    page: int
    pages: int


def due_page(db: Session, user: User, today: date, page: int, per_page: int | None = None) -> DuePage:
    """One page of the due and overdue visits the user may see (overdue first). One statement: each row
    carries the counts of the whole list (window counts, taken before the page is cut); a list with nothing
    on the page asked for (nothing due, or a page past the last) takes a count first and the last page."""
    per_page = per_page or DUE_PER_PAGE
    page = max(1, page)
    query, latest = _due_select(
        lambda t: (Case, Organisation.name, t.c.visit_date, t.c.next_visit_date, func.count().over(),
                   func.count().filter(t.c.next_visit_date < today).over()),
        today, scope(user), DUE_SOON_DAYS)
    query = query.order_by(latest.c.next_visit_date, Case.reference)
    found = db.exec(query.offset((page - 1) * per_page).limit(per_page)).all()
    if not found:
        counts, _latest = _due_select(lambda t: (func.count(), func.count().filter(t.c.next_visit_date < today)),
                                      today, scope(user), DUE_SOON_DAYS)
        total, overdue = db.exec(counts).one()
        if not total:
            return DuePage([], 0, 0, 1, 1)
        last = -(-total // per_page)
        if page > last:
            return due_page(db, user, today, last, per_page)
        return DuePage([], int(overdue or 0), int(total), page, last)  # the list changed in between
    total, overdue = found[0][4], found[0][5]
    rows = [DueRow(case, org, last, nxt, nxt < today, abs((today - nxt).days)) for case, org, last, nxt, *_n in found]
    return DuePage(rows, int(overdue or 0), int(total), page, max(1, -(-total // per_page)))


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
