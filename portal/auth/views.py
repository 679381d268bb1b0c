"""Sign-in, sign-out, invitation and reset links, the account page and user management."""

from __future__ import annotations

import hashlib
import time

from flask import Blueprint, abort, current_app, flash, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from portal import db
from portal.auth import services, totp
from portal.auth.forms import (
    ChangePasswordForm,
    CodeForm,
    ConfirmIdentityForm,
    DigestForm,
    EnrolForm,
    InviteForm,
    LanguageForm,
    LoginForm,
    ResetRequestForm,
    SetPasswordForm,
)
from portal.auth.models import Role
from portal.extensions import limiter
from portal.forms import device_drafts_forget_all
from portal.htmx import render
from portal.notifications import services as notifications
from portal.orgs import services as orgs
from portal.rules import put_on_form
from portal.security import safe_next

bp = Blueprint("auth", __name__)


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


# Two limits on sign-in, second factor and reset: per client address (LOGIN_RATE_LIMIT, the real address
# behind TRUSTED_PROXIES), so one client cannot try many accounts; and per target account
# (ACCOUNT_RATE_LIMIT), so many addresses cannot try one account fast. The account limit counts failed
# attempts only and has a short window: a user under attack is slowed for a minute, not locked out, and
# another account's failures never count against theirs.

def _account_limit() -> str:
    return current_app.config["ACCOUNT_RATE_LIMIT"]


def _form_account() -> str:
    # A digest, not the address itself: the limiter's store (Redis) need not hold e-mail addresses.
    email = services.normalise_email(request.form.get("email", ""))
    return "account:" + hashlib.sha256(email.encode()).hexdigest()[:32]


def _no_form_account() -> bool:
    return not request.form.get("email", "").strip()


def _pending_account() -> str:
    return f"account:{(session.get('2fa') or {}).get('user')}"


def _no_pending_account() -> bool:
    return not (session.get("2fa") or {}).get("user")


def _failed(response) -> bool:
    """A failed attempt (a refusal by a limit is not counted again)."""
    return response.status_code not in (303, 429)


def _safe_next(target: str | None) -> str:
    return safe_next(target) or url_for("index")


def _own_row():
    """The signed-in user's own row: current_user is a read-only SignedInUser (auth.models)."""
    return services.account_row(db.session(), current_user._get_current_object())


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
@limiter.limit(_account_limit, methods=["POST"], key_func=_form_account, exempt_when=_no_form_account,
               deduct_when=_failed)
def login():
    """Show the sign-in form and sign a user in."""
    if current_user.is_authenticated:
        return redirect(url_for("index"))
    form = LoginForm()
    if form.validate_on_submit():
        user = services.authenticate(db.session(), form.email.data, form.password.data)
        if user is not None:
            session.clear()  # a fresh session at sign-in
            if totp.enabled(user):  # the password was right; the second factor decides
                session["2fa"] = {"user": user.id, "remember": bool(form.remember.data), "at": int(time.time()),
                                  "next": _safe_next(request.args.get("next"))}
                return redirect(url_for("auth.login_code"), code=303)
            services.sign_in(db.session(), session, user, remember=bool(form.remember.data))
            return redirect(_safe_next(request.args.get("next")), code=303)
        form.form_errors.append(_("The email address or password is not right."))
    status = 422 if form.errors or form.form_errors else 200
    return render("auth/login.html", "auth/_login_form.html", status, form=form)


