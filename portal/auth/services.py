"""Accounts: passwords, sign-in, single-use links for invitations and resets, roles."""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import timedelta
from functools import cache, wraps

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import abort, current_app, render_template, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import bindparam
from sqlmodel import Session, delete, func, select
from zxcvbn import zxcvbn

from portal import audit, db, mail
from portal.auth.models import AccountToken, Role, SignedInUser, User, UserSession
from portal.clock import utcnow
from portal.orgs.models import Organisation
from portal.rules import RuleError

hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
_DUMMY_HASH = hasher.hash("a password nobody has, to spend the same time on unknown e-mails")
MIN_PASSWORD = 12
MAX_PASSWORD = 256
INVITE, RESET = "invite", "reset"


class AccountError(RuleError):
    """A rule of accounts was broken; the message is for the user."""


def normalise_email(email: str) -> str:
    return email.strip().lower()


def password_problem(password: str, user_inputs: list[str] | None = None) -> str | None:
    """Why a new password is refused, or None. Length and commonness only, no composition rules."""
    if len(password) < MIN_PASSWORD:
        return _("Use at least %(n)s characters.", n=MIN_PASSWORD)
    if len(password) > MAX_PASSWORD:
        return _("Use at most %(n)s characters.", n=MAX_PASSWORD)
    if zxcvbn(password[:100], user_inputs=user_inputs or [])["score"] < 3:
        return _("This password is too common or too easy to guess. Try a few unrelated words.")
    return None


def set_password(db_: Session, user: User, password: str) -> None:
    """Store a new password and end every session the user had."""
    user.password_hash = hasher.hash(password)
    _end_sessions_of(db_, [user])
    db_.add(user)


def _end_sessions_of(db_: Session, users: list[User]) -> None:
    """Every session and remember-me cookie of these users stops working (not committed)."""
    for user in users:
        user.session_version += 1
        db_.add(user)
    ids = [u.id for u in users]
    if ids:
        db_.exec(delete(UserSession).where(UserSession.user_id.in_(ids)))


def sign_in(db_: Session, session, user: User, remember: bool = False) -> None:
    """Sign the user in on this browser with a new server-side session: its random id goes into the
    session and remember-me cookies, only its hash into the database. Sessions older than the absolute
    lifetime are cleared out on the way."""
    max_age = timedelta(hours=current_app.config["SESSION_MAX_HOURS"])
    db_.exec(delete(UserSession).where(UserSession.created_at < utcnow() - max_age))
    raw = secrets.token_urlsafe(32)
    db_.add(UserSession(user_id=user.id, token_hash=_hash_token(raw)))
    db_.commit()
    user._session_id = raw
    login_user(user, remember=remember)
    start_session(session, user)


def sign_out(db_: Session, session, user: User | None) -> None:
    """End this browser's session on the server too: a copy of its cookies no longer signs anyone in.
    The user's other sessions (other devices) go on."""
    raw = getattr(user, "_session_id", None) if user is not None else None
    if raw:
        db_.exec(delete(UserSession).where(UserSession.token_hash == _hash_token(raw)))
        db_.commit()
    logout_user()
    session.clear()


def start_session(session, user: User) -> None:
    """Stamp a new signed-in session: its start (absolute lifetime) and last request (idle timeout)."""
    now = int(time.time())
    session.permanent = True  # the cookie expires after the idle time unless a request renews it
    session["auth_at"] = now
    session["seen_at"] = now
    session["lang"] = user.locale or session.get("lang")


def session_expired(session, config) -> bool:
    """True when the session was idle too long or is older than its absolute lifetime. A session
    restored from the remember-me cookie starts again (the cookie itself lives SESSION_MAX_HOURS)."""
    now = int(time.time())
    auth_at, seen_at = session.get("auth_at"), session.get("seen_at")
    if auth_at is None or seen_at is None:
        session.permanent = True
        session["auth_at"] = session["seen_at"] = now
        return False
    if now - seen_at > config["SESSION_IDLE_MINUTES"] * 60:
        return True
    if now - auth_at > config["SESSION_MAX_HOURS"] * 3600:
        return True
    if now - seen_at >= SEEN_AT_STEP:
        session["seen_at"] = now  # the session changes, so this response renews the cookie
    return False


