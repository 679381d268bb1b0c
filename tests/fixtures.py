"""Fixtures (a pytest plugin, registered in conftest.py): a fresh app and database per test, on SQLite and on
PostgreSQL; an SMTP sink; clients; the shared receipt world `w`. Test modules may import its plain helpers
(PortalClient, app_config, free_port, …)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from flask.testing import FlaskClient
from sqlmodel import Session

from portal import create_app
from portal import db as dbm
from portal.clock import utcnow
from portal.receipts.models import ReceiptEvent
from tests.factories import make_case, make_line, make_org, make_receipt, make_user, make_visit

PG_URL = os.environ.get("TEST_DATABASE_URL", "")
S3_URL = os.environ.get("S3_ENDPOINT_URL", "")
BACKENDS = ["sqlite", "postgresql"]


# Report header: name the real services this run used ---------------------------------------------


def _s3_server() -> str:
    if not S3_URL:
        return "not configured (S3 tests skipped)"
    try:
        with urllib.request.urlopen(S3_URL, timeout=3) as resp:  # noqa: S310 - loopback test server
            server = resp.headers.get("Server", "?")
    except Exception as exc:  # noqa: BLE001
        server = getattr(exc, "headers", {}).get("Server", f"unreachable: {exc}") if hasattr(exc, "headers") \
            else f"unreachable: {exc}"
    return f"{S3_URL} (Server: {server})"


def pytest_report_header(config):
    pg = sa.engine.make_url(PG_URL) if PG_URL else None
    chromium = shutil.which("chromium") or "not installed"
    return [
        "databases: sqlite (file per test)"
        + (f", {pg.drivername}://{pg.host}:{pg.port} (fresh database per test)" if pg else ", postgresql SKIPPED"),
        f"s3: {_s3_server()}",
        "smtp: aiosmtpd sink on 127.0.0.1 (in-process)",
        f"browser: {chromium}",
    ]


# SMTP sink --------------------------------------------------------------------------------------

@dataclass
class Sink:
    port: int
    messages: list = field(default_factory=list)

    def clear(self):
        self.messages.clear()

    def to(self, address: str):
        return [m for m in self.messages if address in m["To"]]

    def wait_for(self, address: str, count: int = 1, timeout: float = 15.0):
        """The messages to `address` once there are `count` of them: a live server's worker sends mail
        a moment after the request (browser tests; other tests run the jobs with run_jobs())."""
        import time

        deadline = time.monotonic() + timeout
        while len(self.to(address)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.to(address)


class _Handler:
    def __init__(self, sink: Sink):
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd API
        if address.startswith("refused-"):  # lets tests see how a permanently refused address is handled
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
        self.sink.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def smtp_sink():
    sink = Sink(port=free_port())
    controller = Controller(_Handler(sink), hostname="127.0.0.1", port=sink.port)
    controller.start()
    yield sink
    controller.stop()


@pytest.fixture
def mails(smtp_sink):
    smtp_sink.clear()
    return smtp_sink


# Databases --------------------------------------------------------------------------------------


def _pg_admin():
    return sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


def _pg_url(name: str) -> str:
    return sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_template():
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL run skipped")
    name = f"integplan_tpl_{os.getpid()}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    dbm.upgrade(_pg_url(name))
    yield name
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tpl") / "template.db"
    dbm.upgrade(f"sqlite:///{path}")
    return path


@contextmanager
def fresh_database(request, tmp_path: Path, backend: str, prefix: str) -> Iterator[str]:
    """A fresh PostgreSQL database from the template (dropped afterwards), or a copy of the SQLite template."""
    if backend == "sqlite":
        path = tmp_path / "portal.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    template = request.getfixturevalue("pg_template")
    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    admin = _pg_admin()
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        try:
            yield _pg_url(name)
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    with fresh_database(request, tmp_path, request.param, "integplan_t_") as url:
        yield url


def app_config(db_url: str, tmp_path: Path, smtp_port: int, **extra) -> dict:
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key-not-for-production",
        "DATABASE_URL": db_url,
        "STORAGE_BACKEND": "local",
        "STORAGE_LOCAL_DIR": str(tmp_path / "files"),
        "MAIL_PORT": smtp_port,
        "MAIL_TIMEOUT": 3.0,
        "BASE_URL": "http://localhost",
        "RATELIMIT_STORAGE_URI": "memory://",
        # A real queue per test: jobs wait in it until run_jobs() (or a consumer thread) runs them.
        "TASK_QUEUE_URL": f"sqlite:///{tmp_path / 'tasks.db'}",
        **extra,
    }


@pytest.fixture
def app_overrides():
    """Tests override this (or use indirect parametrisation) to change the app's config."""
    return {}


