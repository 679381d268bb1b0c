"""The review desk: one queue across every organisation, its counts, and the random sample audit.

Decisions on receipts go through portal.receipts.services.decide() and acknowledgements of visits
through portal.visits.services.acknowledge(): the rules live there, this module only finds the work.

The queue is built from a fixed number of statements whatever its length: one for receipts (waiting for
a decision, corrected, waiting for a second approval, drawn for a sample check), one for flagged visits,
each with the filters applied in SQL; they are merged, sorted and paged here.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import BigInteger, and_, cast, exists, literal, union, union_all
from sqlalchemy.orm import aliased
from sqlmodel import Session, func, select

from portal import audit
from portal.audit import utcnow
from portal.auth.models import User
from portal.cases.models import Case
from portal.orgs.models import Organisation
from portal.receipts.models import Receipt, ReceiptEvent, ReceiptStatus
from portal.review.models import SampleDraw, SampleItem, SampleOutcome
from portal.visits.models import Visit
from portal.visits.services import _flagged_condition

PER_PAGE = 25
MAX_PAGE = 400  # 10,000 items: a queue longer than this is a problem no page can show anyway

# Item types, in the order the counts are shown.
NEW, CORRECTED, SECOND, SAMPLE, VISIT, REGISTRATION = "receipt", "corrected", "second", "sample", "visit", \
    "registration"
TYPES = (NEW, CORRECTED, SECOND, SAMPLE, VISIT, REGISTRATION)
# Statuses an item can have in the queue.
STATUSES = ("submitted", "approved", "flagged")
WARNINGS = ("duplicate", "over_budget", "outside_period", "rate_missing", "new_supplier")
SORTS = ("oldest", "newest", "amount_desc", "amount_asc", "case", "organisation")
AGES = (1, 3, 7, 14, 30)


class ReviewError(ValueError):
    """A rule of the review desk was broken; `field` names the form field the message belongs to."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


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
    page: int = 1

    @property
    def amount_filtered(self) -> bool:
        return self.min_eur_cents is not None or self.max_eur_cents is not None


# Queue items ------------------------------------------------------------------------------------

