"""The task queue (Huey): mail through the outbox exactly once, scans after the upload, the periodic
schedule, jobs safe to run twice, /healthz.

Real consumers (Huey's scheduler and worker threads, as `flask --app portal worker` runs them) work on a
SQLite queue file; the database is SQLite or PostgreSQL; mail goes to the aiosmtpd sink.
"""

from __future__ import annotations

import io
import os
import threading
import time
from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from portal import create_app, tasks
from portal import mail as mailer
from portal.audit import AuditEntry
from portal.mail import OutboxMail
from portal.receipts.models import ReceiptFile
from tests.factories import make_case, make_org, make_user
from tests.fixtures import app_config, free_port, start_consumer

REDIS_URL = os.environ.get("TEST_REDIS_URL", "")


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def unsent(engine) -> int:
    with Session(engine) as s:
        return s.exec(select(sa.func.count()).select_from(OutboxMail).where(OutboxMail.sent_at.is_(None))).one()


# The outbox -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("queue", ["sqlite", "redis"])
def test_two_workers_and_two_app_instances_send_each_message_exactly_once(db_url, tmp_path, mails, queue):
    """Two app instances (two web servers) on one database and one queue, each with its own consumer of two
    worker threads; every message is enqueued by both instances, and a `mail retry` runs meanwhile."""
    config = app_config(db_url, tmp_path, mails.port)
    if queue == "redis":
        if not REDIS_URL:
            pytest.skip("TEST_REDIS_URL is not set")
        config.update(TASK_QUEUE_URL=REDIS_URL, TASK_QUEUE_NAME=f"test-{uuid4().hex}")
    web1, web2 = create_app(config), create_app(config)
    count = 40
    try:
        with web1.app_context(), Session(web1.extensions["db_engine"], expire_on_commit=False) as s:
            for i in range(count):
                mailer.queue(s, f"person{i}@example.org", f"Message {i}", "Hello")
            s.commit()  # web1 enqueues send_mail(id) for each after the commit
            ids = [m.id for m in s.exec(select(OutboxMail)).all()]
        assert web1.extensions["huey"].pending_count() == count
        assert mails.messages == []  # nothing is sent before a worker runs
        with web2.app_context():
            for mail_id in ids:  # the same jobs again, from the other server
                assert tasks.enqueue("send_mail", mail_id)

        consumers = [start_consumer(web1, workers=2), start_consumer(web2, workers=2)]

        def retry():  # `flask --app portal mail retry` on the second server, at the same time
            with web2.app_context(), Session(web2.extensions["db_engine"], expire_on_commit=False) as s:
                mailer.deliver_pending(s, 1000)

        retry_thread = threading.Thread(target=retry)
        retry_thread.start()
        retry_thread.join(60)
        try:
            wait_for(lambda: unsent(web1.extensions["db_engine"]) == 0, what="all mail sent")
            wait_for(lambda: web1.extensions["huey"].pending_count() == 0, what="the queue to empty")
        finally:
            for consumer in consumers:
                consumer.stop(graceful=True)
        subjects = sorted(m["Subject"] for m in mails.messages)
        assert subjects == sorted(f"Message {i}" for i in range(count))  # each exactly once
        with Session(web1.extensions["db_engine"]) as s:
            rows = s.exec(select(OutboxMail)).all()
            assert all(r.sent_at is not None and r.claimed_until is None and r.attempts == 1 for r in rows)
    finally:
        web1.extensions["huey"].storage.flush_all()
        for app in (web1, web2):
            app.extensions["db_engine"].dispose()
            app.extensions["huey"].storage.close()


def test_a_send_job_run_twice_sends_once(app, db, mails, run_jobs):
    with app.app_context():
        message = mailer.queue(db, "once@example.org", "Once", "only once")
        db.commit()
        assert tasks.enqueue("send_mail", message.id)  # a duplicate job, as after a worker restart
    assert run_jobs() == 2
    with app.app_context():
        assert tasks.enqueue("send_mail", message.id)
    run_jobs()
    assert len(mails.to("once@example.org")) == 1


def test_smtp_down_the_message_stays_and_the_retry_job_sends_it(app, db, mails, run_jobs):
    app.config["MAIL_PORT"] = free_port()  # nobody listens: the SMTP server is down
    with app.app_context():
        message = mailer.queue(db, "later@example.org", "Later", "when the server is back")
        db.commit()
    run_jobs()
    db.expire_all()
    row = db.get(OutboxMail, message.id)
    assert row.sent_at is None and row.last_error and row.attempts == 1 and row.claimed_until is None
    assert mails.messages == []

    app.config["MAIL_PORT"] = mails.port  # the server is back
    with app.app_context():
        tasks.enqueue("mail_retry")  # what the scheduler enqueues every minute
    run_jobs()
    assert mails.to("later@example.org") == []  # a fresh message is left to its own job for a minute
    row.created_at = row.created_at - timedelta(minutes=2)
    db.add(row)
    db.commit()
    with app.app_context():
        tasks.enqueue("mail_retry")
    run_jobs()
    assert len(mails.to("later@example.org")) == 1


