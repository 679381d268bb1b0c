"""Workshop rules: registration with double opt-in, capacity and waitlist, moderation, self-service
links, staff moves, exports and the retention purge. No request objects here."""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass
from datetime import date, timedelta
from typing import NamedTuple

from flask import abort, current_app, render_template, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, delete, func, select

from portal import audit, csvfile, mail
from portal.clock import utcnow
from portal.rules import RuleError
from portal.workshop.ics import workshop_ics
from portal.workshop.models import Registration, RegRole, RegStatus, Workshop, WorkshopStat

CONFIRM, MANAGE = "workshop-confirm", "workshop-manage"
CONFIRM_DAYS = 14
WORKSHOP_FIELDS = ("title", "description", "translations", "starts_on", "ends_on", "city", "venue", "capacity",
                   "registration_deadline", "working_languages", "travel_support", "visa_letters", "moderated")
# Registrant fields a registrant (or staff) may change; e-mail is the identity and stays.
EDITABLE = ("name", "organisation", "country", "role", "languages", "dietary_needs", "accessibility_needs",
            "travel_support", "consent_list")
PASSPORT = ("passport_name", "nationality", "passport_number", "birth_date")
# What the audit log keeps of a registration: no names or contact data (the log outlives the purge).
AUDITED = ("status", "country", "role")
STAFF_TARGETS = (RegStatus.CONFIRMED, RegStatus.WAITLISTED, RegStatus.DECLINED, RegStatus.WITHDRAWN)


class WorkshopError(RuleError):
    """A rule of the workshop was broken; the message is for the user."""


class Duplicate(WorkshopError):
    """This e-mail address is already registered for the workshop."""

    def __init__(self, registration: Registration):
        super().__init__(_("This e-mail address is already registered for this workshop."), "email")
        self.registration = registration


# Workshops --------------------------------------------------------------------------------------

def get_workshop(db: Session, workshop_id: int) -> Workshop:
    workshop = db.get(Workshop, workshop_id)
    if workshop is None:
        abort(404)
    return workshop


def get_public_workshop(db: Session, key: str) -> Workshop:
    """The workshop behind a public address, or 404 (also once its personal data was purged)."""
    workshop = None
    if key and len(key) <= 32:
        workshop = db.exec(select(Workshop).where(Workshop.public_key == key)).first()
    if workshop is None or workshop.personal_data_purged_at is not None:
        abort(404)
    return workshop


def list_workshops(db: Session) -> list[tuple[Workshop, dict[str, int]]]:
    workshops = db.exec(select(Workshop).order_by(Workshop.starts_on.desc())).all()
    return [(w, status_counts(db, w)) for w in workshops]


def text_for(workshop: Workshop, locale: str) -> tuple[str, str]:
    """Title and description in the given language where staff gave them, else the main texts."""
    own = (workshop.translations or {}).get(str(locale)[:2]) or {}
    return own.get("title") or workshop.title, own.get("description") or workshop.description


def _check_workshop(data: dict) -> None:
    if data["ends_on"] < data["starts_on"]:
        raise WorkshopError(_("The last day cannot be before the first day."), "ends_on")
    if data["registration_deadline"] > data["ends_on"]:
        raise WorkshopError(_("The registration deadline cannot be after the workshop."), "registration_deadline")


def create_workshop(db: Session, actor, data: dict) -> Workshop:
    _check_workshop(data)
    workshop = Workshop(public_key=secrets.token_urlsafe(12), **data)
    db.add(workshop)
    db.flush()
    audit.record(db, actor, "workshop.created", workshop, after=audit.snapshot(workshop, WORKSHOP_FIELDS))
    db.commit()
    return workshop


def update_workshop(db: Session, actor, workshop: Workshop, data: dict) -> None:
    _check_workshop(data)
    before = audit.snapshot(workshop, WORKSHOP_FIELDS)
    for key, value in data.items():
        setattr(workshop, key, value)
    db.add(workshop)
    audit.record(db, actor, "workshop.updated", workshop, before=before,
                 after=audit.snapshot(workshop, WORKSHOP_FIELDS))
    db.commit()
    # More seats may free places for the waitlist.
    if _promote(db, workshop, actor):
        db.commit()


