"""Suggestions from the uploaded receipt (portal/ocr/prefill.py): read on the task queue once the new-receipt
form's upload completes, offered in the form, never filled by themselves; carried over to the receipt; the
recognised text for staff and in the receipts' search, each organisation within its own."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from flask_babel import force_locale, format_date
from playwright.sync_api import Page, expect
from sqlmodel import Session, select

from portal import tasks
from portal.auth.models import User
from portal.cases.models import BudgetLine, Case
from portal.clock import utcnow
from portal.ocr import prefill
from portal.ocr import services as ocr
from portal.ocr.models import UploadText
from portal.storage import get_storage
from portal.uploads.models import Upload
from tests.browser_fixtures import axe_violations, format_violations, sign_in, watch_csp
from tests.factories import (
    make_org,
    make_receipt,
    make_receipt_file,
    make_receipt_picture,
    make_receipt_text,
    make_user,
)
from tests.helpers import fields, switch, upload_file

POLL = "every 2s"


def suggestions(client, token, **args):
    return client.get(f"/uploads/{token}/suggestions", query_string=args, headers={"HX-Request": "true"})


def upload_receipt(client, w, seed=4, lang="fr", purpose="receipt"):
    """A generated receipt (a text PDF: read without tesseract, in a blink) uploaded by tus; its truth."""
    data, truth = make_receipt_picture(seed, lang, "invoice", kind="pdf")
    return upload_file(client, w["case"].id, data, "facture.pdf", purpose=purpose), truth


def upload_row(db, token) -> Upload:
    db.expire_all()
    return db.exec(select(Upload).where(Upload.token == token)).one()


def test_suggestions_appear_once_read_and_carry_over_to_the_saved_receipt(app, client, db, w, run_jobs,
                                                                          monkeypatch):
    switch(client, w["partner"])
    token, truth = upload_receipt(client, w)
    first = suggestions(client, token)  # not read in the request: on the queue
    assert first.status_code == 200 and first.headers["Cache-Control"] == "no-store"
    html = first.get_data(as_text=True)
    assert "Reading the receipt for suggestions" in html and POLL in html
    since = re.search(r"since=([0-9.]+)", html).group(1)
    assert suggestions(client, token, since=since).status_code == 204  # still reading: the page stays
    run_jobs()
    html = suggestions(client, token, since=since).get_data(as_text=True)
    assert POLL not in html  # read: the form stops asking
    for name in ("supplier", "invoice_number", "invoice_date", "currency"):
        assert f'data-prefill-field="{name}" data-prefill-value="{truth[name]}"' in html
    assert f'data-prefill-field="amount" data-prefill-value="{truth["amount"]}"' in html
    assert html.count('data:image/jpeg;base64,') >= 4  # where on the page each came from
    with app.test_request_context():
        shown_date = format_date(date.fromisoformat(truth["invoice_date"]))
    assert shown_date in html

    # Saved: the receipt takes the upload's reading, the file is not read a second time.
    monkeypatch.setattr(ocr, "read_stored", lambda *a: pytest.fail("the file was read again"))
    resp = client.submit(f"/cases/{w['case'].id}/receipts/new", {**fields(w), "uploads": token})
    assert resp.status_code == 303, resp.get_data(as_text=True)[:2000]
    receipt_id = int(resp.location.rsplit("/", 1)[-1])
    run_jobs()
    kept = db.exec(select(UploadText).where(UploadText.upload_id == upload_row(db, token).id)).one()
    row = ocr.result_of(db, receipt_id)
    assert row.fields == kept.fields and row.text == kept.text and row.engine == kept.engine
    assert row.file_id == ocr.first_file(db, receipt_id).id
    with app.app_context():  # the receipt job again: nothing new
        assert ocr.read_receipt(db, get_storage(), receipt_id) == "read before"
    assert suggestions(client, token).status_code == 404  # claimed by the form: gone


def test_the_job_runs_twice_safely_and_reads_only_the_new_receipt_forms_files(app, client, db, w, run_jobs):
    switch(client, w["partner"])
    token, truth = upload_receipt(client, w, seed=5, lang="de")
    handover, _truth = upload_receipt(client, w, seed=6, lang="de", purpose="handover")
    run_jobs()
    row = upload_row(db, token)
    with app.app_context():
        assert tasks.enqueue("read_upload", row.id)  # a duplicate job, as after a worker restart
        run_jobs()
        storage = get_storage()
        assert prefill.read_upload(db, storage, row.id) == "read before"
        assert prefill.read_upload(db, storage, row.id, force=True).startswith("read:")
        assert prefill.read_upload(db, storage, upload_row(db, handover).id) == "gone"
        assert prefill.read_upload(db, storage, 99_999_999) == "gone"
    [text] = db.exec(select(UploadText).where(UploadText.upload_id == row.id)).all()
    assert {k: v["value"] for k, v in text.fields.items()} == truth
    assert db.exec(select(UploadText).where(UploadText.upload_id == upload_row(db, handover).id)).all() == []
    assert suggestions(client, handover).status_code == 404  # only receipt files are suggested from


def test_only_the_uploader_gets_the_suggestions(client, db, w, run_jobs):
    switch(client, w["partner"])
    token, _truth = upload_receipt(client, w)
    run_jobs()
    assert suggestions(client, token).status_code == 200
    outsider = make_user(db, organisation=make_org(db, country="SN"))
    for other in (outsider, w["staff"]):
        switch(client, other)
        assert suggestions(client, token).status_code == 404


def test_values_in_the_users_language_with_arabic_indic_digits(app, db, w):
    """Labels and dates in the user's language; a value read with Arabic-Indic digits fills plain digits."""
    upload = Upload(token="t-ar", user_id=w["partner"].id, case_id=w["case"].id, purpose="receipt",
                    filename="r.png", length=1, status="ready", key="k", content_type="image/png",
                    expires_at=utcnow() + timedelta(hours=1))
    db.add(upload)
    db.commit()
    db.add(UploadText(upload_id=upload.id, text="x", fields={
        "invoice_date": {"value": "٢٠٢٤-٠٦-٢٢", "box": None, "line": 0},
        "amount": {"value": "١٢٣٤.٥٠", "box": None, "line": 1},
        "currency": {"value": "GEL", "box": None, "line": 1}}))
    db.commit()
    for locale in ("en", "de", "fr", "ru", "ar"):
        with app.test_request_context(), force_locale(locale):
            found = prefill.suggestions(db, upload, asked_since=0)
            values = {s.name: s.value for s in found.items}
            assert values == {"invoice_date": "2024-06-22", "amount": "1234.50", "currency": "GEL"}
            assert found.items[0].shown == format_date(date(2024, 6, 22))
    with app.test_request_context(), force_locale("de"):
        assert prefill.suggestions(db, upload, asked_since=0).items[0].shown == "22.06.2024"