# The idle time is kept to the minute: the session (and its cookie) changes at most once a minute instead of
# on every request. A cookie written on every response is costly (signed and sent each time) and racy: an
# answer that arrives late (an autosave sent just before a form's submission) carries the older session and
# overwrites what the newer request put there (a flash message, a device copy to drop). SESSION_REFRESH_EACH_
# REQUEST is off, so an unchanged session sends no cookie at all.
SEEN_AT_STEP = 60


def end_all_sessions(db_: Session, user: User) -> None:
    """Sign the user out everywhere: every session cookie and remember-me cookie stops working."""
    _end_sessions_of(db_, [user])
    audit.record(db_, user, "user.signed_out_everywhere", user)
    db_.commit()


def pending_two_factor_user(db_: Session, pending: dict | None) -> User | None:
    """The user between password and code, if that step is recent (5 minutes) and still valid."""
    if not pending or int(time.time()) - pending.get("at", 0) > 300:
        return None
    user = db_.get(User, pending.get("user"))
    return user if may_sign_in(db_, user) else None


def may_sign_in(db_: Session, user: User | None) -> bool:
    """An enabled account with a password, of an active organisation (or of none: staff)."""
    if user is None or not user.is_active:
        return False
    if user.organisation_id is None:
        return True
    org = db_.get(Organisation, user.organisation_id)
    return org is not None and org.active


@cache
def _user_statement():
    """load_user()'s statement, built once (the values are bound parameters)."""
    # The session row's two columns, not a UserSession object, and the user's columns into a SignedInUser:
    # building and tracking ORM objects costs more than the whole statement.
    return (select(*(getattr(User, name) for name in SignedInUser.COLUMNS),
                   User.password_hash.is_not(None).label("has_password"),
                   UserSession.user_id.label("session_user_id"), UserSession.created_at.label("session_created_at"),
                   Organisation.active.label("org_active"))
            .outerjoin(UserSession, (UserSession.user_id == User.id)
                       & (UserSession.token_hash == bindparam("token_hash")))
            .outerjoin(Organisation, Organisation.id == User.organisation_id)
            .where(User.id == bindparam("user_id")))


def load_user(user_id: str) -> SignedInUser | None:
    """Flask-Login loader: the id carries the session version ("sign out everywhere") and the server-side
    session id (this browser's sign-out), so old cookies stop working."""
    uid, version, sid = (user_id.split(":") + ["", ""])[:3]
    if not (uid.isdigit() and version.isdigit() and sid) or len(sid) > 100:
        return None
    # One statement on every request: the user, this browser's session row and the organisation's state
    # (the same checks as may_sign_in()).
    found = db.session().connection().execute(
        _user_statement(), {"token_hash": _hash_token(sid), "user_id": int(uid)}).first()
    if found is None:
        return None
    if not found.active or not found.has_password or (found.organisation_id is not None and not found.org_active):
        return None
    if found.session_version != int(version):
        return None
    max_age = timedelta(hours=current_app.config["SESSION_MAX_HOURS"])
    if found.session_user_id != found.id or found.session_created_at < utcnow() - max_age:
        return None
    return SignedInUser(found, sid)


def account_row(db_: Session, user: SignedInUser | User) -> User:
    """The signed-in user's own row, for what changes the account (current_user is read-only)."""
    if isinstance(user, User):
        return user
    row = db_.get(User, user.id)
    row._session_id = user._session_id
    return row


def authenticate(db_: Session, email: str, password: str) -> User | None:
    """The user if the e-mail and password match an active account; the same work either way."""
    user = db_.exec(select(User).where(User.email == normalise_email(email))).first()
    hashed = user.password_hash if user and user.password_hash else _DUMMY_HASH
    try:
        hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return None
    if not may_sign_in(db_, user):
        return None
    if hasher.check_needs_rehash(hashed):
        user.password_hash = hasher.hash(password)
    user.last_login_at = utcnow()
    db_.add(user)
    db_.commit()
    return user


def require_roles(*roles: Role):
    """Signed in with one of the roles; anyone else gets a 404, as if the page did not exist."""

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if current_user.role not in roles:
                abort(404)
            return view(*args, **kwargs)

        return wrapped

    return decorator


staff_required = require_roles(Role.STAFF, Role.ADMIN)
admin_required = require_roles(Role.ADMIN)


