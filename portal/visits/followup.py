"""Staff follow-up of visits: comments, acknowledging, and the queue of flagged visits (the review desk
lists them through flagged_condition(); the rules live here)."""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext as _
from sqlmodel import Session, or_, select

from portal import audit
from portal.auth.models import User
from portal.cases.models import Case
from portal.clock import utcnow
from portal.notifications import services as notifications
from portal.notifications.models import NoticeKind
from portal.orgs.models import Organisation
from portal.visits.models import FLAGS, Visit, VisitComment
from portal.visits.services import VisitError


def comments_of(db: Session, visit: Visit) -> list[tuple[VisitComment, str]]:
    rows = db.exec(select(VisitComment, User.name).outerjoin(User, User.id == VisitComment.author_id)
                   .where(VisitComment.visit_id == visit.id).order_by(VisitComment.created_at, VisitComment.id))
    return [(c, name or "") for c, name in rows]


def add_comment(db: Session, actor: User, visit: Visit, body: str) -> VisitComment:
    body = body.strip()
    if not body:
        raise VisitError(_("Write a comment."), "body")
    comment = VisitComment(visit_id=visit.id, author_id=actor.id, body=body)
    db.add(comment)
    db.flush()
    audit.record(db, actor, "visit.commented", visit, after={"comment_id": comment.id})
    _notify_comment(db, actor, visit, body)
    db.commit()
    return comment


def _notify_comment(db: Session, actor: User, visit: Visit, body: str) -> None:
    """Tell the organisation's partners and the staff following the visit (who commented on or
    acknowledged it) about a staff comment; the hourly digest mails it."""
    if not body or not actor.is_staff:
        return
    case = db.get(Case, visit.case_id)
    followers = db.exec(select(VisitComment.author_id).where(VisitComment.visit_id == visit.id).distinct()).all()
    recipients = notifications.partners_of(db, case.organisation_id) + notifications.staff_among(db, followers)
    notifications.notify(db, recipients, actor, NoticeKind.VISIT_COMMENT, "visit", visit.id, case=case.reference,
                         date=visit.visit_date.isoformat(), author=actor.name, comment=body)


def acknowledge(db: Session, actor: User, visit: Visit, body: str = "") -> None:
    """Mark the visit as seen by staff (once); a comment may go with it."""
    if visit.acknowledged_at is not None:
        raise VisitError(_("This visit was already acknowledged."), "body")
    visit.acknowledged_at = utcnow()
    visit.acknowledged_by_id = actor.id
    db.add(visit)
    db.add(VisitComment(visit_id=visit.id, author_id=actor.id, body=body.strip(), acknowledgement=True))
    audit.record(db, actor, "visit.acknowledged", visit, {"acknowledged_at": None},
                 {"acknowledged_at": visit.acknowledged_at.isoformat()})
    _notify_comment(db, actor, visit, body.strip())
    db.commit()


def flagged_condition():
    """The visits that raised a concern (any flag ticked)."""
    return or_(*(getattr(Visit, name).is_(True) for name in FLAGS))


@dataclass
class VisitRow:
    visit: Visit
    case: Case
    organisation: str


def flagged_visits(db: Session, include_acknowledged: bool = False) -> list[VisitRow]:
    """The staff queue: flagged visits not yet acknowledged (oldest first), or all flagged ones."""
    query = (select(Visit, Case, Organisation.name).join(Case, Case.id == Visit.case_id)
             .join(Organisation, Organisation.id == Case.organisation_id).where(flagged_condition()))
    if not include_acknowledged:
        query = query.where(Visit.acknowledged_at.is_(None)).order_by(Visit.created_at, Visit.id)
    else:
        query = query.order_by(Visit.created_at.desc(), Visit.id.desc())
    return [VisitRow(v, c, o) for v, c, o in db.exec(query.limit(500))]
