"""Sign-in, sessions, invitations, resets and user management."""

from __future__ import annotations

import re

import pytest
from sqlmodel import select

from portal.audit import AuditEntry
from portal.auth.models import AccountToken, User
from portal.auth.services import password_problem
from tests.factories import PASSWORD, make_org, make_user

LINK_RE = re.compile(r"http://localhost(/\S+)")


def test_login_page_has_plain_labels(client):
    page = client.get("/login").get_data(as_text=True)
    assert '<label for="email">Email</label>' in page
    assert '<label for="password">Password</label>' in page
    assert ">Sign in<" in page or 'value="Sign in"' in page


def test_sign_in_and_out(client, db):
    user = make_user(db, role="staff")
    resp = client.login(user)
    assert resp.headers["Location"] == "/"
    assert client.get("/cases/").status_code == 200
    resp = client.submit("/logout")
    assert resp.status_code == 303
    assert client.get("/cases/").status_code == 302  # back to the sign-in page


@pytest.mark.parametrize("email,password", [("nobody@example.org", PASSWORD), ("known", "wrong password 123")])
def test_same_answer_for_unknown_email_and_wrong_password(client, db, email, password):
    user = make_user(db)
    resp = client.submit("/login", {"email": user.email if email == "known" else email, "password": password})
    assert resp.status_code == 422
    assert "The email address or password is not right." in resp.get_data(as_text=True)


def test_empty_login_shows_error_summary(client):
    resp = client.submit("/login", {"email": "", "password": ""})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert "There is a problem" in page
    assert '<a href="#email">Enter your email address.</a>' in page


def test_disabled_user_cannot_sign_in(client, db):
    user = make_user(db, active=False)
    assert client.submit("/login", {"email": user.email, "password": PASSWORD}).status_code == 422


@pytest.mark.parametrize("app_overrides", [{"LOGIN_RATE_LIMIT": "3 per minute"}])
def test_login_is_rate_limited(client, db, app_overrides):
    user = make_user(db)
    codes = [client.submit("/login", {"email": user.email, "password": "wrong password 123"}).status_code
             for _ in range(4)]
    assert codes == [422, 422, 422, 429]


def test_password_rules():
    assert password_problem("short") is not None
    assert password_problem("password1234") is not None  # long enough, but common
    assert password_problem("aaaaaaaaaaaa") is not None
    assert password_problem("tangerine ferry lantern") is None
    assert password_problem("demo-password-2025") is None


def test_invitation_flow(client, db, mails, run_jobs):
    org = make_org(db)
    staff = make_user(db, role="staff")
    client.login(staff)
    resp = client.submit("/users/invite", {"email": "New.Partner@Example.org", "name": "Nadia",
                                           "role": "partner", "organisation_id": org.id, "locale": "fr"})
    assert resp.status_code == 303
    assert mails.messages == []  # not sent in the request: the worker sends it
    run_jobs()
    (msg,) = mails.to("new.partner@example.org")
    assert "IntegPlan" in msg["Subject"]
    body = msg.get_content()
    assert body.startswith("Bonjour Nadia")  # written in the invitee's language
    link = LINK_RE.search(body).group(1)
    client.submit("/logout")

    # Too short a password is refused and nothing is spent.
    resp = client.submit(link, {"password": "short", "confirm": "short"})
    assert resp.status_code == 422
    resp = client.submit(link, {"password": "tangerine ferry lantern", "confirm": "tangerine ferry lantern"})
    assert resp.status_code == 303
    invited = db.exec(select(User).where(User.email == "new.partner@example.org")).one()
    assert invited.organisation_id == org.id
    # Single use.
    assert client.get(link).status_code == 404
    client.login(invited, "tangerine ferry lantern")
    assert db.exec(select(AuditEntry).where(AuditEntry.action == "user.invited")).first() is not None


def test_staff_cannot_invite_admin(client, db):
    client.login(make_user(db, role="staff"))
    resp = client.submit("/users/invite", {"email": "x@example.org", "name": "X", "role": "admin", "locale": "en"})
    assert resp.status_code == 422
    assert db.exec(select(User).where(User.email == "x@example.org")).first() is None


