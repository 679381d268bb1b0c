from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, EmailField, PasswordField, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, Email, EqualTo, Length, Optional

from portal.auth.models import Role
from portal.forms import Form
from portal.i18n import LANGUAGE_NAMES

EMAIL_REQUIRED = _l("Enter your email address.")
EMAIL_FORMAT = _l("Enter an email address in the right format, like name@example.org.")


def role_choices():
    return [(Role.PARTNER.value, _l("Partner organisation staff")),
            (Role.STAFF.value, _l("Micado staff")),
            (Role.ADMIN.value, _l("Administrator"))]


def language_choices():
    return list(LANGUAGE_NAMES.items())


class LoginForm(Form):
    email = EmailField(_l("Email"), validators=[DataRequired(EMAIL_REQUIRED), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(_l("Enter your password.")),
                                                         Length(max=256)])
    remember = BooleanField(_l("Keep me signed in on this device"))
    submit = SubmitField(_l("Sign in"))


class SetPasswordForm(Form):
    password = PasswordField(_l("New password"), description=_l("At least 12 characters. A few unrelated "
                                                                "words are easy to remember and hard to guess."),
                             validators=[DataRequired(_l("Enter a new password."))])
    confirm = PasswordField(_l("Repeat the new password"),
                            validators=[DataRequired(_l("Repeat the new password.")),
                                        EqualTo("password", _l("The two passwords are not the same."))])
    submit = SubmitField(_l("Save password"))


class ChangePasswordForm(SetPasswordForm):
    current = PasswordField(_l("Current password"), validators=[DataRequired(_l("Enter your current password."))])


class ResetRequestForm(Form):
    email = EmailField(_l("Email"), validators=[DataRequired(EMAIL_REQUIRED), Email(EMAIL_FORMAT),
                                                Length(max=254)])
    submit = SubmitField(_l("Send reset link"))


class InviteForm(Form):
    email = EmailField(_l("Email"), validators=[DataRequired(EMAIL_REQUIRED), Email(EMAIL_FORMAT),
                                                Length(max=254)])
    name = StringField(_l("Name"), validators=[DataRequired(_l("Enter the person's name.")), Length(max=200)])
    role = SelectField(_l("Role"), choices=role_choices)
    organisation_id = SelectField(_l("Partner organisation"), coerce=int, validators=[Optional()],
                                  description=_l("Needed for partner organisation staff."))
    locale = SelectField(_l("Language"), choices=language_choices)
    submit = SubmitField(_l("Send invitation"))


class DigestForm(Form):
    mail_digest = BooleanField(_l("E-mail me about decisions and comments"), description=_l(
        "Decisions on receipts and staff comments on visits of your cases, in one message an hour at most."))
    save_digest = SubmitField(_l("Save e-mail setting"))  # not "submit": the page has the password form's


class LanguageForm(Form):
    lang = SelectField(_l("Language"), choices=language_choices)
    submit = SubmitField(_l("Change language"))


class CodeForm(Form):
    code = StringField(_l("Authentication code"), description=_l(
        "The 6-digit code from your authenticator app, or one of your recovery codes."),
        validators=[DataRequired(_l("Enter the code from your authenticator app.")), Length(max=40)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "autocapitalize": "off"})
    submit = SubmitField(_l("Continue"))


class EnrolForm(Form):
    code = StringField(_l("Code from the app"), description=_l("Enter the 6-digit code the app shows now."),
                       validators=[DataRequired(_l("Enter the code from your authenticator app.")),
                                   Length(max=40)],
                       render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"})
    submit = SubmitField(_l("Turn on two-factor sign-in"))


class ConfirmIdentityForm(Form):
    """Asked before two-factor sign-in is changed: a session left open on a shared computer is not enough."""

    proof = PasswordField(_l("Your password or a current code from the app"),
                          description=_l("Needed to change two-factor sign-in."),
                          validators=[DataRequired(_l("Enter your password or a code from your authenticator "
                                                      "app.")), Length(max=256)],
                          render_kw={"autocomplete": "current-password"})
