"""Visit drafts: the draft key (which is also the visit's key, so a draft sent twice records one visit),
autosaved drafts of the visit form, and the visit a draft became."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping

from flask import abort
from sqlalchemy import bindparam
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from portal.auth.models import User
from portal.cases.models import Case
from portal.clock import utcnow
from portal.visits.models import Visit, VisitDraft

KEY_RE = re.compile(r"^[0-9a-f]{32}$")
DRAFT_VALUE_MAX = 5000
GOODS_FIELD = re.compile(r"^goods_\d{1,12}$")  # the per-receipt state of goods: goods_<receipt id>


def new_draft_key() -> str:
    return uuid.uuid4().hex


def valid_key(key: str | None) -> bool:
    return bool(key and KEY_RE.match(key))


def visit_by_key(db: Session, key: str) -> Visit | None:
    """The visit recorded from this draft key, if it was sent already."""
    return db.exec(select(Visit).where(Visit.draft_key == key)).first()


def _draft_fields() -> set[str]:
    from portal.visits.forms import VisitForm

    return {name for name in VisitForm.__dict__ if not name.startswith("_")} - {"submit", "draft_key",
                                                                                 "csrf_token", "meta"}


def clean_draft_data(form: Mapping[str, str]) -> dict[str, str]:
    """What a draft keeps: the visit form's own fields (and per-receipt goods), each value cut short."""
    allowed = _draft_fields()
    return {name: str(value)[:DRAFT_VALUE_MAX] for name, value in form.items()
            if name in allowed or GOODS_FIELD.match(name)}


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


_DRAFTS_OF_USER = (select(VisitDraft.updated_at, Visit.id.label("submitted"))
                   .outerjoin(Visit, Visit.draft_key == VisitDraft.key)
                   .where(VisitDraft.user_id == bindparam("user_id"), VisitDraft.case_id == bindparam("case_id"))
                   .order_by(VisitDraft.updated_at.desc(), VisitDraft.id.desc()))


def draft_saved(db: Session, user: User, case) -> Row | VisitDraft | None:
    """What the case page says of the user's newest draft for this case (its `updated_at`), read as Core rows;
    when a submitted draft comes first, latest_draft() drops it as before."""
    rows = db.connection().execute(_DRAFTS_OF_USER, {"user_id": user.id, "case_id": case.id}).all()
    if rows and rows[0].submitted is not None:
        return latest_draft(db, user, case)
    return rows[0] if rows else None


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

