"""Settings from the environment: each one changes what the portal does, a bad value stops the start with
its name, every key the code reads is defined by load_config(); the demo cannot reach production."""

from __future__ import annotations

import re
from datetime import date
from uuid import uuid4

import pytest
from sqlmodel import select

from portal import create_app
from portal.auth.models import User
from portal.cases.models import Case
from portal.config import ROOT, ConfigError, load_config
from portal.orgs.models import Organisation
from portal.receipts.models import Receipt
from tests.factories import make_case, make_line, make_org, make_user


@pytest.fixture
def app_overrides(request, monkeypatch):
    """Indirect parameters are environment variables, set before create_app() reads them."""
    for name, value in getattr(request, "param", {}).items():
        monkeypatch.setenv(name, value)
    return {}


# Every key the code reads is defined -----------------------------------------------------------

READS = [
    re.compile(r"""\b(?:config|cfg)\[\s*["']([A-Z][A-Z0-9_]*)["']\s*\]"""),  # config["X"], cfg["X"]
    re.compile(r"""\b(?:config|cfg)\.get\(\s*["']([A-Z][A-Z0-9_]*)["']"""),  # config.get("X", …)
    re.compile(r"""\bconfig\.([A-Z][A-Z0-9_]*)\b"""),  # {{ config.X }} in templates
]
# Flask's own settings the portal reads without setting them.
FLASK_OWN = {"TESTING", "DEBUG"}


def keys_read_by_the_code() -> dict[str, str]:
    found: dict[str, str] = {}
    files = [*(ROOT / "portal").rglob("*.py"), *(ROOT / "templates").rglob("*.html"),
             *(ROOT / "templates").rglob("*.txt")]
    for path in files:
        if path.name == "config.py" and path.parent.name == "portal":
            continue
        text = path.read_text(encoding="utf-8")
        for pattern in READS:
            for key in pattern.findall(text):
                found.setdefault(key, str(path.relative_to(ROOT)))
    return found


def test_the_scan_finds_reads_in_every_form_it_looks_for():
    text = 'a = current_app.config["ALPHA"]; b = cfg.get("BETA", 1); c = app.config[ "GAMMA" ]; {{ config.DELTA }}'
    assert {k for p in READS for k in p.findall(text)} == {"ALPHA", "BETA", "GAMMA", "DELTA"}


def test_every_setting_the_code_reads_comes_from_load_config(tmp_path):
    defined = set(load_config({"PORTAL_INSTANCE_DIR": str(tmp_path)}))
    read = keys_read_by_the_code()
    assert {"RECEIPT_FOUR_EYES_EUR", "PROJECT_BUDGET_EUR", "WORKSHOP_RATE_LIMIT", "PROJECT_NAME"} <= set(read)
    missing = {key: where for key, where in read.items() if key not in defined | FLASK_OWN}
    assert missing == {}, f"read by the code but not defined in load_config(): {missing}"


def test_the_readme_lists_every_setting():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    source = (ROOT / "portal" / "config.py").read_text(encoding="utf-8")
    variables = set(re.findall(r"""env(?:\.get\(|\[|, )\s*["']([A-Z][A-Z0-9_]*)["']""", source))
    assert {"RECEIPT_FOUR_EYES_EUR", "PROJECT_FUNDING_EUR", "GRANTEE_NAME", "DIGEST_MINUTES"} <= variables
    unlisted = sorted(v for v in variables if f"`{v}`" not in table)
    assert unlisted == []


# Bad values stop the start -----------------------------------------------------------------------

@pytest.mark.parametrize("name, value", [
    ("RECEIPT_FOUR_EYES_EUR", "abc"),
    ("RECEIPT_FOUR_EYES_EUR", "-5"),
    ("PROJECT_BUDGET_EUR", "400k"),
    ("PROJECT_FUNDING_EUR", "1.5"),
    ("WORKSHOP_RATE_LIMIT", "lots"),
    ("LOGIN_RATE_LIMIT", "10 per fortnight"),
    ("MAIL_PORT", "smtp"),
    ("MAIL_USE_TLS", "perhaps"),
    ("MAIL_TIMEOUT", "ten"),
    ("PROJECT_END", "31.12.2025"),
    ("SESSION_IDLE_MINUTES", "0"),
    ("STORAGE_BACKEND", "ftp"),
    ("LANGUAGES", "en,xx"),
    ("DEFAULT_LANGUAGE", "es"),
    ("PORTAL_ENV", "prod"),
    ("DIGEST_MINUTES", "hourly"),
    ("REVIEW_COUNTS_SECONDS", "nan"),
])
def test_a_bad_value_names_its_variable(tmp_path, name, value):
    with pytest.raises(ConfigError) as error:
        load_config({"PORTAL_INSTANCE_DIR": str(tmp_path), name: value})
    assert f"{name}={value!r}" in str(error.value)


def test_the_app_does_not_start_with_a_bad_value(monkeypatch, tmp_path):
    monkeypatch.setenv("PORTAL_INSTANCE_DIR", str(tmp_path))
    monkeypatch.setenv("RECEIPT_FOUR_EYES_EUR", "abc")
    with pytest.raises(ConfigError, match="RECEIPT_FOUR_EYES_EUR='abc'"):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"})


