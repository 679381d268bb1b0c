"""The task queue (Huey): its app object and the periodic schedule. The jobs live in their features.

create_app() builds one Huey per app from TASK_QUEUE_URL — `sqlite:///…/tasks.db` (the embedded default)
or `redis://…` (production: every web server and worker on one Redis) — and registers every job on it,
each wrapped so it runs inside the app (a request context on BASE_URL: links and languages in mails work
as in a request). `flask --app portal worker` runs Huey's consumer with that app; the consumer's own
scheduler thread enqueues the periodic jobs unless `--no-periodic`.

A job is a plain function taking ids (DESIGN.md, convention 13), safe to run twice: it claims what it
works on or finds it done. Nothing is lost when a worker dies mid-job: the periodic catch-up jobs (mail
retry, rescan) find what is still waiting.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, current_app, has_app_context
from huey import Huey, MemoryHuey, PriorityRedisHuey, SqliteHuey, crontab

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Periodic:
    name: str
    job: str  # "module:function"
    schedule: dict  # crontab() keyword arguments
    every: str  # how the README and the tests name the interval


def _jobs() -> dict[str, str]:
    """Jobs enqueued by the portal itself (after a commit), by name."""
    return {
        "send_mail": "portal.mail:send_mail",
        "scan_file": "portal.scanning.services:scan_job",
        "fingerprint_file": "portal.receipts.neardup:fingerprint_job",
        "read_receipt": "portal.ocr.services:read_job",
        "read_upload": "portal.ocr.prefill:read_upload_job",
    }


# The periodic schedule. Times in UTC (huey's default); the daily jobs at night, spread out.
PERIODIC: tuple[Periodic, ...] = (
    Periodic("mail_retry", "portal.mail:retry_mail", {"minute": "*"}, "1 min"),
    Periodic("scan_rescan", "portal.scanning.services:rescan_job", {"minute": "*/10"}, "10 min"),
    Periodic("ocr_catchup", "portal.ocr.services:catchup_job", {"minute": "3-59/10"}, "10 min"),
    Periodic("receipts_sweep", "portal.receipts.sweep:sweep_job", {"minute": "5"}, "hourly"),
    Periodic("photos_sweep", "portal.visits.photos:sweep_photos_job", {"minute": "15"}, "hourly"),
    Periodic("privacy_retention", "portal.cases.retention:retention_job", {"minute": "30", "hour": "1"}, "daily"),
    Periodic("workshop_purge", "portal.workshop.services:purge_job", {"minute": "45", "hour": "1"}, "daily"),
    Periodic("audit_verify", "portal.audit:verify_job", {"minute": "0", "hour": "2"}, "daily"),
    Periodic("visits_digest", "portal.visits.due:digest_job", {"minute": "0", "hour": "5"}, "daily"),
    Periodic("notification_digests", "portal.notifications.services:digests_job", {"minute": "20"}, "hourly"),
)


def make_huey(url: str, name: str = "integplan") -> Huey:
    """The queue's storage from TASK_QUEUE_URL. Results are not kept: jobs record their effects in the database."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteHuey(name, filename=str(path), results=False, timeout=30)
    if url.startswith(("redis://", "rediss://", "unix://")):
        # Redis ≥ 5: mails (priority 10) go before the hourly sweeps.
        return PriorityRedisHuey(name, url=url, results=False)
    if url == "memory://":  # a single process only (tests of the queue itself)
        return MemoryHuey(name, results=False)
    from portal.config import ConfigError

    raise ConfigError(f"TASK_QUEUE_URL must be sqlite:///<path>, redis://… or memory://, not {url!r}.")


def _load(spec: str) -> Callable:
    import importlib

    module, _sep, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def _in_app(app: Flask, name: str, spec: str) -> Callable:
    """The job inside the app: a request context on BASE_URL (url_for, languages), its own database session."""

    def run(*args):
        func = _load(spec)
        with app.test_request_context("/", base_url=app.config["BASE_URL"]):
            return func(*args)

    run.__name__ = run.__qualname__ = name
    run.__module__ = __name__
    run.__doc__ = _load(spec).__doc__
    return run


# A file is read after its scan; an upload's suggestions (someone waits at the form) before the receipts.
PRIORITY = {"send_mail": 10, "scan_file": 5, "read_upload": 3, "read_receipt": 1}


def init_tasks(app: Flask) -> Huey:
    """Build the app's queue and register every job and the periodic schedule on it."""
    huey = make_huey(app.config["TASK_QUEUE_URL"], app.config.get("TASK_QUEUE_NAME") or "integplan")
    for name, spec in _jobs().items():
        huey.task(name=name, priority=PRIORITY.get(name), retries=2, retry_delay=30)(_in_app(app, name, spec))
    for item in PERIODIC:
        huey.periodic_task(crontab(**item.schedule), name=item.name)(_in_app(app, item.name, item.job))
    app.extensions["huey"] = huey
    return huey


def huey_of(app: Flask | None = None) -> Huey:
    return (app or current_app).extensions["huey"]


def enqueue(name: str, *args) -> bool:
    """Put a job on the current app's queue. Never fails the caller: when the queue cannot be reached the
    work is left where the periodic catch-up finds it (unsent mail, a pending scan). Returns whether queued."""
    if not has_app_context() or "huey" not in current_app.extensions:
        return False
    huey = huey_of()
    try:
        task_class = huey._registry.string_to_task(f"{__name__}.{name}")
        huey.enqueue(task_class(args=args))
    except Exception as exc:  # noqa: BLE001 - any storage failure: the catch-up jobs take over
        log.warning("job %s%r not queued (%s); the periodic catch-up will do it", name, args, exc)
        return False
    return True


def periodic_schedule(app: Flask | None = None) -> dict[str, object]:
    """The periodic tasks registered on the app's queue, by name (for `flask worker --list` and tests)."""
    return {task.__name__: task for task in huey_of(app)._registry._periodic_tasks}


def run_pending(app: Flask, limit: int = 10_000) -> int:
    """Run what is on the queue now, in this thread, until it is empty (the `flask worker --drain` command
    and the tests); returns the number of jobs run. Jobs a job enqueues are run too."""
    huey = huey_of(app)
    count = 0
    while count < limit:
        task = huey.dequeue()
        if task is None:
            break
        huey.execute(task)
        count += 1
    return count


def health(app: Flask) -> bool:
    """Whether the queue's storage answers (no job is enqueued)."""
    try:
        huey_of(app).pending_count()
    except Exception as exc:  # noqa: BLE001
        log.warning("task queue unreachable: %s", exc)
        return False
    return True

