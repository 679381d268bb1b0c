"""Near-duplicates: normalised supplier and invoice number, amount and date closeness, the picture's
fingerprint; partners told of their own organisation's matches only, staff of every one."""

from __future__ import annotations

import io
from datetime import date

import pytest
from PIL import Image, ImageDraw, ImageFont
from sqlmodel import select

from portal.receipts import neardup
from portal.receipts.keys import invoice_key, supplier_key
from portal.receipts.models import ReceiptFile, ReceiptMatch
from tests.factories import make_case, make_line, make_org, make_receipt, make_user
from tests.helpers import fields, load, new_receipt, switch

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
STEEL = ["Rustavi Steel", "INV-0077  12.03.2024", "Welding machine   420.00", "Gloves   12.00", "Helmet 30.00", "",
         "TOTAL 462.00 GEL"]
BAKERY = ["Kutaisi Bakery", "No 5512  02.05.2024", "Flour 50 kg   80.00", "Oven  900.00", "", "",
          "TOTAL 980.00 GEL"]


def receipt_photo(lines: list[str], angle: float = 0.0, quality: int = 90, table=(70, 60, 50)) -> bytes:
    """A printed receipt photographed on a table: turned by `angle` degrees, JPEG at `quality`."""
    paper = Image.new("RGB", (360, 520), "white")
    draw = ImageDraw.Draw(paper)
    for i, text in enumerate(lines):
        draw.text((20, 20 + i * 34), text, font=ImageFont.truetype(FONT, 20 if i else 30), fill="black")
    photo = Image.new("RGB", (420, 580), table)
    photo.paste(paper, (30, 30))
    photo = photo.rotate(angle, expand=True, fillcolor=table)
    out = io.BytesIO()
    photo.save(out, "JPEG", quality=quality)
    return out.getvalue()


def second_org(db):
    org = make_org(db, country="SN")
    case = make_case(db, org, country="SN")
    return {"org": org, "case": case, "line": make_line(db, case, planned_cents=100_000),
            "partner": make_user(db, organisation=org)}


# Normalisation ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("typed", "same_as"), [
    ("INV-0077", "inv 77"), ("INV/2024/0077", "inv 2024 77"), ("№ 0077", "77"), ("No. 15", "15"),
    ("٠٠٧٧", "77"), ("F.2024.017", "f-2024-17"), ("АВ-12", "ab12"),  # Cyrillic А and В typed for Latin ones
])
def test_invoice_numbers_typed_differently_have_one_key(typed, same_as):
    assert invoice_key(typed) == invoice_key(same_as) != ""


@pytest.mark.parametrize(("typed", "same_as"), [
    ("Tbilisi Tools Ltd.", "TBILISI-TOOLS"), ("Dakar Outils S.A.R.L.", "dakar outils"),
    ("ООО «Ромашка»", "Ромашка"), ("შპს ბათუმის ბაზარი", "ბათუმის ბაზარი"), ("مؤسسة النور ش.م.م", "النور"),
    ("Café Crème GmbH & Co. KG", "cafe creme"), ("Rustavi Steel LLC", "rustavi steel"),
])
def test_supplier_names_without_case_punctuation_and_legal_form_have_one_key(typed, same_as):
    assert supplier_key(typed) == supplier_key(same_as) != ""


def test_different_numbers_and_suppliers_keep_different_keys():
    assert invoice_key("INV-77") != invoice_key("INV-770") != invoice_key("INV-7")
    assert invoice_key("2024/077") != invoice_key("2024/78")
    assert invoice_key("A-100") == "a100"  # leading zeros go, not the ones that count
    assert supplier_key("Tbilisi Tools") != supplier_key("Tbilisi Tiles")
    assert supplier_key("SA") == "sa"  # a name that is only a legal form stays


def test_the_field_rules():
    base = neardup.Facts.typed("Rustavi Steel LLC", "INV-0077", 46_200, "GEL", date(2024, 3, 12))

    def facts(**kw):
        values = {"supplier": "rustavi steel", "invoice_number": "inv 77", "amount_minor": 46_200,
                  "currency": "GEL", "invoice_date": date(2024, 3, 12)} | kw
        return neardup.Facts.typed(**values)

    assert neardup.field_reasons(base, facts()) == ["invoice", "amount"]
    # The same number from a supplier typed otherwise: amount within 1 % and date within 7 days.
    assert neardup.field_reasons(base, facts(supplier="RS Metal", amount_minor=46_600,
                                             invoice_date=date(2024, 3, 19))) == ["invoice"]
    assert neardup.field_reasons(base, facts(supplier="RS Metal", amount_minor=47_000)) == []
    assert neardup.field_reasons(base, facts(supplier="RS Metal", invoice_date=date(2024, 3, 20))) == []
    # Another number: the same supplier, amount and date within 3 days.
    assert neardup.field_reasons(base, facts(invoice_number="78", invoice_date=date(2024, 3, 15))) == ["amount"]
    assert neardup.field_reasons(base, facts(invoice_number="78", invoice_date=date(2024, 3, 16))) == []
    assert neardup.field_reasons(base, facts(invoice_number="78", amount_minor=46_201)) == []


