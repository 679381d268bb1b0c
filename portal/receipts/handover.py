"""Handover confirmations: proof that the goods (or training) on a receipt reached the returnee.

A confirmation covers one receipt or a delivery of several receipts of the same case: the date, who
received them (the case's pseudonymous reference unless the partner must give a name), where, the
partner's statement and proof files. The proof files are receipt files of kind "handover", stored through
the receipts' own upload path (services.add_files, which also takes completed resumable uploads).

A receipt without a confirmation is "missing" once its invoice date is more than HANDOVER_DUE_DAYS days
old; staff may mark a receipt "not applicable" with a reason (a course fee paid to a school), audited.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from functools import cache

from flask import abort, current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import Column, ForeignKey, Integer
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, select

from portal import audit
from portal.auth.models import User
from portal.cases.models import BudgetLine, Case
from portal.clock import utcnow
from portal.labels import Titled
from portal.receipts import services
from portal.receipts.errors import ReceiptError
from portal.receipts.models import FileKind, Receipt, ReceiptFile, ReceiptStatus
from portal.storage import Storage
from portal.uploads.files import CleanFile

# Models -------------------------------------------------------------------------------------------


class Handover(SQLModel, table=True):
    """One handover of goods to the returnee of a case, covering one or several of its receipts."""

    __tablename__ = "handovers"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    handed_over_on: date
    # Who received the goods: the case's pseudonymous reference unless the partner must give a name.
    received_by: str = Field(max_length=200)
    place: str = Field(max_length=200)
    statement_confirmed: bool = False
    created_by_id: int | None = Field(default=None, foreign_key="users.id")
    created_at: datetime = Field(default_factory=utcnow)


class HandoverReceipt(SQLModel, table=True):
    """A receipt covered by a handover: a receipt has at most one (its primary key)."""

    __tablename__ = "handover_receipts"

    receipt_id: int = Field(sa_column=Column(Integer, ForeignKey("receipts.id"), primary_key=True,
                                             autoincrement=False))
    handover_id: int = Field(foreign_key="handovers.id", index=True)


class HandoverFile(SQLModel, table=True):
    """A proof file (a receipt file of kind "handover") of a handover."""

    __tablename__ = "handover_files"

    file_id: int = Field(sa_column=Column(Integer, ForeignKey("receipt_files.id"), primary_key=True,
                                          autoincrement=False))
    handover_id: int = Field(foreign_key="handovers.id", index=True)


class HandoverExemption(SQLModel, table=True):
    """Staff decided that no handover applies to this receipt (e.g. a course fee), with their reason."""

    __tablename__ = "handover_exemptions"

    receipt_id: int = Field(sa_column=Column(Integer, ForeignKey("receipts.id"), primary_key=True,
                                             autoincrement=False))
    reason: str = Field(max_length=1000)
    created_by_id: int | None = Field(default=None, foreign_key="users.id")
    created_at: datetime = Field(default_factory=utcnow)


# The state of a receipt's handover --------------------------------------------------------------


class HandoverStatus(Titled, StrEnum):
    CONFIRMED = "confirmed"
    MISSING = "missing"  # no confirmation, invoice older than HANDOVER_DUE_DAYS
    DUE = "due"  # no confirmation yet, still within HANDOVER_DUE_DAYS
    NOT_APPLICABLE = "not_applicable"
    NONE = "none"  # a rejected receipt: nothing was delivered on it
    __titles__ = {"confirmed": _l("Confirmed"), "missing": _l("Handover missing"), "due": _l("Not yet due"),
                  "not_applicable": _l("Not applicable"), "none": _l("No handover (rejected receipt)")}


@dataclass
class HandoverState:
    status: str
    due_on: date
    handed_over_on: date | None = None
    reason: str = ""  # why not applicable

    @property
    def missing(self) -> bool:
        return self.status == HandoverStatus.MISSING

    @property
    def label(self) -> str:
        return HandoverStatus.title(self.status)


def due_days() -> int:
    return int(current_app.config.get("HANDOVER_DUE_DAYS", 30))


def today() -> date:
    return utcnow().date()


def state(receipt: Receipt, handed_over_on: date | None, reason: str | None, on: date | None = None,
          days: int | None = None) -> HandoverState:
    """The rule: confirmed, not applicable, else missing once the invoice is more than HANDOVER_DUE_DAYS old."""
    due_on = receipt.invoice_date + timedelta(days=due_days() if days is None else days)
    if handed_over_on is not None:
        return HandoverState(HandoverStatus.CONFIRMED, due_on, handed_over_on)
    if reason is not None:
        return HandoverState(HandoverStatus.NOT_APPLICABLE, due_on, reason=reason)
    if receipt.status == ReceiptStatus.REJECTED:
        return HandoverState(HandoverStatus.NONE, due_on)
    return HandoverState(HandoverStatus.MISSING if (on or today()) > due_on else HandoverStatus.DUE, due_on)


def _lookups(db: Session, condition) -> tuple[dict[int, date], dict[int, str]]:
    """Handover dates and exemption reasons of the receipts matching `condition`: one statement."""
    rows = db.exec(select(Receipt.id, Handover.handed_over_on, HandoverExemption.reason)
                   .outerjoin(HandoverReceipt, HandoverReceipt.receipt_id == Receipt.id)
                   .outerjoin(Handover, Handover.id == HandoverReceipt.handover_id)
                   .outerjoin(HandoverExemption, HandoverExemption.receipt_id == Receipt.id)
                   .where(condition, (Handover.id.is_not(None)) | (HandoverExemption.receipt_id.is_not(None)))).all()
    return ({i: d for i, d, _r in rows if d is not None}, {i: r for i, _d, r in rows if r is not None})


def states_of(db: Session, receipts: list[Receipt], condition=None, on: date | None = None) -> dict[int, HandoverState]:
    """Each receipt's handover state. `condition` (on Receipt) selects the same receipts in SQL for long
    lists (the Belegliste) instead of an IN list of their ids."""
    if not receipts:
        return {}
    dates, reasons = _lookups(db, condition if condition is not None else Receipt.id.in_([r.id for r in receipts]))
    on, days = on or today(), due_days()
    return {r.id: state(r, dates.get(r.id), reasons.get(r.id), on, days) for r in receipts}


def state_of(db: Session, receipt: Receipt, on: date | None = None) -> HandoverState:
    return states_of(db, [receipt], on=on)[receipt.id]


def receipt_with_state(db: Session, user: User, receipt_id: int) -> tuple[Receipt, Case, BudgetLine | None, HandoverState]:
    """services.get_receipt_with_case_for() (404 if the user may not see it) with the receipt's handover state,
    in the same statement: a receipt has at most one handover and at most one exemption."""
    row = db.exec(_with_state_statement(not user.is_staff), params=services.receipt_params(user, receipt_id)).first()
    if row is None:
        abort(404)
    receipt, case, line, handed_over_on, reason = row
    return receipt, case, line, state(receipt, handed_over_on, reason)


@cache
def _with_state_statement(scoped: bool):
    return (services.receipt_statement(True, scoped)
            .add_columns(Handover.handed_over_on, HandoverExemption.reason)
            .outerjoin(HandoverReceipt, HandoverReceipt.receipt_id == Receipt.id)
            .outerjoin(Handover, Handover.id == HandoverReceipt.handover_id)
            .outerjoin(HandoverExemption, HandoverExemption.receipt_id == Receipt.id))


# The Belegliste's columns (portal/reports/exports.py) ---------------------------------------------

def belegliste_header() -> list[str]:
    return [_("Handover date"), _("Handover status"), _("Handover note")]


def belegliste_values(s: HandoverState | None) -> list:
    if s is None:
        return [None, None, None]
    return [s.handed_over_on, s.label, s.reason if s.status == HandoverStatus.NOT_APPLICABLE else None]


# The receipt page -------------------------------------------------------------------------------


@dataclass
class Details:
    """A confirmed handover as the receipt page shows it."""

    handover: Handover
    receipts: list[Receipt]
    files: list[ReceiptFile]
    created_by: str


@dataclass
class Exemption:
    exemption: HandoverExemption
    created_by: str


def details(db: Session, receipt: Receipt) -> Details | None:
    handover = db.exec(select(Handover).join(HandoverReceipt, HandoverReceipt.handover_id == Handover.id)
                       .where(HandoverReceipt.receipt_id == receipt.id)).first()
    if handover is None:
        return None
    covered = list(db.exec(select(Receipt).join(HandoverReceipt, HandoverReceipt.receipt_id == Receipt.id)
                           .where(HandoverReceipt.handover_id == handover.id).order_by(Receipt.id)))
    files = list(db.exec(select(ReceiptFile).join(HandoverFile, HandoverFile.file_id == ReceiptFile.id)
                         .where(HandoverFile.handover_id == handover.id).order_by(ReceiptFile.id)))
    author = db.get(User, handover.created_by_id) if handover.created_by_id else None
    return Details(handover, covered, files, author.name if author else "")


def exemption_of(db: Session, receipt: Receipt) -> Exemption | None:
    row = db.get(HandoverExemption, receipt.id)
    if row is None:
        return None
    author = db.get(User, row.created_by_id) if row.created_by_id else None
    return Exemption(row, author.name if author else "")


def _open_condition():
    """Receipts that may still get a confirmation: handed in, not rejected, neither confirmed nor exempt."""
    return (Receipt.status.not_in((ReceiptStatus.PENDING, ReceiptStatus.REJECTED)),
            Receipt.id.not_in(select(HandoverReceipt.receipt_id)),
            Receipt.id.not_in(select(HandoverExemption.receipt_id)))


def open_receipts(db: Session, receipt: Receipt) -> list[Receipt]:
    """The case's other receipts one confirmation may also cover (a delivery of several)."""
    return list(db.exec(select(Receipt).where(Receipt.case_id == receipt.case_id, Receipt.id != receipt.id,
                                              *_open_condition()).order_by(Receipt.invoice_date, Receipt.id)))


