"""Rate limits live in Redis when configured, so every worker process counts the same attempts."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from portal import create_app
from portal.config import ConfigError, limiter_storage_error, load_config
from tests.factories import PASSWORD, make_user
from tests.fixtures import PortalClient, app_config

REDIS_URL = os.environ.get("TEST_REDIS_URL", "")


@pytest.mark.skipif(not REDIS_URL, reason="TEST_REDIS_URL is not set (scripts/test.sh sets it)")
def test_sign_in_attempts_are_counted_across_app_instances(db_url, tmp_path, smtp_sink, db):
    user = make_user(db)
    # A fresh key prefix keeps earlier runs' counts (per address and per account) out.
    config = app_config(db_url, tmp_path, smtp_sink.port, RATELIMIT_STORAGE_URI=REDIS_URL,
                        LOGIN_RATE_LIMIT="3 per minute", RATELIMIT_KEY_PREFIX=uuid.uuid4().hex)
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


# Behind a proxy: the real client address (ProxyFix, TRUSTED_PROXIES) ------------------------------

PROXY = {"REMOTE_ADDR": "127.0.0.1"}  # every request reaches the app from nginx on the same host


def _sign_in(client, user, password, forwarded_for: str | None, remote=PROXY):
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return client.submit("/login", {"email": user.email, "password": password}, headers=headers,
                         environ_base=remote).status_code


@pytest.mark.parametrize("app_overrides", [{"TRUSTED_PROXIES": 1, "LOGIN_RATE_LIMIT": "2 per minute"}])
def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit(client, db, app_overrides):
    victim, attacker_target = make_user(db), make_user(db)
    codes = [_sign_in(client, attacker_target, "wrong password 123", "203.0.113.1") for _ in range(3)]
    assert codes == [422, 422, 429]
    # A forged header does not help: nginx appends the address it saw, and only that one is trusted.
    assert _sign_in(client, attacker_target, "wrong password 123", "198.51.100.99, 203.0.113.1") == 429
    # Another client behind the same proxy signs in.
    assert _sign_in(client, victim, PASSWORD, "198.51.100.7") == 303


@pytest.mark.parametrize("app_overrides", [{"TRUSTED_PROXIES": 0, "LOGIN_RATE_LIMIT": "2 per minute"}])
def test_without_trusted_proxies_the_forwarded_header_is_ignored(client, db, app_overrides):
    victim, attacker_target = make_user(db), make_user(db)
    assert [_sign_in(client, attacker_target, "wrong password 123", "203.0.113.1") for _ in range(2)] == [422, 422]
    # The header is the client's own claim: a "different" forwarded address is the same client.
    assert _sign_in(client, victim, PASSWORD, "198.51.100.7") == 429
    # ...and a client cannot escape its limit by forging one.
    assert _sign_in(client, victim, PASSWORD, "198.51.100.8") == 429


# Per account: many addresses against one account are slowed; other accounts are not touched ---------

@pytest.mark.parametrize("app_overrides", [{"LOGIN_RATE_LIMIT": "100 per minute",
                                            "ACCOUNT_RATE_LIMIT": "3 per 6 seconds"}])
def test_failures_against_one_account_slow_that_account_only_and_not_for_long(client, db, app_overrides):
    target, other = make_user(db), make_user(db)
    codes = [_sign_in(client, target, "wrong password 123", None, {"REMOTE_ADDR": f"203.0.113.{n}"})
             for n in range(1, 4)]
    assert codes == [422, 422, 422]
    # A fourth address, even with the right password, waits: the account is under attack.
    assert _sign_in(client, target, PASSWORD, None, {"REMOTE_ADDR": "198.51.100.7"}) == 429
    # Another account signs in from another address at once.
    assert _sign_in(client, other, PASSWORD, None, {"REMOTE_ADDR": "198.51.100.8"}) == 303
    client.submit("/logout")
    time.sleep(6.2)  # the window passes: slowed, not locked out
    assert _sign_in(client, target, PASSWORD, None, {"REMOTE_ADDR": "198.51.100.7"}) == 303


@pytest.mark.parametrize("app_overrides", [{"LOGIN_RATE_LIMIT": "100 per minute",
                                            "ACCOUNT_RATE_LIMIT": "2 per minute"}])
def test_successful_sign_ins_do_not_count_against_the_account(client, db, app_overrides):
    user = make_user(db)
    for n in range(4):
        assert _sign_in(client, user, PASSWORD, None, {"REMOTE_ADDR": f"198.51.100.{n + 1}"}) == 303
        client.submit("/logout")


@pytest.mark.parametrize("app_overrides", [{"LOGIN_RATE_LIMIT": "100 per minute",
                                            "ACCOUNT_RATE_LIMIT": "2 per minute"}])
def test_the_e_mail_is_normalised_for_the_account_limit(client, db, app_overrides):
    user = make_user(db)
    variants = [user.email.upper(), f"  {user.email}  "]
    for n, email in enumerate(variants):
        assert client.submit("/login", {"email": email, "password": "wrong password 123"},
                             environ_base={"REMOTE_ADDR": f"203.0.113.{n + 1}"}).status_code == 422
    assert _sign_in(client, user, PASSWORD, None, {"REMOTE_ADDR": "198.51.100.7"}) == 429


@pytest.mark.parametrize("app_overrides", [{"LOGIN_RATE_LIMIT": "100 per minute",
                                            "ACCOUNT_RATE_LIMIT": "2 per minute"}])
def test_second_factor_is_limited_per_account(app, db, app_overrides):
    import pyotp

    from tests.helpers import enrol

    user = make_user(db)
    app.test_client_class = PortalClient
    setup = app.test_client()
    setup.login(user)
    secret, _codes = enrol(setup)
    codes = []
    for n in range(3):  # three browsers at three addresses, each past the password step
        c = app.test_client()
        remote = {"REMOTE_ADDR": f"203.0.113.{n + 1}"}
        assert _sign_in(c, user, PASSWORD, None, remote) == 303
        code = "000000" if n < 2 else pyotp.TOTP(secret).now()
        codes.append(c.submit("/login/code", {"code": code}, environ_base=remote).status_code)
    assert codes == [422, 422, 429]


@pytest.mark.parametrize("app_overrides", [{"LOGIN_RATE_LIMIT": "100 per minute",
                                            "ACCOUNT_RATE_LIMIT": "2 per minute"}])
def test_reset_requests_are_limited_per_account(client, db, mails, run_jobs, app_overrides):
    target, other = make_user(db), make_user(db)
    codes = [client.submit("/reset", {"email": target.email}, environ_base={"REMOTE_ADDR": f"203.0.113.{n}"})
             .status_code for n in range(1, 4)]
    assert codes == [303, 303, 429]
    run_jobs()
    assert len(mails.to(target.email)) == 2  # no mail flood to the victim's inbox
    assert client.submit("/reset", {"email": other.email},
                         environ_base={"REMOTE_ADDR": "203.0.113.1"}).status_code == 303


@pytest.mark.parametrize("app_overrides", [{"TRUSTED_PROXIES": 1, "WORKSHOP_RATE_LIMIT": "1 per hour"}])
def test_workshop_registration_is_limited_per_forwarded_client(client, db, app_overrides):
    from tests.factories import make_workshop
    from tests.helpers import form

    w = make_workshop(db)

    def register(address):
        return client.submit(f"/workshops/join/{w.public_key}", form(), headers={"X-Forwarded-For": address},
                             environ_base=PROXY).status_code

    assert register("203.0.113.1") == 303
    assert register("203.0.113.1") == 429
    assert register("198.51.100.7") == 303  # the form stays open for everyone else


# Configuration -------------------------------------------------------------------------------------

def test_trusted_proxies_and_limits_are_checked_at_start_up(tmp_path):
    base = {"PORTAL_INSTANCE_DIR": str(tmp_path)}
    assert load_config(base)["TRUSTED_PROXIES"] == 0
    assert load_config({**base, "TRUSTED_PROXIES": "2"})["TRUSTED_PROXIES"] == 2
    for bad in ("yes", "-1", "1.5"):
        with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
            load_config({**base, "TRUSTED_PROXIES": bad})
    with pytest.raises(ConfigError, match="ACCOUNT_RATE_LIMIT"):
        load_config({**base, "ACCOUNT_RATE_LIMIT": "five a minute"})
    assert load_config({**base, "WORKSHOP_RATE_LIMIT": "5 per hour"})["WORKSHOP_RATE_LIMIT"] == "5 per hour"


def test_production_refuses_per_process_limits_with_several_workers():
    prod = {"PORTAL_ENV": "production", "RATELIMIT_STORAGE_URI": "memory://"}
    assert "redis://" in limiter_storage_error(prod, workers=2)
    assert limiter_storage_error(prod, workers=1) is None
    assert limiter_storage_error({**prod, "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379"}, workers=4) is None
    assert limiter_storage_error({**prod, "PORTAL_ENV": "development"}, workers=4) is None


@pytest.mark.parametrize("app_overrides", [{"TRUSTED_PROXIES": 1}])
@pytest.mark.parametrize("port", ["443", "8443"])
def test_behind_a_tls_proxy_forms_pass_the_https_referrer_check(client, db, app_overrides, port):
    """nginx sends X-Forwarded-Proto/-Host/-Port: the portal sees https on the public host, so Flask-WTF's
    same-origin check of the Referer (made on https only) passes for the portal's own pages."""
    user = make_user(db)
    origin = "https://portal.example.org" + ("" if port == "443" else f":{port}")
    forwarded = {"X-Forwarded-For": "203.0.113.5", "X-Forwarded-Proto": "https",
                 "X-Forwarded-Host": "portal.example.org", "X-Forwarded-Port": port}
    resp = client.submit("/login", {"email": user.email, "password": PASSWORD}, environ_base=PROXY,
                         headers={**forwarded, "Referer": f"{origin}/login"})
    assert resp.status_code == 303
    assert client.get("/cases/", environ_base=PROXY, headers=forwarded).status_code == 200
    # A form posted from another site is refused, as before.
    client.submit("/logout", environ_base=PROXY, headers={**forwarded, "Referer": f"{origin}/cases/"})
    resp = client.submit("/login", {"email": user.email, "password": PASSWORD}, environ_base=PROXY,
                         headers={**forwarded, "Referer": "https://evil.example/login"})
    assert resp.status_code == 400