def test_good_values_are_typed(tmp_path):
    cfg = load_config({"PORTAL_INSTANCE_DIR": str(tmp_path), "RECEIPT_FOUR_EYES_EUR": " 2500 ",
                       "PROJECT_BUDGET_EUR": "1_000_000", "MAIL_USE_TLS": "Yes", "PROJECT_END": "2026-06-30",
                       "PROJECT_NAME": "ReStart Senegal", "LANGUAGES": "en,fr"})
    assert cfg["RECEIPT_FOUR_EYES_EUR"] == 2500 and cfg["PROJECT_BUDGET_EUR"] == 1_000_000
    assert cfg["MAIL_USE_TLS"] is True and cfg["PROJECT_END"] == date(2026, 6, 30)
    assert cfg["PROJECT_NAME"] == "ReStart Senegal" and cfg["LANGUAGES"] == ("en", "fr")


# Each setting changes behaviour ------------------------------------------------------------------

def submitted_receipt(db, case, line, uploader, eur: int) -> Receipt:
    receipt = Receipt(case_id=case.id, budget_line_id=line.id, supplier="Tbilisi Tools Ltd",
                      invoice_number=uuid4().hex[:10], invoice_date=date(2024, 3, 15), amount_minor=eur * 100,
                      currency="EUR", eur_cents=eur * 100, description="Welding machine", status="submitted",
                      nonce=uuid4().hex, uploaded_by_id=uploader.id, paid_directly_confirmed=True)
    db.add(receipt)
    db.commit()
    return receipt


def approve(client, db, receipt) -> str:
    db.refresh(receipt)
    resp = client.submit(f"/receipts/{receipt.id}/review",
                         {"decision": "approve", "comment": "", "version": str(receipt.version)})
    assert resp.status_code == 303, resp.get_data(as_text=True)[:2000]
    db.refresh(receipt)
    return receipt.status


@pytest.mark.parametrize("app_overrides, approvals", [({"RECEIPT_FOUR_EYES_EUR": "500"}, 2), ({}, 1)],
                         indirect=["app_overrides"])
def test_four_eyes_threshold_from_the_environment(app, client, db, app_overrides, approvals):
    org = make_org(db)
    case = make_case(db, org)
    receipt = submitted_receipt(db, case, make_line(db, case), make_user(db, organisation=org), 600)
    first, second = make_user(db, role="staff"), make_user(db, role="staff")
    client.login(first)
    assert approve(client, db, receipt) == ("submitted" if approvals == 2 else "approved")
    if approvals == 2:
        client.post("/logout", data={"csrf_token": client.csrf_token()})
        client.login(second)
        assert approve(client, db, receipt) == "approved"


@pytest.mark.parametrize("app_overrides", [{"PROJECT_BUDGET_EUR": "123456", "PROJECT_FUNDING_EUR": "98765"}],
                         indirect=True)
def test_budget_and_funding_from_the_environment_show_on_the_dashboard(client, db, app_overrides):
    client.login(make_user(db, role="staff"))
    page = client.get("/reports/dashboard").get_data(as_text=True)
    assert "123,456.00" in re.search(r'id="total-budget">([^<]+)', page).group(1)
    assert "98,765.00" in re.search(r'id="total-funding">([^<]+)', page).group(1)


@pytest.mark.parametrize("app_overrides", [{"WORKSHOP_RATE_LIMIT": "1 per hour"}], indirect=True)
def test_workshop_rate_limit_from_the_environment(client, db, app_overrides):
    from tests.factories import make_workshop
    from tests.helpers import form

    w = make_workshop(db)
    codes = [client.submit(f"/workshops/join/{w.public_key}", form(name="")).status_code for _ in range(2)]
    assert codes == [422, 429]


@pytest.mark.parametrize("app_overrides", [{"PROJECT_NAME": "ReStart Senegal", "GRANTEE_NAME": "Example e.V.",
                                            "FUNDING_LINE": "Programme X", "PORTAL_NAME": "ReStart portal"}],
                         indirect=True)
def test_names_from_the_environment_in_footer_and_title(client, app_overrides):
    page = client.get("/login").get_data(as_text=True)
    footer = page.split('<footer', 1)[1]
    assert "ReStart Senegal" in footer and "Example e.V." in footer and "Programme X" in footer
    assert "IntegPlan" not in page and "Micado" not in footer
    assert re.search(r"<title>[^<]*ReStart portal</title>", page)


def test_default_names_are_translated(client):
    client.submit("/language", {"lang": "fr", "next": "/login"})
    page = client.get("/login").get_data(as_text=True)
    assert "Portail IntegPlan</title>" in page
    assert "Cofinancé par l’Union européenne" in page.split("<footer", 1)[1]


# The demo stays out of production ----------------------------------------------------------------

def counts(db) -> tuple[int, int, int]:
    db.expire_all()
    return tuple(len(db.exec(select(m)).all()) for m in (User, Organisation, Case))


@pytest.mark.parametrize("app_overrides", [{"PORTAL_ENV": "production", "SECRET_KEY": "k" * 40}], indirect=True)
def test_demo_load_refuses_in_production(app, db, app_overrides):
    result = app.test_cli_runner().invoke(args=["demo", "load"])
    assert result.exit_code != 0
    assert "PORTAL_ENV=production" in result.output and "refused" in result.output
    assert counts(db) == (0, 0, 0)


def test_demo_load_refuses_a_database_with_real_accounts(app, db):
    make_user(db, role="admin", email="it@micado.example.org")
    before = counts(db)
    result = app.test_cli_runner().invoke(args=["demo", "load"])
    assert result.exit_code != 0 and "not demo accounts" in result.output
    assert counts(db) == before


def test_demo_load_is_repeatable_on_its_own_database(app, db):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["demo", "load"]).exit_code == 0
    before = counts(db)
    again = runner.invoke(args=["demo", "load"])
    assert again.exit_code == 0 and "already present" in again.output  # `make run` calls it every time
    assert counts(db) == before

