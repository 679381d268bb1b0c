"""The review desk: one queue across organisations, filters and sorting in the URL, inline decisions with
htmx (through receipts.services.decide), flagged visits, the random sample audit, and its SQL budget."""

from __future__ import annotations

import re
from datetime import date

import pytest
from sqlmodel import select

from portal.audit import AuditEntry
from portal.receipts.models import ReceiptEvent
from portal.review.models import SampleDraw, SampleItem
from portal.review.services import sample_size
from tests.factories import make_receipt, make_sample, make_visit
from tests.helpers import count_statements, item_ids, key, load

# The queue --------------------------------------------------------------------------------------

def test_one_queue_of_every_kind_across_organisations_with_warnings_and_counts(client, desk):
    client.login(desk["staff"])
    page = client.get("/review/").get_data(as_text=True)
    d = desk
    assert item_ids(page) == [key(d["new"]), key(d["corrected"]), key(d["second"]), key(d["no_rate"]),
                              key(d["visit"])]  # oldest first; the approved receipt is not waiting
    assert "Done Ltd" not in page
    for label in ("Submitted receipt", "Corrected receipt", "Waiting for a second approval", "Flagged visit",
                  "Possible duplicate", "Over budget", "Outside project period", "Rate missing",
                  "First receipt of a new supplier", "Needs a doctor"):
        assert label in page, label
    # Counts per type, and the total in the navigation.
    assert ">Submitted receipt: 2<" in page and ">Corrected receipt: 1<" in page
    assert ">Waiting for a second approval: 1<" in page and ">Flagged visit: 1<" in page
    assert re.search(r'id="review-count"[^>]*>5<', page)
    # New supplier: only the first receipt of "Tbilisi Tools" carries the warning.
    new_block = page.split(f'id="{key(d["new"])}"')[1].split("</article>")[0]
    second_block = page.split(f'id="{key(d["second"])}"')[1].split("</article>")[0]
    assert "First receipt of a new supplier" in new_block
    assert "First receipt of a new supplier" not in second_block
    # The receipt without a rate cannot be approved yet; the others can.
    no_rate_block = page.split(f'id="{key(d["no_rate"])}"')[1].split("</article>")[0]
    assert "Add the exchange rate" in no_rate_block and ">Approve<" not in no_rate_block
    # Four eyes: above the threshold, the first approval says so.
    assert "(first of two approvals)" not in second_block  # staff2 approved first; this is the second


def test_partners_do_not_find_the_desk(client, desk):
    client.login(desk["partner"])
    for url in ("/review/", "/review/samples", f"/review/samples/{1}"):
        assert client.get(url).status_code == 404
    resp = client.submit(f"/review/receipts/{desk['new'].id}/decide", {"decision": "approve", "version": "1"})
    assert resp.status_code == 404
    assert "Review desk" not in client.get("/cases/").get_data(as_text=True)


@pytest.mark.parametrize("query, expected", [
    ("type=corrected", ["corrected"]),
    ("type=second", ["second"]),
    ("type=visit", ["visit"]),
    ("status=submitted", ["new", "corrected", "second", "no_rate"]),
    ("status=flagged", ["visit"]),
    ("country=GE", ["new", "second"]),
    ("warning=new_supplier", ["new", "corrected", "no_rate"]),
    ("warning=rate_missing", ["no_rate"]),
    ("warning=duplicate", ["new"]),
    ("min_eur=300&max_eur=1500", ["corrected", "second"]),
    ("min_eur=1000,50", ["second"]),
    ("age=7", ["new"]),
    ("sort=amount_desc", ["second", "corrected", "new", "no_rate", "visit"]),
    ("sort=newest&type=receipt", ["no_rate", "new"]),
])
def test_filters_and_sorting(client, desk, query, expected):
    client.login(desk["staff"])
    page = client.get(f"/review/?{query}").get_data(as_text=True)
    assert item_ids(page) == [key(desk[name]) for name in expected], query


