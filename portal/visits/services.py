"""Visits: recording (idempotent on the draft id), drafts, staff follow-up, overdue list, digest,
score trend (the case timeline is portal.cases.timeline). Every query is scoped like the cases it belongs to."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, BinaryIO

from flask import abort, current_app, render_template, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, func, or_, select

from portal import audit, mail
from portal.audit import utcnow
from portal.auth.models import Role, User
from portal.cases.models import Case, CaseStatus
from portal.cases.services import scope
from portal.notifications import services as notifications
from portal.notifications.models import NoticeKind
from portal.orgs.models import Organisation
from portal.rules import RuleError
from portal.visits.models import (
    DIMENSIONS,
    FLAGS,
    BusinessStatus,
    GoodsState,
    IncomeBand,
    Visit,
    VisitComment,
    VisitDraft,
    VisitMode,
    VisitPhoto,
    VisitPurpose,
)

log = logging.getLogger(__name__)

KEY_RE = re.compile(r"^[0-9a-f]{32}$")
DUE_SOON_DAYS = 14
DRAFT_VALUE_MAX = 5000
VISIT_FIELDS = ("case_id", "visit_date", "mode", "purpose", "returnee_met", "goods_state", "business_status",
                *DIMENSIONS, *FLAGS, "next_visit_date", "location_consent")


class VisitError(RuleError):
    """A rule about visits was broken; `field` names the form field the message belongs to."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message, field)
        self.problems = [(field, message)]  # every problem found, when there are several


def new_draft_key() -> str:
    return uuid.uuid4().hex


def valid_key(key: str | None) -> bool:
    return bool(key and KEY_RE.match(key))


# Loading ----------------------------------------------------------------------------------------

def get_visit_for(db: Session, user: User, visit_id: int) -> Visit:
    """The visit if the user may see its case, else 404."""
    visit = db.exec(select(Visit).join(Case, Case.id == Visit.case_id)
                    .where(Visit.id == visit_id, *scope(user))).first()
    if visit is None:
        abort(404)
    return visit


def get_photo_for(db: Session, user: User, visit_id: int, photo_id: int) -> tuple[Visit, VisitPhoto]:
    visit = get_visit_for(db, user, visit_id)
    photo = db.exec(select(VisitPhoto).where(VisitPhoto.id == photo_id, VisitPhoto.visit_id == visit.id,
                                             VisitPhoto.confirmed.is_(True))).first()
    if photo is None:
        abort(404)
    return visit, photo


def visits_of_case(db: Session, case: Case) -> list[Visit]:
    """A case's visits, newest first."""
    return list(db.exec(select(Visit).where(Visit.case_id == case.id)
                        .order_by(Visit.visit_date.desc(), Visit.id.desc())))


def visits_with_comments(db: Session, case: Case) -> tuple[list[Visit], list[tuple[VisitComment, str | None]]]:
    """visits_of_case() and the comments on them (with their authors' names), in one statement."""
    rows = db.exec(select(Visit, VisitComment, User.name)
                   .outerjoin(VisitComment, VisitComment.visit_id == Visit.id)
                   .outerjoin(User, User.id == VisitComment.author_id)
                   .where(Visit.case_id == case.id)
                   .order_by(Visit.visit_date.desc(), Visit.id.desc(), VisitComment.id)).all()
    visits: dict[int, Visit] = {}
    comments = []
    for visit, comment, name in rows:
        visits.setdefault(visit.id, visit)
        if comment is not None:
            comments.append((comment, name))
    return list(visits.values()), comments


def visit_by_key(db: Session, key: str) -> Visit | None:
    return db.exec(select(Visit).where(Visit.draft_key == key)).first()


def user_names(db: Session, ids) -> dict[int, str]:
    ids = {i for i in ids if i}
    if not ids:
        return {}
    return dict(db.exec(select(User.id, User.name).where(User.id.in_(ids))).all())


# Receipts of a case ----------------------------------------------------------------------------

