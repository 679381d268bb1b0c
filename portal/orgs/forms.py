from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, EmailField, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, Email, Length

from portal.forms import Form
from portal.i18n import countries


class OrgForm(Form):
    name = StringField(_l("Name"), validators=[DataRequired(_l("Enter the organisation's name.")),
                                               Length(max=200)])
    country = SelectField(_l("Country"), choices=lambda: [("", "—"), *countries()],
                          validators=[DataRequired(_l("Choose a country."))])
    contact_email = EmailField(_l("Contact email"), validators=[
        DataRequired(_l("Enter a contact email address.")),
        Email(_l("Enter an email address in the right format, like name@example.org.")), Length(max=254)])
    active = BooleanField(_l("Active"), default=True)
    submit = SubmitField(_l("Save"))
