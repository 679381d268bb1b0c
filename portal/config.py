"""One configuration, read from the environment. Every setting is listed in the README."""

from __future__ import annotations

import os
import secrets
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LANGUAGES = ("en", "de", "fr", "ar", "ru")
RTL_LANGUAGES = ("ar",)


TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class ConfigError(RuntimeError):
    """The environment does not describe a runnable portal."""


def _bad(name: str, value: str, expected: str) -> ConfigError:
    return ConfigError(f"{name}={value!r} is not valid: expected {expected}.")


def _bool(env: dict, name: str, default: bool) -> bool:
    value = (env.get(name) or "").strip().lower()
    if not value:
        return default
    if value in TRUE or value in FALSE:
        return value in TRUE
    raise _bad(name, env[name], "true or false (1/0, yes/no, on/off)")


def _int(env: dict, name: str, default: int, minimum: int | None = 0) -> int:
    value = env.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value.strip().replace("_", ""))
    except ValueError:
        raise _bad(name, value, "a whole number") from None
    if minimum is not None and number < minimum:
        raise _bad(name, value, f"a whole number of at least {minimum}")
    return number


def _float(env: dict, name: str, default: float, minimum: float = 0.0) -> float:
    value = env.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise _bad(name, value, "a number") from None
    if not number >= minimum:  # also refuses nan
        raise _bad(name, value, f"a number of at least {minimum:g}")
    return number


def _date(env: dict, name: str, default: str) -> date:
    value = env.get(name) or default
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise _bad(name, value, "a date like 2025-12-31") from None


def _choice(env: dict, name: str, default: str, choices: tuple[str, ...]) -> str:
    value = (env.get(name) or default).strip()
    if value not in choices:
        raise _bad(name, value, "one of " + ", ".join(choices))
    return value


def _rate(env: dict, name: str, default: str) -> str:
    """A Flask-Limiter rate such as "10 per minute" (several joined with ";")."""
    from limits import parse_many

    value = (env.get(name) or default).strip()
    try:
        parse_many(value)
    except ValueError:
        raise _bad(name, value, 'a rate like "20 per hour"') from None
    return value


def _text(env: dict, name: str, default):
    """An operator's text, shown as given; unset, the default is a msgid translated per reader."""
    value = (env.get(name) or "").strip()
    return value or default


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


def limiter_storage_error(config: dict, workers: int) -> str | None:
    """Why this rate limit storage cannot serve a production portal with this many worker processes (none
    when the limits are off, as in the benchmarks, which measure the pages and not the limiter)."""
    if config.get("PORTAL_ENV") == "production" and workers > 1 and config.get("RATELIMIT_ENABLED", True) \
            and config.get("RATELIMIT_STORAGE_URI", "memory://").startswith("memory://"):
        return (f"RATELIMIT_STORAGE_URI=memory:// counts attempts in each process: with {workers} workers an "
                "attacker gets every limit once per worker. Set RATELIMIT_STORAGE_URI to a shared store, "
                "e.g. redis://127.0.0.1:6379 (or run a single worker).")
    return None


