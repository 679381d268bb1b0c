"""Resumable uploads (tus 1.0): the protocol, the checks on every completed upload, claiming by the receipt,
add-files and photo forms, expiry and the sweep; with the real `tuspy` client on local disk and Ceph S3."""

from __future__ import annotations

import io
import os
import re
import socket
import threading
import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import requests
from PIL import Image
from sqlmodel import Session, select
from werkzeug.serving import make_server

from portal.clock import utcnow
from portal.receipts.models import Receipt, ReceiptFile
from portal.storage import get_storage
from portal.uploads import services
from portal.uploads.models import Upload
from portal.visits.models import VisitPhoto
from tests.factories import big_pdf, make_case, make_org, make_user, make_visit
from tests.helpers import create, fields, jpeg_with_gps, metadata, patch, raw_pdf, tus_headers, unique_pdf, upload_file

S3_URL = os.environ.get("S3_ENDPOINT_URL", "")


@pytest.fixture
def w(w, db):
    """The receipts' world (tests/fixtures.py), a colleague of the partner and another organisation."""
    other_org = make_org(db, country="SN")
    return {**w, "colleague": make_user(db, organisation=w["org"]),
            "other_case": make_case(db, other_org, country="SN"), "outsider": make_user(db, organisation=other_org)}


def noisy_jpeg(size=(400, 300)) -> bytes:
    img = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=95)
    return out.getvalue()


def head(client, url):
    return client.open(url, method="HEAD", headers=tus_headers(client))


def card(client, token):
    return client.get(f"/uploads/{token}/card")


def row_of(db: Session, token: str) -> Upload:
    db.expire_all()
    return db.exec(select(Upload).where(Upload.token == token)).one()


def keys(app, prefix: str) -> set[str]:
    with app.app_context():
        return set(get_storage().keys(prefix))


# The protocol ------------------------------------------------------------------------------------

def test_options_names_the_version_extensions_and_limit(client):
    resp = client.options("/uploads/")
    assert resp.status_code == 204
    assert resp.headers["Tus-Resumable"] == "1.0.0"
    assert resp.headers["Tus-Version"] == "1.0.0"
    assert resp.headers["Tus-Extension"] == "creation,termination,expiration"
    assert resp.headers["Tus-Max-Size"] == str(20 * 1024 * 1024)


def test_create_head_patch_and_a_wrong_offset(app, client, db, w):
    client.login(w["partner"])
    data = unique_pdf()
    resp = create(client, w["case"].id, len(data))
    assert resp.status_code == 201
    url = resp.headers["Location"]
    assert re.fullmatch(r"/uploads/[A-Za-z0-9_-]{32}", url)
    assert resp.headers["Tus-Resumable"] == "1.0.0"
    assert resp.headers["Upload-Expires"].endswith(" GMT")
    resp = head(client, url)
    assert resp.status_code == 200
    assert (resp.headers["Upload-Offset"], resp.headers["Upload-Length"]) == ("0", str(len(data)))
    assert resp.headers["Cache-Control"] == "no-store"

    assert patch(client, url, data[:100], 0).headers["Upload-Offset"] == "100"
    resp = patch(client, url, data[100:200], 50)  # not where the server is
    assert resp.status_code == 409
    assert head(client, url).headers["Upload-Offset"] == "100"
    resp = patch(client, url, data[100:], 100)
    assert (resp.status_code, resp.headers["Upload-Offset"]) == (204, str(len(data)))

    token = url.rsplit("/", 1)[-1]
    row = row_of(db, token)
    assert (row.status, row.size, row.pieces) == ("ready", len(data), [])
    assert row.key.startswith(f"receipts/{w['case'].id}/")
    assert keys(app, "tus/") == set()  # the pieces are gone once the checked file is stored
    html = card(client, token).get_data(as_text=True)
    assert f'data-upload-id="{token}"' in html
    assert f'<input type="hidden" name="uploads" value="{token}">' in html
    assert "<bdi>invoice.pdf</bdi>" in html
    assert "data-upload-remove" in html


