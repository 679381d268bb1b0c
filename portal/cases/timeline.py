"""The case timeline: everything that happened on a case, newest first. Each feature that appears on it
(the case's own status changes, receipts, visits) gives a source of entries; the case page asks it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import cache, lru_cache
from typing import NamedTuple

from flask import current_app
from flask_babel import force_locale, format_datetime, get_timezone
from flask_babel import lazy_gettext as _l
from jinja2.filters import do_truncate
from markupsafe import Markup
from sqlalchemy import bindparam
from sqlmodel import Session, select

from portal.audit import AuditEntry
from portal.cases.models import CaseStatus
from portal.i18n import bdi, format_date, locale_name
from portal.layout import url_pattern
from portal.visits.forms import plain_labels


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


# What the entries say, translated once per locale (receipt texts as HTML, their reference goes in as <bdi>).
_TEXTS = {
    "visit": _l("Visit: %(mode)s"), "concern": _l("Concern flagged"),
    "acknowledged": _l("%(name)s acknowledged a visit"), "commented": _l("%(name)s commented on a visit"),
    "opened": _l("Case opened"), "status": _l("Status changed to %(status)s"),
}
_RECEIPT_TEXTS = {
    "submitted": _l("Receipt %(ref)s submitted"), "resubmitted": _l("Receipt %(ref)s submitted again"),
    "approved": _l("Receipt %(ref)s approved"),
    "first_approval": _l("Receipt %(ref)s: first approval – a second reviewer must approve"),
    "rejected": _l("Receipt %(ref)s rejected"), "correction_requested": _l("Correction of receipt %(ref)s requested"),
}


# The badge of each kind of entry.
_KINDS = {"visit": _l("Visit"), "comment": _l("Comment"), "status": _l("Status"), "receipt": _l("Receipt")}


@lru_cache(maxsize=16)
def _texts(locale: str) -> tuple[dict[str, str], dict[str, Markup], dict[str, str]]:
    with force_locale(locale):
        return ({key: str(text) for key, text in _TEXTS.items()},
                {key: Markup.escape(str(text)) for key, text in _RECEIPT_TEXTS.items()},
                {key: str(text) for key, text in _KINDS.items()})


class ShownEntry(NamedTuple):
    """An entry as templates/visits/_timeline.html writes it: every value ready (plain values are cheap to
    read in a template; the moment, the badge and the shortened detail are worked out here once). The
    template unpacks the fields in this order."""

    kind: str
    badge: str
    iso: str
    when: str
    text: str
    url: str | None
    detail: str


@lru_cache(maxsize=4096)
def _moment_text(_locale: str, _zone, moment: datetime) -> str:
    # Kept per locale and time zone (as portal.i18n keeps dates): a page shows the same moments each time.
    return format_datetime(moment, "short")


def _visit_moment(visit) -> datetime:
    return datetime.combine(visit.visit_date, visit.visit_time or time(0), tzinfo=UTC)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _visit_sort_moment(visit) -> datetime:
    """Where a visit goes among the case's events. A visit without a time happened some time that day:
    when it was recorded on that day, it goes where it was recorded (after "Case opened" that morning),
    else at the end of its day."""
    if visit.visit_time is not None:
        return _visit_moment(visit)
    start = datetime.combine(visit.visit_date, time(0), tzinfo=UTC)
    end = start + timedelta(days=1) - timedelta(microseconds=1)
    recorded = _aware(visit.created_at) if visit.created_at else end
    return min(max(recorded, start), end)


def _visit_entries(db: Session, case, known: dict) -> list[TimelineEntry]:
    from portal.visits.services import visits_with_comments  # visits' services import the cases' services

    if "visits" not in known or "comments" not in known:
        known["visits"], known["comments"] = visits_with_comments(db, case)
    counts = known.setdefault("comment_counts", {})
    url = url_pattern("visits.show", "visit_id")
    modes = plain_labels()["modes"]
    texts = _texts(locale_name())[0]
    visit_text, concern = texts["visit"], texts["concern"]
    out = []
    for v in known["visits"]:
        out.append(TimelineEntry(_visit_moment(v), "visit", visit_text % {"mode": modes.get(v.mode, v.mode)},
                                 url % v.id, date_only=v.visit_time is None, detail=concern if v.flagged else "",
                                 sort_at=_visit_sort_moment(v)))
    acknowledged, commented = texts["acknowledged"], texts["commented"]
    for c in known["comments"]:
        counts[c.visit_id] = counts.get(c.visit_id, 0) + 1
        text = (acknowledged if c.acknowledgement else commented) % {"name": c.author or "–"}
        out.append(TimelineEntry(c.created_at, "comment", text, url % c.visit_id, detail=c.body))
    return out


@cache
def _status_statement():
    return select(AuditEntry.at, AuditEntry.action, AuditEntry.after).where(
        AuditEntry.object_type == "Case", AuditEntry.object_id == bindparam("case_id"),
        AuditEntry.action.in_(("case.created", "case.status_changed")))


def _status_entries(db: Session, case, _known: dict) -> list[TimelineEntry]:
    out = []
    texts = _texts(locale_name())[0]
    opened, changed = texts["opened"], texts["status"]
    for at, action, after in db.connection().execute(_status_statement(), {"case_id": str(case.id)}).all():
        if action == "case.created":
            out.append(TimelineEntry(at, "status", opened))
        else:
            status = (after or {}).get("status", "")
            out.append(TimelineEntry(at, "status", changed % {"status": CaseStatus.title(status)}))
    return out


def _receipt_entries(db: Session, case, known: dict) -> list[TimelineEntry]:
    from portal.receipts.services import receipts_of_case_with_events  # receipts' services import cases'

    if "receipt_events" not in known:
        _receipts, known["receipt_events"] = receipts_of_case_with_events(db, case)
    texts = _texts(locale_name())[1]
    refs: dict[int, Markup] = {}  # a receipt's reference as HTML, once per receipt
    out = []
    for e in known["receipt_events"]:
        receipt = e.receipt
        ref = refs.get(receipt.id)
        if ref is None:
            ref = refs[receipt.id] = bdi(receipt.reference)
        # The reference stays in one piece and in its order inside right-to-left text. Both the text and the
        # reference are HTML already, so they are put together as plain strings (Markup's % escapes each
        # argument again, slowly).
        text = Markup(str.__mod__(texts[e.kind], {"ref": ref}))  # noqa: S704 - escaped above
        out.append(TimelineEntry(e.at, "receipt", text, detail=receipt.supplier))
    return out


# Each source adds its own entries; a feature that wants to appear on the timeline adds a function here.
# `known` holds what the page loaded already (the case's visits and their comments, the receipts' history)
# and what a source found on the way (the comment count per visit), so nothing is read twice.
TIMELINE_SOURCES: list[Callable[[Session, object, dict], list[TimelineEntry]]] = [
    _status_entries, _receipt_entries, _visit_entries,
]


def timeline(db: Session, case, limit: int = 100, known: dict | None = None) -> list[TimelineEntry]:
    """Everything that happened on a case (a Case or a row with its id), newest first."""
    known = {} if known is None else known
    entries = [entry for source in TIMELINE_SOURCES for entry in source(db, case, known)]
    entries.sort(key=lambda e: e.order_key, reverse=True)
    return entries[:limit]


def shown(entries: list[TimelineEntry]) -> list[ShownEntry]:
    """The entries as the page shows them, in the user's language and time zone (looked up once)."""
    locale, zone = locale_name(), get_timezone()
    badges = _texts(locale)[2]
    env = current_app.jinja_env
    out = []
    for e in entries:
        if e.date_only:
            iso, when = e.at.date().isoformat(), format_date(e.at.date())
        else:
            iso, when = e.at.isoformat(), _moment_text(locale, zone, e.at)
        detail = e.detail
        if detail and len(detail) > 160:
            detail = do_truncate(env, detail, 160)  # as the template's |truncate(160) did
        out.append(ShownEntry(e.kind, badges.get(e.kind, e.kind), iso, when, e.text, e.url, detail))
    return out
