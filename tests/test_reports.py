"""Reports: the budget dashboard against hand-computed totals of the demo data (GEL, XOF and EUR receipts),
the Belegliste opened back with openpyxl and csv and checked cell by cell, the narrative figures, and the
audit log viewer with its export."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, timedelta

import pytest
from openpyxl import load_workbook
from sqlmodel import select

from portal import audit
from portal.auth.models import User
from portal.cases.models import Case
from portal.clock import utcnow
from portal.demo import DEMO_PASSWORD, INFOREURO, load_demo
from portal.receipts.models import Receipt
from tests.factories import make_line, make_receipt, make_user, make_visit
from tests.helpers import count_statements

#   case 1: 7080 GEL / 2.95 = 2400.00 (approved by two), 1160 GEL / 2.90 = 400.00 (waiting)
#   case 3: 3100.00 EUR (approved by two)
#   case 4: 983936 XOF / 655.957 = 1500.00 (approved by two), 229585 XOF / 655.957 = 350.00 (approved)
# Planned (budget lines): case 1 3200, case 2 1800, case 3 3700 (Georgia); case 4 2200, case 5 1350 (Senegal).
PLANNED = {"GE": 8_700_00, "SN": 3_550_00}
SUBMITTED = {"GE": 5_900_00, "SN": 1_850_00}
APPROVED = {"GE": 5_500_00, "SN": 1_850_00}


@pytest.fixture
def demo(app, db):
    with app.app_context():
        load_demo(db)
    users = {u.email: u for u in db.exec(select(User))}
    cases = list(db.exec(select(Case).order_by(Case.id)))
    # The reader: a staff member who reads English (Stefan Staff's portal is in German).
    return {"users": users, "cases": cases, "staff": users["staff@example.org"],
            "reader": users["staff2@example.org"]}


def cents(text: str) -> int:
    """'€12,250.00' → 1225000."""
    return int(re.sub(r"[^\d]", "", text))


def dd(page: str, element_id: str) -> str:
    return re.search(rf'id="{element_id}">([^<(]+)', page).group(1).strip()


def row_of(page: str, element_id: str) -> list[str]:
    row = page.split(f'id="{element_id}"')[1].split("</tr>")[0]
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)]


# Dashboard --------------------------------------------------------------------------------------

def test_dashboard_totals_match_the_hand_computed_demo_figures(client, demo):
    client.login(demo["reader"], DEMO_PASSWORD)
    page = client.get("/reports/dashboard").get_data(as_text=True)
    assert cents(dd(page, "total-budget")) == 400_000_00
    assert cents(dd(page, "total-funding")) == 300_000_00
    assert cents(dd(page, "total-planned")) == sum(PLANNED.values()) == 12_250_00
    assert cents(dd(page, "total-submitted")) == sum(SUBMITTED.values()) == 7_750_00
    assert cents(dd(page, "total-approved")) == sum(APPROVED.values()) == 7_350_00
    assert cents(dd(page, "total-available")) == 400_000_00 - 12_250_00
    for country in ("GE", "SN"):
        name, n, planned, submitted, approved = row_of(page, f"country-{country}")
        assert (cents(planned), cents(submitted), cents(approved)) == (PLANNED[country], SUBMITTED[country],
                                                                      APPROVED[country])
    assert row_of(page, "country-GE")[:2] == ["Georgia", "3"]
    months = {m: [cents(v) for v in row_of(page, f"month-{m}")[1:]] for m in
              ("2024-02", "2024-03", "2024-04", "2024-05", "2024-06")}
    assert months == {"2024-02": [3_100_00, 3_100_00], "2024-03": [2_400_00, 2_400_00], "2024-04": [400_00, 0],
                      "2024-05": [1_500_00, 1_500_00], "2024-06": [350_00, 350_00]}
    first = demo["cases"][0]
    assert [cents(v) for v in row_of(page, f"case-{first.id}")[4:]] == [3_200_00, 2_800_00, 2_400_00]
    assert "0 cases are over their plan." in page and '"badge badge-planned">Over plan' not in page


def test_dashboard_configurable_budget_and_cases_over_plan(app, client, db, demo):
    app.config.update(PROJECT_BUDGET_EUR=500_000, PROJECT_FUNDING_EUR=350_000)
    last = demo["cases"][4]  # planned 1350.00
    make_receipt(db, last, eur_cents=1_400_00, amount_minor=1_400_00, invoice_date=date(2025, 3, 2))
    client.login(demo["reader"], DEMO_PASSWORD)
    page = client.get("/reports/dashboard").get_data(as_text=True)
    assert cents(dd(page, "total-budget")) == 500_000_00 and cents(dd(page, "total-funding")) == 350_000_00
    assert "1 case is over its plan." in page
    row = row_of(page, f"case-{last.id}")
    assert "Over plan" in row[0] and cents(row[5]) == 1_400_00
    only = client.get("/reports/dashboard?cases=over").get_data(as_text=True)
    assert re.findall(r'<tr id="case-(\d+)"', only) == [str(last.id)]
    # The month chart spans the gap months with zero bars: 2024-02 … 2025-03 = 14 months.
    assert len(re.findall(r'<tr id="month-', page)) == 14


def test_charts_are_accessible_svg_without_style_attributes(client, demo):
    client.login(demo["reader"], DEMO_PASSWORD)
    page = client.get("/reports/dashboard").get_data(as_text=True)
    svgs = re.findall(r"<svg.*?</svg>", page, re.S)
    assert len(svgs) == 5  # totals, spending against time, countries, organisations, months
    for svg in svgs:
        assert 'role="img"' in svg and "<title id=" in svg and "<desc id=" in svg
        assert "style=" not in svg and "<script" not in svg
    assert "Georgia – Approved: 5,500" in page  # each bar's value in its <title>
    assert page.count("<table") >= 5  # every chart has its table (the totals' figures are the list above it)


def test_dashboard_needs_few_statements(app, client, db, demo):
    client.login(demo["reader"], DEMO_PASSWORD)
    client.get("/reports/dashboard")  # the navigation's badges are counted once and kept for a while
    with count_statements(app) as few:
        client.get("/reports/dashboard")
    for case in demo["cases"]:
        line = make_line(db, case)
        for i in range(5):
            make_receipt(db, case, line, eur_cents=100 * i, status="approved")
    with count_statements(app) as many:
        assert client.get("/reports/dashboard").status_code == 200
    assert len(many) == len(few) <= 6
    # The figures and the page of cases come in one statement (the rest is the signed-in user's).
    assert sum("budget_rollup" in s for s in many) == 1 and sum("budget_summary" in s for s in many) == 1


def test_reports_are_for_staff_only(client, demo, db):
    client.login(demo["users"]["partner.a@example.org"], DEMO_PASSWORD)
    for url in ("/reports/", "/reports/dashboard", "/reports/belegliste.xlsx", "/reports/belegliste.csv",
                "/reports/audit", "/reports/audit.csv"):
        assert client.get(url).status_code == 404, url


# Belegliste -------------------------------------------------------------------------------------

def expected_rows(demo) -> list[list]:
    """The Belegliste of 2024 by hand: approved receipts by case reference, then invoice date."""
    c = demo["cases"]
    today = date.today()
    return [
        [1, c[0].reference, "Tbilisi Tools LLC", "TT-1043", date(2024, 3, 20), "7080.00", "GEL", "2.95", "2024-03",
         "InforEuro 2024-03", "2400.00", "Tools and equipment", "Sewing machines (2) for a tailoring workshop",
         today, "Stefan Staff, Sofia Second"],
        [2, c[2].reference, "Kaffee Technik GmbH", "KT-2024-88", date(2024, 2, 10), "3100.00", "EUR", "1", "2024-02",
         "EUR", "3100.00", "Tools and equipment", "Espresso machine", today, "Stefan Staff, Sofia Second"],
        [3, c[3].reference, "Agri Sénégal SARL", "AS-2024-115", date(2024, 5, 14), "983936", "XOF", "655.957",
         "2024-05", "InforEuro 2024-05", "1500.00", "Tools and equipment", "Motor pump for irrigation", today,
         "Sofia Second, Stefan Staff"],
        [4, c[3].reference, "Graines du Sahel", "GS-552", date(2024, 6, 3), "229585", "XOF", "655.957", "2024-06",
         "InforEuro 2024-06", "350.00", "Goods and stock", "Seeds and fertiliser", today, "Stefan Staff"],
    ]


HEADER = ["No.", "Case reference", "Receipt", "Supplier", "Invoice number", "Invoice date", "Amount", "Currency",
          "Exchange rate (units for 1 EUR)", "Rate month", "Rate source", "EUR amount", "Budget category",
          "Budget line", "Approval date", "Approvers", "Translation", "Drawn for a sample check", "Sample checked by",
          "Sample check outcome", "Rate evidence", "Rate evidence link",
          "Handover date", "Handover status", "Handover note"]
NOT_SAMPLED = ["", "No", "", ""]  # no translation, not drawn (the demo has neither)


def receipt_refs(db, rows) -> list[str]:
    refs = []
    for row in rows:
        receipt = db.exec(select(Receipt).where(Receipt.invoice_number == row[3])).one()
        refs.append(receipt.reference)
    return refs


def test_belegliste_xlsx_cell_by_cell(client, db, demo):
    client.login(demo["reader"], DEMO_PASSWORD)
    resp = client.get("/reports/belegliste.xlsx?start=2024-01-01&end=2024-12-31")
    assert resp.status_code == 200
    assert resp.headers["Content-Disposition"] == 'attachment; filename="belegliste_2024-01-01_2024-12-31.xlsx"'
    wb = load_workbook(io.BytesIO(resp.data))
    ws = wb.worksheets[0]
    assert [c.value for c in ws[1]] == HEADER
    expected = expected_rows(demo)
    refs = receipt_refs(db, expected)
    for r, (want, ref) in enumerate(zip(expected, refs, strict=True), start=2):
        got = [c.value for c in ws[r]]
        assert got[0] == want[0] and got[1] == want[1] and got[2] == ref
        assert got[3:5] == want[2:4]
        assert got[5].date() == want[4]  # a real date cell
        assert ws.cell(r, 6).number_format == "yyyy-mm-dd"
        assert float(got[6]) == float(want[5]) and got[7] == want[6]
        assert float(got[8]) == float(want[7]) and got[9] == want[8] and got[10] == want[9]
        assert float(got[11]) == float(want[10]) and ws.cell(r, 12).number_format == "#,##0.00"
        assert got[12:14] == want[11:13]
        assert got[14].date() == want[13] and got[15] == want[14]
        assert got[16:20] == [None, "No", None, None]  # openpyxl reads an empty text back as None
        assert got[20:22] == [INFOREURO if want[6] != "EUR" else None, None]  # typed rates: their reference
        assert got[22:] == [None, "Handover missing", None]  # the demo's handovers are not confirmed
    assert ws.cell(6, 1).value is None  # a blank row, then the total
    assert ws.cell(7, 1).value == "Total" and float(ws.cell(7, 12).value) == 7350.00
    info = wb.worksheets[1]
    assert info["B1"].value.date() == date(2024, 1, 1) and info["B2"].value.date() == date(2024, 12, 31)
    assert info["B3"].value == 4


def test_belegliste_csv_cell_by_cell(client, db, demo):
    client.login(demo["reader"], DEMO_PASSWORD)
    resp = client.get("/reports/belegliste.csv?start=2024-01-01&end=2024-12-31")
    assert resp.headers["Content-Type"].startswith("text/csv")
    assert resp.data.startswith(b"\xef\xbb\xbf")  # a byte order mark: spreadsheets read "é" right
    rows = list(csv.reader(io.StringIO(resp.data.decode("utf-8-sig"))))
    assert rows[0] == HEADER
    expected = expected_rows(demo)
    refs = receipt_refs(db, expected)
    assert len(rows) == 1 + len(expected)
    for got, want, ref in zip(rows[1:], expected, refs, strict=True):
        assert got == [str(want[0]), want[1], ref, want[2], want[3], want[4].isoformat(), want[5], want[6],
                       want[7], want[8], want[9], want[10], want[11], want[12], want[13].isoformat(), want[14],
                       *NOT_SAMPLED, INFOREURO if want[6] != "EUR" else "", "",  # typed rates: their reference, no file
                       "", "Handover missing", ""]


def test_belegliste_period_and_formula_text(client, db, demo):
    case = demo["cases"][3]
    make_receipt(db, case, supplier="=HYPERLINK(\"http://evil\")", status="approved", invoice_date=date(2024, 5, 20),
                 eur_cents=1234, amount_minor=1234)
    client.login(demo["reader"], DEMO_PASSWORD)
    rows = list(csv.reader(io.StringIO(client.get("/reports/belegliste.csv?start=2024-05-01&end=2024-05-31")
                                       .data.decode("utf-8-sig"))))
    assert [r[4] for r in rows[1:]] == ["AS-2024-115", rows[2][4]] and len(rows) == 3
    assert rows[2][3].startswith("'=")  # kept as text, never run as a formula
    assert rows[2][14] == "" and rows[2][15] == ""  # approved without recorded events: no date, no approvers
    ws = load_workbook(io.BytesIO(client.get("/reports/belegliste.xlsx?start=2024-05-01&end=2024-05-31").data)).active
    assert ws.cell(3, 4).data_type == "s" and ws.cell(3, 4).value.startswith("=HYPERLINK")


def test_a_wrong_period_falls_back_to_the_project_period_and_says_so(client, demo):
    client.login(demo["reader"], DEMO_PASSWORD)
    page = client.get("/reports/?start=2025-01-01&end=2024-01-01").get_data(as_text=True)
    assert "There is a problem" in page and "must not be before its start" in page
    assert re.search(r"Period Nov 1, 2023 to Dec 31, 2025", page)  # the project period instead


# Narrative report -------------------------------------------------------------------------------

def test_narrative_figures_for_a_period(client, db, demo):
    c = demo["cases"]
    make_visit(db, c[0], visit_date=date(2024, 6, 1), score_economic=2, score_social=4, score_psychosocial=3)
    make_visit(db, c[0], visit_date=date(2024, 9, 1), score_economic=3, score_social=5, score_psychosocial=3)
    make_visit(db, c[3], visit_date=date(2024, 7, 1), returnee_met=False, score_economic=None, score_social=None,
               score_psychosocial=None)
    make_visit(db, c[3], visit_date=date(2025, 7, 1), score_economic=1)  # outside the period
    client.login(demo["reader"], DEMO_PASSWORD)
    page = client.get("/reports/?start=2024-01-01&end=2024-12-31").get_data(as_text=True)
    # Returns in 2024: cases 1-4 (case 5 returns in February 2025).
    assert "4 cases with their return in the period." in page

    def table(table_id):
        body = page.split(f'id="{table_id}"')[1].split("</table>")[0]
        return [[re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", tr, re.S)]
                for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S)][1:]

    assert table("cases-by-country") == [["Georgia", "3"], ["Senegal", "1"]]
    assert table("cases-by-measure") == [["Business start-up", "2"], ["Both", "1"], ["Vocational qualification", "1"]]
    assert table("cases-by-status") == [["Active", "2"], ["Monitoring", "1"], ["Planned", "1"]]
    assert table("visits") == [["Georgia", "2", "2", "2.5", "4.5", "3.0"], ["Senegal", "1", "0", "–", "–", "–"],
                               ["All countries", "3", "2", "2.5", "4.5", "3.0"]]
    assert "Workshop participants by country and role" in page


def test_workshop_participants_by_country_and_role(client, db, demo):
    from portal.workshop.models import WorkshopStat
    from tests.factories import make_registration, make_workshop

    held = make_workshop(db, starts_on=date(2024, 10, 1), ends_on=date(2024, 10, 3),
                         registration_deadline=date(2024, 9, 1))
    for country, role, status in [("GE", "return_country", "confirmed"), ("GE", "return_country", "confirmed"),
                                  ("DE", "eu_member_state", "confirmed"), ("SN", "return_country", "declined"),
                                  ("SN", "return_country", "pending")]:
        make_registration(db, held, country=country, role=role, status=status)
    # An earlier workshop whose personal data was purged: only its anonymous counts remain.
    purged = make_workshop(db, starts_on=date(2024, 4, 1), ends_on=date(2024, 4, 2),
                           registration_deadline=date(2024, 3, 1), personal_data_purged_at=utcnow())
    db.add_all([WorkshopStat(workshop_id=purged.id, country="GE", role="return_country", status="confirmed", count=3),
                WorkshopStat(workshop_id=purged.id, country="GE", role="return_country", status="withdrawn", count=1)])
    later = make_workshop(db, starts_on=date(2025, 6, 1), ends_on=date(2025, 6, 2),
                          registration_deadline=date(2025, 5, 1))
    make_registration(db, later, country="GE", status="confirmed")  # outside the period
    db.commit()
    client.login(demo["reader"], DEMO_PASSWORD)
    page = client.get("/reports/?start=2024-01-01&end=2024-12-31").get_data(as_text=True)
    body = page.split('id="participants"')[1].split("</table>")[0]
    rows = [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
            for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S)][1:]
    assert rows == [["Germany", "Return counsellor in an EU member state", "1"],
                    ["Georgia", "Return counsellor in a return country", "5"]]


# Audit log --------------------------------------------------------------------------------------

def test_audit_log_filters_pages_and_exports(client, db, demo):
    staff, staff2 = demo["staff"], demo["users"]["staff2@example.org"]
    approved = db.exec(select(Receipt).where(Receipt.invoice_number == "GS-552")).one()
    client.login(demo["reader"], DEMO_PASSWORD)
    page = client.get(f"/reports/audit?user={staff2.id}&action=receipt.").get_data(as_text=True)
    # staff2 approved three demo receipts: two second approvals and one first approval.
    assert "3 entries" in page
    assert page.count("<code>receipt.approved</code>") == 2 and page.count("<code>receipt.first_approval</code>") == 1
    page = client.get(f"/reports/audit?object_type=Receipt&object_id={approved.id}").get_data(as_text=True)
    assert "2 entries" in page and "receipt.submitted" in page and "receipt.approved" in page
    # Dates: nothing tomorrow, everything today.
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    assert "0 entries" in client.get(f"/reports/audit?start={tomorrow}").get_data(as_text=True)
    # Paging: 50 a page.
    for i in range(60):
        audit.record(db, staff, "test.paged", ("Case", str(i)))
    db.commit()
    first = client.get("/reports/audit?action=test.paged").get_data(as_text=True)
    assert "60 entries" in first and "Page 1 of 2" in first and first.count("<code>test.paged</code>") == 50
    second = client.get("/reports/audit?action=test.paged&page=2").get_data(as_text=True)
    assert second.count("<code>test.paged</code>") == 10
    # The "Next" link carries a keyset cursor (the page starts after the last row shown): the same 10 rows.
    import html
    next_url = html.unescape(re.search(r'<a href="([^"]+)"[^>]*rel="next"', first).group(1))
    assert "after=" in next_url and "page=2" in next_url
    by_cursor = client.get(next_url).get_data(as_text=True)
    assert re.findall(r"Case (\d+)</a>", by_cursor) == re.findall(r"Case (\d+)</a>", second)
    assert by_cursor.count("<code>test.paged</code>") == 10 and "Page 2 of 2" in by_cursor
    # The export has every matching entry, newest first, cell by cell.
    resp = client.get(f"/reports/audit.csv?object_type=Receipt&object_id={approved.id}")
    rows = list(csv.reader(io.StringIO(resp.data.decode("utf-8-sig"))))
    assert rows[0] == ["Time (UTC)", "User ID", "User", "Action", "Object type", "Object ID", "Before", "After",
                       "Sequence", "Hash"]
    assert [r[3] for r in rows[1:]] == ["receipt.approved", "receipt.submitted"]
    approval = rows[1]
    assert approval[1:3] == [str(staff.id), "Stefan Staff"] and approval[4:6] == ["Receipt", str(approved.id)]
    assert '"status": "approved"' in approval[7] and '"status": "submitted"' in approval[6]
    all_paged = list(csv.reader(io.StringIO(client.get("/reports/audit.csv?action=test.paged").data
                                            .decode("utf-8-sig"))))
    assert len(all_paged) == 61 and all_paged[1][5] == "59" and all_paged[-1][5] == "0"  # newest first


def test_audit_log_is_for_staff_and_shows_users_by_name(client, db, demo):
    admin = demo["users"]["admin@example.org"]
    client.login(admin, DEMO_PASSWORD)
    page = client.get("/reports/audit").get_data(as_text=True)
    assert "Stefan Staff" in page
    partner = make_user(db, organisation_id=demo["cases"][0].organisation_id)
    client.submit("/logout")
    client.login(partner)
    assert client.get("/reports/audit").status_code == 404


def test_dashboard_case_table_is_paged(app, client, db, demo):
    from portal.reports import views

    client.login(demo["reader"], DEMO_PASSWORD)
    views.CASES_PER_PAGE, old = 2, views.CASES_PER_PAGE
    try:
        first = client.get("/reports/dashboard").get_data(as_text=True)
        last = client.get("/reports/dashboard?page=3").get_data(as_text=True)
    finally:
        views.CASES_PER_PAGE = old
    assert "Page 1 of 3" in first and "Page 3 of 3" in last
    refs = [c.reference for c in demo["cases"]]
    assert sum(f">{r}</a>" in first for r in refs) == 2 and sum(f">{r}</a>" in last for r in refs) == 1
    # A page past the last one (an old link) shows the last page; page 0 the first.
    views.CASES_PER_PAGE = 2
    try:
        past = client.get("/reports/dashboard?page=9").get_data(as_text=True)
        zero = client.get("/reports/dashboard?page=0").get_data(as_text=True)
    finally:
        views.CASES_PER_PAGE = old
    assert "Page 3 of 3" in past and sum(f">{r}</a>" in past for r in refs) == 1
    assert "Page 1 of 3" in zero and sum(f">{r}</a>" in zero for r in refs) == 2


# Summary tables ---------------------------------------------------------------------------------

def summary_matches(db) -> list[str]:
    """The differences between the dashboard's summary tables and a computation from scratch."""
    from portal.reports.summary import differences, from_scratch, stored

    conn = db.connection()
    return differences(from_scratch(conn), stored(conn))