def test_search_finds_a_receipt_by_a_word_only_in_its_recognised_text(client, db, w):
    receipt = make_receipt(db, w["case"], supplier="Plain Supplier")
    text = make_receipt_text(db, receipt, "Quittung\nSchraubenzieherset 12,50\nZauberwerkstatt Kutaisi")
    other_org = make_org(db, country="SN")
    outsider = make_user(db, organisation=other_org)
    for user, found in ((w["staff"], True), (w["partner"], True), (outsider, False)):
        switch(client, user)
        page = client.get("/receipts/search", query_string={"q": "zauberwerkstatt kutaisi"}).get_data(as_text=True)
        assert (receipt.reference in page) is found, user.email
    # The text changes (read again): the index follows.
    text.text = "Another shop"
    db.add(text)
    db.commit()
    switch(client, w["staff"])
    assert receipt.reference not in client.get("/receipts/search", query_string={"q": "Zauberwerkstatt"}).get_data(
        as_text=True)
    assert receipt.reference in client.get("/receipts/search", query_string={"q": "another shop"}).get_data(
        as_text=True)


def test_staff_see_the_recognised_text_on_the_desk_and_the_receipt_page(client, db, w):
    receipt = make_receipt(db, w["case"], w["line"])
    make_receipt_file(db, receipt)
    url = f"/receipts/{receipt.id}/recognised-text"
    switch(client, w["staff"])
    assert "not been read yet" in client.get(url).get_data(as_text=True)
    make_receipt_text(db, receipt, "Rechnung Nr. 4711\nSumme 12,50 EUR", engine="tesseract 5")
    assert "Rechnung Nr. 4711" in client.get(url).get_data(as_text=True)
    for page in (f"/receipts/{receipt.id}", "/review/"):
        assert f'hx-get="{url}" hx-trigger="toggle once"' in client.get(page).get_data(as_text=True), page
    switch(client, w["partner"])  # staff only: for the partner neither the box nor the text
    assert client.get(url).status_code == 404
    assert url not in client.get(f"/receipts/{receipt.id}").get_data(as_text=True)


# In Chromium at 360 px ----------------------------------------------------------------------------------

PARTNER = "partner.a@example.org"


@pytest.mark.browser
def test_a_suggestion_fills_its_field_on_a_click_and_never_overwrites_what_was_typed(live_server, page: Page,
                                                                                    tmp_path):
    with Session(live_server.engine()) as s:
        partner = s.exec(select(User).where(User.email == PARTNER)).one()
        partner.locale = "de"  # German: the amount is written with a decimal comma
        s.add(partner)
        s.commit()
        case = s.exec(select(Case).join(BudgetLine, BudgetLine.case_id == Case.id)
                      .where(Case.organisation_id == partner.organisation_id)).first()
    data, truth = make_receipt_picture(4, "fr", "invoice", kind="pdf")
    (tmp_path / "facture.pdf").write_bytes(data)
    problems = watch_csp(page)
    page.set_viewport_size({"width": 360, "height": 740})
    sign_in(page, live_server, PARTNER)
    page.goto(f"{live_server.url}/cases/{case.id}/receipts/new")
    supplier = page.locator("#supplier")
    supplier.fill("Von Hand getippt")
    page.locator("#files").set_input_files(str(tmp_path / "facture.pdf"))
    box = page.locator("#ocr-suggestions")
    use_number = box.locator('[data-prefill-field="invoice_number"]')
    expect(use_number).to_be_visible(timeout=30_000)
    expect(page.locator("#supplier")).to_have_value("Von Hand getippt")  # offered, not filled
    expect(page.locator("#invoice_number")).to_have_value("")
    assert use_number.bounding_box()["height"] >= 44 and use_number.bounding_box()["width"] >= 44
    use_number.click()
    expect(page.locator("#invoice_number")).to_have_value(truth["invoice_number"])
    box.locator('[data-prefill-field="amount"]').click()
    expect(page.locator("#amount")).to_have_value(truth["amount"].replace(".", ","))
    expect(page.locator("#supplier")).to_have_value("Von Hand getippt")  # typed: untouched without a click
    box.locator('[data-prefill-field="supplier"]').click()  # … and replaced on one
    expect(page.locator("#supplier")).to_have_value(truth["supplier"])
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    violations = axe_violations(page)
    assert not violations, format_violations(violations)
    assert problems == [], problems
