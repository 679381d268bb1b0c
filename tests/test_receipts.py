"""Receipts: upload with files, EUR conversion, duplicates, budget, review with four eyes, sweep."""

from __future__ import annotations

import io
import re
import threading
import time
from datetime import date
from uuid import uuid4

import pytest
from PIL import Image
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from portal.audit import AuditEntry
from portal.receipts import budget as receipt_budget
from portal.receipts import decisions as receipt_decisions
from portal.receipts import errors, services
from portal.receipts.models import ExchangeRate, Receipt, ReceiptEvent, ReceiptFile
from portal.storage import get_storage
from tests.factories import make_case, make_line, make_org, make_user
from tests.helpers import (
    S3_ENDPOINT,
    fields,
    jpeg_with_gps,
    load,
    new_receipt,
    stored_keys,
    sweep,
    switch,
    unique_pdf,
    upload,
)

# Helpers ----------------------------------------------------------------------------------------


def review(client, receipt_id, decision, comment="", version=None, db=None):
    if version is None:
        version = load(db, receipt_id).version
    return client.submit(f"/receipts/{receipt_id}/review",
                         {"decision": decision, "comment": comment, "version": str(version)})


def audit_actions(db, receipt_id) -> list[str]:
    db.expire_all()
    return [a.action for a in db.exec(select(AuditEntry).where(AuditEntry.object_type == "Receipt",
                                                              AuditEntry.object_id == str(receipt_id))
                                      .order_by(AuditEntry.id))]


# Upload -----------------------------------------------------------------------------------------

def test_partner_uploads_a_receipt_with_a_pdf_a_photo_and_a_handover_proof(app, client, db, w):
    switch(client, w["partner"])
    photo = jpeg_with_gps((120, 80))
    receipt_id = new_receipt(client, w, files=[(io.BytesIO(unique_pdf()), "Rechnung.pdf"),
                                               (io.BytesIO(photo), "../../IMG_0001.jpg")],
                             handover=[(io.BytesIO(jpeg_with_gps((60, 60))), "handover.jpg")])
    receipt = load(db, receipt_id)
    assert receipt.status == "submitted" and receipt.eur_cents == 25_000
    assert receipt.uploaded_by_id == w["partner"].id
    files = db.exec(select(ReceiptFile).where(ReceiptFile.receipt_id == receipt_id).order_by(ReceiptFile.id)).all()
    assert [(f.kind, f.original_filename, f.confirmed) for f in files] == [
        ("receipt", "Rechnung.pdf", True), ("receipt", "IMG_0001.jpg", True), ("handover", "handover.jpg", True)]
    with app.app_context():
        storage = get_storage()
        for f in files:
            assert re.fullmatch(rf"receipts/{w['case'].id}/[0-9a-f]{{32}}", f.key)
            with storage.open(f.key) as fh:
                data = fh.read()
            assert len(data) == f.size
            import hashlib
            assert hashlib.sha256(data).hexdigest() == f.sha256
        with storage.open(files[1].key) as fh, Image.open(fh) as img:
            assert dict(img.getexif()) == {}  # no GPS stored
    page = client.get(f"/receipts/{receipt_id}").get_data(as_text=True)
    assert "Waiting for review" in page and "Tbilisi Tools Ltd" in page
    assert "receipt.submitted" in audit_actions(db, receipt_id)
    # The case page lists it and counts it as submitted on its budget line.
    case_page = client.get(f"/cases/{w['case'].id}").get_data(as_text=True)
    assert receipt.reference in case_page
    assert "€250.00" in case_page


def test_reviewers_see_previews_of_photos_and_of_the_first_pdf_page(app, client, db, w):
    switch(client, w["partner"])
    receipt_id = new_receipt(client, w, files=[(io.BytesIO(unique_pdf()), "Rechnung.pdf"),
                                               (io.BytesIO(jpeg_with_gps((1600, 1200))), "IMG_0002.jpg")])
    switch(client, w["staff"])
    files = db.exec(select(ReceiptFile).where(ReceiptFile.receipt_id == receipt_id).order_by(ReceiptFile.id)).all()
    page = client.get(f"/receipts/{receipt_id}").get_data(as_text=True)
    for f in files:
        url = f"/receipts/{receipt_id}/files/{f.id}/preview"
        assert url in page
        resp = client.get(url)
        assert resp.status_code == 200 and resp.mimetype == "image/jpeg"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        with Image.open(io.BytesIO(resp.data)) as img:
            assert max(img.size) <= 480 and img.format == "JPEG"
    with app.app_context():  # made once, then kept next to the file
        assert len(list(get_storage().keys("previews/"))) == 2
    assert client.get(f"/receipts/{receipt_id}/files/{files[0].id}/preview").status_code == 200


