"""The storage contract, on the local directory backend and on a real S3 server (Ceph RGW in CI).

The S3 cases run when S3_ENDPOINT_URL is set:
    scripts/s3-server.sh start && eval "$(scripts/s3-server.sh env)"
Each S3 test works in a bucket of its own and removes it afterwards.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path
from uuid import uuid4

import pytest
from flask import Flask

from portal.config import ConfigError
from portal.storage import (
    ChecksumMismatch,
    Digest,
    Storage,
    StorageError,
    StoredObject,
    content_disposition,
    get_storage,
    init_storage,
    new_key,
    safe_download_name,
)
from portal.storage.local import LocalStorage

S3_ENDPOINT = os.environ.get("S3_ENDPOINT_URL", "")
REGION = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
needs_s3 = pytest.mark.skipif(
    not S3_ENDPOINT,
    reason='S3_ENDPOINT_URL not set: run scripts/s3-server.sh start && eval "$(scripts/s3-server.sh env)"',
)
PORTAL_DIR = Path(__file__).resolve().parent.parent / "portal"


def make_s3(bucket: str | None = None, presign_seconds: int = 60):
    from portal.storage.s3 import S3Storage

    return S3Storage(
        S3_ENDPOINT, bucket or f"test-{uuid4().hex}", region=REGION, presign_seconds=presign_seconds
    )


def drop_bucket(storage) -> None:
    """Remove everything a test left in its bucket, then the bucket."""
    client = storage.client
    uploads = client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", [])
    for upload in uploads:
        client.abort_multipart_upload(Bucket=storage.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    for key in list(storage.keys()):
        storage.delete(key)
    client.delete_bucket(Bucket=storage.bucket)
    storage.close()


@pytest.fixture
def s3():
    """An S3Storage on the real server with a fresh, empty bucket."""
    if not S3_ENDPOINT:
        pytest.skip(needs_s3.kwargs["reason"])
    storage = make_s3()
    storage.ensure_ready()
    yield storage
    drop_bucket(storage)


@pytest.fixture(params=["local", pytest.param("s3", marks=[pytest.mark.s3, needs_s3])])
def storage(request, tmp_path):
    """Each backend in turn, empty and ready."""
    if request.param == "local":
        local = LocalStorage(tmp_path / "files")
        local.ensure_ready()
        yield local
    else:
        yield request.getfixturevalue("s3")


@pytest.fixture
def download_app(storage):
    """A bare Flask app whose one view serves downloads from the storage under test."""
    app = Flask(__name__)
    app.extensions["storage"] = storage

    @app.get("/download/<path:key>")
    def download(key):
        return get_storage().download_response(
            key, filename="Quittung März 2024.pdf", content_type="application/pdf"
        )

    with app.app_context():
        yield app


def payload(size: int) -> bytes:
    return os.urandom(size)


def put_bytes(storage: Storage, key: str, data: bytes, content_type: str = "application/pdf") -> StoredObject:
    return storage.put(key, io.BytesIO(data), content_type=content_type)


# -- the contract, on both backends --------------------------------------------------------------


def test_put_then_open_gives_back_the_same_bytes(storage):
    data = payload(300_001)
    key = new_key("receipts/1")

    stored = put_bytes(storage, key, data)

    assert stored == StoredObject(key=key, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    assert storage.exists(key)
    with storage.open(key) as stream:
        assert stream.read() == data


def test_put_stores_the_whole_file_even_if_it_was_read_before(storage):
    data = b"%PDF-1.7 a receipt\n" * 1000
    upload = io.BytesIO(data)
    upload.read()  # e.g. a virus scan or type sniffing read it first

    stored = storage.put(new_key("receipts/1"), upload, content_type="application/pdf")

    assert stored.size == len(data)
    with storage.open(stored.key) as stream:
        assert stream.read() == data


def test_put_replaces_an_existing_object(storage):
    key = new_key("receipts/1")
    put_bytes(storage, key, b"first version")
    stored = put_bytes(storage, key, b"second")

    assert stored.size == 6
    with storage.open(key) as stream:
        assert stream.read() == b"second"


def test_empty_file_round_trips(storage):
    stored = put_bytes(storage, new_key("receipts/1"), b"")

    assert stored.size == 0
    assert stored.sha256 == hashlib.sha256(b"").hexdigest()
    with storage.open(stored.key) as stream:
        assert stream.read() == b""


class ReadSizeSpy:
    """A file that remembers how much each read() asked for."""

    def __init__(self, fileobj):
        self._file = fileobj
        self.sizes: list[int] = []
        self.returned = 0  # bytes handed out, over every pass

    def read(self, size=-1):
        self.sizes.append(size)
        chunk = self._file.read(size)
        self.returned += len(chunk)
        return chunk

    def seek(self, offset, whence=0):
        return self._file.seek(offset, whence)

    def tell(self):
        return self._file.tell()


def test_a_20_mb_file_round_trips_reading_in_chunks(storage, tmp_path):
    path = tmp_path / "big.bin"
    expected = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(20):
            chunk = payload(1024 * 1024)
            expected.update(chunk)
            out.write(chunk)
    key = new_key("receipts/big")

    with path.open("rb") as raw:
        spy = ReadSizeSpy(raw)
        stored = storage.put(key, spy, content_type="application/octet-stream")

    assert stored.size == 20 * 1024 * 1024
    assert stored.sha256 == expected.hexdigest()
    # never the whole file at once: every read asks for a bounded chunk
    assert all(0 < size <= 8 * 1024 * 1024 for size in spy.sizes)
    with storage.open(key) as stream:
        assert Digest.of_stream(stream).sha256 == expected.hexdigest()


@needs_s3
@pytest.mark.s3
def test_a_20_mb_file_goes_up_in_8_mb_parts_on_s3(s3, tmp_path, monkeypatch):
    """Files over the single-PUT limit (512 MB; 16 MB here) go up in parts, never whole in memory."""
    monkeypatch.setattr("portal.storage.s3.SINGLE_PUT_LIMIT", 16 * 1024 * 1024)
    path = tmp_path / "big.bin"
    path.write_bytes(payload(20 * 1024 * 1024))
    key = new_key("receipts/big")

    with path.open("rb") as upload:
        s3.put(key, upload, content_type="application/octet-stream")

    head = s3.client.head_object(Bucket=s3.bucket, Key=key)
    assert head["ETag"].strip('"').endswith("-3")  # a multipart object of 8 + 8 + 4 MB
    assert head["ContentType"] == "application/octet-stream"
    assert head["Metadata"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert s3.client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []


@pytest.mark.parametrize("size", [300_001, 20 * 1024 * 1024])
def test_put_with_the_callers_hashes_reads_the_file_once_and_checks_it(storage, tmp_path, size, monkeypatch):
    """A caller that hashed the file already (the upload checks do) spares the backend its own pass;
    a file that is not the one hashed is refused and nothing stays stored."""
    monkeypatch.setattr("portal.storage.s3.SINGLE_PUT_LIMIT", 16 * 1024 * 1024)  # 20 MB: in parts
    path = tmp_path / "file.bin"
    path.write_bytes(payload(size))
    with path.open("rb") as raw:
        digest = Digest.of_stream(raw)
    good, md5 = digest.sha256, digest.md5_base64
    key = new_key("receipts/hinted")
    with path.open("rb") as raw:
        spy = ReadSizeSpy(raw)
        stored = storage.put(key, spy, content_type="application/pdf", sha256=good, md5=md5)
    assert stored.sha256 == good and stored.size == size
    if not isinstance(storage, LocalStorage):
        # one pass: in parts (hashed while sent) or one PUT (the sender's reads, no hashing pass before)
        assert spy.returned == size
    other = new_key("receipts/hinted")
    with path.open("rb") as raw, pytest.raises(ChecksumMismatch):
        storage.put(other, raw, content_type="application/pdf", sha256="0" * 64)
    assert not storage.exists(other)
    assert list(storage.keys("receipts/")) == [key]
    if not isinstance(storage, LocalStorage):
        assert storage.client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", []) == []


@pytest.mark.parametrize("backend", ["local", pytest.param("s3", marks=[pytest.mark.s3, needs_s3])])
def test_abort_unfinished_discards_only_old_unfinished_uploads(backend, tmp_path, request):
    from datetime import timedelta

    storage = request.getfixturevalue("s3") if backend == "s3" else LocalStorage(tmp_path / "files")
    storage.ensure_ready()
    kept = put_bytes(storage, new_key("receipts/1"), b"complete")
    if backend == "s3":
        storage.client.create_multipart_upload(Bucket=storage.bucket, Key=new_key("receipts/1"))
    else:
        (tmp_path / "files" / "receipts" / "1" / ".upload-left-over").write_bytes(b"half")
    assert storage.abort_unfinished(timedelta(hours=1)) == 0  # too fresh: may still be going on
    assert storage.abort_unfinished(timedelta(0)) == 1
    assert list(storage.keys()) == [kept.key]
    if backend == "s3":
        assert storage.client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", []) == []


def test_delete_is_idempotent(storage):
    key = new_key("receipts/1")
    put_bytes(storage, key, b"to be removed")

    storage.delete(key)
    storage.delete(key)
    storage.delete(new_key("receipts/never-existed"))

    assert not storage.exists(key)
    assert list(storage.keys()) == []


def test_opening_a_missing_object_raises_file_not_found(storage):
    with pytest.raises(FileNotFoundError):
        storage.open(new_key("receipts/1"))


def test_keys_lists_by_prefix(storage):
    names = ["receipts/1/a", "receipts/1/b", "receipts/10/c", "visits/1/d"]
    for name in names:
        put_bytes(storage, name, name.encode())

    assert set(storage.keys()) == set(names)
    assert set(storage.keys("receipts/1/")) == {"receipts/1/a", "receipts/1/b"}
    assert set(storage.keys("receipts/1")) == {"receipts/1/a", "receipts/1/b", "receipts/10/c"}
    assert set(storage.keys("visits/")) == {"visits/1/d"}
    assert list(storage.keys("workshop/")) == []


@pytest.mark.parametrize(
    "key", ["../outside", "/etc/passwd", "receipts/../../outside", "a//b", "a\\b", "", "a/./b"]
)
def test_keys_that_could_escape_are_refused(storage, key):
    with pytest.raises(ValueError):
        put_bytes(storage, key, b"x")
    with pytest.raises(ValueError):
        storage.open(key)
    with pytest.raises(ValueError):
        storage.delete(key)
    with pytest.raises(ValueError):
        storage.exists(key)


def test_local_refuses_keys_leaving_the_directory(tmp_path):
    root = tmp_path / "files"
    storage = LocalStorage(root)
    storage.ensure_ready()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside)

    for key in ["../outside/x", "link/x", str(outside / "x")]:
        with pytest.raises(ValueError):
            put_bytes(storage, key, b"x")
    with pytest.raises(ValueError):
        list(storage.keys("../outside/"))

    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["files", "outside"]


def test_local_put_leaves_no_temporary_files(tmp_path):
    storage = LocalStorage(tmp_path / "files")
    storage.ensure_ready()
    stored = put_bytes(storage, "receipts/1/a", b"content")

    files = [p for p in (tmp_path / "files").rglob("*") if p.is_file()]
    assert files == [tmp_path / "files" / "receipts" / "1" / "a"]
    assert stored.key == "receipts/1/a"


def test_local_put_that_does_not_verify_keeps_nothing(tmp_path, monkeypatch):
    storage = LocalStorage(tmp_path / "files")
    storage.ensure_ready()
    real = Digest.of_stream

    def corrupted(fileobj, chunk_size=1024 * 1024):
        digest = real(fileobj, chunk_size)
        digest.update(b"bit flip")
        return digest

    monkeypatch.setattr(Digest, "of_stream", staticmethod(corrupted))

    with pytest.raises(ChecksumMismatch):
        put_bytes(storage, "receipts/1/a", b"content")
    assert [p for p in (tmp_path / "files").rglob("*") if p.is_file()] == []


def test_ensure_ready_twice_is_fine(storage):
    storage.ensure_ready()
    storage.ensure_ready()
    assert isinstance(storage, Storage)


def test_describe_names_the_backend(storage):
    text = storage.describe()
    if isinstance(storage, LocalStorage):
        assert text == f"local:{storage.root}"
    else:
        assert text.startswith(f"s3:{S3_ENDPOINT} (server: ")
        assert text.endswith(f"bucket={storage.bucket}")


# -- downloads ------------------------------------------------------------------------------------


def test_local_download_is_an_attachment_with_nosniff(tmp_path):
    storage = LocalStorage(tmp_path / "files")
    storage.ensure_ready()
    app = Flask(__name__)
    app.extensions["storage"] = storage

    @app.get("/download/<path:key>")
    def download(key):
        return get_storage().download_response(
            key, filename='../../Quittung "März"\u202egpj.pdf', content_type="application/pdf"
        )

    data = b"%PDF-1.7 receipt"
    key = new_key("receipts/1")
    put_bytes(storage, key, data)

    response = app.test_client().get(f"/download/{key}")

    assert response.status_code == 200
    assert response.data == data
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.mimetype == "application/pdf"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''Quittung%20M%C3%A4rzgpj.pdf" in disposition
    assert ".." not in disposition and "/" not in disposition and "\u202e" not in disposition
    assert "no-store" in response.headers["Cache-Control"]
    assert "public" not in response.headers["Cache-Control"]
    response.close()


@needs_s3
@pytest.mark.s3
def test_s3_download_redirects_to_a_presigned_url_that_downloads(s3):
    data = b"%PDF-1.7 receipt " + payload(1000)
    key = new_key("receipts/1")
    put_bytes(s3, key, data)
    app = Flask(__name__)
    app.extensions["storage"] = s3

    with app.test_request_context():
        response = s3.download_response(
            key, filename="Quittung März 2024.pdf", content_type="application/pdf"
        )

    assert response.status_code == 302
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in response.headers["Cache-Control"]
    location = response.headers["Location"]
    assert location.startswith(f"{S3_ENDPOINT}/{s3.bucket}/{key}?")
    assert "X-Amz-Signature=" in location and "X-Amz-Expires=60" in location

    with urllib.request.urlopen(location, timeout=10) as fetched:  # noqa: S310 (our own test server)
        body = fetched.read()
        headers = fetched.headers
    assert body == data
    assert headers["Content-Type"] == "application/pdf"
    assert headers["Content-Disposition"] == (
        "attachment; filename=\"Quittung_Marz_2024.pdf\"; filename*=UTF-8''Quittung%20M%C3%A4rz%202024.pdf"
    )


@needs_s3
@pytest.mark.s3
def test_s3_presigned_url_expires(s3):
    key = new_key("receipts/1")
    put_bytes(s3, key, b"short-lived")
    short = make_s3(s3.bucket, presign_seconds=1)
    try:
        with Flask(__name__).test_request_context():
            location = short.download_response(key, filename="a.pdf", content_type="application/pdf").location
    finally:
        short.close()
    time.sleep(2.5)

    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(location, timeout=10)  # noqa: S310 (our own test server)
    refused.value.close()
    assert refused.value.code == 403


def test_download_view_gives_the_file_as_attachment(download_app, storage):
    key = new_key("receipts/1")
    put_bytes(storage, key, b"receipt")

    response = download_app.test_client().get(f"/download/{key}")
    served = response.get_data()
    response.close()

    assert response.headers["X-Content-Type-Options"] == "nosniff"
    if isinstance(storage, LocalStorage):
        assert response.status_code == 200
        body, disposition = served, response.headers["Content-Disposition"]
    else:
        assert response.status_code == 302
        with urllib.request.urlopen(response.location, timeout=10) as fetched:  # noqa: S310 (test server)
            body, disposition = fetched.read(), fetched.headers["Content-Disposition"]
    assert body == b"receipt"
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''Quittung%20M%C3%A4rz%202024.pdf" in disposition


# -- what only the real server can show -----------------------------------------------------------


@needs_s3
@pytest.mark.s3
def test_the_server_refuses_a_wrong_content_md5(s3):
    from botocore.exceptions import ClientError

    wrong_md5 = b64encode(hashlib.md5(b"something else", usedforsecurity=False).digest()).decode()
    with pytest.raises(ClientError) as refused:
        s3.client.put_object(
            Bucket=s3.bucket, Key="receipts/1/x", Body=b"the real bytes", ContentMD5=wrong_md5
        )

    assert refused.value.response["Error"]["Code"] == "BadDigest"
    assert not s3.exists("receipts/1/x")


class WrongMd5:
    """Stands in for hashlib in the S3 module: every part's MD5 is of other bytes."""

    sha256 = staticmethod(hashlib.sha256)

    @staticmethod
    def md5(data=b"", usedforsecurity=True):
        return hashlib.md5(b"not " + data, usedforsecurity=False)