@dataclass
class ReceiptChoice:
    id: int
    label: str


def receipts_of_case(db: Session, case: Case) -> list[ReceiptChoice]:
    """The case's submitted receipts, for the per-receipt state of goods."""
    from portal.receipts.models import Receipt as receipt  # receipts import visits' neighbours: load late

    rows = db.exec(select(receipt).where(receipt.case_id == case.id, receipt.status != "pending")
                   .order_by(receipt.id))
    return [ReceiptChoice(r.id, f"{r.reference}: {r.supplier} – {r.description}"[:200]) for r in rows]


# Drafts -----------------------------------------------------------------------------------------

def _draft_fields() -> set[str]:
    from portal.visits.forms import VisitForm

    return {name for name in VisitForm.__dict__ if not name.startswith("_")} - {"submit", "draft_key",
                                                                                 "csrf_token", "meta"}


_GOODS_FIELD = re.compile(r"^goods_\d{1,12}$")


def clean_draft_data(form: Mapping[str, str]) -> dict[str, str]:
    """What a draft keeps: the visit form's own fields (and per-receipt goods), each value cut short."""
    allowed = _draft_fields()
    return {name: str(value)[:DRAFT_VALUE_MAX] for name, value in form.items()
            if name in allowed or _GOODS_FIELD.match(name)}


def latest_draft(db: Session, user: User, case: Case) -> VisitDraft | None:
    """The user's newest draft for this case; drafts already submitted (a late autosave) are dropped."""
    rows = db.exec(select(VisitDraft, Visit.id).outerjoin(Visit, Visit.draft_key == VisitDraft.key)
                   .where(VisitDraft.user_id == user.id, VisitDraft.case_id == case.id)
                   .order_by(VisitDraft.updated_at.desc(), VisitDraft.id.desc())).all()
    for draft, submitted in rows:
        if submitted is None:
            return draft
        db.delete(draft)
        db.commit()
    return None


def save_draft(db: Session, user: User, case: Case, key: str, form: Mapping[str, str]) -> VisitDraft | None:
    """Store what the form holds now under its key; None when that draft was already submitted."""
    if visit_by_key(db, key) is not None:
        return None
    data = clean_draft_data(form)
    for _attempt in range(2):
        draft = db.exec(select(VisitDraft).where(VisitDraft.key == key)).first()
        if draft is not None and (draft.user_id != user.id or draft.case_id != case.id):
            abort(404)  # someone else's draft id: it does not exist for this user
        draft = draft or VisitDraft(key=key, user_id=user.id, case_id=case.id)
        draft.data = data
        draft.updated_at = utcnow()
        db.add(draft)
        try:
            db.commit()
        except IntegrityError:  # two autosaves of a new draft at once: the other one created it
            db.rollback()
            continue
        return draft
    abort(409)


def discard_draft(db: Session, user: User, case: Case, key: str) -> None:
    draft = db.exec(select(VisitDraft).where(VisitDraft.key == key, VisitDraft.user_id == user.id,
                                             VisitDraft.case_id == case.id)).first()
    if draft is not None:
        db.delete(draft)
        db.commit()


# Recording a visit ------------------------------------------------------------------------------

