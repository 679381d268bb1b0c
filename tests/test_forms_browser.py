"""Nothing typed is lost, and checks before sending, in a real Chromium on a 360×740 phone screen.

The visit and receipt forms keep what is typed on the device (IndexedDB) and give it back after the
page was closed, also offline; the copy goes once the server has the submission and at sign-out. An
empty submit lists every missing field and the file in the error summary without a request, and an
amount typed with Arabic-Indic digits passes the browser's check and is saved as the right amount.
"""

from __future__ import annotations

import re
from uuid import uuid4

import pytest
from playwright.sync_api import Page, expect
from sqlmodel import Session, select

from portal.auth.models import User
from portal.cases.models import BudgetLine, Case
from portal.orgs.models import Organisation
from portal.receipts.models import Receipt
from tests.browser_fixtures import axe_violations, format_violations, sign_in, watch_csp
from tests.helpers import unique_pdf

pytestmark = pytest.mark.browser

VISIT_PARTNER = "partner.b@example.org"  # Awa Partner, French
RECEIPT_PARTNER = "partner.a@example.org"  # Nino Partner; set to Arabic here
STORE = "idbKeyval.createStore('integplan-drafts', 'forms')"


@pytest.fixture
def phone(page: Page) -> Page:
    page.set_viewport_size({"width": 360, "height": 740})
    return page


def _visit_case(live_server) -> Case:
    with Session(live_server.engine()) as db:
        org = db.exec(select(Organisation).where(Organisation.name == "Association Retour Dakar")).one()
        return db.exec(select(Case).where(Case.organisation_id == org.id, Case.status == "active")).first()


def _receipt_case(live_server, locale: str = "ar") -> tuple[int, str]:
    with Session(live_server.engine()) as db:
        partner = db.exec(select(User).where(User.email == RECEIPT_PARTNER)).one()
        partner.locale = locale
        db.add(partner)
        db.commit()
        case = db.exec(select(Case).join(BudgetLine, BudgetLine.case_id == Case.id)
                       .where(Case.organisation_id == partner.organisation_id)).first()
        line = db.exec(select(BudgetLine).where(BudgetLine.case_id == case.id)).first()
        return case.id, line.description


def _ready(page: Page, form: str) -> None:
    """drafts.js has looked for a device copy (and restored it if there was one)."""
    expect(page.locator(f"{form}[data-device-restored]")).to_have_count(1)


def _kept(page: Page, form: str) -> None:
    """Wait until what was typed is written to IndexedDB."""
    page.locator(form).evaluate("f => f.removeAttribute('data-device-saved')")
    expect(page.locator(f"{form}[data-device-saved]")).to_have_count(1)


def _device_keys(page: Page) -> list[str]:
    expect(page.locator("body[data-drafts-cleared]")).to_have_count(1)  # drafts.js (and idb-keyval) ran
    return page.evaluate(f"() => idbKeyval.keys({STORE})")


def _reopen(page: Page, url: str) -> Page:
    """Close the tab (no chance to save on the way out) and open the form again in a new one, online."""
    context = page.context
    page.close()
    context.set_offline(False)
    fresh = context.new_page()
    fresh.set_default_timeout(10_000)
    fresh.set_viewport_size({"width": 360, "height": 740})
    fresh.goto(url)
    return fresh


def test_visit_form_typed_offline_survives_closing_the_tab_and_goes_at_sign_out(phone: Page, live_server):
    case = _visit_case(live_server)
    csp = watch_csp(phone)

    def t(message, **kw):
        return live_server.t("fr", message, **kw)

    sign_in(phone, live_server, VISIT_PARTNER)
    url = f"{live_server.url}/cases/{case.id}/visits/new"
    phone.goto(url)
    _ready(phone, "#visit-form")

    phone.context.set_offline(True)  # nothing typed from here reaches the server
    phone.get_by_label(f'{t("Who attended")} {t("(optional)")}', exact=True).fill("returnee, spouse")
    phone.get_by_label(t("Mode"), exact=True).select_option(label=t("Home visit"))
    phone.get_by_label(f'{t("Notes")} {t("(optional)")}', exact=True).fill("Atelier ouvert, deux apprentis.")
    phone.get_by_label(t("Health"), exact=True).check()
    _kept(phone, "#visit-form")

    page = _reopen(phone, url)  # closed offline: the server never saw the text, it comes from the device
    _ready(page, "#visit-form")
    expect(page.get_by_role("status").filter(has_text=t("What you typed on this device before is back in the "
                                                          "form. Check it before you submit."))).to_be_visible()
    expect(page.get_by_label(f'{t("Notes")} {t("(optional)")}', exact=True)).to_have_value("Atelier ouvert, deux apprentis.")
    expect(page.get_by_label(f'{t("Who attended")} {t("(optional)")}', exact=True)).to_have_value("returnee, spouse")
    expect(page.get_by_label(t("Mode"), exact=True)).to_have_value("home")
    expect(page.get_by_label(t("Health"), exact=True)).to_be_checked()
    violations = axe_violations(page)
    assert not violations, format_violations(violations)
    # Back online, the restored draft goes to the server too.
    expect(page.get_by_text(re.compile(re.escape(t("Draft saved at %(time)s", time="\x00").split("\x00")[0]))))\
        .to_be_visible()

    # Closed while offline and reopened later: still there.
    page.context.set_offline(True)
    page.get_by_label(f'{t("Notes")} {t("(optional)")}', exact=True).fill("Atelier ouvert, trois apprentis.")
    _kept(page, "#visit-form")
    page = _reopen(page, url)
    _ready(page, "#visit-form")
    expect(page.get_by_label(f'{t("Notes")} {t("(optional)")}', exact=True)).to_have_value("Atelier ouvert, trois apprentis.")
    assert [k for k in _device_keys(page) if k.startswith("visit:")]

    # A shared phone: signing out removes every device copy.
    page.once("dialog", lambda dialog: dialog.accept())  # the leave warning, if the autosave is still on its way
    page.get_by_role("button", name=t("Sign out")).click()
    expect(page).to_have_url(re.compile(r"/login"))
    assert _device_keys(page) == []
    assert csp == []