def is_open(workshop: Workshop, today: date | None = None) -> bool:
    return (today or date.today()) <= workshop.registration_deadline


def status_counts(db: Session, workshop: Workshop) -> dict[str, int]:
    rows = db.exec(select(Registration.status, func.count()).where(Registration.workshop_id == workshop.id)
                   .group_by(Registration.status)).all()
    counts = {s.value: 0 for s in RegStatus}
    counts.update({status: n for status, n in rows})
    return counts


def seats_taken(db: Session, workshop: Workshop) -> int:
    return db.exec(select(func.count()).select_from(Registration).where(
        Registration.workshop_id == workshop.id, Registration.status == RegStatus.CONFIRMED)).one()


def _lock(db: Session, workshop: Workshop) -> Workshop:
    """Serialise seat decisions per workshop (a row lock on PostgreSQL; SQLite locks the file)."""
    db.exec(select(Workshop.id).where(Workshop.id == workshop.id).with_for_update())
    return workshop


# Signed links -----------------------------------------------------------------------------------

def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=purpose)


def make_token(reg: Registration, purpose: str) -> str:
    return _serializer(purpose).dumps([reg.id, reg.link_nonce])


def link_days() -> int:
    """How long a self-service link works (WORKSHOP_LINK_DAYS, 30): a new one can be asked for any time."""
    return int(current_app.config["WORKSHOP_LINK_DAYS"])


def registration_from_token(db: Session, token: str, purpose: str) -> Registration:
    """The registration a signed link names, or 404 (bad signature, expired, voided by a newer link, or
    the data is gone)."""
    max_age = (CONFIRM_DAYS if purpose == CONFIRM else link_days()) * 86400
    try:
        reg_id, nonce = _serializer(purpose).loads(token or "", max_age=max_age)
    except (BadSignature, SignatureExpired, ValueError, TypeError):
        abort(404)
    reg = db.get(Registration, reg_id) if isinstance(reg_id, int) else None
    if reg is None or not isinstance(nonce, str) or not secrets.compare_digest(reg.link_nonce, nonce):
        abort(404)
    return reg


def _link(endpoint: str, **values) -> str:
    return current_app.config["BASE_URL"].rstrip("/") + url_for(endpoint, **values)


# Mail -------------------------------------------------------------------------------------------

def _mail(db: Session, reg: Registration, workshop: Workshop, kind: str, with_ics: bool = False) -> None:
    """Queue one of the registrant's mails, in the registrant's language."""
    with force_locale(reg.locale):
        title, description = text_for(workshop, reg.locale)
        subjects = {
            "confirm": _("Please confirm your registration: %(title)s", title=title),
            "confirmed": _("Your place is confirmed: %(title)s", title=title),
            "approved": _("Your registration was approved: %(title)s", title=title),
            "waitlisted": _("You are on the waitlist: %(title)s", title=title),
            "moved_up": _("A place became free for you: %(title)s", title=title),
            "declined": _("Your registration was declined: %(title)s", title=title),
            "withdrawn": _("Your registration was withdrawn: %(title)s", title=title),
            "link": _("Your registration link: %(title)s", title=title),
        }
        body = render_template(
            f"workshop/mail_{kind}.txt", reg=reg, workshop=workshop, title=title,
            confirm_link=_link("workshop.confirm", token=make_token(reg, CONFIRM)),
            manage_link=_link("workshop.manage", token=make_token(reg, MANAGE)))
    attachments = None
    if with_ics:
        attachments = [("workshop.ics", "text/calendar", workshop_ics(workshop, title, description))]
    mail.queue(db, reg.email, subjects[kind], body, attachments=attachments)


# Registering ------------------------------------------------------------------------------------

def normalise_email(email: str) -> str:
    return email.strip().lower()


def find_registration(db: Session, workshop: Workshop, email: str) -> Registration | None:
    return db.exec(select(Registration).where(Registration.workshop_id == workshop.id,
                                              Registration.email == normalise_email(email))).first()


