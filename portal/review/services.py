"""The review desk: one queue across every organisation, its counts, and the random sample audit.

Decisions on receipts go through portal.receipts.decisions.decide() and acknowledgements of visits
through portal.visits.followup.acknowledge(): the rules live there, this module only finds the work.

The queue is read in one statement whatever its length: a UNION ALL of its sources (receipts waiting for
a decision, receipts drawn for a sample check, flagged visits, workshop registrations), each with the
filters applied in SQL, sorted by its index and cut after one page; they are merged here and paged by
keyset (the sort key of the last item shown), never by OFFSET or a count of every waiting row.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import cache

from flask_babel import gettext as _
from sqlalchemy import (
    BigInteger,
    Boolean,
    Integer,
    String,
    and_,
    bindparam,
    case,
    cast,
    exists,
    false,
    literal,
    null,
    or_,
    true,
    union_all,
    update,
)
from sqlalchemy.orm import aliased
from sqlmodel import Session, func, select

from portal import audit
from portal.auth.models import User
from portal.cases.models import BudgetLine, Case
from portal.cases.services import countries_select
from portal.clock import utcnow
from portal.db import constants_written, written
from portal.orgs.models import Organisation
from portal.receipts import budget as receipt_budget
from portal.receipts import decisions as receipt_decisions
from portal.receipts import errors, handover, neardup
from portal.receipts import search as receipt_search
from portal.receipts.handover import Handover, HandoverExemption, HandoverReceipt, HandoverState
from portal.receipts.models import COUNTED, FileKind, Receipt, ReceiptEvent, ReceiptFile, ReceiptMatch, ReceiptStatus
from portal.review.models import SampleDraw, SampleItem, SampleOutcome
from portal.rules import RuleError
from portal.visits.followup import flagged_condition
from portal.visits.models import FLAGS, Visit
from portal.workshop.models import Registration, RegStatus, Workshop

PER_PAGE = 25

# Item types, in the order the counts are shown.
NEW, CORRECTED, SECOND, SAMPLE, VISIT, REGISTRATION = "receipt", "corrected", "second", "sample", "visit", \
    "registration"
TYPES = (NEW, CORRECTED, SECOND, SAMPLE, VISIT, REGISTRATION)
# Statuses an item can have in the queue.
STATUSES = ("submitted", "approved", "flagged")
WARNINGS = ("duplicate", "over_budget", "outside_period", "rate_missing", "new_supplier")
SORTS = ("oldest", "newest", "amount_desc", "amount_asc", "case", "organisation")
AGES = (1, 3, 7, 14, 30)


class ReviewError(RuleError):
    """A rule of the review desk was broken; `field` names the form field the message belongs to."""


# Filters ----------------------------------------------------------------------------------------

@dataclass
class QueueFilter:
    country: str = ""
    organisation_id: int | None = None
    case: str = ""
    type: str = ""
    status: str = ""
    warning: str = ""
    min_age_days: int | None = None
    min_eur_cents: int | None = None
    max_eur_cents: int | None = None
    sort: str = "oldest"
    q: str = ""  # words searched in supplier, invoice number, description and translation
    after: str = ""  # the keyset cursor: the sort key of the last item of the previous page

    @property
    def amount_filtered(self) -> bool:
        return self.min_eur_cents is not None or self.max_eur_cents is not None


# Queue items ------------------------------------------------------------------------------------
#
# The desk only reads: each item is built from the columns it shows (Core rows, no ORM objects).

@dataclass(slots=True)
class ReceiptFacts:
    """What the desk shows and decides on of a receipt (the columns of RECEIPT_COLUMNS, in that order)."""

    id: int
    revision: int
    version: int
    supplier: str
    invoice_number: str
    invoice_date: date
    amount_minor: int
    currency: str
    eur_cents: int | None
    uploaded_by_id: int | None
    budget_line_id: int | None
    status: str
    duplicate_suspected: bool
    over_budget: bool
    outside_period: bool
    rate_missing: bool
    updated_at: datetime

    @property
    def reference(self) -> str:
        return f"R-{self.id:05d}"


RECEIPT_COLUMNS = (Receipt.id, Receipt.revision, Receipt.version, Receipt.supplier, Receipt.invoice_number,
                   Receipt.invoice_date, Receipt.amount_minor, Receipt.currency, Receipt.eur_cents,
                   Receipt.uploaded_by_id, Receipt.budget_line_id, Receipt.status, Receipt.duplicate_suspected,
                   Receipt.over_budget, Receipt.outside_period, Receipt.rate_missing, Receipt.updated_at)


@dataclass(slots=True)
class CaseFacts:
    id: int
    reference: str
    country: str
    organisation_id: int


CASE_COLUMNS = (Case.id, Case.reference, Case.country, Case.organisation_id)


@dataclass(slots=True)
class VisitFacts:
    id: int
    visit_date: date
    created_at: datetime
    flag_details: str | None
    flags: list[str]


@dataclass(slots=True)
class FileFacts:
    """A receipt's first file, for its preview (portal.receipts.previews.has_preview reads these)."""

    id: int
    content_type: str
    scan_status: str


@dataclass(slots=True)
class SampleFacts:
    id: int


