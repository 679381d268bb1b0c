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
from tests.factories import make_receipt

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


# The desk with the receipt in view: keys, previews, and what deciding costs ------------------------

def receipts_with_pictures(live_server, count: int, supplier: str) -> list[Receipt]:
    """`count` receipts below the four-eyes threshold, each with a stored photo of the invoice (so the desk
    shows and fetches real previews), on the demo's last case."""
    import hashlib
    import io
    import random

    from PIL import Image

    from portal.storage import get_storage
    from tests.factories import make_receipt_file

    rnd = random.Random(7)
    made = []
    with live_server.app.app_context(), Session(live_server.engine(), expire_on_commit=False) as db:
        storage = get_storage()
        case = db.exec(select(Case).order_by(Case.id.desc())).first()
        line = db.exec(select(BudgetLine).where(BudgetLine.case_id == case.id)).first()
        for n in range(count):
            receipt = make_receipt(db, case, line, supplier=f"{supplier} {n}", invoice_date=date(2024, 7, 1),
                                   amount_minor=100_00 + n, eur_cents=100_00 + n)
            img = Image.effect_noise((1200, 1600), 40 + n).convert("RGB")  # a phone photo's size
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=70)
            data = buf.getvalue()
            key = f"receipts/{case.id}/desk-{rnd.getrandbits(64):x}"
            storage.put(key, io.BytesIO(data), content_type="image/jpeg")
            digest = hashlib.sha256(data).hexdigest()
            make_receipt_file(db, receipt, key=key, size=len(data), sha256=digest, original_sha256=digest,
                              content_type="image/jpeg", original_filename=f"invoice-{n}.jpg")
            made.append(receipt)
    return made


def test_keys_move_open_and_approve_the_focused_item_but_not_while_typing(page: Page, live_server):
    first, second = receipts_with_pictures(live_server, 2, "Keyboard Supplies")
    csp = watch_csp(page)
    sign_in(page, live_server, REVIEWER)
    page.goto(f"{live_server.url}/review/?q=Keyboard")
    expect(page.get_by_text("Keyboard: j next item")).to_be_visible()
    violations = axe_violations(page)
    assert not violations, format_violations(violations)
    # The preview is there, small, and loaded.
    thumb = page.locator(f"#receipt-{first.id} img.desk-preview")
    expect(thumb).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumb.element_handle())
    page.evaluate(MARK_PAGE)

    page.keyboard.press("j")
    expect(page.locator(f"#receipt-{first.id}-title")).to_be_focused()
    page.keyboard.press("j")
    expect(page.locator(f"#receipt-{second.id}-title")).to_be_focused()
    page.keyboard.press("k")
    expect(page.locator(f"#receipt-{first.id}-title")).to_be_focused()
    # o opens the larger view in place, and closes it again.
    page.keyboard.press("o")
    expect(page.locator(f"#receipt-{first.id} details.desk-larger img")).to_be_visible()
    page.keyboard.press("o")
    expect(page.locator(f"#receipt-{first.id} details.desk-larger img")).to_be_hidden()
    # c goes to the correction text; typing there (even an "a") decides nothing.
    page.keyboard.press("c")
    comment = page.get_by_label(f"Reason or what to correct ({first.reference})")
    expect(comment).to_be_focused()
    page.keyboard.type("a date is missing")
    expect(comment).to_have_value("a date is missing")
    expect(page.locator(f"#receipt-{first.id}")).to_have_count(1)
    # Back on the item, a approves it, through its form (POST with the CSRF token), in place.
    page.locator(f"#receipt-{first.id}-title").focus()
    page.keyboard.press("a")
    expect(page.locator(f"#receipt-{first.id}")).to_have_count(0)
    expect(page.locator("#flash")).to_contain_text(f"Receipt {first.reference} approved.")
    expect(page.locator(f"#receipt-{second.id}-title")).to_be_focused()
    assert page.evaluate(SAME_PAGE)
    assert not csp, csp
    with Session(live_server.engine()) as db:
        assert db.get(Receipt, first.id).status == "approved"
        assert db.get(Receipt, second.id).status == "submitted"


def test_bulk_approval_in_the_browser(page: Page, live_server):
    made = receipts_with_pictures(live_server, 3, "Bulk Buys")
    sign_in(page, live_server, REVIEWER)
    page.goto(f"{live_server.url}/review/?q=Bulk")
    for receipt in made[:2]:
        page.get_by_label(f"Select for approval {receipt.reference}").check()
    page.get_by_role("button", name="Approve selected").click()
    expect(page.locator(".bulk-results")).to_contain_text(f"{made[0].reference}: Approved.")
    expect(page.locator("#flash")).to_contain_text("2 of 2 selected receipts approved.")
    expect(page.locator("ol.review-items > li")).to_have_count(1)
    with Session(live_server.engine()) as db:
        assert [db.get(Receipt, r.id).status for r in made] == ["approved", "approved", "submitted"]