def test_filters_by_organisation_and_case_and_keeps_them_in_the_form(client, desk):
    client.login(desk["staff"])
    page = client.get(f"/review/?organisation={desk['sn'].id}&sort=case").get_data(as_text=True)
    assert item_ids(page) == [key(desk["corrected"]), key(desk["no_rate"]), key(desk["visit"])]
    assert f'<option selected value="{desk["sn"].id}">' in page or f'value="{desk["sn"].id}" selected' in page
    page = client.get(f"/review/?case={desk['case_ge'].reference}").get_data(as_text=True)
    assert item_ids(page) == [key(desk["new"]), key(desk["second"])]
    assert f'value="{desk["case_ge"].reference}"' in page


def test_a_wrong_amount_filter_is_named_and_ignored(client, desk):
    client.login(desk["staff"])
    page = client.get("/review/?min_eur=lots").get_data(as_text=True)
    assert "There is a problem" in page
    assert len(item_ids(page)) == 5


def test_htmx_filter_request_gets_only_the_queue(htmx_client, desk):
    htmx_client.login(desk["staff"])
    resp = htmx_client.get("/review/?type=visit")
    html = resp.get_data(as_text=True)
    assert "<html" not in html and '<section id="review-queue"' in html and 'id="flash"' not in html
    assert item_ids(html) == [key(desk["visit"])]


def test_the_queue_pages(client, db, desk):
    for i in range(30):
        make_receipt(db, desk["case_ge"], supplier=f"Bulk {i}", eur_cents=100 + i)
    client.login(desk["staff"])
    first = client.get("/review/?type=receipt").get_data(as_text=True)
    assert len(item_ids(first)) == 25 and "32 items match" in first  # the total: the desk's count
    next_url = re.search(r'href="([^"]+)"[^>]*rel="next"', first).group(1).replace("&amp;", "&")
    assert "type=receipt" in next_url and "after=" in next_url and "page=" not in next_url
    second = client.get(next_url).get_data(as_text=True)
    assert len(item_ids(second)) == 32 - 25 and 'rel="next"' not in second and 'rel="first"' in second
    assert not set(item_ids(first)) & set(item_ids(second))


# Decisions inline ---------------------------------------------------------------------------------

def decide(client, receipt, decision, comment="", query="", position=0):
    return client.submit(f"/review/receipts/{receipt.id}/decide{query}",
                         {"decision": decision, "comment": comment, "version": str(receipt.version),
                          "position": str(position)})


def test_approve_inline_returns_the_queue_without_the_item(htmx_client, db, desk):
    htmx_client.login(desk["staff"])
    resp = decide(htmx_client, desk["new"], "approve", query="?sort=amount_desc")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert key(desk["new"]) not in item_ids(html)
    assert item_ids(html)[0] == key(desk["second"])  # the sorting asked for is kept
    assert f"Receipt {desk['new'].reference} approved." in html  # into the live region, out of band
    assert re.search(r'id="review-count"[^>]*>4<', html)
    assert "autofocus" in html.split("</h3>")[0]  # focus lands on the item that took its place
    assert "reviewQueueChanged" in resp.headers["HX-Trigger"]
    assert load(db, desk["new"].id).status == "approved"
    actions = db.exec(select(AuditEntry.action).where(AuditEntry.object_id == str(desk["new"].id),
                                                      AuditEntry.object_type == "Receipt")).all()
    assert actions == ["receipt.approved"]


def test_one_form_per_receipt_and_its_text_is_no_comment_on_an_approval(htmx_client, db, desk):
    """Approve, Reject and Request a correction are the buttons of the item's one form (with its CSRF token):
    a reason typed in its box and then Approve records the approval without it, as when Approve had a form
    of its own."""
    htmx_client.login(desk["staff"])
    page = htmx_client.get("/review/").get_data(as_text=True)
    block = page.split(f'id="{key(desk["new"])}"')[1].split("</article>")[0]
    assert block.count("<form") == 1 and block.count('name="csrf_token"') == 1
    for decision in ("approve", "reject", "correction"):
        assert f'name="decision" value="{decision}"' in block
    resp = decide(htmx_client, desk["new"], "approve", comment="a date is missing")
    assert resp.status_code == 200 and load(db, desk["new"].id).status == "approved"
    assert db.exec(select(ReceiptEvent.comment).where(ReceiptEvent.receipt_id == desk["new"].id,
                                                      ReceiptEvent.kind == "approved")).one() == ""