# Single-use links -------------------------------------------------------------------------------

def _hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def issue_token(db_: Session, user: User, purpose: str, lifetime: timedelta) -> str:
    """A new link token; earlier unused tokens of the same purpose stop working."""
    for old in db_.exec(select(AccountToken).where(AccountToken.user_id == user.id,
                                                   AccountToken.purpose == purpose,
                                                   AccountToken.used_at.is_(None))):
        old.used_at = utcnow()
        db_.add(old)
    raw = secrets.token_urlsafe(32)
    db_.add(AccountToken(user_id=user.id, purpose=purpose, token_hash=_hash_token(raw),
                         expires_at=utcnow() + lifetime))
    return raw


def find_token(db_: Session, raw: str, purpose: str) -> AccountToken | None:
    """The valid (unused, unexpired) token for this link, or None."""
    if not raw or len(raw) > 100:
        return None
    token = db_.exec(select(AccountToken).where(AccountToken.token_hash == _hash_token(raw),
                                                AccountToken.purpose == purpose)).first()
    if token is None or token.used_at is not None or token.expires_at < utcnow():
        return None
    return token


def use_token(db_: Session, raw: str, purpose: str, password: str, actor_ip: str | None = None) -> User:
    """Set the password through a link and spend the link."""
    token = find_token(db_, raw, purpose)
    if token is None:
        raise AccountError(_("This link has expired or was already used. Ask for a new one."))
    user = db_.get(User, token.user_id)
    problem = password_problem(password, [user.email, user.name])
    if problem:
        raise AccountError(problem)
    token.used_at = utcnow()
    set_password(db_, user, password)
    audit.record(db_, user, f"user.{purpose}_used", user)
    db_.add(token)
    db_.commit()
    return user