@needs_s3
@pytest.mark.s3
@pytest.mark.parametrize("size", [1000, 17 * 1024 * 1024], ids=["single", "multipart"])
def test_s3_put_sends_content_md5_that_the_server_checks(s3, monkeypatch, size):
    wrong = b64encode(WrongMd5.md5(b"").digest()).decode()
    monkeypatch.setattr(Digest, "md5_base64", property(lambda self: wrong))
    monkeypatch.setattr("portal.storage.s3.hashlib", WrongMd5)
    key = new_key("receipts/1")

    with pytest.raises(StorageError, match="BadDigest"):
        put_bytes(s3, key, payload(size))

    assert not s3.exists(key)
    # a failed multipart upload is aborted, not left taking space
    assert s3.client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []


@needs_s3
@pytest.mark.s3
def test_s3_put_whose_stored_copy_differs_is_removed(s3, monkeypatch):
    real_head = s3.client.head_object

    def head_reporting_other_metadata(**kwargs):
        head = real_head(**kwargs)
        head["Metadata"] = {"sha256": "0" * 64}
        return head

    monkeypatch.setattr(s3.client, "head_object", head_reporting_other_metadata)
    key = new_key("receipts/1")

    with pytest.raises(ChecksumMismatch):
        put_bytes(s3, key, b"content")
    monkeypatch.undo()
    assert not s3.exists(key)