@pytest.fixture
def app(db_url, tmp_path, smtp_sink, app_overrides):
    application = create_app(app_config(db_url, tmp_path, smtp_sink.port, **app_overrides))
    yield application
    application.extensions["db_engine"].dispose()
    application.extensions["huey"].storage.close()


# The task queue ---------------------------------------------------------------------------------


@pytest.fixture
def run_jobs(app):
    """run_jobs(): run every job waiting on the app's queue, in this thread, until the queue is empty (jobs
    that jobs enqueue too), as the worker would; returns how many ran. A job that raises fails the test.
    Mail, virus scans and previews happen only here (or in a worker), never in the request."""
    from huey import signals

    from portal import tasks

    huey = app.extensions["huey"]
    errors: list[str] = []

    def on_error(_signal, task, exc=None):
        errors.append(f"{task}: {exc!r}")

    huey.signal(signals.SIGNAL_ERROR)(on_error)

    def run() -> int:
        count = tasks.run_pending(app)
        if errors:
            raise AssertionError("jobs failed: " + "; ".join(errors))
        return count

    yield run
    huey.disconnect_signal(on_error)


def start_consumer(app, workers: int = 1, periodic: bool = False):
    """A real Huey consumer (scheduler and worker threads) for the app, as `flask --app portal worker` runs
    it, polling every 50 ms; stop it with consumer.stop(graceful=True). Signal handlers stay the test's."""
    consumer = app.extensions["huey"].create_consumer(workers=workers, periodic=periodic, worker_type="thread",
                                                      initial_delay=0.05, max_delay=0.05, backoff=1.0,
                                                      check_worker_health=False)
    consumer.scheduler.start()
    for _worker, thread in consumer.worker_threads:
        thread.start()
    return consumer


@pytest.fixture
def db(app):
    """A session of the test's own; no app context stays pushed (requests would share its `g`)."""
    with Session(app.extensions["db_engine"], expire_on_commit=False) as session:
        yield session


# Clients ----------------------------------------------------------------------------------------


CSRF_RE = re.compile(r'"X-CSRFToken": "([^"]+)"')


class PortalClient(FlaskClient):
    """A test client that fills in the CSRF token like the browser does."""

    htmx = False

    def open(self, *args, **kwargs):
        if self.htmx:
            headers = dict(kwargs.pop("headers", None) or {})
            headers.setdefault("HX-Request", "true")
            kwargs["headers"] = headers
        return super().open(*args, **kwargs)

    def csrf_token(self) -> str:
        page = FlaskClient.open(self, "/login", follow_redirects=True).get_data(as_text=True)
        return CSRF_RE.search(page).group(1)

    def submit(self, url: str, data: dict | None = None, **kwargs):
        """POST a form with a valid CSRF token."""
        data = dict(data or {})
        data.setdefault("csrf_token", self.csrf_token())
        return self.post(url, data=data, **kwargs)

    def login(self, user, password: str = "a long test password 2025"):
        resp = self.submit("/login", {"email": user.email, "password": password})
        assert resp.status_code == 303, resp.get_data(as_text=True)[:2000]
        return resp


@pytest.fixture
def client(app):
    app.test_client_class = PortalClient
    return app.test_client()


@pytest.fixture
def htmx_client(app):
    app.test_client_class = PortalClient
    c = app.test_client()
    c.htmx = True
    return c


