"""Every route that takes an ID, walked as a partner of another organisation: always 404."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from portal.clock import utcnow
from portal.receipts.handover import Handover, HandoverExemption
from portal.uploads.models import Upload
from tests.factories import (
    make_case,
    make_line,
    make_org,
    make_rate_evidence,
    make_receipt,
    make_receipt_file,
    make_registration,
    make_sample,
    make_user,
    make_visit,
    make_visit_photo,
    make_workshop,
)

# argument missing here fails test_every_argument_is_known: add the argument with B's object.
ARGUMENTS = {
    "case_id": lambda w: w["case_b"].id,
    "line_id": lambda w: w["line_b"].id,
    "user_id": lambda w: w["partner_b"].id,
    "org_id": lambda w: w["org_b"].id,
    "code": lambda w: "GE",
    "token": lambda w: "not-a-token",
    "visit_id": lambda w: w["visit_b"].id,
    "photo_id": lambda w: w["photo_b"].id,
    "receipt_id": lambda w: w["receipt_b"].id,
    "file_id": lambda w: w["file_b"].id,
    "draw_id": lambda w: w["sample_b"].draw_id,  # staff-only routes
    "sample_item_id": lambda w: w["sample_b"].id,
    "workshop_id": lambda w: w["workshop"].id,  # staff-only routes
    "registration_id": lambda w: w["registration"].id,
    "upload_id": lambda w: w["upload_b"].token,  # a real upload of partner B, on B's case
    "evidence_id": lambda w: w["evidence"].id,  # a kept rate file: staff only
}
# Routes with arguments that are not object IDs a partner could probe.
NOT_ID_ROUTES = {"static"}


@pytest.fixture
def world(db):
    org_a, org_b = make_org(db, country="GE"), make_org(db, country="SN")
    case_b = make_case(db, org_b, country="SN")
    visit_b = make_visit(db, case_b)
    receipt_b = make_receipt(db, case_b)
    workshop = make_workshop(db)
    partner_b = make_user(db, organisation=org_b)
    upload_b = Upload(token="b-upload-token-of-another-organisation", user_id=partner_b.id, case_id=case_b.id,
                      purpose="receipt", filename="x.pdf", length=10, expires_at=utcnow() + timedelta(hours=1))
    db.add(upload_b)
    db.commit()
    return {
        "upload_b": upload_b,
        "evidence": make_rate_evidence(db),
        "workshop": workshop, "registration": make_registration(db, workshop),
        "receipt_b": receipt_b, "file_b": make_receipt_file(db, receipt_b), "sample_b": make_sample(db, receipt_b),
        "visit_b": visit_b, "photo_b": make_visit_photo(db, visit_b),
        "org_a": org_a, "org_b": org_b, "case_b": case_b, "line_b": make_line(db, case_b),
        "partner_a": make_user(db, organisation=org_a), "partner_b": partner_b,
    }


def id_rules(app):
    return [r for r in app.url_map.iter_rules() if r.arguments and r.endpoint not in NOT_ID_ROUTES]


def test_every_argument_is_known(app):
    unknown = {(r.rule, a) for r in id_rules(app) for a in r.arguments if a not in ARGUMENTS}
    assert not unknown, f"routes with arguments the isolation walk cannot fill: {sorted(unknown)}"
    assert len(id_rules(app)) >= 10


def test_partner_of_other_org_gets_404_everywhere(app, client, world, db):
    client.login(world["partner_a"])
    token = client.csrf_token()
    walked = 0
    for rule in id_rules(app):
        url = rule.build({a: ARGUMENTS[a](world) for a in rule.arguments}, append_unknown=False)[1]
        # The tus routes answer HEAD, PATCH and DELETE; HEAD is walked where it is not GET's shadow.
        methods = {"GET", "POST", "PATCH", "DELETE"} | ({"HEAD"} if "GET" not in rule.methods else set())
        for method in sorted(methods & rule.methods):
            for htmx in (False, True):
                headers = {"X-CSRFToken": token}
                if htmx:
                    headers["HX-Request"] = "true"
                resp = client.open(url, method=method, headers=headers,
                                   data={"csrf_token": token, "status": "active", "description": "x",
                                         "planned_amount": "1", "category": "other"})
                assert resp.status_code == 404, f"{method} {url} htmx={htmx} gave {resp.status_code}"
                walked += 1
    assert walked >= 20
    # Nothing changed behind the 404s.
    db.refresh(world["case_b"])
    assert world["case_b"].status == "planned"
    db.refresh(world["upload_b"])  # not removed (DELETE) and not written to (PATCH)
    assert world["upload_b"].offset == 0
    # No handover confirmed or marked not applicable (POST /receipts/<id>/handover, …/not-applicable).
    assert not db.exec(select(Handover)).all() and not db.exec(select(HandoverExemption)).all()


def test_owner_sees_the_same_objects(client, world):
    """The walk above is only meaningful if the IDs are real: their own partner sees them."""
    client.login(world["partner_b"])
    assert client.get(f"/cases/{world['case_b'].id}").status_code == 200


def test_case_list_shows_only_own_cases(client, world, db):
    own = make_case(db, world["org_a"])
    client.login(world["partner_a"])
    page = client.get("/cases/").get_data(as_text=True)
    assert own.reference in page
    assert world["case_b"].reference not in page
    # Filtering by another organisation's ID does not widen the view.
    page = client.get(f"/cases/?organisation={world['org_b'].id}&q={world['case_b'].reference}").get_data(
        as_text=True)
    assert f'>{world["case_b"].reference}</a>' not in page
    assert "0 cases" in page


def test_search_and_bulk_approval_stay_within_the_organisation(client, world, db):
    """The routes that take a query or ids in the body: search shows only one's own organisation's receipts,
    and the desk's bulk approval is not there for partners (404, nothing approved)."""
    receipt_b = world["receipt_b"]
    receipt_b.supplier, receipt_b.translation = "Unique Supplier Of B", "Sewing machine of B"
    db.add(receipt_b)
    db.commit()
    client.login(world["partner_a"])
    for words in ("Unique", "sewing", receipt_b.invoice_number):
        for htmx in (False, True):
            resp = client.get("/receipts/search", query_string={"q": words},
                              headers={"HX-Request": "true"} if htmx else {})
            assert resp.status_code == 200
            assert "Unique Supplier Of B" not in resp.get_data(as_text=True)
            assert f"/receipts/{receipt_b.id}" not in resp.get_data(as_text=True)
    resp = client.submit("/review/approve-selected", {"selected": f"{receipt_b.id}:{receipt_b.version}"})
    assert resp.status_code == 404
    assert client.get(f"/review/?q={words}").status_code == 404
    db.refresh(receipt_b)
    assert receipt_b.status == "submitted"
    client.submit("/logout")
    client.login(world["partner_b"])  # the walk is only meaningful if B finds it
    assert "Unique Supplier Of B" in client.get("/receipts/search?q=unique").get_data(as_text=True)
