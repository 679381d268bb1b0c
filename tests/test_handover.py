"""Handover confirmations: the partner confirms date, recipient, place, statement and proof (through the
receipts' upload path, plain or resumable); a receipt without one is flagged once its invoice is more than
HANDOVER_DUE_DAYS old, on the desk and in the Belegliste; staff mark it not applicable with a reason."""

from __future__ import annotations

import csv
import io
from base64 import b64encode
from datetime import date, timedelta

import pytest
from openpyxl import load_workbook
from sqlmodel import select

from portal.audit import AuditEntry
from portal.receipts import handover
from portal.receipts.handover import Handover, HandoverExemption, HandoverFile, HandoverReceipt
from portal.receipts.models import ReceiptFile
from tests.factories import make_case, make_org, make_receipt, make_receipt_file, make_user
from tests.helpers import switch, unique_pdf

TODAY = date.today()


@pytest.fixture
def app_overrides(request, monkeypatch):
    """Indirect parameters are environment variables, read by load_config() when the app starts."""
    for name, value in getattr(request, "param", {}).items():
        monkeypatch.setenv(name, value)
    return {}


def form(**kw) -> dict:
    data = {"handover-handed_over_on": (TODAY - timedelta(days=2)).isoformat(), "handover-received_by": "IP-REF",
            "handover-place": "Rustavi, partner office", "handover-statement": "y",
            "handover-files": [(io.BytesIO(unique_pdf()), "signed-note.pdf")]}
    data.update(kw)
    return {k: v for k, v in data.items() if v is not None}


def confirm(client, receipt_id, **kw):
    return client.submit(f"/receipts/{receipt_id}/handover", form(**kw), content_type="multipart/form-data")


def exempt(client, receipt_id, reason):
    return client.submit(f"/receipts/{receipt_id}/handover/not-applicable", {"exempt-reason": reason})


