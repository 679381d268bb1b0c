"""Browser fixtures: Debian's Chromium through Playwright, and the real app served on loopback.

`live_server` serves a fresh app with the demo data from a thread (werkzeug on 127.0.0.1, a free port):
on a fresh PostgreSQL database when TEST_DATABASE_URL is set, else on an SQLite file; files go to a
fresh bucket on the real S3 server when S3_ENDPOINT_URL is set, else to a local directory.
Loaded as a plugin by tests/conftest.py (`pytest_plugins`), so its fixtures are everyone's.
"""

from __future__ import annotations

import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_babel import force_locale, gettext
from playwright.sync_api import Page, expect
from sqlmodel import Session
from werkzeug.serving import make_server

from portal import create_app
from portal.config import ROOT
from portal.demo import DEMO_PASSWORD, load_demo
from portal.i18n import money
from portal.storage import get_storage
from tests.fixtures import PG_URL, S3_URL, app_config, fresh_database, start_consumer

CHROMIUM = "/usr/bin/chromium"
AXE_JS = ROOT / "node_modules" / "axe-core" / "axe.min.js"
# A path the app never serves: the browser asks its own origin for it and Playwright answers.
AXE_PATH = "/__browser-tests__/axe.min.js"
BLOCKING = ("serious", "critical")


# Chromium and its contexts ----------------------------------------------------------------------

@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Debian's Chromium (never `playwright install`), kept off the network it cannot reach."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    return {**browser_type_launch_args,
            "executable_path": CHROMIUM,
            "args": ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]}


@pytest.fixture(scope="session")
def browser_context_args(playwright, device):
    """A British-English browser: the login page (chosen from Accept-Language) is in English.

    No `bypass_csp`: the tests run under the portal's real Content-Security-Policy, so an inline
    script or style in a template breaks them like it breaks a user's page. axe-core is injected in a
    way the CSP allows (see `axe_violations`).

    This replaces pytest-playwright's fixture instead of extending it, because that one requests
    `base_url`, which pytest-playwright 0.10 (without pytest-base-url installed) defines as a method
    of a plugin class; pytest >= 9.1 then warns "Session-scoped fixtures defined as instance methods
    are deprecated" (PytestRemovedIn10Warning), an error here. Each test's live server has its own
    URL anyway, so there is no base URL to give. `--device` still works; `--video` does not.
    """
    args = dict(playwright.devices[device]) if device else {}
    return {**args, "locale": "en-GB", "viewport": {"width": 1280, "height": 900}}


@pytest.fixture
def page(page):
    """pytest-playwright's page, failing within 10 s instead of 30 s when a control never appears."""
    page.set_default_timeout(10_000)
    return page


# The live server --------------------------------------------------------------------------------

@dataclass
class LiveServer:
    url: str
    app: Flask
    database: str  # "postgresql" or "sqlite"
    storage: str  # the storage backend's description

    def engine(self) -> sa.Engine:
        return self.app.extensions["db_engine"]

    def t(self, locale: str, message: str, **variables) -> str:
        """`message` as the portal shows it in `locale` (so tests survive new translations)."""
        with self.app.test_request_context(), force_locale(locale):
            return gettext(message, **variables)

    def money(self, locale: str, cents: int) -> str:
        """An amount as the portal formats it in `locale`."""
        with self.app.test_request_context(), force_locale(locale):
            return money(cents)


