"""Receipt, review and exchange-rate forms. Labels and messages are lazy so they follow the user's language."""

from __future__ import annotations

from babel.numbers import get_currency_name, list_currencies
from flask_babel import LazyString, get_locale, gettext
from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    MultipleFileField,
    RadioField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.fields import MonthField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, Regexp, StopValidation

from portal.forms import AmountField, ChecksBeforeSending, Form
from portal.uploads.files import ACCEPT, max_upload_mb

FILE_HINT = LazyString(lambda: gettext("PDF, JPG, PNG, HEIC or WebP, up to %(size)s MB each. You can choose "
                                        "several files.", size=max_upload_mb()))


MISSING_FILE = _l("Select at least one file of the receipt")


def currency_choices():
    locale = str(get_locale())
    codes = sorted(c for c in list_currencies() if len(c) == 3 and c.isalpha())
    return [("", "—")] + [(c, f"{c} – {get_currency_name(c, locale=locale)}") for c in codes]


def rate_currency_choices():
    return [(c, label) for c, label in currency_choices() if c != "EUR"]


def file_kind_choices():
    return [("handover", _l("Handover proof")), ("receipt", _l("Receipt"))]


def decision_choices():
    return [("approve", _l("Approve")), ("reject", _l("Reject")), ("correction", _l("Request a correction"))]


class ReceiptFieldsForm(ChecksBeforeSending, Form):
    budget_line_id = SelectField(_l("Budget line"), coerce=int,
                                 validators=[DataRequired(_l("Choose the budget line this purchase belongs to."))])
    supplier = StringField(_l("Supplier name"), validators=[
        DataRequired(_l("Enter the name of the supplier")), Length(max=200)])
    invoice_number = StringField(_l("Supplier invoice number"), validators=[
        DataRequired(_l("Enter the invoice number of the supplier")), Length(max=100)])
    invoice_date = DateField(_l("Invoice date"), validators=[InputRequired(_l("Enter the invoice date"))])
    amount = AmountField(_l("Amount"), validators=[
        InputRequired(_l("Enter the amount, like 1250.50")),
        NumberRange(min=0.01, max=10_000_000_000, message=_l("Enter an amount above 0"))],
        description=_l("As on the invoice, in its currency."))
    currency = SelectField(_l("Currency"), choices=currency_choices,
                           validators=[DataRequired(_l("Choose the currency of the invoice"))])
    description = TextAreaField(_l("Description of the goods"), validators=[
        DataRequired(_l("Describe what was bought")), Length(max=2000)])
    translation = TextAreaField(_l("Translation or summary in English or German (optional)"),
                                validators=[Optional(), Length(max=4000)],
                                description=_l("Needed if the receipt is written in another language."))
    paid_directly = BooleanField(
        _l("The supplier was paid directly. No cash went to the returnee."),
        validators=[DataRequired(_l("Confirm that the supplier was paid directly"))])
    confirm_duplicate = BooleanField(_l("I have checked: this is a different purchase, not a duplicate"))


class NewReceiptForm(ReceiptFieldsForm):
    nonce = HiddenField(validators=[DataRequired(), Regexp(r"^[A-Za-z0-9_-]{16,64}$")])
    files = MultipleFileField(_l("Receipt files"), description=FILE_HINT,
                              render_kw={"accept": ACCEPT, "data-msg-required": MISSING_FILE,
                                         "data-or-field": "uploads"})
    handover = MultipleFileField(_l("Handover proof (optional)"), render_kw={"accept": ACCEPT},
                                 description=_l("A signed note or a photo of the goods with the returnee. "
                                                "You can also add it later."))
    submit = SubmitField(_l("Submit receipt"))

    def process(self, formdata=None, *args, **kwargs):
        formdata = self.meta.wrap_formdata(self, formdata)
        # Files uploaded ahead of the form (resumable uploads) come as repeated `uploads` tokens.
        self.upload_tokens = [t for t in formdata.getlist("uploads") if t.strip()] if formdata is not None else []
        super().process(formdata, *args, **kwargs)

    def validate_files(self, field):
        """At least one receipt file, chosen here or uploaded ahead: listed with every other problem at once.
        (The service checks it again; this makes an empty submit name the file with the other fields.)"""
        uploads = getattr(self, "uploads", None)
        tokens = [t for t in (uploads.data or []) if t] if uploads is not None else self.upload_tokens
        if not tokens and not any(f and getattr(f, "filename", "") for f in field.data or []):
            raise StopValidation(str(MISSING_FILE))


class EditReceiptForm(ReceiptFieldsForm):
    version = HiddenField(validators=[DataRequired(), Regexp(r"^\d{1,9}$")])
    submit = SubmitField(_l("Submit corrected receipt"))


class AddFilesForm(Form):
    kind = SelectField(_l("Type of file"), choices=file_kind_choices)
    files = MultipleFileField(_l("Files"), description=FILE_HINT, render_kw={"accept": ACCEPT})
    submit = SubmitField(_l("Add files"))


class ReviewForm(Form):
    decision = RadioField(_l("Decision"), choices=decision_choices, validators=[DataRequired(_l("Choose a decision"))])
    comment = TextAreaField(_l("Comment"), validators=[Length(max=4000)],
                            description=_l("Required for a rejection or a correction request. The partner "
                                           "sees it."))
    version = HiddenField(validators=[DataRequired(), Regexp(r"^\d{1,9}$")])
    submit = SubmitField(_l("Record decision"))


class RateForm(Form):
    currency = SelectField(_l("Currency"), choices=rate_currency_choices,
                           validators=[DataRequired(_l("Choose a currency"))])
    month = MonthField(_l("Month"), validators=[InputRequired(_l("Enter the month, like 2024-03"))])
    rate = AmountField(_l("Units of the currency for 1 EUR"), places=6, validators=[
        InputRequired(_l("Enter the rate, like 2.9123")),
        NumberRange(min=0.000001, message=_l("Enter a rate above 0"))])
    source = StringField(_l("Source"), default="InforEuro", validators=[Length(max=100)])
    source_ref = StringField(_l("Source reference"), description=_l(
        "Where you read the rate, for the auditors: the address of the InforEuro page or a document reference."),
        validators=[DataRequired(_l("Enter where the rate comes from, like the InforEuro page or a document "
                                    "reference")), Length(max=500)])
    submit = SubmitField(_l("Save rate"))


class RateImportForm(Form):
    file = FileField(_l("Rates file (XLSX or CSV)"), description=_l(
        "The month's InforEuro file as exported by the Commission (XLSX or CSV: a row per country with the "
        "currency's ISO code and its rate), or a CSV with one rate per line: currency, month, units for 1 EUR, "
        "source (optional), e.g. GEL,2024-03,2.9123. The file is kept as the rates' evidence."),
        render_kw={"accept": ".xlsx,.csv,text/csv,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"})
    month = MonthField(_l("Month (if the file does not say)"), validators=[Optional()])
    submit = SubmitField(_l("Import rates"))