@dataclass(slots=True)
class QueueItem:
    type: str
    since: datetime
    case: CaseFacts | None
    organisation: str
    receipt: ReceiptFacts | None = None
    visit: VisitFacts | None = None
    sample: SampleFacts | None = None
    first_approver_id: int | None = None
    new_supplier: bool = False
    # For workshop registrations: what the item shows and links to.
    extra: dict = field(default_factory=dict)
    sort_key: tuple = ()  # the item's place in the queue's order, as the database sorted it
    line: receipt_budget.LineSummary | None = None  # the receipt's budget line, beside the decision
    # For a sample check: "uploader" or "approver" when the viewer handled the receipt and may not check it.
    conflict: str = ""
    file: FileFacts | None = None  # the receipt's first file, for its preview
    near: list[neardup.Match] = field(default_factory=list)  # receipts it looks like (add_details)
    handover: HandoverState | None = None  # the receipt's handover: confirmed, missing, …
    has_match: bool = False  # a near-duplicate is recorded (add_details)

    @property
    def key(self) -> str:
        """A stable id for the item's element in the page."""
        if self.sample is not None:
            return f"sample-{self.sample.id}"
        if self.receipt is not None:
            return f"receipt-{self.receipt.id}"
        if self.visit is not None:
            return f"visit-{self.visit.id}"
        return f"{self.type}-{self.extra.get('id', '')}"

    @property
    def eur_cents(self) -> int | None:
        return self.receipt.eur_cents if self.receipt is not None else None

    @property
    def warnings(self) -> list[str]:
        r = self.receipt
        if r is None:
            return []
        found = [name for name, on in (("duplicate", r.duplicate_suspected or bool(self.near)),
                                       ("over_budget", r.over_budget),
                                       ("outside_period", r.outside_period), ("rate_missing", r.rate_missing))
                 if on]
        if self.new_supplier:
            found.append("new_supplier")
        return found

    def age_days(self, now: datetime) -> int:
        return max(0, (_naive(now) - _naive(self.since)).days)


@dataclass
class QueuePage:
    items: list[QueueItem]
    total: int | None  # None when filters narrow the queue: only the desk's counts are kept
    next_after: str | None  # the cursor of the next page, None on the last
    later: bool  # a page after the first


def _naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None)


def _first_approver():
    """The first approver of the receipt's current revision (None when nobody approved it yet)."""
    return (select(func.min(ReceiptEvent.actor_id))
            .where(ReceiptEvent.receipt_id == Receipt.id, ReceiptEvent.revision == Receipt.revision,
                   ReceiptEvent.kind == written("first_approval"))
            .correlate(Receipt).scalar_subquery())


@cache
def _new_supplier():
    """No earlier receipt (other than an abandoned upload) names the same supplier. Built once: the aliased
    entity is costly to make, and the expression is the same for every query that uses it."""
    earlier = aliased(Receipt)
    return ~exists().where(func.lower(func.trim(earlier.supplier)) == func.lower(func.trim(Receipt.supplier)),
                           earlier.id < Receipt.id, earlier.status != ReceiptStatus.PENDING).correlate(Receipt)


def _has_match():
    """A near-duplicate is recorded for the receipt, either way round."""
    return exists().where(or_(ReceiptMatch.receipt_id == Receipt.id, ReceiptMatch.other_id == Receipt.id)) \
        .correlate(Receipt)


def _common_conditions(f: QueueFilter) -> list:
    conditions = []
    if f.country:
        conditions.append(Case.country == bindparam("f_country", _country(f)))
    if f.organisation_id:
        conditions.append(Case.organisation_id == bindparam("f_organisation", f.organisation_id))
    if f.case:
        conditions.append(Case.reference.ilike(bindparam("f_case", _case_pattern(f))))
    return conditions


# The filters' values are bound parameters (the names below), so that a statement built for one combination of
# filters serves every request with the same combination (_built()); params() gives the values.

def _country(f: QueueFilter) -> str:
    return f.country[:2].upper()


def _case_pattern(f: QueueFilter) -> str:
    return f"%{f.case.strip()[:20]}%"


def _params(f: QueueFilter, now: datetime, cursor) -> dict:
    params = {"f_country": _country(f), "f_organisation": f.organisation_id, "f_case": _case_pattern(f),
              "f_min_eur": f.min_eur_cents, "f_max_eur": f.max_eur_cents, "f_cutoff": _cutoff(f, now)}
    if cursor is not None:
        params.update({f"after_{i}": value for i, value in enumerate(cursor)})
    return params


def _cutoff(f: QueueFilter, now: datetime) -> datetime | None:
    return now - timedelta(days=f.min_age_days) if f.min_age_days else None


# Sorting and keyset paging -------------------------------------------------------------------------
#
# Every source (waiting receipts, receipts drawn for a sample check, flagged visits, registrations) sorts
# by its own columns (for the default order, the index order: receipts by (status, updated_at, id), open
# flags by (created_at, id)) and sends at most one page and one row; the merge of those is exact because
# each row carries its sort key, read from the database, ending in (source rank, id). The next page starts
# after the last key shown (keyset paging): decisions taken meanwhile move nothing on the next page, and
# no page reads or counts the rows before it.

RANK_WAITING, RANK_SAMPLE, RANK_VISIT, RANK_REGISTRATION = 0, 1, 2, 3


def _text_key(expr, dialect: str):
    """Strings compare by code point on both databases, as Python compares them in the merge."""
    return expr.collate("C") if dialect == "postgresql" else expr


def _keys(sort: str, dialect: str, since, rank: int, row_id, case_ref=None, org_name=None, eur=None,
          has_eur: bool = True) -> list[tuple[object, bool]]:
    """(expression or constant, descending) per element of a source's sort key; the rank is a constant."""
    if sort == "newest":
        return [(since, True), (rank, True), (row_id, True)]
    tail = [(since, False), (rank, False), (row_id, False)]
    if sort in ("amount_desc", "amount_asc"):
        if not has_eur:  # no amount: after every receipt, like a receipt without a rate
            return [(literal(1, Integer), False), (literal(0, BigInteger), False), *tail]
        return [(case((eur.is_(None), 1), else_=0), False), (func.coalesce(eur, 0), sort == "amount_desc"),
                *tail]
    if sort == "case":
        return [(_text_key(case_ref if case_ref is not None else literal("", String), dialect), False), *tail]
    if sort == "organisation":
        return [(_text_key(func.lower(org_name), dialect), False), *tail]
    return tail


