"""Locale selection and locale-aware formatting helpers for templates and services."""

from __future__ import annotations

import re
from decimal import Decimal
from functools import lru_cache

from babel import Locale, numbers
from flask import current_app, has_request_context, request, session
from flask_babel import format_currency, get_locale
from flask_login import current_user
from markupsafe import Markup

from portal.config import RTL_LANGUAGES

LANGUAGE_NAMES = {"en": "English", "de": "Deutsch", "fr": "Français", "ar": "العربية", "ru": "Русский"}

# Babel territory codes that are not countries someone returns to.
_NOT_COUNTRIES = {"EU", "EZ", "UN", "QO", "ZZ", "XA", "XB", "XK"}


def select_locale() -> str:
    """The signed-in user's choice, else the switcher's choice, else the browser's languages."""
    languages = current_app.config["LANGUAGES"]
    if not has_request_context():
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    if current_user and current_user.is_authenticated and current_user.locale in languages:
        return current_user.locale
    if session.get("lang") in languages:
        return session["lang"]
    return request.accept_languages.best_match(languages) or current_app.config["BABEL_DEFAULT_LOCALE"]


def text_direction() -> str:
    return "rtl" if str(get_locale()) in RTL_LANGUAGES else "ltr"


# CLDR's currency spacing, which Babel does not apply: a currency sign that ends (or starts) with a
# letter, such as "GEL" or "F CFA", gets a no-break space next to the digits ("GEL 3,190.00", not
# "GEL3,190.00"); signs such as € and $ stay attached ("€3,190.00").
_LETTER_THEN_DIGIT = re.compile(r"(?<=[^\W\d_])(?=[-\u2212]?\d)|(?<=\d)(?=[^\W\d_])")


def amount(value: Decimal, currency: str) -> str:
    """An amount in `currency`, in the current locale, with the currency spacing above."""
    return _LETTER_THEN_DIGIT.sub("\u00a0", format_currency(value, currency))


@lru_cache(maxsize=16)
def _number_formats(locale: str):
    """The locale and its parsed currency and percent patterns: built once per locale, not per call."""
    loc = Locale.parse(locale)
    return loc, numbers.parse_pattern(loc.currency_formats["standard"]), loc.percent_formats[None].pattern


@lru_cache(maxsize=64)
def _percent_pattern(pattern: str, digits: int):
    parsed = numbers.parse_pattern(pattern)
    parsed.frac_prec = (digits, digits)
    return parsed


@lru_cache(maxsize=8192)
def _money(locale: str, cents: int, currency: str) -> str:
    loc, pattern, _percent = _number_formats(locale)
    return _LETTER_THEN_DIGIT.sub("\u00a0", pattern.apply(Decimal(cents) / 100, loc, currency=currency,
                                                           currency_digits=True))


def money(cents: int | None, currency: str = "EUR") -> str:
    """EUR cents (or cents of another currency) as the user's locale writes money; recent results are kept
    per locale, since a page shows the same amounts many times (budget lines, totals, receipts)."""
    if cents is None:
        return "–"
    return _money(str(get_locale()), int(cents), currency)


def percent(share: float | None, digits: int = 1) -> str:
    """A share (0.024) as the locale writes a percentage: "2.4%", German "2,4 %", French "2,4 %"."""
    if share is None:
        return "–"
    loc, _currency, pattern = _number_formats(str(get_locale()))
    return _percent_pattern(pattern, digits).apply(share, loc)


def bdi(text: object) -> Markup:
    """`text` isolated from the surrounding direction: a reference such as "IP-2026-0003", an amount, a
    date or a name in Latin letters inside Arabic text keeps its own order and stays in one piece."""
    return Markup("<bdi>%s</bdi>") % text


def parse_cents(value: Decimal) -> int:
    return int((value * 100).to_integral_value())


@lru_cache(maxsize=8)
def _countries(locale: str) -> tuple[tuple[str, str], ...]:
    names = Locale.parse(locale).territories
    pairs = [(code, name) for code, name in names.items()
             if len(code) == 2 and code.isalpha() and code not in _NOT_COUNTRIES]
    return tuple(sorted(pairs, key=lambda p: p[1]))


def countries() -> tuple[tuple[str, str], ...]:
    """(ISO code, name in the current language), sorted by name."""
    return _countries(str(get_locale()))


@lru_cache(maxsize=16)
def _territories(locale: str) -> dict[str, str]:
    return dict(Locale.parse(locale).territories)


def country_name(code: str | None) -> str:
    if not code:
        return ""
    return _territories(str(get_locale())).get(code, code)


def is_country(code: str) -> bool:
    return code in dict(_countries("en"))
