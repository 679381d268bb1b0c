"""The portal in a real Chromium, used like a person: labels and roles, keyboard, screen reader checks.

Each test gets its own live server with the demo data (fixtures in tests/browser_fixtures.py).
Texts are looked up through the app's own translations (`live_server.t(locale, ...)`), so the tests
keep passing when the catalogs fill up; the login page is English because the browser asks for en-GB.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect
from sqlmodel import Session, select

from portal.auth.models import User
from portal.cases.models import BudgetLine, Case
from portal.i18n import LANGUAGE_NAMES
from portal.orgs.models import Organisation
from tests.browser_fixtures import axe_violations, format_violations, sign_in, watch_csp

pytestmark = pytest.mark.browser

STAFF = "staff@example.org"
PARTNER_A = "partner.a@example.org"
ORG_A = "Tbilisi Reintegration Centre"
ORG_B = "Association Retour Dakar"

# Set on window after a full page load; still there afterwards means htmx swapped a part in place.
MARK_PAGE = "() => { window.__samePage = true; }"
SAME_PAGE = "() => window.__samePage === true"


@dataclass
class DemoCase:
    id: int
    reference: str
    status: str
    lines: list[tuple[str, int]]  # (description, cents)

    @property
    def total(self) -> int:
        return sum(cents for _description, cents in self.lines)


def demo_cases(live_server, org_name: str) -> list[DemoCase]:
    """The cases of one demo organisation, read from the live server's database."""
    with Session(live_server.engine()) as db:
        org = db.exec(select(Organisation).where(Organisation.name == org_name)).one()
        cases = db.exec(select(Case).where(Case.organisation_id == org.id).order_by(Case.id)).all()
        return [DemoCase(c.id, c.reference, c.status,
                         [(line.description, line.planned_cents) for line in db.exec(
                             select(BudgetLine).where(BudgetLine.case_id == c.id).order_by(BudgetLine.id))])
                for c in cases]


def locale_of(live_server, email: str) -> str:
    with Session(live_server.engine()) as db:
        return db.exec(select(User.locale).where(User.email == email)).one()


def switch_language(page: Page, live_server, current: str, target: str) -> None:
    """Use the language switcher in the page header."""
    page.get_by_label(live_server.t(current, "Language"), exact=True).select_option(label=LANGUAGE_NAMES[target])
    page.get_by_role("button", name=live_server.t(current, "Change language")).click()
    expect(page.locator("html")).to_have_attribute("lang", target)


def budget_table(page: Page, live_server, locale: str, reference: str):
    return page.get_by_role("table", name=live_server.t(locale, "Budget lines of case %(ref)s", ref=reference))


def total_row(page: Page, live_server, locale: str, reference: str):
    return budget_table(page, live_server, locale, reference).get_by_role("row").filter(
        has=page.get_by_role("rowheader", name=live_server.t(locale, "Total")))


# a. The acceptance path -----------------------------------------------------------------

