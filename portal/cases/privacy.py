"""Privacy for one case: everything the portal holds about it as one export, and erasure.

Erasure removes or blanks the personal fields of the case's visits (place, location, attendees, notes,
concerns, photos, drafts, comments) and the case notes, and keeps the receipts and their files: they
are the proof of use of EU funds that must be kept for the audit retention period. The reason is
recorded in the audit log.
"""

from __future__ import annotations

import json
from datetime import date, datetime

from sqlmodel import Session, select

from portal import audit
from portal.audit import AuditEntry
from portal.auth.models import User
from portal.cases.models import BudgetLine, Case
from portal.clock import utcnow
from portal.receipts.models import Receipt, ReceiptEvent, ReceiptFile
from portal.storage import Storage
from portal.visits.models import Visit, VisitComment, VisitDraft, VisitPhoto

ERASED = "[erased]"
VISIT_TEXT_FIELDS = ("place", "attendees", "not_met_reason", "flag_details", "actions_taken", "notes")


def _plain(obj) -> dict:
    return obj.model_dump()


def _default(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def export_case(db: Session, actor: User, case: Case) -> str:
    """A JSON document of the case and everything linked to it; the export itself is audited."""
    receipts = list(db.exec(select(Receipt).where(Receipt.case_id == case.id).order_by(Receipt.id)))
    receipt_ids = [r.id for r in receipts]
    visits = list(db.exec(select(Visit).where(Visit.case_id == case.id).order_by(Visit.id)))
    visit_ids = [v.id for v in visits]
    files = db.exec(select(ReceiptFile).where(ReceiptFile.receipt_id.in_(receipt_ids))).all()
    events = db.exec(select(ReceiptEvent).where(ReceiptEvent.receipt_id.in_(receipt_ids))).all()
    comments = db.exec(select(VisitComment).where(VisitComment.visit_id.in_(visit_ids))).all()
    photos = db.exec(select(VisitPhoto).where(VisitPhoto.visit_id.in_(visit_ids))).all()
    objects = {("Case", str(case.id))} | {("Receipt", str(i)) for i in receipt_ids} \
        | {("Visit", str(i)) for i in visit_ids}
    entries = [e for e in db.exec(select(AuditEntry).where(
        AuditEntry.object_id.in_([oid for _t, oid in objects])).order_by(AuditEntry.seq))
        if (e.object_type, e.object_id) in objects]
    document = {
        "exported_at": utcnow().isoformat(),
        "case": _plain(case),
        "budget_lines": [_plain(x) for x in db.exec(select(BudgetLine).where(BudgetLine.case_id == case.id))],
        "receipts": [{**_plain(r),
                      "files": [_plain(f) for f in files if f.receipt_id == r.id],
                      "events": [_plain(e) for e in events if e.receipt_id == r.id]} for r in receipts],
        "visits": [{**_plain(v),
                    "comments": [_plain(c) for c in comments if c.visit_id == v.id],
                    "photos": [_plain(p) for p in photos if p.visit_id == v.id]} for v in visits],
        "audit_log": [_plain(e) for e in entries],
    }
    audit.record(db, actor, "case.exported", case)
    db.commit()
    return json.dumps(document, ensure_ascii=False, indent=2, default=_default)


def erase_case(db: Session, storage: Storage, actor: User | None, case: Case, reason: str) -> dict:
    """Remove the personal data of a case, keep its financial proofs; returns what was done."""
    visits = list(db.exec(select(Visit).where(Visit.case_id == case.id)))
    visit_ids = [v.id for v in visits]
    photos = list(db.exec(select(VisitPhoto).where(VisitPhoto.visit_id.in_(visit_ids))))
    for photo in photos:  # objects first: deleting is idempotent, so a failure here can simply be retried
        storage.delete(photo.key)
    for photo in photos:
        db.delete(photo)
    for visit in visits:
        for name in VISIT_TEXT_FIELDS:
            if getattr(visit, name):
                setattr(visit, name, ERASED)
        visit.latitude = visit.longitude = None
        visit.location_consent = False
        db.add(visit)
    comments = list(db.exec(select(VisitComment).where(VisitComment.visit_id.in_(visit_ids))))
    for comment in comments:
        if comment.body:
            comment.body = ERASED
            db.add(comment)
    drafts = list(db.exec(select(VisitDraft).where(VisitDraft.case_id == case.id)))
    for draft in drafts:
        db.delete(draft)
    if case.notes:
        case.notes = ERASED
    case.updated_at = utcnow()
    db.add(case)
    kept = len(db.exec(select(Receipt.id).where(Receipt.case_id == case.id)).all())
    summary = {"reason": reason, "visits": len(visits), "photos_deleted": len(photos),
               "comments": len(comments), "drafts_deleted": len(drafts),
               "receipts_kept": kept, "kept_because": "proof of use of EU funds (audit retention)"}
    audit.record(db, actor, "case.erased", case, after=summary)
    db.commit()
    return summary