# In the portal ------------------------------------------------------------------------------------------

def test_a_retyped_invoice_number_is_caught_and_shown_to_the_partner_as_theirs(client, db, w):
    switch(client, w["partner"])
    first = load(db, new_receipt(client, w, supplier="Rustavi Steel LLC", invoice_number="INV-0077"))
    assert (first.supplier_norm, first.invoice_norm) == ("rustavisteel", "inv77")
    # Not the same as typed, so no confirmation is asked; the partner is told right away.
    resp = client.submit(f"/cases/{w['case'].id}/receipts/new", {
        **fields(w, supplier="RUSTAVI STEEL", invoice_number="inv 77"),
        "files": [(io.BytesIO(receipt_photo(BAKERY)), "photo.jpg")]}, content_type="multipart/form-data")
    assert resp.status_code == 303
    page = client.get(resp.location).get_data(as_text=True)
    expected = f"looks like receipt <bdi>{first.reference}</bdi> of case <bdi>{w['case'].reference}</bdi> (yours)"
    assert expected in page.replace("Looks", "looks")
    second = load(db, int(resp.location.rsplit("/", 1)[-1]))
    reasons = {m.reason for m in db.exec(select(ReceiptMatch).where(ReceiptMatch.receipt_id == second.id,
                                                                    ReceiptMatch.other_id == first.id))}
    assert reasons == {"invoice", "amount"}
    # The older receipt's page names the newer one too.
    assert "(yours)" in client.get(f"/receipts/{first.id}").get_data(as_text=True)
    # Corrected to another purchase: the match goes.
    resp = client.submit(f"/receipts/{second.id}/edit", {
        **fields(w, supplier="Kutaisi Bakery", invoice_number="5512",
                                                                  invoice_date="2024-05-02"),
        "version": str(second.version)})
    assert resp.status_code == 303
    assert db.exec(select(ReceiptMatch).where(ReceiptMatch.receipt_id == second.id)).all() == []
    assert "(yours)" not in client.get(f"/receipts/{second.id}").get_data(as_text=True)


def test_an_altered_photo_is_caught_by_its_fingerprint_and_another_receipt_is_not(client, db, w, run_jobs):
    switch(client, w["partner"])
    first = new_receipt(client, w, supplier="Rustavi Steel", invoice_number="INV-0077",
                        files=[(io.BytesIO(receipt_photo(STEEL)), "steel.jpg")])
    other = new_receipt(client, w, supplier="Kutaisi Bakery", invoice_number="5512", amount="980.00",
                        files=[(io.BytesIO(receipt_photo(BAKERY)), "bakery.jpg")])
    # Photographed again, turned and compressed harder, and typed with a slip in every field.
    copy = new_receipt(client, w, supplier="Rustavi Metal Works", invoice_number="INV-007", amount="426.00",
                       invoice_date="2024-04-02",
                       files=[(io.BytesIO(receipt_photo(STEEL, angle=2, quality=60, table=(120, 120, 120))),
                               "again.jpg")])
    assert db.exec(select(ReceiptMatch)).all() == []  # the typed fields say nothing
    run_jobs()  # scan (none configured), preview, fingerprint
    hashes = {row.receipt_id: row.phash for row in db.exec(select(ReceiptFile))}
    assert None not in hashes.values()
    assert neardup.hamming(hashes[first], hashes[copy]) <= neardup.THRESHOLD
    assert neardup.hamming(hashes[first], hashes[other]) > 8
    pairs = [(m.receipt_id, m.other_id, m.reason) for m in db.exec(select(ReceiptMatch))]
    assert pairs == [(copy, first, "image")]
    page = client.get(f"/receipts/{copy}").get_data(as_text=True)
    notice = page[page.index('id="near-duplicates"'):]
    notice = notice[:notice.index("</div>")]  # the page also lists the case's other receipts (handover form)
    assert load(db, first).reference in notice and "the picture looks the same" in notice
    assert load(db, other).reference not in notice


