"""Independent sample checks: the checker is never the receipt's uploader or one of its approvers; a problem
found sends the receipt back for correction and the budget follows; the draw's report; and the Belegliste's
translation, approvers and sample result, opened back cell by cell (XLSX) and as CSV."""

from __future__ import annotations

import csv
import io
from datetime import date

from openpyxl import load_workbook
from sqlmodel import select

from portal.audit import AuditEntry
from portal.notifications.models import Notification
from portal.receipts import decisions
from portal.receipts.models import ReceiptEvent
from portal.reports import summary
from portal.reports.models import BudgetRollup
from portal.review.models import SampleItem
from tests.factories import make_receipt, make_sample, make_user
from tests.helpers import item_ids, load, new_receipt, switch

BELEG = "start=2024-01-01&end=2024-12-31"


def approved_by_two(app, db, w, uploader, **kw):
    """A receipt above the four-eyes threshold, uploaded by `uploader`, approved by staff then staff2."""
    receipt = make_receipt(db, w["case"], w["line"], uploaded_by_id=uploader.id, eur_cents=150_000,
                           amount_minor=150_000, **kw)
    with app.test_request_context():
        for reviewer in (w["staff"], w["staff2"]):
            decisions.decide(db, reviewer, receipt, decisions.APPROVE, "", receipt.version)
    assert load(db, receipt.id).status == "approved"
    return receipt


def sample_block(page: str, item: SampleItem) -> str:
    return page.split(f'id="sample-{item.id}"')[1].split("</article>")[0]


def test_the_uploader_and_each_approver_are_refused_and_another_staff_member_checks(app, htmx_client, db, w):
    uploader, checker = make_user(db, role="staff"), make_user(db, role="staff", name="Clara Checker")
    receipt = approved_by_two(app, db, w, uploader)
    item = make_sample(db, receipt)
    url = f"/review/samples/items/{item.id}/check?type=sample"
    for person, why in ((uploader, "You uploaded this receipt, so another staff member must do its sample check."),
                        (w["staff"], "You approved this receipt, so another staff member must do its sample check."),
                        (w["staff2"], "You approved this receipt, so another staff member must do its sample check.")):
        switch(htmx_client, person)
        # The desk does not offer the check and says why.
        block = sample_block(htmx_client.get("/review/?type=sample").get_data(as_text=True), item)
        assert why in block and "Checked: in order" not in block
        # Sent anyway: refused with the reason on the item, nothing recorded.
        resp = htmx_client.submit(url, {"outcome": "ok", "comment": "Looks fine to me"})
        assert resp.status_code == 422 and why in sample_block(resp.get_data(as_text=True), item)
        db.expire_all()
        assert db.get(SampleItem, item.id).checked_at is None
    assert not db.exec(select(AuditEntry).where(AuditEntry.action == "review.sample_checked")).all()

    switch(htmx_client, checker)
    block = sample_block(htmx_client.get("/review/?type=sample").get_data(as_text=True), item)
    assert "Checked: in order" in block and "another staff member must do its sample check" not in block
    resp = htmx_client.submit(url, {"outcome": "ok", "comment": ""})
    assert resp.status_code == 200 and item_ids(resp.get_data(as_text=True)) == []
    db.expire_all()
    done = db.get(SampleItem, item.id)
    assert (done.outcome, done.checked_by_id) == ("ok", checker.id)
    assert load(db, receipt.id).status == "approved"  # in order: nothing changes
    # Recorded once: a second attempt is refused and changes nothing.
    assert htmx_client.submit(url, {"outcome": "issue", "comment": "Again"}).status_code == 422
    db.expire_all()
    assert db.get(SampleItem, item.id).outcome == "ok" and load(db, receipt.id).status == "approved"


