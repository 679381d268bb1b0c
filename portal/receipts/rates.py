"""Exchange rates: one per currency and month (InforEuro); the EUR amount of each receipt comes from the
rate of its invoice month."""

from __future__ import annotations

import csv
import io
import logging
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

from babel.numbers import is_currency
from flask_babel import gettext as _
from sqlmodel import Session, func, select

from portal import audit
from portal.audit import utcnow
from portal.auth.models import User
from portal.receipts.budget import over_budget
from portal.receipts.errors import ReceiptError
from portal.receipts.models import (
    EDITABLE,
    RATE_SCALE,
    ExchangeRate,
    Receipt,
)
from portal.receipts.money import first_of_month, rate_to_micro, to_eur_cents

log = logging.getLogger(__name__)


def rate_for(db: Session, currency: str, day: date) -> ExchangeRate | None:
    return db.exec(select(ExchangeRate).where(ExchangeRate.currency == currency,
                                              ExchangeRate.month == first_of_month(day))).first()


def apply_rate(db: Session, receipt: Receipt) -> None:
    """Set the EUR amount from the rate of the invoice month; no rate → flagged, not refused."""
    month = first_of_month(receipt.invoice_date)
    if receipt.currency == "EUR":
        receipt.eur_cents = to_eur_cents(receipt.amount_minor, "EUR", RATE_SCALE)
        receipt.rate_micro, receipt.rate_month, receipt.rate_source = RATE_SCALE, month, "EUR"
        receipt.rate_missing = False
        return
    rate = rate_for(db, receipt.currency, receipt.invoice_date)
    if rate is None:
        receipt.eur_cents = receipt.rate_micro = receipt.rate_month = receipt.rate_source = None
        receipt.rate_missing = True
        return
    receipt.eur_cents = to_eur_cents(receipt.amount_minor, receipt.currency, rate.units_per_eur_micro)
    receipt.rate_micro, receipt.rate_month, receipt.rate_source = rate.units_per_eur_micro, rate.month, rate.source
    receipt.rate_missing = False


RATES_PER_PAGE = 50


def list_rates(db: Session, currency: str = "", page: int = 1,
               per_page: int | None = None) -> tuple[list[ExchangeRate], int, int]:
    """One page of the rates, newest month first: (rates, page, pages), two statements."""
    per_page = per_page or RATES_PER_PAGE
    conditions = [ExchangeRate.currency == currency] if currency else []
    total = db.exec(select(func.count()).select_from(ExchangeRate).where(*conditions)).one()
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    query = (select(ExchangeRate).where(*conditions).order_by(ExchangeRate.month.desc(), ExchangeRate.currency)
             .offset((page - 1) * per_page).limit(per_page))
    return list(db.exec(query)), page, pages


def _upsert_rate(db: Session, actor: User, currency: str, month: date, micro: int, source: str) -> ExchangeRate:
    currency = currency.upper()
    if currency == "EUR" or not is_currency(currency):
        raise ReceiptError(_("Choose a currency other than the euro."), "currency")
    month = first_of_month(month)
    rate = db.exec(select(ExchangeRate).where(ExchangeRate.currency == currency,
                                              ExchangeRate.month == month)).first()
    before = audit.snapshot(rate, ("currency", "month", "units_per_eur_micro", "source")) if rate else None
    rate = rate or ExchangeRate(currency=currency, month=month, units_per_eur_micro=micro)
    rate.units_per_eur_micro, rate.source = micro, (source or "").strip()[:100] or "InforEuro"
    rate.updated_by_id, rate.updated_at = actor.id, utcnow()
    db.add(rate)
    db.flush()
    audit.record(db, actor, "exchange_rate.saved", rate, before,
                 audit.snapshot(rate, ("currency", "month", "units_per_eur_micro", "source")))
    _reconvert(db, actor, currency, month)
    return rate


def _reconvert(db: Session, actor: User, currency: str, month: date) -> None:
    """Receipts of that currency and month that are not decided yet take the new rate."""
    next_month = (month + timedelta(days=32)).replace(day=1)
    for receipt in db.exec(select(Receipt).where(Receipt.currency == currency, Receipt.invoice_date >= month,
                                                 Receipt.invoice_date < next_month,
                                                 Receipt.status.in_(EDITABLE))):
        before = audit.snapshot(receipt, ("eur_cents", "rate_micro", "rate_month", "rate_source", "rate_missing"))
        apply_rate(db, receipt)
        receipt.over_budget = over_budget(db, receipt)
        db.add(receipt)
        audit.record(db, actor, "receipt.reconverted", receipt, before,
                     audit.snapshot(receipt, ("eur_cents", "rate_micro", "rate_month", "rate_source",
                                              "rate_missing")))


def save_rate(db: Session, actor: User, currency: str, month: date, rate: Decimal, source: str) -> ExchangeRate:
    """Add or replace the rate of one currency for one month (and reconvert undecided receipts)."""
    saved = _upsert_rate(db, actor, currency, month, rate_to_micro(rate), source)
    db.commit()
    return saved


def _parse_month(text: str) -> date:
    text = text.strip()
    if len(text) == 7:
        text += "-01"
    return first_of_month(date.fromisoformat(text))


def import_rates_csv(db: Session, actor: User, text: str) -> int:
    """Rows `currency,month,units_per_eur[,source]` (month as 2024-03); all rows or none."""
    reader = csv.reader(io.StringIO(text))
    count = 0
    for number, row in enumerate(reader, start=1):
        cells = [c.strip() for c in row]
        if not any(cells) or (number == 1 and cells[0].lower() in ("currency", "code", "iso")):
            continue
        try:
            currency, month, value = cells[0], _parse_month(cells[1]), Decimal(cells[2].replace(",", "."))
            source = cells[3] if len(cells) > 3 else "InforEuro"
            _upsert_rate(db, actor, currency, month, rate_to_micro(value), source)
        except (IndexError, ValueError, InvalidOperation) as exc:
            db.rollback()
            reason = str(exc) if isinstance(exc, ReceiptError) else _("expected currency, month, rate")
            raise ReceiptError(_("Line %(line)d: %(reason)s", line=number, reason=reason), "file") from None
        count += 1
    if count == 0:
        raise ReceiptError(_("The file has no rates."), "file")
    db.commit()
    return count
