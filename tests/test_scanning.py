"""Malware scanning through clamd: the client, uploads of receipts and visit photos, quarantine, rescan.

The scanner is the real clamd started by scripts/clamd.sh with a local signature for the EICAR test
string (TEST_CLAMD_HOST/TEST_CLAMD_PORT, set by scripts/test.sh). "Scanner unreachable" is a closed
port, a server that never answers, or one that answers nonsense.
"""

from __future__ import annotations

import io
import os
import socket
import threading
from uuid import uuid4

import pytest
import sqlalchemy as sa
from PIL import Image
from sqlmodel import select

from portal import db as dbm
from portal.audit import AuditEntry
from portal.mail import OutboxMail
from portal.receipts.models import Receipt
from portal.scanning.clamd import ClamdClient, Verdict, parse_reply
from portal.storage import get_storage
from portal.visits.models import VisitPhoto
from tests.factories import make_user, make_visit
from tests.fixtures import free_port
from tests.helpers import (
    CLAMD_HOST,
    CLAMD_PORT,
    EICAR,
    clean_pdf,
    eicar_pdf,
    files_of,
    scan_upload,
)

needs_clamd = pytest.mark.skipif(not CLAMD_HOST, reason="TEST_CLAMD_HOST is not set (scripts/clamd.sh start)")

# The EICAR test string, written in two halves so that this file itself is not "infected".
SIGNATURE = "Local.Test.EICAR.UNOFFICIAL"


@pytest.fixture
def w(w, db):
    """The receipts' world (tests/fixtures.py) and an admin who reads German."""
    return {**w, "admin_de": make_user(db, role="admin", locale="de")}


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (uuid4().int % 256, 90, 30)).save(out, "JPEG")
    return out.getvalue()


# The client -----------------------------------------------------------------------------------------

def test_parse_reply_believes_only_ok_and_found():
    assert parse_reply("stream: OK").verdict is Verdict.CLEAN
    found = parse_reply("stream: Win.Test.EICAR_HDB-1 FOUND")
    assert found.verdict is Verdict.INFECTED and found.signature == "Win.Test.EICAR_HDB-1"
    for reply in ("INSTREAM size limit exceeded. ERROR", "stream: Can't allocate memory ERROR", "", "PONG",
                  "stream:  FOUND", "OK"):
        assert parse_reply(reply).verdict is Verdict.UNREACHABLE, reply


class CountingReader(io.BytesIO):
    """Records the largest read, to show the client streams in chunks."""

    largest = 0

    def read(self, size=-1):
        self.largest = max(self.largest, size if size is not None and size >= 0 else 1 << 62)
        return super().read(size)


@needs_clamd
def test_client_finds_eicar_anywhere_and_passes_clean_files():
    scanner = ClamdClient(CLAMD_HOST, CLAMD_PORT, timeout=10, chunk_size=8192)
    assert scanner.ping()
    text = scanner.scan_stream(io.BytesIO(b"notes\n" + EICAR + b"\n"))
    assert text.verdict is Verdict.INFECTED and text.signature == SIGNATURE
    pdf = eicar_pdf()
    assert EICAR in pdf  # a real PDF: the upload tests below show the portal accepts and stores it as it is
    assert scanner.scan_stream(io.BytesIO(pdf)).signature == SIGNATURE
    assert scanner.scan_stream(io.BytesIO(clean_pdf())).verdict is Verdict.CLEAN
    # 3 MB in 8 KB chunks, the signature at the very end: streamed, never read whole.
    big = CountingReader(os.urandom(3 * 1024 * 1024) + EICAR)
    assert scanner.scan_stream(big).verdict is Verdict.INFECTED
    assert big.largest == 8192


