"""A reviewer works through the review desk with the keyboard in a real Chromium: Tab to a decision,
Enter, the item leaves the queue in place (htmx), focus lands on the next item, the count follows."""

from __future__ import annotations

import re
from datetime import date

import pytest
from playwright.sync_api import Page, expect
from sqlmodel import Session, select

from portal.cases.models import BudgetLine, Case
from portal.receipts.models import Receipt
from tests.browser_fixtures import axe_violations, format_violations, sign_in, watch_csp
from tests.test_receipts import make_receipt

pytestmark = pytest.mark.browser

REVIEWER = "staff2@example.org"  # Sofia Second: English, uploaded nothing, approved nothing waiting
MARK_PAGE = "() => { window.__samePage = true; }"
SAME_PAGE = "() => window.__samePage === true"


def waiting_receipts(live_server) -> list[Receipt]:
    """The demo's waiting receipts (one without an exchange rate) and one more below the four-eyes threshold
    on a Senegalese case, oldest first like the queue."""
    with Session(live_server.engine(), expire_on_commit=False) as db:
        case = db.exec(select(Case).order_by(Case.id.desc())).first()
        line = db.exec(select(BudgetLine).where(BudgetLine.case_id == case.id)).first()
        make_receipt(db, case, line, supplier="Outils de Dakar", invoice_date=date(2024, 7, 1),
                     amount_minor=120_00, eur_cents=120_00)
        return list(db.exec(select(Receipt).where(Receipt.status == "submitted").order_by(Receipt.updated_at)))


def focused_text(page: Page) -> str:
    return page.evaluate("() => (document.activeElement && document.activeElement.textContent || '').trim()")


def tab_to_button(page: Page, name: str, most: int = 80) -> None:
    """Press Tab until the focused element is the button whose accessible name is `name`."""
    target = page.get_by_role("button", name=name, exact=True)
    for _ in range(most):
        page.keyboard.press("Tab")
        if target.evaluate("el => el === document.activeElement"):
            return
    pytest.fail(f"Tab did not reach the button {name!r} within {most} presses")


def test_reviewer_works_through_the_queue_with_the_keyboard(page: Page, live_server):
    receipts = waiting_receipts(live_server)
    first, no_rate, second = receipts  # Fabric House (GEL), Weld Academy (no GEL rate yet), Outils de Dakar
    assert no_rate.eur_cents is None and second.supplier == "Outils de Dakar"
    csp = watch_csp(page)
    sign_in(page, live_server, REVIEWER)
    expect(page.locator("#review-count")).to_have_text("3")
    page.get_by_role("link", name="Review desk").click()
    expect(page.get_by_role("heading", name="Review desk", level=1)).to_be_visible()
    violations = axe_violations(page)
    assert not violations, format_violations(violations)
    expect(page.locator(f"#receipt-{first.id}")).to_contain_text("First receipt of a new supplier")
    page.evaluate(MARK_PAGE)

    # The first item: Tab to its Approve button, Enter.
    tab_to_button(page, f"Approve {first.reference}")
    page.keyboard.press("Enter")
    expect(page.locator(f"#receipt-{first.id}")).to_have_count(0)
    expect(page.locator("#flash")).to_contain_text(f"Receipt {first.reference} approved.")
    expect(page.locator("#review-count")).to_have_text("2")
    assert page.evaluate(SAME_PAGE), "the queue was swapped in place, not reloaded"
    # Focus is on the item that took the decided one's place, so the next Tab goes on from there.
    expect(page.locator(f"#receipt-{no_rate.id}-title")).to_be_focused()
    expect(page.locator(f"#receipt-{no_rate.id}")).to_contain_text("Add the exchange rate")

    # The second item: reject without a reason first; the problem is told and focus moves to it.
    tab_to_button(page, f"Reject {second.reference}", most=15)
    page.keyboard.press("Enter")
    expect(page.locator(f"#receipt-{second.id} .error-summary")).to_be_focused()
    expect(page.locator(f"#receipt-{second.id} .error-summary")).to_contain_text("Enter the reason for the rejection")
    # Type the reason, then reject by keyboard.
    page.get_by_label(f"Reason or what to correct ({second.reference})").fill("Invoice is not in the case's plan")
    tab_to_button(page, f"Reject {second.reference}", most=5)
    page.keyboard.press("Enter")
    expect(page.locator(f"#receipt-{second.id}")).to_have_count(0)
    expect(page.locator(f"#receipt-{no_rate.id}-title")).to_be_focused()  # the last item left
    expect(page.locator("ol.review-items > li")).to_have_count(1)
    expect(page.locator("#review-count")).to_have_text("1")
    assert page.evaluate(SAME_PAGE)
    assert not csp, csp

    with Session(live_server.engine()) as db:
        assert db.get(Receipt, first.id).status == "approved"
        assert db.get(Receipt, second.id).status == "rejected"


def test_filters_stay_in_the_url(page: Page, live_server):
    receipts = waiting_receipts(live_server)
    sign_in(page, live_server, REVIEWER)
    page.goto(f"{live_server.url}/review/")
    page.get_by_label("Country").select_option(label="Senegal")
    expect(page).to_have_url(re.compile(r"/review/\?.*country=SN"))
    expect(page.locator("ol.review-items > li")).to_have_count(1)
    expect(page.locator(f"#receipt-{receipts[-1].id}")).to_be_visible()
    page.reload()
    expect(page.get_by_label("Country")).to_have_value("SN")
    expect(page.locator("ol.review-items > li")).to_have_count(1)
