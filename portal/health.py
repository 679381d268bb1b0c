"""`GET /healthz` for the proxy, systemd and monitoring: database, storage and task queue reachable.

No login, no rate limit, no personal data: the answer names only the parts that failed.
"""

from __future__ import annotations

import logging
import os

from flask import Blueprint, current_app
from sqlalchemy import text

from portal import tasks
from portal.extensions import csrf, limiter

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)

PROBE_KEY = "healthz/probe"  # never written: a HEAD on it answers "not there" when storage is reachable


def _database() -> bool:
    from portal import db as dbm

    try:
        with dbm.engine().connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "not healthy"
        log.warning("health: database unreachable: %s", exc)
        return False
    return True


def _storage() -> bool:
    from portal.storage import get_storage

    storage = get_storage()
    try:
        root = getattr(storage, "root", None)
        if root is not None:  # local storage: its directory (or where it will be made) must be writable
            while not root.exists() and root != root.parent:
                root = root.parent
            return root.is_dir() and os.access(root, os.W_OK)
        storage.exists(PROBE_KEY)
    except Exception as exc:  # noqa: BLE001
        log.warning("health: storage unreachable: %s", exc)
        return False
    return True


def checks() -> dict[str, bool]:
    return {"database": _database(), "storage": _storage(), "queue": tasks.health(current_app)}


@bp.get("/healthz")
@limiter.exempt
@csrf.exempt
def healthz():
    """ok, or 503 naming the parts that cannot be reached."""
    failed = [name for name, ok in checks().items() if not ok]
    headers = {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"}
    if failed:
        return "unavailable: " + ", ".join(failed) + "\n", 503, headers
    return "ok\n", 200, headers
