"""One configuration, read from the environment. Every setting is listed in the README."""

from __future__ import annotations

import os
import secrets
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LANGUAGES = ("en", "de", "fr", "ar", "ru")
RTL_LANGUAGES = ("ar",)


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _dev_secret_key(instance: Path) -> str:
    """A development key, generated once and kept so sessions survive restarts."""
    path = instance / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


class ConfigError(RuntimeError):
    """The environment does not describe a runnable portal."""


def _proxy_and_limit_settings(env: dict[str, str]) -> dict:
    """Trusted proxies (for ProxyFix) and the rate limits besides LOGIN_RATE_LIMIT, checked at start-up."""
    from limits import parse_many

    raw = env.get("TRUSTED_PROXIES", "0").strip() or "0"
    if not raw.isdigit():
        raise ConfigError(f"TRUSTED_PROXIES must be a whole number of proxies in front of the portal "
                          f"(0: none), not {raw!r}.")
    settings = {
        "TRUSTED_PROXIES": int(raw),
        "ACCOUNT_RATE_LIMIT": env.get("ACCOUNT_RATE_LIMIT", "5 per minute"),
        "WORKSHOP_RATE_LIMIT": env.get("WORKSHOP_RATE_LIMIT", "20 per hour"),
        # Names in a Redis shared with other installations (staging beside production, the tests).
        "RATELIMIT_KEY_PREFIX": env.get("RATELIMIT_KEY_PREFIX", ""),
        "TASK_QUEUE_NAME": env.get("TASK_QUEUE_NAME", "integplan"),
    }
    limits = {"LOGIN_RATE_LIMIT": env.get("LOGIN_RATE_LIMIT", "10 per minute"), **settings}
    for key in ("LOGIN_RATE_LIMIT", "ACCOUNT_RATE_LIMIT", "WORKSHOP_RATE_LIMIT"):
        value = limits[key]
        try:
            parse_many(value)
        except ValueError:
            raise ConfigError(f"{key} is not a rate limit such as '10 per minute': {value!r}.") from None
    return settings


def limiter_storage_error(config: dict, workers: int) -> str | None:
    """Why this rate limit storage cannot serve a production portal with this many worker processes."""
    if config.get("PORTAL_ENV") == "production" and workers > 1 \
            and config.get("RATELIMIT_STORAGE_URI", "memory://").startswith("memory://"):
        return (f"RATELIMIT_STORAGE_URI=memory:// counts attempts in each process: with {workers} workers an "
                "attacker gets every limit once per worker. Set RATELIMIT_STORAGE_URI to a shared store, "
                "e.g. redis://127.0.0.1:6379 (or run a single worker).")
    return None