@dataclass
class QueueItem:
    type: str
    since: datetime
    case: Case
    organisation: str
    receipt: Receipt | None = None
    visit: Visit | None = None
    sample: SampleItem | None = None
    first_approver_id: int | None = None
    new_supplier: bool = False
    # For workshop registrations: what the item shows and links to.
    extra: dict = field(default_factory=dict)

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
        found = [name for name, on in (("duplicate", r.duplicate_suspected), ("over_budget", r.over_budget),
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
    total: int
    page: int
    pages: int


def _naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None)


def _first_approver():
    """The first approver of the receipt's current revision (None when nobody approved it yet)."""
    return (select(func.min(ReceiptEvent.actor_id))
            .where(ReceiptEvent.receipt_id == Receipt.id, ReceiptEvent.revision == Receipt.revision,
                   ReceiptEvent.kind == "first_approval")
            .correlate(Receipt).scalar_subquery())


def _new_supplier():
    """No earlier receipt (other than an abandoned upload) names the same supplier."""
    earlier = aliased(Receipt)
    return ~exists().where(func.lower(func.trim(earlier.supplier)) == func.lower(func.trim(Receipt.supplier)),
                           earlier.id < Receipt.id, earlier.status != ReceiptStatus.PENDING).correlate(Receipt)


def _common_conditions(f: QueueFilter) -> list:
    conditions = []
    if f.country:
        conditions.append(Case.country == f.country[:2].upper())
    if f.organisation_id:
        conditions.append(Case.organisation_id == f.organisation_id)
    if f.case:
        conditions.append(Case.reference.ilike(f"%{f.case.strip()[:20]}%"))
    return conditions


def _cutoff(f: QueueFilter, now: datetime) -> datetime | None:
    return now - timedelta(days=f.min_age_days) if f.min_age_days else None


def _order(sort: str, since, row_id, case_ref, org_name, eur=None) -> list:
    """ORDER BY for one source, the same order as _sort_key gives in Python: each source sends only the
    rows up to the page asked for, and the merge of those is exact."""
    if sort == "newest":
        return [since.desc(), row_id.desc()]
    if sort in ("amount_desc", "amount_asc") and eur is not None:
        return [eur.is_(None), eur.desc() if sort == "amount_desc" else eur.asc(), since, row_id]
    if sort == "case" and case_ref is not None:
        return [case_ref, since, row_id]
    if sort == "organisation":
        return [func.lower(org_name), since, row_id]
    return [since, row_id]


def _total(rows: list) -> int:
    """The filtered count the window function put on every row (0 when no row came)."""
    return int(rows[0][-1]) if rows else 0


def _receipt_items(db: Session, f: QueueFilter, now: datetime, limit: int) -> tuple[list[QueueItem], int]:
    wants_receipts = f.type in ("", NEW, CORRECTED, SECOND, SAMPLE) and f.status in ("", "submitted", "approved")
    if not wants_receipts:
        return [], 0
    first = _first_approver()
    new_supplier = _new_supplier()
    open_sample = and_(SampleItem.receipt_id == Receipt.id, SampleItem.checked_at.is_(None))
    waiting = Receipt.status == ReceiptStatus.SUBMITTED
    sampled = SampleItem.id.is_not(None)
    conditions = _common_conditions(f)
    # Waiting or drawn for the sample, as a list of ids: an OR across the sample join would make the database
    # read every receipt ever made; these two lists come from indexes and stay as short as the queue.
    in_queue = Receipt.id.in_(union(select(Receipt.id).where(waiting),
                                    select(SampleItem.receipt_id).where(SampleItem.checked_at.is_(None))))
    type_condition = {
        "": in_queue,
        NEW: and_(waiting, Receipt.revision == 1, first.is_(None)),
        CORRECTED: and_(waiting, Receipt.revision > 1, first.is_(None)),
        SECOND: and_(waiting, first.is_not(None)),
        SAMPLE: sampled,
    }[f.type]
    conditions.append(type_condition)
    if f.status == "submitted":
        conditions.append(waiting)
    elif f.status == "approved":
        conditions.append(sampled)
    warning_condition = {
        "duplicate": Receipt.duplicate_suspected.is_(True), "over_budget": Receipt.over_budget.is_(True),
        "outside_period": Receipt.outside_period.is_(True), "rate_missing": Receipt.rate_missing.is_(True),
        "new_supplier": new_supplier,
    }.get(f.warning)
    if warning_condition is not None:
        conditions.append(warning_condition)
    if f.min_eur_cents is not None:
        conditions.append(Receipt.eur_cents >= f.min_eur_cents)
    if f.max_eur_cents is not None:
        conditions.append(Receipt.eur_cents <= f.max_eur_cents)
    since = func.coalesce(SampleDraw.created_at, Receipt.updated_at)
    cutoff = _cutoff(f, now)
    if cutoff is not None:
        conditions.append(since <= cutoff)
    query = (select(Receipt, Case, Organisation.name, SampleItem, SampleDraw.created_at, first.label("first"),
                    new_supplier.label("new_supplier"), func.count().over().label("total"))
             .join(Case, Case.id == Receipt.case_id)
             .join(Organisation, Organisation.id == Case.organisation_id)
             .outerjoin(SampleItem, open_sample)
             .outerjoin(SampleDraw, SampleDraw.id == SampleItem.draw_id)
             .where(*conditions)
             .order_by(*_order(f.sort, since, Receipt.id, Case.reference, Organisation.name, Receipt.eur_cents))
             .limit(limit))
    rows = db.exec(query).all()
    items = []
    for receipt, case, org, sample, drawn_at, first_id, is_new, _total_rows in rows:
        if sample is not None:
            kind, since_at = SAMPLE, drawn_at
        elif first_id is not None:
            kind, since_at = SECOND, receipt.updated_at
        else:
            kind, since_at = (CORRECTED if receipt.revision > 1 else NEW), receipt.updated_at
        items.append(QueueItem(kind, since_at, case, org, receipt=receipt, sample=sample,
                               first_approver_id=first_id, new_supplier=bool(is_new)))
    return items, _total(rows)


def _visit_items(db: Session, f: QueueFilter, now: datetime, limit: int) -> tuple[list[QueueItem], int]:
    if f.type not in ("", VISIT) or f.status not in ("", "flagged") or f.warning or f.amount_filtered:
        return [], 0
    conditions = [_flagged_condition(), Visit.acknowledged_at.is_(None), *_common_conditions(f)]
    cutoff = _cutoff(f, now)
    if cutoff is not None:
        conditions.append(Visit.created_at <= cutoff)
    query = (select(Visit, Case, Organisation.name, func.count().over()).join(Case, Case.id == Visit.case_id)
             .join(Organisation, Organisation.id == Case.organisation_id)
             .where(*conditions)
             .order_by(*_order(f.sort, Visit.created_at, Visit.id, Case.reference, Organisation.name))
             .limit(limit))
    rows = db.exec(query).all()
    return [QueueItem(VISIT, v.created_at, c, o, visit=v) for v, c, o, _n in rows], _total(rows)


def workshop_models():
    """The workshop's tables, if the workshop package is installed (the desk works without it)."""
    try:
        from portal.workshop.models import Registration, RegStatus, Workshop
    except ImportError:
        return None
    return Registration, RegStatus, Workshop


def _registration_items(db: Session, f: QueueFilter, now: datetime, waiting: int,
                        limit: int) -> tuple[list[QueueItem], int]:
    """Workshop registrations awaiting a staff decision (moderated workshops). The decision itself is taken on
    the registration's page (portal.workshop), which the item links to."""
    models = workshop_models()
    if models is None or not waiting or f.type not in ("", REGISTRATION) or f.status or f.warning \
            or f.amount_filtered or f.organisation_id or f.case:
        return [], 0
    Registration, RegStatus, Workshop = models  # noqa: N806 - classes
    conditions = [Registration.status == RegStatus.PENDING]
    if f.country:
        conditions.append(Registration.country == f.country[:2].upper())
    cutoff = _cutoff(f, now)
    if cutoff is not None:
        conditions.append(Registration.created_at <= cutoff)
    rows = db.exec(select(Registration, Workshop.title, func.count().over())
                   .join(Workshop, Workshop.id == Registration.workshop_id).where(*conditions)
                   .order_by(*_order(f.sort, Registration.created_at, Registration.id, None,
                                     Registration.organisation))
                   .limit(limit)).all()
    return [QueueItem(REGISTRATION, reg.created_at, None, reg.organisation,  # type: ignore[arg-type]
                      extra={"id": reg.id, "workshop_id": reg.workshop_id, "workshop": title, "name": reg.name,
                             "country": reg.country, "role": reg.role})
            for reg, title, _n in rows], _total(rows)


def _sort_key(sort: str):
    if sort == "newest":
        return lambda i: -_naive(i.since).timestamp()
    if sort in ("amount_desc", "amount_asc"):
        sign = -1 if sort == "amount_desc" else 1
        return lambda i: (i.eur_cents is None, sign * (i.eur_cents or 0), _naive(i.since))
    if sort == "case":
        return lambda i: (i.case.reference if i.case else "", _naive(i.since))
    if sort == "organisation":
        return lambda i: (i.organisation.casefold(), _naive(i.since))
    return lambda i: _naive(i.since)


def queue(db: Session, f: QueueFilter, now: datetime | None = None, registrations_waiting: int = 1) -> QueuePage:
    """One page of everything waiting for staff, filtered and sorted as asked.

    `registrations_waiting` (from counts()) saves the registrations' statement when none wait.
    Each source sorts and cuts in SQL and sends at most the rows up to the page asked for, with its
    filtered count: the cost follows the page, not the length of the queue.
    """
    now = now or utcnow()
    f = replace(f, sort=f.sort if f.sort in SORTS else "oldest")
    limit = min(max(1, f.page), MAX_PAGE) * PER_PAGE
    sources = (_receipt_items(db, f, now, limit), _visit_items(db, f, now, limit),
               _registration_items(db, f, now, registrations_waiting, limit))
    items = [item for found, _n in sources for item in found]
    items.sort(key=_sort_key(f.sort))
    total = sum(n for _found, n in sources)
    pages = max(1, min(math.ceil(total / PER_PAGE), MAX_PAGE))
    page = min(max(1, f.page), pages)
    return QueuePage(items[(page - 1) * PER_PAGE: page * PER_PAGE], total, page, pages)


def _count_subqueries() -> list[tuple[str, object]]:
    """(type, a scalar subquery counting what of that type waits), for every type the portal has."""
    has_first = exists().where(ReceiptEvent.receipt_id == Receipt.id, ReceiptEvent.revision == Receipt.revision,
                               ReceiptEvent.kind == "first_approval").correlate(Receipt)
    waiting = Receipt.status == ReceiptStatus.SUBMITTED

    def count(model, *conditions):
        return select(func.count()).select_from(model).where(*conditions).scalar_subquery()

    found = [(NEW, count(Receipt, waiting, Receipt.revision == 1, ~has_first)),
             (CORRECTED, count(Receipt, waiting, Receipt.revision > 1, ~has_first)),
             (SECOND, count(Receipt, waiting, has_first)),
             (SAMPLE, count(SampleItem, SampleItem.checked_at.is_(None))),
             (VISIT, count(Visit, _flagged_condition(), Visit.acknowledged_at.is_(None)))]
    models = workshop_models()
    if models is not None:
        Registration, RegStatus, _w = models  # noqa: N806 - classes
        found.append((REGISTRATION, count(Registration, Registration.status == RegStatus.PENDING)))
    return found


def counts(db: Session) -> dict[str, int]:
    """How many items of each type wait, across every organisation, in one statement."""
    found = _count_subqueries()
    row = db.exec(select(*(sub.label(name) for name, sub in found))).one()
    return {name: int(value or 0) for (name, _sub), value in zip(found, row, strict=True)}


def desk_summary(db: Session) -> tuple[dict[str, int], list[tuple[int, str]], list[str]]:
    """The counts per type and the filter form's options (organisations, return countries of cases), in one
    statement: the desk page needs both, and the navigation's count comes from the same figures."""
    parts = [select(literal("count").label("kind"), literal(name).label("key"),
                    cast(sub, BigInteger).label("number"), literal("").label("label"))
             for name, sub in _count_subqueries()]
    parts.append(select(literal("org"), literal(""), cast(Organisation.id, BigInteger), Organisation.name))
    parts.append(select(literal("country"), Case.country, cast(literal(None), BigInteger), literal("")).distinct())
    rows = db.exec(union_all(*parts)).all()
    found = {key: int(number or 0) for kind, key, number, _label in rows if kind == "count"}
    counts_ = {name: found.get(name, 0) for name, _sub in _count_subqueries()}
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


def check_sample(db: Session, actor: User, item: SampleItem, outcome: str, comment: str) -> None:
    """Record the second check of a drawn receipt."""
    comment = (comment or "").strip()
    if item.checked_at is not None:
        raise ReviewError(_("This sample check was already recorded."))
    if outcome not in (SampleOutcome.OK, SampleOutcome.ISSUE):
        raise ReviewError(_("Choose the outcome of the check."), "outcome")
    if outcome == SampleOutcome.ISSUE and not comment:
        raise ReviewError(_("Describe the problem you found."), "comment")
    item.checked_at = utcnow()
    item.checked_by_id = actor.id
    item.outcome = outcome
    item.comment = comment
    db.add(item)
    audit.record(db, actor, "review.sample_checked", item, {"checked_at": None},
                 {"receipt_id": item.receipt_id, "draw_id": item.draw_id, "outcome": outcome, "comment": comment})
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
    checked_by: str


def draw_items(db: Session, draw: SampleDraw) -> list[DrawItemRow]:
    rows = db.exec(select(SampleItem, Receipt, Case, User.name)
                   .join(Receipt, Receipt.id == SampleItem.receipt_id).join(Case, Case.id == Receipt.case_id)
                   .outerjoin(User, User.id == SampleItem.checked_by_id)
                   .where(SampleItem.draw_id == draw.id).order_by(Receipt.id))
    return [DrawItemRow(i, r, c, name or "") for i, r, c, name in rows]