def visit_problems(data: dict, today: date, met_known: bool = True) -> list[tuple[str, str]]:
    """Every broken cross-field rule as (field, message), in the form's order. Values the form could not
    read are None and skipped; `met_known`: the "was the returnee met?" question was answered."""
    problems = []
    if data.get("visit_date") and data["visit_date"] > today:
        problems.append(("visit_date", _("The date of the visit cannot be in the future.")))
    choices = (("mode", VisitMode, _("Choose how the visit took place.")),
               ("purpose", VisitPurpose, _("Choose the purpose of the visit.")),
               ("goods_state", GoodsState, _("Choose the state of the goods.")),
               ("business_status", BusinessStatus, _("Choose the business or employment status.")),
               ("income_band", IncomeBand, _("Choose an income band.")))
    for name, enum, message in choices:
        if data.get(name) not in {e.value for e in enum}:
            problems.append((name, message))
    if met_known and not data["returnee_met"]:
        if not (data.get("not_met_reason") or "").strip():
            problems.append(("not_met_reason", _("Say why the returnee was not met.")))
    elif met_known:
        labels = {"score_economic": _("Score the economic dimension."),
                  "score_social": _("Score the social dimension."),
                  "score_psychosocial": _("Score the psychosocial dimension.")}
        problems += [(name, labels[name]) for name in DIMENSIONS if data.get(name) not in (1, 2, 3, 4, 5)]
    if any(data.get(name) for name in FLAGS) and not (data.get("flag_details") or "").strip():
        problems.append(("flag_details", _("Describe the concern you ticked, so staff can follow up.")))
    if data.get("next_visit_date") and data.get("visit_date") and data["next_visit_date"] <= data["visit_date"]:
        problems.append(("next_visit_date", _("The next visit must be after this visit.")))
    return problems


def _check(data: dict, receipts: list[ReceiptChoice], today: date) -> dict:
    """Cross-field rules; returns the values to store. VisitError names the first problem, `problems` all."""
    problems = visit_problems(data, today)
    if problems:
        field_name, message = problems[0]
        error = VisitError(message, field_name)
        error.problems = problems
        raise error
    out = dict(data)
    if not out["returnee_met"]:
        for name in DIMENSIONS:
            out[name] = None  # nobody to score
    else:
        out["not_met_reason"] = ""
    # Coordinates only with the returnee's consent; about a metre is precise enough.
    if out["location_consent"] and out["latitude"] is not None and out["longitude"] is not None:
        out["latitude"], out["longitude"] = round(out["latitude"], 5), round(out["longitude"], 5)
    else:
        out["latitude"] = out["longitude"] = None
    known = {r.id for r in receipts}
    goods = {str(rid): state for rid, state in (out.get("goods_by_receipt") or {}).items()
             if rid in known and state in {g.value for g in GoodsState}}
    out["goods_by_receipt"] = goods or None
    return out


def create_visit(db: Session, actor: User, case: Case, key: str, data: dict,
                 today: date | None = None) -> tuple[Visit, bool]:
    """Record a visit from a draft; the same draft sent again returns the first visit (created=False)."""
    existing = visit_by_key(db, key)
    if existing is not None:
        if existing.case_id != case.id:
            abort(404)
        return existing, False
    values = _check(data, receipts_of_case(db, case), today or date.today())
    visit = Visit(case_id=case.id, draft_key=key, created_by_id=actor.id,
                  **{k: v for k, v in values.items() if k in Visit.model_fields})
    db.add(visit)
    try:
        db.flush()
    except IntegrityError:  # the same draft submitted twice at the same moment: the other one won
        db.rollback()
        existing = visit_by_key(db, key)
        if existing is None:
            raise
        return existing, False
    for draft in db.exec(select(VisitDraft).where(VisitDraft.key == key)):
        db.delete(draft)
    audit.record(db, actor, "visit.created", visit, after=audit.snapshot(visit, VISIT_FIELDS))
    if visit.flagged:
        _queue_flag_mails(db, case, visit)
    db.commit()
    return visit, True


def _base_url() -> str:
    return current_app.config["BASE_URL"].rstrip("/")


def staff_contacts(db: Session, case: Case) -> list[User]:
    """Who hears about a flagged visit: the staff member who opened the case, else every staff member."""
    creator = db.get(User, case.created_by_id) if case.created_by_id else None
    if creator is not None and creator.is_staff and creator.is_active:
        return [creator]
    staff = db.exec(select(User).where(User.role == Role.STAFF, User.active.is_(True),
                                       User.password_hash.is_not(None)).order_by(User.id)).all()
    if not staff:
        staff = db.exec(select(User).where(User.role == Role.ADMIN, User.active.is_(True),
                                           User.password_hash.is_not(None)).order_by(User.id)).all()
    return list(staff)


