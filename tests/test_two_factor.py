"""Two-factor sign-in (TOTP): mandatory for staff and admins, optional for partners, no replays."""

from __future__ import annotations

import re
import time

import pytest
from sqlmodel import select

from portal.audit import AuditEntry
from tests.factories import PASSWORD, make_user
from tests.helpers import enrol, next_code

REQUIRED = {"TOTP_REQUIRED_ROLES": ("staff", "admin")}


def password_step(client, user, password=PASSWORD):
    resp = client.submit("/login", {"email": user.email, "password": password})
    assert resp.status_code == 303 and resp.headers["Location"] == "/login/code"


@pytest.mark.parametrize("app_overrides", [REQUIRED])
def test_staff_must_set_up_two_factor_before_anything_else(client, db, app_overrides):
    staff = make_user(db, role="staff")
    client.login(staff)
    resp = client.get("/cases/")
    assert resp.status_code == 302 and resp.headers["Location"] == "/account/two-factor"
    resp = client.submit("/account/two-factor", {"code": "000000"})
    assert resp.status_code == 422 and "This code is not right" in resp.get_data(as_text=True)
    enrol(client)
    assert client.get("/cases/").status_code == 200
    db.refresh(staff)
    assert staff.totp_secret_enc and "JBSW" not in staff.totp_secret_enc  # stored encrypted


@pytest.mark.parametrize("app_overrides", [REQUIRED])
def test_sign_in_needs_the_code_and_a_code_works_once(app, client, db, app_overrides):
    staff = make_user(db, role="staff")
    client.login(staff)
    secret, _codes = enrol(client)
    client.submit("/logout")

    password_step(client, staff)
    assert client.get("/cases/").status_code == 302  # not signed in between the two steps
    assert client.submit("/login/code", {"code": "123456"}).status_code == 422
    code = next_code(secret, db, staff)
    resp = client.submit("/login/code", {"code": code})
    assert resp.status_code == 303
    assert client.get("/cases/").status_code == 200
    client.submit("/logout")

    # The same code again, even with the right password: refused (replay).
    password_step(client, staff)
    resp = client.submit("/login/code", {"code": code})
    assert resp.status_code == 422 and "already used" in resp.get_data(as_text=True)


@pytest.mark.parametrize("app_overrides", [REQUIRED])
def test_recovery_code_works_once(client, db, app_overrides):
    admin = make_user(db, role="admin")
    client.login(admin)
    _secret, codes = enrol(client)
    client.submit("/logout")
    password_step(client, admin)
    assert client.submit("/login/code", {"code": codes[0].upper()}).status_code == 303
    client.submit("/logout")
    password_step(client, admin)
    assert client.submit("/login/code", {"code": codes[0]}).status_code == 422
    assert db.exec(select(AuditEntry).where(AuditEntry.action == "user.recovery_code_used")).first()


@pytest.mark.parametrize("app_overrides", [REQUIRED])
def test_password_reset_does_not_skip_the_second_factor(client, db, mails, app_overrides, run_jobs):
    staff = make_user(db, role="staff")
    client.login(staff)
    secret, _codes = enrol(client)
    client.submit("/logout")
    client.submit("/reset", {"email": staff.email})
    run_jobs()
    link = re.search(r"http://localhost(/\S+)", mails.messages[-1].get_content()).group(1)
    assert client.submit(link, {"password": "quiet harbour lamp", "confirm": "quiet harbour lamp"}).status_code == 303
    password_step(client, staff, "quiet harbour lamp")
    assert client.get("/cases/").status_code == 302
    assert client.submit("/login/code", {"code": next_code(secret, db, staff)}).status_code == 303


@pytest.mark.parametrize("app_overrides", [REQUIRED])
def test_partners_may_choose_and_admins_reset_a_lost_phone(app, client, db, app_overrides):
    partner = make_user(db)
    client.login(partner)
    assert client.get("/cases/").status_code == 200  # optional for partners
    enrol(client)
    client.submit("/logout")
    password_step(client, partner)  # once on, it is asked for

    from tests.fixtures import PortalClient

    app.test_client_class = PortalClient
    admin_client = app.test_client()
    admin = make_user(db, role="admin")
    admin_client.login(admin)
    _secret, _codes = enrol(admin_client)
    assert admin_client.submit(f"/users/{partner.id}/two-factor-reset").status_code == 303
    db.refresh(partner)
    assert partner.totp_secret_enc is None
    fresh = app.test_client()
    assert fresh.submit("/login", {"email": partner.email, "password": PASSWORD}).headers["Location"] == "/"


def test_pending_step_expires(client, db, app_overrides):
    user = make_user(db)
    client.login(user)
    enrol(client)
    client.submit("/logout")
    password_step(client, user)
    with client.session_transaction() as sess:
        sess["2fa"] = {**sess["2fa"], "at": int(time.time()) - 600}
    resp = client.get("/login/code")
    assert resp.status_code == 303 and resp.headers["Location"] == "/login"


def test_required_by_default_in_production(tmp_path):
    from portal.config import load_config

    cfg = load_config({"PORTAL_ENV": "production", "SECRET_KEY": "x" * 40, "PORTAL_INSTANCE_DIR": str(tmp_path)})
    assert cfg["TOTP_REQUIRED_ROLES"] == ("staff", "admin")
    assert load_config({"PORTAL_INSTANCE_DIR": str(tmp_path)})["TOTP_REQUIRED_ROLES"] == ()