def actions(db, action) -> list[AuditEntry]:
    db.expire_all()
    return list(db.exec(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


# Confirming -------------------------------------------------------------------------------------

def test_partner_confirms_a_delivery_with_date_recipient_place_statement_and_proof(client, db, w):
    first = make_receipt(db, w["case"], w["line"], uploaded_by_id=w["partner"].id)
    second = make_receipt(db, w["case"], w["line"], supplier="Second Supplier", status="approved")
    make_receipt(db, w["case"], w["line"], supplier="Rejected Ltd", status="rejected")  # never offered
    switch(client, w["partner"])
    page = client.get(f"/receipts/{first.id}").get_data(as_text=True)
    # The recipient defaults to the case's pseudonymous reference; the other open receipt may join.
    assert f'value="{w["case"].reference}"' in page
    assert f"<bdi>{second.reference}</bdi> – Second Supplier" in page and "Rejected Ltd" not in page

    resp = confirm(client, first.id, **{"handover-received_by": w["case"].reference, "handover-also": str(second.id)})
    assert resp.status_code == 303, resp.get_data(as_text=True)[:3000]
    assert resp.location.endswith(f"/receipts/{first.id}#handover")

    db.expire_all()
    row = db.exec(select(Handover)).one()
    assert (row.case_id, row.handed_over_on, row.received_by, row.place, row.statement_confirmed,
            row.created_by_id) == (w["case"].id, TODAY - timedelta(days=2), w["case"].reference,
                                   "Rustavi, partner office", True, w["partner"].id)
    assert {r.receipt_id for r in db.exec(select(HandoverReceipt))} == {first.id, second.id}
    proof = db.exec(select(ReceiptFile).join(HandoverFile, HandoverFile.file_id == ReceiptFile.id)).one()
    assert (proof.receipt_id, proof.kind, proof.original_filename, proof.confirmed) == \
        (first.id, "handover", "signed-note.pdf", True)
    entry = actions(db, "receipt.handover_confirmed")[-1]
    assert entry.actor_id == w["partner"].id and entry.after["receipts"] == [first.id, second.id]
    assert entry.after["place"] == "Rustavi, partner office" and entry.after["files"] == [proof.id]

    for receipt in (first, second):  # both pages show the confirmation, the proof and no form any more
        page = client.get(f"/receipts/{receipt.id}").get_data(as_text=True)
        assert "Rustavi, partner office" in page and "signed-note.pdf" in page
        assert f'action="/receipts/{receipt.id}/handover"' not in page
    # Confirmed once: a second confirmation is refused and changes nothing.
    resp = confirm(client, second.id)
    assert resp.status_code == 303
    assert "already" in client.get(resp.location).get_data(as_text=True)
    assert len(db.exec(select(Handover)).all()) == 1


def test_proof_already_on_the_receipt_counts_and_a_resumable_upload_is_claimed(client, db, w):
    """The proof goes through the receipts' own upload path: a file added earlier (kind handover) is
    taken into the confirmation; a completed tus upload is claimed like the receipt forms claim theirs."""
    earlier = make_receipt(db, w["case"], w["line"])
    old_proof = make_receipt_file(db, earlier, kind="handover", original_filename="photo-with-goods.jpg")
    switch(client, w["partner"])
    assert "photo-with-goods.jpg" in client.get(f"/receipts/{earlier.id}").get_data(as_text=True)
    resp = confirm(client, earlier.id, **{"handover-files": None})
    assert resp.status_code == 303, resp.get_data(as_text=True)[:3000]
    db.expire_all()
    assert db.get(HandoverFile, old_proof.id) is not None

    later = make_receipt(db, w["case"], w["line"])
    data = unique_pdf()
    meta = ",".join(f"{k} {b64encode(str(v).encode()).decode()}" for k, v in
                    {"filename": "note.pdf", "filetype": "application/pdf", "purpose": "handover",
                     "case": w["case"].id, "receipt": later.id}.items())
    token = client.csrf_token()
    headers = {"Tus-Resumable": "1.0.0", "X-CSRFToken": token}
    created = client.post("/uploads/", headers={**headers, "Upload-Length": str(len(data)), "Upload-Metadata": meta})
    assert created.status_code == 201
    resp = client.open(created.headers["Location"], method="PATCH", data=data, headers={
        **headers, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
    assert resp.status_code == 204
    upload_token = created.headers["Location"].rsplit("/", 1)[-1]
    resp = confirm(client, later.id, **{"handover-files": None, "uploads": upload_token})
    assert resp.status_code == 303, resp.get_data(as_text=True)[:3000]
    db.expire_all()
    proof = db.exec(select(ReceiptFile).join(HandoverFile, HandoverFile.file_id == ReceiptFile.id)
                    .where(ReceiptFile.receipt_id == later.id)).one()
    assert proof.original_filename == "note.pdf" and proof.kind == "handover"


def test_required_fields_give_translated_errors_and_keep_what_was_typed(client, db, w):
    partner = make_user(db, organisation=w["org"], locale="de")
    receipt = make_receipt(db, w["case"], w["line"])
    switch(client, partner)
    resp = confirm(client, receipt.id, **{"handover-handed_over_on": "", "handover-received_by": "",
                                           "handover-place": "Marneuli Markt", "handover-statement": None,
                                           "handover-files": None})
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    assert "Es gibt ein Problem" in page or "error-summary" in page
    for message in ("Geben Sie das Datum der Übergabe ein", "Geben Sie an, wer die Waren erhalten hat",
                    "Bestätigen Sie, dass die Waren oder die Schulung an die rückkehrende Person übergeben wurden"):
        assert message in page, message
    assert 'value="Marneuli Markt"' in page  # nothing typed is lost
    # The fields filled, but no proof, and a date in the future: each named.
    resp = confirm(client, receipt.id, **{"handover-files": None})
    assert resp.status_code == 422
    assert "Fügen Sie den Nachweis hinzu" in resp.get_data(as_text=True)
    resp = confirm(client, receipt.id, **{"handover-handed_over_on": (TODAY + timedelta(days=3)).isoformat()})
    assert resp.status_code == 422
    assert "Das Datum der Übergabe muss heute oder in der Vergangenheit liegen" in resp.get_data(as_text=True)
    db.expire_all()
    assert db.exec(select(Handover)).all() == []


def test_staff_cannot_confirm_and_partners_cannot_mark_not_applicable(client, db, w):
    receipt = make_receipt(db, w["case"], w["line"])
    switch(client, w["staff"])
    assert confirm(client, receipt.id).status_code == 303  # refused with a message, nothing saved
    switch(client, w["partner"])
    assert exempt(client, receipt.id, "Course fee").status_code == 404
    db.expire_all()
    assert db.exec(select(Handover)).all() == [] and db.exec(select(HandoverExemption)).all() == []


# The rule ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("app_overrides, days", [({}, 30), ({"HANDOVER_DUE_DAYS": "10"}, 10)], indirect=["app_overrides"])
def test_flag_after_handover_due_days_and_not_before(app, client, db, w, app_overrides, days):
    on_time = make_receipt(db, w["case"], w["line"], supplier="On Time", invoice_date=TODAY - timedelta(days=days))
    late = make_receipt(db, w["case"], w["line"], supplier="Too Late", invoice_date=TODAY - timedelta(days=days + 1))
    with app.app_context():
        states = handover.states_of(db, [on_time, late])
    assert states[on_time.id].status == "due" and states[late.id].status == "missing"
    assert states[late.id].due_on == late.invoice_date + timedelta(days=days)

    switch(client, w["staff"])
    desk = client.get("/review/?sort=oldest").get_data(as_text=True)
    item_late = desk.split(f'id="receipt-{late.id}"')[1].split("</li>")[0]
    item_on_time = desk.split(f'id="receipt-{on_time.id}"')[1].split("</li>")[0]
    assert "Handover missing" in item_late and "Handover missing" not in item_on_time
    page = client.get(f"/receipts/{late.id}").get_data(as_text=True)
    assert "Handover missing" in page
    assert "Handover missing" not in client.get(f"/receipts/{on_time.id}").get_data(as_text=True)

    # A confirmation clears the flag.
    switch(client, w["partner"])
    assert confirm(client, late.id).status_code == 303
    switch(client, w["staff"])
    desk = client.get("/review/").get_data(as_text=True)
    assert "Handover missing" not in desk.split(f'id="receipt-{late.id}"')[1].split("</li>")[0]


def test_not_applicable_needs_a_reason_is_audited_and_clears_the_flag(client, db, w):
    receipt = make_receipt(db, w["case"], w["line"], invoice_date=TODAY - timedelta(days=90))
    switch(client, w["staff"])
    resp = exempt(client, receipt.id, "   ")
    assert resp.status_code == 422 and "Give the reason why no handover applies" in resp.get_data(as_text=True)
    assert db.exec(select(HandoverExemption)).all() == []
    assert "Handover missing" in client.get("/review/").get_data(as_text=True)

    resp = exempt(client, receipt.id, "Course fee paid to the vocational school")
    assert resp.status_code == 303
    db.expire_all()
    row = db.get(HandoverExemption, receipt.id)
    assert row.reason == "Course fee paid to the vocational school" and row.created_by_id == w["staff"].id
    entry = actions(db, "receipt.handover_not_applicable")[-1]
    assert (entry.actor_id, entry.object_type, entry.object_id, entry.after) == \
        (w["staff"].id, "Receipt", str(receipt.id), {"reason": "Course fee paid to the vocational school"})
    assert "Handover missing" not in client.get("/review/").get_data(as_text=True)
    page = client.get(f"/receipts/{receipt.id}").get_data(as_text=True)
    assert "Not applicable" in page and "Course fee paid to the vocational school" in page
    # The partner sees the reason and no form to confirm any more.
    switch(client, w["partner"])
    page = client.get(f"/receipts/{receipt.id}").get_data(as_text=True)
    assert "Course fee paid to the vocational school" in page and f"/receipts/{receipt.id}/handover\"" not in page
    assert confirm(client, receipt.id).status_code == 303
    db.expire_all()
    assert db.exec(select(Handover)).all() == []


def test_another_organisations_receipt_is_404_for_every_new_route(client, db, w):
    other_org = make_org(db, country="SN")
    other = make_receipt(db, make_case(db, other_org, country="SN"))
    outsider = make_user(db, organisation=make_org(db))
    switch(client, outsider)
    for htmx in (False, True):
        headers = {"HX-Request": "true"} if htmx else {}
        assert client.submit(f"/receipts/{other.id}/handover", form(), content_type="multipart/form-data",
                             headers=headers).status_code == 404
        assert client.submit(f"/receipts/{other.id}/handover/not-applicable", {"exempt-reason": "x"},
                             headers=headers).status_code == 404
    assert client.get(f"/receipts/{other.id}").status_code == 404
    db.expire_all()
    assert db.exec(select(Handover)).all() == [] and db.exec(select(HandoverExemption)).all() == []
    assert db.exec(select(ReceiptFile).where(ReceiptFile.receipt_id == other.id)).all() == []


# The Belegliste ---------------------------------------------------------------------------------

def test_belegliste_shows_handover_date_status_and_reason(client, db, w):
    case = w["case"]
    confirmed = make_receipt(db, case, w["line"], supplier="A Confirmed", status="approved",
                             invoice_date=date(2024, 3, 1))
    make_receipt(db, case, w["line"], supplier="B Missing", status="approved", invoice_date=date(2024, 3, 2))
    exempted = make_receipt(db, case, w["line"], supplier="C Course", status="approved", invoice_date=date(2024, 3, 3))
    make_receipt(db, case, w["line"], supplier="D Recent", status="approved", invoice_date=TODAY - timedelta(days=3))
    switch(client, w["partner"])
    assert confirm(client, confirmed.id, **{"handover-handed_over_on": "2024-03-10"}).status_code == 303
    switch(client, w["staff"])
    assert exempt(client, exempted.id, "Course fee; no goods").status_code == 303

    period = f"start=2024-01-01&end={TODAY.isoformat()}"
    ws = load_workbook(io.BytesIO(client.get(f"/reports/belegliste.xlsx?{period}").data)).worksheets[0]
    header = [c.value for c in ws[1]]
    assert header[-3:] == ["Handover date", "Handover status", "Handover note"]
    col = header.index("Handover date") + 1
    got = {ws.cell(r, 4).value: [ws.cell(r, col + i).value for i in range(3)] for r in range(2, 6)}
    assert got["A Confirmed"][0].date() == date(2024, 3, 10) and got["A Confirmed"][1:] == ["Confirmed", None]
    assert ws.cell(2, col).number_format == "yyyy-mm-dd"
    assert got["B Missing"] == [None, "Handover missing", None]
    assert got["C Course"] == [None, "Not applicable", "Course fee; no goods"]
    assert got["D Recent"] == [None, "Not yet due", None]

    rows = list(csv.reader(io.StringIO(client.get(f"/reports/belegliste.csv?{period}").data.decode("utf-8-sig"))))
    assert rows[0][-3:] == ["Handover date", "Handover status", "Handover note"]
    by_supplier = {row[3]: row[-3:] for row in rows[1:]}
    assert by_supplier == {"A Confirmed": ["2024-03-10", "Confirmed", ""], "B Missing": ["", "Handover missing", ""],
                           "C Course": ["", "Not applicable", "Course fee; no goods"],
                           "D Recent": ["", "Not yet due", ""]}