def _open(db: Session, receipt: Receipt, known: HandoverState | None) -> bool:
    """Neither confirmed nor exempt; `known`: the receipt's state_of(), read already (it says the same)."""
    if known is not None:
        return known.status not in (HandoverStatus.CONFIRMED, HandoverStatus.NOT_APPLICABLE)
    return db.get(HandoverReceipt, receipt.id) is None and db.get(HandoverExemption, receipt.id) is None


def can_confirm(db: Session, user: User, receipt: Receipt, known: HandoverState | None = None) -> bool:
    """The partner organisation confirms; a receipt at most once, and not once it is rejected or exempt."""
    return (not user.is_staff and receipt.status not in (ReceiptStatus.PENDING, ReceiptStatus.REJECTED)
            and _open(db, receipt, known))


def can_exempt(db: Session, user: User, receipt: Receipt, known: HandoverState | None = None) -> bool:
    return (user.is_staff and receipt.status not in (ReceiptStatus.PENDING, ReceiptStatus.REJECTED)
            and _open(db, receipt, known))


# Confirming ---------------------------------------------------------------------------------------

class HandoverError(ReceiptError):
    """A handover rule was broken; `field` names the form field."""


@dataclass
class Confirmation:
    handed_over_on: date
    received_by: str
    place: str
    statement: bool
    also: list[int] = field(default_factory=list)  # further receipts of the same case


