"""Two-factor sign-in with time-based one-time codes (TOTP, RFC 6238) and one-time recovery codes.

The shared secret is stored encrypted (Fernet, key derived from SECRET_KEY); a code that was used
once cannot be used again (the last accepted time step is kept); recovery codes are stored hashed.
"""

from __future__ import annotations

import base64
import hashlib
import io
import secrets
import time

import pyotp
import qrcode
import qrcode.image.svg
from cryptography.fernet import Fernet, InvalidToken
from flask import current_app
from sqlmodel import Session, select

from portal import audit
from portal.auth.models import RecoveryCode, User
from portal.clock import utcnow

RECOVERY_CODES = 10
STEP = 30


def _fernet() -> Fernet:
    key = hashlib.sha256(("totp:" + current_app.config["SECRET_KEY"]).encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def _secret_of(user: User) -> str | None:
    if not user.totp_secret_enc:
        return None
    try:
        return _fernet().decrypt(user.totp_secret_enc.encode()).decode()
    except InvalidToken:
        return None


def enabled(user: User) -> bool:
    return bool(user.totp_secret_enc)


def required(user: User) -> bool:
    """Staff and admins must use two-factor sign-in (configurable: TOTP_REQUIRED_ROLES)."""
    return user.role in current_app.config["TOTP_REQUIRED_ROLES"]


def new_secret() -> str:
    return pyotp.random_base32()


def qr_data_uri(user: User, secret: str) -> str:
    """The enrolment QR code as an SVG data URI (an <img>, allowed by the CSP's img-src data:)."""
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=str(current_app.config["PORTAL_NAME"]))
    out = io.BytesIO()
    qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2).save(out)
    return "data:image/svg+xml;base64," + base64.b64encode(out.getvalue()).decode()


def _matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    code = "".join(ch for ch in code if ch.isdigit())
    if len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    current = int((now or time.time()) // STEP)
    for step in (current, current - 1, current + 1):  # one step of clock drift either way
        if secrets.compare_digest(totp.at(step * STEP), code):
            return step
    return None


def _hash(code: str) -> str:
    return hashlib.sha256(code.replace("-", "").replace(" ", "").lower().encode()).hexdigest()


def _new_recovery_codes(db: Session, user: User) -> list[str]:
    for old in db.exec(select(RecoveryCode).where(RecoveryCode.user_id == user.id)):
        db.delete(old)
    codes = [f"{secrets.token_hex(4)}-{secrets.token_hex(4)}" for _ in range(RECOVERY_CODES)]
    for code in codes:
        db.add(RecoveryCode(user_id=user.id, code_hash=_hash(code)))
    return codes


def enable(db: Session, user: User, secret: str, code: str) -> list[str] | None:
    """Turn two-factor sign-in on if the code proves the app has the secret; returns recovery codes."""
    step = _matching_step(secret, code)
    if step is None:
        return None
    user.totp_secret_enc = _fernet().encrypt(secret.encode()).decode()
    user.totp_last_step = step
    db.add(user)
    codes = _new_recovery_codes(db, user)
    audit.record(db, user, "user.two_factor_enabled", user)
    db.commit()
    return codes


def verify(db: Session, user: User, code: str) -> bool:
    """Check a sign-in code: a current TOTP code not used before, or an unused recovery code."""
    secret = _secret_of(user)
    if secret is None:
        return False
    step = _matching_step(secret, code)
    if step is not None:
        if user.totp_last_step is not None and step <= user.totp_last_step:
            return False  # replayed
        user.totp_last_step = step
        db.add(user)
        db.commit()
        return True
    hashed = _hash(code)
    for row in db.exec(select(RecoveryCode).where(RecoveryCode.user_id == user.id,
                                                  RecoveryCode.used_at.is_(None))):
        if secrets.compare_digest(row.code_hash, hashed):
            row.used_at = utcnow()
            db.add(row)
            audit.record(db, user, "user.recovery_code_used", user)
            db.commit()
            return True
    return False


def remaining_recovery_codes(db: Session, user: User) -> int:
    return len(db.exec(select(RecoveryCode.id).where(RecoveryCode.user_id == user.id,
                                                     RecoveryCode.used_at.is_(None))).all())


def regenerate_recovery_codes(db: Session, user: User) -> list[str]:
    codes = _new_recovery_codes(db, user)
    audit.record(db, user, "user.recovery_codes_renewed", user)
    db.commit()
    return codes


def disable(db: Session, actor: User, user: User) -> None:
    """Switch two-factor sign-in off (the user themself if optional, or an admin for a lost phone)."""
    user.totp_secret_enc = None
    user.totp_last_step = None
    user.session_version += 1
    db.add(user)
    for old in db.exec(select(RecoveryCode).where(RecoveryCode.user_id == user.id)):
        db.delete(old)
    audit.record(db, actor, "user.two_factor_reset" if actor.id != user.id else "user.two_factor_disabled", user)
    db.commit()