def _queue_flag_mails(db: Session, case: Case, visit: Visit) -> None:
    from portal.visits.forms import FLAG_LABELS

    link = _base_url() + url_for("visits.show", visit_id=visit.id)
    for user in staff_contacts(db, case):
        with force_locale(user.locale or current_app.config["BABEL_DEFAULT_LOCALE"]):
            subject = _("Visit flagged on case %(ref)s", ref=case.reference)
            body = render_template("visits/mail_flagged.txt", user=user, case=case, visit=visit, link=link,
                                   flags=[str(FLAG_LABELS[f]) for f in visit.flags])
        mail.queue(db, user.email, subject, body)


# Staff follow-up --------------------------------------------------------------------------------

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


def _flagged_condition():
    return or_(*(getattr(Visit, name).is_(True) for name in FLAGS))


@dataclass
class VisitRow:
    visit: Visit
    case: Case
    organisation: str


def flagged_visits(db: Session, include_acknowledged: bool = False) -> list[VisitRow]:
    """The staff queue: flagged visits not yet acknowledged (oldest first), or all flagged ones."""
    query = (select(Visit, Case, Organisation.name).join(Case, Case.id == Visit.case_id)
             .join(Organisation, Organisation.id == Case.organisation_id).where(_flagged_condition()))
    if not include_acknowledged:
        query = query.where(Visit.acknowledged_at.is_(None)).order_by(Visit.created_at, Visit.id)
    else:
        query = query.order_by(Visit.created_at.desc(), Visit.id.desc())
    return [VisitRow(v, c, o) for v, c, o in db.exec(query.limit(500))]


# Photos -----------------------------------------------------------------------------------------

PHOTO_PREFIX = "visits"


def add_photo(db: Session, actor: User, visit: Visit, filename: str, stream: BinaryIO,
              consent: bool) -> VisitPhoto:
    """Store a visit photo re-encoded (no EXIF or GPS): intent row, object, then confirmation."""
    from portal.scanning import services as scanning
    from portal.storage import StorageError, get_storage, new_key
    from portal.uploads.files import JPEG, PNG, WEBP, FileProblem, clean_upload, sniff

    if not consent:
        raise VisitError(_("A photo can only be added with the returnee's consent."), "consent")
    head = stream.read(32)
    stream.seek(0)
    if sniff(head) not in (JPEG, PNG, WEBP):
        raise VisitError(_("The selected file must be a JPG, PNG or WebP photo."), "photo")
    try:
        clean = clean_upload(filename, stream)
    except FileProblem as exc:
        raise VisitError(str(exc), "photo") from None
    photo = VisitPhoto(visit_id=visit.id, key=new_key(f"{PHOTO_PREFIX}/{visit.case_id}"),
                       content_type=clean.content_type, original_filename=clean.filename, consent=True,
                       uploaded_by_id=actor.id, scan_status=scanning.initial_status())
    db.add(photo)
    db.commit()  # the intent: if storing fails half-way, the sweep finds the row and the object
    storage = get_storage()
    try:
        stored = storage.put(photo.key, clean.data, content_type=clean.content_type, sha256=clean.sha256,
                             md5=clean.md5 or None)
    except StorageError:
        db.delete(photo)
        db.commit()
        raise VisitError(_("The photo could not be stored. Please try again."), "photo") from None
    photo.size, photo.sha256, photo.confirmed = stored.size, stored.sha256, True
    db.add(photo)
    audit.record(db, actor, "visit.photo_added", visit, after={"photo_id": photo.id, "sha256": stored.sha256,
                                                               "consent": True})
    db.commit()
    scanning.scan_new(db, storage, [photo], actor)  # the scan runs on the task queue; the photo is pending
    return photo