def test_reject_needs_a_reason_and_keeps_what_was_typed(htmx_client, db, desk):
    htmx_client.login(desk["staff"])
    resp = decide(htmx_client, desk["corrected"], "reject", comment="   ", position=1)
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert "Enter the reason for the rejection" in html and key(desk["corrected"]) in item_ids(html)
    assert load(db, desk["corrected"].id).status == "submitted"
    resp = decide(htmx_client, desk["corrected"], "correction", comment="", position=1)
    assert "Enter what the partner must correct" in resp.get_data(as_text=True)
    resp = decide(htmx_client, desk["corrected"], "reject", comment="Not an eligible purchase")
    assert resp.status_code == 200 and key(desk["corrected"]) not in item_ids(resp.get_data(as_text=True))
    receipt = load(db, desk["corrected"].id)
    assert receipt.status == "rejected"
    assert db.exec(select(ReceiptEvent.comment).where(ReceiptEvent.receipt_id == receipt.id,
                                                      ReceiptEvent.kind == "rejected")).one() == \
        "Not an eligible purchase"


def test_request_correction_inline_tells_the_partner(app, htmx_client, db, desk, mails, run_jobs):
    htmx_client.login(desk["staff"])
    resp = decide(htmx_client, desk["new"], "correction", comment="The invoice date is unreadable")
    assert resp.status_code == 200
    assert load(db, desk["new"].id).status == "correction_requested"
    # The partner hears in the next digest (`mail digests`, hourly), with every other decision of the hour.
    assert app.test_cli_runner().invoke(args=["mail", "digests"]).exit_code == 0
    run_jobs()
    assert any("The invoice date is unreadable" in m.get_body().get_content() for m in mails.to(desk["partner"].email))


def test_four_eyes_through_the_desk(htmx_client, db, desk):
    """staff2 approved first: the same person cannot approve again, another staff member can."""
    htmx_client.login(desk["staff2"])
    page = htmx_client.get("/review/?type=second").get_data(as_text=True)
    assert "You have already approved this receipt" in page and ">Approve<" not in page
    resp = decide(htmx_client, desk["second"], "approve")
    assert resp.status_code == 422 and "second, different staff member" in resp.get_data(as_text=True)
    htmx_client.submit("/logout")
    htmx_client.login(desk["staff"])
    resp = decide(htmx_client, desk["second"], "approve")
    assert resp.status_code == 200 and load(db, desk["second"].id).status == "approved"


def test_a_stale_version_is_refused_without_harm(htmx_client, db, desk):
    htmx_client.login(desk["staff"])
    stale = desk["new"].version
    desk["new"].version = stale  # what the page had
    assert decide(htmx_client, desk["new"], "approve").status_code == 200
    resp = htmx_client.submit(f"/review/receipts/{desk['new'].id}/decide",
                              {"decision": "reject", "comment": "x", "version": str(stale)})
    assert resp.status_code == 422
    assert load(db, desk["new"].id).status == "approved"


def test_without_htmx_a_decision_redirects_back_to_the_filtered_queue(client, db, desk):
    client.login(desk["staff"])
    resp = decide(client, desk["new"], "approve", query="?country=GE&sort=newest")
    assert resp.status_code == 303
    assert resp.location.endswith("/review/?country=GE&sort=newest")
    page = client.get(resp.location).get_data(as_text=True)
    assert f"Receipt {desk['new'].reference} approved." in page


def test_acknowledge_a_flagged_visit_inline(htmx_client, db, desk):
    htmx_client.login(desk["staff"])
    resp = htmx_client.submit(f"/review/visits/{desk['visit'].id}/acknowledge", {"comment": "Called the doctor"})
    assert resp.status_code == 200 and key(desk["visit"]) not in item_ids(resp.get_data(as_text=True))
    db.refresh(desk["visit"])
    assert desk["visit"].acknowledged_by_id == desk["staff"].id


