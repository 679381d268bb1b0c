"""Visits, the core: loading (scoped like the cases they belong to), recording a visit (idempotent on the
draft key) and its cross-field rules, and what the case page shows. Beside it: drafts.py, followup.py
(comments, acknowledging, the flagged queue), photos.py, due.py (due list and digest), trend.py; the case
timeline is portal.cases.timeline."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import cache
from typing import Any, NamedTuple

from flask import abort, current_app, render_template, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import bindparam
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from portal import audit, mail
from portal.auth.models import Role, User
from portal.cases.models import Case
from portal.cases.services import scope
from portal.rules import RuleError
from portal.visits.drafts import GOODS_FIELD, draft_saved, visit_by_key
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
from portal.visits.trend import trend

log = logging.getLogger(__name__)

VISIT_FIELDS = ("case_id", "visit_date", "mode", "purpose", "returnee_met", "goods_state", "business_status",
                *DIMENSIONS, *FLAGS, "next_visit_date", "location_consent")


class VisitError(RuleError):
    """A rule about visits was broken; `field` names the form field the message belongs to."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message, field)
        self.problems = [(field, message)]  # every problem found, when there are several


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


class CaseVisit(NamedTuple):
    """A visit as the case page shows it (list, trend, timeline): read-only, no ORM object."""

    id: int
    visit_date: date
    visit_time: time | None
    created_at: datetime | None
    mode: str
    purpose: str
    score_economic: int | None
    score_social: int | None
    score_psychosocial: int | None
    flag_health: bool
    flag_psychosocial: bool
    flag_family: bool
    flag_safety: bool
    flag_legal: bool
    acknowledged_at: datetime | None
    flags = Visit.flags  # the same as a Visit's
    flagged = Visit.flagged


class CaseVisitComment(NamedTuple):
    visit_id: int
    created_at: datetime
    acknowledgement: bool
    body: str
    author: str | None


_VISIT_COLUMNS = len(CaseVisit._fields)


@cache
def _visits_with_comments_statement():
    return (select(Visit.id, Visit.visit_date, Visit.visit_time, Visit.created_at, Visit.mode, Visit.purpose,
                   *(getattr(Visit, name) for name in (*DIMENSIONS, *FLAGS)), Visit.acknowledged_at,
                   VisitComment.id.label("comment_id"), VisitComment.created_at.label("comment_at"),
                   VisitComment.acknowledgement, VisitComment.body, User.name.label("author"))
            .outerjoin(VisitComment, VisitComment.visit_id == Visit.id)
            .outerjoin(User, User.id == VisitComment.author_id)
            .where(Visit.case_id == bindparam("case_id"))
            .order_by(Visit.visit_date.desc(), Visit.id.desc(), VisitComment.id))


def visits_with_comments(db: Session, case) -> tuple[list[CaseVisit], list[CaseVisitComment]]:
    """The case's visits, newest first, and the comments on them (with their authors' names), in one statement
    of Core rows (`case` is a Case or a row with its id)."""
    visits: dict[int, CaseVisit] = {}
    comments = []
    # All rows at once (fetchall, not a fetch per row); the comment's columns follow the visit's.
    for row in db.connection().execute(_visits_with_comments_statement(), {"case_id": case.id}).all():
        if row[0] not in visits:
            visits[row[0]] = CaseVisit(*row[:_VISIT_COLUMNS])
        if row[_VISIT_COLUMNS] is not None:
            comments.append(CaseVisitComment(row[0], *row[_VISIT_COLUMNS + 1:]))
    return list(visits.values()), comments


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

    link = current_app.config["BASE_URL"].rstrip("/") + url_for("visits.show", visit_id=visit.id)
    for user in staff_contacts(db, case):
        with force_locale(user.locale or current_app.config["BABEL_DEFAULT_LOCALE"]):
            subject = _("Visit flagged on case %(ref)s", ref=case.reference)
            body = render_template("visits/mail_flagged.txt", user=user, case=case, visit=visit, link=link,
                                   flags=[str(FLAG_LABELS[f]) for f in visit.flags])
        mail.queue(db, user.email, subject, body)


# The case page's part ----------------------------------------------------------------------------

def case_part(db: Session, user: User, case) -> dict:
    """What the case page shows about visits: the list (with the comments, read with it, for the timeline),
    when the user's draft was saved and the trend."""
    visits, comments = visits_with_comments(db, case)
    return {"visits": visits, "visit_comments": comments, "trend": trend(visits),
            "visit_draft": draft_saved(db, user, case)}


# Form data → service data -----------------------------------------------------------------------

def data_from_form(form, raw: Mapping[str, Any]) -> dict:
    """The visit values from a validated VisitForm and the raw per-receipt goods fields."""

    def score(name):
        value = getattr(form, name).data
        return int(value) if value and str(value).isdigit() else None

    goods = {}
    for key, value in raw.items():
        if GOODS_FIELD.match(key):
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