def test_visit_empty_submit_is_checked_in_the_browser_and_a_saved_visit_clears_the_device_copy(
        phone: Page, live_server):
    case = _visit_case(live_server)

    def t(message, **kw):
        return live_server.t("fr", message, **kw)

    sign_in(phone, live_server, VISIT_PARTNER)
    url = f"{live_server.url}/cases/{case.id}/visits/new"
    phone.goto(url)
    _ready(phone, "#visit-form")
    posts = []
    phone.on("request", lambda r: posts.append(r.url) if r.method == "POST" and r.url.endswith("/visits/new")
             else None)
    phone.get_by_label(t("Date of the visit"), exact=True).fill("")
    phone.get_by_label(f'{t("People employed")} {t("(optional)")}', exact=True).fill("12O")
    phone.get_by_role("button", name=t("Submit visit")).click()
    summary = phone.get_by_role("alert").filter(has_text=t("There is a problem"))
    expect(summary).to_be_focused()
    for message in ("Enter the date of the visit.", "Choose how the visit took place.",
                    "Say whether the returnee was met.", "Choose the purpose of the visit.",
                    "Enter a whole number, for example 12."):
        expect(summary.get_by_role("link", name=t(message))).to_be_visible()
    summary.get_by_role("link", name=t("Choose the purpose of the visit.")).click()
    expect(phone.get_by_label(t("Purpose"), exact=True)).to_be_focused()
    assert posts == []

    phone.get_by_label(t("Date of the visit"), exact=True).fill("2026-01-05")
    phone.get_by_label(t("Mode"), exact=True).select_option(label=t("Office meeting"))
    phone.get_by_label(t("Purpose"), exact=True).select_option(label=t("Monitoring visit"))
    phone.get_by_label(t("Was the returnee met?"), exact=True).select_option(label=t("No"))
    phone.get_by_label(t("If not, why not?"), exact=True).fill("Parti au marché")
    phone.get_by_label(f'{t("People employed")} {t("(optional)")}', exact=True).fill("١٢")
    _kept(phone, "#visit-form")
    assert [k for k in _device_keys(phone) if k.startswith("visit:")]
    phone.get_by_role("button", name=t("Submit visit")).click()
    expect(phone).to_have_url(re.compile(r"/visits/\d+$"))
    expect(phone.locator("body[data-drafts-cleared]")).to_have_count(1)
    assert [k for k in _device_keys(phone) if k.startswith("visit:")] == []
    assert len(posts) == 1
    phone.goto(url)
    _ready(phone, "#visit-form")
    expect(phone.get_by_label(t("If not, why not?"), exact=True)).to_have_value("")


