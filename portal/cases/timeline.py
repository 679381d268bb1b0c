"""The case timeline: everything that happened on a case, newest first. Each feature that appears on it
(the case's own status changes, receipts, visits) gives a source of entries; the case page asks it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from flask import url_for
from flask_babel import gettext as _
from markupsafe import Markup
from sqlmodel import Session, select

from portal.audit import AuditEntry
from portal.auth.models import User
from portal.cases.models import Case
from portal.cases.models import CaseStatus as S
from portal.i18n import bdi
from portal.receipts.models import Receipt, ReceiptEvent
from portal.visits.forms import MODES
from portal.visits.models import Visit, VisitComment


def _visits_of(db: Session, case: Case) -> list[Visit]:
    return list(db.exec(select(Visit).where(Visit.case_id == case.id)
                        .order_by(Visit.visit_date.desc(), Visit.id.desc())))


@dataclass
class TimelineEntry:
    at: datetime
    kind: str  # visit, comment, status, receipt
    text: str
    url: str | None = None
    date_only: bool = False
    detail: str = ""
    sort_at: datetime | None = None  # when it goes in the order, if not `at` (a visit without a time)

    @property
    def order_key(self) -> datetime:
        return _aware(self.sort_at or self.at)


def _visit_moment(visit: Visit) -> datetime:
    return datetime.combine(visit.visit_date, visit.visit_time or time(0), tzinfo=UTC)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _visit_sort_moment(visit: Visit) -> datetime:
    """Where a visit goes among the case's events. A visit without a time happened some time that day:
    when it was recorded on that day, it goes where it was recorded (after "Case opened" that morning),
    else at the end of its day."""
    if visit.visit_time is not None:
        return _visit_moment(visit)
    start = datetime.combine(visit.visit_date, time(0), tzinfo=UTC)
    end = start + timedelta(days=1) - timedelta(microseconds=1)
    recorded = _aware(visit.created_at) if visit.created_at else end
    return min(max(recorded, start), end)


def _visit_entries(db: Session, case: Case, known: dict) -> list[TimelineEntry]:
    out = []
    visits = known["visits"] if "visits" in known else _visits_of(db, case)
    counts = known.setdefault("comment_counts", {})
    for v in visits:
        text = _("Visit: %(mode)s", mode=MODES.get(v.mode, v.mode))
        detail = _("Concern flagged") if v.flagged else ""
        out.append(TimelineEntry(_visit_moment(v), "visit", text, url_for("visits.show", visit_id=v.id),
                                 date_only=v.visit_time is None, detail=detail, sort_at=_visit_sort_moment(v)))
    ids = [v.id for v in visits]
    if "comments" in known:
        rows = known["comments"]
    elif ids:
        rows = db.exec(select(VisitComment, User.name).outerjoin(User, User.id == VisitComment.author_id)
                       .where(VisitComment.visit_id.in_(ids)))
    else:
        rows = []
    for c, name in rows:
        counts[c.visit_id] = counts.get(c.visit_id, 0) + 1
        text = (_("%(name)s acknowledged a visit", name=name or "–") if c.acknowledgement
                else _("%(name)s commented on a visit", name=name or "–"))
        out.append(TimelineEntry(c.created_at, "comment", text, url_for("visits.show", visit_id=c.visit_id),
                                 detail=c.body))
    return out


def _status_entries(db: Session, case: Case, _known: dict) -> list[TimelineEntry]:
    labels = {S.PLANNED: _("Planned"), S.ACTIVE: _("Active"), S.MONITORING: _("Monitoring"), S.CLOSED: _("Closed")}
    rows = db.exec(select(AuditEntry).where(AuditEntry.object_type == "Case", AuditEntry.object_id == str(case.id),
                                            AuditEntry.action.in_(("case.created", "case.status_changed"))))
    out = []
    for entry in rows:
        if entry.action == "case.created":
            out.append(TimelineEntry(entry.at, "status", _("Case opened")))
        else:
            status = (entry.after or {}).get("status", "")
            out.append(TimelineEntry(entry.at, "status", _("Status changed to %(status)s",
                                                           status=labels.get(status, status))))
    return out


def _receipt_entries(db: Session, case: Case, known: dict) -> list[TimelineEntry]:
    texts = {"submitted": _("Receipt %(ref)s submitted"), "resubmitted": _("Receipt %(ref)s submitted again"),
             "approved": _("Receipt %(ref)s approved"), "first_approval": _("Receipt %(ref)s: first approval – a second reviewer must approve"),
             "rejected": _("Receipt %(ref)s rejected"),
             "correction_requested": _("Correction of receipt %(ref)s requested")}
    if "receipt_events" in known:
        rows = known["receipt_events"]
    else:
        rows = db.exec(select(ReceiptEvent, Receipt).join(Receipt, Receipt.id == ReceiptEvent.receipt_id)
                       .where(Receipt.case_id == case.id, ReceiptEvent.kind.in_(tuple(texts))))
    # The reference stays in one piece and in its order inside right-to-left text.
    return [TimelineEntry(e.at, "receipt", Markup.escape(texts[e.kind]) % {"ref": bdi(r.reference)},
                          detail=r.supplier)
            for e, r in rows]


# Each source adds its own entries; a feature that wants to appear on the timeline adds a function here.
# `known` holds what the page loaded already (the case's visits) and what a source found on the way
# (the comment count per visit), so nothing is read twice.
TIMELINE_SOURCES: list[Callable[[Session, Case, dict], list[TimelineEntry]]] = [
    _status_entries, _receipt_entries, _visit_entries,
]


def timeline(db: Session, case: Case, limit: int = 100, known: dict | None = None) -> list[TimelineEntry]:
    """Everything that happened on a case, newest first."""
    known = {} if known is None else known
    entries = [entry for source in TIMELINE_SOURCES for entry in source(db, case, known)]
    entries.sort(key=lambda e: e.order_key, reverse=True)
    return entries[:limit]