def _link_mail(db_: Session, user: User, purpose: str, raw: str) -> None:
    endpoint = "auth.accept_invitation" if purpose == INVITE else "auth.reset_password"
    link = current_app.config["BASE_URL"].rstrip("/") + url_for(endpoint, token=raw)
    with force_locale(user.locale or current_app.config["BABEL_DEFAULT_LOCALE"]):
        if purpose == INVITE:
            subject = _("Your invitation: %(portal)s", portal=current_app.config["PORTAL_NAME"])
            hours = current_app.config["INVITATION_HOURS"]
        else:
            subject = _("%(portal)s: reset your password", portal=current_app.config["PORTAL_NAME"])
            hours = max(1, current_app.config["RESET_MINUTES"] // 60)
        body = render_template(f"auth/mail_{purpose}.txt", user=user, link=link, hours=hours)
    mail.queue(db_, user.email, subject, body)


def invite_user(db_: Session, actor: User, *, email: str, name: str, role: str,
                organisation_id: int | None, locale: str) -> User:
    """Create an account without a password and send its invitation link."""
    email = normalise_email(email)
    if actor.role != Role.ADMIN and role != Role.PARTNER:
        raise AccountError(_("Only an administrator can invite staff or administrators."))
    if role == Role.PARTNER:
        org = db_.get(Organisation, organisation_id) if organisation_id else None
        if org is None:
            raise AccountError(_("A partner user needs a partner organisation."))
    else:
        organisation_id = None
    if db_.exec(select(User).where(User.email == email)).first():
        raise AccountError(_("There is already an account with this e-mail address."))
    user = User(email=email, name=name.strip(), role=role, organisation_id=organisation_id, locale=locale)
    db_.add(user)
    db_.flush()
    raw = issue_token(db_, user, INVITE, timedelta(hours=current_app.config["INVITATION_HOURS"]))
    _link_mail(db_, user, INVITE, raw)
    audit.record(db_, actor, "user.invited", user, after=audit.snapshot(
        user, ("email", "name", "role", "organisation_id", "locale")))
    db_.commit()
    return user


def resend_invitation(db_: Session, actor: User, user: User) -> None:
    if user.password_hash is not None:
        raise AccountError(_("This user has already accepted the invitation."))
    raw = issue_token(db_, user, INVITE, timedelta(hours=current_app.config["INVITATION_HOURS"]))
    _link_mail(db_, user, INVITE, raw)
    audit.record(db_, actor, "user.invitation_resent", user)
    db_.commit()


def request_reset(db_: Session, email: str) -> None:
    """Queue a reset link in the outbox if the account exists; the caller says the same thing either way.
    Nothing is sent during the request, and an unknown address costs the same work (a token made and
    hashed, the mail written), so neither the answer nor its time tells whether the address has an
    account."""
    user = db_.exec(select(User).where(User.email == normalise_email(email))).first()
    if user is None or not may_sign_in(db_, user):
        raw = secrets.token_urlsafe(32)
        _hash_token(raw)
        with force_locale(current_app.config["BABEL_DEFAULT_LOCALE"]):
            render_template("auth/mail_reset.txt", user=User(email=normalise_email(email)[:254], name="",
                            role=Role.PARTNER), link=current_app.config["BASE_URL"] + raw, hours=1)
        db_.rollback()
        return
    raw = issue_token(db_, user, RESET, timedelta(minutes=current_app.config["RESET_MINUTES"]))
    _link_mail(db_, user, RESET, raw)
    db_.commit()


def confirm_identity(db_: Session, user: User, proof: str) -> bool:
    """The current password, or a code of the user's second factor (used up like at sign-in)."""
    from portal.auth import totp

    proof = (proof or "").strip()
    if not proof or user.password_hash is None:
        return False
    if len(proof) < MIN_PASSWORD and totp.verify(db_, user, proof):
        return True
    try:
        return hasher.verify(user.password_hash, proof)
    except (VerificationError, InvalidHashError):
        return False


def change_password(db_: Session, user: User, current: str, new: str) -> None:
    try:
        hasher.verify(user.password_hash, current)
    except (VerificationError, InvalidHashError):
        raise AccountError(_("The current password is not right.")) from None
    problem = password_problem(new, [user.email, user.name])
    if problem:
        raise AccountError(problem)
    set_password(db_, user, new)
    audit.record(db_, user, "user.password_changed", user)
    db_.commit()


def set_active(db_: Session, actor: User, user: User, active: bool) -> None:
    """Enable or disable an account; disabling ends its sessions."""
    if user.id == actor.id:
        raise AccountError(_("You cannot disable your own account."))
    if actor.role != Role.ADMIN and user.role != Role.PARTNER:
        raise AccountError(_("Only an administrator can change staff accounts."))
    before = {"active": user.active}
    user.active = active
    _end_sessions_of(db_, [user])
    audit.record(db_, actor, "user.enabled" if active else "user.disabled", user, before, {"active": active})
    db_.commit()


def end_sessions_of_organisation(db_: Session, org_id: int) -> int:
    """Sign out every user of an organisation (it was deactivated); not committed."""
    users = list(db_.exec(select(User).where(User.organisation_id == org_id)))
    _end_sessions_of(db_, users)
    return len(users)


def set_locale(db_: Session, user: User, locale: str) -> None:
    user.locale = locale
    db_.add(user)
    db_.commit()


def users_visible_to(db_: Session, actor: User) -> list[User]:
    """Admins see every account; staff see partner accounts."""
    query = select(User).order_by(User.role, User.email)
    if actor.role != Role.ADMIN:
        query = query.where(User.role == Role.PARTNER)
    return list(db_.exec(query))


def get_user_for(db_: Session, actor: User, user_id: int) -> User:
    """A user the actor may manage, or 404."""
    user = db_.get(User, user_id)
    if user is None or (actor.role != Role.ADMIN and user.role != Role.PARTNER):
        abort(404)
    return user


def create_user(db_: Session, *, email: str, name: str, role: str, organisation_id: int | None,
                password: str, locale: str | None = None, check_password: bool = True) -> User:
    """Create a ready account (CLI and demo data)."""
    if role not in tuple(Role):
        raise AccountError(f"unknown role {role!r}")
    if role == Role.PARTNER and organisation_id is None:
        raise AccountError("a partner user needs an organisation")
    if check_password:
        problem = password_problem(password, [email, name])
        if problem:
            raise AccountError(problem)
    user = User(email=normalise_email(email), name=name, role=role, organisation_id=organisation_id,
                locale=locale, password_hash=hasher.hash(password))
    db_.add(user)
    db_.flush()
    audit.record(db_, None, "user.created", user, after=audit.snapshot(user, ("email", "role")))
    db_.commit()
    return user


def count_users(db_: Session) -> int:
    return db_.exec(select(func.count()).select_from(User)).one()