def _new_registration(db: Session, workshop: Workshop, data: dict, locale: str) -> Registration:
    existing = find_registration(db, workshop, data["email"])
    if existing is not None:
        raise Duplicate(existing)
    fields = {k: v for k, v in data.items() if k in EDITABLE + PASSPORT + ("email", "visa_letter",
                                                                          "consent_processing")}
    fields["email"] = normalise_email(fields["email"])
    if not fields.get("visa_letter") or not workshop.visa_letters:
        fields.update({k: None for k in PASSPORT}, visa_letter=False)
    if not workshop.travel_support:
        fields["travel_support"] = False
    reg = Registration(workshop_id=workshop.id, locale=locale, link_nonce=secrets.token_urlsafe(16), **fields)
    db.add(reg)
    try:
        db.flush()
    except IntegrityError:  # the same address, registered at the same moment
        db.rollback()
        existing = find_registration(db, workshop, data["email"])
        if existing is None:
            raise
        raise Duplicate(existing) from None
    return reg


def register(db: Session, workshop: Workshop, data: dict, locale: str, today: date | None = None) -> Registration:
    """A public registration: stored unconfirmed, with the confirmation link sent by e-mail."""
    if not is_open(workshop, today):
        raise WorkshopError(_("Registration for this workshop is closed."))
    if not data.get("consent_processing"):
        raise WorkshopError(_("Agree to the processing of your data to register."), "consent_processing")
    reg = _new_registration(db, workshop, data, locale)
    _mail(db, reg, workshop, "confirm")
    audit.record(db, None, "workshop.registered", reg, after=audit.snapshot(reg, AUDITED))
    db.commit()
    return reg


def resend_link(db: Session, reg: Registration) -> None:
    """Send the confirmation link again, or the self-service link once the address is confirmed. The new
    link voids the older ones (someone may have asked because a link went where it should not)."""
    workshop = db.get(Workshop, reg.workshop_id)
    reg.link_nonce = secrets.token_urlsafe(16)
    db.add(reg)
    _mail(db, reg, workshop, "confirm" if reg.status == RegStatus.UNCONFIRMED else "link")
    db.commit()


def _place(db: Session, workshop: Workshop, reg: Registration, actor, kind: str = "confirmed") -> None:
    """A seat if one is free, else the end of the waitlist; the registrant is told either way."""
    _lock(db, workshop)
    if seats_taken(db, workshop) < workshop.capacity:
        reg.status = RegStatus.CONFIRMED
        reg.waitlisted_at = None
        _mail(db, reg, workshop, kind, with_ics=True)
    else:
        reg.status = RegStatus.WAITLISTED
        reg.waitlisted_at = utcnow()
        _mail(db, reg, workshop, "waitlisted")
    reg.updated_at = utcnow()
    db.add(reg)


def confirm_email(db: Session, reg: Registration) -> None:
    """The confirmation link was opened: the registration now counts (once)."""
    if reg.status != RegStatus.UNCONFIRMED:
        return
    workshop = db.get(Workshop, reg.workshop_id)
    before = audit.snapshot(reg, AUDITED)
    reg.confirmed_email_at = utcnow()
    if workshop.moderated:
        reg.status = RegStatus.PENDING
        reg.updated_at = utcnow()
        db.add(reg)
    else:
        _place(db, workshop, reg, None)
    audit.record(db, None, "workshop.email_confirmed", reg, before=before, after=audit.snapshot(reg, AUDITED))
    db.commit()


def _promote(db: Session, workshop: Workshop, actor) -> int:
    """Move the first on the waitlist up while seats are free; each is e-mailed."""
    _lock(db, workshop)
    moved = 0
    free = workshop.capacity - seats_taken(db, workshop)
    if free <= 0:
        return 0
    waiting = db.exec(select(Registration).where(
        Registration.workshop_id == workshop.id, Registration.status == RegStatus.WAITLISTED)
        .order_by(Registration.waitlisted_at, Registration.id).limit(free)).all()
    for reg in waiting:
        before = audit.snapshot(reg, AUDITED)
        reg.status = RegStatus.CONFIRMED
        reg.waitlisted_at = None
        reg.updated_at = utcnow()
        db.add(reg)
        _mail(db, reg, workshop, "moved_up", with_ics=True)
        audit.record(db, actor, "workshop.moved_up", reg, before=before, after=audit.snapshot(reg, AUDITED))
        moved += 1
    return moved