def test_receipt_needs_a_file_and_keeps_what_was_typed(client, db, w):
    switch(client, w["partner"])
    resp = upload(client, w, files=[], supplier="Kutaisi Market", description="Two sewing machines")
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    assert "Select at least one file of the receipt" in page
    assert 'value="Kutaisi Market"' in page and "Two sewing machines" in page
    assert db.exec(select(Receipt)).all() == []


def test_bad_file_is_refused_with_the_form_kept(client, db, w):
    switch(client, w["partner"])
    resp = upload(client, w, files=[(io.BytesIO(b"<html><script>alert(1)</script>"), "receipt.jpg")],
                  supplier="Batumi Hardware")
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    assert "The selected file must be a PDF, JPG, PNG, HEIC or WebP" in page
    assert 'value="Batumi Hardware"' in page
    assert db.exec(select(Receipt)).all() == []


def test_form_errors_are_listed_and_the_paid_directly_tick_is_required(client, w):
    switch(client, w["partner"])
    resp = upload(client, w, supplier="", paid_directly="")
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    assert "There is a problem" in page
    assert "Enter the name of the supplier" in page
    assert "Confirm that the supplier was paid directly" in page


def test_the_same_form_sent_twice_makes_one_receipt(client, db, w):
    switch(client, w["partner"])
    data = fields(w)
    pdf = unique_pdf()
    first = client.submit(f"/cases/{w['case'].id}/receipts/new",
                          {**data, "files": [(io.BytesIO(pdf), "a.pdf")]}, content_type="multipart/form-data")
    second = client.submit(f"/cases/{w['case'].id}/receipts/new",
                           {**data, "files": [(io.BytesIO(pdf), "a.pdf")]}, content_type="multipart/form-data")
    assert first.status_code == second.status_code == 303
    assert first.location == second.location
    assert len(db.exec(select(Receipt)).all()) == 1
    assert "This receipt was already saved." in client.get(second.location).get_data(as_text=True)


def test_htmx_upload_answers_with_a_redirect_header_or_the_form_fragment(htmx_client, w):
    htmx_client.login(w["partner"])
    ok = upload(htmx_client, w)
    assert ok.status_code == 200 and ok.headers["HX-Redirect"].startswith("/receipts/")
    bad = upload(htmx_client, w, supplier="")
    assert bad.status_code == 422
    body = bad.get_data(as_text=True)
    assert body.lstrip().startswith('<div id="receipt-form">') and "<html" not in body


def test_receipt_pages_have_no_inline_script_or_style(client, w):
    switch(client, w["partner"])
    receipt_id = new_receipt(client, w)
    for url in (f"/cases/{w['case'].id}/receipts/new", f"/receipts/{receipt_id}", f"/cases/{w['case'].id}"):
        page = client.get(url).get_data(as_text=True)
        assert "<script>" not in page and " style=" not in page and "onclick" not in page
        assert 'src="/static/js/upload.js"' in page


# Storage failures and the sweep ------------------------------------------------------------------

@pytest.mark.parametrize("app_overrides", [{"STORAGE_BACKEND": "s3", "S3_ENDPOINT_URL": "http://127.0.0.1:1",
                                            "S3_BUCKET": "nowhere"}])
def test_storage_down_keeps_the_form_and_saves_nothing(client, db, w, app_overrides):
    switch(client, w["partner"])
    started = time.monotonic()
    resp = upload(client, w, supplier="Poti Port Supplies", description="Fishing nets", amount="99.50")
    assert time.monotonic() - started < 15
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    assert "The selected file could not be uploaded – try again" in page
    for typed in ('value="Poti Port Supplies"', "Fishing nets", 'value="99.50"', 'value="2024-03-15"'):
        assert typed in page
    assert db.exec(select(Receipt)).all() == []  # no receipt, not even an intent
    assert db.exec(select(ReceiptFile)).all() == []


