"""Workshop forms: staff set-up, the public registration (hardened), staff moves."""

from __future__ import annotations

import unicodedata
from datetime import date

from email_validator import EmailNotValidError, validate_email
from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    DateField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, ValidationError

from portal.config import LANGUAGES
from portal.forms import Form, IntegerCountField
from portal.i18n import LANGUAGE_NAMES, countries
from portal.workshop.models import RegRole, RegStatus


def role_choices():
    return [("", "—"), *RegRole.__titles__.items()]


def country_choices():
    return [("", "—"), *countries()]


def language_choices():
    return list(LANGUAGE_NAMES.items())


def plain_text(form, field):
    """Refuse control characters (NUL and the like) with a clear message instead of failing later."""
    value = field.data or ""
    multiline = isinstance(field, TextAreaField)
    for char in value:
        if multiline and char in "\r\n\t":
            continue
        if unicodedata.category(char) in ("Cc", "Cs"):
            raise ValidationError(_l("Remove the invisible control characters from this field."))


def strip(value):
    return value.strip() if isinstance(value, str) else value


def email_address(form, field):
    """A plain address our mail server can deliver to (no internationalised local part)."""
    try:
        result = validate_email(field.data or "", check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        raise ValidationError(_l("Enter an email address in the right format, like name@example.org.")) from None
    field.data = (result.ascii_email or result.normalized).lower()


def _text(label, max_len, required=None, **kw):
    validators = [DataRequired(required)] if required else [Optional()]
    validators = [plain_text, *validators, Length(max=max_len, message=_l(
        "Use at most %(max)d characters."))]
    return StringField(label, filters=[strip], validators=validators, **kw)


def _area(label, max_len, **kw):
    return TextAreaField(label, filters=[strip], validators=[plain_text, Length(max=max_len, message=_l(
        "Use at most %(max)d characters."))], **kw)


class RegistrantFields(Form):
    """What a registrant tells about themselves (shared by the public form, self-service and staff)."""

    name = _text(_l("Full name"), 200, _l("Enter your name."), render_kw={"autocomplete": "name"})
    organisation = _text(_l("Organisation"), 200, _l("Enter your organisation."),
                         render_kw={"autocomplete": "organization"})
    country = SelectField(_l("Country"), choices=country_choices,
                          validators=[DataRequired(_l("Choose the country where you work."))],
                          description=_l("The country where you work."))
    role = SelectField(_l("Role"), choices=role_choices, validators=[DataRequired(_l("Choose your role."))])
    languages = _text(_l("Languages you speak"), 300, description=_l("For example: English, French, Arabic."))
    dietary_needs = _area(_l("Dietary needs"), 1000)
    accessibility_needs = _area(_l("Accessibility needs"), 1000)
    travel_support = BooleanField(_l("I request travel support"))
    consent_list = BooleanField(_l("My name and organisation may appear on the participant list"))


class RegistrationForm(RegistrantFields):
    email = StringField(_l("Email"), filters=[strip], validators=[
        plain_text, DataRequired(_l("Enter your email address.")), Length(max=254, message=_l(
            "Use at most %(max)d characters.")), email_address], render_kw={"autocomplete": "email",
                                                                             "inputmode": "email"})
    visa_letter = BooleanField(_l("I need a visa invitation letter"),
                               description=_l("Then we need the data from your passport. Only the workshop "
                                              "staff see it, and it is deleted soon after the workshop."))
    passport_name = _text(_l("Name as in the passport"), 200)
    nationality = SelectField(_l("Nationality"), choices=country_choices, validators=[Optional()])
    passport_number = _text(_l("Passport number"), 40)
    birth_date = DateField(_l("Date of birth"), validators=[Optional()],
                           description=_l("As in the passport, for example 1985-03-21."))
    consent_processing = BooleanField(_l("I agree to the processing of my data for this workshop"),
                                      validators=[DataRequired(_l("Agree to the processing of your data to "
                                                                  "register."))])
    # The honeypot: hidden from people, filled in by form-filling robots.
    website = StringField(_l("Leave this field empty"), validators=[Optional()])
    submit = SubmitField(_l("Register"))

    def __init__(self, *args, workshop=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.workshop = workshop
        if workshop is not None and not workshop.visa_letters:
            for name in ("visa_letter", "passport_name", "nationality", "passport_number", "birth_date"):
                delattr(self, name)
        if workshop is not None and not workshop.travel_support:
            delattr(self, "travel_support")

    def validate(self, extra_validators=None):
        ok = super().validate(extra_validators)
        if "visa_letter" in self._fields and self.visa_letter.data:
            for name, message in (("passport_name", _l("Enter your name as it is written in the passport.")),
                                  ("nationality", _l("Choose your nationality.")),
                                  ("passport_number", _l("Enter the passport number.")),
                                  ("birth_date", _l("Enter your date of birth."))):
                field = self._fields[name]
                if not field.data and not field.errors:
                    field.errors = [*field.errors, message]
                    ok = False
            born = self.birth_date.data
            if born and not (date(1900, 1, 1) <= born <= date.today()):
                self.birth_date.errors = [*self.birth_date.errors, _l("Enter a date of birth in the past.")]
                ok = False
        return ok

    def data_for_service(self) -> dict:
        return {name: field.data for name, field in self._fields.items()
                if name not in ("csrf_token", "submit", "website")}


class StaffRegistrationForm(RegistrationForm):
    """Staff add someone by hand: the same fields, plus the registrant's language for the e-mails."""

    locale = SelectField(_l("Language of the e-mails"), choices=language_choices)
    submit = SubmitField(_l("Add registration"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        delattr(self, "consent_processing")  # staff record it outside the portal
        delattr(self, "website")


class ManageForm(RegistrantFields):
    """Self-service: change the details (e-mail and passport data stay as they are)."""

    submit = SubmitField(_l("Save changes"))

    def __init__(self, *args, workshop=None, **kwargs):
        super().__init__(*args, **kwargs)
        if workshop is not None and not workshop.travel_support:
            delattr(self, "travel_support")


class ResendForm(Form):
    email = StringField(validators=[DataRequired(), Length(max=254), plain_text])
    submit = SubmitField(_l("Send the link again"))


class ConfirmForm(Form):
    submit = SubmitField(_l("Confirm my registration"))


class WithdrawForm(Form):
    submit = SubmitField(_l("Withdraw my registration"))


def status_choices():
    return [(RegStatus.CONFIRMED.value, _l("Confirmed (approve)")),
            (RegStatus.WAITLISTED.value, _l("Waitlist")),
            (RegStatus.DECLINED.value, _l("Declined")),
            (RegStatus.WITHDRAWN.value, _l("Withdrawn"))]


class MoveForm(Form):
    status = SelectField(_l("New status"), choices=status_choices,
                         validators=[DataRequired(_l("Choose a status."))])
    message = _area(_l("Message to the registrant"), 2000,
                    description=_l("Sent with a decline. Optional."))
    submit = SubmitField(_l("Change status"))


class WorkshopForm(Form):
    title = _text(_l("Title"), 200, _l("Enter a title."))
    description = _area(_l("Description"), 5000)
    starts_on = DateField(_l("First day"), validators=[InputRequired(_l("Enter the first day."))])
    ends_on = DateField(_l("Last day"), validators=[InputRequired(_l("Enter the last day."))])
    city = _text(_l("City"), 100, _l("Enter the city."))
    venue = _text(_l("Venue"), 300, _l("Enter the venue."), description=_l("Name and address."))
    capacity = IntegerCountField(_l("Capacity"), validators=[
        InputRequired(_l("Enter the number of places.")),
        NumberRange(min=1, max=10_000, message=_l("Enter a number between 1 and 10,000."))])
    registration_deadline = DateField(_l("Registration deadline"), validators=[
        InputRequired(_l("Enter the last day of registration."))])
    working_languages = _text(_l("Working languages"), 100, description=_l("For example: English, French."))
    travel_support = BooleanField(_l("Travel support is offered"))
    visa_letters = BooleanField(_l("Visa invitation letters are offered"))
    moderated = BooleanField(_l("Registrations need staff approval"),
                             description=_l("Otherwise seats are given in order and the waitlist follows."))
    submit = SubmitField(_l("Save workshop"))


# The title and description in the other languages (optional; the main texts are the fallback).
OTHER_LANGUAGES = tuple(code for code in LANGUAGES if code != "en")
for _code in OTHER_LANGUAGES:
    setattr(WorkshopForm, f"title_{_code}", _text(_l("Title (%(lang)s)", lang=LANGUAGE_NAMES[_code]), 200))
    setattr(WorkshopForm, f"description_{_code}",
            _area(_l("Description (%(lang)s)", lang=LANGUAGE_NAMES[_code]), 5000))