def withdraw(db: Session, reg: Registration, actor=None) -> None:
    """The registrant (or staff) withdraws; a freed seat goes to the first on the waitlist."""
    if reg.status == RegStatus.WITHDRAWN:
        return
    move(db, actor, reg, RegStatus.WITHDRAWN)


def move(db: Session, actor, reg: Registration, target: str, message: str = "") -> None:
    """Put a registration into another status: approvals respect capacity, every move is mailed."""
    workshop = db.get(Workshop, reg.workshop_id)
    if target not in [s.value for s in STAFF_TARGETS]:
        raise WorkshopError(_("Choose a status."), "status")
    if target == reg.status:
        return
    before = audit.snapshot(reg, AUDITED)
    was_seated = reg.status == RegStatus.CONFIRMED
    _lock(db, workshop)
    if target == RegStatus.CONFIRMED:
        if seats_taken(db, workshop) >= workshop.capacity:
            raise WorkshopError(_("The workshop is full (%(n)s places). Put the registration on the waitlist "
                                  "or make room first.", n=workshop.capacity), "status")
        reg.status = RegStatus.CONFIRMED
        reg.waitlisted_at = None
        reg.confirmed_email_at = reg.confirmed_email_at or utcnow()
        _mail(db, reg, workshop, "approved", with_ics=True)
    elif target == RegStatus.WAITLISTED:
        reg.status = RegStatus.WAITLISTED
        reg.waitlisted_at = utcnow()
        _mail(db, reg, workshop, "waitlisted")
    elif target == RegStatus.DECLINED:
        reg.status = RegStatus.DECLINED
        reg.staff_message = message.strip()[:2000]
        reg.waitlisted_at = None
        _mail(db, reg, workshop, "declined")
    else:
        reg.status = RegStatus.WITHDRAWN
        reg.waitlisted_at = None
        _mail(db, reg, workshop, "withdrawn")
    reg.updated_at = utcnow()
    db.add(reg)
    after = audit.snapshot(reg, AUDITED)
    if message.strip():
        after["message"] = True  # that a message was sent, not its text (it may name the person)
    audit.record(db, actor, f"workshop.{target}", reg, before=before, after=after)
    if was_seated:
        db.flush()
        _promote(db, workshop, actor)
    db.commit()


def update_registration(db: Session, reg: Registration, data: dict, actor=None) -> None:
    """Change the registrant's details (self-service or staff); the audit names the fields, not values."""
    workshop = db.get(Workshop, reg.workshop_id)
    changed = []
    for key in EDITABLE:
        if key in data and getattr(reg, key) != data[key]:
            if key == "travel_support" and not workshop.travel_support:
                continue
            setattr(reg, key, data[key])
            changed.append(key)
    if changed:
        reg.updated_at = utcnow()
        db.add(reg)
        audit.record(db, actor, "workshop.registration_changed", reg, after={"fields": changed})
    db.commit()


def staff_add(db: Session, actor, workshop: Workshop, data: dict, locale: str) -> Registration:
    """Staff register someone by hand: no opt-in (staff vouch for the address), a seat or the waitlist."""
    reg = _new_registration(db, workshop, {**data, "consent_processing": True}, locale)
    reg.confirmed_email_at = utcnow()
    _place(db, workshop, reg, actor)
    audit.record(db, actor, "workshop.added_by_staff", reg, after=audit.snapshot(reg, AUDITED))
    db.commit()
    return reg


def get_registration(db: Session, workshop: Workshop, registration_id: int) -> Registration:
    reg = db.get(Registration, registration_id)
    if reg is None or reg.workshop_id != workshop.id:
        abort(404)
    return reg


# Staff list and exports -------------------------------------------------------------------------

