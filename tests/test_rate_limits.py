"""Rate limits live in Redis when configured, so every worker process counts the same attempts."""

from __future__ import annotations

import os
import uuid

import pytest

from portal import create_app
from tests.conftest import PortalClient, app_config
from tests.factories import make_user

REDIS_URL = os.environ.get("TEST_REDIS_URL", "")


@pytest.mark.skipif(not REDIS_URL, reason="TEST_REDIS_URL is not set (scripts/test.sh sets it)")
def test_sign_in_attempts_are_counted_across_app_instances(db_url, tmp_path, smtp_sink, db):
    user = make_user(db)
    config = app_config(db_url, tmp_path, smtp_sink.port, RATELIMIT_STORAGE_URI=REDIS_URL,
                        LOGIN_RATE_LIMIT="3 per minute")
    # Counts are kept per client address: a fresh address per run keeps earlier runs' counts out.
    address = f"198.18.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    codes = []
    for _worker in range(2):  # two app instances, as two gunicorn workers would be
        app = create_app(config)
        app.test_client_class = PortalClient
        client = app.test_client()
        for _attempt in range(2):
            codes.append(client.submit("/login", {"email": user.email, "password": "wrong password 123"},
                                       environ_base={"REMOTE_ADDR": address}).status_code)
        app.extensions["db_engine"].dispose()
    assert codes == [422, 422, 422, 429]


def test_other_addresses_are_not_locked_out(app, client, db, app_overrides):
    """Limits count per client address: someone else's failures do not lock a real user out."""
    app.config["LOGIN_RATE_LIMIT"] = "2 per minute"
    user = make_user(db)
    for _ in range(3):
        client.submit("/login", {"email": user.email, "password": "wrong password 123"},
                      environ_base={"REMOTE_ADDR": "203.0.113.9"})
    resp = client.submit("/login", {"email": user.email, "password": "a long test password 2025"},
                         environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert resp.status_code == 303