def test_summaries_follow_every_change_in_the_same_transaction(app, db, demo):
    from decimal import Decimal

    from portal.cases import services as cases
    from portal.receipts import decisions, rates
    from portal.receipts import services as receipts
    from portal.reports.models import BudgetRollup

    staff, staff2 = demo["staff"], demo["users"]["staff2@example.org"]
    case, other = demo["cases"][0], demo["cases"][3]
    assert summary_matches(db) == []
    line = make_line(db, case, planned_cents=50_000)
    with app.test_request_context():
        # Created (straight through the ORM, as the upload does), in GEL without a rate for its month yet.
        gel = make_receipt(db, case, line, currency="GEL", amount_minor=29_500, eur_cents=None,
                           invoice_date=date(2025, 1, 10), uploaded_by_id=demo["users"]["partner.a@example.org"].id)
        eur = make_receipt(db, case, line, eur_cents=2_000, amount_minor=2_000, invoice_date=date(2025, 2, 3),
                           uploaded_by_id=staff.id)
        gone = make_receipt(db, case, line, eur_cents=700, amount_minor=700, invoice_date=date(2025, 4, 1))
        assert summary_matches(db) == []
        # A rate arrives: the waiting receipt is reconverted.
        rates.save_rate(db, staff, "GEL", date(2025, 1, 1), Decimal("2.95"), "InforEuro", "InforEuro 2025-01")
        db.refresh(gel)
        assert gel.eur_cents == 10_000 and summary_matches(db) == []
        # Decided: approved, then the other one sent back for correction and corrected into another month.
        decisions.decide(db, staff, gel, decisions.APPROVE, "", gel.version)
        decisions.decide(db, staff2, eur, decisions.CORRECTION, "Wrong date", eur.version)
        assert summary_matches(db) == []
        receipts.update_receipt(db, staff, eur, {"budget_line_id": line.id, "supplier": "Supplier",
                                                 "invoice_number": "X-1", "invoice_date": date(2025, 3, 1),
                                                 "amount_minor": 3_000, "currency": "EUR"}, eur.version, True)
        assert summary_matches(db) == []
        decisions.decide(db, staff2, eur, decisions.REJECT, "Not ours", eur.version)
        # Plans change, a case moves to another organisation and country, a line goes.
        cases.update_line(db, staff, line, {"category": "equipment", "description": "Tools", "planned_cents": 1})
        moved = {k: getattr(case, k) for k in ("return_date", "measure_type", "notes", "eligibility_reason")}
        cases.update_case(db, staff, case, {**moved, "country": other.country,
                                            "organisation_id": other.organisation_id})
        assert summary_matches(db) == []
        cases.delete_line(db, staff, line)
        # Erased: a receipt row removed (the sweep of an abandoned upload does this).
        db.delete(gone)
        db.commit()
    assert summary_matches(db) == []
    total = db.get(BudgetRollup, ("total", ""))
    assert (total.submitted, total.approved) == (7_750_00 + 10_000, 7_350_00 + 10_000)  # the demo's and gel