def test_database_failure_after_storing_leaves_no_orphan_after_the_sweep(app, client, db, w, monkeypatch):
    switch(client, w["partner"])

    def broken_confirm(*args, **kwargs):
        raise OperationalError("UPDATE receipts", {}, Exception("database went away"))

    monkeypatch.setattr(services, "_confirm_new", broken_confirm)
    # The database stays away for the clean-up too: only the sweep can tidy up.
    monkeypatch.setattr(services, "_abandon", lambda db_, *a, **k: db_.rollback())
    resp = upload(client, w)
    assert resp.status_code == 422
    assert "could not be uploaded – try again" in resp.get_data(as_text=True)
    assert len(stored_keys(app)) == 1
    pending = db.exec(select(Receipt)).one()
    assert pending.status == "pending"
    assert client.get(f"/receipts/{pending.id}").status_code == 404  # an intent is no receipt
    # A sweep with the usual age limit leaves a fresh intent alone; a zero limit removes it.
    assert "removed 0 unconfirmed receipts" in sweep(app, 60).output
    result = sweep(app, 0)
    assert result.exit_code == 0, result.output
    assert "removed 1 unconfirmed receipts, 1 unconfirmed files" in result.output
    assert stored_keys(app) == set()
    db.expire_all()
    assert db.exec(select(Receipt)).all() == [] and db.exec(select(ReceiptFile)).all() == []


def test_sweep_removes_objects_no_row_refers_to_and_keeps_the_rest(app, client, w):
    switch(client, w["partner"])
    new_receipt(client, w)
    kept = stored_keys(app)
    with app.app_context():
        get_storage().put(f"receipts/{w['case'].id}/{uuid4().hex}", io.BytesIO(b"orphan"),
                          content_type="application/pdf")
    assert len(stored_keys(app)) == 2
    result = sweep(app, 0)
    assert "1 unreferenced objects" in result.output
    assert stored_keys(app) == kept


# EUR conversion ---------------------------------------------------------------------------------

def test_eur_amount_uses_the_rate_of_the_invoice_month(client, db, w):
    switch(client, w["staff"])
    resp = client.submit("/receipts/rates", {"currency": "GEL", "month": "2024-03", "rate": "2.9", "source": "InforEuro",
                                             "source_ref": "InforEuro 2024-03"})
    assert resp.status_code == 303
    switch(client, w["partner"])
    receipt = load(db, new_receipt(client, w, currency="GEL", amount="290.00", invoice_date="2024-03-31"))
    assert (receipt.amount_minor, receipt.eur_cents) == (29_000, 10_000)
    assert (receipt.rate_micro, receipt.rate_month, receipt.rate_source) == (2_900_000, date(2024, 3, 1), "InforEuro")
    assert not receipt.rate_missing
    page = client.get(f"/receipts/{receipt.id}").get_data(as_text=True)
    assert "at 2.9 GEL for 1 EUR (2024-03, InforEuro)" in page


def test_currency_without_decimals_is_converted_exactly(client, db, w):
    db.add(ExchangeRate(currency="JPY", month=date(2024, 5, 1), units_per_eur_micro=168_123_400))
    db.commit()
    switch(client, w["partner"])
    receipt = load(db, new_receipt(client, w, currency="JPY", amount="16812", invoice_date="2024-05-02"))
    assert receipt.amount_minor == 16812 and receipt.eur_cents == 10_000
    bad = upload(client, w, currency="JPY", amount="100.50")
    assert bad.status_code == 422 and "at most 0 decimal places" in bad.get_data(as_text=True)


def test_missing_rate_saves_the_receipt_flagged_and_a_new_rate_fills_it_in(client, db, w):
    switch(client, w["partner"])
    receipt_id = new_receipt(client, w, currency="XOF", amount="65596", invoice_date="2024-06-10")
    receipt = load(db, receipt_id)
    assert receipt.status == "submitted" and receipt.rate_missing and receipt.eur_cents is None
    assert "no exchange rate for XOF" in client.get(f"/receipts/{receipt_id}").get_data(as_text=True)
    switch(client, w["staff"])
    csv_text = "currency,month,units_per_eur,source\nXOF,2024-06,655.957,InforEuro\nGEL,2024-06,2.95\n"
    resp = client.submit("/receipts/rates/import", {"file": (io.BytesIO(csv_text.encode()), "rates.csv")},
                         content_type="multipart/form-data")
    assert resp.status_code == 303
    assert "2 rates imported." in client.get(resp.location).get_data(as_text=True)
    receipt = load(db, receipt_id)
    assert not receipt.rate_missing and receipt.eur_cents == 10_000 and receipt.rate_micro == 655_957_000
    assert "receipt.reconverted" in audit_actions(db, receipt_id)