def test_the_cost_of_deciding_ten_receipts(page: Page, live_server):
    """The reviewer's time per receipt, in what the browser fetches: open the desk, decide ten receipts with
    the keyboard (each swap brings the next one into focus), and count every request and byte."""
    made = receipts_with_pictures(live_server, 10, "Timing Traders")
    sign_in(page, live_server, REVIEWER)
    traffic: list[tuple[str, str, int]] = []

    def finished(request) -> None:
        sizes = request.sizes()
        traffic.append((request.method, request.url.removeprefix(live_server.url),
                        sizes["responseBodySize"] + sizes["responseHeadersSize"]))

    page.on("requestfinished", finished)
    page.goto(f"{live_server.url}/review/?q=Timing")
    expect(page.locator("ol.review-items > li")).to_have_count(10)
    page.keyboard.press("j")
    for n, receipt in enumerate(made):
        expect(page.locator(f"#receipt-{receipt.id}-title")).to_be_focused()
        page.keyboard.press("a")
        expect(page.locator(f"#receipt-{receipt.id}")).to_have_count(0)
        expect(page.locator("ol.review-items > li")).to_have_count(9 - n)
    expect(page.locator("#review-empty")).to_be_visible()
    page.wait_for_load_state("networkidle")
    page.remove_listener("requestfinished", finished)

    total = sum(size for _m, _u, size in traffic)
    kinds = {"page": [t for t in traffic if t[0] == "GET" and t[1].startswith("/review/")],
             "decisions": [t for t in traffic if t[0] == "POST"],
             "previews": [t for t in traffic if t[1].endswith("/preview")],
             "assets": [t for t in traffic if t[1].startswith("/static/")]}
    print(f"\nDeciding 10 receipts on the desk: {len(traffic)} requests, {total / 1024:.0f} KB "
          f"({total / 10 / 1024:.1f} KB and {len(traffic) / 10:.1f} requests per receipt)")
    for name, rows in kinds.items():
        print(f"  {name}: {len(rows)} requests, {sum(s for *_r, s in rows) / 1024:.0f} KB")
    with Session(live_server.engine()) as db:
        assert all(db.get(Receipt, r.id).status == "approved" for r in made)
    assert len(kinds["decisions"]) == 10  # one POST per decision, nothing else per receipt but its preview
    assert len(kinds["previews"]) <= 10
    assert len(traffic) <= 40, traffic
    assert total <= 1_500_000, traffic


def test_an_independent_sample_check_finds_a_problem_and_the_report_says_so(page: Page, live_server):
    """Sofia Second approved the demo's receipts, so the desk does not offer her their sample check; Ada Admin
    finds a problem, the receipt goes back for correction, and the draw's report (checked by axe) says so."""
    from portal.review.models import SampleItem
    from tests.factories import make_sample

    with Session(live_server.engine(), expire_on_commit=False) as db:
        receipt = db.exec(select(Receipt).where(Receipt.supplier == "Kaffee Technik GmbH")).one()
        item = make_sample(db, receipt)
    sign_in(page, live_server, REVIEWER)
    page.goto(f"{live_server.url}/review/?type=sample")
    expect(page.locator(f"#sample-{item.id}")).to_contain_text(
        "You approved this receipt, so another staff member must do its sample check.")
    expect(page.get_by_role("button", name=f"Checked: problem found {receipt.reference}")).to_have_count(0)
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, live_server, "admin@example.org")
    page.goto(f"{live_server.url}/review/?type=sample")
    page.get_by_label(f"Findings of the check ({receipt.reference})").fill("The invoice has no stamp")
    page.get_by_role("button", name=f"Checked: problem found {receipt.reference}").click()
    expect(page.locator("#flash")).to_contain_text("sent back to the partner for correction")
    expect(page.locator(f"#sample-{item.id}")).to_have_count(0)
    page.goto(f"{live_server.url}/review/samples/{item.draw_id}")
    row = page.locator(f"#sample-item-{item.id}")
    for text in ("Problem found", "Ada Admin", "The invoice has no stamp", "Correction requested"):
        expect(row).to_contain_text(text)
    expect(page.locator("#sample-issues")).to_have_text("1")
    violations = axe_violations(page)
    assert not violations, format_violations(violations)
    with Session(live_server.engine()) as db:
        assert db.get(Receipt, receipt.id).status == "correction_requested"
        assert db.get(SampleItem, item.id).checked_by_id is not None