NEEDS = ("dietary", "accessibility", "travel", "visa")


@dataclass
class RegFilter:
    status: str = ""
    country: str = ""
    role: str = ""
    needs: str = ""


def _registration_conditions(workshop: Workshop, f: RegFilter) -> list:
    q = [Registration.workshop_id == workshop.id]
    if f.status in {s.value for s in RegStatus}:
        q.append(Registration.status == f.status)
    if len(f.country) == 2 and f.country.isalpha() and f.country.isascii():
        q.append(Registration.country == f.country.upper())
    if f.role in {r.value for r in RegRole}:
        q.append(Registration.role == f.role)
    if f.needs == "dietary":
        q.append(Registration.dietary_needs != "")
    elif f.needs == "accessibility":
        q.append(Registration.accessibility_needs != "")
    elif f.needs == "travel":
        q.append(Registration.travel_support.is_(True))
    elif f.needs == "visa":
        q.append(Registration.visa_letter.is_(True))
    return q


def list_registrations(db: Session, workshop: Workshop, f: RegFilter, offset: int = 0,
                       limit: int | None = None) -> list[Registration]:
    # Seated first, then the waitlist in its order, then the rest by date.
    return db.exec(select(Registration).where(*_registration_conditions(workshop, f))
                   .order_by(Registration.status, Registration.waitlisted_at, Registration.id)
                   .offset(offset).limit(limit)).all()


REGISTRATIONS_PER_PAGE = 100


class Participant(NamedTuple):
    """A row of the participant list: a tuple of the values it shows, read field by field in the
    template's loop (an ORM registration per row, and an attribute lookup per cell, cost more than the
    rest of the row)."""

    id: int
    name: str
    organisation: str
    country: str
    role: str
    status: str
    dietary: bool
    accessibility: bool
    travel: bool
    visa: bool


@dataclass
class RegistrationPage:
    rows: list[Participant]
    total: int
    page: int
    pages: int


@dataclass
class Overview:
    """A workshop's registrations by status (every status, 0 where none) and the countries they come from."""

    counts: dict[str, int]
    countries: list[str]
    by_status_country: dict[tuple[str, str], int]


def overview(db: Session, workshop: Workshop) -> Overview:
    """The counts by status and the countries of a workshop's registrations: one statement."""
    rows = db.exec(select(Registration.status, Registration.country, func.count())
                   .where(Registration.workshop_id == workshop.id)
                   .group_by(Registration.status, Registration.country)).all()
    counts = {s.value: 0 for s in RegStatus}
    for status, _country, n in rows:
        counts[status] = counts.get(status, 0) + n
    return Overview(counts, sorted({country for _s, country, _n in rows}),
                    {(status, country): n for status, country, n in rows})


def _total_from(known: dict[tuple[str, str], int], workshop: Workshop, f: RegFilter) -> int | None:
    """The number of registrations the filter keeps, from the counts by status and country, when it filters
    by nothing else (as _registration_conditions reads it); None when it needs a count of its own."""
    if f.role in {r.value for r in RegRole} or f.needs in ("dietary", "accessibility", "travel", "visa"):
        return None
    status = f.status if f.status in {s.value for s in RegStatus} else None
    country = f.country.upper() if len(f.country) == 2 and f.country.isalpha() and f.country.isascii() else None
    return sum(n for (s, c), n in known.items() if (status is None or s == status) and (country is None or c == country))


def registration_page(db: Session, workshop: Workshop, f: RegFilter, page: int,
                      per_page: int | None = None, known: Overview | None = None) -> RegistrationPage:
    """One page of the participant list: the rows, and a count unless `known` (overview()) tells it."""
    per_page = per_page or REGISTRATIONS_PER_PAGE
    conditions = _registration_conditions(workshop, f)
    total = _total_from(known.by_status_country, workshop, f) if known else None
    if total is None:
        total = db.exec(select(func.count()).select_from(Registration).where(*conditions)).one()
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    r = Registration
    rows = db.exec(select(r.id, r.name, r.organisation, r.country, r.role, r.status, r.dietary_needs != "",
                          r.accessibility_needs != "", r.travel_support, r.visa_letter)
                   .where(*conditions)
                   .order_by(r.status, r.waitlisted_at, r.id)  # as list_registrations
                   .offset((page - 1) * per_page).limit(per_page)).all()
    return RegistrationPage([Participant(*row) for row in rows], total, page, pages)