# A real S3 server ----------------------------------------------------------------------------------


@pytest.fixture
def s3_bucket():
    if not S3_URL:
        pytest.skip('S3_ENDPOINT_URL not set: eval "$(scripts/s3-server.sh env)"')
    return f"test-receipts-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def app_config_s3(s3_bucket, app_overrides, app):
    """The test's app pointed at a fresh bucket on the real S3 server; the bucket is removed after."""
    from portal.storage.s3 import S3Storage

    storage = S3Storage(S3_URL, s3_bucket, region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    storage.ensure_ready()
    app.extensions["storage"] = storage
    yield app
    for key in list(storage.keys()):
        storage.delete(key)
    for upload in storage.client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []):
        storage.client.abort_multipart_upload(Bucket=s3_bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    storage.client.delete_bucket(Bucket=s3_bucket)
    storage.close()


class Delivered:
    """The SMTP sink as a registrant sees it once the worker has run: every read runs the queued jobs
    first (the requests themselves send nothing; test_tasks.py proves that for the outbox as a whole)."""

    def __init__(self, sink, run_jobs):
        self.sink, self.run_jobs, self.port = sink, run_jobs, sink.port

    def to(self, address: str):
        self.run_jobs()
        return self.sink.to(address)

    @property
    def messages(self):
        self.run_jobs()
        return self.sink.messages


@pytest.fixture
def delivered_mails(mails, run_jobs):
    """The SMTP sink read as a recipient would, after the queued jobs ran."""
    return Delivered(mails, run_jobs)


# The receipts' world: a partner organisation with a case and a budget line, its partner, two staff.
@pytest.fixture
def w(db):
    org = make_org(db, country="GE")
    case = make_case(db, org, country="GE")
    return {
        "org": org, "case": case, "line": make_line(db, case, planned_cents=100_000),
        "partner": make_user(db, organisation=org),
        "staff": make_user(db, role="staff"), "staff2": make_user(db, role="staff"),
    }


# The review desk (tests/test_review.py, tests/test_desk.py) ----------------------------------------

@pytest.fixture
def desk(db):
    """Two organisations in two countries, with one item of every kind waiting."""
    ge, sn = make_org(db, country="GE", name="Georgia Partner"), make_org(db, country="SN", name="Senegal Partner")
    case_ge, case_sn = make_case(db, ge, country="GE"), make_case(db, sn, country="SN")
    line_ge, line_sn = make_line(db, case_ge), make_line(db, case_sn)
    partner = make_user(db, organisation=ge)
    staff, staff2 = make_user(db, role="staff", name="Rita Reviewer"), make_user(db, role="staff", name="Otto Other")
    old = utcnow() - timedelta(days=10)
    new = make_receipt(db, case_ge, line_ge, supplier="Tbilisi Tools", eur_cents=25_000, amount_minor=25_000,
                       uploaded_by_id=partner.id, updated_at=old, duplicate_suspected=True)
    corrected = make_receipt(db, case_sn, line_sn, supplier="Graines du Sahel", eur_cents=40_000,
                             amount_minor=40_000, revision=2, over_budget=True, outside_period=True)
    second = make_receipt(db, case_ge, line_ge, supplier="Tbilisi Tools", eur_cents=150_000, amount_minor=150_000)
    db.add(ReceiptEvent(receipt_id=second.id, revision=1, actor_id=staff2.id, kind="first_approval"))
    no_rate = make_receipt(db, case_sn, line_sn, supplier="Marché Central", currency="XOF", amount_minor=65_000,
                           eur_cents=None, rate_missing=True)
    approved = make_receipt(db, case_sn, line_sn, supplier="Done Ltd", status="approved")
    visit = make_visit(db, case_sn, flag_health=True, flag_details="Needs a doctor")
    db.commit()
    return {"ge": ge, "sn": sn, "case_ge": case_ge, "case_sn": case_sn, "partner": partner, "staff": staff,
            "staff2": staff2, "new": new, "corrected": corrected, "second": second, "no_rate": no_rate,
            "approved": approved, "visit": visit}
