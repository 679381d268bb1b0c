"""The visit form, the staff comment form, the photo form, and the labels every visit screen shares.

The RSS descriptors below are the scale partners score against: one short sentence per step, so two
partners who see the same situation give the same score.
"""

from __future__ import annotations

from functools import lru_cache

from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
    TimeField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, Regexp

from portal.forms import ChecksBeforeSending, FloatNumberField, Form, IntegerCountField
from portal.i18n import locale_name
from portal.visits.models import BusinessStatus, GoodsState, IncomeBand, VisitMode, VisitPurpose

MODES = {
    VisitMode.HOME: _l("Home visit"),
    VisitMode.BUSINESS: _l("Business visit"),
    VisitMode.OFFICE: _l("Office meeting"),
    VisitMode.CALL: _l("Phone or video call"),
}
PURPOSES = {
    VisitPurpose.FIRST: _l("First visit after return"),
    VisitPurpose.MONITORING: _l("Monitoring visit"),
    VisitPurpose.FINAL: _l("Final visit"),
}
GOODS_STATES = {
    GoodsState.IN_USE: _l("In use"),
    GoodsState.PARTLY: _l("Partly in use"),
    GoodsState.SOLD: _l("Sold"),
    GoodsState.MISSING: _l("Missing"),
    GoodsState.NOT_APPLICABLE: _l("Not seen or not applicable"),
}
BUSINESS_STATUSES = {
    BusinessStatus.OPERATING: _l("Business operating"),
    BusinessStatus.NOT_OPERATING: _l("Business not operating"),
    BusinessStatus.EMPLOYED: _l("In employment"),
    BusinessStatus.NOT_EMPLOYED: _l("Not in employment"),
    BusinessStatus.IN_TRAINING: _l("In training"),
    BusinessStatus.NOT_APPLICABLE: _l("Not applicable"),
}
INCOME_BANDS = {
    IncomeBand.UNKNOWN: _l("Not known"),
    IncomeBand.NONE: _l("No income"),
    IncomeBand.UNDER_100: _l("Under 100 EUR a month"),
    IncomeBand.FROM_100: _l("100 to 300 EUR a month"),
    IncomeBand.FROM_300: _l("300 to 600 EUR a month"),
    IncomeBand.OVER_600: _l("Over 600 EUR a month"),
}
FLAG_LABELS = {
    "flag_health": _l("Health"),
    "flag_psychosocial": _l("Psychosocial distress"),
    "flag_family": _l("Family conflict"),
    "flag_safety": _l("Safety"),
    "flag_legal": _l("Legal problems"),
}
DIMENSION_LABELS = {
    "score_economic": _l("Economic"),
    "score_social": _l("Social"),
    "score_psychosocial": _l("Psychosocial"),
}

# RSS: one descriptor per step of each dimension (1 = worst, 5 = best).
DESCRIPTORS = {
    "score_economic": {
        1: _l("No income; basic needs such as food and rent are not met"),
        2: _l("Irregular income; basic needs are often not met"),
        3: _l("Some regular income; basic needs are mostly met"),
        4: _l("Stable income that covers basic needs"),
        5: _l("Stable income with savings or growth; plans ahead"),
    },
    "score_social": {
        1: _l("Isolated; no housing, services or people to turn to"),
        2: _l("Little support; hard to reach housing or services"),
        3: _l("Some support from family or community; basic access to services"),
        4: _l("Good relations; access to housing, health care and services"),
        5: _l("Well connected and taking part in community life"),
    },
    "score_psychosocial": {
        1: _l("In severe distress; cannot cope with daily life"),
        2: _l("Often distressed or anxious; copes with difficulty"),
        3: _l("Copes with daily life but has recurring worries"),
        4: _l("Mostly feels well and safe; copes with setbacks"),
        5: _l("Feels well, safe and confident about the future"),
    },
}

LABELS = {"modes": MODES, "purposes": PURPOSES, "goods": GOODS_STATES, "business": BUSINESS_STATUSES,
          "income": INCOME_BANDS, "flags": FLAG_LABELS, "dimensions": DIMENSION_LABELS,
          "descriptors": DESCRIPTORS}



@lru_cache(maxsize=16)
def _plain_labels(locale: str) -> dict:
    with force_locale(locale):
        return {name: {str(key): ({k: str(v) for k, v in text.items()} if isinstance(text, dict) else str(text))
                       for key, text in table.items()}
                for name, table in LABELS.items()}


def plain_labels() -> dict:
    """LABELS in the current language as plain strings, built once per locale (a lazy string is translated
    again each time it is shown)."""
    return _plain_labels(locale_name())