def test_a_sender_that_died_holding_the_claim_is_replaced_by_the_retry(app, db, mails, run_jobs):
    with app.app_context():
        message = mailer.queue(db, "orphan@example.org", "Orphan", "the worker died while sending")
        db.commit()
    # The worker claimed it and died before sending: the claim is still held, the job is gone.
    db.execute(sa.update(OutboxMail).where(OutboxMail.id == message.id)
               .values(attempts=1, claimed_until=datetime.now(UTC) + timedelta(minutes=5),
                       created_at=datetime.now(UTC) - timedelta(minutes=10)))
    db.commit()
    app.extensions["huey"].flush()
    with app.app_context():
        tasks.enqueue("mail_retry")
    run_jobs()
    assert mails.to("orphan@example.org") == []  # nobody sends while the claim holds
    db.execute(sa.update(OutboxMail).where(OutboxMail.id == message.id)
               .values(claimed_until=datetime.now(UTC) - timedelta(seconds=1)))  # the lease ran out
    db.commit()
    with app.app_context():
        tasks.enqueue("mail_retry")
    run_jobs()
    assert len(mails.to("orphan@example.org")) == 1


def test_a_password_reset_request_sends_no_mail_in_the_request(client, db, mails, run_jobs):
    user = make_user(db)
    assert client.submit("/reset", {"email": user.email}).status_code == 303
    assert mails.messages == []
    assert db.exec(select(OutboxMail).where(OutboxMail.to == user.email)).one().sent_at is None
    run_jobs()
    assert len(mails.to(user.email)) == 1


# Scans after the upload ----------------------------------------------------------------------------------