@needs_s3
@pytest.mark.s3
def test_s3_errors_from_the_server_become_storage_errors(s3):
    missing = make_s3(f"test-missing-{uuid4().hex[:12]}")
    try:
        with pytest.raises(StorageError, match="NoSuchBucket"):
            put_bytes(missing, new_key("receipts/1"), b"x")
        with pytest.raises(StorageError):
            list(missing.keys())
    finally:
        missing.close()


def test_an_unreachable_server_fails_fast_with_storage_error(monkeypatch):
    from portal.storage.s3 import S3Storage

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", os.environ.get("AWS_ACCESS_KEY_ID", "unreachable-test"))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", os.environ.get("AWS_SECRET_ACCESS_KEY", "unreachable-test"))
    storage = S3Storage("http://127.0.0.1:1", "test-unreachable", region="us-east-1", presign_seconds=60)
    try:
        started = time.monotonic()
        with pytest.raises(StorageError):
            put_bytes(storage, new_key("receipts/1"), b"x")
        with pytest.raises(StorageError):
            storage.ensure_ready()
        with pytest.raises(StorageError):
            storage.exists("receipts/1/x")
        with pytest.raises(StorageError):
            list(storage.keys())
        with pytest.raises(StorageError):
            storage.open("receipts/1/x")
        assert time.monotonic() - started < 10
        assert "unreachable" in storage.describe()
    finally:
        storage.close()