def test_oversize_declared_length_is_refused_at_creation(client, w):
    client.login(w["partner"])
    resp = create(client, w["case"].id, 20 * 1024 * 1024 + 1)
    assert resp.status_code == 413
    assert resp.headers["Tus-Resumable"] == "1.0.0"
    assert "Location" not in resp.headers


def test_bytes_beyond_the_declared_length_are_refused_before_storing(app, client, db, w):
    client.login(w["partner"])
    url = create(client, w["case"].id, 10).headers["Location"]
    resp = patch(client, url, b"%PDF-" + b"x" * 20, 0)
    assert resp.status_code == 413
    assert head(client, url).headers["Upload-Offset"] == "0"
    assert keys(app, "tus/") == set()


def test_delete_removes_the_pieces_and_the_upload(app, client, db, w):
    client.login(w["partner"])
    url = create(client, w["case"].id, 1000).headers["Location"]
    patch(client, url, b"%PDF-1.4\n" + b"0" * 100, 0)
    assert len(keys(app, "tus/")) == 1
    resp = client.delete(url, headers=tus_headers(client))
    assert resp.status_code == 204
    assert head(client, url).status_code == 404
    assert keys(app, "tus/") == set()
    assert db.exec(select(Upload)).all() == []


def test_a_ready_upload_deleted_leaves_no_file(app, client, w):
    client.login(w["partner"])
    token = upload_file(client, w["case"].id, unique_pdf())
    assert len(keys(app, "receipts/")) == 1
    assert client.delete(f"/uploads/{token}", headers=tus_headers(client)).status_code == 204
    assert keys(app, "receipts/") == set()


def test_another_users_upload_is_not_found(app, client, db, w):
    client.login(w["partner"])
    url = create(client, w["case"].id, 100).headers["Location"]
    token = url.rsplit("/", 1)[-1]
    client.submit("/logout")
    client._csrf = None
    client.login(w["colleague"])  # same organisation, same case: still not theirs
    assert head(client, url).status_code == 404
    assert patch(client, url, b"%PDF-", 0).status_code == 404
    assert client.delete(url, headers=tus_headers(client)).status_code == 404
    assert card(client, token).status_code == 404
    assert row_of(db, token).offset == 0


def test_another_orgs_case_cannot_take_an_upload(client, db, w):
    client.login(w["partner"])
    assert create(client, w["other_case"].id, 100).status_code == 404
    assert create(client, 999_999, 100).status_code == 404
    assert create(client, 2**31, 100).status_code == 404  # beyond the id columns: not found, not a 500
    assert create(client, "9" * 25, 100, receipt="9" * 25).status_code == 404
    assert db.exec(select(Upload)).all() == []


def test_creation_needs_a_known_purpose_and_the_csrf_header(client, w):
    client.login(w["partner"])
    assert create(client, w["case"].id, 100, purpose="avatar").status_code == 400
    resp = client.post("/uploads/", headers={"Tus-Resumable": "1.0.0", "Upload-Length": "10",
                                             "Upload-Metadata": metadata(purpose="receipt", case=w["case"].id)})
    assert resp.status_code == 400  # no CSRF token


def test_expired_uploads_are_gone_and_swept(app, client, db, w):
    client.login(w["partner"])
    ready = upload_file(client, w["case"].id, unique_pdf())
    half = create(client, w["case"].id, 1000).headers["Location"]
    patch(client, half, b"%PDF-1.4\n" + b"0" * 100, 0)
    assert keys(app, "receipts/") and keys(app, "tus/")
    for token in (ready, half.rsplit("/", 1)[-1]):
        row = row_of(db, token)
        row.expires_at = utcnow() - timedelta(seconds=1)
        db.add(row)
        db.commit()
    assert head(client, half).status_code == 404
    assert card(client, ready).status_code == 404
    result = app.test_cli_runner().invoke(args=["uploads", "sweep"])
    assert result.exit_code == 0, result.output
    assert "removed 2 expired uploads" in result.output
    assert keys(app, "receipts/") == set() and keys(app, "tus/") == set()
    assert db.exec(select(Upload)).all() == []


