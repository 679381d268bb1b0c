"""Locale selection and locale-aware formatting helpers for templates and services."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from functools import lru_cache

from babel import Locale, numbers
from flask import current_app, has_request_context, request, session
from flask.globals import _cv_app
from flask_babel import Domain, format_currency, get_locale, get_translations
from flask_babel import format_date as flask_format_date
from flask_login import current_user
from jinja2 import pass_eval_context
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


# The current locale and its translations, kept for the request --------------------------------------
# Flask-Babel finds the request's locale and translations anew on every call (several context-local
# lookups and str(Locale) each time); a page calls them hundreds of times. Both are kept on Flask-Babel's own
# per-request namespace, next to the locale they belong to: force_locale() and refresh() replace or drop
# that locale object, so a kept value is used only while the very same locale object is current.

def _babel_namespace():
    app_ctx = _cv_app.get(None)
    if app_ctx is None:
        return None
    return app_ctx.g.__dict__.get("_flask_babel")


def locale_name() -> str:
    """str(get_locale()) ("de"), without working it out again while the request's locale stays the same."""
    ns = _babel_namespace()
    if ns is not None:
        d = ns.__dict__
        kept = d.get("portal_locale_name")
        if kept is not None and kept[0] is d.get("babel_locale"):
            return kept[1]
    locale = get_locale()
    name = str(locale)
    ns = _babel_namespace()
    if ns is not None and locale is not None:
        ns.portal_locale_name = (locale, name)
    return name


def translations():
    """flask_babel.get_translations(), kept the same way (for the same locale and domain)."""
    ns = _babel_namespace()
    if ns is not None:
        d = ns.__dict__
        kept = d.get("portal_translations")
        if kept is not None and kept[0] is d.get("babel_locale") and kept[1] is d.get("babel_domain"):
            return kept[2]
    found = get_translations()
    ns = _babel_namespace()
    if ns is not None and ns.__dict__.get("babel_locale") is not None:
        ns.portal_translations = (ns.babel_locale, ns.__dict__.get("babel_domain"), found)
    return found


class KeptDomain(Domain):
    """Flask-Babel's message domain with the request's translations kept as translations() keeps them, so
    gettext() and lazy strings in Python (form labels, flash messages) find them at once too."""

    def get_translations(self):
        ns = _babel_namespace()
        if ns is not None:
            d = ns.__dict__
            kept = d.get("portal_translations")
            if kept is not None and kept[0] is d.get("babel_locale") and kept[1] is self:
                return kept[2]
        found = super().get_translations()
        ns = _babel_namespace()
        if ns is not None and ns.__dict__.get("babel_locale") is not None:
            ns.portal_translations = (ns.babel_locale, self, found)
        return found


# Jinja's gettext functions as jinja2.ext.i18n installs them (newstyle: autoescaped, always %-formatted),
# calling the kept translations directly instead of through three layers of context calls per string. They
# take the evaluation context (for autoescaping), not the whole context as jinja2.ext.i18n's do: Jinja
# copies the whole context (every global) for each call of a context function inside a loop or after a
# {% set %}, hundreds of copies on a page like the review desk.

@pass_eval_context
def _jinja_gettext(__eval_ctx, __string, **variables):
    rv = translations().ugettext(__string)
    if __eval_ctx.autoescape:
        rv = Markup(rv)  # noqa: S704 - the catalog's own text, as jinja2.ext.i18n marks it
    return rv % variables


@pass_eval_context
def _jinja_ngettext(__eval_ctx, __singular, __plural, __num, **variables):
    variables.setdefault("num", __num)
    rv = translations().ungettext(__singular, __plural, __num)
    if __eval_ctx.autoescape:
        rv = Markup(rv)  # noqa: S704 - the catalog's own text, as jinja2.ext.i18n marks it
    return rv % variables


@pass_eval_context
def _jinja_pgettext(__eval_ctx, __string_ctx, __string, **variables):
    variables.setdefault("context", __string_ctx)
    rv = translations().upgettext(__string_ctx, __string)
    if __eval_ctx.autoescape:
        rv = Markup(rv)  # noqa: S704 - the catalog's own text, as jinja2.ext.i18n marks it
    return rv % variables


@pass_eval_context
def _jinja_npgettext(__eval_ctx, __string_ctx, __singular, __plural, __num, **variables):
    variables.setdefault("context", __string_ctx)
    variables.setdefault("num", __num)
    rv = translations().unpgettext(__string_ctx, __singular, __plural, __num)
    if __eval_ctx.autoescape:
        rv = Markup(rv)  # noqa: S704 - the catalog's own text, as jinja2.ext.i18n marks it
    return rv % variables


def install_jinja(app) -> None:
    """After babel.init_app: the templates' _(), gettext(), ngettext(), pgettext() and npgettext(), and
    the default domain as a KeptDomain."""
    from portal.extensions import babel

    if not isinstance(babel.__dict__.get("domain_instance"), KeptDomain):  # one Babel for every app
        babel.domain_instance = KeptDomain(domain="messages")
    app.jinja_env.globals.update(_=_jinja_gettext, gettext=_jinja_gettext, ngettext=_jinja_ngettext,
                                 pgettext=_jinja_pgettext, npgettext=_jinja_npgettext)


def text_direction() -> str:
    return "rtl" if locale_name() in RTL_LANGUAGES else "ltr"


# CLDR's currency spacing, which Babel does not apply: a currency sign that ends (or starts) with a
# letter, such as "GEL" or "F CFA", gets a no-break space next to the digits ("GEL 3,190.00", not
# "GEL3,190.00"); signs such as € and $ stay attached ("€3,190.00").
_LETTER_THEN_DIGIT = re.compile(r"(?<=[^\W\d_])(?=[-\u2212]?\d)|(?<=\d)(?=[^\W\d_])")


def amount(value: Decimal, currency: str) -> str:
    """An amount in `currency`, in the current locale, with the currency spacing above (kept per locale,
    like money())."""
    return _amount(locale_name(), value, currency)


@lru_cache(maxsize=4096)
def _amount(_locale: str, value: Decimal, currency: str) -> str:
    return _LETTER_THEN_DIGIT.sub("\u00a0", format_currency(value, currency))


def format_date(value=None, format=None, rebase=True) -> str:  # noqa: A002 - Flask-Babel's names
    """flask_babel.format_date; a plain date in the default format is written once per locale and kept
    (a page shows the same invoice and visit dates many times). Datetimes go through Flask-Babel each time
    (their date depends on the user's time zone)."""
    if type(value) is date and format is None and rebase:
        return _date_text(locale_name(), value)
    return flask_format_date(value, format, rebase)


@lru_cache(maxsize=4096)
def _date_text(_locale: str, value: date) -> str:
    return flask_format_date(value)


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
    return _money(locale_name(), int(cents), currency)


def percent(share: float | None, digits: int = 1) -> str:
    """A share (0.024) as the locale writes a percentage: "2.4%", German "2,4 %", French "2,4 %"."""
    if share is None:
        return "–"
    return _percent(locale_name(), share, digits)


@lru_cache(maxsize=4096)
def _percent(locale: str, share: float, digits: int) -> str:
    loc, _currency, pattern = _number_formats(locale)
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
    return _countries(locale_name())


@lru_cache(maxsize=16)
def _territories(locale: str) -> dict[str, str]:
    return dict(Locale.parse(locale).territories)


def country_name(code: str | None) -> str:
    if not code:
        return ""
    return _territories(locale_name()).get(code, code)


def is_country(code: str) -> bool:
    return code in dict(_countries("en"))
