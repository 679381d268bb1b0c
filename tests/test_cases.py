"""Cases and budgets: staff create, edit, assign and plan; partners read their own."""

from __future__ import annotations

import re
from datetime import date

from sqlmodel import select

from portal.audit import AuditEntry
from portal.cases.models import BudgetLine, Case
from tests.factories import make_case, make_line, make_org, make_user


def _case_form(org, **kw):
    return {"country": "GE", "organisation_id": org.id, "return_date": "2024-03-01", "measure_type": "business",
            "notes": "", "eligibility_reason": "", **kw}


def test_staff_creates_case_with_generated_reference(client, db):
    org = make_org(db)
    client.login(make_user(db, role="staff"))
    resp = client.submit("/cases/new", _case_form(org))
    assert resp.status_code == 303
    first = db.exec(select(Case)).one()
    assert first.reference == f"IP-{date.today().year}-0001"
    assert first.status == "planned" and first.return_date == date(2024, 3, 1)
    client.submit("/cases/new", _case_form(org, measure_type="both"))
    refs = sorted(c.reference for c in db.exec(select(Case)))
    assert refs[-1] == f"IP-{date.today().year}-0002"
    assert db.exec(select(AuditEntry).where(AuditEntry.action == "case.created")).first()


def test_case_form_errors_keep_input(client, db):
    org = make_org(db)
    client.login(make_user(db, role="staff"))
    resp = client.submit("/cases/new", _case_form(org, country="", notes="keep me please"))
    page = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert "Choose the return country." in page and "keep me please" in page
    assert db.exec(select(Case)).first() is None


def test_country_covered_by_other_programme_needs_reason(client, db):
    org = make_org(db, country="TR")
    staff = make_user(db, role="staff")
    client.login(staff)
    client.submit("/cases/countries", {"code": "TR", "covered": "y", "programme": "Other programme"})
    resp = client.submit("/cases/new", _case_form(org, country="TR"))
    assert resp.status_code == 422
    assert "covered by another return programme" in resp.get_data(as_text=True)
    resp = client.submit("/cases/new", _case_form(org, country="TR", eligibility_reason="Region not covered"))
    assert resp.status_code == 303
    assert db.exec(select(Case)).one().eligibility_reason == "Region not covered"


def test_partner_reads_but_cannot_create_or_edit(client, db):
    org = make_org(db)
    case = make_case(db, org)
    client.login(make_user(db, organisation=org))
    assert client.get(f"/cases/{case.id}").status_code == 200
    assert client.get("/cases/new").status_code == 404
    assert client.submit(f"/cases/{case.id}/edit", _case_form(org, notes="x")).status_code == 404
    assert client.submit(f"/cases/{case.id}/lines", {"category": "other", "description": "x",
                                                     "planned_amount": "5"}).status_code == 404
    assert db.exec(select(BudgetLine)).first() is None


def test_status_moves_along_the_path(client, db):
    org = make_org(db)
    case = make_case(db, org)
    client.login(make_user(db, role="staff"))
    assert client.submit(f"/cases/{case.id}/status", {"status": "closed"}).status_code == 303
    db.refresh(case)
    assert case.status == "planned"  # planned cannot jump to closed
    client.submit(f"/cases/{case.id}/status", {"status": "active"})
    db.refresh(case)
    assert case.status == "active"


