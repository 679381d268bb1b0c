"""Retention periods applied by `flask --app portal privacy retention`."""

from __future__ import annotations

import io
from datetime import date, timedelta

import pytest
from sqlmodel import select

from portal import audit
from portal.audit import AuditEntry, verify_chain
from portal.cases.models import Case
from portal.clock import utcnow
from portal.mail import OutboxMail
from portal.receipts.models import Receipt
from portal.storage import get_storage
from portal.visits.models import Visit, VisitDraft, VisitPhoto
from tests.factories import (
    make_case,
    make_org,
    make_receipt,
    make_receipt_file,
    make_user,
    make_visit,
    make_visit_photo,
)


def _close(db, case: Case, actor=None) -> None:
    before = {"status": case.status}
    case.status = "closed"
    db.add(case)
    audit.record(db, actor, "case.status_changed", case, before, {"status": "closed"})
    db.commit()


def _run(app, *args: str):
    result = app.test_cli_runner().invoke(args=["privacy", "retention", *args])
    assert result.exit_code == 0, result.output
    return result.output


def _in_days(days: int) -> str:
    return (date.today() + timedelta(days=days)).isoformat()


@pytest.fixture
def world(app, db):
    org = make_org(db)
    closed = make_case(db, org, notes="Lives with his sister")
    still_open = make_case(db, org, notes="Open case notes")
    for case in (closed, still_open):
        visit = make_visit(db, case, place="Rustavi", notes="Sister is ill")
        with app.app_context():
            photo = make_visit_photo(db, visit)
            get_storage().put(photo.key, io.BytesIO(b"jpeg bytes"), content_type="image/jpeg")
            receipt = make_receipt(db, case)
            rfile = make_receipt_file(db, receipt)
            get_storage().put(rfile.key, io.BytesIO(b"%PDF-1.4 invoice"), content_type="application/pdf")
    _close(db, closed, make_user(db, role="staff"))
    return closed, still_open


@pytest.mark.parametrize("app_overrides", [{"CASE_RETENTION_DAYS": 365}])
def test_closed_cases_are_erased_after_the_period_and_receipts_kept(app, db, world):
    closed, still_open = world
    # within the period: nothing happens
    assert "0 closed cases were erased" in _run(app, "--today", _in_days(364))
    assert db.get(Case, closed.id).notes == "Lives with his sister"

    out = _run(app, "--today", _in_days(366))
    assert f"1 closed cases were erased: {closed.reference}" in out
    db.expire_all()
    assert db.get(Case, closed.id).notes == "[erased]"
    visit = db.exec(select(Visit).where(Visit.case_id == closed.id)).one()
    assert (visit.place, visit.notes) == ("[erased]", "[erased]")
    assert db.exec(select(VisitPhoto).where(VisitPhoto.visit_id == visit.id)).first() is None
    # the open case is untouched
    assert db.get(Case, still_open.id).notes == "Open case notes"
    other = db.exec(select(Visit).where(Visit.case_id == still_open.id)).one()
    assert other.place == "Rustavi" and db.exec(select(VisitPhoto).where(VisitPhoto.visit_id == other.id)).one()
    # financial proofs kept for the audit retention, with their files
    receipt = db.exec(select(Receipt).where(Receipt.case_id == closed.id)).one()
    entry = db.exec(select(AuditEntry).where(AuditEntry.action == "case.erased")).one()
    assert entry.after["reason"] == "retention period" and entry.after["receipts_kept"] == 1
    assert entry.actor_id is None and receipt.id
    # once erased, later runs leave it alone (no new audit entries every night)
    assert "0 closed cases were erased" in _run(app, "--today", _in_days(400))
    assert len(db.exec(select(AuditEntry).where(AuditEntry.action == "case.erased")).all()) == 1
    assert verify_chain(db)[1] is None


@pytest.mark.parametrize("app_overrides", [{"CASE_RETENTION_DAYS": 365}])
def test_dry_run_changes_nothing(app, db, world):
    closed, _ = world
    out = _run(app, "--dry-run", "--today", _in_days(366))
    assert f"1 closed cases would be erased: {closed.reference}" in out
    db.expire_all()
    assert db.get(Case, closed.id).notes == "Lives with his sister"
    assert not db.exec(select(AuditEntry).where(AuditEntry.action == "case.erased")).first()


@pytest.mark.parametrize("app_overrides", [{"DRAFT_RETENTION_DAYS": 30, "MAIL_RETENTION_DAYS": 90}])
def test_stale_drafts_and_old_sent_mails_are_deleted(app, db):
    org = make_org(db)
    user = make_user(db, organisation=org)
    case = make_case(db, org)
    now = utcnow()
    db.add(VisitDraft(key="old", user_id=user.id, case_id=case.id, data={"notes": "x"},
                      updated_at=now - timedelta(days=31)))
    db.add(VisitDraft(key="fresh", user_id=user.id, case_id=case.id, data={"notes": "y"},
                      updated_at=now - timedelta(days=2)))
    db.add(OutboxMail(to="a@example.org", subject="s", body="b", sent_at=now - timedelta(days=91)))
    db.add(OutboxMail(to="b@example.org", subject="s", body="b", sent_at=now - timedelta(days=10)))
    # never sent: kept whatever its age, or the message would be lost
    db.add(OutboxMail(to="c@example.org", subject="s", body="b", created_at=now - timedelta(days=200)))
    db.commit()
    out = _run(app)
    assert "1 visit drafts and 1 sent e-mails were deleted" in out
    assert [d.key for d in db.exec(select(VisitDraft))] == ["fresh"]
    assert sorted(m.to for m in db.exec(select(OutboxMail))) == ["b@example.org", "c@example.org"]