def unlinked_proof(db: Session, receipt_ids: list[int]) -> list[ReceiptFile]:
    """Handover files already on the receipts (added with the receipt or later) that no handover holds yet."""
    return list(db.exec(select(ReceiptFile).where(
        ReceiptFile.receipt_id.in_(receipt_ids), ReceiptFile.kind == FileKind.HANDOVER,
        ReceiptFile.confirmed.is_(True), ReceiptFile.id.not_in(select(HandoverFile.file_id))).order_by(ReceiptFile.id)))


def check(db: Session, actor: User, receipt: Receipt, data: Confirmation, new_files: int,
          on: date | None = None) -> list[Receipt]:
    """Every rule before anything is stored; returns the receipts the confirmation covers."""
    if not can_confirm(db, actor, receipt):
        raise HandoverError(_("This receipt's handover cannot be confirmed: it is confirmed already, marked not "
                              "applicable or rejected."))
    if data.handed_over_on > (on or today()):
        raise HandoverError(_("The date of the handover must be today or in the past"), "handed_over_on")
    if not data.received_by.strip():
        raise HandoverError(_("Enter who received the goods"), "received_by")
    if not data.place.strip():
        raise HandoverError(_("Enter where the goods were handed over"), "place")
    if not data.statement:
        raise HandoverError(_("Confirm that the goods or training were handed over to the returnee"), "statement")
    covered = [receipt]
    if data.also:
        others = {r.id: r for r in open_receipts(db, receipt)}
        if any(i not in others for i in data.also):
            raise HandoverError(_("A receipt you chose can no longer be included. Check the list again."), "also")
        covered += [others[i] for i in dict.fromkeys(data.also)]
    if not new_files and not unlinked_proof(db, [r.id for r in covered]):
        raise HandoverError(_("Add the proof: a signed note or a photo of the handover"), "files")
    return covered