def test_the_fingerprint_job_and_the_backfill_run_twice_safely(app, client, db, w, run_jobs):
    switch(client, w["partner"])
    first = new_receipt(client, w, files=[(io.BytesIO(receipt_photo(STEEL)), "a.jpg")])
    copy = new_receipt(client, w, files=[(io.BytesIO(receipt_photo(STEEL, angle=2, quality=60, table=(120, 120, 120))), "b.jpg")])
    run_jobs()
    rows = {row.receipt_id: row for row in db.exec(select(ReceiptFile))}
    value = rows[copy].phash
    with app.app_context():
        for _ in range(2):  # the job again, as after a worker restart: nothing changes, nothing doubles
            assert neardup.fingerprint_job(rows[copy].id) == "1 similar"
            assert neardup.fingerprint_job(rows[first].id) == "1 similar"
    db.expire_all()
    assert db.get(ReceiptFile, rows[copy].id).phash == value
    assert [(m.receipt_id, m.other_id) for m in db.exec(select(ReceiptMatch).where(ReceiptMatch.reason == "image"))] \
        == [(copy, first)]
    # Files stored before the check existed: the command fingerprints them, a second run finds nothing.
    db.exec(ReceiptMatch.__table__.delete())
    for row in rows.values():
        row.phash = None
        db.add(row)
    db.commit()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["receipts", "fingerprints"])
    assert result.exit_code == 0 and "fingerprinted 2 files" in result.output
    assert runner.invoke(args=["receipts", "fingerprints"]).output.startswith("fingerprinted 0 files")
    assert [(m.receipt_id, m.other_id) for m in db.exec(select(ReceiptMatch).where(ReceiptMatch.reason == "image"))] \
        == [(copy, first)]


def test_another_organisations_match_is_never_shown_to_the_partner_but_warned_to_staff(client, db, w):
    b = second_org(db)
    switch(client, w["partner"])
    first = load(db, new_receipt(client, w, supplier="Dakar Outils SARL", invoice_number="F-2024-017"))
    switch(client, b["partner"])
    resp = client.submit(f"/cases/{b['case'].id}/receipts/new", {
        **fields(b, supplier="DAKAR OUTILS", invoice_number="f 2024 17"),
        "files": [(io.BytesIO(receipt_photo(BAKERY)), "photo.jpg")]}, content_type="multipart/form-data")
    assert resp.status_code == 303  # no confirmation asked: that would tell something exists elsewhere
    second = load(db, int(resp.location.rsplit("/", 1)[-1]))
    page = client.get(resp.location).get_data(as_text=True)
    for hint in (first.reference, w["case"].reference, "another organisation", "looks like", "Looks like",
                 "Possible duplicate"):
        assert hint not in page, hint
    assert not second.duplicate_suspected
    assert {(m.other_id, m.reason) for m in db.exec(select(ReceiptMatch).where(ReceiptMatch.receipt_id == second.id))} \
        == {(first.id, "invoice"), (first.id, "amount")}
    # Staff: on the receipt page and on the desk item, naming the other receipt.
    switch(client, w["staff"])
    warning = (f"Warning: looks like receipt <bdi>{first.reference}</bdi> of case <bdi>{w['case'].reference}</bdi> "
               f"of another organisation ({w['org'].name})")
    assert warning in client.get(f"/receipts/{second.id}").get_data(as_text=True)
    desk = client.get("/review/?warning=duplicate").get_data(as_text=True)
    item = desk.split(f'id="receipt-{second.id}"')[1].split("</article>")[0]
    assert warning in item and "Possible duplicate" in item
    # The first organisation's partner is not told of the second either.
    switch(client, w["partner"])
    page = client.get(f"/receipts/{first.id}").get_data(as_text=True)
    assert second.reference not in page and b["case"].reference not in page and "another organisation" not in page


def test_receipts_written_directly_get_their_keys(db, w):
    receipt = make_receipt(db, w["case"], w["line"], supplier="ООО «Ромашка»", invoice_number="№ 000123")
    assert (receipt.supplier_norm, receipt.invoice_norm) == ("ромашка", "123")
    receipt.invoice_number = "АБ-5"
    db.add(receipt)
    db.commit()
    assert load(db, receipt.id).invoice_norm == "aб5"  # the Cyrillic А drawn like a Latin A, the Б kept