def test_a_change_that_rolls_back_leaves_the_summaries_as_they_were(app, db, demo):
    from portal.reports.models import BudgetSummary

    case = demo["cases"][1]
    before = db.get(BudgetSummary, case.id).submitted
    db.add(Receipt(case_id=case.id, supplier="S", invoice_number="R-1", invoice_date=date(2024, 3, 1),
                   amount_minor=500, currency="EUR", eur_cents=500, description="x", status="submitted",
                   nonce="rollback-1"))
    db.flush()
    assert db.get(BudgetSummary, case.id).submitted == before + 500  # in the same transaction
    db.rollback()
    db.expire_all()
    assert db.get(BudgetSummary, case.id).submitted == before and summary_matches(db) == []


def test_reconcile_names_and_fixes_a_broken_summary(app, db, demo):
    from sqlalchemy import text

    case = demo["cases"][0]
    db.exec(text("UPDATE budget_summary SET approved = approved + 123 WHERE case_id = :id").bindparams(id=case.id))
    db.exec(text("DELETE FROM budget_rollup WHERE kind = 'month' AND key = '2024-03'"))
    db.commit()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["reports", "reconcile"])
    assert result.exit_code == 1
    assert f"budget_summary case {case.id}: approved 240000 (stored 240123)" in result.output
    assert "budget_rollup month '2024-03': missing" in result.output
    assert "2 difference(s)" in result.output
    fixed = runner.invoke(args=["reports", "reconcile", "--fix"])
    assert fixed.exit_code == 0 and "2 difference(s) fixed" in fixed.output
    again = runner.invoke(args=["reports", "reconcile"])
    assert again.exit_code == 0 and "match" in again.output
    db.expire_all()
    assert summary_matches(db) == []


def test_dashboard_shows_localised_percentages_and_the_time_elapsed(app, client, db, demo):
    stefan = demo["staff"]  # reads German
    assert stefan.locale == "de"
    app.config.update(PROJECT_START=date(2024, 1, 1), PROJECT_END=date(2024, 12, 31))
    client.login(stefan, DEMO_PASSWORD)
    page = client.get("/reports/dashboard").get_data(as_text=True)
    # 12,250.00 of 400,000.00 planned: 3.1 %; German writes "3,1 %".
    assert "(<bdi>3,1\xa0%</bdi>)" in page and "3.1 %" not in page and "3.1%" not in page
    assert re.search(r'id="pace-elapsed">.*?<bdi>100,0\xa0%</bdi>', page)  # the period is over
    assert "Ausgaben im Verhältnis zur verstrichenen Zeit" in page