def _drop_bucket(storage) -> None:
    """Remove what the test stored, then the bucket."""
    client = storage.client
    for upload in client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", []):
        client.abort_multipart_upload(Bucket=storage.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    for _attempt in range(5):
        for key in list(storage.keys()):
            storage.delete(key)
        try:
            client.delete_bucket(Bucket=storage.bucket)
            break
        except client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "BucketNotEmpty":
                raise
            time.sleep(0.2)
    storage.close()


@pytest.fixture
def live_server(request, tmp_path, smtp_sink) -> Iterator[LiveServer]:
    """The real portal with the demo data, served over HTTP on 127.0.0.1 from a background thread."""
    with ExitStack() as cleanup:
        db_url = cleanup.enter_context(fresh_database(request, tmp_path, "postgresql" if PG_URL else "sqlite",
                                                              "integplan_b_"))
        storage_config = {}
        if S3_URL:
            storage_config = {"STORAGE_BACKEND": "s3", "S3_ENDPOINT_URL": S3_URL,
                              "S3_BUCKET": f"browser-{uuid.uuid4().hex}"}
        app = create_app(app_config(db_url, tmp_path, smtp_sink.port, **storage_config))
        cleanup.callback(app.extensions["db_engine"].dispose)
        with app.app_context():
            storage = get_storage()
            storage.ensure_ready()
            if S3_URL:
                cleanup.callback(_drop_bucket, storage)
            with Session(app.extensions["db_engine"], expire_on_commit=False) as session:
                load_demo(session)
            description = storage.describe()
        # The worker, as `make run` starts it: mail and virus scans happen on the task queue.
        cleanup.callback(app.extensions["huey"].storage.close)
        consumer = start_consumer(app, workers=2)
        cleanup.callback(consumer.stop, graceful=True)

        # Port 0: the kernel picks a free port as it binds, so no other process can take it meanwhile.
        server = make_server("127.0.0.1", 0, app, threaded=True)
        # server_close() waits for requests still in flight (a lazily made preview, say) before the
        # database and the bucket are removed.
        server.daemon_threads, server.block_on_close = False, True
        cleanup.callback(server.server_close)
        # A short poll interval: shutdown() waits up to one interval for the serving loop to notice.
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                  name="live-server", daemon=True)
        thread.start()
        cleanup.callback(thread.join, 10)
        cleanup.callback(server.shutdown)
        yield LiveServer(url=f"http://127.0.0.1:{server.server_port}", app=app,
                         database="postgresql" if PG_URL else "sqlite", storage=description)


# Helpers for the tests --------------------------------------------------------------------------

def sign_in(page: Page, live_server: LiveServer, email: str, password: str = DEMO_PASSWORD) -> None:
    """Sign in through the real form, like a person (the login page is in English: browser locale)."""
    page.goto(f"{live_server.url}/login")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{live_server.url}/cases/")
    # The URL changes before the page's deferred scripts ran: htmx would miss a change made before "load".
    page.wait_for_load_state("load")


# Contexts whose requests for AXE_PATH Playwright answers with node_modules/axe-core/axe.min.js.
_axe_routed: weakref.WeakSet = weakref.WeakSet()


def axe_violations(page: Page, impacts: tuple[str, ...] = BLOCKING) -> list[dict]:
    """Run axe-core on the page as it is now; the violations of the given impacts.

    The portal's CSP (`script-src 'self'`) blocks inline scripts, and `add_script_tag(path=...)`
    injects axe as an inline script. Rather than `bypass_csp=True` (which would switch the CSP off
    for the whole context and hide the very inline scripts/styles the CSP test looks for), the page
    loads axe from a URL of its own origin, which `script-src 'self'` allows, and Playwright answers
    that request from node_modules.
    """
    if not AXE_JS.exists():  # else the routed request is never answered and the page waits for ever
        pytest.fail(f"{AXE_JS} is missing: install the node packages (npm ci)")
    context = page.context
    if context not in _axe_routed:
        context.route(f"**{AXE_PATH}", lambda route: route.fulfill(
            path=AXE_JS, content_type="text/javascript; charset=utf-8"))
        _axe_routed.add(context)
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(url=urljoin(page.url, AXE_PATH))
    return page.evaluate(
        """async (impacts) => {
            const result = await axe.run(document, {resultTypes: ["violations"]});
            return result.violations.filter(v => impacts.includes(v.impact)).map(v => ({
                id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
                nodes: v.nodes.map(n => ({target: n.target.join(" "), html: n.html,
                                          summary: n.failureSummary})),
            }));
        }""",
        list(impacts),
    )


def format_violations(violations: list[dict]) -> str:
    """One readable block per violation: rule, impact, element, what to fix."""
    lines = []
    for v in violations:
        lines.append(f"- {v['id']} ({v['impact']}): {v['help']} <{v['helpUrl']}>")
        for node in v["nodes"]:
            lines.append(f"    at {node['target']}: {node['html'][:200]}")
            lines.append("      " + (node["summary"] or "").replace("\n", "\n      "))
    return "\n".join(lines)


def watch_csp(page: Page) -> list[str]:
    """Collect the console messages in which Chromium reports a Content-Security-Policy violation."""
    reported: list[str] = []

    def _check(msg) -> None:
        if "Content Security Policy" in msg.text:
            reported.append(msg.text)

    page.on("console", _check)
    return reported