def test_the_receipts_sweep_keeps_a_ready_upload_waiting_for_its_form(app, client, w):
    client.login(w["partner"])
    upload_file(client, w["case"].id, unique_pdf())
    photo = upload_file(client, w["case"].id, noisy_jpeg(), "photo.jpg", "photo")
    stored = keys(app, "receipts/") | keys(app, "visits/")
    assert len(stored) == 2
    result = app.test_cli_runner().invoke(args=["receipts", "sweep", "--minutes", "0"])
    assert result.exit_code == 0, result.output
    result = app.test_cli_runner().invoke(args=["visits", "sweep-photos"])
    assert result.exit_code == 0, result.output
    assert keys(app, "receipts/") | keys(app, "visits/") == stored
    assert card(client, photo).status_code == 200


# The checks on every completed upload ------------------------------------------------------------

@pytest.mark.parametrize(("name", "data"), [
    ("invoice.pdf", raw_pdf("/OpenAction << /S /JavaScript /JS (app.alert\\(1\\)) >>")),
    ("photo.jpg", b"just some text, renamed\n" * 10),
])
def test_a_bad_completed_file_is_refused_and_nothing_is_stored(app, client, db, w, name, data):
    client.login(w["partner"])
    token = upload_file(client, w["case"].id, data, name)
    row = row_of(db, token)
    assert (row.status, row.key) == ("refused", None)
    assert keys(app, "receipts/") == set() and keys(app, "tus/") == set()
    html = card(client, token).get_data(as_text=True)
    assert 'name="uploads"' not in html
    expected = "scripts, actions or attached files" if name.endswith(".pdf") else "must be a PDF, JPG"
    assert expected in html


def test_a_refusal_is_shown_in_the_readers_language(client, db, w):
    w["partner"].locale = "de"
    db.add(w["partner"])
    db.commit()
    client.login(w["partner"])
    token = upload_file(client, w["case"].id, b"just some text, renamed\n" * 10, "photo.jpg")
    html = card(client, token).get_data(as_text=True)
    assert "Die ausgewählte Datei muss eine PDF-" in html and "must be a PDF" not in html


def test_a_photo_upload_must_be_a_photo(client, db, w):
    client.login(w["partner"])
    token = upload_file(client, w["case"].id, unique_pdf(), "scan.pdf", "photo")
    assert row_of(db, token).status == "refused"
    assert "JPG, PNG or WebP photo" in card(client, token).get_data(as_text=True)


def test_an_image_is_cleaned_of_its_location_before_it_is_kept(app, client, db, w):
    client.login(w["partner"])
    token = upload_file(client, w["case"].id, jpeg_with_gps(), "photo.jpg", piece=300)
    row = row_of(db, token)
    assert (row.status, row.metadata_removed, row.content_type) == ("ready", True, "image/jpeg")
    with app.app_context(), get_storage().open(row.key) as fh:
        kept = fh.read()
    assert b"PhoneMaker" not in kept and row.original_sha256 != row.sha256


def test_two_patches_at_the_same_offset_one_wins_and_the_other_leaves_nothing(app, client, db, w):
    client.login(w["partner"])
    token = create(client, w["case"].id, 1000).headers["Location"].rsplit("/", 1)[-1]
    first, second = row_of(db, token), None
    with Session(app.extensions["db_engine"], expire_on_commit=False) as other:
        second = other.exec(select(Upload).where(Upload.token == token)).one()  # loaded at offset 0 too
        with app.test_request_context():
            storage = get_storage()
            assert services.append(db, storage, first, 0, io.BytesIO(b"%PDF-" + b"a" * 95), 100) == 100
            with pytest.raises(services.UploadProblem) as lost:
                services.append(other, storage, second, 0, io.BytesIO(b"%PDF-" + b"b" * 95), 100)
    assert lost.value.status == 409
    row = row_of(db, token)
    assert row.offset == 100 and keys(app, "tus/") == set(row.pieces)