def test_expired_invitation(client, db, mails, app, run_jobs):
    from datetime import timedelta

    from portal.clock import utcnow

    client.login(make_user(db, role="admin"))
    client.submit("/users/invite", {"email": "late@example.org", "name": "Late", "role": "staff", "locale": "en"})
    run_jobs()
    link = LINK_RE.search(mails.to("late@example.org")[0].get_content()).group(1)
    token = db.exec(select(AccountToken)).one()
    token.expires_at = utcnow() - timedelta(minutes=1)
    db.add(token)
    db.commit()
    client.submit("/logout")
    resp = client.get(link)
    assert resp.status_code == 404
    assert "expired" in resp.get_data(as_text=True)


def test_password_reset(client, db, mails, run_jobs):
    user = make_user(db)
    resp = client.submit("/reset", {"email": user.email})
    assert resp.status_code == 303
    unknown = client.submit("/reset", {"email": "nobody@example.org"})
    assert unknown.status_code == 303  # the same answer for unknown addresses
    run_jobs()
    assert len(mails.messages) == 1
    link = LINK_RE.search(mails.messages[0].get_content()).group(1)
    assert link.startswith("/reset/")
    resp = client.submit(link, {"password": "quiet harbour lamp", "confirm": "quiet harbour lamp"})
    assert resp.status_code == 303
    client.login(user, "quiet harbour lamp")


def test_password_change_ends_other_sessions(app, db):
    from tests.fixtures import PortalClient

    app.test_client_class = PortalClient
    user = make_user(db)
    first, second = app.test_client(), app.test_client()
    first.login(user)
    second.login(user)
    resp = first.submit("/account", {"current": PASSWORD, "password": "orange violin meadow",
                                     "confirm": "orange violin meadow"})
    assert resp.status_code == 303
    assert first.get("/cases/").status_code == 200
    assert second.get("/cases/").status_code == 302  # its session no longer counts


def test_disabling_a_user_ends_their_session(app, db):
    from tests.fixtures import PortalClient

    app.test_client_class = PortalClient
    admin, partner = make_user(db, role="admin"), make_user(db)
    p, a = app.test_client(), app.test_client()
    p.login(partner)
    a.login(admin)
    assert a.submit(f"/users/{partner.id}/active").status_code == 303
    assert p.get("/cases/").status_code == 302


def test_mail_outage_keeps_the_invitation(client, db, mails, app, run_jobs):
    from portal import mail as mailer

    app.config["MAIL_PORT"] = 1  # nothing listens there
    client.login(make_user(db, role="admin"))
    resp = client.submit("/users/invite", {"email": "wait@example.org", "name": "W", "role": "staff",
                                           "locale": "en"})
    assert resp.status_code == 303
    run_jobs()  # the send_mail job finds the server down: the message stays
    assert mails.messages == []
    pending = db.exec(select(mailer.OutboxMail)).all()
    assert len(pending) == 1 and pending[0].sent_at is None and pending[0].last_error
    app.config["MAIL_PORT"] = mails.port
    with app.app_context():
        assert mailer.deliver_pending(db) == (1, 0)
    assert len(mails.to("wait@example.org")) == 1


def _age_session(client, **seconds_ago):
    import time

    with client.session_transaction() as sess:
        for key, ago in seconds_ago.items():
            sess[key] = int(time.time()) - ago


def test_idle_session_ends_after_30_minutes(client, db):
    client.login(make_user(db))
    _age_session(client, seen_at=29 * 60)
    assert client.get("/cases/").status_code == 200  # still within the idle time, and renewed
    _age_session(client, seen_at=31 * 60)
    resp = client.get("/cases/")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_an_unchanged_session_sends_no_cookie_and_the_idle_time_is_renewed_each_minute(client, db):
    """The cookie is written only when the session changes: a late answer (an autosave sent just before a
    submission) then cannot overwrite what the newer request put into the session."""
    client.login(make_user(db))
    client.get("/cases/")
    resp = client.get("/cases/")
    assert resp.status_code == 200 and "Set-Cookie" not in resp.headers
    _age_session(client, seen_at=61)
    resp = client.get("/cases/")
    assert "session=" in resp.headers.get("Set-Cookie", "")
    with client.session_transaction() as sess:
        assert int(__import__("time").time()) - sess["seen_at"] < 5


def test_session_ends_after_12_hours_even_when_active(client, db):
    client.login(make_user(db))
    _age_session(client, auth_at=11 * 3600, seen_at=60)
    assert client.get("/cases/").status_code == 200
    _age_session(client, auth_at=12 * 3600 + 60, seen_at=60)
    assert client.get("/cases/").status_code == 302


