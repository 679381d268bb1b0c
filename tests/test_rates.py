"""Exchange rates with their evidence: a typed rate needs a source reference, an imported file (the
Commission's InforEuro export as XLSX or CSV, or the plain CSV) is kept with its checksum and linked from
each rate it set; the receipt page and the Belegliste show rate, month, source and the evidence; the kept
file is a staff-only, audited download."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from datetime import date
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook
from sqlmodel import select

from portal.audit import AuditEntry
from portal.receipts import decisions, rate_files
from portal.receipts.models import ExchangeRate, RateEvidence
from portal.storage import get_storage
from tests.factories import make_user
from tests.helpers import load, new_receipt, switch

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def inforeuro_xlsx(title: str = "Monthly accounting rates of the euro – March 2024", gel=2.9123) -> bytes:
    """A workbook shaped like the Commission's monthly file: a title, a header row found by its names, one
    row per country (several share the CFA franc), a decimal comma in a text cell, a euro country, a note."""
    wb = Workbook()
    ws = wb.active
    ws.append(["InforEuro"])
    ws.append([title])
    ws.append([])
    ws.append(["Country", "Currency", "ISO code", "Value"])
    ws.append(["Georgia", "Lari", "GEL", gel])
    ws.append(["Senegal", "CFA franc", "XOF", 655.957])
    ws.append(["Mali", "CFA franc", "XOF", 655.957])
    ws.append(["Tunisia", "Tunisian dinar", "TND", "3,3871"])
    ws.append(["Austria", "Euro", "EUR", 1])
    ws.append([])
    ws.append(["Source: European Commission, DG BUDG"])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def send(client, raw: bytes, name: str, month: str = ""):
    return client.submit("/receipts/rates/import", {"file": (io.BytesIO(raw), name), "month": month},
                         content_type="multipart/form-data")


def rates_of(db) -> dict[str, ExchangeRate]:
    db.expire_all()
    return {f"{r.currency} {r.month:%Y-%m}": r for r in db.exec(select(ExchangeRate))}


def actions(db, action: str) -> list[AuditEntry]:
    db.expire_all()
    return list(db.exec(select(AuditEntry).where(AuditEntry.action == action)))


# Typed rates ----------------------------------------------------------------------------------------

def test_a_typed_rate_needs_a_source_reference(client, db, w):
    switch(client, w["staff"])
    resp = client.submit("/receipts/rates", {"currency": "GEL", "month": "2024-03", "rate": "2.9123",
                                             "source": "InforEuro", "source_ref": "  "})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert "Enter where the rate comes from, like the InforEuro page or a document reference" in page
    assert 'value="2.9123"' in page  # nothing typed is lost
    assert rates_of(db) == {}
    url = "https://commission.europa.eu/inforeuro?month=2024-03"
    resp = client.submit("/receipts/rates", {"currency": "GEL", "month": "2024-03", "rate": "2.9123",
                                             "source": "InforEuro", "source_ref": url})
    assert resp.status_code == 303
    rate = rates_of(db)["GEL 2024-03"]
    assert (rate.source_ref, rate.evidence_id) == (url, None)
    assert f'href="{url.replace("&", "&amp;")}"' in client.get("/receipts/rates").get_data(as_text=True)


def test_the_missing_reference_is_said_in_the_users_language(client, db, w):
    client.login(make_user(db, role="staff", locale="de"))
    resp = client.submit("/receipts/rates", {"currency": "GEL", "month": "2024-03", "rate": "2.9"})
    assert resp.status_code == 422
    assert "Geben Sie an, woher der Kurs stammt" in resp.get_data(as_text=True)


# Importing InforEuro files --------------------------------------------------------------------------

def test_an_inforeuro_workbook_is_imported_and_kept_as_the_evidence(app, client, db, w):
    raw = inforeuro_xlsx()
    switch(client, w["staff"])
    resp = send(client, raw, "inforeuro.xlsx")  # the month is in the title line
    assert resp.status_code == 303
    assert "3 rates imported." in client.get(resp.location).get_data(as_text=True)
    rates = rates_of(db)
    assert {k: r.units_per_eur_micro for k, r in rates.items()} == {
        "GEL 2024-03": 2_912_300, "XOF 2024-03": 655_957_000, "TND 2024-03": 3_387_100}
    evidence = db.exec(select(RateEvidence)).one()
    sha = hashlib.sha256(raw).hexdigest()
    assert (evidence.sha256, evidence.size, evidence.key, evidence.content_type, evidence.kind) == (
        sha, len(raw), f"rates/{sha}.xlsx", XLSX, "import")
    assert (evidence.original_filename, evidence.uploaded_by_id) == ("inforeuro.xlsx", w["staff"].id)
    assert {r.evidence_id for r in rates.values()} == {evidence.id}
    assert {r.source for r in rates.values()} == {"InforEuro"}
    with app.app_context(), get_storage().open(evidence.key) as stored:
        assert hashlib.sha256(stored.read()).hexdigest() == sha
    assert [e.after["sha256"] for e in actions(db, "rate_evidence.stored")] == [sha]
    page = client.get("/receipts/rates").get_data(as_text=True)
    assert f"/receipts/rates/evidence/{evidence.id}" in page and "inforeuro.xlsx" in page


def test_an_inforeuro_csv_with_semicolons_and_decimal_commas_asks_for_the_month(client, db, w):
    text = ("Country;Currency;ISO code;Value\n"
            "Georgia;Lari;GEL;2,9456\n"
            "Côte d'Ivoire;Franc CFA;XOF;655,957\n"
            "Iran;Rial;IRR;45.627,50\n")
    raw = text.encode("cp1252")  # as Excel on Windows saves it
    switch(client, w["staff"])
    resp = send(client, raw, "rates.csv")
    assert resp.status_code == 422
    assert "The file does not say which month its rates are for: choose the month." in resp.get_data(as_text=True)
    assert rates_of(db) == {} and db.exec(select(RateEvidence)).all() == []
    resp = send(client, raw, "rates.csv", month="2024-04")
    assert resp.status_code == 303
    rates = rates_of(db)
    assert {k: r.units_per_eur_micro for k, r in rates.items()} == {
        "GEL 2024-04": 2_945_600, "XOF 2024-04": 655_957_000, "IRR 2024-04": 45_627_500_000}
    assert db.exec(select(RateEvidence)).one().key.endswith(".csv")
    # A month in the file name that differs from the one chosen is questioned, not guessed.
    resp = send(client, raw + b"\n", "inforeuro_2024-05.csv", month="2024-06")
    assert resp.status_code == 422 and "The file is for 2024-05 but you chose 2024-06" in resp.get_data(as_text=True)


def test_the_plain_csv_is_kept_too(client, db, w):
    switch(client, w["staff"])
    raw = b"currency,month,units_per_eur,source\nGEL,2024-07,2.99,ECB\nXOF,2024-07,655.957\n"
    assert send(client, raw, "july.csv").status_code == 303
    rates = rates_of(db)
    evidence = db.exec(select(RateEvidence)).one()
    assert (rates["GEL 2024-07"].source, rates["XOF 2024-07"].source) == ("ECB", "InforEuro")
    assert {r.evidence_id for r in rates.values()} == {evidence.id}


def test_importing_the_same_file_again_keeps_one_evidence_and_changes_nothing(app, client, db, w):
    raw = inforeuro_xlsx()
    switch(client, w["staff"])
    assert send(client, raw, "inforeuro.xlsx").status_code == 303
    saved = len(actions(db, "exchange_rate.saved"))
    resp = send(client, raw, "inforeuro-copy.xlsx")
    assert resp.status_code == 303
    assert "3 rates imported again from a file kept before." in client.get(resp.location).get_data(as_text=True)
    assert len(db.exec(select(RateEvidence)).all()) == 1
    assert len(rates_of(db)) == 3 and len(actions(db, "exchange_rate.saved")) == saved
    with app.app_context():
        assert len(list(get_storage().keys("rates/"))) == 1
    # A corrected file for the same month replaces the rates and links them to the new file.
    assert send(client, inforeuro_xlsx(gel=2.95), "inforeuro-corrected.xlsx").status_code == 303
    rates = rates_of(db)
    newer = db.exec(select(RateEvidence).order_by(RateEvidence.id.desc())).first()
    assert rates["GEL 2024-03"].units_per_eur_micro == 2_950_000
    assert {r.evidence_id for r in rates.values()} == {newer.id}


@pytest.mark.parametrize(("name", "raw", "message"), [
    ("bad.csv", b"Country;Currency;ISO code;Value\nGeorgia;Lari;GEL;2,9\nMali;CFA franc;XOF;abc\n",
     "Line 3: the rate abc is not a number"),
    ("bad.csv", b"GEL,2024-03,2.9\nXOF,June,655.957\n", "Line 2: June is not a month like 2024-03"),
    ("bad_2024-03.csv", b"Code,Rate\nGEL,2.9\nXYZ,1.5\n", "Line 3: XYZ is not a currency code"),
    ("bad_2024-03.csv", b"Code,Rate\nXOF,655.957\nXOF,656\n", "Line 3: XOF is listed again with a different rate"),
    ("bad.xlsx", b"PK\x03\x04 not really a workbook", "must be a CSV file or an Excel workbook (XLSX)"),
])
def test_a_bad_file_imports_nothing_and_names_the_line(app, client, db, w, name, raw, message):
    switch(client, w["staff"])
    resp = send(client, raw, name, month="2024-03")
    assert resp.status_code == 422
    assert message in resp.get_data(as_text=True)
    assert rates_of(db) == {} and db.exec(select(RateEvidence)).all() == []
    with app.app_context():
        assert list(get_storage().keys("rates/")) == []


def test_a_bad_row_in_a_workbook_names_its_row(client, db, w):
    wb = Workbook()
    wb.active.append(["Country", "Currency", "Code", "Rate", "Month"])
    wb.active.append(["Georgia", "Lari", "GEL", 2.9, date(2024, 3, 1)])
    wb.active.append(["Nowhere", "Nothing", "QQQ", 1.1, date(2024, 3, 1)])
    out = io.BytesIO()
    wb.save(out)
    switch(client, w["staff"])
    resp = send(client, out.getvalue(), "rates.xlsx")
    assert resp.status_code == 422 and "Line 3: QQQ is not a currency code" in resp.get_data(as_text=True)
    assert rates_of(db) == {}


@pytest.mark.parametrize(("text", "month"), [
    ("inforeuro-2024-03.xlsx", date(2024, 3, 1)), ("exdata202411.csv", date(2024, 11, 1)),
    ("Rates for 03/2025", date(2025, 3, 1)), ("Monthly rates – February 2024", date(2024, 2, 1)),
    ("Taux de mars 2024", date(2024, 3, 1)), ("Kurse März 2025", date(2025, 3, 1)), ("rates.csv", None),
])
def test_the_month_is_read_from_a_title_or_a_file_name(text, month):
    assert rate_files.month_in_text(text) == month


# The evidence on the receipt and in the Belegliste ----------------------------------------------------

def test_receipt_page_and_belegliste_show_the_rate_evidence(app, client, db, w):
    raw = inforeuro_xlsx()
    switch(client, w["staff"])
    assert send(client, raw, "inforeuro.xlsx").status_code == 303
    evidence = db.exec(select(RateEvidence)).one()
    switch(client, w["partner"])
    receipt_id = new_receipt(client, w, currency="GEL", amount="291.23", invoice_date="2024-03-15")
    partner_page = client.get(f"/receipts/{receipt_id}").get_data(as_text=True)
    assert "at 2.9123 GEL for 1 EUR (2024-03, InforEuro)" in partner_page
    assert "inforeuro.xlsx" in partner_page and "/receipts/rates/evidence/" not in partner_page
    switch(client, w["staff"])
    link = f"/receipts/rates/evidence/{evidence.id}"
    assert link in client.get(f"/receipts/{receipt_id}").get_data(as_text=True)
    receipt = load(db, receipt_id)
    with app.test_request_context():
        decisions.decide(db, w["staff"], receipt, decisions.APPROVE, "", receipt.version)
    # A rate typed later for the month does not touch the approved receipt, nor the proof of its rate.
    assert client.submit("/receipts/rates", {"currency": "GEL", "month": "2024-03", "rate": "3.1",
                                             "source": "Bank", "source_ref": "Letter 7"}).status_code == 303
    assert load(db, receipt_id).rate_micro == 2_912_300
    assert link in client.get(f"/receipts/{receipt_id}").get_data(as_text=True)

    reference = f"inforeuro.xlsx (#{evidence.id}, SHA-256 {evidence.sha256})"
    url = app.config["BASE_URL"].rstrip("/") + link
    ws = load_workbook(io.BytesIO(client.get("/reports/belegliste.xlsx?start=2024-01-01&end=2024-12-31").data)).active
    header = [c.value for c in ws[1]]
    row = next(r for r in ws.iter_rows(min_row=2) if r[2].value == receipt.reference)
    cells = dict(zip(header, row, strict=False))
    assert float(cells["Exchange rate (units for 1 EUR)"].value) == 2.9123
    assert cells["Rate month"].value == "2024-03" and cells["Rate source"].value == "InforEuro"
    assert cells["Rate evidence"].value == reference
    assert cells["Rate evidence link"].value == url and cells["Rate evidence link"].hyperlink.target == url
    rows = list(csv.reader(io.StringIO(client.get("/reports/belegliste.csv?start=2024-01-01&end=2024-12-31")
                                       .data.decode("utf-8-sig"))))
    got = dict(zip(rows[0], next(r for r in rows[1:] if r[2] == receipt.reference), strict=True))
    assert (got["Exchange rate (units for 1 EUR)"], got["Rate month"], got["Rate source"]) == (
        "2.9123", "2024-03", "InforEuro")
    assert (got["Rate evidence"], got["Rate evidence link"]) == (reference, url)


# The kept file --------------------------------------------------------------------------------------

def test_the_evidence_download_is_staff_only_and_audited(client, db, w):
    raw = inforeuro_xlsx()
    switch(client, w["staff"])
    assert send(client, raw, "InforEuro März.xlsx").status_code == 303
    evidence = db.exec(select(RateEvidence)).one()
    url = f"/receipts/rates/evidence/{evidence.id}"
    switch(client, w["partner"])
    assert client.get(url).status_code == 404
    assert actions(db, "rate_evidence.downloaded") == []
    switch(client, w["staff"])
    with client.get(url) as resp:
        assert resp.status_code == 200 and resp.data == raw
        assert resp.headers["Content-Disposition"].startswith("attachment;")
        assert "filename*=UTF-8''InforEuro%20M%C3%A4rz.xlsx" in resp.headers["Content-Disposition"]
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    [entry] = actions(db, "rate_evidence.downloaded")
    assert (entry.actor_id, entry.object_id, entry.after["sha256"]) == (w["staff"].id, str(evidence.id),
                                                                        evidence.sha256)
    assert client.get(f"/receipts/rates/evidence/{evidence.id + 1}").status_code == 404


def test_the_readme_samples_import_as_documented():
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Exchange rates and their evidence"):]
    inforeuro, plain = re.findall(r"```\n(.*?)```", section, re.S)[:2]
    rows = rate_files.read(inforeuro.encode(), "export.csv", None).rows
    assert [(r.currency, r.month, r.micro) for r in rows] == [
        ("GEL", date(2024, 3, 1), 2_912_300), ("XOF", date(2024, 3, 1), 655_957_000),
        ("TND", date(2024, 3, 1), 3_387_100)]
    rows = rate_files.read(plain.encode(), "rates.csv", None).rows
    assert [(r.currency, r.month, r.micro) for r in rows] == [
        ("GEL", date(2024, 3, 1), 2_912_300), ("XOF", date(2024, 3, 1), 655_957_000)]


@pytest.mark.s3
def test_the_evidence_is_kept_on_a_real_s3_server(app_config_s3, client, db, w):
    import urllib.request

    raw = inforeuro_xlsx()
    switch(client, w["staff"])
    assert send(client, raw, "inforeuro.xlsx").status_code == 303
    evidence = db.exec(select(RateEvidence)).one()
    with app_config_s3.app_context():
        storage = get_storage()
        head = storage.client.head_object(Bucket=storage.bucket, Key=evidence.key)
        assert head["Metadata"]["sha256"] == evidence.sha256 == hashlib.sha256(raw).hexdigest()
    resp = client.get(f"/receipts/rates/evidence/{evidence.id}")
    assert resp.status_code == 302 and resp.headers["X-Content-Type-Options"] == "nosniff"
    with urllib.request.urlopen(resp.location, timeout=10) as fetched:  # noqa: S310 - the local test server
        assert fetched.headers["Content-Disposition"] == 'attachment; filename="inforeuro.xlsx"'
        assert fetched.read() == raw
    assert len(actions(db, "rate_evidence.downloaded")) == 1
