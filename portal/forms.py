"""Form fields and helpers shared by several features.

Number fields read numbers the way people type them (portal.numbers: Arabic-Indic digits, ٫ and ٬,
"1 250,50", "1.250,50", "1,250.50") and give one clear message when a value is wrong or ambiguous.
Their messages and the user's separators go into data attributes, so static/js/checks.js can run the same
checks in the browser before anything is sent; the server stays the authority.
"""

from __future__ import annotations

from functools import lru_cache

from babel import support
from babel.numbers import get_decimal_symbol, get_group_symbol
from flask import current_app, session
from flask_babel import LazyString, get_locale, gettext
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import DecimalField, FloatField, IntegerField
from wtforms.i18n import messages_path
from wtforms.meta import DefaultMeta
from wtforms.validators import DataRequired, InputRequired, StopValidation
from wtforms.widgets import TextInput

from portal.i18n import locale_name
from portal.numbers import MAX_CHARS, NumberProblem, parse_number

MSG_NOT_A_NUMBER = _l("Enter a number, like 250.50")


class Form(FlaskForm):
    """Every form of the portal: Flask-WTF's, with WTForms' own messages ("This field is required.", "Not a
    valid choice.") from WTForms' catalog loaded once per language and kept. Flask-WTF loads that catalog
    from disk anew in every request that shows or checks one (a select checks its choice on every
    validation)."""

    class Meta:
        def get_translations(self, form):
            if not current_app.config["WTF_I18N_ENABLED"]:
                return DefaultMeta.get_translations(self, form)
            return _wtforms_catalog(locale_name())


@lru_cache(maxsize=16)
def _wtforms_catalog(locale: str):
    return support.Translations.load(messages_path(), [locale], domain="wtforms")


class Finite:
    """Refuses NaN, sNaN and Infinity, which Decimal() reads without complaint (and which make range
    checks and the database fail). Put it first: the chain stops here."""

    def __call__(self, form, field):
        data = field.data
        if data is not None and hasattr(data, "is_finite") and not data.is_finite():
            field.data = None
            raise StopValidation(str(MSG_NOT_A_NUMBER))


AMOUNT_MESSAGE = _l("Enter the amount as a number, for example 120.50.")
NUMBER_MESSAGE = _l("Enter a number, for example 12.5.")
WHOLE_MESSAGE = _l("Enter a whole number, for example 12.")
# Placeholders the browser fills in (checks.js): the same sentence as the server's.
_JS_READINGS = {"value": "{value}", "whole": "{whole}", "decimal": "{decimal}"}


def _ambiguous(value: str, whole: str, decimal: str) -> str:
    return gettext("“%(value)s” could mean %(whole)s or %(decimal)s. Type it without a thousands separator, "
                   "like %(whole)s, or with the decimals you mean.", value=value, whole=whole, decimal=decimal)


def _symbols() -> tuple[str | None, str | None]:
    locale = get_locale()
    if locale is None:
        return None, None
    return get_decimal_symbol(locale), get_group_symbol(locale)


def _readings(raw: str, decimal_symbol: str | None) -> tuple[str, str]:
    """The two readings of an ambiguous "1,250": "1250" and "1.25" written the user's way."""
    plain = raw.translate({0x0660 + i: str(i) for i in range(10)} | {0x06F0 + i: str(i) for i in range(10)})
    plain = plain.strip()
    mark = "." if "." in plain else ","
    before, after = plain.split(mark)
    return before + after, before + (decimal_symbol or ".") + (after.rstrip("0") or "0")