def _choices(labels: dict, blank: bool = True) -> list[tuple[str, object]]:
    head = [("", _l("Choose…"))] if blank else []
    return head + [(value.value, label) for value, label in labels.items()]


def _score_choices(dimension: str):
    return [("", _l("Choose…"))] + [(str(n), f"{n} – {text}") for n, text in DESCRIPTORS[dimension].items()]


def _required(message):
    return [DataRequired(message)]


class VisitForm(ChecksBeforeSending, Form):
    # The draft's id: the idempotency key of the submission.
    draft_key = HiddenField(validators=[Regexp(r"^[0-9a-f]{32}$")])
    visit_date = DateField(_l("Date of the visit"), validators=_required(_l("Enter the date of the visit.")))
    visit_time = TimeField(_l("Time"), validators=[Optional()])
    mode = SelectField(_l("Mode"), choices=lambda: _choices(MODES),
                       validators=_required(_l("Choose how the visit took place.")))
    place = StringField(_l("Place"), validators=[Length(max=200)],
                        description=_l("For example the district or the name of the business. No street address."))
    location_consent = BooleanField(_l("The returnee agrees that this device's location is recorded"))
    latitude = FloatNumberField(_l("Latitude"), validators=[Optional(), NumberRange(-90, 90)])
    longitude = FloatNumberField(_l("Longitude"), validators=[Optional(), NumberRange(-180, 180)])
    attendees = StringField(_l("Who attended"), validators=[Length(max=500)],
                            description=_l("Roles, not names: for example returnee, spouse, case worker."))
    returnee_met = SelectField(_l("Was the returnee met?"),
                               choices=lambda: [("", _l("Choose…")), ("yes", _l("Yes")), ("no", _l("No"))],
                               validators=_required(_l("Say whether the returnee was met.")))
    not_met_reason = TextAreaField(_l("If not, why not?"), validators=[Length(max=1000)])
    purpose = SelectField(_l("Purpose"), choices=lambda: _choices(PURPOSES),
                          validators=_required(_l("Choose the purpose of the visit.")))
    goods_state = SelectField(_l("State of the goods bought for this case"),
                              choices=lambda: _choices(GOODS_STATES, blank=False))
    business_status = SelectField(_l("Business or employment"), choices=lambda: _choices(BUSINESS_STATUSES,
                                                                                           blank=False))
    income_band = SelectField(_l("Income band"), choices=lambda: _choices(INCOME_BANDS, blank=False))
    people_employed = IntegerCountField(_l("People employed"), validators=[Optional(), NumberRange(0, 999)],
                                   description=_l("Including the returnee. Leave empty if not applicable."))
    score_economic = SelectField(_l("Economic dimension"), choices=lambda: _score_choices("score_economic"),
                                 validators=[Optional()])
    score_social = SelectField(_l("Social dimension"), choices=lambda: _score_choices("score_social"),
                               validators=[Optional()])
    score_psychosocial = SelectField(_l("Psychosocial dimension"),
                                     choices=lambda: _score_choices("score_psychosocial"),
                                     validators=[Optional()])
    flag_health = BooleanField(FLAG_LABELS["flag_health"])
    flag_psychosocial = BooleanField(FLAG_LABELS["flag_psychosocial"])
    flag_family = BooleanField(FLAG_LABELS["flag_family"])
    flag_safety = BooleanField(FLAG_LABELS["flag_safety"])
    flag_legal = BooleanField(FLAG_LABELS["flag_legal"])
    flag_details = TextAreaField(_l("What is the concern?"), validators=[Length(max=2000)],
                                 description=_l("Needed when you tick a concern. Micado staff will follow up."))
    actions_taken = TextAreaField(_l("Actions taken"), validators=[Length(max=2000)])
    next_visit_date = DateField(_l("Next visit date"), validators=[Optional()])
    notes = TextAreaField(_l("Notes"), validators=[Length(max=5000)])
    submit = SubmitField(_l("Submit visit"))


class CommentForm(Form):
    body = TextAreaField(_l("Comment"), validators=[Length(max=4000)])
    submit = SubmitField(_l("Add comment"))


class AcknowledgeForm(Form):
    body = TextAreaField(_l("Comment (optional)"), validators=[Length(max=4000)])
    submit = SubmitField(_l("Acknowledge visit"))


class PhotoForm(Form):
    # On a phone the camera opens directly (a photo of the visit is taken there and then).
    photo = FileField(_l("Photo"), description=_l("JPG, PNG or WebP. Location and camera data are removed."),
                      render_kw={"accept": "image/*", "capture": "environment"})
    consent = BooleanField(_l("The returnee agreed to this photo"),
                           validators=[InputRequired(_l("A photo can only be added with the returnee's "
                                                        "consent."))])
    submit = SubmitField(_l("Add photo"))