def confirm(db: Session, storage: Storage, actor: User, receipt: Receipt, data: Confirmation,
            files: list[tuple[str, str, CleanFile]], on: date | None = None) -> tuple[Handover, list[ReceiptFile]]:
    """Record the handover of the receipt (and of `data.also`): the proof files go through the receipts'
    upload path first, then the confirmation, its links and the audit entry commit together."""
    covered = check(db, actor, receipt, data, len(files), on)
    rows = services.add_files(db, storage, actor, receipt, FileKind.HANDOVER, files) if files else []
    proof = {f.id: f for f in unlinked_proof(db, [r.id for r in covered])}
    proof.update({f.id: f for f in rows})
    handover = Handover(case_id=receipt.case_id, handed_over_on=data.handed_over_on,
                        received_by=data.received_by.strip()[:200], place=data.place.strip()[:200],
                        statement_confirmed=True, created_by_id=actor.id)
    db.add(handover)
    try:
        db.flush()
        db.add_all([HandoverReceipt(receipt_id=r.id, handover_id=handover.id) for r in covered])
        db.add_all([HandoverFile(file_id=file_id, handover_id=handover.id) for file_id in proof])
        db.flush()
    except IntegrityError:  # the same receipt confirmed by another request at the same moment
        db.rollback()
        raise HandoverError(_("This receipt's handover was confirmed meanwhile.")) from None
    audit.record(db, actor, "receipt.handover_confirmed", handover, after={
        "case_id": handover.case_id, "handed_over_on": handover.handed_over_on.isoformat(),
        "received_by": handover.received_by, "place": handover.place, "statement": True,
        "receipts": [r.id for r in covered], "files": sorted(proof)})
    db.commit()
    return handover, rows


def mark_not_applicable(db: Session, actor: User, receipt: Receipt, reason: str) -> HandoverExemption:
    """Staff: no handover applies to this receipt (a course fee, a service); the reason is required."""
    reason = (reason or "").strip()
    if not can_exempt(db, actor, receipt):
        raise HandoverError(_("This receipt's handover is confirmed already or marked not applicable."))
    if not reason:
        raise HandoverError(_("Give the reason why no handover applies"), "reason")
    row = HandoverExemption(receipt_id=receipt.id, reason=reason[:1000], created_by_id=actor.id)
    db.add(row)
    try:
        db.flush()
    except IntegrityError:
        db.rollback()
        raise HandoverError(_("This receipt's handover is confirmed already or marked not applicable.")) from None
    audit.record(db, actor, "receipt.handover_not_applicable", receipt, after={"reason": row.reason})
    db.commit()
    return row


def case_reference(db: Session, receipt: Receipt) -> str:
    case = db.get(Case, receipt.case_id)
    return case.reference if case else ""