def add_uploaded_photos(db: Session, actor: User, visit: Visit, rows: list, consent: bool) -> list[VisitPhoto]:
    """Photos from completed resumable uploads (checked and stored already): the photo rows adopt the
    uploads' keys and the uploads are claimed in the same transaction; then the malware scan runs."""
    from portal.scanning import services as scanning
    from portal.storage import get_storage
    from portal.uploads import services as uploads

    if not consent:
        raise VisitError(_("A photo can only be added with the returnee's consent."), "consent")
    photos = [VisitPhoto(visit_id=visit.id, key=row.key, size=row.size or 0, sha256=row.sha256,
                         content_type=row.content_type, original_filename=row.filename, consent=True,
                         confirmed=True, uploaded_by_id=actor.id, scan_status=scanning.initial_status())
              for row in rows]
    db.add_all(photos)
    if not uploads.claim(db, [row.id for row in rows], visit_id=visit.id):
        db.rollback()
        raise VisitError(_("An uploaded file is no longer available (it was removed, used already or kept for "
                           "more than 24 hours). Choose it again."), "photo")
    db.flush()
    for photo in photos:
        audit.record(db, actor, "visit.photo_added", visit, after={"photo_id": photo.id, "sha256": photo.sha256,
                                                                   "key": photo.key, "consent": True})
    db.commit()
    return scanning.scan_new(db, get_storage(), photos, actor)


def photos_of(db: Session, visit: Visit) -> list[VisitPhoto]:
    return list(db.exec(select(VisitPhoto).where(VisitPhoto.visit_id == visit.id, VisitPhoto.confirmed.is_(True))
                        .order_by(VisitPhoto.id)))


def sweep_photos(db: Session, older_than: timedelta = timedelta(hours=1)) -> tuple[int, int]:
    """Remove photo upload intents that never got confirmed (with their objects), and stored photo
    objects no row refers to (a failed upload whose clean-up could not reach the storage).
    Returns (intents removed, orphaned objects removed)."""
    from portal.storage import get_storage

    storage = get_storage()
    stale = db.exec(select(VisitPhoto).where(VisitPhoto.confirmed.is_(False),
                                             VisitPhoto.created_at < utcnow() - older_than)).all()
    for photo in stale:
        storage.delete(photo.key)
        db.delete(photo)
    db.commit()
    # List first, then read the rows: a row is committed before its object is stored, so an upload
    # in progress always has its row by the time its key can be listed.
    from portal.uploads.services import kept_keys

    listed = list(storage.keys(PHOTO_PREFIX + "/"))
    known = set(db.exec(select(VisitPhoto.key)).all()) | kept_keys(db)  # ready uploads wait for a form
    orphans = [key for key in listed if key not in known]
    for key in orphans:
        storage.delete(key)
    return len(stale), len(orphans)


# Due and overdue --------------------------------------------------------------------------------

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
    """One page of the due and overdue visits the user may see (overdue first): two statements."""
    per_page = per_page or DUE_PER_PAGE
    counts, latest = _due_select(lambda t: (func.count(), func.count().filter(t.c.next_visit_date < today)),
                                 today, scope(user), DUE_SOON_DAYS)
    total, overdue = db.exec(counts).one()
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    rows = due_visits(db, today, scope(user), offset=(page - 1) * per_page, limit=per_page)
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
        links = {row.case.id: _base_url() + url_for("cases.show", case_id=row.case.id) for row in rows}
        with force_locale(user.locale or current_app.config["BABEL_DEFAULT_LOCALE"]):
            overdue = [r for r in rows if r.overdue]
            subject = _("Visits due: %(overdue)s overdue, %(due)s coming up", overdue=len(overdue),
                        due=len(rows) - len(overdue))
            body = render_template("visits/mail_digest.txt", user=user, overdue=overdue,
                                   due=[r for r in rows if not r.overdue], links=links, today=today,
                                   list_link=_base_url() + url_for("visits.due"))
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


def sweep_photos_job() -> str:
    """The hourly job: the photo sweep of `flask --app portal visits sweep-photos`."""
    from portal import db as dbm

    with Session(dbm.engine(), expire_on_commit=False) as db:
        intents, orphans = sweep_photos(db)
    return f"{intents} intents, {orphans} orphans"