def test_closed_port_silent_server_and_nonsense_are_unreachable():
    closed = ClamdClient("127.0.0.1", free_port(), timeout=2).scan_stream(io.BytesIO(b"data"))
    assert closed.verdict is Verdict.UNREACHABLE and not closed.clean and "refused" in closed.detail.lower()

    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(5)
        result = ClamdClient("127.0.0.1", silent.getsockname()[1], timeout=0.5).scan_stream(io.BytesIO(b"x" * 10))
    assert result.verdict is Verdict.UNREACHABLE and "no answer" in result.detail

    with socket.socket() as liar:
        liar.bind(("127.0.0.1", 0))
        liar.listen(1)

        def answer():
            conn, _addr = liar.accept()
            with conn:
                conn.recv(100)
                conn.sendall(b"I am not clamd\0")

        thread = threading.Thread(target=answer)
        thread.start()
        result = ClamdClient("127.0.0.1", liar.getsockname()[1], timeout=2).scan_stream(io.BytesIO(b"x"))
        thread.join()
    assert result.verdict is Verdict.UNREACHABLE and "unexpected reply" in result.detail


# Receipts ---------------------------------------------------------------------------------------------

@pytest.fixture
def app_overrides():
    return {"CLAMD_HOST": CLAMD_HOST or "127.0.0.1", "CLAMD_PORT": CLAMD_PORT, "CLAMD_TIMEOUT": 5.0}


def approve(client, db, receipt_id):
    db.expire_all()
    version = db.get(Receipt, receipt_id).version
    return client.submit(f"/receipts/{receipt_id}/review", {"decision": "approve", "comment": "", "version": version})


def keys(app, prefix) -> set[str]:
    with app.app_context():
        return set(get_storage().keys(prefix))


