"""Form fields shared by several features."""

from flask_babel import lazy_gettext as _l
from wtforms import DecimalField
from wtforms.validators import StopValidation
from wtforms.widgets import TextInput

MSG_NOT_A_NUMBER = _l("Enter a number, like 250.50")


class Finite:
    """Refuses NaN, sNaN and Infinity, which Decimal() reads without complaint (and which make range
    checks and the database fail). Put it first: the chain stops here."""

    def __call__(self, form, field):
        data = field.data
        if data is not None and hasattr(data, "is_finite") and not data.is_finite():
            field.data = None
            raise StopValidation(str(MSG_NOT_A_NUMBER))


class AmountField(DecimalField):
    """A decimal amount typed the way people write it: "1250,50", "1 250.50" and "1250.50" all work."""

    widget = TextInput()

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("render_kw", {"inputmode": "decimal", "autocomplete": "off"})
        super().__init__(*args, **kwargs)

    def process_formdata(self, valuelist):
        if valuelist:
            raw = valuelist[0].strip().replace("\u00a0", "").replace("\u202f", "").replace(" ", "")
            if "," in raw and "." not in raw:
                raw = raw.replace(",", ".")
            elif "," in raw and "." in raw:  # thousands separators of either style
                raw = raw.replace(",", "") if raw.rfind(".") > raw.rfind(",") else raw.replace(".", "").replace(",", ".")
            valuelist = [raw]
        super().process_formdata(valuelist)

    def pre_validate(self, form):
        Finite()(form, self)