# The case page's part ----------------------------------------------------------------------------

def case_part(db: Session, user: User, case: Case) -> dict:
    """What the case page shows about visits: the list (with the comments, read with it, for the timeline),
    the user's draft and the trend."""
    visits, comments = visits_with_comments(db, case)
    return {"visits": visits, "visit_comments": comments, "visit_draft": latest_draft(db, user, case),
            "trend": trend(visits)}


# Score trend ------------------------------------------------------------------------------------

@dataclass
class Series:
    name: str
    color: str
    dash: str
    marker: str  # circle, square, triangle
    points: list[tuple[float, float, int]] = field(default_factory=list)

    @property
    def path(self) -> str:
        return " ".join(f"{x:.1f},{y:.1f}" for x, y, _score in self.points)


@dataclass
class Trend:
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    visits: list[Visit]
    xs: list[float]
    series: list[Series]
    y_ticks: list[tuple[int, float]]

    @property
    def empty(self) -> bool:
        return not self.visits


# Colours that stay apart for the common colour-vision deficiencies; dashes and markers differ too.
_STYLE = {"score_economic": ("#0b4f8a", "", "circle"), "score_social": ("#b35900", "6 4", "square"),
          "score_psychosocial": ("#2e7d32", "2 3", "triangle")}


def trend(visits: list[Visit], last: int = 12, width: int = 360, height: int = 220) -> Trend:
    """Chart geometry of the three scores over the last visits that have scores (oldest left).

    The drawing is about as wide as a phone, so that its 13–14 px labels stay that size on a phone
    (a wider drawing is scaled down, its labels with it); the margins leave room for half a date label
    on either side."""
    scored = [v for v in visits if v.score_economic is not None]
    scored = sorted(scored, key=lambda v: (v.visit_date, v.id))[-last:]
    left, right, top, bottom = 48, 44, 12, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(scored)
    xs = [left + plot_w / 2] if n == 1 else [left + i * plot_w / (n - 1) for i in range(n)]

    def y(score: int) -> float:
        return top + (5 - score) * plot_h / 4

    series = []
    for name in DIMENSIONS:
        color, dash, marker = _STYLE[name]
        s = Series(name, color, dash, marker)
        s.points = [(x, y(getattr(v, name)), getattr(v, name)) for x, v in zip(xs, scored, strict=True)]
        series.append(s)
    return Trend(width, height, left, right, top, bottom, scored, xs, series,
                 [(score, y(score)) for score in range(1, 6)])


# Form data → service data -----------------------------------------------------------------------

def data_from_form(form, raw: Mapping[str, Any]) -> dict:
    """The visit values from a validated VisitForm and the raw per-receipt goods fields."""

    def score(name):
        value = getattr(form, name).data
        return int(value) if value and str(value).isdigit() else None

    goods = {}
    for key, value in raw.items():
        if _GOODS_FIELD.match(key):
            goods[int(key.removeprefix("goods_"))] = value
    return {
        "visit_date": form.visit_date.data, "visit_time": form.visit_time.data, "mode": form.mode.data,
        "place": (form.place.data or "").strip(), "location_consent": bool(form.location_consent.data),
        "latitude": form.latitude.data, "longitude": form.longitude.data,
        "attendees": (form.attendees.data or "").strip(), "returnee_met": form.returnee_met.data == "yes",
        "not_met_reason": form.not_met_reason.data or "", "purpose": form.purpose.data,
        "goods_state": form.goods_state.data, "goods_by_receipt": goods,
        "business_status": form.business_status.data, "income_band": form.income_band.data,
        "people_employed": form.people_employed.data,
        **{name: score(name) for name in DIMENSIONS},
        **{name: bool(getattr(form, name).data) for name in FLAGS},
        "flag_details": (form.flag_details.data or "").strip(), "actions_taken": (form.actions_taken.data or "").strip(),
        "next_visit_date": form.next_visit_date.data, "notes": (form.notes.data or "").strip(),
    }
