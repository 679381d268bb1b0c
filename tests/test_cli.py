"""The bootstrap commands of `flask --app portal`."""

from __future__ import annotations

from sqlmodel import select

from portal.auth.models import User
from portal.cases.models import Case
from portal.orgs.models import Organisation
from portal.receipts.models import Receipt


def test_create_org_and_user_from_the_command_line(app, db):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["orgs", "create", "--name", "Dushanbe Aid", "--country", "tj",
                                 "--email", "aid@example.org"])
    assert result.exit_code == 0, result.output
    assert db.exec(select(Organisation)).one().country == "TJ"
    result = runner.invoke(args=["users", "create", "--email", "Farid@Example.org", "--name", "Farid",
                                 "--role", "partner", "--org", "Dushanbe Aid"], input="river lantern morning\n")
    assert result.exit_code == 0, result.output
    user = db.exec(select(User)).one()
    assert user.email == "farid@example.org" and user.password_hash.startswith("$argon2id$")


def test_weak_password_is_refused_on_the_command_line(app, db):
    result = app.test_cli_runner().invoke(args=["users", "create", "--email", "a@example.org", "--name", "A",
                                                "--role", "staff"], input="password1234\n")
    assert result.exit_code != 0
    assert db.exec(select(User)).first() is None


def test_demo_data_loads_once(app, db, client):
    runner = app.test_cli_runner()
    assert "loaded" in runner.invoke(args=["demo", "load"]).output
    assert "already" in runner.invoke(args=["demo", "load"]).output
    emails = {u.email for u in db.exec(select(User))}
    assert {"admin@example.org", "staff@example.org", "staff2@example.org", "partner.a@example.org",
            "partner.b@example.org"} <= emails
    assert len(db.exec(select(Case)).all()) >= 4
    receipts = {r.supplier: r for r in db.exec(select(Receipt))}
    assert receipts["Tbilisi Tools LLC"].eur_cents == 240_000 and receipts["Tbilisi Tools LLC"].status == "approved"
    assert receipts["Agri Sénégal SARL"].eur_cents == 150_000  # 983,936 XOF at 655.957
    assert receipts["Fabric House"].status == "submitted"
    assert receipts["Weld Academy"].rate_missing and receipts["Weld Academy"].eur_cents is None
    partner = db.exec(select(User).where(User.email == "partner.a@example.org")).one()
    client.login(partner, "demo-password-2025")