def test_a_problem_found_reopens_the_receipt_notifies_audits_and_the_approved_total_drops(
        app, client, htmx_client, db, w):
    checker = make_user(db, role="staff", name="Clara Checker")
    receipt = approved_by_two(app, db, w, w["partner"])
    item = make_sample(db, receipt)
    version = load(db, receipt.id).version
    before = db.get(BudgetRollup, ("total", ""))
    approved_before, submitted_before = before.approved, before.submitted
    assert approved_before >= 150_000

    switch(htmx_client, checker)
    url = f"/review/samples/items/{item.id}/check?type=sample"
    resp = htmx_client.submit(url, {"outcome": "issue", "comment": ""})
    assert resp.status_code == 422 and "Describe the problem you found." in resp.get_data(as_text=True)
    assert load(db, receipt.id).status == "approved"
    resp = htmx_client.submit(url, {"outcome": "issue", "comment": "The stamp of the supplier is missing"})
    assert resp.status_code == 200
    assert "sent back to the partner for correction" in resp.get_data(as_text=True)

    reopened = load(db, receipt.id)
    assert reopened.status == "correction_requested" and reopened.version == version + 1
    event = db.exec(select(ReceiptEvent).where(ReceiptEvent.receipt_id == receipt.id)
                    .order_by(ReceiptEvent.id.desc())).first()
    assert (event.kind, event.actor_id, event.comment) == ("correction_requested", checker.id,
                                                            "The stamp of the supplier is missing")
    entry = db.exec(select(AuditEntry).where(AuditEntry.action == "receipt.correction_requested")).one()
    assert entry.actor_id == checker.id and entry.before["status"] == "approved"
    assert entry.after["sample_item_id"] == item.id and entry.after["comment"] == event.comment
    checked = db.exec(select(AuditEntry).where(AuditEntry.action == "review.sample_checked")).one()
    assert checked.after["outcome"] == "issue" and checked.after["reopened"] is True
    notices = db.exec(select(Notification).where(Notification.kind == "receipt_correction")).all()
    # The partner, and the approvers who follow the receipt; the checker does not notify themself.
    assert {n.user_id for n in notices} == {w["partner"].id, w["staff"].id, w["staff2"].id}
    assert all(n.params["comment"] == event.comment and n.params["ref"] == receipt.reference for n in notices)

    # The budget: the approved total drops by the receipt's amount, the submitted total stays, and the
    # summary tables match a computation from scratch (what `reports reconcile` checks).
    db.expire_all()
    after = db.get(BudgetRollup, ("total", ""))
    assert after.approved == approved_before - 150_000 and after.submitted == submitted_before
    with app.extensions["db_engine"].connect() as conn:
        assert summary.reconcile(conn) == []

    # The partner sees what to correct and may correct it.
    switch(client, w["partner"])
    page = client.get(f"/receipts/{receipt.id}").get_data(as_text=True)
    assert "Correct this receipt" in page and "The stamp of the supplier is missing" in page


def test_the_sample_report_lists_drawn_checked_problems_and_outcomes(app, client, db, w):
    checker = make_user(db, role="staff", name="Clara Checker")
    receipts = [make_receipt(db, w["case"], w["line"], status="approved", supplier=f"Supplier {i}",
                             invoice_date=date(2024, 6, 1)) for i in range(3)]
    client.login(w["staff"])
    resp = client.submit("/review/samples", {"share": "1", "start": "2024-01-01", "end": "2024-12-31"})
    assert resp.status_code == 303
    items = {i.receipt_id: i for i in db.exec(select(SampleItem))}
    switch(client, checker)
    ok, issue, _open = (items[r.id] for r in receipts)
    assert client.submit(f"/review/samples/items/{ok.id}/check", {"outcome": "ok"}).status_code == 303
    assert client.submit(f"/review/samples/items/{issue.id}/check",
                         {"outcome": "issue", "comment": "Invoice number differs"}).status_code == 303
    page = client.get(resp.location).get_data(as_text=True)
    for element, number in (("sample-drawn", 3), ("sample-checked", 2), ("sample-issues", 1),
                            ("sample-waiting", 1)):
        assert f'id="{element}">{number}<' in page, element
    ok_row = page.split(f'id="sample-item-{ok.id}"')[1].split("</tr>")[0]
    assert "In order" in ok_row and "Clara Checker" in ok_row and receipts[0].reference in ok_row
    issue_row = page.split(f'id="sample-item-{issue.id}"')[1].split("</tr>")[0]
    assert "Problem found" in issue_row and "Invoice number differs" in issue_row
    assert "Clara Checker" in issue_row and "Correction requested" in issue_row
    open_row = page.split(f'id="sample-item-{_open.id}"')[1].split("</tr>")[0]
    assert "Waiting for the check" in open_row and "Clara Checker" not in open_row
    listing = client.get("/review/samples").get_data(as_text=True)
    cells = listing.split(f'href="{resp.location}"')[1].split("</tr>")[0]
    assert [c.split("<")[0] for c in cells.split('<td class="num">')[1:]] == ["100.0 %", "3", "3", "2", "1"]


