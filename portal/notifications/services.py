"""Who hears about a decision or a comment, and the hourly digest that tells them.

Partners hear about every decision on their organisation's receipts (approved, rejected with the reason,
correction requested) and every staff comment on its visits. Staff hear about the same on the items
they follow. Following is implicit: a staff member follows a receipt they decided on (a first approval,
an approval, a rejection, a correction request) and a visit they commented on or acknowledged. Nobody
hears about their own action.

Nothing is mailed at the moment of the decision: notify() writes rows in the decision's transaction;
send_digests() (`flask --app portal mail digests`, run hourly) mails each user at most one message per
DIGEST_MINUTES with everything new, in the user's language.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app, render_template, url_for
from flask_babel import force_locale, format_date, ngettext
from flask_babel import gettext as _
from sqlalchemy import or_, update
from sqlmodel import Session, delete, select

from portal import mail
from portal.auth.models import Role, User
from portal.clock import utcnow
from portal.notifications.models import NoticeKind, Notification


def _receives(user: User) -> bool:
    return user.is_active and user.mail_digest


def partners_of(db: Session, organisation_id: int) -> list[User]:
    """The organisation's partner accounts that take digests."""
    users = db.exec(select(User).where(User.role == Role.PARTNER, User.organisation_id == organisation_id,
                                       User.active.is_(True), User.password_hash.is_not(None),
                                       User.mail_digest.is_(True)).order_by(User.id)).all()
    return list(users)


def staff_among(db: Session, user_ids: Iterable[int | None]) -> list[User]:
    """Those of the given users who are staff and take digests (followers of an item)."""
    ids = {i for i in user_ids if i is not None}
    if not ids:
        return []
    users = db.exec(select(User).where(User.id.in_(ids), User.role.in_((Role.STAFF, Role.ADMIN)))
                    .order_by(User.id)).all()
    return [u for u in users if _receives(u)]


def notify(db: Session, recipients: Iterable[User], actor: User | None, kind: NoticeKind, object_type: str,
           object_id: int, **params) -> int:
    """Write one notification per recipient (never the actor) in the caller's transaction."""
    seen: set[int] = set()
    for user in recipients:
        if user.id in seen or (actor is not None and user.id == actor.id):
            continue
        seen.add(user.id)
        db.add(Notification(user_id=user.id, kind=kind, object_type=object_type, object_id=object_id,
                            params=params))
    return len(seen)


# The digest -------------------------------------------------------------------------------------

@dataclass
class DigestItem:
    text: str
    link: str


def _text(n: Notification) -> str:
    p = n.params
    if n.kind == NoticeKind.RECEIPT_APPROVED:
        return _("Receipt %(ref)s of case %(case)s (%(supplier)s) was approved.", ref=p.get("ref"),
                 case=p.get("case"), supplier=p.get("supplier"))
    if n.kind == NoticeKind.RECEIPT_REJECTED:
        return _("Receipt %(ref)s of case %(case)s (%(supplier)s) was rejected. Reason: %(comment)s",
                 ref=p.get("ref"), case=p.get("case"), supplier=p.get("supplier"), comment=p.get("comment"))
    if n.kind == NoticeKind.RECEIPT_CORRECTION:
        return _("Receipt %(ref)s of case %(case)s (%(supplier)s) needs a correction: %(comment)s",
                 ref=p.get("ref"), case=p.get("case"), supplier=p.get("supplier"), comment=p.get("comment"))
    if n.kind == NoticeKind.VISIT_COMMENT:
        visited = p.get("date")
        return _("%(name)s commented on the visit of %(date)s (case %(case)s): %(comment)s",
                 name=p.get("author") or "–", case=p.get("case"), comment=p.get("comment"),
                 date=format_date(datetime.fromisoformat(visited).date()) if visited else "–")
    return n.kind


def _link(n: Notification) -> str:
    endpoint = {"receipt": ("receipts.show", "receipt_id"), "visit": ("visits.show", "visit_id")}.get(n.object_type)
    if endpoint is None:
        return ""
    return current_app.config["BASE_URL"].rstrip("/") + url_for(endpoint[0], **{endpoint[1]: n.object_id})


