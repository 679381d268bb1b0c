"""Locale selection and locale-aware formatting helpers for templates and services."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from babel import Locale
from flask import current_app, has_request_context, request, session
from flask_babel import format_currency, get_locale
from flask_login import current_user

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


def money(cents: int | None, currency: str = "EUR") -> str:
    if cents is None:
        return "–"
    return format_currency(Decimal(cents) / 100, currency)


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


def country_name(code: str | None) -> str:
    if not code:
        return ""
    return Locale.parse(str(get_locale())).territories.get(code, code)


def is_country(code: str) -> bool:
    return code in dict(_countries("en"))