def load_config(env: dict[str, str] | None = None) -> dict:
    """Build the Flask config dict from environment variables."""
    env = dict(os.environ if env is None else env)
    instance = Path(env.get("PORTAL_INSTANCE_DIR", ROOT / "instance"))
    portal_env = env.get("PORTAL_ENV", "development")
    production = portal_env == "production"

    secret = env.get("SECRET_KEY", "")
    if not secret:
        if production:
            raise ConfigError("SECRET_KEY must be set when PORTAL_ENV=production.")
        secret = _dev_secret_key(instance)

    project_start = date.fromisoformat(env.get("PROJECT_START", "2023-11-01"))
    project_end = date.fromisoformat(env.get("PROJECT_END", "2025-12-31"))

    return {
        "PORTAL_ENV": portal_env,
        "SECRET_KEY": secret,
        "INSTANCE_DIR": str(instance),
        "DATABASE_URL": env.get("DATABASE_URL", f"sqlite:///{instance / 'portal.db'}"),
        # Storage: "local" (a directory) or "s3" (any S3-compatible server).
        "STORAGE_BACKEND": env.get("STORAGE_BACKEND", "local"),
        "STORAGE_LOCAL_DIR": env.get("STORAGE_LOCAL_DIR", str(instance / "files")),
        "S3_ENDPOINT_URL": env.get("S3_ENDPOINT_URL", ""),
        "S3_BUCKET": env.get("S3_BUCKET", "integplan-portal"),
        "S3_REGION": env.get("S3_REGION", env.get("AWS_DEFAULT_REGION", "us-east-1")),
        "S3_PRESIGN_SECONDS": int(env.get("S3_PRESIGN_SECONDS", "300")),
        # Mail
        "MAIL_SERVER": env.get("MAIL_SERVER", "127.0.0.1"),
        "MAIL_PORT": int(env.get("MAIL_PORT", "1025")),
        "MAIL_USERNAME": env.get("MAIL_USERNAME", ""),
        "MAIL_PASSWORD": env.get("MAIL_PASSWORD", ""),
        "MAIL_USE_TLS": _bool(env.get("MAIL_USE_TLS"), False),
        "MAIL_SENDER": env.get("MAIL_SENDER", "IntegPlan Portal <portal@example.org>"),
        "MAIL_TIMEOUT": float(env.get("MAIL_TIMEOUT", "10")),
        "BASE_URL": env.get("BASE_URL", "http://127.0.0.1:5000"),
        # Languages
        "LANGUAGES": tuple(env.get("LANGUAGES", ",".join(LANGUAGES)).split(",")),
        "BABEL_DEFAULT_LOCALE": env.get("DEFAULT_LANGUAGE", "en"),
        "BABEL_DEFAULT_TIMEZONE": env.get("TIMEZONE", "Europe/Berlin"),
        "BABEL_TRANSLATION_DIRECTORIES": str(ROOT / "translations"),
        # Accounts
        "INVITATION_HOURS": int(env.get("INVITATION_HOURS", "72")),
        "RESET_MINUTES": int(env.get("RESET_MINUTES", "60")),
        # Roles that must sign in with a second factor (TOTP); in development none, so the demo is quick.
        "TOTP_REQUIRED_ROLES": tuple(r for r in env.get(
            "TOTP_REQUIRED_ROLES", "staff,admin" if production else "").split(",") if r),
        # Sessions end after this long without a request, and this long after sign-in in any case.
        "SESSION_IDLE_MINUTES": int(env.get("SESSION_IDLE_MINUTES", "30")),
        "SESSION_MAX_HOURS": int(env.get("SESSION_MAX_HOURS", "12")),
        # The task queue (Huey): a SQLite file for one machine, Redis when several servers share the work.
        "TASK_QUEUE_URL": env.get("TASK_QUEUE_URL", f"sqlite:///{instance / 'tasks.db'}"),
        "RATELIMIT_STORAGE_URI": env.get("RATELIMIT_STORAGE_URI", "memory://"),
        "RATELIMIT_ENABLED": _bool(env.get("RATELIMIT_ENABLED"), True),
        "LOGIN_RATE_LIMIT": env.get("LOGIN_RATE_LIMIT", "10 per minute"),
        **_proxy_and_limit_settings(env),
        # Project
        "PROJECT_START": project_start,
        "PROJECT_END": project_end,
        "MAX_CONTENT_LENGTH": int(env.get("MAX_CONTENT_LENGTH", str(110 * 1024 * 1024))),
        "RECEIPT_MAX_MB": int(env.get("RECEIPT_MAX_MB", "20")),
        # The navigation's review badges may be this old outside the review desk (0: count every time).
        "REVIEW_COUNTS_SECONDS": float(env.get("REVIEW_COUNTS_SECONDS", "15")),
        # Malware scanning through clamd; off when CLAMD_HOST is empty (files are then "unscanned").
        "CLAMD_HOST": env.get("CLAMD_HOST", ""),
        "CLAMD_PORT": int(env.get("CLAMD_PORT", "3310")),
        "CLAMD_TIMEOUT": float(env.get("CLAMD_TIMEOUT", "30")),
        # Cookies: Secure everywhere but on the development server's plain http.
        "SESSION_COOKIE_SECURE": _bool(env.get("COOKIE_SECURE"), production),
        "REMEMBER_COOKIE_SECURE": _bool(env.get("COOKIE_SECURE"), production),
        "SESSION_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "PERMANENT_SESSION_LIFETIME": timedelta(minutes=int(env.get("SESSION_IDLE_MINUTES", "30"))),
        "REMEMBER_COOKIE_DURATION": timedelta(hours=int(env.get("SESSION_MAX_HOURS", "12"))),
        "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session: long forms keep working
        "DEMO_DATA": _bool(env.get("DEMO_DATA"), False),
        # Retention (applied by `flask --app portal privacy retention` and `… workshop purge`, run daily)
        "CASE_RETENTION_DAYS": int(env.get("CASE_RETENTION_DAYS", "730")),
        "DRAFT_RETENTION_DAYS": int(env.get("DRAFT_RETENTION_DAYS", "60")),
        "MAIL_RETENTION_DAYS": int(env.get("MAIL_RETENTION_DAYS", "90")),
        "WORKSHOP_RETENTION_DAYS": int(env.get("WORKSHOP_RETENTION_DAYS", "30")),
    }