@bp.route("/login/code", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
@limiter.limit(_account_limit, methods=["POST"], key_func=_pending_account, exempt_when=_no_pending_account,
               deduct_when=_failed)
def login_code():
    """Second step of signing in: the code from the authenticator app (or a recovery code)."""
    pending = session.get("2fa")
    user = services.pending_two_factor_user(db.session(), pending)
    if user is None:
        session.pop("2fa", None)
        flash(_("Please sign in again."), "info")
        return redirect(url_for("auth.login"), code=303)
    form = CodeForm()
    if form.validate_on_submit():
        if totp.verify(db.session(), user, form.code.data):
            session.clear()
            services.sign_in(db.session(), session, user, remember=bool(pending.get("remember")))
            return redirect(_safe_next(pending.get("next")), code=303)
        form.code.errors.append(_("This code is not right or was already used. Wait for the next code and "
                                  "try again."))
    status = 422 if form.errors else 200
    return render("auth/login_code.html", status=status, form=form)


@bp.route("/account/two-factor", methods=["GET", "POST"])
@login_required
def two_factor():
    """Set up (or renew the recovery codes of) two-factor sign-in."""
    user = _own_row()
    if totp.enabled(user):
        return _two_factor_on(user, ConfirmIdentityForm(formdata=None))
    secret = session.get("2fa_new_secret") or totp.new_secret()
    session["2fa_new_secret"] = secret
    form = EnrolForm()
    if form.validate_on_submit():
        codes = totp.enable(db.session(), user, secret, form.code.data)
        if codes is not None:
            session.pop("2fa_new_secret", None)
            return render("auth/recovery_codes.html", codes=codes)
        form.code.errors.append(_("This code is not right. Check the time on your phone and enter the "
                                  "code the app shows now."))
    status = 422 if form.errors else 200
    return render("auth/two_factor.html", status=status, enabled=False, form=form, secret=secret,
                  qr=totp.qr_data_uri(user, secret), required=totp.required(user))


def _two_factor_on(user, form, status: int = 200):
    return render("auth/two_factor.html", status=status, enabled=True, form=form,
                  remaining=totp.remaining_recovery_codes(db.session(), user))


def _identity_confirmed(user, form) -> bool:
    """The password or a current code was given (checked after the form itself is valid)."""
    if not form.validate_on_submit():
        return False
    if services.confirm_identity(db.session(), user, form.proof.data):
        return True
    form.proof.errors.append(_("This is neither your password nor a current code. Try again."))
    return False


@bp.post("/account/two-factor/recovery-codes")
@login_required
@limiter.limit(_login_limit)
def new_recovery_codes():
    """Replace the recovery codes (the old ones stop working); needs the password or a current code."""
    user = _own_row()
    if not totp.enabled(user):
        return redirect(url_for("auth.two_factor"), code=303)
    form = ConfirmIdentityForm()
    if not _identity_confirmed(user, form):
        return _two_factor_on(user, form, 422)
    return render("auth/recovery_codes.html", codes=totp.regenerate_recovery_codes(db.session(), user))


@bp.post("/account/two-factor/off")
@login_required
@limiter.limit(_login_limit)
def two_factor_off():
    """Switch two-factor sign-in off, where the role allows it; needs the password or a current code."""
    user = _own_row()
    if totp.required(user):
        abort(404)
    form = ConfirmIdentityForm()
    if not _identity_confirmed(user, form):
        return _two_factor_on(user, form, 422)
    totp.disable(db.session(), user, user)
    services.sign_out(db.session(), session, user)
    device_drafts_forget_all()
    flash(_("Two-factor sign-in is off. Please sign in again."), "info")
    return redirect(url_for("auth.login"), code=303)


@bp.post("/logout")
@login_required
def logout():
    """Sign out of this browser (its session ends on the server too; other devices stay signed in)."""
    services.sign_out(db.session(), session, _own_row())
    device_drafts_forget_all()
    flash(_("You are signed out."), "info")
    return redirect(url_for("auth.login"), code=303)


def _password_link(purpose: str, token: str, title: str):
    found = services.find_token(db.session(), token, purpose)
    if found is None:
        return render("auth/link_expired.html", status=404, title=title)
    form = SetPasswordForm()
    if form.validate_on_submit():
        try:
            services.use_token(db.session(), token, purpose, form.password.data)
        except services.AccountError as exc:
            put_on_form(form, exc, field="password")
        else:
            flash(_("Your password is saved. You can sign in now."), "success")
            return redirect(url_for("auth.login"), code=303)
    status = 422 if form.errors else 200
    return render("auth/set_password.html", "auth/_set_password_form.html", status, form=form, title=title)


@bp.route("/invitation/<token>", methods=["GET", "POST"])
def accept_invitation(token: str):
    """Accept an invitation by choosing a password."""
    return _password_link(services.INVITE, token, _("Welcome – %(portal)s", portal=current_app.config["PORTAL_NAME"]))


@bp.route("/reset/<token>", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def reset_password(token: str):
    """Choose a new password through a reset link."""
    return _password_link(services.RESET, token, _("Choose a new password"))


@bp.route("/reset", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
@limiter.limit(_account_limit, methods=["POST"], key_func=_form_account, exempt_when=_no_form_account)
def request_reset():
    """Ask for a password reset link."""
    form = ResetRequestForm()
    if form.validate_on_submit():
        # Queued only: the outbox is sent by the mail job, never in this request (its time would tell
        # whether the address has an account).
        services.request_reset(db.session(), form.email.data)
        flash(_("If an account exists for this address, we have sent a link to reset the password. "
                "It works for one hour."), "info")
        return redirect(url_for("auth.login"), code=303)
    status = 422 if form.errors else 200
    return render("auth/reset_request.html", status=status, form=form)


@bp.post("/language")
def set_language():
    """Switch the interface language (works before and after sign-in)."""
    form = LanguageForm()
    if form.validate_on_submit():
        session["lang"] = form.lang.data
        if current_user.is_authenticated:
            services.set_locale(db.session(), _own_row(), form.lang.data)
    return redirect(_safe_next(request.form.get("next")), code=303)


# While a staff member or admin has not set up two-factor sign-in, these are the only pages open.
_ENROLMENT_ENDPOINTS = {"auth.two_factor", "auth.logout", "auth.set_language", "static"}


@bp.before_app_request
def _end_expired_session():
    """Sign out a session that was idle too long or has passed its absolute lifetime; send staff who
    have no second factor yet to set one up."""
    if not current_user.is_authenticated:
        return None
    if services.session_expired(session, current_app.config):
        services.sign_out(db.session(), session, _own_row())
        flash(_("Your session has ended. Please sign in again."), "info")
        return None
    if totp.required(current_user) and not totp.enabled(current_user) \
            and request.endpoint not in _ENROLMENT_ENDPOINTS:
        flash(_("Set up two-factor sign-in to continue."), "info")
        return redirect(url_for("auth.two_factor"))
    return None


@bp.post("/account/sign-out-everywhere")
@login_required
def sign_out_everywhere():
    """End every session of this account, on every device, this one included."""
    services.end_all_sessions(db.session(), _own_row())
    services.sign_out(db.session(), session, None)
    flash(_("You are signed out on every device."), "info")
    return redirect(url_for("auth.login"), code=303)


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account():
    """Show the account and change the password."""
    form = ChangePasswordForm()
    if form.validate_on_submit():
        user = _own_row()
        try:
            services.change_password(db.session(), user, form.current.data, form.password.data)
        except services.AccountError as exc:
            put_on_form(form, exc, field="")
        else:
            services.sign_in(db.session(), session, user)  # a new session, for this browser only
            flash(_("Your password is changed. Other devices are signed out."), "success")
            return redirect(url_for("auth.account"), code=303)
    status = 422 if form.errors or form.form_errors else 200
    return render("auth/account.html", status=status, form=form, digest_form=_digest_form())


def _digest_form() -> DigestForm:
    return DigestForm(data={"mail_digest": current_user.mail_digest})


@bp.post("/account/mail-digest")
@login_required
def mail_digest():
    """Turn the e-mails about decisions and comments on or off."""
    form = DigestForm()
    if form.validate_on_submit():
        notifications.set_mail_digest(db.session(), _own_row(), bool(form.mail_digest.data))
        flash(_("E-mails about decisions and comments are on.") if form.mail_digest.data
              else _("E-mails about decisions and comments are off."), "success")
    return redirect(url_for("auth.account", _anchor="mail-digest"), code=303)


# User management (admin: everyone; staff: partner accounts) ---------------------------------------

@bp.get("/users/")
@services.staff_required
def users():
    """List the accounts the current user manages."""
    return render("auth/users.html", users=services.users_visible_to(db.session(),
                  current_user), org_names=orgs.names(db.session()))


@bp.route("/users/invite", methods=["GET", "POST"])
@services.staff_required
def invite():
    """Invite a person by e-mail."""
    form = InviteForm()
    form.organisation_id.choices = [(0, "—")] + orgs.choices(db.session())
    if current_user.role != Role.ADMIN:
        form.role.choices = [c for c in form.role.choices if c[0] == Role.PARTNER]
    if form.validate_on_submit():
        try:
            services.invite_user(db.session(), current_user, email=form.email.data, name=form.name.data,
                                 role=form.role.data, organisation_id=form.organisation_id.data or None,
                                 locale=form.locale.data)
        except services.AccountError as exc:
            put_on_form(form, exc, field="")
        else:
            flash(_("Invitation sent to %(email)s.", email=form.email.data), "success")
            return redirect(url_for("auth.users"), code=303)
    status = 422 if form.errors or form.form_errors else 200
    return render("auth/invite.html", "auth/_invite_form.html", status, form=form)


@bp.post("/users/<int:user_id>/active")
@services.staff_required
def toggle_active(user_id: int):
    """Disable or enable an account."""
    user = services.get_user_for(db.session(), current_user, user_id)
    try:
        services.set_active(db.session(), current_user, user, not user.active)
    except services.AccountError as exc:
        flash(str(exc), "error")
    else:
        flash(_("Account enabled.") if user.active else _("Account disabled and signed out."), "success")
    return redirect(url_for("auth.users"), code=303)


@bp.post("/users/<int:user_id>/two-factor-reset")
@services.admin_required
def reset_two_factor(user_id: int):
    """Switch off someone's two-factor sign-in (lost phone); they set it up again at the next sign-in."""
    user = services.get_user_for(db.session(), current_user, user_id)
    totp.disable(db.session(), _own_row(), user)
    flash(_("Two-factor sign-in of %(email)s was reset.", email=user.email), "success")
    return redirect(url_for("auth.users"), code=303)


@bp.post("/users/<int:user_id>/resend")
@services.staff_required
def resend(user_id: int):
    """Send a fresh invitation link."""
    user = services.get_user_for(db.session(), current_user, user_id)
    try:
        services.resend_invitation(db.session(), current_user, user)
    except services.AccountError as exc:
        flash(str(exc), "error")
    else:
        flash(_("Invitation sent to %(email)s.", email=user.email), "success")
    return redirect(url_for("auth.users"), code=303)
