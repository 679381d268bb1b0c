"""The review desk with the receipt in view: previews and budget figures per item, bulk approval through
decide() (each one audited, the others skipped with the reason), search on both databases (partners only
their own organisation's receipts), and keyset paging that survives decisions between page loads."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from sqlmodel import select

from portal.audit import AuditEntry
from portal.clock import utcnow
from portal.receipts.models import Receipt, ReceiptEvent
from tests.factories import make_case, make_line, make_org, make_receipt, make_receipt_file, make_user
from tests.helpers import item_ids, key, load

EUR = "\u20ac"


def block(page: str, obj) -> str:
    """The markup of one queue item."""
    return page.split(f'id="{key(obj)}"')[1].split("</article>")[0]


def euros(text: str) -> str:
    return text.replace("\xa0", " ")


# Preview and budget figures ---------------------------------------------------------------------

def test_each_item_shows_its_preview_and_its_budget_line(client, db, desk):
    d = desk
    pdf = make_receipt_file(db, d["new"], content_type="application/pdf", original_filename="invoice.pdf")
    make_receipt_file(db, d["new"], content_type="image/jpeg", original_filename="second.jpg")
    waiting = make_receipt_file(db, d["corrected"], content_type="image/jpeg", scan_status="pending")
    client.login(d["staff"])
    page = client.get("/review/").get_data(as_text=True)

    new = block(page, d["new"])
    preview = f'/receipts/{d["new"].id}/files/{pdf.id}/preview'
    # The first file, small and lazy, and the same picture larger in place (a <details>, no script).
    assert re.search(rf'<img class="preview desk-preview" src="{preview}"[^>]*loading="lazy"', new)
    assert "<details" in new and "Larger view" in new and new.count(preview) == 2
    # Budget line of the Georgian case: planned 1,000; submitted 250 + 1,500 (the one waiting for a second
    # approval); nothing approved; 750 over.
    figures = euros(re.sub(r"\s+", " ", new.split('class="facts budget-figures"')[1].split("</dl>")[0]))
    shown = dict(re.findall(r"<dt>([^<]+)</dt><dd[^>]*>([^<]+)</dd>", figures))
    assert shown == {"Planned": f"{EUR}1,000.00", "Submitted": f"{EUR}1,750.00", "Approved": f"{EUR}0.00",
                     "Remaining": f"-{EUR}750.00"}, figures
    assert 'class="error"' in figures  # the line is over its plan

    # A file still waiting for its virus scan shows no picture, and its preview is refused (409).
    corrected = block(page, d["corrected"])
    assert "desk-preview" not in corrected and "Pending virus scan" in corrected
    assert client.get(f"/receipts/{d['corrected'].id}/files/{waiting.id}/preview").status_code == 409
    # A receipt without a file says so.
    assert "No file." in block(page, d["second"])
    # The keys are announced on the page, and the script is a file (CSP: script-src 'self').
    assert "j next item" in page and "/static/js/desk.js" in page and "<script>" not in page


# Bulk approval ----------------------------------------------------------------------------------

@pytest.fixture
def bulk(db, desk):
    """Receipts of every kind a reviewer might tick: two that may be approved and four that may not."""
    d = desk
    line = make_line(db, d["case_ge"])
    small = make_receipt(db, d["case_ge"], line, supplier="Small Ltd", eur_cents=20_000, amount_minor=20_000,
                         uploaded_by_id=d["partner"].id)
    make_receipt_file(db, small, content_type="image/jpeg")
    big = make_receipt(db, d["case_ge"], line, supplier="Big Ltd", eur_cents=300_000, amount_minor=300_000,
                       uploaded_by_id=d["partner"].id)
    own = make_receipt(db, d["case_ge"], line, supplier="Own Ltd", eur_cents=10_000, amount_minor=10_000,
                       uploaded_by_id=d["staff"].id)
    scanning = make_receipt(db, d["case_ge"], line, supplier="Scan Ltd", eur_cents=10_000, amount_minor=10_000)
    make_receipt_file(db, scanning, content_type="application/pdf", original_filename="wait.pdf",
                      scan_status="pending")
    return {"small": small, "second": d["second"], "big": big, "own": own, "no_rate": d["no_rate"],
            "scanning": scanning}


def picks(*receipts) -> list[str]:
    return [f"{r.id}:{r.version}" for r in receipts]


def test_bulk_approval_approves_the_eligible_and_names_the_reason_for_each_other(htmx_client, db, desk, bulk):
    b = bulk
    htmx_client.login(desk["staff"])
    page = htmx_client.get("/review/").get_data(as_text=True)
    assert "Approve selected" in page and 'form="bulk-form"' in page
    for name in ("small", "second", "big", "scanning"):
        assert f'value="{b[name].id}:{b[name].version}" form="bulk-form"' in page, name
    # No box where the reviewer may not approve at all.
    assert f'value="{b["own"].id}:' not in page and f'value="{b["no_rate"].id}:' not in page

    resp = htmx_client.submit("/review/approve-selected", {"selected": picks(*b.values())})
    assert resp.status_code == 200
    text = html.unescape(resp.get_data(as_text=True))
    assert "2 of 6 selected receipts approved." in text
    results = text.split('class="bulk-results"')[1].split("</div>")[0]
    ref = {name: r.reference for name, r in b.items()}
    assert f"{ref['small']}</bdi>: Approved." in results
    assert f"{ref['second']}</bdi>: Approved." in results  # the second of two approvals
    assert f"{ref['big']}</bdi>: Above the four-eyes threshold" in results
    assert f"{ref['own']}</bdi>: You uploaded this receipt" in results
    assert f"{ref['no_rate']}</bdi>: Add the exchange rate" in results
    assert f"{ref['scanning']}</bdi>: This receipt cannot be approved yet: wait.pdf is waiting for its virus scan" \
        in results

    statuses = {name: load(db, r.id).status for name, r in b.items()}
    assert statuses == {"small": "approved", "second": "approved", "big": "submitted", "own": "submitted",
                        "no_rate": "submitted", "scanning": "submitted"}
    # Each approval went through decide(): its own event and its own audit entry.
    for name in ("small", "second"):
        audited = db.exec(select(AuditEntry).where(AuditEntry.action == "receipt.approved",
                                                   AuditEntry.object_id == str(b[name].id))).all()
        assert len(audited) == 1 and audited[0].actor_id == desk["staff"].id
        assert db.exec(select(ReceiptEvent).where(ReceiptEvent.receipt_id == b[name].id,
                                                  ReceiptEvent.kind == "approved")).one()
    # Nothing was recorded for the ones skipped (no first approval slipped in for the big one).
    assert not db.exec(select(ReceiptEvent).where(ReceiptEvent.receipt_id == b["big"].id)).all()
    assert item_ids(text).count(key(b["small"])) == 0 and key(b["big"]) in item_ids(text)


def test_bulk_approval_without_htmx_and_without_a_selection(client, db, desk, bulk):
    client.login(desk["staff"])
    resp = client.submit("/review/approve-selected?type=receipt", {"selected": picks(bulk["small"], bulk["own"])})
    assert resp.status_code == 303 and "type=receipt" in resp.headers["Location"]
    page = html.unescape(client.get(resp.headers["Location"]).get_data(as_text=True))
    assert "1 of 2 selected receipts approved." in page
    assert f"{bulk['own'].reference}: You uploaded this receipt" in page
    assert load(db, bulk["small"].id).status == "approved"
    # Nothing ticked: told so, nothing changes.
    resp = client.submit("/review/approve-selected", {})
    assert resp.status_code == 303
    assert "Select the receipts to approve." in client.get("/review/").get_data(as_text=True)
    # A stale version (someone changed it since the page was loaded) is skipped, not approved.
    stale = bulk["scanning"]
    resp = client.submit("/review/approve-selected", {"selected": [f"{stale.id}:{stale.version + 5}"]})
    assert "Someone else changed this receipt" in html.unescape(client.get("/review/").get_data(as_text=True))


# Search -----------------------------------------------------------------------------------------

@pytest.fixture
def shelves(db):
    """Two organisations' receipts with distinct words in each searchable field."""
    org_a, org_b = make_org(db, country="GE"), make_org(db, country="SN")
    case_a, case_b = make_case(db, org_a), make_case(db, org_b, country="SN")
    mine = make_receipt(db, case_a, make_line(db, case_a), supplier="Kutaisi Hardware",
                        invoice_number="KH-2024-0815", description="Welding machine and cables",
                        translation="Schweissgeraet mit Kabeln")
    theirs = make_receipt(db, case_b, make_line(db, case_b), supplier="Dakar Outillage",
                          invoice_number="DO-77", description="Machine a coudre", translation="Naehmaschine")
    approved = make_receipt(db, case_a, supplier="Kutaisi Hardware", invoice_number="KH-2024-0001",
                            description="Drill", status="approved")
    return {"org_a": org_a, "org_b": org_b, "mine": mine, "theirs": theirs, "approved": approved,
            "partner_a": make_user(db, organisation=org_a), "staff": make_user(db, role="staff")}