def load_config(env: dict[str, str] | None = None) -> dict:
    """Build the Flask config dict from environment variables; a bad value stops the start with its name."""
    from flask_babel import lazy_gettext as _l

    env = dict(os.environ if env is None else env)
    instance = Path(env.get("PORTAL_INSTANCE_DIR", ROOT / "instance"))
    portal_env = _choice(env, "PORTAL_ENV", "development", ("development", "production"))
    production = portal_env == "production"

    secret = env.get("SECRET_KEY", "")
    if not secret:
        if production:
            raise ConfigError("SECRET_KEY must be set when PORTAL_ENV=production.")
        secret = _dev_secret_key(instance)

    project_start = _date(env, "PROJECT_START", "2023-11-01")
    project_end = _date(env, "PROJECT_END", "2025-12-31")
    if project_end < project_start:
        raise ConfigError(f"PROJECT_END={project_end} is before PROJECT_START={project_start}.")
    languages = tuple(code.strip() for code in env.get("LANGUAGES", ",".join(LANGUAGES)).split(",") if code.strip())
    for code in languages:
        if code not in LANGUAGES:
            raise _bad("LANGUAGES", env["LANGUAGES"], "a comma-separated list of " + ", ".join(LANGUAGES))
    default_language = _choice(env, "DEFAULT_LANGUAGE", "en", languages)
    roles = tuple(r.strip() for r in env.get("TOTP_REQUIRED_ROLES", "staff,admin" if production else "").split(",")
                  if r.strip())
    for role in roles:
        if role not in ("admin", "staff", "partner"):
            raise _bad("TOTP_REQUIRED_ROLES", env["TOTP_REQUIRED_ROLES"], "a comma-separated list of admin, "
                       "staff, partner")
    idle_minutes = _int(env, "SESSION_IDLE_MINUTES", 30, minimum=1)
    max_hours = _int(env, "SESSION_MAX_HOURS", 12, minimum=1)
    cookie_secure = _bool(env, "COOKIE_SECURE", production)

    return {
        "PORTAL_ENV": portal_env,
        "SECRET_KEY": secret,
        "INSTANCE_DIR": str(instance),
        "DATABASE_URL": env.get("DATABASE_URL", f"sqlite:///{instance / 'portal.db'}"),
        # Storage: "local" (a directory) or "s3" (any S3-compatible server).
        "STORAGE_BACKEND": _choice(env, "STORAGE_BACKEND", "local", ("local", "s3")),
        "STORAGE_LOCAL_DIR": env.get("STORAGE_LOCAL_DIR", str(instance / "files")),
        "S3_ENDPOINT_URL": env.get("S3_ENDPOINT_URL", ""),
        "S3_BUCKET": env.get("S3_BUCKET", "integplan-portal"),
        "S3_REGION": env.get("S3_REGION", env.get("AWS_DEFAULT_REGION", "us-east-1")),
        "S3_PRESIGN_SECONDS": _int(env, "S3_PRESIGN_SECONDS", 300, minimum=1),
        # Mail
        "MAIL_SERVER": env.get("MAIL_SERVER", "127.0.0.1"),
        "MAIL_PORT": _int(env, "MAIL_PORT", 1025, minimum=1),
        "MAIL_USERNAME": env.get("MAIL_USERNAME", ""),
        "MAIL_PASSWORD": env.get("MAIL_PASSWORD", ""),
        "MAIL_USE_TLS": _bool(env, "MAIL_USE_TLS", False),
        "MAIL_SENDER": env.get("MAIL_SENDER", "IntegPlan Portal <portal@example.org>"),
        "MAIL_TIMEOUT": _float(env, "MAIL_TIMEOUT", 10.0),
        # Digests of decisions and comments (`flask --app portal mail digests`): at most one per user this often.
        "DIGEST_MINUTES": _int(env, "DIGEST_MINUTES", 60, minimum=1),
        "BASE_URL": env.get("BASE_URL", "http://127.0.0.1:5000"),
        # Languages
        "LANGUAGES": languages,
        "BABEL_DEFAULT_LOCALE": default_language,
        "BABEL_DEFAULT_TIMEZONE": env.get("TIMEZONE", "Europe/Berlin"),
        "BABEL_TRANSLATION_DIRECTORIES": str(ROOT / "translations"),
        # Accounts
        "INVITATION_HOURS": _int(env, "INVITATION_HOURS", 72, minimum=1),
        "RESET_MINUTES": _int(env, "RESET_MINUTES", 60, minimum=1),
        # Roles that must sign in with a second factor (TOTP); in development none, so the demo is quick.
        "TOTP_REQUIRED_ROLES": roles,
        # Sessions end after this long without a request, and this long after sign-in in any case.
        "SESSION_IDLE_MINUTES": idle_minutes,
        "SESSION_MAX_HOURS": max_hours,
        # The task queue (Huey): a SQLite file for one machine, Redis when several servers share the work.
        "TASK_QUEUE_URL": env.get("TASK_QUEUE_URL", f"sqlite:///{instance / 'tasks.db'}"),
        "RATELIMIT_STORAGE_URI": env.get("RATELIMIT_STORAGE_URI", "memory://"),
        "RATELIMIT_ENABLED": _bool(env, "RATELIMIT_ENABLED", True),
        "LOGIN_RATE_LIMIT": _rate(env, "LOGIN_RATE_LIMIT", "10 per minute"),
        # Public workshop registration (and its resend/withdraw forms), per client address.
        "WORKSHOP_RATE_LIMIT": _rate(env, "WORKSHOP_RATE_LIMIT", "20 per hour"),
        "WORKSHOP_LINK_DAYS": _int(env, "WORKSHOP_LINK_DAYS", 30, minimum=1),
        "ANONYMOUS_MAX_BYTES": _int(env, "ANONYMOUS_MAX_BYTES", 128 * 1024, minimum=1024),
        # Behind proxies: how many append to X-Forwarded-For (Werkzeug's ProxyFix); 0 ignores the headers.
        "TRUSTED_PROXIES": _int(env, "TRUSTED_PROXIES", 0),
        # Failed sign-in / second-factor attempts per account, and reset requests per address, from anywhere.
        "ACCOUNT_RATE_LIMIT": _rate(env, "ACCOUNT_RATE_LIMIT", "5 per minute"),
        # Names in a Redis shared with other installations (staging beside production, the tests).
        "RATELIMIT_KEY_PREFIX": env.get("RATELIMIT_KEY_PREFIX", ""),
        "TASK_QUEUE_NAME": env.get("TASK_QUEUE_NAME", "integplan"),
        # Project
        "PROJECT_START": project_start,
        "PROJECT_END": project_end,
        # The project's total budget and its EU funding, in whole euros (the dashboard's figures).
        "PROJECT_BUDGET_EUR": _int(env, "PROJECT_BUDGET_EUR", 400_000, minimum=1),
        "PROJECT_FUNDING_EUR": _int(env, "PROJECT_FUNDING_EUR", 300_000),
        # Receipts above this many euros need a second, different staff member's approval.
        "RECEIPT_FOUR_EYES_EUR": _int(env, "RECEIPT_FOUR_EYES_EUR", 1000),
        # A receipt without a handover confirmation is flagged once its invoice is this many days old.
        "HANDOVER_DUE_DAYS": _int(env, "HANDOVER_DUE_DAYS", 30),
        # Names shown in the footer, page titles, mails and PDFs. Unset, the defaults are translated for
        # each reader; a value an operator sets is shown as given, in every language.
        "PORTAL_NAME": _text(env, "PORTAL_NAME", _l("IntegPlan portal")),
        "PROJECT_NAME": _text(env, "PROJECT_NAME", _l("IntegPlan Einzelfallförderung")),
        "GRANTEE_NAME": _text(env, "GRANTEE_NAME", "Micado Migration gGmbH"),
        "FUNDING_LINE": _text(env, "FUNDING_LINE", _l("Asylum, Migration and Integration Fund (AMIF)")),
        "EU_EMBLEM_TEXT": _text(env, "EU_EMBLEM_TEXT", _l("Co-funded by the European Union")),
        "MAX_CONTENT_LENGTH": _int(env, "MAX_CONTENT_LENGTH", 110 * 1024 * 1024, minimum=1024),
        "RECEIPT_MAX_MB": _int(env, "RECEIPT_MAX_MB", 20, minimum=1),
        # The navigation's review badges may be this old outside the review desk (0: count every time).
        "REVIEW_COUNTS_SECONDS": _float(env, "REVIEW_COUNTS_SECONDS", 15.0),
        # Malware scanning through clamd; off when CLAMD_HOST is empty (files are then "unscanned").
        "CLAMD_HOST": env.get("CLAMD_HOST", ""),
        "CLAMD_PORT": _int(env, "CLAMD_PORT", 3310, minimum=1),
        "CLAMD_TIMEOUT": _float(env, "CLAMD_TIMEOUT", 30.0),
        # Cookies: Secure everywhere but on the development server's plain http.
        "SESSION_COOKIE_SECURE": cookie_secure,
        "REMEMBER_COOKIE_SECURE": cookie_secure,
        "SESSION_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "PERMANENT_SESSION_LIFETIME": timedelta(minutes=idle_minutes),
        # Renewed when the session changes (at most once a minute for the idle time: auth.services.SEEN_AT_STEP).
        "SESSION_REFRESH_EACH_REQUEST": False,
        "REMEMBER_COOKIE_DURATION": timedelta(hours=max_hours),
        "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session: long forms keep working
        "WTF_I18N_ENABLED": True,  # WTForms' own messages in the user's language (Flask-WTF's default, named here)
        # Retention (applied by `flask --app portal privacy retention` and `… workshop purge`, run daily)
        "CASE_RETENTION_DAYS": _int(env, "CASE_RETENTION_DAYS", 730, minimum=1),
        "DRAFT_RETENTION_DAYS": _int(env, "DRAFT_RETENTION_DAYS", 60, minimum=1),
        "MAIL_RETENTION_DAYS": _int(env, "MAIL_RETENTION_DAYS", 90, minimum=1),
        "WORKSHOP_RETENTION_DAYS": _int(env, "WORKSHOP_RETENTION_DAYS", 30, minimum=1),
    }
