"""Findings of an attack test (issue 13, item 4): each test fails without its fix."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal

import pytest
from sqlmodel import select

from portal import csvfile
from portal.auth.models import User
from portal.cases.models import Case
from portal.demo import DEMO_PASSWORD, load_demo
from portal.security import safe_next
from tests.factories import PASSWORD, make_user
from tests.test_receipts import make_receipt
from tests.test_two_factor import enrol, next_code
from tests.test_workshop import make_registration, make_workshop, staff_client

EVIL = ["/%09/evil.example", "/%0A/evil.example", "/%0D%0A/evil.example", "//evil.example", "/\\evil.example",
        "https://evil.example/", "/%5Cevil.example", "javascript:alert(1)", "/%00/x"]


# Open redirects -----------------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["/\t/evil.example", "/\n/evil.example", "//evil.example", "/\\evil.example",
                                    "https://evil.example", "http:/evil.example", "", None, "cases/",
                                    "/ok\x7f", " /cases/"])
def test_safe_next_refuses_other_sites(target):
    assert safe_next(target) is None


@pytest.mark.parametrize("target", ["/cases/", "/cases/?q=a%20b&page=2", "/receipts/3#top", "/%2F"])
def test_safe_next_keeps_paths_of_this_site(target):
    assert safe_next(target) == target


def _local(resp) -> str:
    location = resp.headers["Location"]
    assert location.startswith("/") and not location.startswith("//") and "\\" not in location, location
    return location


@pytest.mark.parametrize("target", EVIL)
def test_sign_in_does_not_redirect_to_another_site(client, db, target):
    user = make_user(db)
    resp = client.submit(f"/login?next={target}", {"email": user.email, "password": PASSWORD})
    assert resp.status_code == 303
    assert _local(resp) == "/"


def test_sign_in_follows_a_local_next(client, db):
    user = make_user(db)
    resp = client.submit("/login?next=/cases/%3Fq%3Dx", {"email": user.email, "password": PASSWORD})
    assert resp.headers["Location"] == "/cases/?q=x"


@pytest.mark.parametrize("target", ["/%09/evil.example", "/%0A/evil.example"])
def test_second_factor_step_does_not_redirect_to_another_site(client, db, target):
    user = make_user(db)
    client.login(user)
    secret, _codes = enrol(client)
    client.submit("/logout")
    resp = client.submit(f"/login?next={target}", {"email": user.email, "password": PASSWORD})
    assert resp.headers["Location"] == "/login/code"
    resp = client.submit("/login/code", {"code": next_code(secret, db, user)})
    assert resp.status_code == 303
    assert _local(resp) == "/"


@pytest.mark.parametrize("target", ["/\t/evil.example", "/\n/evil.example", "/\r\n/evil.example",
                                    "//evil.example"])
def test_language_switch_does_not_redirect_to_another_site(client, target):
    resp = client.submit("/language", {"lang": "de", "next": target})
    assert resp.status_code == 303
    assert _local(resp) == "/"


# CSV formula injection after a separator -----------------------------------------------------------

def _formula_cells(body: bytes) -> list[str]:
    """Cells a spreadsheet would run, read the ways spreadsheets read a CSV file: German Excel with ";",
    others with "," or tab, honouring quotes or (a careless import) not."""
    text = body.decode("utf-8-sig")
    found = []
    for delimiter in (";", ",", "\t"):
        for row in csv.reader(io.StringIO(text), delimiter=delimiter):
            found += [c for c in row if c.lstrip()[:1] in ("=", "+", "-", "@")]
        for line in text.splitlines():
            found += [c for c in line.split(delimiter) if c.lstrip().lstrip('"').lstrip()[:1] in ("=", "+", "@")]
    return found


@pytest.mark.parametrize("text,safe", [
    ("ACME;=1+1", "ACME;'=1+1"), ("ACME", "ACME"), ("=1+1", "'=1+1"), ("a,@SUM(A1)", "a,'@SUM(A1)"),
    ("x\t+1", "x\t'+1"), ("Müller; -2", "Müller;' -2"), ("\r=1", "'\r=1"), ("5 - 3", "5 - 3"),
])
def test_safe_text_escapes_every_part_after_a_separator(text, safe):
    assert csvfile.safe_text(text) == safe
    assert csvfile.cell(Decimal("-5.00")) == "-5.00"  # numbers stay numbers


def test_belegliste_csv_has_no_formula_after_a_separator(app, client, db):
    with app.app_context():
        load_demo(db)
    case = db.exec(select(Case).order_by(Case.id.desc())).first()
    make_receipt(db, case, supplier="ACME;=1+1", description="x;@SUM(A1)", invoice_number="7,+1",
                 status="approved", invoice_date=date(2024, 5, 20), eur_cents=1234, amount_minor=1234)
    client.login(db.exec(select(User).where(User.email == "staff2@example.org")).one(), DEMO_PASSWORD)
    body = client.get("/reports/belegliste.csv?start=2024-05-01&end=2024-05-31").data
    assert _formula_cells(body) == []
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert ["ACME;'=1+1", "7,'+1"] in [r[3:5] for r in rows]  # still readable, and one cell each


def test_participant_csv_has_no_formula_after_a_separator(client, db):
    w = make_workshop(db)
    make_registration(db, w, organisation="ACME;=1+1", dietary_needs="none;+1", name="Ana;@x")
    staff_client(client, db)
    body = client.get(f"/workshops/{w.id}/participants.csv").data
    assert _formula_cells(body) == []
    assert "ACME;'=1+1" in body.decode("utf-8-sig")


def test_audit_csv_has_no_formula_after_a_separator(app, client, db):
    from portal import audit

    staff = make_user(db, role="staff", name="Eve;=1+1")
    audit.record(db, staff, "test.formula", staff, after={"note": "a;=HYPERLINK(1)"})
    db.commit()
    client.login(staff)
    body = client.get("/reports/audit.csv").data
    assert "Eve;'=1+1" in body.decode("utf-8-sig")
    assert _formula_cells(body) == []
