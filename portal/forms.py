"""Form fields shared by several features."""

from wtforms import DecimalField
from wtforms.widgets import TextInput


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