def test_a_bad_csv_imports_nothing(client, db, w):
    switch(client, w["staff"])
    csv_text = "XOF,2024-06,655.957\nGEL,June,2.95\n"
    resp = client.submit("/receipts/rates/import", {"file": (io.BytesIO(csv_text.encode()), "rates.csv")},
                         content_type="multipart/form-data")
    assert resp.status_code == 422 and "Line 2" in resp.get_data(as_text=True)
    db.expire_all()
    assert db.exec(select(ExchangeRate)).all() == []


def test_rates_are_paged(client, db, w, monkeypatch):
    from portal.receipts import rates
    from portal.receipts.models import ExchangeRate

    monkeypatch.setattr(rates, "RATES_PER_PAGE", 4)
    for month in range(1, 11):
        db.add(ExchangeRate(currency="XOF", month=date(2024, month, 1), units_per_eur_micro=655_957_000))
    db.commit()
    switch(client, w["staff"])
    first = client.get("/receipts/rates?currency=XOF").get_data(as_text=True)
    assert "Page 1 of 3" in first and "<td>2024-10</td>" in first and "<td>2024-06</td>" not in first
    assert "/receipts/rates?currency=XOF&amp;page=2" in first
    last = client.get("/receipts/rates?currency=XOF&page=3").get_data(as_text=True)
    assert "<td>2024-02</td>" in last and "<td>2024-01</td>" in last and "<td>2024-03</td>" not in last


def test_rates_and_the_review_queue_are_staff_only(client, w):
    switch(client, w["partner"])
    for url in ("/receipts/rates", "/receipts/review"):
        assert client.get(url).status_code == 404
    assert client.submit("/receipts/rates", {"currency": "GEL", "month": "2024-03", "rate": "2"}).status_code == 404


# Duplicates, period, budget ----------------------------------------------------------------------

def test_the_same_file_again_is_refused_naming_the_receipt(client, db, w):
    switch(client, w["partner"])
    pdf = unique_pdf()
    first = new_receipt(client, w, files=[(io.BytesIO(pdf), "a.pdf")])
    ref = load(db, first).reference
    resp = upload(client, w, files=[(io.BytesIO(pdf), "copy.pdf")])
    assert resp.status_code == 422
    assert f"it belongs to receipt {ref} of case {w['case'].reference}" in resp.get_data(as_text=True)
    # Another organisation's partner learns that it is in the portal, not where (tests/test_attack.py).
    org_b = make_org(db, country="SN")
    case_b, partner_b = make_case(db, org_b, country="SN"), make_user(db, organisation=org_b)
    w_b = {**w, "case": case_b, "line": make_line(db, case_b)}
    switch(client, partner_b)
    page = upload(client, w_b, files=[(io.BytesIO(pdf), "copy.pdf")]).get_data(as_text=True)
    assert "This file is already in the portal." in page and ref not in page and w["case"].reference not in page


def test_same_supplier_and_invoice_number_needs_a_confirmation(client, db, w):
    switch(client, w["partner"])
    first = new_receipt(client, w, supplier="Rustavi Steel", invoice_number="INV-77")
    resp = upload(client, w, supplier="rustavi steel", invoice_number="inv-77")
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    assert "This invoice may already be in the portal" in page and load(db, first).reference in page
    assert "I have checked: this is a different purchase" in page
    second = new_receipt(client, w, supplier="rustavi steel", invoice_number="inv-77", confirm_duplicate="y")
    assert load(db, second).duplicate_suspected
    switch(client, w["staff"])
    page = client.get(f"/receipts/{second}").get_data(as_text=True)
    assert "Possible duplicate" in page and "Same supplier and invoice number as" in page


def test_invoice_outside_the_project_period_is_flagged(client, db, w):
    switch(client, w["partner"])
    resp = upload(client, w, invoice_date="2023-10-31")
    assert resp.status_code == 303
    receipt = load(db, int(resp.location.rsplit("/", 1)[-1]))
    assert receipt.outside_period
    assert "outside the project period" in client.get(resp.location).get_data(as_text=True)
    assert not load(db, new_receipt(client, w, invoice_date="2023-11-01")).outside_period


def test_budget_shows_planned_submitted_approved_and_flags_overspending(client, db, w):
    switch(client, w["partner"])
    first = new_receipt(client, w, amount="600.00")
    second = new_receipt(client, w, amount="500.00")
    assert not load(db, first).over_budget and load(db, second).over_budget
    switch(client, w["staff"])
    assert review(client, first, "approve", db=db).status_code == 303
    figures = receipt_budget.budget_figures(db, w["case"])[w["line"].id]
    assert (figures.submitted_cents, figures.approved_cents) == (110_000, 60_000)
    page = client.get(f"/cases/{w['case'].id}").get_data(as_text=True)
    budget = page[page.index('id="budget"'):page.index('id="receipts"')]
    for amount in ("€1,000.00", "€1,100.00", "€600.00"):
        assert amount in budget