@needs_clamd
def test_infected_receipt_file_is_quarantined_audited_and_refused(app, client, db, w, mails, run_jobs):
    client.login(w["partner"])
    resp = scan_upload(client, w, [(io.BytesIO(clean_pdf()), "invoice.pdf")],
                  handover=[(io.BytesIO(eicar_pdf()), "handover.pdf")])
    assert resp.status_code == 303
    receipt_id = int(resp.location.rsplit("/", 1)[-1])
    # The upload answers before the scan: both files are being checked, and the list asks for itself again.
    page = client.get(resp.location).get_data(as_text=True)
    assert "Files are being checked for viruses" in page and page.count("Pending virus scan") == 2
    assert f'hx-get="/receipts/{receipt_id}/files-list" hx-trigger="every 3s"' in page
    assert {r.scan_status for r in files_of(db, receipt_id).values()} == {"pending"}
    assert mails.messages == []
    run_jobs()  # the worker scans them
    part = client.get(f"/receipts/{receipt_id}/files-list", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Refused: malware found" in part and "Virus scan: clean" in part
    assert "hx-trigger" not in part  # nothing pending: the polling stops

    rows = files_of(db, receipt_id)
    bad, good = rows["handover.pdf"], rows["invoice.pdf"]
    assert db.get(Receipt, receipt_id).status == "submitted"  # the receipt and its clean file are kept
    assert good.scan_status == "clean" and good.scanned_at is not None
    assert bad.scan_status == "infected" and bad.scan_signature == SIGNATURE
    assert bad.key == f"quarantine/receipts/{w['case'].id}/" + bad.key.rsplit("/", 1)[-1]
    assert keys(app, "quarantine/") == {bad.key}
    assert keys(app, "receipts/") == {good.key}  # the readable copy is gone
    with app.app_context(), get_storage().open(bad.key) as fh:
        assert EICAR in fh.read()  # kept for the investigation, under quarantine/ only

    for url in (f"/receipts/{receipt_id}/files/{bad.id}", f"/receipts/{receipt_id}/files/{bad.id}/preview"):
        refused = client.get(url)
        assert refused.status_code == 409 and "malware" in refused.get_data(as_text=True)
    with client.get(f"/receipts/{receipt_id}/files/{good.id}") as download:
        assert download.status_code == 200

    entries = db.exec(select(AuditEntry).where(AuditEntry.object_type == "ReceiptFile",
                                               AuditEntry.object_id == str(bad.id)).order_by(AuditEntry.id)).all()
    assert [e.action for e in entries] == ["file.infected", "file.quarantined"]
    assert entries[0].after["signature"] == SIGNATURE and entries[0].actor_id is None  # found by the worker
    assert entries[1].after["key"] == bad.key and entries[1].after["readable_copy_removed"]

    staff_mail = mails.to(w["staff"].email)
    assert len(staff_mail) == 1 and "Malware found in an uploaded file (receipt" in staff_mail[0]["Subject"]
    assert "handover.pdf" in staff_mail[0].get_content() and SIGNATURE in staff_mail[0].get_content()
    assert "Schadsoftware" in mails.to(w["admin_de"].email)[0]["Subject"]  # each in their own language

    client.submit("/logout")
    client.login(w["staff"])
    resp = approve(client, db, receipt_id)
    assert resp.status_code == 422 and "handover.pdf" in resp.get_data(as_text=True)
    assert db.get(Receipt, receipt_id).status == "submitted"

    # The same infected file again is scanned and refused again (not "already in the portal").
    client.submit("/logout")
    client.login(w["partner"])
    again = client.submit(f"/receipts/{receipt_id}/files",
                          {"kind": "handover", "files": [(io.BytesIO(eicar_pdf()), "second.pdf")]},
                          content_type="multipart/form-data")
    assert again.status_code == 303
    run_jobs()
    assert "Refused: malware found" in client.get(again.location).get_data(as_text=True)
    assert files_of(db, receipt_id)["second.pdf"].scan_status == "infected"


@needs_clamd
@pytest.mark.s3
def test_quarantine_on_a_real_s3_server(app_config_s3, client, db, w, run_jobs):
    app = app_config_s3
    client.login(w["partner"])
    resp = scan_upload(client, w, [(io.BytesIO(clean_pdf()), "invoice.pdf"), (io.BytesIO(eicar_pdf()), "bad.pdf")])
    assert resp.status_code == 303
    run_jobs()
    rows = files_of(db, int(resp.location.rsplit("/", 1)[-1]))
    assert rows["invoice.pdf"].scan_status == "clean"  # read back from the bucket and scanned as a stream
    bad = rows["bad.pdf"]
    assert bad.scan_status == "infected" and bad.key.startswith("quarantine/receipts/")
    assert keys(app, "quarantine/") == {bad.key} and keys(app, "receipts/") == {rows["invoice.pdf"].key}
    with app.app_context(), get_storage().open(bad.key) as fh:
        assert EICAR in fh.read()


@needs_clamd
def test_unreachable_scanner_leaves_files_pending_until_rescan(app, client, db, w, mails, run_jobs):
    app.config["CLAMD_PORT"] = free_port()  # nothing listens: clamd is down
    client.login(w["partner"])
    resp = scan_upload(client, w, [(io.BytesIO(clean_pdf()), "invoice.pdf")],
                  handover=[(io.BytesIO(eicar_pdf()), "handover.pdf")])
    assert resp.status_code == 303  # the upload is acknowledged
    receipt_id = int(resp.location.rsplit("/", 1)[-1])
    run_jobs()  # the scan jobs find clamd down: the files stay pending (the rescan job takes them later)
    page = client.get(resp.location).get_data(as_text=True)
    assert "Files are being checked for viruses" in page and "Pending virus scan" in page
    rows = files_of(db, receipt_id)
    assert {r.scan_status for r in rows.values()} == {"pending"}  # never clean
    invoice = rows["invoice.pdf"]
    for url in (f"/receipts/{receipt_id}/files/{invoice.id}", f"/receipts/{receipt_id}/files/{invoice.id}/preview"):
        refused = client.get(url)
        assert refused.status_code == 409 and "not been checked for viruses yet" in refused.get_data(as_text=True)

    client.submit("/logout")
    client.login(w["staff"])
    resp = approve(client, db, receipt_id)
    assert resp.status_code == 422 and "is waiting for its virus scan" in resp.get_data(as_text=True)

    runner = app.test_cli_runner()
    still_down = runner.invoke(args=["scanning", "rescan"])
    assert still_down.exit_code == 1
    assert "scanned 0 files: 0 clean, 0 infected (quarantined); 2 still pending" in still_down.output

    app.config["CLAMD_PORT"] = CLAMD_PORT  # clamd is back
    back = runner.invoke(args=["scanning", "rescan"])
    assert back.exit_code == 0, back.output
    assert "scanned 2 files: 1 clean, 1 infected (quarantined); 0 still pending" in back.output
    rows = files_of(db, receipt_id)
    assert rows["invoice.pdf"].scan_status == "clean" and rows["handover.pdf"].scan_status == "infected"
    assert rows["handover.pdf"].key.startswith("quarantine/")
    # Found by the timer, not during a request: the mail still names the receipt and links to it.
    run_jobs()
    staff_mail = mails.to(w["staff"].email)
    assert len(staff_mail) == 1 and f"http://localhost/receipts/{receipt_id}" in staff_mail[0].get_content()
    audit = db.exec(select(AuditEntry).where(AuditEntry.action == "file.infected")).one()
    assert audit.actor_id is None and audit.object_id == str(rows["handover.pdf"].id)

    with client.get(f"/receipts/{receipt_id}/files/{invoice.id}") as download:
        assert download.status_code == 200
    resp = approve(client, db, receipt_id)
    assert resp.status_code == 422 and "refused as infected" in resp.get_data(as_text=True)
    assert runner.invoke(args=["scanning", "rescan"]).output.startswith("scanned 0 files")  # nothing waits


def test_without_a_scanner_files_are_unscanned_and_behave_as_before(app, client, db, w, mails):
    app.config["CLAMD_HOST"] = ""
    client.login(w["partner"])
    resp = scan_upload(client, w, [(io.BytesIO(clean_pdf()), "invoice.pdf")])
    assert resp.status_code == 303
    receipt_id = int(resp.location.rsplit("/", 1)[-1])
    page = client.get(resp.location).get_data(as_text=True)
    assert "virus" not in page.lower()
    row = files_of(db, receipt_id)["invoice.pdf"]
    assert row.scan_status == "unscanned" and row.scanned_at is None
    with client.get(f"/receipts/{receipt_id}/files/{row.id}") as download:
        assert download.status_code == 200
    client.submit("/logout")
    client.login(w["staff"])
    assert approve(client, db, receipt_id).status_code == 303
    assert db.get(Receipt, receipt_id).status == "approved"
    result = app.test_cli_runner().invoke(args=["scanning", "rescan"])
    assert result.exit_code == 2 and "not configured" in result.output

    # Scanning switched on later: the old unscanned file waits for the rescan like a pending one.
    app.config["CLAMD_HOST"] = "127.0.0.1"
    app.config["CLAMD_PORT"] = free_port()
    assert client.get(f"/receipts/{receipt_id}/files/{row.id}").status_code == 409
    assert "Pending virus scan" in client.get(f"/receipts/{receipt_id}").get_data(as_text=True)


# Visit photos -------------------------------------------------------------------------------------------

def add_photo(client, visit, data: bytes, name="pump.jpg"):
    return client.submit(f"/visits/{visit.id}/photos", {"photo": (io.BytesIO(data), name), "consent": "y"},
                         content_type="multipart/form-data")


@needs_clamd
def test_visit_photos_are_scanned(app, client, db, w, monkeypatch, run_jobs):
    visit = make_visit(db, w["case"], created_by_id=w["partner"].id)
    client.login(w["partner"])
    assert add_photo(client, visit, jpeg(), "clean.jpg").status_code == 303
    run_jobs()
    clean = db.exec(select(VisitPhoto).where(VisitPhoto.original_filename == "clean.jpg")).one()
    assert clean.scan_status == "clean"
    with client.get(f"/visits/{visit.id}/photos/{clean.id}") as download:
        assert download.status_code == 200

    app.config["CLAMD_PORT"] = free_port()
    resp = add_photo(client, visit, jpeg(), "later.jpg")
    assert resp.status_code == 303
    run_jobs()
    page = client.get(resp.location).get_data(as_text=True)
    assert "Pending virus scan" in page and f'hx-get="/visits/{visit.id}/photos-list" hx-trigger="every 3s"' in page
    later = db.exec(select(VisitPhoto).where(VisitPhoto.original_filename == "later.jpg")).one()
    assert later.scan_status == "pending"
    assert client.get(f"/visits/{visit.id}/photos/{later.id}").status_code == 409
    app.config["CLAMD_PORT"] = CLAMD_PORT

    # Re-encoding removes anything hidden in a photo; to reach the scanner on this path, the cleaner is made
    # to let the test string through, as a flaw in an image library might.
    import portal.uploads.files as files

    real = files.clean_upload

    def leaky(filename, stream):
        from portal.storage import Digest

        cleaned = real(filename, stream)
        cleaned.data = io.BytesIO(cleaned.data.read() + EICAR)
        digest = Digest.of_stream(cleaned.data)  # the cleaner hashes what it hands on, as the real one does
        cleaned.size, cleaned.sha256, cleaned.md5 = digest.size, digest.sha256, digest.md5_base64
        return cleaned

    monkeypatch.setattr(files, "clean_upload", leaky)
    resp = add_photo(client, visit, jpeg(), "bad.jpg")
    assert resp.status_code == 303  # stored and confirmed; the scan follows on the queue
    run_jobs()
    assert "Refused: malware found" in client.get(resp.location).get_data(as_text=True)
    db.expire_all()
    bad = db.exec(select(VisitPhoto).where(VisitPhoto.original_filename == "bad.jpg")).one()
    assert bad.scan_status == "infected" and bad.key.startswith("quarantine/visits/")
    assert client.get(f"/visits/{visit.id}/photos/{bad.id}").status_code == 409
    # the readable copy is gone (keys are random hex: look for the photo's own key, not for "bad" in any key)
    assert bad.key in keys(app, "quarantine/") and bad.key.removeprefix("quarantine/") not in keys(app, "visits/")
    assert db.exec(select(AuditEntry).where(AuditEntry.object_type == "VisitPhoto",
                                            AuditEntry.action == "file.infected")).one().object_id == str(bad.id)
    assert db.exec(select(OutboxMail).where(OutboxMail.to == w["staff"].email)).one()

    result = app.test_cli_runner().invoke(args=["scanning", "rescan"])
    assert "scanned 1 files: 1 clean" in result.output  # later.jpg
    db.expire_all()
    assert db.get(VisitPhoto, later.id).scan_status == "clean"


# Migration ------------------------------------------------------------------------------------------------

def test_files_stored_before_scanning_become_unscanned(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    dbm.upgrade(url, "0009")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO receipt_files (receipt_id, kind, key, size, sha256, original_sha256, content_type, "
            "original_filename, metadata_removed, confirmed, created_at) VALUES (1, 'receipt', 'receipts/1/a', 3, "
            "'s', 'o', 'application/pdf', 'a.pdf', 1, 1, '2024-01-01 00:00:00')"))
        conn.execute(sa.text(
            "INSERT INTO visit_photos (visit_id, key, size, sha256, content_type, original_filename, consent, "
            "confirmed, created_at) VALUES (1, 'visits/1/b', 3, 's', 'image/jpeg', 'b.jpg', 1, 1, "
            "'2024-01-01 00:00:00')"))
    dbm.upgrade(url)
    with engine.connect() as conn:
        for table in ("receipt_files", "visit_photos"):
            assert conn.execute(sa.text(f"SELECT scan_status, scanned_at FROM {table}")).one() == ("unscanned", None)  # noqa: S608
    engine.dispose()