def found(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr id="found-(\d+)">', page)]


@pytest.mark.parametrize("words, expected", [
    ("Kutaisi", ["approved", "mine"]),
    ("kutaisi hardware", ["approved", "mine"]),
    ("KH-2024-0815", ["mine"]),
    ("welding", ["mine"]),
    ("Schweissgeraet", ["mine"]),  # the translation
    ("Naehmaschine", ["theirs"]),
    ("DO-77", ["theirs"]),
    ("Kutaisi Naehmaschine", []),  # every word must match
    ('"welding" OR drill', []),  # the user's quotes and operators are words, not syntax
])
def test_staff_search_finds_receipts_by_each_field(client, shelves, words, expected):
    client.login(shelves["staff"])
    resp = client.get("/receipts/search", query_string={"q": words})
    assert resp.status_code == 200
    ids = found(resp.get_data(as_text=True))
    assert ids == sorted((shelves[name].id for name in expected), reverse=True), words


def test_a_partner_searches_only_their_own_organisation(client, shelves):
    client.login(shelves["partner_a"])
    for words in ("Naehmaschine", "Dakar", "DO-77", "machine"):
        page = client.get("/receipts/search", query_string={"q": words}).get_data(as_text=True)
        assert shelves["theirs"].id not in found(page) and "Dakar Outillage" not in page, words
    page = client.get("/receipts/search", query_string={"q": "machine"}).get_data(as_text=True)
    assert found(page) == [shelves["mine"].id]


def test_search_follows_corrections_and_pages(client, db, shelves):
    mine = shelves["mine"]
    mine.supplier = "Batumi Metals"
    db.add(mine)
    db.commit()
    client.login(shelves["staff"])
    assert found(client.get("/receipts/search?q=Batumi").get_data(as_text=True)) == [mine.id]
    assert found(client.get("/receipts/search?q=Kutaisi").get_data(as_text=True)) == [shelves["approved"].id]
    case = make_case(db, shelves["org_a"])
    made = [make_receipt(db, case, supplier=f"Poti Paper {i}", description="paper").id for i in range(30)]
    first = client.get("/receipts/search?q=paper").get_data(as_text=True)
    next_url = html.unescape(re.search(r'href="([^"]+)"[^>]*rel="next"', first).group(1))
    second = client.get(next_url).get_data(as_text=True)
    assert found(first) + found(second) == sorted(made, reverse=True)


def test_the_desk_searches_its_queue(client, db, desk):
    desk["corrected"].translation = "Saatgut fuer die Felder"
    db.add(desk["corrected"])
    db.commit()
    client.login(desk["staff"])
    page = client.get("/review/?q=Saatgut").get_data(as_text=True)
    assert item_ids(page) == [key(desk["corrected"])]
    assert 'value="Saatgut"' in page
    page = client.get("/review/?q=tbilisi+tools").get_data(as_text=True)
    assert item_ids(page) == [key(desk["new"]), key(desk["second"])]
    page = client.get("/review/?q=Done").get_data(as_text=True)  # approved: not waiting
    assert item_ids(page) == []


# Keyset paging ----------------------------------------------------------------------------------

@pytest.mark.parametrize("sort", ["oldest", "newest", "amount_desc", "organisation"])
def test_paging_shows_every_waiting_item_once_while_items_are_decided(client, db, desk, sort):
    d = desk
    same_moment = utcnow() - timedelta(days=3)
    for i in range(56):  # ties on purpose: many receipts share their moment and their amount
        make_receipt(db, d["case_sn" if i % 2 else "case_ge"], supplier=f"Paged {i}", eur_cents=500 + i % 4,
                     amount_minor=500 + i % 4, updated_at=same_moment if i % 3 else same_moment + timedelta(
                         seconds=i), uploaded_by_id=d["partner"].id)
    waiting = {key(r) for r in db.exec(select(Receipt).where(Receipt.status == "submitted")).all()}
    waiting.add(key(d["visit"]))
    client.login(d["staff"])
    seen: list[str] = []
    url = f"/review/?sort={sort}"
    pages = 0
    while url:
        page = client.get(url).get_data(as_text=True)
        shown = item_ids(page)
        assert len(shown) <= 25
        seen += shown
        pages += 1
        # Between page loads, decide two of the items just seen (they leave the queue).
        for item in shown[:2]:
            if item.startswith("receipt-"):
                receipt = load(db, int(item.split("-")[1]))
                if receipt.eur_cents is not None and receipt.uploaded_by_id != d["staff"].id \
                        and receipt.eur_cents <= 100_000:
                    client.submit(f"/review/receipts/{receipt.id}/decide",
                                  {"decision": "approve", "version": str(receipt.version)})
        match = re.search(r'href="([^"]+)"[^>]*rel="next"', page)
        url = html.unescape(match.group(1)) if match else None
        assert pages < 10
    assert len(seen) == len(set(seen)), "an item was shown twice"
    assert set(seen) == waiting, "an item was never shown"


@pytest.mark.parametrize("sort,values", [
    ("oldest", ["x", "y", "z"]), ("oldest", [10**30, 10**30, 10**30]), ("case", [1, 2, 3, 4]),
    ("amount_desc", ["a", "b", "c", "d", "e"]), ("newest", [True, {"d": "2024-01-01"}, 1])])
def test_a_cursor_made_by_hand_gives_the_first_page_not_an_error(client, desk, sort, values):
    import base64
    import json

    client.login(desk["staff"])
    cursor = base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")
    resp = client.get(f"/review/?sort={sort}&after={cursor}")
    assert resp.status_code == 200
    assert key(desk["new"]) in item_ids(resp.get_data(as_text=True)) or sort != "oldest"


def test_a_ticked_id_beyond_the_id_columns_is_ignored(client, desk):
    client.login(desk["staff"])
    resp = client.submit("/review/approve-selected", {"selected": [f"{2**31}:1", "99999999999:1"]})
    assert resp.status_code in (200, 303)


def test_search_paging_beyond_the_id_columns_is_the_first_page(client, desk):
    client.login(desk["staff"])
    resp = client.get("/receipts/search?q=Tbilisi&before=99999999999")
    assert resp.status_code == 200 and "Tbilisi Tools" in resp.get_data(as_text=True)
