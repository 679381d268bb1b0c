"""Partner organisations."""

from __future__ import annotations

from flask import abort
from flask_babel import gettext as _
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from portal import audit
from portal.orgs.models import Organisation
from portal.rules import RuleError

FIELDS = ("name", "country", "contact_email", "active")


class OrgError(RuleError):
    """A rule about organisations was broken; the message is for the user."""


def all_orgs(db: Session) -> list[Organisation]:
    return list(db.exec(select(Organisation).order_by(Organisation.name)))


def names(db: Session) -> dict[int, str]:
    return {o.id: o.name for o in all_orgs(db)}


_CHOICES = select(Organisation.id, Organisation.name, Organisation.active).order_by(Organisation.name)


def choices(db: Session, active_only: bool = True) -> list[tuple[int, str]]:
    """(id, name) by name, for select fields and filters: read as rows, no Organisation objects built."""
    db.flush()  # as an ORM query would (autoflush): organisations added in this request are listed
    return [(row.id, row.name) for row in db.connection().execute(_CHOICES) if row.active or not active_only]


def get_org(db: Session, org_id: int) -> Organisation:
    org = db.get(Organisation, org_id)
    if org is None:
        abort(404)
    return org


def save_org(db: Session, actor, org: Organisation | None, data: dict) -> Organisation:
    """Create (org None) or update an organisation, audited."""
    before = audit.snapshot(org, FIELDS) if org else None
    org = org or Organisation(**{k: data[k] for k in FIELDS})
    for key in FIELDS:
        setattr(org, key, data[key])
    org.name = org.name.strip()
    org.contact_email = org.contact_email.strip().lower()
    db.add(org)
    try:
        db.flush()
    except IntegrityError:
        db.rollback()
        raise OrgError(_("An organisation with this name exists already.")) from None
    audit.record(db, actor, "organisation.updated" if before else "organisation.created", org,
                 before, audit.snapshot(org, FIELDS))
    if before and before["active"] and not org.active:
        from portal.auth.services import end_sessions_of_organisation

        # Its people are signed out now; the user loader refuses them while the organisation is inactive.
        end_sessions_of_organisation(db, org.id)
    db.commit()
    return org
