from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    DateField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from portal.cases.models import BudgetCategory, MeasureType
from portal.forms import AmountField, Form
from portal.i18n import countries


def measure_choices():
    return [(MeasureType.VOCATIONAL.value, _l("Vocational qualification")),
            (MeasureType.BUSINESS.value, _l("Business start-up")),
            (MeasureType.BOTH.value, _l("Both"))]


def category_choices():
    return [(BudgetCategory.TRAINING.value, _l("Training and courses")),
            (BudgetCategory.EQUIPMENT.value, _l("Tools and equipment")),
            (BudgetCategory.STOCK.value, _l("Goods and stock")),
            (BudgetCategory.SERVICES.value, _l("Services")),
            (BudgetCategory.OTHER.value, _l("Other"))]


def country_choices():
    return [("", "—"), *countries()]


class CaseForm(Form):
    country = SelectField(_l("Return country"), choices=country_choices,
                          validators=[DataRequired(_l("Choose the return country."))])
    organisation_id = SelectField(_l("Partner organisation"), coerce=int,
                                  validators=[DataRequired(_l("Choose a partner organisation."))])
    return_date = DateField(_l("Return date"), validators=[Optional()],
                            description=_l("Leave empty if the date is not known yet."))
    measure_type = SelectField(_l("Measure"), choices=measure_choices)
    notes = TextAreaField(_l("Notes"), validators=[Length(max=5000)],
                          description=_l("No names or contact details of the returnee: the case is pseudonymous."))
    eligibility_reason = TextAreaField(
        _l("Reason for eligibility"), validators=[Length(max=2000)],
        description=_l("Needed when the country is covered by another return programme."))
    submit = SubmitField(_l("Save case"))


class BudgetLineForm(Form):
    category = SelectField(_l("Category"), choices=category_choices)
    description = StringField(_l("Description"), validators=[
        DataRequired(_l("Describe what is planned.")), Length(max=500)])
    planned_amount = AmountField(_l("Planned amount (EUR)"), places=2, validators=[
        InputRequired(_l("Enter the planned amount in euros, like 1250.00.")),
        NumberRange(min=0.01, max=10_000_000, message=_l("Enter an amount between 0.01 and 10,000,000 euros."))])
    submit = SubmitField(_l("Save budget line"))


class StatusForm(Form):
    status = StringField(validators=[DataRequired()])


class CountryRuleForm(Form):
    code = SelectField(_l("Country"), choices=country_choices, validators=[DataRequired(_l("Choose a country."))])
    covered = BooleanField(_l("Covered by another return programme"), default=True)
    programme = StringField(_l("Programme"), validators=[Length(max=200)])
    submit = SubmitField(_l("Save country"))


class EraseForm(Form):
    reason = TextAreaField(_l("Reason for the erasure"), validators=[
        DataRequired(_l("Enter the reason for the erasure, for example the returnee's request and its date.")),
        Length(max=1000)])
    confirm = BooleanField(_l("I understand that the visits' personal data and photos are removed for good. "
                              "Receipts and their files are kept for the audit."),
                           validators=[DataRequired(_l("Tick the box to confirm the erasure."))])
    submit = SubmitField(_l("Erase personal data"))
