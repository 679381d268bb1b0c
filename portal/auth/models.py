from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from flask_login import UserMixin
from sqlmodel import Field, SQLModel

from portal.clock import utcnow


class Role(StrEnum):
    ADMIN = "admin"
    STAFF = "staff"
    PARTNER = "partner"


class _Account(UserMixin):
    """What the account's row and the signed-in user (below) both answer: the id in the session cookie
    and the role's rights."""

    def get_id(self) -> str:
        # The session id (see UserSession) is set on the object at sign-in and by the user loader.
        return f"{self.id}:{self.session_version}:{getattr(self, '_session_id', '')}"

    @property
    def is_staff(self) -> bool:
        """Micado staff and admins: see every organisation."""
        return self.role in (Role.STAFF, Role.ADMIN)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


class User(_Account, SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True, index=True)
    name: str = Field(max_length=200)
    role: str = Field(max_length=16)
    organisation_id: int | None = Field(default=None, foreign_key="organisations.id", index=True)
    password_hash: str | None = Field(default=None, max_length=300)
    locale: str | None = Field(default=None, max_length=8)
    active: bool = True
    # Part of the session cookie: raising it ends every session of this user.
    session_version: int = 1
    # Two-factor sign-in: the TOTP secret, encrypted (portal.auth.totp), and the last time step used.
    totp_secret_enc: str | None = Field(default=None, max_length=300)
    totp_last_step: int | None = None
    created_at: datetime = Field(default_factory=utcnow)
    last_login_at: datetime | None = None
    # Digests of decisions and comments by e-mail (portal.notifications); the user may turn them off.
    mail_digest: bool = True
    last_digest_at: datetime | None = None

    @property
    def is_active(self) -> bool:
        return self.active and self.password_hash is not None


class SignedInUser(_Account):
    """current_user in a request: the columns of the user's row that views, templates and services read,
    loaded by one Core statement (auth.services.load_user). Building and tracking an ORM object on every
    request cost more than the rest of an empty signed-in request. Read-only: what changes the account
    (password, language, two-factor, digests, signing out) takes the row itself (services.account_row).
    The password hash stays in the database."""

    COLUMNS = ("id", "email", "name", "role", "organisation_id", "locale", "active", "session_version",
               "totp_secret_enc", "mail_digest")

    def __init__(self, row, session_id: str) -> None:
        for name in self.COLUMNS:
            setattr(self, name, getattr(row, name))
        self._session_id = session_id

    @property
    def is_active(self) -> bool:
        # load_user() returns no user for an account without a password or disabled.
        return self.active


class AccountToken(SQLModel, table=True):
    """A single-use link for an invitation or a password reset; only its hash is stored."""

    __tablename__ = "account_tokens"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    purpose: str = Field(max_length=16)
    token_hash: str = Field(max_length=64, unique=True)
    expires_at: datetime
    used_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class RecoveryCode(SQLModel, table=True):
    """A one-time code for two-factor sign-in without the phone; only its hash is stored."""

    __tablename__ = "recovery_codes"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    code_hash: str = Field(max_length=64)
    used_at: datetime | None = None


class UserSession(SQLModel, table=True):
    """One signed-in browser: its id is in the session and remember-me cookies (only the hash is stored).
    Signing out deletes the row, so a copy of those cookies is worth nothing afterwards."""

    __tablename__ = "user_sessions"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)