def test_workshop_registrations_awaiting_approval_join_the_queue(client, db, desk):
    from tests.factories import make_registration, make_workshop

    workshop = make_workshop(db, moderated=True, title="Advisor exchange 2025")
    pending = make_registration(db, workshop, status="pending", name="Amina Diallo", country="SN",
                                organisation="Dakar Return Desk")
    make_registration(db, workshop, status="confirmed")  # has a seat: nothing to decide
    client.login(desk["staff"])
    page = client.get("/review/?type=registration").get_data(as_text=True)
    assert "Amina Diallo" in page and "Advisor exchange 2025" in page and "Dakar Return Desk" in page
    assert f"/workshops/{workshop.id}/registrations/{pending.id}" in page
    assert ">Registration to approve: 1<" in page
    assert re.search(r'id="review-count"[^>]*>6<', page)
    # Filters that only receipts have leave registrations out; the country filter applies.
    assert "Amina Diallo" not in client.get("/review/?country=GE").get_data(as_text=True)
    assert "Amina Diallo" in client.get("/review/?country=SN").get_data(as_text=True)
    assert "Amina Diallo" not in client.get("/review/?min_eur=1").get_data(as_text=True)


# Sample audit -----------------------------------------------------------------------------------

@pytest.mark.parametrize("population, share, drawn", [(0, 0.1, 0), (1, 0.1, 1), (10, 0.1, 1), (25, 0.1, 3),
                                                       (30, 0.1, 3), (7, 1.0, 7), (40, 0.25, 10)])
def test_sample_size_rounds_up(population, share, drawn):
    assert sample_size(population, share) == drawn


def approved_receipts(db, case, n, day=date(2024, 6, 1)):
    return [make_receipt(db, case, status="approved", invoice_date=day, eur_cents=1000 + i) for i in range(n)]


def test_cli_draws_the_share_of_the_period_and_records_it(app, db, desk):
    in_period = approved_receipts(db, desk["case_ge"], 25)
    approved_receipts(db, desk["case_ge"], 5, day=date(2023, 6, 1))  # outside the period
    result = app.test_cli_runner().invoke(args=["review", "sample", "--share", "0.1", "--from", "2024-01-01",
                                                "--to", "2024-12-31"])
    assert result.exit_code == 0, result.output
    assert "3 of 26 approved receipts drawn" in result.output  # 25 + the desk's approved one (2024-03-01)
    draw = db.exec(select(SampleDraw)).one()
    assert (draw.population, draw.drawn, draw.share_permille) == (26, 3, 100)
    items = db.exec(select(SampleItem).where(SampleItem.draw_id == draw.id)).all()
    drawn_ids = {i.receipt_id for i in items}
    assert len(drawn_ids) == 3 and drawn_ids <= {r.id for r in in_period} | {desk["approved"].id}
    entry = db.exec(select(AuditEntry).where(AuditEntry.action == "review.sample_drawn")).one()
    assert sorted(entry.after["receipt_ids"]) == sorted(drawn_ids) and entry.after["population"] == 26
    # A second draw does not take receipts still waiting for their check.
    result = app.test_cli_runner().invoke(args=["review", "sample", "--share", "1", "--from", "2024-01-01",
                                                "--to", "2024-12-31"])
    assert "23 of 23" in result.output


def test_cli_refuses_a_wrong_share(app, db):
    result = app.test_cli_runner().invoke(args=["review", "sample", "--share", "2", "--from", "2024-01-01",
                                                "--to", "2024-12-31"])
    assert result.exit_code != 0 and "between 0 and 1" in result.output