def test_budget_lines_inline_with_htmx(htmx_client, db):
    org = make_org(db)
    case = make_case(db, org)
    htmx_client.login(make_user(db, role="staff"))
    resp = htmx_client.submit(f"/cases/{case.id}/lines", {"category": "equipment", "description": "Sewing machine",
                                                          "planned_amount": "1250.50"})
    fragment = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert fragment.lstrip().startswith('<section id="budget"')  # the fragment, not the whole page
    assert "Sewing machine" in fragment and "€1,250.50" in fragment
    line = db.exec(select(BudgetLine)).one()
    assert line.planned_cents == 125050

    # Edit in place: GET gives the editor, POST saves.
    editor = htmx_client.get(f"/cases/{case.id}/lines/{line.id}/edit").get_data(as_text=True)
    assert 'value="1250.50"' in editor
    resp = htmx_client.submit(f"/cases/{case.id}/lines/{line.id}/edit",
                              {"category": "equipment", "description": "Two sewing machines", "planned_amount": "2500"})
    assert "€2,500.00" in resp.get_data(as_text=True)

    # A bad amount: 422 with the fragment, the error and the typed description kept.
    resp = htmx_client.submit(f"/cases/{case.id}/lines", {"category": "stock", "description": "Fabric",
                                                          "planned_amount": "lots"})
    assert resp.status_code == 422
    body = resp.get_data(as_text=True)
    assert "There is a problem" in body and 'value="Fabric"' in body
    assert resp.headers["Vary"].find("HX-Request") >= 0

    htmx_client.submit(f"/cases/{case.id}/lines/{line.id}/delete")
    assert db.exec(select(BudgetLine)).first() is None


def test_budget_without_javascript_redirects(client, db):
    org = make_org(db)
    case = make_case(db, org)
    client.login(make_user(db, role="staff"))
    resp = client.submit(f"/cases/{case.id}/lines", {"category": "training", "description": "Course",
                                                     "planned_amount": "600"})
    assert resp.status_code == 303 and resp.headers["Location"].endswith(f"/cases/{case.id}#budget")
    page = client.get(f"/cases/{case.id}").get_data(as_text=True)
    assert "Course" in page and "€600.00" in page


def test_case_list_filters_and_pages(client, htmx_client, db):
    org_a, org_b = make_org(db, country="GE"), make_org(db, country="SN")
    for i in range(30):
        make_case(db, org_a if i % 2 else org_b, country="GE" if i % 2 else "SN",
                  status="active" if i % 3 == 0 else "planned")
    staff = make_user(db, role="staff")
    client.login(staff)
    page = client.get("/cases/").get_data(as_text=True)
    assert "30 cases" in page and "Page 1 of 2" in page
    page = client.get("/cases/?status=active&country=SN").get_data(as_text=True)
    assert "5 cases" in page
    htmx_client.login(staff)
    fragment = htmx_client.get(f"/cases/?organisation={org_a.id}").get_data(as_text=True)
    assert fragment.lstrip().startswith('<section id="case-list"') and "15 cases" in fragment


def test_case_list_totals_from_the_kept_rollup_match_a_count_of_the_cases(client, db):
    """Unfiltered, per organisation and per country the total comes from the kept roll-up (no count of every
    case); it must say what counting says, for staff and partners, after cases move and are added."""
    org_a, org_b = make_org(db, country="GE"), make_org(db, country="SN")
    cases = [make_case(db, org_a if i % 3 else org_b, country="GE" if i % 2 else "SN") for i in range(9)]
    cases[0].organisation_id, cases[1].country = org_a.id, "TN"  # moved: the roll-ups follow the change
    db.add_all(cases[:2])
    db.commit()
    staff = make_user(db, role="staff")
    client.login(staff)

    def total(query: str) -> int:
        page = client.get(f"/cases/{query}").get_data(as_text=True)
        return int(re.search(r'<p class="count">(\d+) cases?</p>', page).group(1))

    def counted(**where) -> int:
        return sum(all(getattr(c, k) == v for k, v in where.items()) for c in cases)

    assert total("") == 9
    assert total(f"?organisation={org_a.id}") == counted(organisation_id=org_a.id)
    assert total(f"?organisation={org_b.id}") == counted(organisation_id=org_b.id)
    assert total("?country=TN") == 1 and total("?country=GE") == counted(country="GE")
    assert total(f"?organisation={org_a.id}&country=SN") == counted(organisation_id=org_a.id, country="SN")
    page = client.get("/cases/").get_data(as_text=True)
    assert 'value="TN"' in page and 'value="SN"' in page and 'value="GE"' in page
    client.submit("/logout")
    client.login(make_user(db, organisation=org_b))
    assert total("") == counted(organisation_id=org_b.id)