def _is_sql(expr) -> bool:
    """A column or expression of the query (the rank is a plain int, the same for the whole source)."""
    return not isinstance(expr, int)


def _after(keys: list[tuple[object, bool]], values: list) -> list:
    """WHERE conditions: the row's key comes after `values` in the order of `keys`.

    Written out lexicographically; the first element's bound is repeated on its own so that the database
    starts its index range there instead of filtering the rows before the cursor."""
    def later(i: int):
        if i == len(keys):
            return false()
        expr, desc = keys[i]
        value = values[i]
        if not _is_sql(expr):  # the source's rank: decided here
            if expr == value:
                return later(i + 1)
            return true() if (expr > value) != desc else false()
        value = bindparam(f"after_{i}", value, type_=expr.type)
        beyond = expr < value if desc else expr > value
        return or_(beyond, and_(expr == value, later(i + 1)))

    conditions = [later(0)]
    first, desc = keys[0]
    if _is_sql(first):
        value = bindparam("after_0", values[0], type_=first.type)
        conditions.append(first <= value if desc else first >= value)
    return conditions


def _select_keys(keys) -> list:
    return [expr.label(f"k{i}") for i, (expr, _d) in enumerate(keys) if _is_sql(expr)]


def _key_values(keys, row_tail) -> tuple:
    """The item's whole sort key: the values read from the database with the constants put back."""
    found = iter(row_tail)
    return tuple(next(found) if _is_sql(expr) else expr for expr, _d in keys)


def _order_by(keys) -> list:
    return [expr.desc() if desc else expr.asc() for expr, desc in keys if _is_sql(expr)]