# Review -----------------------------------------------------------------------------------------

def test_staff_approve_and_the_receipt_is_locked(client, db, w):
    switch(client, w["partner"])
    receipt_id = new_receipt(client, w)
    switch(client, w["staff"])
    assert "Tbilisi Tools Ltd" in client.get("/review/").get_data(as_text=True)
    resp = review(client, receipt_id, "approve", db=db)
    assert resp.status_code == 303
    assert load(db, receipt_id).status == "approved"
    entry = db.exec(select(AuditEntry).where(AuditEntry.action == "receipt.approved")).one()
    assert entry.actor_id == w["staff"].id and entry.before["status"] == "submitted"
    assert entry.after["status"] == "approved"
    switch(client, w["partner"])
    page = client.get(f"/receipts/{receipt_id}").get_data(as_text=True)
    assert "Approved receipts are locked." in page and "Correct this receipt" not in page
    resp = client.submit(f"/receipts/{receipt_id}/edit", {**fields(w), "version": "3"})
    assert resp.status_code == 303 and load(db, receipt_id).supplier == "Tbilisi Tools Ltd"
    resp = client.submit(f"/receipts/{receipt_id}/files",
                         {"kind": "receipt", "files": [(io.BytesIO(unique_pdf()), "more.pdf")]},
                         content_type="multipart/form-data")
    assert resp.status_code == 422
    # A handover proof may still follow an approval.
    resp = client.submit(f"/receipts/{receipt_id}/files",
                         {"kind": "handover", "files": [(io.BytesIO(jpeg_with_gps()), "handover.jpg")]},
                         content_type="multipart/form-data")
    assert resp.status_code == 303


def test_partners_cannot_review(client, db, w):
    switch(client, w["partner"])
    receipt_id = new_receipt(client, w)
    assert review(client, receipt_id, "approve", db=db).status_code == 404
    assert load(db, receipt_id).status == "submitted"


def test_the_uploader_never_approves(client, db, w):
    switch(client, w["staff"])
    receipt_id = new_receipt(client, w)
    resp = review(client, receipt_id, "approve", db=db)
    assert resp.status_code == 422
    assert "another staff member must approve it" in resp.get_data(as_text=True)
    assert load(db, receipt_id).status == "submitted"
    switch(client, w["staff2"])
    assert review(client, receipt_id, "approve", db=db).status_code == 303
    assert load(db, receipt_id).status == "approved"


@pytest.mark.parametrize("app_overrides", [{"RECEIPT_FOUR_EYES_EUR": 500}])
def test_four_eyes_above_the_threshold(client, db, w, app_overrides):
    switch(client, w["partner"])
    small = new_receipt(client, w, amount="500.00")
    large = new_receipt(client, w, amount="500.01")
    switch(client, w["staff"])
    review(client, small, "approve", db=db)
    assert load(db, small).status == "approved"  # at the threshold one approval is enough
    resp = review(client, large, "approve", db=db)
    assert "A second staff member must approve it too" in client.get(resp.location).get_data(as_text=True)
    assert load(db, large).status == "submitted"
    assert "Waiting for a second approval" in client.get("/review/").get_data(as_text=True)
    again = review(client, large, "approve", db=db)
    assert again.status_code == 422 and "already approved" in again.get_data(as_text=True)
    switch(client, w["staff2"])
    assert review(client, large, "approve", db=db).status_code == 303
    assert load(db, large).status == "approved"
    assert audit_actions(db, large)[-2:] == ["receipt.first_approval", "receipt.approved"]


def test_rejection_needs_a_reason_which_the_partner_sees(client, db, w):
    switch(client, w["partner"])
    receipt_id = new_receipt(client, w)
    switch(client, w["staff"])
    resp = review(client, receipt_id, "reject", db=db)
    assert resp.status_code == 422 and "Enter the reason for the rejection" in resp.get_data(as_text=True)
    assert review(client, receipt_id, "reject", "Not an in-kind purchase.", db=db).status_code == 303
    switch(client, w["partner"])
    page = client.get(f"/receipts/{receipt_id}").get_data(as_text=True)
    assert "Rejected" in page and "Not an in-kind purchase." in page