def test_a_dropped_connection_keeps_the_bytes_that_arrived(app, client, db, w, served):
    """A real socket cut mid-body: the server keeps what it got, and HEAD says where to go on."""
    session = served.login(w["partner"])
    data = big_pdf(60_000)
    resp = session.post(served.url + "/uploads/", headers={
        "Tus-Resumable": "1.0.0", "Upload-Length": str(len(data)),
        "Upload-Metadata": metadata(filename="scan.pdf", purpose="receipt", case=w["case"].id)})
    url = served.url + resp.headers["Location"]
    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    path = urlsplit(url).path
    request_head = (f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n"
                    f"X-CSRFToken: {session.headers['X-CSRFToken']}\r\nTus-Resumable: 1.0.0\r\n"
                    f"Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.sendall(request_head + data[:30_000])
        time.sleep(0.3)
    offset = None
    for _ in range(50):
        offset = int(session.head(url, headers={"Tus-Resumable": "1.0.0"}).headers["Upload-Offset"])
        if offset:
            break
        time.sleep(0.1)
    assert offset == 30_000
    resp = session.patch(url, data=data[offset:], headers={
        "Tus-Resumable": "1.0.0", "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"})
    assert resp.status_code == 204
    assert row_of(db, url.rsplit("/", 1)[-1]).status == "ready"


# Claiming by the forms ---------------------------------------------------------------------------

def receipt_form(client, w, tokens, files=None, **kw):
    data = fields(w, **kw)
    data["uploads"] = tokens
    if files:
        data["files"] = files
    return client.submit(f"/cases/{w['case'].id}/receipts/new", data, content_type="multipart/form-data")


def test_a_receipt_made_from_uploads_adopts_their_files(app, client, db, w):
    client.login(w["partner"])
    pdf = upload_file(client, w["case"].id, unique_pdf())
    proof = upload_file(client, w["case"].id, noisy_jpeg(), "handover.jpg", "handover")
    stored = keys(app, "receipts/")
    resp = receipt_form(client, w, [pdf, proof])
    assert resp.status_code == 303, resp.get_data(as_text=True)[:3000]
    receipt_id = int(resp.location.rsplit("/", 1)[-1])
    files = db.exec(select(ReceiptFile).where(ReceiptFile.receipt_id == receipt_id).order_by(ReceiptFile.id)).all()
    assert [(f.kind, f.original_filename, f.confirmed) for f in files] == [
        ("receipt", "invoice.pdf", True), ("handover", "handover.jpg", True)]
    assert {f.key for f in files} == stored == keys(app, "receipts/")  # no second copy
    assert all(row_of(db, t).claimed_receipt_id == receipt_id for t in (pdf, proof))
    with client.get(f"/receipts/{receipt_id}/files/{files[0].id}") as download:
        assert download.status_code == 200 and download.data.startswith(b"%PDF-")
    # Claimed: gone from the user's uploads, and a second form cannot use it again.
    assert card(client, pdf).status_code == 404
    resp = receipt_form(client, w, [pdf])
    assert resp.status_code == 422
    assert "no longer available" in resp.get_data(as_text=True)
    assert db.exec(select(Receipt).where(Receipt.status == "submitted")).all().__len__() == 1


def test_a_form_error_keeps_the_uploaded_files_listed(client, db, w):
    client.login(w["partner"])
    pdf = upload_file(client, w["case"].id, unique_pdf())
    proof = upload_file(client, w["case"].id, noisy_jpeg(), "proof.jpg", "handover")
    resp = receipt_form(client, w, [pdf, proof], supplier="", amount="12O.00")
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert html.count('class="upload-card"') == 2
    assert f'<input type="hidden" name="uploads" value="{pdf}">' in html
    assert f'<input type="hidden" name="uploads" value="{proof}">' in html
    assert html.count("data-upload-remove") == 2
    assert row_of(db, pdf).claimed_at is None
    # Corrected and sent again with the same tokens: saved.
    resp = receipt_form(client, w, [pdf, proof])
    assert resp.status_code == 303


def test_the_same_file_twice_is_refused_by_the_duplicate_check(client, w):
    client.login(w["partner"])
    data = unique_pdf()
    first = upload_file(client, w["case"].id, data)
    assert receipt_form(client, w, [first]).status_code == 303
    again = upload_file(client, w["case"].id, data, "again.pdf")
    resp = receipt_form(client, w, [again])
    assert resp.status_code == 422
    assert "already in the portal" in resp.get_data(as_text=True)


def test_another_users_token_in_the_form_is_not_used(app, client, db, w):
    client.login(w["colleague"])
    theirs = upload_file(client, w["case"].id, unique_pdf())
    client.submit("/logout")
    client._csrf = None
    client.login(w["partner"])
    resp = receipt_form(client, w, [theirs])
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert "no longer available" in html and theirs not in html
    assert row_of(db, theirs).claimed_at is None
    assert db.exec(select(ReceiptFile)).all() == []


def test_the_plain_multipart_form_still_works_beside_uploads(client, db, w):
    client.login(w["partner"])
    proof = upload_file(client, w["case"].id, noisy_jpeg(), "proof.jpg", "handover")
    resp = receipt_form(client, w, [proof], files=[(io.BytesIO(unique_pdf()), "invoice.pdf")])
    assert resp.status_code == 303, resp.get_data(as_text=True)[:2000]
    assert sorted(f.kind for f in db.exec(select(ReceiptFile)).all()) == ["handover", "receipt"]


def test_a_receipt_needs_a_receipt_file_from_either_path(client, w):
    client.login(w["partner"])
    proof = upload_file(client, w["case"].id, noisy_jpeg(), "proof.jpg", "handover")
    resp = receipt_form(client, w, [proof])
    assert resp.status_code == 422
    assert "Select at least one file of the receipt" in resp.get_data(as_text=True)


def test_files_added_to_a_receipt_from_uploads(client, db, w):
    client.login(w["partner"])
    receipt_id = int(receipt_form(client, w, [upload_file(client, w["case"].id, unique_pdf())])
                     .location.rsplit("/", 1)[-1])
    page = client.get(f"/receipts/{receipt_id}").get_data(as_text=True)
    assert 'data-purpose-select="kind"' in page and f'data-receipt="{receipt_id}"' in page
    proof = upload_file(client, w["case"].id, noisy_jpeg(), "proof.jpg", "handover", receipt=receipt_id)
    resp = client.submit(f"/receipts/{receipt_id}/files", {"kind": "receipt", "uploads": [proof]},
                         content_type="multipart/form-data")
    assert resp.status_code == 303, resp.get_data(as_text=True)[:2000]
    kinds = [f.kind for f in db.exec(select(ReceiptFile).where(ReceiptFile.receipt_id == receipt_id)
                                     .order_by(ReceiptFile.id))]
    assert kinds == ["receipt", "handover"]


def test_visit_photos_from_uploads(app, client, db, w):
    visit = make_visit(db, w["case"])
    client.login(w["partner"])
    page = client.get(f"/visits/{visit.id}").get_data(as_text=True)
    assert 'data-purpose="photo"' in page
    photo = upload_file(client, w["case"].id, noisy_jpeg(), "garden.jpg", "photo", visit=visit.id)
    resp = client.submit(f"/visits/{visit.id}/photos", {"uploads": [photo]}, content_type="multipart/form-data")
    assert resp.status_code == 422  # no consent: the photo stays listed
    assert f'value="{photo}"' in resp.get_data(as_text=True)
    resp = client.submit(f"/visits/{visit.id}/photos", {"uploads": [photo], "consent": "y"},
                         content_type="multipart/form-data")
    assert resp.status_code == 303, resp.get_data(as_text=True)[:2000]
    item = db.exec(select(VisitPhoto).where(VisitPhoto.visit_id == visit.id)).one()
    assert (item.original_filename, item.confirmed, item.key) == ("garden.jpg", True, row_of(db, photo).key)
    assert item.key.startswith(f"visits/{w['case'].id}/")
    with client.get(f"/visits/{visit.id}/photos/{item.id}") as download:
        assert download.status_code == 200 and download.data.startswith(b"\xff\xd8\xff")


# The real client: tuspy, on both storage backends ------------------------------------------------

class Served:
    def __init__(self, app, port):
        self.app, self.port, self.url = app, port, f"http://127.0.0.1:{port}"
        self.patch_bytes = 0

    def login(self, user) -> requests.Session:
        session = requests.Session()
        page = session.get(self.url + "/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        resp = session.post(self.url + "/login", data={"csrf_token": token, "email": user.email,
                                                       "password": "a long test password 2025"},
                            allow_redirects=False)
        assert resp.status_code == 303
        page = session.get(self.url + "/cases/").text
        session.headers["X-CSRFToken"] = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
        return session