def encode_cursor(values: tuple) -> str:
    """The URL form of a sort key: JSON, dates tagged, base64 so it survives any URL."""
    plain = [{"d": v.isoformat()} if isinstance(v, datetime) else v for v in values]
    return base64.urlsafe_b64encode(json.dumps(plain, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(text: str, length: int) -> list | None:
    """The sort key in a URL, or None when it is missing or not one of ours (then: the first page)."""
    if not text or len(text) > 600:
        return None
    try:
        raw = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        values = [datetime.fromisoformat(v["d"]) if isinstance(v, dict) else v for v in raw]
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError):
        return None
    if len(values) != length or not all(isinstance(v, (int, str, datetime)) for v in values):
        return None
    # Moments are stored in UTC and the columns want them with their time zone.
    return [v.replace(tzinfo=UTC) if isinstance(v, datetime) and v.tzinfo is None else v for v in values]


def _key_length(sort: str) -> int:
    return {"amount_desc": 5, "amount_asc": 5, "case": 4, "organisation": 4}.get(sort, 3)


def _fits(keys, cursor: list) -> bool:
    """Whether each value of a cursor from a URL has its key's type (and an integer the database's range):
    a cursor made by hand must give the first page, not a database error."""
    for (expr, _desc), value in zip(keys, cursor, strict=True):
        if isinstance(value, bool):
            return False
        if not _is_sql(expr):
            if not isinstance(value, int):
                return False
            continue
        kind = getattr(expr.type, "impl_instance", expr.type)  # a TypeDecorator (UTC moments): its stored type
        try:
            wanted = kind.python_type
        except (AttributeError, NotImplementedError):
            continue
        if not isinstance(value, wanted) or (isinstance(value, int) and abs(value) > 2**63 - 1):
            return False
    return True


def _paged(query, keys, cursor, limit: int):
    if cursor is not None and _fits(keys, cursor):
        query = query.where(*_after(keys, cursor))
    return query.order_by(*_order_by(keys)).limit(written(limit))


def _receipt_conditions(f: QueueFilter, dialect: str) -> list:
    conditions = _common_conditions(f)
    warning_condition = {
        "duplicate": or_(Receipt.duplicate_suspected.is_(True), _has_match()),
        "over_budget": Receipt.over_budget.is_(True),
        "outside_period": Receipt.outside_period.is_(True), "rate_missing": Receipt.rate_missing.is_(True),
        "new_supplier": _new_supplier(),
    }.get(f.warning)
    if warning_condition is not None:
        conditions.append(warning_condition)
    if f.min_eur_cents is not None:
        conditions.append(Receipt.eur_cents >= bindparam("f_min_eur", f.min_eur_cents))
    if f.max_eur_cents is not None:
        conditions.append(Receipt.eur_cents <= bindparam("f_max_eur", f.max_eur_cents))
    found = receipt_search.search_condition(f.q, dialect) if f.q else None
    if found is not None:
        conditions.append(found)
    return conditions


_BUILT: dict[tuple, tuple] = {}


def _built(f: QueueFilter, cursor, dialect: str, build, *extra) -> tuple:
    """The queue's (statement, sort keys), from `build()`; built once per combination of filters (which of
    them are set, not their values: those are bound parameters), order, type, status, warning, shape of the
    cursor and `extra` (the viewer, the sources), and kept. A search is built each time (its condition binds
    its words itself). Statements are immutable; only the construction is saved, never data."""
    if f.q:
        return build()
    shape = None
    if cursor is not None:
        rank_at = {"amount_desc": 3, "amount_asc": 3, "case": 2, "organisation": 2}.get(f.sort, 1)
        # What _fits() and _after() decide by: each value's type and range, and the rank itself.
        shape = tuple((type(v), isinstance(v, int) and abs(v) > 2**63 - 1, v if i == rank_at else None)
                      for i, v in enumerate(cursor))
    key = (f.sort, f.type, f.status, f.warning, bool(f.country), bool(f.organisation_id), bool(f.case),
           bool(f.min_age_days), f.min_eur_cents is not None, f.max_eur_cents is not None, shape, dialect, *extra)
    found = _BUILT.get(key)
    if found is None:
        if len(_BUILT) > 512:  # viewers come and go: never more than a few hundred kept
            _BUILT.clear()
        statement, keys = build()
        # Kept and run often: PostgreSQL plans it anew on every run while its states and LIMITs are parameters.
        found = _BUILT[key] = constants_written(statement), keys
    return found


# The sources in one statement ------------------------------------------------------------------------
#
# Each source is a SELECT of the same columns (those it has no value for are NULL), cut after one page by
# its own ORDER BY and LIMIT; the four are sent as one UNION ALL and told apart by the first column.


def _layout() -> list[tuple[str, object]]:
    """(name, type) of every column of the union, in order; the sort keys follow them."""
    return [("src", Integer()), ("since", Receipt.updated_at.type),
            *((f"r_{c.key}", c.type) for c in RECEIPT_COLUMNS), *((f"c_{c.key}", c.type) for c in CASE_COLUMNS),
            ("org", Organisation.name.type), ("first", ReceiptEvent.actor_id.type), ("new_supplier", Boolean()),
            ("conflict", String()), ("sample_id", SampleItem.id.type), ("visit_id", Visit.id.type),
            ("visit_date", Visit.visit_date.type), ("flag_details", Visit.flag_details.type),
            *((name, Boolean()) for name in FLAGS),
            ("reg_id", Registration.id.type), ("workshop_id", Registration.workshop_id.type),
            ("reg_name", Registration.name.type), ("reg_country", Registration.country.type),
            ("reg_role", Registration.role.type), ("workshop_title", Workshop.title.type)]


LAYOUT = _layout()
_AT = {name: i for i, (name, _type) in enumerate(LAYOUT)}
_R, _C = _AT["r_id"], _AT["c_id"]
_FLAG_AT = _AT[FLAGS[0]]
_KEYS_AT = len(LAYOUT)


def _columns(src: int, **exprs) -> list:
    """The union's columns for one source: its expressions by name, NULL of the column's type elsewhere."""
    exprs["src"] = literal(src, Integer)
    return [exprs[name].label(name) if name in exprs else cast(null(), kind).label(name) for name, kind in LAYOUT]


def _receipt_exprs() -> dict:
    return {**{f"r_{c.key}": c for c in RECEIPT_COLUMNS}, **_case_exprs()}


def _case_exprs() -> dict:
    return {**{f"c_{c.key}": c for c in CASE_COLUMNS}, "org": Organisation.name}


def _waiting_query(f: QueueFilter, now: datetime, cursor, limit: int, dialect: str):
    """Receipts waiting for a decision (new, corrected, or for a second approval), from the status index."""
    first = _first_approver()
    conditions = [Receipt.status == ReceiptStatus.SUBMITTED, *_receipt_conditions(f, dialect)]
    conditions += {"": [], NEW: [Receipt.revision == 1, first.is_(None)],
                   CORRECTED: [Receipt.revision > 1, first.is_(None)], SECOND: [first.is_not(None)]}[f.type]
    cutoff = _cutoff(f, now)
    if cutoff is not None:
        conditions.append(Receipt.updated_at <= bindparam("f_cutoff", cutoff))
    keys = _keys(f.sort, dialect, Receipt.updated_at, RANK_WAITING, Receipt.id, Case.reference, Organisation.name,
                 Receipt.eur_cents)
    query = (select(*_columns(RANK_WAITING, since=Receipt.updated_at, first=first, new_supplier=_new_supplier(),
                              **_receipt_exprs()), *_select_keys(keys))
             .join(Case, Case.id == Receipt.case_id).join(Organisation, Organisation.id == Case.organisation_id)
             .where(*conditions))
    return _paged(query, keys, cursor, limit), keys


def _sample_query(f: QueueFilter, now: datetime, cursor, limit: int, dialect: str, viewer_id: int | None):
    """Approved receipts drawn for a sample check and not yet checked, from the open items' index, each with
    whether the viewer uploaded or approved it (then someone else must check it)."""
    conditions = [SampleItem.checked_at.is_(None), *_receipt_conditions(f, dialect)]
    cutoff = _cutoff(f, now)
    if cutoff is not None:
        conditions.append(SampleDraw.created_at <= bindparam("f_cutoff", cutoff))
    keys = _keys(f.sort, dialect, SampleDraw.created_at, RANK_SAMPLE, SampleItem.id, Case.reference,
                 Organisation.name, Receipt.eur_cents)
    query = (select(*_columns(RANK_SAMPLE, since=SampleDraw.created_at, sample_id=SampleItem.id,
                              new_supplier=_new_supplier(), conflict=involvement(viewer_id), **_receipt_exprs()),
                    *_select_keys(keys))
             .join(SampleDraw, SampleDraw.id == SampleItem.draw_id)
             .join(Receipt, Receipt.id == SampleItem.receipt_id)
             .join(Case, Case.id == Receipt.case_id).join(Organisation, Organisation.id == Case.organisation_id)
             .where(*conditions))
    return _paged(query, keys, cursor, limit), keys


def _visit_query(f: QueueFilter, now: datetime, cursor, limit: int, dialect: str):
    conditions = [flagged_condition(), Visit.acknowledged_at.is_(None), *_common_conditions(f)]
    cutoff = _cutoff(f, now)
    if cutoff is not None:
        conditions.append(Visit.created_at <= bindparam("f_cutoff", cutoff))
    keys = _keys(f.sort, dialect, Visit.created_at, RANK_VISIT, Visit.id, Case.reference, Organisation.name,
                 has_eur=False)
    query = (select(*_columns(RANK_VISIT, since=Visit.created_at, visit_id=Visit.id, visit_date=Visit.visit_date,
                              flag_details=Visit.flag_details, **{name: getattr(Visit, name) for name in FLAGS},
                              **_case_exprs()), *_select_keys(keys))
             .join(Case, Case.id == Visit.case_id)
             .join(Organisation, Organisation.id == Case.organisation_id).where(*conditions))
    return _paged(query, keys, cursor, limit), keys


def _registration_query(f: QueueFilter, now: datetime, cursor, limit: int, dialect: str):
    """Workshop registrations awaiting a staff decision (moderated workshops). The decision itself is taken on
    the registration's page (portal.workshop), which the item links to."""
    conditions = [Registration.status == RegStatus.PENDING]
    if f.country:
        conditions.append(Registration.country == bindparam("f_country", _country(f)))
    cutoff = _cutoff(f, now)
    if cutoff is not None:
        conditions.append(Registration.created_at <= bindparam("f_cutoff", cutoff))
    keys = _keys(f.sort, dialect, Registration.created_at, RANK_REGISTRATION, Registration.id, None,
                 Registration.organisation, has_eur=False)
    query = (select(*_columns(RANK_REGISTRATION, since=Registration.created_at, reg_id=Registration.id,
                              workshop_id=Registration.workshop_id, reg_name=Registration.name,
                              reg_country=Registration.country, reg_role=Registration.role,
                              org=Registration.organisation, workshop_title=Workshop.title),
                    *_select_keys(keys))
             .join(Workshop, Workshop.id == Registration.workshop_id).where(*conditions))
    return _paged(query, keys, cursor, limit), keys


def _sources(f: QueueFilter, waiting_registrations: int) -> tuple[bool, bool, bool, bool]:
    """Which sources can have items under the filters: waiting receipts, sample checks, visits, registrations."""
    return (f.type in ("", NEW, CORRECTED, SECOND) and f.status in ("", "submitted"),
            f.type in ("", SAMPLE) and f.status in ("", "approved"),
            f.type in ("", VISIT) and f.status in ("", "flagged") and not (f.warning or f.amount_filtered or f.q),
            bool(waiting_registrations) and f.type in ("", REGISTRATION) and not (
                f.status or f.warning or f.amount_filtered or f.organisation_id or f.case or f.q))


def _union(f: QueueFilter, now: datetime, cursor, limit: int, dialect: str, viewer_id: int | None,
           sources: tuple[bool, bool, bool, bool]):
    """The statement of the sources wanted, and each one's sort keys by its rank."""
    parts, keys = [], {}
    for rank, wanted, build in ((RANK_WAITING, sources[0], lambda: _waiting_query(f, now, cursor, limit, dialect)),
                                (RANK_SAMPLE, sources[1],
                                 lambda: _sample_query(f, now, cursor, limit, dialect, viewer_id)),
                                (RANK_VISIT, sources[2], lambda: _visit_query(f, now, cursor, limit, dialect)),
                                (RANK_REGISTRATION, sources[3],
                                 lambda: _registration_query(f, now, cursor, limit, dialect))):
        if wanted:
            query, keys[rank] = build()
            parts.append(query)
    if len(parts) == 1:
        return parts[0], keys
    # Each part keeps its own ORDER BY and LIMIT inside a subquery (as SQLite, too, wants it).
    return union_all(*(select(*part.subquery().c) for part in parts)), keys


def _items(rows, keys: dict) -> list[QueueItem]:
    items = []
    r, c, flag_at, keys_at = _R, _C, _FLAG_AT, _KEYS_AT
    n_receipt, n_case = len(RECEIPT_COLUMNS), len(CASE_COLUMNS)
    at = _AT
    for row in rows:
        src = row[0]
        sort_key = _key_values(keys[src], row[keys_at:])
        if src == RANK_VISIT:
            items.append(QueueItem(VISIT, row[1], CaseFacts(*row[c:c + n_case]), row[at["org"]],
                                   visit=VisitFacts(row[at["visit_id"]], row[at["visit_date"]], row[1],
                                                    row[at["flag_details"]],
                                                    [name for name, on in zip(FLAGS, row[flag_at:flag_at + len(FLAGS)],
                                                                              strict=True) if on]),
                                   sort_key=sort_key))
        elif src == RANK_REGISTRATION:
            items.append(QueueItem(REGISTRATION, row[1], None, row[at["org"]],
                                   extra={"id": row[at["reg_id"]], "workshop_id": row[at["workshop_id"]],
                                          "workshop": row[at["workshop_title"]], "name": row[at["reg_name"]],
                                          "country": row[at["reg_country"]], "role": row[at["reg_role"]]},
                                   sort_key=sort_key))
        else:
            receipt = ReceiptFacts(*row[r:r + n_receipt])
            case_ = CaseFacts(*row[c:c + n_case])
            if src == RANK_WAITING:
                first_id = row[at["first"]]
                kind = SECOND if first_id is not None else (CORRECTED if receipt.revision > 1 else NEW)
                items.append(QueueItem(kind, receipt.updated_at, case_, row[at["org"]], receipt=receipt,
                                       first_approver_id=first_id, new_supplier=bool(row[at["new_supplier"]]),
                                       sort_key=sort_key))
            else:
                items.append(QueueItem(SAMPLE, row[1], case_, row[at["org"]], receipt=receipt,
                                       sample=SampleFacts(row[at["sample_id"]]),
                                       new_supplier=bool(row[at["new_supplier"]]),
                                       conflict=row[at["conflict"]] or "", sort_key=sort_key))
    return items


def _merge_key(sort: str):
    """Python's order of the merged sort keys, the same as each source's ORDER BY."""
    if sort == "amount_desc":
        return lambda item: (item.sort_key[0], -item.sort_key[1], *item.sort_key[2:])
    return lambda item: item.sort_key


def _only_sorted(f: QueueFilter) -> bool:
    """No filter but the type (and the order): the desk's counts are the total."""
    return not (f.country or f.organisation_id or f.case or f.status or f.warning or f.min_age_days
                or f.amount_filtered or f.q)


def queue(db: Session, f: QueueFilter, now: datetime | None = None,
          counts: dict[str, int] | None = None, viewer_id: int | None = None) -> QueuePage:
    """One page of everything waiting for staff, filtered and sorted as asked, after the cursor `f.after`.

    `counts` (the desk's counts per type) give the total when only the type is chosen, and save the
    registrations' statement when none wait. `viewer_id` marks the sample checks the viewer may not record. Each source sorts by its index and sends at most one page and
    one row after the cursor: the cost follows the page, not the length of the queue.
    """
    now = now or utcnow()
    f = replace(f, sort=f.sort if f.sort in SORTS else "oldest")
    cursor = decode_cursor(f.after, _key_length(f.sort))
    dialect = db.get_bind().dialect.name
    limit = PER_PAGE + 1
    waiting_registrations = (counts or {}).get(REGISTRATION, 1)
    sources = _sources(f, waiting_registrations)
    items = []
    if any(sources):
        statement, keys = _built(f, cursor, dialect,
                                 lambda: _union(f, now, cursor, limit, dialect, viewer_id, sources), viewer_id, sources)
        items = _items(db.exec(statement, params=_params(f, now, cursor)).all(), keys)
    items.sort(key=_merge_key(f.sort), reverse=f.sort == "newest")
    more = len(items) > PER_PAGE
    items = items[:PER_PAGE]
    total = None
    if counts is not None and _only_sorted(f):
        total = counts.get(f.type, 0) if f.type else sum(counts.values())
    return QueuePage(items, total, encode_cursor(items[-1].sort_key) if more else None, cursor is not None)


@cache
def _details_statement():
    """add_details()'s statement, built once: per receipt of the page its budget line's figures (planned;
    submitted, not rejected; approved), its first file, its handover and exemption, and whether a
    near-duplicate is recorded."""
    other = aliased(Receipt)

    def line_sum(condition):
        return (select(func.coalesce(func.sum(other.eur_cents).filter(condition), 0))
                .where(other.budget_line_id == Receipt.budget_line_id).correlate(Receipt).scalar_subquery())

    first_file = (select(func.min(ReceiptFile.id))
                  .where(ReceiptFile.receipt_id == Receipt.id, ReceiptFile.confirmed.is_(True),
                         ReceiptFile.kind == FileKind.RECEIPT).correlate(Receipt).scalar_subquery())
    return (select(Receipt.id, BudgetLine.planned_cents, line_sum(other.status.in_(COUNTED)),
                   line_sum(other.status == ReceiptStatus.APPROVED), ReceiptFile.id, ReceiptFile.content_type,
                   ReceiptFile.scan_status, Handover.handed_over_on, HandoverExemption.reason, _has_match())
            .outerjoin(BudgetLine, BudgetLine.id == Receipt.budget_line_id)
            .outerjoin(ReceiptFile, ReceiptFile.id == first_file)
            .outerjoin(HandoverReceipt, HandoverReceipt.receipt_id == Receipt.id)
            .outerjoin(Handover, Handover.id == HandoverReceipt.handover_id)
            .outerjoin(HandoverExemption, HandoverExemption.receipt_id == Receipt.id)
            .where(Receipt.id.in_(bindparam("ids", expanding=True))))


def add_details(db: Session, items: list[QueueItem]) -> None:
    """Each receipt's budget line figures, first file, handover state and near-duplicates: one statement
    for the whole page, and one more only when a receipt of the page has a recorded near-duplicate (the
    desk is staff's: every match is shown, another organisation's as a warning)."""
    shown: dict[int, list[QueueItem]] = {}
    for item in items:
        if item.receipt is not None:
            shown.setdefault(item.receipt.id, []).append(item)
    if not shown:
        return
    on, days = handover.today(), handover.due_days()
    matched = []
    for (receipt_id, planned, submitted, approved, file_id, content_type, scan_status, handed_over_on, reason,
         has_match) in db.exec(_details_statement(), params={"ids": sorted(shown)}):
        for item in shown[receipt_id]:
            if planned is not None:
                item.line = receipt_budget.LineSummary(int(planned), int(submitted), int(approved))
            if file_id is not None:
                item.file = FileFacts(file_id, content_type, scan_status)
            item.handover = handover.state(item.receipt, handed_over_on, reason, on, days)
            item.has_match = bool(has_match)
        if has_match:
            matched.append(receipt_id)
    if matched:
        near = neardup.matches_of(db, matched)
        for receipt_id in matched:
            for item in shown[receipt_id]:
                item.near = [neardup.Match(other, case, reasons, organisation,
                                           case.organisation_id == item.case.organisation_id)
                             for other, case, organisation, reasons in near.get(receipt_id, [])]


# Approving several at once ----------------------------------------------------------------------

@dataclass
class BulkResult:
    reference: str
    approved: bool
    message: str


def approve_selected(db: Session, actor: User, selected: list[tuple[int, int]]) -> list[BulkResult]:
    """Approve each selected receipt (id, version seen) that passes every rule, through receipt_decisions.decide()
    (each one audited on its own); the others are skipped with the reason.

    A receipt above the four-eyes threshold that nobody else approved yet is skipped: one reviewer's tick
    in a list must not stand in for the first of two careful looks."""
    results = []
    for receipt_id, version in selected[:PER_PAGE * 4]:
        receipt = db.exec(select(Receipt).where(Receipt.id == receipt_id,
                                                Receipt.status != ReceiptStatus.PENDING)).first()
        if receipt is None:
            continue
        if receipt_decisions.needs_four_eyes(receipt) and receipt.status == ReceiptStatus.SUBMITTED and not any(
                e.actor_id != actor.id for e in receipt_decisions.first_approvals(db, receipt)):
            if any(e.actor_id == actor.id for e in receipt_decisions.first_approvals(db, receipt)):
                reason = _("You have already approved this receipt. A second, different staff member must "
                           "approve it.")
            else:
                reason = _("Above the four-eyes threshold: approve it on its own; a second staff member must "
                           "approve it too.")
            results.append(BulkResult(receipt.reference, False, reason))
            continue
        try:
            receipt_decisions.decide(db, actor, receipt, receipt_decisions.APPROVE, "", version)
        except errors.ReceiptError as exc:
            db.rollback()
            results.append(BulkResult(receipt.reference, False, str(exc)))
        else:
            results.append(BulkResult(receipt.reference, True, _("Approved.")))
    return results


def _count_subqueries() -> list[tuple[str, object]]:
    """(type, a scalar subquery counting what of that type waits), for every type the portal has."""
    has_first = exists().where(ReceiptEvent.receipt_id == Receipt.id, ReceiptEvent.revision == Receipt.revision,
                               ReceiptEvent.kind == written("first_approval")).correlate(Receipt)
    waiting = Receipt.status == ReceiptStatus.SUBMITTED

    def count(model, *conditions):
        return select(func.count()).select_from(model).where(*conditions).scalar_subquery()

    found = [(NEW, count(Receipt, waiting, Receipt.revision == 1, ~has_first)),
             (CORRECTED, count(Receipt, waiting, Receipt.revision > 1, ~has_first)),
             (SECOND, count(Receipt, waiting, has_first)),
             (SAMPLE, count(SampleItem, SampleItem.checked_at.is_(None))),
             (VISIT, count(Visit, flagged_condition(), Visit.acknowledged_at.is_(None)))]
    found.append((REGISTRATION, count(Registration, Registration.status == RegStatus.PENDING)))
    return found


def counts(db: Session) -> dict[str, int]:
    """How many items of each type wait, across every organisation, in one statement."""
    names, statement = _counts_statement()
    row = db.exec(statement).one()
    return {name: int(value or 0) for name, value in zip(names, row, strict=True)}


@cache
def _counts_statement():
    found = _count_subqueries()
    return [name for name, _sub in found], constants_written(select(*(sub.label(name) for name, sub in found)))


@cache
def _summary_statement():
    """desk_summary()'s statement (it has no parameters), built once, its states written into it."""
    found = _count_subqueries()
    parts = [select(literal("count").label("kind"), literal(name).label("key"),
                    cast(sub, BigInteger).label("number"), literal("").label("label"))
             for name, sub in found]
    parts.append(select(literal("org"), literal(""), cast(Organisation.id, BigInteger), Organisation.name))
    countries = countries_select().subquery()
    parts.append(select(literal("country"), countries.c.country, cast(literal(None), BigInteger), literal("")))
    return [name for name, _sub in found], constants_written(union_all(*parts))


def desk_summary(db: Session) -> tuple[dict[str, int], list[tuple[int, str]], list[str]]:
    """The counts per type and the filter form's options (organisations, return countries of cases), in one
    statement: the desk page needs both, and the navigation's count comes from the same figures."""
    names, statement = _summary_statement()
    rows = db.exec(statement).all()
    found = {key: int(number or 0) for kind, key, number, _label in rows if kind == "count"}
    counts_ = {name: found.get(name, 0) for name in names}
    organisations = sorted(((int(number), label) for kind, _k, number, label in rows if kind == "org"),
                           key=lambda p: p[1].casefold())
    countries = sorted({key for kind, key, _n, _l in rows if kind == "country" and key})
    return counts_, organisations, countries


# Sample audit -----------------------------------------------------------------------------------

def sample_size(population: int, share: float) -> int:
    """The share of the population, rounded up so that a small period still gets checked."""
    if population <= 0 or share <= 0:
        return 0
    return min(population, math.ceil(population * share - 1e-9))


def draw_sample(db: Session, actor: User | None, share: float, start: date, end: date) -> SampleDraw:
    """Draw a share of the approved receipts invoiced in the period for a second check, and record it."""
    if not 0 < share <= 1:
        raise ReviewError(_("Enter a share between 0 and 1, like 0.1 for a tenth."), "share")
    if end < start:
        raise ReviewError(_("The end of the period must not be before its start."), "end")
    # Receipts already waiting for a sample check are not drawn again.
    open_items = select(SampleItem.receipt_id).where(SampleItem.checked_at.is_(None))
    candidates = list(db.exec(select(Receipt.id).where(
        Receipt.status == ReceiptStatus.APPROVED, Receipt.invoice_date >= start, Receipt.invoice_date <= end,
        Receipt.id.not_in(open_items)).order_by(Receipt.id)))
    size = sample_size(len(candidates), share)
    chosen = sorted(secrets.SystemRandom().sample(candidates, size))
    draw = SampleDraw(period_start=start, period_end=end, share_permille=round(share * 1000),
                      population=len(candidates), drawn=size, drawn_by_id=getattr(actor, "id", None))
    db.add(draw)
    db.flush()
    db.add_all([SampleItem(draw_id=draw.id, receipt_id=receipt_id) for receipt_id in chosen])
    audit.record(db, actor, "review.sample_drawn", draw, after={
        "period_start": start.isoformat(), "period_end": end.isoformat(), "share": share,
        "population": len(candidates), "drawn": size, "receipt_ids": chosen})
    db.commit()
    return draw


def get_sample_item(db: Session, item_id: int) -> SampleItem | None:
    return db.get(SampleItem, item_id)


UPLOADER, APPROVER = "uploader", "approver"


def involvement(viewer_id: int | None):
    """SQL, correlated to Receipt: "uploader" when the viewer uploaded or submitted the receipt, "approver" when
    they approved any revision of it (first or final approval), else "". Such a person may not check it."""
    if viewer_id is None:
        return literal("", String)

    def did(*kinds):
        return exists().where(ReceiptEvent.receipt_id == Receipt.id, ReceiptEvent.actor_id == viewer_id,
                              ReceiptEvent.kind.in_([written(kind) for kind in kinds])).correlate(Receipt)

    return case((Receipt.uploaded_by_id == viewer_id, UPLOADER), (did("submitted", "resubmitted"), UPLOADER),
                (did("first_approval", "approved"), APPROVER), else_="")


def conflict_message(conflict: str) -> str:
    if conflict == UPLOADER:
        return _("You uploaded this receipt, so another staff member must do its sample check.")
    return _("You approved this receipt, so another staff member must do its sample check.")


def check_sample(db: Session, actor: User, item: SampleItem, outcome: str, comment: str) -> None:
    """Record the second check of a drawn receipt, by someone who neither uploaded nor approved it.

    "Problem found" sends the receipt back to the partner for correction with the finding as what to
    correct (portal.receipts.decisions.reopen_for_correction): its approved amount leaves the budget's
    approved figures in the same transaction, and the partner is notified."""
    comment = (comment or "").strip()
    if item.checked_at is not None:
        raise ReviewError(_("This sample check was already recorded."))
    receipt = db.get(Receipt, item.receipt_id)
    conflict = db.exec(select(involvement(actor.id)).where(Receipt.id == item.receipt_id)).one()
    if conflict:
        raise ReviewError(conflict_message(conflict))
    if outcome not in (SampleOutcome.OK, SampleOutcome.ISSUE):
        raise ReviewError(_("Choose the outcome of the check."), "outcome")
    if outcome == SampleOutcome.ISSUE and not comment:
        raise ReviewError(_("Describe the problem you found."), "comment")
    now = utcnow()
    # One conditional UPDATE: of two staff recording the same check at once, exactly one succeeds.
    claimed = db.exec(update(SampleItem).where(SampleItem.id == item.id, SampleItem.checked_at.is_(None))
                      .values(checked_at=now, checked_by_id=actor.id, outcome=outcome, comment=comment)
                      .execution_options(synchronize_session=False))
    if claimed.rowcount != 1:
        db.rollback()
        raise ReviewError(_("This sample check was already recorded."))
    item.checked_at, item.checked_by_id, item.outcome, item.comment = now, actor.id, outcome, comment
    after = {"receipt_id": item.receipt_id, "draw_id": item.draw_id, "outcome": outcome, "comment": comment}
    if outcome == SampleOutcome.ISSUE and receipt.status == ReceiptStatus.APPROVED:
        try:
            receipt_decisions.reopen_for_correction(db, actor, receipt, comment, sample_item_id=item.id)
        except errors.ReceiptError as exc:
            db.rollback()
            raise ReviewError(str(exc)) from exc
        after["reopened"] = True
    audit.record(db, actor, "review.sample_checked", item, {"checked_at": None}, after)
    db.commit()


@dataclass
class DrawRow:
    draw: SampleDraw
    drawn_by: str
    checked: int
    issues: int


def draws(db: Session, limit: int = 50) -> list[DrawRow]:
    """The latest sample draws with how far their checks have got, in one statement."""
    checked = func.count(SampleItem.checked_at)
    issues = func.count(SampleItem.id).filter(SampleItem.outcome == SampleOutcome.ISSUE)
    rows = db.exec(select(SampleDraw, User.name, checked, issues)
                   .outerjoin(User, User.id == SampleDraw.drawn_by_id)
                   .outerjoin(SampleItem, SampleItem.draw_id == SampleDraw.id)
                   .group_by(SampleDraw.id, User.name)
                   .order_by(SampleDraw.created_at.desc(), SampleDraw.id.desc()).limit(limit))
    return [DrawRow(d, name or "", int(c), int(i)) for d, name, c, i in rows]


@dataclass
class DrawItemRow:
    item: SampleItem
    receipt: Receipt
    case: Case
    checked_by: str  # the checker's name, or their e-mail address when they gave no name


@dataclass
class DrawReport:
    """The sample report of one draw: what was drawn, checked and found, item by item."""

    draw: SampleDraw
    drawn_by: str
    rows: list[DrawItemRow]

    @property
    def checked(self) -> int:
        return sum(row.item.checked_at is not None for row in self.rows)

    @property
    def issues(self) -> int:
        return sum(row.item.outcome == SampleOutcome.ISSUE for row in self.rows)

    @property
    def waiting(self) -> int:
        return len(self.rows) - self.checked


def draw_items(db: Session, draw: SampleDraw) -> list[DrawItemRow]:
    rows = db.exec(select(SampleItem, Receipt, Case, User.name, User.email)
                   .join(Receipt, Receipt.id == SampleItem.receipt_id).join(Case, Case.id == Receipt.case_id)
                   .outerjoin(User, User.id == SampleItem.checked_by_id)
                   .where(SampleItem.draw_id == draw.id).order_by(Receipt.id))
    return [DrawItemRow(i, r, c, name or email or "") for i, r, c, name, email in rows]


def draw_report(db: Session, draw: SampleDraw) -> DrawReport:
    drawn_by = db.get(User, draw.drawn_by_id) if draw.drawn_by_id else None
    return DrawReport(draw, (drawn_by.name or drawn_by.email) if drawn_by else "", draw_items(db, draw))