@pytest.mark.parametrize("app_overrides", [{"CLAMD_TIMEOUT": 5.0}])
def test_an_upload_answers_before_the_scan_and_a_worker_scans_it(app, client, db, w, mails, run_jobs):
    from tests.helpers import CLAMD_HOST, CLAMD_PORT, clean_pdf, eicar_pdf, files_of, scan_upload

    if not CLAMD_HOST:
        pytest.skip("TEST_CLAMD_HOST is not set (scripts/clamd.sh start)")
    app.config.update(CLAMD_HOST=CLAMD_HOST, CLAMD_PORT=CLAMD_PORT)
    client.login(w["partner"])
    resp = scan_upload(client, w, [(io.BytesIO(clean_pdf()), "invoice.pdf")],
                  handover=[(io.BytesIO(eicar_pdf()), "handover.pdf")])
    assert resp.status_code == 303
    receipt_id = int(resp.location.rsplit("/", 1)[-1])
    rows = files_of(db, receipt_id)
    assert {r.scan_status for r in rows.values()} == {"pending"} and all(r.scanned_at is None for r in rows.values())
    assert app.extensions["huey"].pending_count() == 3  # one scan job per file, then the text recognition
    assert "Files are being checked for viruses" in client.get(resp.location).get_data(as_text=True)

    consumer = start_consumer(app, workers=2)  # the worker, as `flask --app portal worker` runs it
    try:
        wait_for(lambda: {r.scan_status for r in files_of(db, receipt_id).values()} == {"clean", "infected"},
                 what="the scans")
        wait_for(lambda: mails.to(w["staff"].email), what="the staff mail")  # sent by the same worker
    finally:
        consumer.stop(graceful=True)
    rows = files_of(db, receipt_id)
    clean, bad = rows["invoice.pdf"], rows["handover.pdf"]
    assert clean.scan_status == "clean" and bad.scan_status == "infected" and bad.key.startswith("quarantine/")
    scanned_at = clean.scanned_at
    with app.app_context():
        from portal.receipts.previews import preview_key
        from portal.storage import get_storage

        assert get_storage().exists(preview_key(clean.id, clean.sha256))  # the preview was made by the job

    # The scan jobs again (a retry, a second worker): nothing changes, nobody is told twice.
    with app.app_context():
        for row in (clean, bad):
            assert tasks.enqueue("scan_file", "receipt_file", row.id)
        tasks.enqueue("scan_rescan")
    run_jobs()
    rows = files_of(db, receipt_id)
    assert rows["invoice.pdf"].scanned_at == scanned_at and rows["handover.pdf"].scan_status == "infected"
    actions = db.exec(select(AuditEntry.action).where(AuditEntry.object_type == "ReceiptFile")).all()
    assert sorted(actions) == ["file.infected", "file.quarantined"]
    assert len(mails.to(w["staff"].email)) == 1
    page = client.get(f"/receipts/{receipt_id}/files-list", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "hx-trigger" not in page and "Virus scan: clean" in page and "Refused: malware found" in page


def test_two_scans_of_one_file_record_one_verdict(app, client, db, w, mails, run_jobs):
    """The upload's job and the rescan at the same moment: the conditional UPDATE lets one record it."""
    from portal.scanning import services as scanning
    from portal.scanning.clamd import ScanResult, Verdict
    from portal.storage import get_storage
    from tests.helpers import clean_pdf, files_of, scan_upload

    app.config["CLAMD_HOST"] = ""  # stored unscanned; the two scans below judge it
    client.login(w["partner"])
    resp = scan_upload(client, w, [(io.BytesIO(clean_pdf()), "invoice.pdf")])
    row = files_of(db, int(resp.location.rsplit("/", 1)[-1]))["invoice.pdf"]
    assert row.scan_status == "unscanned"

    both_read = threading.Barrier(2, timeout=20)

    class Infected:  # both scans have read the file before either records its verdict
        def scan_stream(self, fh):
            fh.read()
            both_read.wait()
            return ScanResult(Verdict.INFECTED, signature="Test.Sig")

    results = []

    def scan():
        with app.test_request_context("/"), Session(app.extensions["db_engine"], expire_on_commit=False) as s:
            results.append(scanning.scan_file(s, get_storage(), s.get(ReceiptFile, row.id), None, Infected()))

    threads = [threading.Thread(target=scan) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [r.verdict for r in results] == [Verdict.INFECTED, Verdict.INFECTED]
    assert db.exec(select(sa.func.count()).select_from(AuditEntry)
                   .where(AuditEntry.action == "file.infected")).one() == 1
    run_jobs()
    assert len(mails.to(w["staff"].email)) == 1


def test_the_file_lists_that_poll_are_the_organisations_own(client, db, w, run_jobs):
    from tests.factories import make_visit
    from tests.helpers import clean_pdf, scan_upload

    client.login(w["partner"])
    resp = scan_upload(client, w, [(io.BytesIO(clean_pdf()), "invoice.pdf")])
    receipt_id = int(resp.location.rsplit("/", 1)[-1])
    visit = make_visit(db, w["case"], created_by_id=w["partner"].id)
    assert client.get(f"/receipts/{receipt_id}/files-list").status_code == 200
    assert client.get(f"/visits/{visit.id}/photos-list").status_code == 200
    client.submit("/logout")
    client.login(make_user(db, organisation=make_org(db)))
    assert client.get(f"/receipts/{receipt_id}/files-list").status_code == 404
    assert client.get(f"/visits/{visit.id}/photos-list").status_code == 404


# The periodic schedule -----------------------------------------------------------------------------------

def runs_per_day(task_class) -> int:
    start = datetime(2026, 3, 2, tzinfo=UTC).replace(tzinfo=None)
    task = task_class()
    return sum(bool(task.validate_datetime(start + timedelta(minutes=m))) for m in range(24 * 60))


def test_the_periodic_schedule_lists_every_job_at_its_interval(app):
    schedule = tasks.periodic_schedule(app)
    expected = {"mail_retry": 1440, "scan_rescan": 144, "ocr_catchup": 144, "receipts_sweep": 24, "photos_sweep": 24,
                "privacy_retention": 1, "workshop_purge": 1, "audit_verify": 1, "visits_digest": 1,
                "notification_digests": 24}
    assert {name: runs_per_day(task) for name, task in schedule.items()} == expected
    result = app.test_cli_runner().invoke(args=["worker", "--list"])
    assert result.exit_code == 0
    for name in expected:
        assert name in result.output


def test_every_periodic_job_runs_and_is_safe_to_run_twice(app, db, run_jobs):
    with app.app_context():
        for _round in range(2):
            for name in tasks.periodic_schedule(app):
                assert tasks.enqueue(name)
    assert run_jobs() == 2 * len(tasks.PERIODIC)  # a job that raised would fail run_jobs()


# Digest and audit mails ------------------------------------------------------------------------------------

def test_the_digest_goes_once_per_user_and_day_however_often_it_runs(app, db, mails, run_jobs):
    from tests.factories import make_visit

    org = make_org(db)
    case = make_case(db, org)
    make_visit(db, case, visit_date=date.today() - timedelta(days=90), next_visit_date=date.today() - timedelta(days=3))
    first, second = make_user(db, organisation=org), make_user(db, organisation=org, locale="de")
    with app.app_context():
        for _ in range(3):
            tasks.enqueue("visits_digest")
    run_jobs()
    with app.app_context():
        tasks.enqueue("visits_digest")
    run_jobs()
    result = app.test_cli_runner().invoke(args=["visits", "digest"])  # the old command: the same rule
    assert "digests queued 0" in result.output
    assert len(mails.to(first.email)) == 1 and len(mails.to(second.email)) == 1
    assert "1 overdue" in mails.to(first.email)[0]["Subject"]
    # Another day: a new digest.
    result = app.test_cli_runner().invoke(args=["visits", "digest", "--today",
                                                (date.today() + timedelta(days=1)).isoformat()])
    assert "digests queued 2" in result.output


def test_a_broken_audit_chain_mails_the_admins(app, db, mails, run_jobs):
    from tests.helpers import _drop_guard, _write_entries

    admin, admin_de = make_user(db, role="admin"), make_user(db, role="admin", locale="de")
    staff = make_user(db, role="staff")
    with app.app_context():
        tasks.enqueue("audit_verify")
    run_jobs()
    assert mails.messages == []  # intact: nobody is bothered
    _write_entries(app, 3)
    victim = db.exec(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
    _drop_guard(db)
    db.connection().execute(sa.text("UPDATE audit_log SET action = 'forged' WHERE id = :id"), {"id": victim.id})
    db.commit()
    with app.app_context():
        tasks.enqueue("audit_verify")
        tasks.enqueue("audit_verify")  # twice the same day: one mail each
    run_jobs()
    [message] = mails.to(admin.email)
    assert message["Subject"] == "The audit log's hash chain is broken"
    assert f"entry id {victim.id}" in message.get_content()
    assert "Audit" in mails.to(admin_de.email)[0]["Subject"] and len(mails.to(admin_de.email)) == 1
    assert mails.to(staff.email) == []


# /healthz --------------------------------------------------------------------------------------------------

def test_healthz_answers_ok_when_everything_is_up(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200 and resp.get_data(as_text=True) == "ok\n"
    assert resp.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("app_overrides", [{"STORAGE_BACKEND": "s3", "S3_BUCKET": "healthz",
                                            "S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}])
def test_healthz_names_the_storage_when_it_is_down(client, db):
    make_user(db, email="secret.person@example.org", name="Secret Person")
    resp = client.get("/healthz")
    body = resp.get_data(as_text=True)
    assert resp.status_code == 503 and body == "unavailable: storage\n"
    assert "secret" not in body.lower() and "127.0.0.1" not in body


@pytest.mark.parametrize("app_overrides", [{"TASK_QUEUE_URL": f"redis://127.0.0.1:{free_port()}/0"}])
def test_healthz_names_the_queue_when_it_is_down_and_the_request_still_works(client, db, mails):
    resp = client.get("/healthz")
    assert resp.status_code == 503 and resp.get_data(as_text=True) == "unavailable: queue\n"
    # A mail stored while the queue is down is not lost: it waits in the outbox for the retry job.
    user = make_user(db)
    assert client.submit("/reset", {"email": user.email}).status_code == 303
    assert db.exec(select(OutboxMail).where(OutboxMail.to == user.email)).one().sent_at is None


def test_healthz_is_not_rate_limited(client):
    for _ in range(50):
        assert client.get("/healthz").status_code == 200


# The worker command -------------------------------------------------------------------------------------

def test_the_worker_command_sends_what_the_web_app_enqueued(app, db, db_url, tmp_path, mails):
    """`flask --app portal worker` as a process of its own (create_app() once, each job in the app)."""
    import signal
    import subprocess
    import sys

    env = {**os.environ, "DATABASE_URL": db_url, "TASK_QUEUE_URL": app.config["TASK_QUEUE_URL"],
           "SECRET_KEY": "test-secret-key-not-for-production", "MAIL_PORT": str(mails.port),
           "PORTAL_INSTANCE_DIR": str(tmp_path / "instance"), "STORAGE_LOCAL_DIR": str(tmp_path / "files"),
           "BASE_URL": "http://localhost"}
    worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "portal", "worker", "--workers", "1",
                               "--no-periodic"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        with app.app_context():
            mailer.queue(db, "from-worker@example.org", "Hello", "sent by the worker process")
            db.commit()  # enqueues send_mail(id) on the queue file the worker reads
        wait_for(lambda: mails.to("from-worker@example.org"), what="the worker to send the mail")
    finally:
        worker.send_signal(signal.SIGINT)  # graceful: finish the running job, then exit
        output = worker.communicate(timeout=30)[0].decode()
    assert worker.returncode == 0, output
    assert "portal.tasks.send_mail" in output and "Periodic tasks are disabled" in output
