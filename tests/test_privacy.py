"""Per-case privacy: an export of everything held about a case, and erasure that keeps financial proofs."""

from __future__ import annotations

import io
import json

from sqlmodel import select

from portal.audit import AuditEntry
from portal.receipts.models import Receipt, ReceiptFile
from portal.storage import get_storage
from portal.visits.models import Visit, VisitComment, VisitPhoto
from tests.factories import (
    make_case,
    make_org,
    make_receipt,
    make_receipt_file,
    make_user,
    make_visit,
    make_visit_photo,
)


def _world(app, db):
    org = make_org(db)
    case = make_case(db, org, notes="Lives with his sister in Rustavi")
    visit = make_visit(db, case, place="Rustavi, Gagarin street", attendees="returnee, sister",
                       latitude=41.55, longitude=45.0, location_consent=True, notes="Sister is ill",
                       flag_health=True, flag_details="Needs a doctor")
    db.add(VisitComment(visit_id=visit.id, body="Please call him"))
    db.commit()
    with app.app_context():
        storage = get_storage()
        photo = make_visit_photo(db, visit)
        storage.put(photo.key, io.BytesIO(b"jpeg bytes"), content_type="image/jpeg")
        receipt = make_receipt(db, case)
        rfile = make_receipt_file(db, receipt)
        storage.put(rfile.key, io.BytesIO(b"%PDF-1.4 invoice"), content_type="application/pdf")
    return case, visit, photo, receipt, rfile


def test_export_holds_everything_about_the_case(app, client, db):
    case, visit, photo, receipt, rfile = _world(app, db)
    client.login(make_user(db, role="admin"))
    resp = client.get(f"/cases/{case.id}/privacy/export")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    assert f'filename="{case.reference}.json"' in resp.headers["Content-Disposition"]
    doc = json.loads(resp.data)
    assert doc["case"]["notes"] == "Lives with his sister in Rustavi"
    assert doc["visits"][0]["place"] == "Rustavi, Gagarin street"
    assert doc["visits"][0]["comments"][0]["body"] == "Please call him"
    assert doc["visits"][0]["photos"][0]["key"] == photo.key
    assert doc["receipts"][0]["files"][0]["sha256"] == rfile.sha256
    assert db.exec(select(AuditEntry).where(AuditEntry.action == "case.exported")).first()


def test_erasure_removes_personal_data_and_keeps_financial_proofs(app, client, db):
    case, visit, photo, receipt, rfile = _world(app, db)
    photo_key, file_key = photo.key, rfile.key
    client.login(make_user(db, role="admin"))
    resp = client.submit(f"/cases/{case.id}/privacy/erase", {"reason": "", "confirm": ""})
    assert resp.status_code == 422 and "Enter the reason" in resp.get_data(as_text=True)
    resp = client.submit(f"/cases/{case.id}/privacy/erase",
                         {"reason": "Returnee's request of 2025-11-02", "confirm": "y"})
    assert resp.status_code == 303
    db.expire_all()
    v = db.get(Visit, visit.id)
    assert (v.place, v.attendees, v.notes, v.flag_details) == ("[erased]",) * 4
    assert v.latitude is None and v.longitude is None and v.score_economic == 3 and v.flag_health
    assert db.exec(select(VisitComment)).one().body == "[erased]"
    assert db.exec(select(VisitPhoto)).first() is None
    assert db.get(type(case), case.id).notes == "[erased]"
    with app.app_context():
        storage = get_storage()
        assert not storage.exists(photo_key)
        assert storage.exists(file_key)  # the receipt's file is a financial proof: kept
    assert db.get(Receipt, receipt.id) is not None and db.get(ReceiptFile, rfile.id) is not None
    entry = db.exec(select(AuditEntry).where(AuditEntry.action == "case.erased")).one()
    assert entry.after["reason"] == "Returnee's request of 2025-11-02" and entry.after["receipts_kept"] == 1


def test_staff_and_partners_cannot_export_or_erase(client, db):
    org = make_org(db)
    case = make_case(db, org)
    client.login(make_user(db, role="staff"))
    assert client.get(f"/cases/{case.id}/privacy/export").status_code == 404
    client.submit("/logout")
    client.login(make_user(db, organisation=org))
    assert client.submit(f"/cases/{case.id}/privacy/erase", {"reason": "x", "confirm": "y"}).status_code == 404


def test_erasure_with_storage_down_changes_nothing(app, client, db, monkeypatch):
    from portal.storage import StorageError

    case, visit, _photo, _receipt, _rfile = _world(app, db)
    storage = app.extensions["storage"]

    def down(key):
        raise StorageError("storage unreachable")

    monkeypatch.setattr(storage, "delete", down)
    client.login(make_user(db, role="admin"))
    resp = client.submit(f"/cases/{case.id}/privacy/erase", {"reason": "Request", "confirm": "y"})
    assert resp.status_code == 503 and "nothing was erased" in resp.get_data(as_text=True)
    db.expire_all()
    assert db.get(Visit, visit.id).place == "Rustavi, Gagarin street"
    assert db.exec(select(VisitPhoto)).first() is not None
