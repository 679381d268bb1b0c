"""The handover forms: the partner's confirmation and staff's "not applicable". Labels are lazy."""

from __future__ import annotations

from flask_babel import LazyString, gettext
from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    DateField,
    MultipleFileField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length

from portal.forms import Form
from portal.receipts.forms import FILE_HINT
from portal.uploads.files import ACCEPT

PROOF_HINT = LazyString(lambda: gettext("A signed note or a photo of the handover.") + " " + str(FILE_HINT))


class HandoverForm(Form):
    """Sent with the prefix "handover-", so its fields never share an id with the page's other forms."""

    handed_over_on = DateField(_l("Date of the handover"),
                               validators=[InputRequired(_l("Enter the date of the handover"))])
    received_by = StringField(_l("Received by"), validators=[
        DataRequired(_l("Enter who received the goods")), Length(max=200)],
        description=_l("The case reference. Write a person's name only if you must."))
    place = StringField(_l("Place of the handover"), validators=[
        DataRequired(_l("Enter where the goods were handed over")), Length(max=200)],
        description=_l("A town or a district, or the partner's office. No home address."))
    also = SelectMultipleField(_l("This handover also covers"), coerce=int, choices=[],
                               description=_l("Other receipts of the case handed over at the same time "
                                              "(optional)."))
    files = MultipleFileField(_l("Handover proof"), description=PROOF_HINT, render_kw={"accept": ACCEPT})
    statement = BooleanField(
        _l("The goods or training listed on this receipt were handed over to the returnee."),
        validators=[DataRequired(_l("Confirm that the goods or training were handed over to the returnee"))])
    submit = SubmitField(_l("Confirm handover"))


class NotApplicableForm(Form):
    reason = TextAreaField(_l("Reason"), validators=[
        DataRequired(_l("Give the reason why no handover applies")), Length(max=1000)],
        description=_l("For example: a course fee paid to a school. The partner sees it."))
    submit = SubmitField(_l("Mark handover as not applicable"))
