"""Receipts for in-kind goods: upload with files, EUR conversion, staff review, sweep of unconfirmed uploads."""

from __future__ import annotations

from functools import lru_cache

from portal.i18n import amount, locale_name


def init_app(app) -> None:
    """The receipts CLI group and the template helpers receipts need (the case budget uses one too)."""
    from portal.receipts.cli import receipts_group

    app.cli.add_command(receipts_group)
    app.jinja_env.globals.update(receipt_budget=_receipt_budget, minor_money=_minor_money, rate_text=_rate_text)
    # The same as a filter, for rows in loops (`{{ r.amount_minor|minor_money(r.currency) }}`): a plain call.
    app.jinja_env.filters["minor_money"] = _minor_money


def _receipt_budget(case):
    # A template global, not view context: the budget fragment is rendered by several case views.
    from portal import db
    from portal.receipts.budget import budget_figures

    return budget_figures(db.session(), case)


def _minor_money(amount_minor: int | None, currency: str) -> str:
    """An amount in minor units of its currency (JPY has none, KWD three), in the user's locale; recent
    results are kept per locale, as portal.i18n keeps money() (a page shows the same amounts many times)."""
    if amount_minor is None:
        return "–"
    return _minor_money_text(locale_name(), int(amount_minor), currency)


@lru_cache(maxsize=8192)
def _minor_money_text(_locale: str, amount_minor: int, currency: str) -> str:
    from portal.receipts.money import from_minor

    return amount(from_minor(amount_minor, currency), currency)


def _rate_text(micro: int | None) -> str:
    from decimal import Decimal

    from flask_babel import format_decimal

    from portal.receipts.models import RATE_SCALE

    if micro is None:
        return "–"
    return format_decimal(Decimal(micro) / RATE_SCALE, format="#,##0.######")