def test_receipt_typed_survives_closing_arabic_digits_pass_and_the_copy_goes_after_submit(
        phone: Page, live_server, tmp_path):
    case_id, line = _receipt_case(live_server, "ar")
    csp = watch_csp(phone)

    def t(message, **kw):
        return live_server.t("ar", message, **kw)

    sign_in(phone, live_server, RECEIPT_PARTNER)
    url = f"{live_server.url}/cases/{case_id}/receipts/new"
    phone.goto(url)
    _ready(phone, "#receipt-form form")
    posts = []
    phone.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)

    # An empty submit: every missing field and the file, listed in the browser, nothing sent.
    phone.get_by_role("button", name=t("Submit receipt")).click()
    summary = phone.get_by_role("alert").filter(has_text=t("There is a problem"))
    expect(summary).to_be_focused()
    for message in ("Select at least one file of the receipt", "Enter the name of the supplier",
                    "Enter the amount, like 1250.50", "Choose the budget line this purchase belongs to.",
                    "Confirm that the supplier was paid directly"):
        expect(summary.get_by_role("link", name=t(message))).to_be_visible()
    assert posts == []
    violations = axe_violations(phone)
    assert not violations, format_violations(violations)

    # Typed, kept on the device, the tab closed: it comes back.
    phone.get_by_label(t("Supplier name"), exact=True).fill("مخبز الأمل")
    phone.get_by_label(t("Description of the goods"), exact=True).fill("فرن كهربائي")
    phone.get_by_label(t("Amount"), exact=True).fill("12O.00")
    _kept(phone, "#receipt-form form")
    page = _reopen(phone, url)
    _ready(page, "#receipt-form form")
    expect(page.get_by_label(t("Supplier name"), exact=True)).to_have_value("مخبز الأمل")
    expect(page.get_by_label(t("Description of the goods"), exact=True)).to_have_value("فرن كهربائي")
    # Dropped on purpose, it stays gone; typed again, it is kept again.
    with page.expect_navigation():
        page.get_by_role("button", name=t("Clear what was typed on this device")).click()
    _ready(page, "#receipt-form form")
    expect(page.get_by_label(t("Supplier name"), exact=True)).to_have_value("")
    page.get_by_label(t("Supplier name"), exact=True).fill("مخبز الأمل")
    page.get_by_label(t("Description of the goods"), exact=True).fill("فرن كهربائي")
    page.get_by_label(t("Amount"), exact=True).fill("12O.00")
    _kept(page, "#receipt-form form")
    posts.clear()
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)

    # A letter O in the amount is caught before sending; Arabic-Indic digits are not.
    page.get_by_role("button", name=t("Submit receipt")).click()
    expect(page.get_by_role("alert").get_by_role("link", name=t("Enter the amount as a number, for example "
                                                                "120.50."))).to_be_visible()
    assert posts == []
    page.get_by_label(t("Budget line"), exact=True).select_option(label=line)
    invoice = uuid4().hex[:8]
    page.get_by_label(t("Supplier invoice number"), exact=True).fill(invoice)
    page.get_by_label(t("Invoice date"), exact=True).fill("2024-04-02")
    page.get_by_label(t("Amount"), exact=True).fill("١٢٠٫٥٠")
    page.get_by_label(t("Currency"), exact=True).select_option("EUR")
    page.get_by_label(t("The supplier was paid directly. No cash went to the returnee."), exact=True).check()
    pdf = tmp_path / "invoice.pdf"
    pdf.write_bytes(unique_pdf())
    page.get_by_label(t("Receipt files"), exact=True).set_input_files(str(pdf))
    page.get_by_role("button", name=t("Submit receipt")).click()
    page.wait_for_url(re.compile(r".*/receipts/\d+$"))
    expect(page.locator("body[data-drafts-cleared]")).to_have_count(1)
    assert [k for k in _device_keys(page) if k.startswith("receipt-new:")] == []
    with Session(live_server.engine()) as db:
        receipt = db.exec(select(Receipt).where(Receipt.invoice_number == invoice)).one()
    assert (receipt.amount_minor, receipt.currency, receipt.supplier) == (12050, "EUR", "مخبز الأمل")
    page.goto(url)
    _ready(page, "#receipt-form form")
    expect(page.get_by_label(t("Supplier name"), exact=True)).to_have_value("")
    assert csp == []


def test_leaving_with_typed_text_not_on_the_server_asks_first(phone: Page, live_server):
    case_id, _line = _receipt_case(live_server, "en")
    sign_in(phone, live_server, RECEIPT_PARTNER)
    phone.goto(f"{live_server.url}/cases/{case_id}/receipts/new")
    _ready(phone, "#receipt-form form")
    dialogs = []

    def answer(dialog):
        dialogs.append(dialog.type)
        dialog.accept()

    phone.on("dialog", answer)
    phone.get_by_label("Supplier name", exact=True).click()
    phone.keyboard.type("Kutaisi Tools")
    phone.get_by_role("link", name="Cancel").click()
    phone.wait_for_url(re.compile(r"/cases/\d+"))
    assert dialogs == ["beforeunload"]

    # The visit form: once the autosave has it, leaving is quiet.
    dialogs.clear()
    phone.goto(f"{live_server.url}/cases/{case_id}/visits/new")
    _ready(phone, "#visit-form")
    with phone.expect_response(lambda r: r.url.endswith("/visits/draft") and r.status == 200):
        phone.get_by_label("Notes (optional)", exact=True).click()
        phone.keyboard.type("Workshop open")
        phone.keyboard.press("Tab")
    phone.get_by_role("link", name=re.compile("Back to the case")).click()
    phone.wait_for_url(re.compile(r"/cases/\d+$"))
    assert dialogs == []