def test_correction_request_mails_the_partner_who_corrects_and_every_version_is_kept(app, client, db, w, mails, run_jobs):
    switch(client, w["partner"])
    receipt_id = new_receipt(client, w, supplier="Gori Bakery Supply")
    switch(client, w["staff"])
    assert review(client, receipt_id, "correction", db=db).status_code == 422
    assert review(client, receipt_id, "correction", "The amount differs from the scan.", db=db).status_code == 303
    assert load(db, receipt_id).status == "correction_requested"
    # Told in the hourly digest (`mail digests`), not at once: one mail per user and hour at most.
    assert app.test_cli_runner().invoke(args=["mail", "digests"]).exit_code == 0
    run_jobs()
    [message] = mails.to(w["partner"].email)
    assert "1 update on your cases" in message["Subject"]
    assert "needs a correction: The amount differs from the scan." in message.get_content()
    assert f"/receipts/{receipt_id}" in message.get_content()

    switch(client, w["partner"])
    form = client.get(f"/receipts/{receipt_id}/edit").get_data(as_text=True)
    assert 'value="Gori Bakery Supply"' in form and 'value="250.00"' in form
    receipt = load(db, receipt_id)
    resp = client.submit(f"/receipts/{receipt_id}/edit",
                         {**fields(w, supplier="Gori Bakery Supply", amount="240.00", invoice_number=receipt.invoice_number),
                          "version": str(receipt.version)})
    assert resp.status_code == 303
    receipt = load(db, receipt_id)
    assert (receipt.status, receipt.revision, receipt.eur_cents) == ("submitted", 2, 24_000)
    events = db.exec(select(ReceiptEvent).where(ReceiptEvent.receipt_id == receipt_id).order_by(ReceiptEvent.id)).all()
    assert [e.kind for e in events] == ["submitted", "correction_requested", "resubmitted"]
    assert events[0].snapshot["amount_minor"] == 25_000 and events[2].snapshot["amount_minor"] == 24_000
    page = client.get(f"/receipts/{receipt_id}").get_data(as_text=True)
    assert "The amount differs from the scan." in page and "Corrected and submitted again" in page


def test_two_reviewers_at_once_one_wins_and_the_other_is_told(app, client, db, w):
    switch(client, w["partner"])
    receipt_id = new_receipt(client, w)
    version = load(db, receipt_id).version
    switch(client, w["staff"])
    other = app.test_client()
    other.login(w["staff2"])
    assert review(client, receipt_id, "approve", version=version).status_code == 303
    resp = review(other, receipt_id, "reject", "Duplicate", version=version)
    assert resp.status_code == 409
    assert "Someone else changed this receipt" in resp.get_data(as_text=True)
    assert load(db, receipt_id).status == "approved"
    decisions = db.exec(select(ReceiptEvent).where(ReceiptEvent.receipt_id == receipt_id,
                                                   ReceiptEvent.kind != "submitted")).all()
    assert [e.kind for e in decisions] == ["approved"]