# -- wiring and helpers ---------------------------------------------------------------------------


def test_init_storage_builds_the_configured_backend(tmp_path):
    app = Flask(__name__)
    app.config.update(STORAGE_BACKEND="local", STORAGE_LOCAL_DIR=str(tmp_path / "files"))
    built = init_storage(app)
    with app.app_context():
        assert get_storage() is built
    assert isinstance(built, LocalStorage)
    assert not (tmp_path / "files").exists()  # no disk work until ensure_ready / flask init-storage

    result = app.test_cli_runner().invoke(args=["init-storage"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "files").is_dir()
    assert "local:" in result.output


def test_init_storage_s3_needs_no_server():
    from portal.storage.s3 import S3Storage

    app = Flask(__name__)
    app.config.update(
        STORAGE_BACKEND="s3",
        S3_ENDPOINT_URL="http://127.0.0.1:1",
        S3_BUCKET="portal",
        S3_REGION="us-east-1",
        S3_PRESIGN_SECONDS=120,
    )
    storage = init_storage(app)
    try:
        assert isinstance(storage, S3Storage)
        assert (storage.bucket, storage.presign_seconds) == ("portal", 120)
    finally:
        storage.close()


def test_init_storage_refuses_an_unknown_backend():
    app = Flask(__name__)
    app.config["STORAGE_BACKEND"] = "ftp"
    with pytest.raises(ConfigError):
        init_storage(app)


def test_new_keys_are_fresh_and_server_made():
    first, second = new_key("receipts/7"), new_key("receipts/7")
    assert first != second
    assert re.fullmatch(r"receipts/7/[0-9a-f]{32}", first)


@pytest.mark.parametrize(
    ("given", "ascii_name", "utf8_name"),
    [
        ("receipt.pdf", "receipt.pdf", None),
        ("Quittung März.pdf", "Quittung_Marz.pdf", "Quittung%20M%C3%A4rz.pdf"),
        ("C:\\Users\\x\\scan.jpg", "scan.jpg", None),
        ('a"b;c\r\nd.pdf', "abcd.pdf", None),
        ("invoice\u202efdp.exe", "invoicefdp.exe", None),
        ("квитанция.pdf", "download.pdf", "%D0%BA%D0%B2%D0%B8%D1%82%D0%B0%D0%BD%D1%86%D0%B8%D1%8F.pdf"),
        ("", "download", None),
    ],
)
def test_content_disposition_is_a_safe_attachment(given, ascii_name, utf8_name):
    header = content_disposition(given)
    expected = f'attachment; filename="{ascii_name}"'
    if utf8_name:
        expected += f"; filename*=UTF-8''{utf8_name}"
    assert header == expected


def test_safe_download_name_keeps_extension_when_shortening():
    name = safe_download_name("x" * 400 + ".pdf")
    assert len(name) == 150
    assert name.endswith("x.pdf")


def test_only_the_s3_module_imports_boto():
    code = "import sys, portal.storage, portal.storage.local; print('boto3' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
    importers = sorted(
        str(path.relative_to(PORTAL_DIR))
        for path in PORTAL_DIR.rglob("*.py")
        if re.search(r"^\s*(import|from)\s+(boto3|botocore)\b", path.read_text(), re.MULTILINE)
    )
    assert importers == ["storage/s3.py"]