def test_sampled_receipts_are_checked_in_the_queue(client, htmx_client, db, desk):
    approved_receipts(db, desk["case_sn"], 4)
    client.login(desk["staff"])
    resp = client.submit("/review/samples", {"share": "0.5", "start": "2024-01-01", "end": "2024-12-31"})
    assert resp.status_code == 303
    draw = db.exec(select(SampleDraw)).one()
    assert (draw.population, draw.drawn) == (5, 3)
    page = client.get(resp.location).get_data(as_text=True)
    assert "3 of 5 approved receipts drawn" in page and page.count("Waiting for the check") == 3
    queue = client.get("/review/?type=sample").get_data(as_text=True)
    items = item_ids(queue)
    assert len(items) == 3 and all(i.startswith("sample-") for i in items) and "Sample check" in queue

    htmx_client.login(desk["staff"])
    first = int(items[0].split("-")[1])
    resp = htmx_client.submit(f"/review/samples/items/{first}/check?type=sample", {"outcome": "issue", "comment": ""})
    assert resp.status_code == 422 and "Describe the problem you found." in resp.get_data(as_text=True)
    resp = htmx_client.submit(f"/review/samples/items/{first}/check?type=sample",
                              {"outcome": "issue", "comment": "Stamp missing on the invoice"})
    assert resp.status_code == 200 and len(item_ids(resp.get_data(as_text=True))) == 2
    item = db.get(SampleItem, first)
    db.refresh(item)
    assert item.outcome == "issue" and item.checked_by_id == desk["staff"].id
    assert db.exec(select(AuditEntry).where(AuditEntry.action == "review.sample_checked")).one().after["outcome"] \
        == "issue"
    page = client.get(f"/review/samples/{draw.id}").get_data(as_text=True)
    assert "Stamp missing on the invoice" in page and page.count("Waiting for the check") == 2
    listing = client.get("/review/samples").get_data(as_text=True)
    assert "50.0 %" in listing


def test_the_draw_form_names_its_errors(client, desk):
    client.login(desk["staff"])
    resp = client.submit("/review/samples", {"share": "3", "start": "2024-12-31", "end": ""})
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    assert "There is a problem" in page and "between 0 and 1" in page and "Enter the last day of the period" in page


# SQL statements per page --------------------------------------------------------------------------


def test_the_queue_needs_the_same_few_statements_for_many_rows(app, client, db, desk):
    """Every kind of item waiting, many of each: still four statements (the user; the filter's countries and
    the desk's counts; waiting receipts, sampled receipts, visits and registrations in one; and for the page's
    receipts their budget lines, first files, handover states and whether a near-duplicate is recorded, in
    one), however many rows. (A page with a recorded near-duplicate reads those receipts in one more.)"""
    from tests.factories import make_registration, make_workshop

    workshop = make_workshop(db, moderated=True)
    make_registration(db, workshop, status="pending")
    make_sample(db, desk["approved"])
    client.login(desk["staff"])
    with count_statements(app) as few:
        assert client.get("/review/").status_code == 200
    for i in range(40):
        make_receipt(db, desk["case_sn"], supplier=f"Many {i}", revision=1 + i % 2)
        make_visit(db, desk["case_ge"], flag_safety=True)
        make_registration(db, workshop, status="pending")
    with count_statements(app) as many:
        assert client.get("/review/?sort=amount_desc").status_code == 200
    assert len(many) == len(few)
    assert len(many) <= 4, "\n\n".join(many)
    assert len(item_ids(client.get("/review/?sort=amount_desc").get_data(as_text=True))) == 25  # one page


def test_the_navigation_badges_are_kept_a_while_outside_the_desk(app, client, db, desk):
    """Pages other than the desk reuse the badges' counts for REVIEW_COUNTS_SECONDS; the desk counts
    afresh every time and renews what is kept."""
    client.login(desk["staff"])
    badge = re.compile(r'id="review-count"[^>]*>(\d+)<')
    shown = int(badge.search(client.get("/cases/").get_data(as_text=True)).group(1))
    make_receipt(db, desk["case_sn"], supplier="Arrived meanwhile")
    with count_statements(app) as kept:
        page = client.get("/cases/").get_data(as_text=True)
    assert int(badge.search(page).group(1)) == shown  # kept: not counted again
    assert not any("count(" in s.lower() and "receipt_events" in s for s in kept)
    assert int(badge.search(client.get("/review/").get_data(as_text=True)).group(1)) == shown + 1
    assert int(badge.search(client.get("/cases/").get_data(as_text=True)).group(1)) == shown + 1
    app.config["REVIEW_COUNTS_SECONDS"] = 0  # counted on every page
    make_receipt(db, desk["case_sn"], supplier="And another")
    assert int(badge.search(client.get("/cases/").get_data(as_text=True)).group(1)) == shown + 2