class NumberInput:
    """Number fields' shared behaviour: parse with portal.numbers, one message, data attributes."""

    whole = False
    lone: str | None = None  # see portal.numbers.parse_number
    default_message = NUMBER_MESSAGE

    def _setup(self, kwargs: dict, message) -> dict:
        self.number_message = message or self.default_message
        render_kw = {"inputmode": "numeric" if self.whole else "decimal", "autocomplete": "off",
                     "maxlength": str(MAX_CHARS), "data-number": "whole" if self.whole else "decimal",
                     "data-lone": self.lone or ("group" if self.whole else ""),
                     "data-msg-number": self.number_message,
                     "data-msg-ambiguous": LazyString(lambda: _ambiguous(**_JS_READINGS)),
                     "data-decimal": LazyString(lambda: _symbols()[0] or "."),
                     "data-group": LazyString(lambda: _symbols()[1] or ",")}
        render_kw.update(kwargs.pop("render_kw", None) or {})
        kwargs["render_kw"] = render_kw
        return kwargs

    def _parse(self, valuelist):
        if not valuelist:
            return None
        raw = valuelist[0] or ""
        decimal_symbol, group_symbol = _symbols()
        try:
            return parse_number(raw, decimal_symbol, group_symbol,
                                lone=self.lone or ("group" if self.whole else None))
        except NumberProblem as problem:
            self.data = None
            if problem.kind == "ambiguous":
                whole, decimal = _readings(raw, decimal_symbol)
                raise ValueError(_ambiguous(raw.strip(), whole, decimal)) from None
            raise ValueError(str(self.number_message)) from None

    def pre_validate(self, form):
        # The parse message is the only one: no "Enter an amount above 0" after "Enter … as a number".
        if self.process_errors:
            raise StopValidation()
        raw = (self.raw_data or [""])[0] or ""
        if self.data is None and raw and not raw.strip() and self.flags.required:
            # Only spaces: InputRequired lets them through; say what is missing, not "out of range".
            message = next((v.message for v in self.validators if isinstance(v, InputRequired | DataRequired)),
                           None)
            raise StopValidation(str(message) if message else gettext("This field is required."))


class AmountField(NumberInput, DecimalField):
    """A decimal amount (Decimal) as people type it; `places` formats the value shown back."""

    widget = TextInput()
    default_message = AMOUNT_MESSAGE

    def __init__(self, label=None, validators=None, message=None, **kwargs):
        super().__init__(label, validators, **self._setup(kwargs, message))

    def process_formdata(self, valuelist):
        value = self._parse(valuelist)
        if valuelist:
            self.data = value


class IntegerCountField(NumberInput, IntegerField):
    """A whole number (int) as people type it: "١٢", "1 200" and "1.200" are all accepted."""

    widget = TextInput()
    whole = True
    default_message = WHOLE_MESSAGE

    def __init__(self, label=None, validators=None, message=None, **kwargs):
        super().__init__(label, validators, **self._setup(kwargs, message))

    def process_formdata(self, valuelist):
        value = self._parse(valuelist)
        if not valuelist:
            return
        if value is not None and value != value.to_integral_value():
            self.data = None
            raise ValueError(str(self.number_message))
        self.data = int(value) if value is not None else None


class FloatNumberField(NumberInput, FloatField):
    """A float (coordinates) as people type it: values below a thousand, so "41.715" is a decimal."""

    widget = TextInput()
    lone = "decimal"

    def __init__(self, label=None, validators=None, message=None, **kwargs):
        super().__init__(label, validators, **self._setup(kwargs, message))

    def process_formdata(self, valuelist):
        value = self._parse(valuelist)
        if valuelist:
            self.data = float(value) if value is not None else None


class ChecksBeforeSending:
    """A form mixin: required fields carry their message for the browser's checks (static/js/checks.js).

    The browser shows the same sentences as the server, in the same error summary, before anything is
    sent; without JavaScript the server's checks run as before.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self:
            required = next((v for v in field.validators if isinstance(v, InputRequired | DataRequired)), None)
            if required is None or not required.message:
                continue
            extra = {"data-msg-required": required.message}
            if getattr(field, "coerce", None) is int:
                extra["data-empty"] = "0"  # the "—" choice of an id select
            field.render_kw = {**(field.render_kw or {}), **extra}  # the class's dict is shared: copy it


# The device copy of a form being typed (static/js/drafts.js) -------------------------------------

def device_draft_key(kind: str, object_id: int) -> str:
    """The IndexedDB key of a form's device copy: per user, form and case (or receipt)."""
    return f"{kind}:{current_user.get_id()}:{object_id}"


def device_draft_done(key: str) -> None:
    """The server has the submission: the next full page tells the browser to drop the device copy."""
    done = [k for k in session.get("drafts_done", []) if k != key][-4:]
    session["drafts_done"] = [*done, key]


def device_drafts_forget_all() -> None:
    """Signed out: the next page tells the browser to drop every device copy (a shared phone)."""
    session["drafts_done"] = ["*"]


def drafts_done() -> str:
    """For base.html's <body data-drafts-done>: the device copies to drop, once (called only there)."""
    if "drafts_done" not in session:
        return ""
    return " ".join(session.pop("drafts_done"))
