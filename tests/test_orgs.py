"""Partner organisations: admins manage them; staff see the list."""

from __future__ import annotations

from sqlmodel import select

from portal.orgs.models import Organisation
from tests.factories import make_org, make_user


def test_admin_creates_and_edits_organisation(client, db):
    client.login(make_user(db, role="admin"))
    resp = client.submit("/organisations/new", {"name": "Kyiv Help", "country": "UA",
                                                 "contact_email": "Office@Kyiv.example.org", "active": "y"})
    assert resp.status_code == 303
    org = db.exec(select(Organisation)).one()
    assert (org.country, org.contact_email, org.active) == ("UA", "office@kyiv.example.org", True)
    resp = client.submit(f"/organisations/{org.id}/edit", {"name": "Kyiv Help", "country": "UA",
                                                           "contact_email": "office@kyiv.example.org"})
    db.refresh(org)
    assert org.active is False


def test_duplicate_name_is_a_form_error(client, db):
    make_org(db, name="Same Name")
    client.login(make_user(db, role="admin"))
    resp = client.submit("/organisations/new", {"name": "Same Name", "country": "GE",
                                                 "contact_email": "a@example.org"})
    assert resp.status_code == 422
    assert "exists already" in resp.get_data(as_text=True)


def test_staff_sees_list_but_cannot_edit(client, db):
    org = make_org(db, name="Visible Org")
    client.login(make_user(db, role="staff"))
    assert "Visible Org" in client.get("/organisations/").get_data(as_text=True)
    assert client.get(f"/organisations/{org.id}/edit").status_code == 404


def test_partner_cannot_see_organisations(client, db):
    client.login(make_user(db))
    assert client.get("/organisations/").status_code == 404
