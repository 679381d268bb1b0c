"""Retention periods: personal data is kept only as long as the configured periods allow.

Run daily (`flask --app portal privacy retention`):
- a case closed more than CASE_RETENTION_DAYS ago has its personal data erased (the same erasure a
  staff member can ask for on the case page, with "retention period" as the recorded reason); its
  receipts and their files stay: they prove the use of EU funds for the funder's audit;
- visit drafts nobody touched for DRAFT_RETENTION_DAYS are deleted (they hold what was typed about a
  returnee but never submitted);
- e-mails sent more than MAIL_RETENTION_DAYS ago are deleted from the outbox (names, links, replies).
The workshop's own rule is `flask --app portal workshop purge`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session, col, delete, func, select

from portal.audit import AuditEntry
from portal.cases.models import Case, CaseStatus
from portal.cases.privacy import erase_case
from portal.mail import OutboxMail
from portal.storage import Storage
from portal.visits.models import VisitDraft

REASON = "retention period"


@dataclass
class RetentionReport:
    cases_erased: list[str] = field(default_factory=list)  # references
    drafts_deleted: int = 0
    mails_deleted: int = 0


def _case_events(db: Session, action: str, case_ids: list[int]) -> dict[int, list[AuditEntry]]:
    entries = db.exec(select(AuditEntry).where(
        AuditEntry.action == action, AuditEntry.object_type == "Case",
        col(AuditEntry.object_id).in_([str(i) for i in case_ids])).order_by(AuditEntry.seq))
    events: dict[int, list[AuditEntry]] = {}
    for entry in entries:
        events.setdefault(int(entry.object_id), []).append(entry)
    return events


def cases_due(db: Session, now: datetime, days: int) -> list[Case]:
    """Closed cases whose closing lies more than `days` back and that were not erased since."""
    closed = list(db.exec(select(Case).where(Case.status == CaseStatus.CLOSED).order_by(Case.id)))
    if not closed:
        return []
    ids = [c.id for c in closed]
    changes = _case_events(db, "case.status_changed", ids)
    erasures = _case_events(db, "case.erased", ids)
    cutoff = now - timedelta(days=days)
    due = []
    for case in closed:
        closings = [e.at for e in changes.get(case.id, []) if (e.after or {}).get("status") == CaseStatus.CLOSED]
        # a case closed before the audit log existed (imported data): its last change stands in
        closed_at = closings[-1] if closings else case.updated_at
        erased = [e.at for e in erasures.get(case.id, []) if e.at >= closed_at]
        if closed_at <= cutoff and not erased:
            due.append(case)
    return due


def apply_retention(db: Session, storage: Storage, now: datetime, *, case_days: int, draft_days: int,
                    mail_days: int, dry_run: bool = False) -> RetentionReport:
    report = RetentionReport()
    for case in cases_due(db, now, case_days):
        report.cases_erased.append(case.reference)
        if not dry_run:
            erase_case(db, storage, None, case, REASON)  # commits per case: a failure leaves the rest done
    stale_drafts = VisitDraft.updated_at < now - timedelta(days=draft_days)
    old_mails = col(OutboxMail.sent_at).is_not(None) & (OutboxMail.sent_at < now - timedelta(days=mail_days))
    report.drafts_deleted = db.exec(select(func.count()).select_from(VisitDraft).where(stale_drafts)).one()
    report.mails_deleted = db.exec(select(func.count()).select_from(OutboxMail).where(old_mails)).one()
    if not dry_run:
        db.exec(delete(VisitDraft).where(stale_drafts))
        db.exec(delete(OutboxMail).where(old_mails))
        db.commit()
    return report


def retention_job() -> str:
    """The daily job: `flask --app portal privacy retention` with the configured periods."""
    from flask import current_app

    from portal import db as dbm
    from portal.clock import utcnow
    from portal.storage import get_storage

    cfg = current_app.config
    with Session(dbm.engine(), expire_on_commit=False) as db:
        report = apply_retention(db, get_storage(), utcnow(), case_days=cfg["CASE_RETENTION_DAYS"],
                                 draft_days=cfg["DRAFT_RETENTION_DAYS"], mail_days=cfg["MAIL_RETENTION_DAYS"])
    return f"{len(report.cases_erased)} cases erased, {report.drafts_deleted} drafts, {report.mails_deleted} mails"