def _render(user: User, rows: list[Notification]) -> tuple[str, str]:
    base = current_app.config["BASE_URL"].rstrip("/")
    with force_locale(user.locale or current_app.config["BABEL_DEFAULT_LOCALE"]):
        portal_name = str(current_app.config["PORTAL_NAME"])
        subject = ngettext("%(portal)s: %(num)s update on your cases", "%(portal)s: %(num)s updates on your cases",
                           len(rows), portal=portal_name)
        body = render_template("notifications/mail_digest.txt", user=user,
                               items=[DigestItem(_text(n), _link(n)) for n in rows],
                               account_link=base + url_for("auth.account"), portal_name=portal_name)
    return subject, body


def _claim_user(db: Session, user_id: int, now: datetime, cutoff: datetime) -> bool:
    """Take this user's digest for this period: of two runners, exactly one matches the row."""
    result = db.exec(update(User).where(User.id == user_id,
                                        or_(User.last_digest_at.is_(None), User.last_digest_at <= cutoff))
                     .values(last_digest_at=now).execution_options(synchronize_session=False))
    return result.rowcount == 1


def send_digests(db: Session, now: datetime | None = None) -> int:
    """Queue one digest per user with new notifications whose last digest is DIGEST_MINUTES old or more;
    mark what it tells as sent. Safe to run twice, or in two processes at once. Returns the mails queued
    (the caller delivers them from the outbox)."""
    now = now or utcnow()
    cutoff = now - timedelta(minutes=current_app.config["DIGEST_MINUTES"])
    waiting = db.exec(select(Notification.user_id).where(Notification.sent_at.is_(None),
                                                         Notification.created_at <= now).distinct()).all()
    queued = 0
    with current_app.test_request_context("/", base_url=current_app.config["BASE_URL"]):
        for user_id in sorted(waiting):
            user = db.get(User, user_id)
            wants = user is not None and _receives(user)
            if wants and not _claim_user(db, user_id, now, cutoff):
                db.rollback()
                continue  # told less than DIGEST_MINUTES ago (or another runner has it): the next run
            rows = db.exec(select(Notification).where(Notification.user_id == user_id,
                                                      Notification.sent_at.is_(None),
                                                      Notification.created_at <= now)
                           .order_by(Notification.created_at, Notification.id)).all()
            ids = [n.id for n in rows]
            taken = db.exec(update(Notification).where(Notification.id.in_(ids), Notification.sent_at.is_(None))
                            .values(sent_at=now).execution_options(synchronize_session=False)).rowcount
            if not rows or taken != len(ids):
                db.rollback()  # another runner took some of them: it sends them
                continue
            if wants:  # a user who turned the mails off (or left) has them marked, not mailed
                subject, body = _render(user, rows)
                mail.queue(db, user.email, subject, body)
                queued += 1
            db.commit()
    _forget_old(db, now)
    return queued


def _forget_old(db: Session, now: datetime) -> None:
    """Sent notifications hold comments: kept no longer than sent mails (MAIL_RETENTION_DAYS)."""
    before = now - timedelta(days=current_app.config["MAIL_RETENTION_DAYS"])
    db.exec(delete(Notification).where(Notification.sent_at.is_not(None), Notification.sent_at < before))
    db.commit()


def set_mail_digest(db: Session, user: User, on: bool) -> None:
    """The user's own choice on the account page."""
    user.mail_digest = on
    db.add(user)
    if not on:  # what waits is not sent later when they turn it back on
        db.exec(update(Notification).where(Notification.user_id == user.id, Notification.sent_at.is_(None))
                .values(sent_at=utcnow()).execution_options(synchronize_session=False))
    db.commit()


def digests_job() -> int:
    """The hourly job: the decision and comment digests of `flask --app portal mail digests`."""
    from portal import db as dbm

    with Session(dbm.engine(), expire_on_commit=False) as db:
        return send_digests(db)
