"""The shipped nginx site (deploy/nginx/portal.conf) on Debian's nginx, in front of gunicorn started as
integplan-web.service starts it (PostgreSQL, Ceph S3, Redis limits): the largest receipt goes through, the
portal sees the client address nginx saw (not a forged one), rate limits are per real client, a tus
piece cut off mid-body keeps the bytes that arrived, static files are served by nginx with caching.

Distinct clients are distinct loopback source addresses (127.0.0.2, 127.0.0.3, …): nginx sees each as
its own $remote_addr, as it would two phones."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
import uuid
from base64 import b64encode
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from sqlmodel import Session, select

from portal import create_app
from portal.receipts.models import ReceiptFile
from portal.uploads.models import Upload
from tests import deploy_stack as stack
from tests.factories import big_pdf, make_case, make_line, make_org, make_user
from tests.fixtures import PG_URL, S3_URL, app_config, free_port
from tests.helpers import fields

REDIS_URL = os.environ.get("TEST_REDIS_URL", "")
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
MAX_MB = 3

pytestmark = [
    pytest.mark.skipif(not NGINX, reason="nginx is not installed (scripts/test.sh installs it: scripts/nginx.sh)"),
    pytest.mark.skipif(not (PG_URL and S3_URL and REDIS_URL),
                       reason="needs TEST_DATABASE_URL, S3_ENDPOINT_URL and TEST_REDIS_URL (scripts/test.sh)"),
]


class Stack:
    def __init__(self, url, db_engine, prefix, nginx, gunicorn):
        self.url, self.engine, self.prefix, self.nginx, self.gunicorn = url, db_engine, prefix, nginx, gunicorn

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)


@pytest.fixture(scope="module")
def site(tmp_path_factory, pg_template, smtp_sink):
    """nginx → gunicorn (2 workers) → PostgreSQL, Ceph S3, Redis limits; with the test's data app beside."""
    from portal.storage.s3 import S3Storage

    tmp = tmp_path_factory.mktemp("nginx-stack")
    db_url = stack.fresh_database(PG_URL, pg_template)
    bucket = f"test-deploy-{uuid.uuid4().hex[:12]}"
    storage = S3Storage(S3_URL, bucket, region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    storage.ensure_ready()
    prefix = f"deploy-{uuid.uuid4().hex[:12]}"
    env = stack.portal_env(
        tmp, DATABASE_URL=db_url, S3_BUCKET=bucket, MAIL_PORT=str(smtp_sink.port),
        BASE_URL="http://127.0.0.1", RATELIMIT_STORAGE_URI=REDIS_URL, RATELIMIT_KEY_PREFIX=prefix,
        TASK_QUEUE_URL=f"sqlite:///{tmp / 'tasks.db'}", RECEIPT_MAX_MB=str(MAX_MB),
        LOGIN_RATE_LIMIT="3 per minute", ACCOUNT_RATE_LIMIT="100 per minute", WEB_CONCURRENCY="2")
    port = free_port()
    nginx = stack.Nginx(tmp / "nginx", free_port(), f"127.0.0.1:{port}")
    data_app = create_app(app_config(db_url, tmp, smtp_sink.port))
    gunicorn = None
    try:
        gunicorn = stack.web(tmp, port, env)
        nginx.start()
        yield Stack(nginx.url, data_app.extensions["db_engine"], prefix, nginx, gunicorn)
    finally:
        nginx.stop()
        if gunicorn:
            gunicorn.stop()
        data_app.extensions["db_engine"].dispose()
        data_app.extensions["huey"].storage.close()
        for key in list(storage.keys()):
            storage.delete(key)
        storage.client.delete_bucket(Bucket=bucket)
        storage.close()
        stack.drop_database(PG_URL, db_url)


@pytest.fixture
def w(site):
    with site.session() as db:
        org = make_org(db, country="GE")
        case = make_case(db, org, country="GE")
        return {"org": org, "case": case, "line": make_line(db, case, planned_cents=100_000),
                "partner": make_user(db, organisation=org)}


def signed_in(site, user, address="127.0.0.1"):
    session = stack.client(address)
    assert stack.sign_in(session, site.url, user.email) == 303
    return session


def pdf_of_size(size: int) -> bytes:
    """A valid PDF of exactly `size` bytes (the padding's length changes a few digits of the xref)."""
    padding = size - len(big_pdf(0))
    while len(data := big_pdf(padding)) != size:
        padding += size - len(data)
    return data


def test_a_receipt_of_the_largest_size_goes_through_nginx(site, w):
    session = signed_in(site, w["partner"])
    form_url = f"{site.url}/cases/{w['case'].id}/receipts/new"
    size = MAX_MB * 1024 * 1024
    token = stack.csrf(session, form_url)
    resp = session.post(form_url, data={**fields(w), "csrf_token": token},
                        files={"files": ("scan.pdf", pdf_of_size(size), "application/pdf")},
                        allow_redirects=False, timeout=120)
    assert resp.status_code == 303, resp.text[:2000]
    receipt_id = int(resp.headers["Location"].rsplit("/", 1)[-1])
    with site.session() as db:
        stored = db.exec(select(ReceiptFile).where(ReceiptFile.receipt_id == receipt_id)).one()
    assert stored.size == size
    # One byte more: the portal's own message (and the form kept), not nginx's bare 413 page.
    resp = session.post(form_url, data={**fields(w, supplier="Kutaisi Metal"), "csrf_token": token},
                        files={"files": ("scan.pdf", pdf_of_size(size + 1), "application/pdf")},
                        allow_redirects=False, timeout=120)
    assert resp.status_code == 422
    assert f"The selected file must be smaller than {MAX_MB} MB" in resp.text and "Kutaisi Metal" in resp.text


def _limiter_addresses(site) -> set[str]:
    """The client addresses the portal keyed its limits on (Flask-Limiter's keys in Redis)."""
    r = redis.Redis.from_url(REDIS_URL)
    try:
        keys = [k.decode() for k in r.scan_iter(match=f"LIMITS:LIMITER/{site.prefix}/*")]
    finally:
        r.close()
    return {k.split("/")[2] for k in keys if not k.split("/")[2].startswith("account:")}


def test_the_portal_sees_the_address_nginx_saw_and_not_a_forged_one(site, w):
    one, two = stack.client("127.0.0.2"), stack.client("127.0.0.3")
    assert stack.sign_in(one, site.url, w["partner"].email, "wrong password 123") == 422
    forged = {"X-Forwarded-For": "198.51.100.99"}
    assert stack.sign_in(two, site.url, w["partner"].email, "wrong password 123", headers=forged) == 422
    assert _limiter_addresses(site) >= {"127.0.0.2", "127.0.0.3"}
    assert "198.51.100.99" not in _limiter_addresses(site)


def test_rate_limits_are_per_real_client_through_nginx(site, w):
    """The measured finding: behind nginx, another client's failures locked everyone out (429)."""
    attacker, partner = stack.client("127.0.0.4"), stack.client("127.0.0.5")
    codes = [stack.sign_in(attacker, site.url, w["partner"].email, "wrong password 123") for _ in range(3)]
    assert codes == [422, 422, 422]
    assert stack.sign_in(attacker, site.url, w["partner"].email, "wrong password 123") == 429
    # Forging the header does not give the attacker a fresh limit.
    assert stack.sign_in(attacker, site.url, w["partner"].email, "wrong password 123",
                         headers={"X-Forwarded-For": "198.51.100.1"}) == 429
    # The partner, from their own address, signs in with the right password.
    assert stack.sign_in(partner, site.url, w["partner"].email) == 303


def _b64(value) -> str:
    return b64encode(str(value).encode()).decode()


def test_a_tus_piece_cut_off_mid_body_keeps_the_bytes_that_arrived(site, w):
    """nginx passes /uploads/ bodies on as they arrive (proxy_request_buffering off): when the link drops,
    the portal stores what got through and HEAD tells the client where to resume."""
    session = signed_in(site, w["partner"])
    session.headers["X-CSRFToken"] = stack.csrf(session, f"{site.url}/cases/")
    data = big_pdf(400_000)
    resp = session.post(site.url + "/uploads/", headers={
        "Tus-Resumable": "1.0.0", "Upload-Length": str(len(data)),
        "Upload-Metadata": f"filename {_b64('scan.pdf')},purpose {_b64('receipt')},case {_b64(w['case'].id)}"},
        timeout=30)
    assert resp.status_code == 201, resp.text
    url = site.url + urlsplit(resp.headers["Location"]).path
    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    head = (f"PATCH {urlsplit(url).path} HTTP/1.1\r\nHost: 127.0.0.1:{site.nginx.port}\r\nCookie: {cookie}\r\n"
            f"X-CSRFToken: {session.headers['X-CSRFToken']}\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
            f"Content-Type: application/offset+octet-stream\r\nContent-Length: {len(data)}\r\n\r\n").encode()
    sent = 150_000
    with socket.create_connection(("127.0.0.1", site.nginx.port)) as sock:
        sock.sendall(head + data[:sent])
        time.sleep(1.0)  # the link drops: nginx has passed the bytes on, the rest never comes
    offset = 0
    for _ in range(100):
        offset = int(session.head(url, headers={"Tus-Resumable": "1.0.0"}, timeout=10).headers["Upload-Offset"])
        if offset:
            break
        time.sleep(0.1)
    assert offset == sent
    resp = session.patch(url, data=data[offset:], timeout=60, headers={
        "Tus-Resumable": "1.0.0", "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"})
    assert resp.status_code == 204, resp.text
    with site.session() as db:
        row = db.exec(select(Upload).where(Upload.token == url.rsplit("/", 1)[-1])).one()
    assert row.status == "ready" and row.length == len(data)


def test_static_files_come_from_nginx_with_long_caching_for_versioned_urls(site):
    session = stack.client()
    page = session.get(site.url + "/login", timeout=30).text
    versioned = re.search(r'src="(/static/js/portal\.js\?v=[0-9a-f]{12})"', page).group(1)
    resp = session.get(site.url + versioned, timeout=30)
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert resp.headers["Server"].startswith("nginx") and "Content-Security-Policy" not in resp.headers  # not the app
    assert resp.content == (stack.ROOT / "static/js/portal.js").read_bytes()
    assert session.get(site.url + "/static/js/portal.js", timeout=30).headers["Cache-Control"] == "no-cache"


def test_health_check_through_nginx(site):
    resp = stack.client().get(site.url + "/healthz", timeout=30)
    assert resp.status_code == 200 and resp.text == "ok\n"


def test_the_shipped_site_with_tls_is_valid_nginx(tmp_path):
    """The TLS parts themselves: the shipped file, certificate paths pointed at a throw-away certificate."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",  # noqa: S607
                    "/CN=portal.example.org", "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                   check=True, capture_output=True)
    site_text = (stack.DEPLOY / "nginx" / "portal.conf").read_text()
    site_text = site_text.replace("/etc/letsencrypt/live/portal.example.org/fullchain.pem", str(tmp_path / "cert.pem"))
    site_text = site_text.replace("/etc/letsencrypt/live/portal.example.org/privkey.pem", str(tmp_path / "key.pem"))
    (tmp_path / "portal.conf").write_text(site_text)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log; events {{}}\n"
        f"http {{ include /etc/nginx/mime.types; include {tmp_path}/portal.conf; }}\n")
    result = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],  # noqa: S603
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "proxy_request_buffering off" in site_text.split("location /uploads/")[1].split("}")[0]
    body_limit = int(re.search(r"client_max_body_size (\d+)m;", site_text).group(1))
    assert body_limit * 1024 * 1024 >= 110 * 1024 * 1024 > 20 * 1024 * 1024  # MAX_CONTENT_LENGTH, RECEIPT_MAX_MB
