"""The workshop in a real Chromium: a counsellor registers in Russian without an account, confirms through
the link in the captured e-mail, and a staff member exports the participant list. Labels and roles only
(the labels are looked up in the portal's Russian catalogue, so the test survives new translations)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect
from sqlmodel import Session

from portal.i18n import LANGUAGE_NAMES
from tests.browser_fixtures import axe_violations, format_violations, sign_in, watch_csp
from tests.factories import make_workshop

pytestmark = pytest.mark.browser

STAFF = "staff@example.org"  # Stefan Staff, German
EMAIL = "olga.petrova@example.org"


def test_register_in_russian_confirm_by_mail_and_staff_export(page: Page, live_server, mails):
    with Session(live_server.engine(), expire_on_commit=False) as db:
        workshop = make_workshop(db, title="Advisor exchange", translations={
            "ru": {"title": "Обмен опытом консультантов", "description": "Три дня обмена опытом."}})
    csp = watch_csp(page)

    def t(message, **kw):
        return live_server.t("ru", message, **kw)

    page.goto(f"{live_server.url}/workshops/join/{workshop.public_key}")
    page.get_by_label("Language", exact=True).select_option(label=LANGUAGE_NAMES["ru"])
    page.get_by_role("button", name="Change language").click()
    expect(page.locator("html")).to_have_attribute("lang", "ru")
    expect(page.get_by_role("heading", level=1)).to_have_text("Обмен опытом консультантов")

    page.get_by_label(t("Full name"), exact=True).fill("Ольга Петрова")
    page.get_by_label(t("Email"), exact=True).fill(EMAIL)
    page.get_by_label(t("Organisation"), exact=True).fill("Центр возвращения")
    page.get_by_label(t("Country"), exact=True).select_option("AM")
    page.get_by_label(t("Role"), exact=True).select_option("return_country")
    optional = t("(optional)")
    page.get_by_label(f"{t('Languages you speak')} {optional}", exact=True).fill("русский, армянский")
    page.get_by_label(f"{t('Dietary needs')} {optional}", exact=True).fill("вегетарианское")
    page.get_by_label(t("I agree to the processing of my data for this workshop"), exact=True).check()
    violations = axe_violations(page)
    assert not violations, format_violations(violations)
    page.get_by_role("button", name=t("Register"), exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(t("Check your e-mail"))

    (message,) = mails.wait_for(EMAIL)  # sent by the live server's worker
    text = message.get_body(("plain",)).get_content()
    assert "Ольга Петрова" in text
    link = urlsplit(re.search(r"(http\S+/workshops/confirm/\S+)", text).group(1))
    page.goto(f"{live_server.url}{link.path}")  # the mail links to BASE_URL; the live server has its own port
    page.get_by_role("button", name=t("Confirm my registration")).click()
    expect(page.locator("#registration-status")).to_contain_text(t("Confirmed"))
    assert any(p.get_content_type() == "text/calendar" for p in mails.wait_for(EMAIL, 2)[-1].iter_attachments())

    # A staff member (German) exports the list.
    page.context.clear_cookies()
    sign_in(page, live_server, STAFF)
    page.goto(f"{live_server.url}/workshops/")
    page.get_by_role("link", name="Advisor exchange").click()
    expect(page.get_by_role("link", name="Ольга Петрова")).to_be_visible()
    with page.expect_download() as download_info:
        page.get_by_role("link", name=live_server.t("de", "Export CSV")).click()
    content = Path(download_info.value.path()).read_text(encoding="utf-8-sig")
    assert "Ольга Петрова" in content and EMAIL in content
    assert not csp, csp
