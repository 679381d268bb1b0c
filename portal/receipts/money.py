"""Money: amounts in minor units of their currency and their conversion to euro cents, in integers."""

from __future__ import annotations

import logging
from datetime import date
from decimal import Decimal

from babel.numbers import get_currency_precision
from flask_babel import gettext as _

from portal.receipts.errors import ReceiptError
from portal.receipts.models import (
    RATE_SCALE,
)

log = logging.getLogger(__name__)


def currency_precision(currency: str) -> int:
    return int(get_currency_precision(currency))


def to_minor(amount: Decimal, currency: str) -> int:
    """Whole minor units; ReceiptError if the amount has more decimals than the currency."""
    places = currency_precision(currency)
    scaled = amount * (10 ** places)
    if scaled != scaled.to_integral_value():
        raise ReceiptError(_("Enter the amount with at most %(places)d decimal places for %(currency)s.",
                             places=places, currency=currency), "amount")
    return int(scaled)


def from_minor(amount_minor: int, currency: str) -> Decimal:
    return Decimal(amount_minor) / (10 ** currency_precision(currency))


def to_eur_cents(amount_minor: int, currency: str, units_per_eur_micro: int) -> int:
    """Convert with integer arithmetic, rounding half up to the cent."""
    numerator = amount_minor * 100 * RATE_SCALE
    denominator = (10 ** currency_precision(currency)) * units_per_eur_micro
    quotient, remainder = divmod(numerator, denominator)
    return quotient + (1 if 2 * remainder >= denominator else 0)


def rate_to_micro(value: Decimal) -> int:
    micro = value * RATE_SCALE
    if value <= 0 or micro != micro.to_integral_value():
        raise ReceiptError(_("Enter a rate above 0 with at most 6 decimal places."), "rate")
    return int(micro)


def first_of_month(d: date) -> date:
    return d.replace(day=1)