def test_partner_sees_own_cases_in_arabic_with_budget(page: Page, live_server, tmp_path):
    own, other = demo_cases(live_server, ORG_A), demo_cases(live_server, ORG_B)
    assert own and other
    csp = watch_csp(page)

    sign_in(page, live_server, PARTNER_A)
    locale = locale_of(live_server, PARTNER_A)
    cases = page.get_by_role("table", name=live_server.t(locale, "Cases"))
    for case in own:
        expect(cases.get_by_role("link", name=case.reference, exact=True)).to_be_visible()
    expect(cases.get_by_role("link")).to_have_count(len(own))
    for case in other:
        expect(page.get_by_text(case.reference)).to_have_count(0)
    # Nor can the partner open another organisation's case by its address.
    response = page.goto(f"{live_server.url}/cases/{other[0].id}")
    assert response is not None and response.status == 404
    page.goto(f"{live_server.url}/cases/")

    switch_language(page, live_server, locale, "ar")
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    assert page.evaluate("() => getComputedStyle(document.body).direction") == "rtl"

    case = max(own, key=lambda c: len(c.lines))
    page.get_by_role("link", name=case.reference, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(case.reference)
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    budget = budget_table(page, live_server, "ar", case.reference)
    expect(budget).to_be_visible()
    for description, cents in case.lines:
        expect(budget.get_by_role("row").filter(has_text=description)).to_contain_text(
            live_server.money("ar", cents))
    expect(total_row(page, live_server, "ar", case.reference)).to_contain_text(
        live_server.money("ar", case.total))
    # A partner reads the budget; the staff's edit forms are not there.
    expect(page.get_by_role("button", name=live_server.t("ar", "Save budget line"))).to_have_count(0)

    shot = tmp_path / "partner-case-ar.png"
    page.screenshot(path=shot, full_page=True)
    assert shot.stat().st_size > 1000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert csp == []


# b. Staff: filtering and inline budget editing through htmx -------------------------------------

def test_staff_filters_cases_and_edits_budget_inline(page: Page, live_server):
    every = demo_cases(live_server, ORG_A) + demo_cases(live_server, ORG_B)
    active = [c for c in every if c.status == "active"]
    assert 0 < len(active) < len(every)
    sign_in(page, live_server, STAFF)
    locale = locale_of(live_server, STAFF)

    def t(message, **kw):
        return live_server.t(locale, message, **kw)

    cases = page.get_by_role("table", name=t("Cases"))
    expect(cases.get_by_role("link")).to_have_count(len(every))
    page.evaluate(MARK_PAGE)

    page.get_by_label(t("Status"), exact=True).select_option(label=t("Active"))
    expect(page).to_have_url(re.compile(r"[?&]status=active(&|$)"))
    expect(cases.get_by_role("link")).to_have_count(len(active))
    for case in active:
        expect(cases.get_by_role("link", name=case.reference, exact=True)).to_be_visible()

    wanted = active[-1]
    page.get_by_label(t("Search"), exact=True).fill(wanted.reference)
    expect(page).to_have_url(re.compile(rf"[?&]q={re.escape(wanted.reference)}(&|$)"))
    expect(cases.get_by_role("link")).to_have_text([wanted.reference])
    assert page.evaluate(SAME_PAGE), "the filter reloaded the whole page instead of swapping the list"

    # The pushed URL is a real page: reloading it shows the same filtered list.
    page.reload()
    expect(page.get_by_label(t("Search"), exact=True)).to_have_value(wanted.reference)
    expect(cases.get_by_role("link")).to_have_text([wanted.reference])

    page.get_by_role("link", name=wanted.reference, exact=True).click()
    case_url = page.url
    total = total_row(page, live_server, locale, wanted.reference)
    expect(total).to_contain_text(live_server.money(locale, wanted.total))
    page.evaluate(MARK_PAGE)

    page.get_by_label(t("Category"), exact=True).select_option(label=t("Services"))
    page.get_by_label(t("Description"), exact=True).fill("Transport of the equipment")
    page.get_by_label(t("Planned amount (EUR)"), exact=True).fill("125.50")
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/lines")) as sent:
        page.get_by_role("button", name=t("Save budget line")).click()
    # htmx itself sends the CSRF token as a header (hx-headers on <body>, templates/base.html).
    headers = sent.value.headers
    token = page.evaluate("() => JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRFToken']")
    assert headers.get("hx-request") == "true" and token and headers.get("x-csrftoken") == token
    budget = budget_table(page, live_server, locale, wanted.reference)
    expect(budget.get_by_role("row").filter(has_text="Transport of the equipment")).to_contain_text(
        live_server.money(locale, 12550))
    expect(total).to_contain_text(live_server.money(locale, wanted.total + 12550))
    # The form is empty again for the next line.
    expect(page.get_by_label(t("Description"), exact=True)).to_have_value("")
    assert page.evaluate(SAME_PAGE) and page.url == case_url

    # An empty amount: the error summary, the typed description kept, nothing saved.
    page.get_by_label(t("Description"), exact=True).fill("Spare parts for the pump")
    page.get_by_role("button", name=t("Save budget line")).click()
    summary = page.get_by_role("alert")
    expect(summary.get_by_role("heading", name=t("There is a problem"))).to_be_visible()
    expect(summary.get_by_role("link", name=t("Enter the planned amount in euros, like 1250.00."))).to_be_visible()
    expect(page.get_by_label(t("Description"), exact=True)).to_have_value("Spare parts for the pump")
    expect(page.get_by_label(t("Planned amount (EUR)"), exact=True)).to_have_attribute("aria-invalid", "true")
    expect(total).to_contain_text(live_server.money(locale, wanted.total + 12550))
    expect(budget.get_by_role("row").filter(has_text="Spare parts for the pump")).to_have_count(0)
    assert page.evaluate(SAME_PAGE) and page.url == case_url
    # Focus moves to the summary (static/js/portal.js), so keyboard and screen reader users land on it.
    expect(summary).to_be_focused()

    # The summary's link takes the user to the field to correct.
    summary.get_by_role("link").click()
    expect(page.get_by_label(t("Planned amount (EUR)"), exact=True)).to_be_focused()


# c. Keyboard only ----------------------------------------------------------------------------------

def test_login_by_keyboard(page: Page, live_server):
    page.goto(f"{live_server.url}/login")
    controls = {
        "email": page.get_by_label("Email", exact=True),
        "password": page.get_by_label("Password", exact=True),
        "sign in": page.get_by_role("button", name="Sign in"),
    }

    def focused() -> str | None:
        for name, control in controls.items():
            if control.evaluate("el => el === document.activeElement"):
                return name
        return None

    def tab_to(name: str, most: int, key: str = "Tab") -> None:
        seen = []
        for _ in range(most):
            page.keyboard.press(key)
            now = focused()
            if now == name:
                return
            if now is not None:
                seen.append(now)
        pytest.fail(f"{key} did not reach {name} within {most} presses; passed {seen}")

    tab_to("email", 10)  # past the skip link, the brand and the language switcher
    page.keyboard.type(STAFF)
    tab_to("password", 1)
    page.keyboard.type("demo-password-2025")
    tab_to("sign in", 2)  # past "Keep me signed in"
    tab_to("password", 2, key="Shift+Tab")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{live_server.url}/cases/")


# d. Accessibility (axe-core) ---------------------------------------------------------------------

def test_pages_have_no_serious_accessibility_violations(page: Page, live_server):
    found: dict[str, list[dict]] = {}
    page.goto(f"{live_server.url}/login")
    found["login page"] = axe_violations(page)

    sign_in(page, live_server, STAFF)
    locale = locale_of(live_server, STAFF)
    found["case list (staff)"] = axe_violations(page)

    case = max(demo_cases(live_server, ORG_A), key=lambda c: len(c.lines))
    page.get_by_role("link", name=case.reference, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(case.reference)
    found["case page (staff, with edit forms)"] = axe_violations(page)

    page.get_by_label(live_server.t(locale, "Description"), exact=True).fill("Spare parts")
    page.get_by_role("button", name=live_server.t(locale, "Save budget line")).click()
    expect(page.get_by_role("alert")).to_be_visible()
    found["case page with a form error"] = axe_violations(page)

    switch_language(page, live_server, locale, "ar")
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    expect(page.get_by_role("heading", level=1)).to_contain_text(case.reference)
    found["case page in Arabic"] = axe_violations(page)

    problems = {name: v for name, v in found.items() if v}
    assert not problems, "serious/critical axe violations:\n" + "\n".join(
        f"{name}:\n{format_violations(v)}" for name, v in problems.items())

    # axe really ran under the CSP: an image without a text alternative is found.
    page.evaluate("() => document.querySelector('main').append(document.createElement('img'))")
    assert "image-alt" in {v["id"] for v in axe_violations(page)}


# e. Content-Security-Policy: no inline script or style anywhere on the way ------------------------

def test_no_content_security_policy_violations(page: Page, live_server):
    reported = watch_csp(page)
    page.goto(f"{live_server.url}/login")
    sign_in(page, live_server, STAFF)
    locale = locale_of(live_server, STAFF)
    page.get_by_label(live_server.t(locale, "Status"), exact=True).select_option(label=live_server.t(locale, "Active"))
    expect(page).to_have_url(re.compile(r"status=active"))
    case = demo_cases(live_server, ORG_A)[0]
    page.goto(f"{live_server.url}/cases/{case.id}")
    page.get_by_role("button", name=live_server.t(locale, "Save budget line")).click()  # htmx swaps a 422
    expect(page.get_by_role("alert")).to_be_visible()
    switch_language(page, live_server, locale, "ar")
    assert reported == [], "\n".join(reported)

    # The listener does hear Chromium's reports: an injected inline script is refused and reported.
    with page.expect_console_message(lambda m: "Content Security Policy" in m.text):
        page.evaluate("() => { const s = document.createElement('script');"
                      " s.textContent = 'window.__inline = 1'; document.head.append(s); }")
    assert page.evaluate("() => window.__inline === undefined")
    assert len(reported) == 1