def belegliste(client) -> tuple[list[list], list[list[str]]]:
    ws = load_workbook(io.BytesIO(client.get(f"/reports/belegliste.xlsx?{BELEG}").data)).worksheets[0]
    xlsx = [[c.value for c in row] for row in ws.iter_rows(min_row=1, max_row=ws.max_row)]
    rows = list(csv.reader(io.StringIO(client.get(f"/reports/belegliste.csv?{BELEG}").data.decode("utf-8-sig"))))
    return xlsx, rows


def test_the_belegliste_carries_translation_approvers_and_the_sample_result(app, client, db, w):
    nameless = make_user(db, role="staff", name="")  # an approver without a name: their e-mail address
    w["staff2"] = nameless
    checker = make_user(db, role="staff", name="Clara Checker")
    sampled = approved_by_two(app, db, w, w["partner"], supplier="A Checked", translation="Welding machine, 2 pcs")
    waiting = approved_by_two(app, db, w, w["partner"], supplier="B Waiting")
    plain = approved_by_two(app, db, w, w["partner"], supplier="C Plain", translation="=1+1; a formula typed")
    done = make_sample(db, sampled)
    make_sample(db, waiting)
    with app.test_request_context():
        from portal.review import services as review

        review.check_sample(db, checker, done, "ok", "")
    client.login(w["staff"])
    xlsx, rows = belegliste(client)
    header = xlsx[0]
    at = {name: header.index(name) for name in ("Receipt", "Approvers", "Translation", "Drawn for a sample check",
                                                "Sample checked by", "Sample check outcome")}
    assert rows[0] == header
    approvers = f"{w['staff'].name}, {nameless.email}"
    expected = {sampled.reference: ["Welding machine, 2 pcs", "Yes", "Clara Checker", "In order"],
                waiting.reference: ["", "Yes", "", "Waiting for the check"],
                plain.reference: ["=1+1; a formula typed", "No", "", ""]}
    names = ("Translation", "Drawn for a sample check", "Sample checked by", "Sample check outcome")
    for row in xlsx[1:4]:
        want = expected[row[at["Receipt"]]]
        assert row[at["Approvers"]] == approvers
        assert [row[at[n]] or "" for n in names] == want
    plain_row = next(r for r in range(2, 5) if xlsx[r - 1][at["Receipt"]] == plain.reference)
    ws = load_workbook(io.BytesIO(client.get(f"/reports/belegliste.xlsx?{BELEG}").data)).worksheets[0]
    assert ws.cell(plain_row, at["Translation"] + 1).data_type == "s"  # text, never a formula
    assert len(rows) == 4
    for row in rows[1:]:
        want = expected[row[at["Receipt"]]]
        assert row[at["Approvers"]] == approvers
        translation = [row[at[n]] for n in names]
        if row[at["Receipt"]] == plain.reference:
            assert translation[0] == "'=1+1; a formula typed"  # kept as text in a spreadsheet
            translation[0] = want[0]
        assert translation == want


def test_a_translation_is_saved_shown_and_exported(client, db, w):
    switch(client, w["partner"])
    receipt_id = new_receipt(client, w, description="ماكينة لحام ومعدات السلامة",
                             translation="Welding machine and safety gear")
    assert load(db, receipt_id).translation == "Welding machine and safety gear"
    page = client.get(f"/receipts/{receipt_id}").get_data(as_text=True)
    assert "Translation or summary" in page and "Welding machine and safety gear" in page
    switch(client, w["staff"])
    resp = client.submit(f"/receipts/{receipt_id}/review", {"decision": "approve", "comment": "",
                                                            "version": str(load(db, receipt_id).version)})
    assert resp.status_code == 303
    xlsx, rows = belegliste(client)
    reference = load(db, receipt_id).reference
    for table in (xlsx, rows):
        row = next(r for r in table[1:] if r[2] == reference)
        assert row[table[0].index("Translation")] == "Welding machine and safety gear"
