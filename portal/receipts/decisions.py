"""Staff decisions on receipts: approve (four-eyes above a threshold), reject, ask for a correction."""

from __future__ import annotations

import logging

from flask import current_app
from flask_babel import gettext as _
from sqlmodel import Session, select

from portal import audit
from portal.auth.models import User
from portal.clock import utcnow
from portal.notifications import services as notifications
from portal.notifications.models import NoticeKind
from portal.receipts.errors import ReceiptError
from portal.receipts.models import (
    Receipt,
    ReceiptEvent,
    ReceiptStatus,
)
from portal.receipts.services import case_of, claim, files_of
from portal.scanning import services as scanning
from portal.scanning.models import ScanStatus

log = logging.getLogger(__name__)


APPROVE, REJECT, CORRECTION = "approve", "reject", "correction"


def four_eyes_cents() -> int:
    return int(current_app.config["RECEIPT_FOUR_EYES_EUR"]) * 100


def needs_four_eyes(receipt: Receipt) -> bool:
    return receipt.eur_cents is not None and receipt.eur_cents > four_eyes_cents()


def first_approvals(db: Session, receipt: Receipt) -> list[ReceiptEvent]:
    """Approvals of the current revision that wait for a second reviewer."""
    return list(db.exec(select(ReceiptEvent).where(ReceiptEvent.receipt_id == receipt.id,
                                                   ReceiptEvent.revision == receipt.revision,
                                                   ReceiptEvent.kind == "first_approval")))


def first_approvals_in(history: list[tuple[ReceiptEvent, str]], receipt: Receipt) -> list[ReceiptEvent]:
    """first_approvals() from the receipt's history read already (services.history())."""
    return [event for event, _name in history
            if event.revision == receipt.revision and event.kind == "first_approval"]


def decide(db: Session, actor: User, receipt: Receipt, decision: str, comment: str,
           expected_version: int) -> str:
    """Record a reviewer's decision; returns the event kind written. Audit and notifications commit with it."""
    comment = (comment or "").strip()
    if receipt.version != expected_version:
        claim(db, receipt, expected_version)  # raises Conflict
    if receipt.status != ReceiptStatus.SUBMITTED:
        raise ReceiptError(_("This receipt is not waiting for a decision."))
    if decision not in (APPROVE, REJECT, CORRECTION):
        raise ReceiptError(_("Choose a decision."), "decision")
    if decision == REJECT and not comment:
        raise ReceiptError(_("Enter the reason for the rejection"), "comment")
    if decision == CORRECTION and not comment:
        raise ReceiptError(_("Enter what the partner must correct"), "comment")
    status = {REJECT: ReceiptStatus.REJECTED, CORRECTION: ReceiptStatus.CORRECTION_REQUESTED}.get(decision)
    kind = {REJECT: "rejected", CORRECTION: "correction_requested"}.get(decision, "approved")
    if decision == APPROVE:
        if actor.id == receipt.uploaded_by_id:
            raise ReceiptError(_("You uploaded this receipt, so another staff member must approve it."))
        if receipt.eur_cents is None:
            raise ReceiptError(_("Add the exchange rate for this currency and month before approving."))
        _check_scanned(db, receipt)
        status = ReceiptStatus.APPROVED
        if needs_four_eyes(receipt):
            earlier = first_approvals(db, receipt)
            if any(event.actor_id == actor.id for event in earlier):
                raise ReceiptError(_("You have already approved this receipt. A second, different staff "
                                     "member must approve it."))
            if not earlier:
                status, kind = ReceiptStatus.SUBMITTED, "first_approval"
    before = {"status": receipt.status, "version": receipt.version}
    claim(db, receipt, expected_version)
    receipt.status = status
    receipt.updated_at = utcnow()
    db.add(receipt)
    db.add(ReceiptEvent(receipt_id=receipt.id, revision=receipt.revision, actor_id=actor.id, kind=kind,
                        comment=comment))
    audit.record(db, actor, f"receipt.{kind}", receipt, before,
                 {"status": status, "version": receipt.version, "comment": comment})
    _notify(db, actor, receipt, kind, comment)
    db.commit()
    return kind


def reopen_for_correction(db: Session, actor: User, receipt: Receipt, comment: str, **why) -> None:
    """Send an approved receipt back to the partner for correction (a sample check found a problem), in the
    caller's transaction: its event, audit entry and notification go with it, and the budget summaries
    follow on the flush (portal.reports.summary). The caller commits."""
    if receipt.status != ReceiptStatus.APPROVED:
        raise ReceiptError(_("Only an approved receipt can be reopened for correction."))
    before = {"status": receipt.status, "version": receipt.version}
    claim(db, receipt, receipt.version)
    receipt.status = ReceiptStatus.CORRECTION_REQUESTED
    receipt.updated_at = utcnow()
    db.add(receipt)
    db.add(ReceiptEvent(receipt_id=receipt.id, revision=receipt.revision, actor_id=actor.id,
                        kind="correction_requested", comment=comment))
    audit.record(db, actor, "receipt.correction_requested", receipt, before,
                 {"status": receipt.status, "version": receipt.version, "comment": comment, **why})
    _notify(db, actor, receipt, "correction_requested", comment)


def _check_scanned(db: Session, receipt: Receipt) -> None:
    """Approval needs every file found clean by the virus scanner (or no scanner configured)."""
    for row in files_of(db, receipt):
        if scanning.scan_state(row) == ScanStatus.INFECTED:
            raise ReceiptError(_("This receipt cannot be approved: %(name)s was refused as infected. Ask the "
                                 "partner for a clean copy of the file.", name=row.original_filename))
        if not scanning.is_cleared(row):
            raise ReceiptError(_("This receipt cannot be approved yet: %(name)s is waiting for its virus scan.",
                                 name=row.original_filename))


NOTICES = {"approved": NoticeKind.RECEIPT_APPROVED, "rejected": NoticeKind.RECEIPT_REJECTED,
           "correction_requested": NoticeKind.RECEIPT_CORRECTION}
DECISIONS = ("first_approval", "approved", "rejected", "correction_requested")


def _notify(db: Session, actor: User, receipt: Receipt, kind: str, comment: str) -> None:
    """Tell the organisation's partners and the staff following the receipt (those who decided on it
    before), in the decision's transaction; the hourly digest mails it."""
    notice = NOTICES.get(kind)
    if notice is None:
        return  # a first approval is no decision yet
    case = case_of(db, receipt)
    followers = db.exec(select(ReceiptEvent.actor_id).where(ReceiptEvent.receipt_id == receipt.id,
                                                            ReceiptEvent.kind.in_(DECISIONS)).distinct()).all()
    recipients = notifications.partners_of(db, case.organisation_id) + notifications.staff_among(db, followers)
    notifications.notify(db, recipients, actor, notice, "receipt", receipt.id, ref=receipt.reference,
                         case=case.reference, supplier=receipt.supplier, comment=comment)