@pytest.fixture
def served(app):
    """The test's app on a real HTTP server, counting the body bytes of every PATCH it receives."""
    inner = app.wsgi_app
    counter = {"bytes": 0}

    def counting(environ, start_response):
        if environ["REQUEST_METHOD"] == "PATCH":
            counter["bytes"] += int(environ.get("CONTENT_LENGTH") or 0)
        return inner(environ, start_response)

    app.wsgi_app = counting
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    result = Served(app, server.server_port)
    result.counter = counter
    yield result
    server.shutdown()
    thread.join(10)
    server.server_close()


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def backend(request, app):
    if request.param == "s3":
        request.getfixturevalue("app_config_s3")
    return request.param


def tus_client(served, session):
    from tusclient import client as tus

    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    return tus.TusClient(served.url + "/uploads/", headers={"Cookie": cookie,
                                                           "X-CSRFToken": session.headers["X-CSRFToken"]})


@pytest.mark.parametrize("kind", ["jpeg", "pdf"])
def test_tuspy_uploads_and_resumes_from_the_last_byte(backend, served, db, w, kind):
    session = served.login(w["partner"])
    data = noisy_jpeg((500, 400)) if kind == "jpeg" else big_pdf(150_000)
    name = "photo.jpg" if kind == "jpeg" else "scan.pdf"
    meta = {"filename": name, "filetype": "", "purpose": "receipt", "case": str(w["case"].id)}
    chunk = 16 * 1024
    first = tus_client(served, session).uploader(file_stream=io.BytesIO(data), chunk_size=chunk, metadata=meta)
    half = (len(data) // 2 // chunk) * chunk
    first.upload(stop_at=half)  # then the link drops: the client is gone, only its URL is kept
    url = first.url
    assert served.counter["bytes"] == half
    # A new client (a reload, another day) from the stored URL: asks the offset, sends only the rest.
    second = tus_client(served, session).uploader(file_stream=io.BytesIO(data), chunk_size=chunk, url=url)
    assert second.offset == half
    second.upload()
    assert served.counter["bytes"] == len(data)  # not one byte sent twice
    token = url.rsplit("/", 1)[-1]
    row = row_of(db, token)
    assert row.status == "ready", row.problem
    html = session.get(f"{served.url}/uploads/{token}/card").text
    assert f'value="{token}"' in html
    with served.app.app_context():
        storage = get_storage()
        assert list(storage.keys("tus/")) == []
        with storage.open(row.key) as fh:
            kept = fh.read()
    if kind == "pdf":
        assert kept == data
    else:
        assert kept.startswith(b"\xff\xd8\xff") and row.sha256 != row.original_sha256
    # The form claims it; the file is then the receipt's, downloadable.
    form = fields(w)
    form.update({"uploads": token, "csrf_token": session.headers["X-CSRFToken"]})
    resp = session.post(f"{served.url}/cases/{w['case'].id}/receipts/new", data=form, allow_redirects=False)
    assert resp.status_code == 303, resp.text[:2000]
    receipt_id = int(resp.headers["Location"].rsplit("/", 1)[-1])
    db.expire_all()
    file_row = db.exec(select(ReceiptFile).where(ReceiptFile.receipt_id == receipt_id)).one()
    download = session.get(f"{served.url}/receipts/{receipt_id}/files/{file_row.id}", allow_redirects=True)
    assert download.status_code == 200 and download.content == kept


# The malware scan applies to uploaded files as to plain ones ---------------------------------------

def _clamd_overrides():
    from tests.helpers import CLAMD_HOST, CLAMD_PORT

    return {"CLAMD_HOST": CLAMD_HOST or "127.0.0.1", "CLAMD_PORT": CLAMD_PORT, "CLAMD_TIMEOUT": 5.0}


@pytest.mark.parametrize("app_overrides", [_clamd_overrides()])
def test_an_infected_upload_is_quarantined_when_its_receipt_is_saved(app, client, db, w, app_overrides, run_jobs):
    from tests.helpers import CLAMD_HOST, EICAR, clean_pdf, eicar_pdf

    if not CLAMD_HOST:
        pytest.skip("no clamd configured (TEST_CLAMD_HOST)")
    client.login(w["partner"])
    good = upload_file(client, w["case"].id, clean_pdf())
    bad = upload_file(client, w["case"].id, eicar_pdf(), "handover.pdf", "handover")
    resp = receipt_form(client, w, [good, bad])
    assert resp.status_code == 303, resp.get_data(as_text=True)[:2000]
    receipt_id = int(resp.location.rsplit("/", 1)[-1])
    run_jobs()  # the worker scans what the receipt claimed
    db.expire_all()
    rows = {r.original_filename: r for r in db.exec(select(ReceiptFile).where(ReceiptFile.receipt_id == receipt_id))}
    assert rows["invoice.pdf"].scan_status == "clean"
    assert rows["handover.pdf"].scan_status == "infected"
    assert rows["handover.pdf"].key.startswith("quarantine/")
    assert client.get(f"/receipts/{receipt_id}/files/{rows['handover.pdf'].id}").status_code != 200
    assert not any(EICAR in open_key(app, k) for k in keys(app, "receipts/"))


def open_key(app, key) -> bytes:
    with app.app_context(), get_storage().open(key) as fh:
        return fh.read()


def test_another_tus_version_is_told_which_one_is_spoken(client, w):
    client.login(w["partner"])
    resp = client.post("/uploads/", headers=tus_headers(client, **{
        "Tus-Resumable": "0.2.2", "Upload-Length": "10",
        "Upload-Metadata": metadata(purpose="receipt", case=w["case"].id)}))
    assert (resp.status_code, resp.headers["Tus-Version"]) == (412, "1.0.0")


def test_a_receipt_of_another_org_cannot_take_an_upload(client, db, w):
    from tests.factories import make_receipt

    theirs = make_receipt(db, w["other_case"])
    client.login(w["partner"])
    assert create(client, w["case"].id, 100, receipt=theirs.id).status_code == 404
    assert create(client, w["other_case"].id, 100, receipt=theirs.id).status_code == 404


def test_one_user_cannot_pile_up_unclaimed_uploads(client, w, monkeypatch):
    monkeypatch.setattr(services, "MAX_OPEN", 2)
    client.login(w["partner"])
    assert [create(client, w["case"].id, 100).status_code for _ in range(3)] == [201, 201, 429]


def test_an_add_files_form_error_keeps_the_uploads_listed(client, db, w):
    client.login(w["partner"])
    receipt_id = int(receipt_form(client, w, [upload_file(client, w["case"].id, unique_pdf())])
                     .location.rsplit("/", 1)[-1])
    proof = upload_file(client, w["case"].id, noisy_jpeg(), "proof.jpg", "handover", receipt=receipt_id)
    gone = upload_file(client, w["case"].id, noisy_jpeg(), "gone.jpg", "handover", receipt=receipt_id)
    client.delete(f"/uploads/{gone}", headers=tus_headers(client))
    resp = client.submit(f"/receipts/{receipt_id}/files", {"kind": "receipt", "uploads": [proof, gone]},
                         content_type="multipart/form-data")
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert "no longer available" in html
    assert f'<input type="hidden" name="uploads" value="{proof}">' in html and gone not in html
    assert row_of(db, proof).claimed_at is None


def test_upload_problems_are_listed_with_the_other_form_errors(client, w):
    client.login(w["partner"])
    refused = upload_file(client, w["case"].id, b"text\n" * 50, "photo.jpg")
    resp = receipt_form(client, w, [refused], supplier="")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert "Enter the name of the supplier" in html and "photo.jpg: The selected file must be a PDF" in html
    assert f'data-upload-id="{refused}"' in html  # listed with its refusal, to be removed