def test_session_cookie_is_new_at_sign_in(client, db):
    user = make_user(db)
    client.get("/login")
    before = client.get_cookie("session").value
    client.login(user)
    after = client.get_cookie("session").value
    assert before != after
    with client.session_transaction() as sess:
        assert sess["_user_id"].startswith(f"{user.id}:{user.session_version}:")


def test_sign_out_everywhere_refuses_old_cookies(app, db):
    from tests.fixtures import PortalClient

    app.test_client_class = PortalClient
    user = make_user(db)
    laptop, phone = app.test_client(), app.test_client()
    laptop.login(user)
    phone.submit("/login", {"email": user.email, "password": PASSWORD, "remember": "y"})
    stolen_session = phone.get_cookie("session").value
    stolen_remember = phone.get_cookie("remember_token").value
    resp = laptop.submit("/account/sign-out-everywhere")
    assert resp.status_code == 303
    assert laptop.get("/cases/").status_code == 302
    assert phone.get("/cases/").status_code == 302
    # A copy of the phone's cookies from before is worth nothing now, the remember-me cookie included.
    thief = app.test_client()
    thief.set_cookie("session", stolen_session)
    thief.set_cookie("remember_token", stolen_remember)
    assert thief.get("/cases/").status_code == 302


def test_remember_me_cookie_stops_working_after_a_password_change(app, db):
    from tests.fixtures import PortalClient

    app.test_client_class = PortalClient
    user = make_user(db)
    phone = app.test_client()
    phone.submit("/login", {"email": user.email, "password": PASSWORD, "remember": "y"})
    remember = phone.get_cookie("remember_token").value
    other = app.test_client()
    other.set_cookie("remember_token", remember)
    assert other.get("/cases/").status_code == 200  # the cookie alone signs in ...
    web = app.test_client()
    web.login(user)
    web.submit("/account", {"current": PASSWORD, "password": "orange violin meadow",
                            "confirm": "orange violin meadow"})
    fresh = app.test_client()
    fresh.set_cookie("remember_token", remember)
    assert fresh.get("/cases/").status_code == 302  # ... until the password changes


def test_a_refused_address_does_not_hold_up_the_outbox(app, db, mails):
    from portal import mail as mailer

    mailer.queue(db, "refused-nobody@example.org", "First", "to a mailbox that does not exist")
    mailer.queue(db, "someone@example.org", "Second", "to a real mailbox")
    db.commit()
    with app.app_context():
        assert mailer.deliver_pending(db) == (1, 1)
        for _ in range(mailer.MAX_ATTEMPTS + 2):
            mailer.deliver_pending(db)
    assert [m["Subject"] for m in mails.messages] == ["Second"]
    refused = db.exec(select(mailer.OutboxMail).where(mailer.OutboxMail.to.startswith("refused-"))).one()
    assert refused.sent_at is None and "550" in refused.last_error
    assert refused.attempts == mailer.MAX_ATTEMPTS  # given up after that, kept for a person to look at


def test_the_signed_in_user_is_a_read_only_copy_without_the_password_hash(app, client, db):
    """current_user is read by one Core statement into a SignedInUser: no ORM object joins the request's
    session, the password hash stays in the database, and a change to the account goes through its row."""
    from flask_login import current_user

    from portal import db as dbm
    from portal.auth.models import SignedInUser

    seen = {}

    @app.after_request
    def _look(response):
        if "user" not in seen and current_user.is_authenticated:
            seen["user"] = current_user._get_current_object()
            seen["tracked"] = [type(o).__name__ for o in dbm.session().identity_map.values()]
        return response

    org = make_org(db)
    user = make_user(db, organisation=org)
    client.login(user)
    seen.clear()
    assert client.get("/cases/").status_code == 200
    signed_in = seen["user"]
    assert isinstance(signed_in, SignedInUser) and not isinstance(signed_in, User)
    assert signed_in.id == user.id and signed_in.organisation_id == org.id and not signed_in.is_staff
    assert not hasattr(signed_in, "password_hash") and "User" not in seen["tracked"]
    client.submit("/language", {"lang": "fr", "next": "/cases/"})
    db.expire_all()
    assert db.get(User, user.id).locale == "fr"