def test_concurrent_decisions_in_the_database_only_one_update_matches(app, client, db, w):
    """Both reviewers loaded version 1 before either wrote: the conditional UPDATE lets one through."""
    switch(client, w["partner"])
    receipt_id = new_receipt(client, w)
    engine = app.extensions["db_engine"]
    results = []
    barrier = threading.Barrier(2)

    def decide(user, decision):
        with app.test_request_context(), Session(engine, expire_on_commit=False) as s:
            receipt, actor = s.get(Receipt, receipt_id), s.get(type(user), user.id)
            barrier.wait()
            try:
                results.append(receipt_decisions.decide(s, actor, receipt, decision, "why", receipt.version))
            except errors.Conflict:
                results.append("conflict")

    threads = [threading.Thread(target=decide, args=(w["staff"], "approve")),
               threading.Thread(target=decide, args=(w["staff2"], "reject"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) in (["approved", "conflict"], ["conflict", "rejected"])
    assert load(db, receipt_id).version == 2


# Downloads --------------------------------------------------------------------------------------

def test_downloads_are_attachments_and_staff_downloads_are_audited(client, db, w):
    switch(client, w["partner"])
    receipt_id = new_receipt(client, w, files=[(io.BytesIO(unique_pdf()), "Rechnung März.pdf")])
    file_id = db.exec(select(ReceiptFile.id).where(ReceiptFile.receipt_id == receipt_id)).one()
    with client.get(f"/receipts/{receipt_id}/files/{file_id}") as resp:
        assert resp.status_code == 200
        assert resp.headers["Content-Disposition"].startswith("attachment;")
        assert "filename*=UTF-8''Rechnung%20M%C3%A4rz.pdf" in resp.headers["Content-Disposition"]
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.data.startswith(b"%PDF-")
    assert not db.exec(select(AuditEntry).where(AuditEntry.action == "receipt_file.downloaded")).all()
    switch(client, w["staff"])
    with client.get(f"/receipts/{receipt_id}/files/{file_id}") as resp:
        assert resp.status_code == 200
    entry = db.exec(select(AuditEntry).where(AuditEntry.action == "receipt_file.downloaded")).one()
    assert entry.actor_id == w["staff"].id and entry.object_id == str(file_id)


# A real S3 server ---------------------------------------------------------------------------------

@pytest.mark.s3
def test_upload_and_download_through_a_real_s3_server(app_config_s3, client, db, w):
    import urllib.request

    app = app_config_s3
    switch(client, w["partner"])
    receipt_id = new_receipt(client, w, files=[(io.BytesIO(jpeg_with_gps()), "photo.jpg")])
    row = db.exec(select(ReceiptFile).where(ReceiptFile.receipt_id == receipt_id)).one()
    with app.app_context():
        storage = get_storage()
        assert storage.exists(row.key)
        head = storage.client.head_object(Bucket=storage.bucket, Key=row.key)
        assert head["Metadata"]["sha256"] == row.sha256
    resp = client.get(f"/receipts/{receipt_id}/files/{row.id}")
    assert resp.status_code == 302 and resp.location.startswith(S3_ENDPOINT)
    with urllib.request.urlopen(resp.location, timeout=10) as fetched:  # noqa: S310 - the local test server
        assert fetched.headers["Content-Disposition"].startswith("attachment;")
        data = fetched.read()
    assert len(data) == row.size and b"Exif" not in data


def test_sweep_command_is_registered(app):
    result = app.test_cli_runner().invoke(args=["receipts", "--help"])
    assert "sweep" in result.output


# In a real browser: photo shrinking, progress, failure keeps the form -----------------------------

def noisy_png(size=(3000, 2000)) -> bytes:
    """A photo-like PNG that does not compress well: several megabytes."""
    img = Image.effect_noise(size, 64).convert("RGB")
    out = io.BytesIO()
    img.save(out, "PNG", compress_level=1)
    return out.getvalue()


def _partner_case(live_server):
    from portal.auth.models import User
    from portal.cases.models import BudgetLine, Case

    with Session(live_server.engine()) as s:
        partner = s.exec(select(User).where(User.email == "partner.a@example.org")).one()
        partner.locale = "en"  # the demo partner reads Russian; these tests drive the English labels
        s.add(partner)
        s.commit()
        case = s.exec(select(Case).join(BudgetLine, BudgetLine.case_id == Case.id)
                      .where(Case.organisation_id == partner.organisation_id)).first()
        line = s.exec(select(BudgetLine).where(BudgetLine.case_id == case.id)).first()
        return case.id, line.description


def _fill(page, supplier: str):
    page.get_by_label("Supplier name").fill(supplier)
    page.get_by_label("Supplier invoice number").fill(uuid4().hex[:8])
    page.get_by_label("Invoice date").fill("2024-04-02")
    page.get_by_label("Amount", exact=True).fill("120.00")
    page.get_by_label("Currency").select_option("EUR")
    page.get_by_label("Description of the goods").fill("Sewing machine")
    page.get_by_label("The supplier was paid directly").check()


@pytest.mark.browser
def test_browser_shrinks_a_big_photo_and_shows_progress(live_server, page, tmp_path):
    from tests.browser_fixtures import sign_in, watch_csp

    csp = watch_csp(page)
    case_id, line = _partner_case(live_server)
    photo = tmp_path / "IMG_big.png"
    photo.write_bytes(noisy_png())
    assert photo.stat().st_size > 5_000_000
    sign_in(page, live_server, "partner.a@example.org")
    page.goto(f"{live_server.url}/cases/{case_id}/receipts/new")
    page.get_by_label("Budget line").select_option(label=line)
    _fill(page, "Kutaisi Photo Test")
    page.get_by_label("Receipt files").set_input_files(str(photo))
    page.get_by_role("button", name="Submit receipt").click()
    page.wait_for_url(re.compile(r".*/receipts/\d+$"))
    assert page.get_by_text("Kutaisi Photo Test").first.is_visible()
    receipt_id = int(page.url.rsplit("/", 1)[-1])
    with Session(live_server.engine()) as s:
        row = s.exec(select(ReceiptFile).where(ReceiptFile.receipt_id == receipt_id)).one()
    assert row.original_filename == "IMG_big.jpg" and row.content_type == "image/jpeg"
    assert row.size < 2_000_000
    with live_server.app.app_context(), get_storage().open(row.key) as fh, Image.open(fh) as img:
        assert max(img.size) == 2000
    assert csp == []


@pytest.mark.browser
def test_browser_sends_photos_smaller_on_a_slow_link(live_server, page, tmp_path):
    """When the browser estimates a slow download (2G: 250 kbit/s), photos are shrunk to 1600 px at a
    lower quality: about a third of the bytes over an uplink that is slower still."""
    from tests.browser_fixtures import sign_in

    case_id, line = _partner_case(live_server)
    photo = tmp_path / "IMG_slow.png"
    photo.write_bytes(noisy_png())
    sign_in(page, live_server, "partner.a@example.org")
    page.goto(f"{live_server.url}/cases/{case_id}/receipts/new")
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")  # the estimate of a 2G download; uploads stay fast for the test's sake
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0,
                                                   "downloadThroughput": 250_000 // 8, "uploadThroughput": -1})
    page.reload()
    assert page.evaluate("navigator.connection.downlink") < 0.5
    page.get_by_label("Budget line").select_option(label=line)
    _fill(page, "Slow Link Photo Test")
    page.get_by_label("Receipt files").set_input_files(str(photo))
    page.get_by_role("button", name="Submit receipt").click()
    page.wait_for_url(re.compile(r".*/receipts/\d+$"), timeout=60_000)
    receipt_id = int(page.url.rsplit("/", 1)[-1])
    with Session(live_server.engine()) as s:
        row = s.exec(select(ReceiptFile).where(ReceiptFile.receipt_id == receipt_id)).one()
    with live_server.app.app_context(), get_storage().open(row.key) as fh, Image.open(fh) as img:
        assert max(img.size) == 1600


@pytest.mark.browser
def test_browser_upload_failure_keeps_everything_typed(live_server, page, tmp_path):
    from tests.browser_fixtures import sign_in

    case_id, line = _partner_case(live_server)
    pdf = tmp_path / "invoice.pdf"
    pdf.write_bytes(unique_pdf())
    sign_in(page, live_server, "partner.a@example.org")
    page.goto(f"{live_server.url}/cases/{case_id}/receipts/new")
    page.get_by_label("Budget line").select_option(label=line)
    _fill(page, "Lost Connection Ltd")
    page.get_by_label("Receipt files").set_input_files(str(pdf))
    page.route("**/receipts/new", lambda route: route.abort("connectionreset")
               if route.request.method == "POST" else route.continue_())
    page.get_by_role("button", name="Submit receipt").click()
    expect_alert = page.get_by_role("alert").filter(has_text="could not be uploaded – try again")
    expect_alert.wait_for()
    assert page.get_by_label("Supplier name").input_value() == "Lost Connection Ltd"
    # The file went ahead by itself (resumable upload): its card, with the id the form sends, is still there.
    assert page.locator(".upload-card", has=page.locator("input[name=uploads]")).filter(has_text="invoice.pdf").count() == 1
    page.unroute("**/receipts/new")
    page.get_by_role("button", name="Submit receipt").click()
    page.wait_for_url(re.compile(r".*/receipts/\d+$"))


def test_the_old_receipts_queue_leads_to_the_review_desk(client, w):
    switch(client, w["staff"])
    resp = client.get("/receipts/review")
    assert resp.status_code == 301 and resp.location.endswith("/review/")


def test_receipt_page_needs_six_statements_for_staff(app, client, db):
    """The receipt page reads the signed-in user, the receipt with its case, budget line and handover state,
    its history, its files, the receipts with the same invoice and its recorded near-duplicates: one
    statement each (the handover state comes with the receipt)."""
    from tests.factories import make_receipt, make_receipt_file
    from tests.helpers import count_statements

    org = make_org(db)
    staff = make_user(db, role="staff")
    case = make_case(db, org)
    line = make_line(db, case)
    receipt = make_receipt(db, case, line, supplier="Tbilisi Tools")
    make_receipt_file(db, receipt)
    client.login(staff)
    url = f"/receipts/{receipt.id}"
    client.get(url)
    with count_statements(app) as statements:
        page = client.get(url).get_data(as_text=True)
    assert "Tbilisi Tools" in page and "x.pdf" in page
    assert len(statements) <= 6, "\n\n".join(statements)