def _cell(value) -> object:
    """Spreadsheet programs run cells that start with = + - @ as formulas: keep them text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def export_rows(registrations: list[Registration], labels: dict) -> tuple[list[str], list[list]]:
    """Header and rows for the staff exports (no passport data: that stays on the staff screen)."""
    header = [labels["status"], labels["name"], labels["email"], labels["organisation"], labels["country"],
              labels["role"], labels["languages"], labels["dietary_needs"], labels["accessibility_needs"],
              labels["travel_support"], labels["visa_letter"], labels["consent_list"], labels["created_at"]]
    yes, no = labels["yes"], labels["no"]
    rows = [[labels["statuses"].get(r.status, r.status), r.name, r.email, r.organisation, r.country,
             labels["roles"].get(r.role, r.role), r.languages, r.dietary_needs, r.accessibility_needs,
             yes if r.travel_support else no, yes if r.visa_letter else no, yes if r.consent_list else no,
             r.created_at.strftime("%Y-%m-%d %H:%M")] for r in registrations]
    return header, [[_cell(v) for v in row] for row in rows]


def to_csv(header: list[str], rows: list[list]) -> bytes:
    return csvfile.to_csv(header, rows)


def to_xlsx(header: list[str], rows: list[list], sheet_title: str) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = sheet_title[:31] or "Participants"
    ws.append(header)
    for row in rows:
        ws.append(row)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


# Retention --------------------------------------------------------------------------------------

def purge(db: Session, today: date, days: int) -> tuple[int, int]:
    """Passport data goes once a workshop has ended; all personal data `days` after its last day,
    leaving anonymous counts by country, role and status. Returns (passport purges, full purges)."""
    passports = full = 0
    for workshop in db.exec(select(Workshop).where(Workshop.ends_on < today)).all():
        if workshop.passport_purged_at is None:
            for reg in db.exec(select(Registration).where(Registration.workshop_id == workshop.id)).all():
                for key in PASSPORT:
                    setattr(reg, key, None)
                db.add(reg)
            workshop.passport_purged_at = utcnow()
            db.add(workshop)
            audit.record(db, None, "workshop.passports_purged", workshop)
            passports += 1
        if workshop.personal_data_purged_at is None and workshop.ends_on + timedelta(days=days) < today:
            rows = db.exec(select(Registration.country, Registration.role, Registration.status, func.count())
                           .where(Registration.workshop_id == workshop.id)
                           .group_by(Registration.country, Registration.role, Registration.status)).all()
            for country, role, status, n in rows:
                db.add(WorkshopStat(workshop_id=workshop.id, country=country, role=role, status=status, count=n))
            db.exec(delete(Registration).where(Registration.workshop_id == workshop.id))
            workshop.personal_data_purged_at = utcnow()
            db.add(workshop)
            audit.record(db, None, "workshop.personal_data_purged", workshop, after={"registrations": sum(
                r[3] for r in rows)})
            full += 1
        db.commit()
    return passports, full


def stats(db: Session, workshop: Workshop) -> list[WorkshopStat]:
    """The anonymous counts kept when the workshop's personal data was purged (none before: purge() writes
    them)."""
    if workshop.personal_data_purged_at is None:
        return []
    return db.exec(select(WorkshopStat).where(WorkshopStat.workshop_id == workshop.id)
                   .order_by(WorkshopStat.country, WorkshopStat.role, WorkshopStat.status)).all()


def purge_job() -> tuple[int, int]:
    """The daily job: `flask --app portal workshop purge` for today."""
    from portal import db as dbm

    with Session(dbm.engine(), expire_on_commit=False) as db:
        return purge(db, date.today(), current_app.config["WORKSHOP_RETENTION_DAYS"])