def test_case_list_needs_three_statements_with_its_choices(app, client, htmx_client, db):
    """The signed-in user, the total with the filter's choices, the page: for staff (countries from the
    roll-up, every organisation) and for a partner (the countries of its own cases only); an htmx swap of
    the list shows no filters and leaves the choices out of the same statement."""
    from tests.helpers import count_statements

    org_a, org_b = make_org(db, name="Alpha NGO"), make_org(db, name="Beta NGO")
    make_case(db, org_a, country="TN")
    make_case(db, org_b, country="GE")
    client.login(make_user(db, role="staff"))
    client.get("/cases/")
    with count_statements(app) as seen:
        page = client.get("/cases/?status=planned").get_data(as_text=True)
    assert len(seen) == 3, "\n\n".join(seen)
    assert 'value="TN"' in page and 'value="GE"' in page
    assert f'<option value="{org_a.id}" >Alpha NGO</option>' in page and ">Beta NGO</option>" in page
    partner = make_user(db, organisation=org_b)
    htmx_client.login(partner)
    with count_statements(app) as seen:
        fragment = htmx_client.get("/cases/", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert len(seen) == 3 and 'id="case-list"' in fragment and "<select" not in fragment
    client.submit("/logout")
    client.login(partner)
    with count_statements(app) as seen:
        page = client.get("/cases/").get_data(as_text=True)
    assert len(seen) == 3, "\n\n".join(seen)
    assert 'value="GE"' in page and 'value="TN"' not in page and "Alpha NGO" not in page


def test_case_page_shows_budget_total(client, db):
    org = make_org(db)
    case = make_case(db, org)
    make_line(db, case, planned_cents=100_000)
    make_line(db, case, planned_cents=25_050)
    client.login(make_user(db, organisation=org))
    page = client.get(f"/cases/{case.id}").get_data(as_text=True)
    assert "€1,250.50" in page


def test_amounts_typed_with_a_decimal_comma(client, db):
    org = make_org(db)
    case = make_case(db, org)
    client.login(make_user(db, role="staff"))
    for typed, cents in (("1250,50", 125050), ("1.250,75", 125075), ("1,250.25", 125025), ("2 000", 200000)):
        assert client.submit(f"/cases/{case.id}/lines", {"category": "other", "description": typed,
                                                         "planned_amount": typed}).status_code == 303
        line = db.exec(select(BudgetLine).where(BudgetLine.description == typed)).one()
        assert line.planned_cents == cents


def test_case_page_needs_the_same_few_statements_however_much_it_shows(app, client, db):
    """The case page reads each kind of thing once (case with organisation and rule, lines, receipts,
    visits, their comments, the timeline's history, the draft, the navigation's counts): the same
    number of statements for a bare case and for one with many receipts, visits and comments."""
    from portal.visits.models import VisitComment
    from tests.factories import make_receipt, make_visit
    from tests.helpers import count_statements

    org = make_org(db)
    staff = make_user(db, role="staff")
    case = make_case(db, org)
    line = make_line(db, case)
    visit = make_visit(db, case, flag_health=True)
    make_receipt(db, case, line)
    db.add(VisitComment(visit_id=visit.id, author_id=staff.id, body="Call him"))
    db.commit()
    client.login(staff)
    url = f"/cases/{case.id}"
    client.get(url)
    with count_statements(app) as few:
        assert client.get(url).status_code == 200
    for i in range(15):
        extra_line = make_line(db, case, description=f"Line {i}")
        make_receipt(db, case, extra_line, supplier=f"Supplier {i}")
        v = make_visit(db, case)
        db.add(VisitComment(visit_id=v.id, author_id=staff.id, body=f"Comment {i}"))
    db.commit()
    with count_statements(app) as many:
        page = client.get(url).get_data(as_text=True)
    assert "Supplier 14" in page and "Line 14" in page
    assert len(many) == len(few), "\n\n".join(many)
    assert len(many) <= 6, "\n\n".join(many)
