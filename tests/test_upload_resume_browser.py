"""Resumable uploads in a real Chromium at 360×740 (issue 12, item 2): Uppy with its tus uploader against
the portal's tus server, under the real CSP. A chosen file uploads at once with its own progress, survives
going offline and a page reload (resuming from the server's offset: the bytes the server read are
counted), a form error keeps the uploaded file, and visit photos take the same path."""

from __future__ import annotations

import io
import re
import threading
from uuid import uuid4

import pytest
from PIL import Image, ImageFilter
from playwright.sync_api import Page, expect
from sqlmodel import Session, select

from portal.auth.models import User
from portal.cases.models import BudgetLine, Case
from portal.receipts.models import ReceiptFile
from portal.visits.models import VisitPhoto
from tests.browser_fixtures import axe_violations, format_violations, sign_in, watch_csp
from tests.factories import make_visit

pytestmark = pytest.mark.browser

PARTNER = "partner.a@example.org"
# The link: a 2G-like download (the page takes its slow-link rules: small tus pieces, 1600 px photos) and an
# upload slow enough to cut it half-way, fast enough for a test.
SLOW = {"offline": False, "latency": 40, "downloadThroughput": 250_000 // 8, "uploadThroughput": 600_000 // 8}
OFFLINE = {**SLOW, "offline": True}
FAST = {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}


class PatchBytes:
    """Counts, in the live server, the request body bytes the tus endpoint read (PATCH) and the uploads
    created (POST): what the browser managed to send, including pieces cut off half-way."""

    def __init__(self, app):
        self.read = 0
        self.created = 0
        self._lock = threading.Lock()
        inner = app.wsgi_app

        def counting(environ, start_response):
            path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD")
            if path.startswith("/uploads/") and method == "POST":
                with self._lock:
                    self.created += 1
            if path.startswith("/uploads/") and method == "PATCH":
                environ["wsgi.input"] = _Counted(environ["wsgi.input"], self)
            return inner(environ, start_response)

        app.wsgi_app = counting

    def add(self, n: int) -> None:
        with self._lock:
            self.read += n


class _Counted:
    def __init__(self, stream, counter: PatchBytes):
        self._stream, self._counter = stream, counter

    def read(self, *args):
        data = self._stream.read(*args)
        self._counter.add(len(data))
        return data

    def readline(self, *args):
        data = self._stream.readline(*args)
        self._counter.add(len(data))
        return data

    def readinto(self, buffer):  # werkzeug's LimitedStream reads this way when it can
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def photo_bytes(size=(1500, 1050), quality=95) -> bytes:
    """A photo-like JPEG of about 1.2 MB that the browser sends as it is (within 1600 px and 1.5 MB)."""
    img = Image.effect_noise(size, 50).convert("RGB").filter(ImageFilter.GaussianBlur(0.4))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


def _partner_case(live_server) -> tuple[int, str]:
    with Session(live_server.engine()) as s:
        partner = s.exec(select(User).where(User.email == PARTNER)).one()
        partner.locale = "en"  # the demo partner reads Russian; these tests drive the English labels
        s.add(partner)
        s.commit()
        case = s.exec(select(Case).join(BudgetLine, BudgetLine.case_id == Case.id)
                      .where(Case.organisation_id == partner.organisation_id)).first()
        line = s.exec(select(BudgetLine).where(BudgetLine.case_id == case.id)).first()
        return case.id, line.description


def _fill(page: Page, line: str, supplier: str, amount: str = "120.00") -> None:
    page.get_by_label("Budget line").select_option(label=line)
    page.get_by_label("Supplier name").fill(supplier)
    page.get_by_label("Supplier invoice number").fill(uuid4().hex[:8])
    page.get_by_label("Invoice date").fill("2024-04-02")
    page.get_by_label("Amount", exact=True).fill(amount)
    page.get_by_label("Currency").select_option("EUR")
    page.get_by_label("Description of the goods").fill("Sewing machine")
    page.get_by_label("The supplier was paid directly").check()


def _start(page: Page, live_server, path: str):
    page.set_viewport_size({"width": 360, "height": 740})
    page.on("dialog", lambda dialog: dialog.accept())  # the leave warning while uploading: leave
    sign_in(page, live_server, PARTNER)
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", SLOW)
    page.goto(live_server.url + path)
    return cdp


def _progress(page: Page) -> int:
    bar = page.locator(".upload-card progress")
    return int(bar.first.evaluate("el => el.value")) if bar.count() else 0


def _wait_progress(page: Page, at_least: int, timeout_s: float = 30) -> int:
    for _ in range(int(timeout_s * 10)):
        value = _progress(page)
        if value >= at_least:
            return value
        page.wait_for_timeout(100)
    raise AssertionError(f"the upload never reached {at_least} % (at {_progress(page)} %)")


def _ready_card(page: Page, name: str):
    card = page.locator(".upload-card", has=page.locator("input[type=hidden][name=uploads]")).filter(has_text=name)
    expect(card).to_have_count(1, timeout=60_000)
    return card


def test_an_upload_survives_going_offline_and_the_form_waits_for_it(live_server, page, tmp_path):
    csp = watch_csp(page)
    counter = PatchBytes(live_server.app)
    case_id, line = _partner_case(live_server)
    photo = tmp_path / "IMG_offline.jpg"
    photo.write_bytes(photo_bytes())
    size = photo.stat().st_size
    cdp = _start(page, live_server, f"/cases/{case_id}/receipts/new")
    _fill(page, line, "Offline Upload Ltd")

    page.get_by_label("Receipt files").set_input_files(str(photo))
    # Out of the plain input (the form must not send it a second time), into its own card with progress
    # (the upload code is fetched when the field is used: static/js/uploads-loader.js).
    expect(page.get_by_role("progressbar", name="IMG_offline.jpg")).to_be_visible()
    assert page.get_by_label("Receipt files").evaluate("el => el.files.length") == 0
    _wait_progress(page, 25)

    cdp.send("Network.emulateNetworkConditions", OFFLINE)
    expect(page.locator(".upload-field").get_by_text("No connection – the upload continues when you are back online")
           .first).to_be_visible()
    # Sent while the file is still uploading: the form waits, says so, and goes when the file is there.
    page.get_by_role("button", name="Submit receipt").click()
    expect(page.get_by_role("alert").filter(has_text="Wait until the files are uploaded")).to_be_visible()
    page.wait_for_timeout(2500)
    assert "/receipts/new" in page.url
    cdp.send("Network.emulateNetworkConditions", SLOW)

    page.wait_for_url(re.compile(r".*/receipts/\d+$"), timeout=60_000)
    receipt_id = int(page.url.rsplit("/", 1)[-1])
    with Session(live_server.engine()) as s:
        row = s.exec(select(ReceiptFile).where(ReceiptFile.receipt_id == receipt_id)).one()
    assert row.original_filename == "IMG_offline.jpg"
    assert counter.created == 1, "the upload was started again instead of resumed"
    assert size <= counter.read <= 1.15 * size, f"{counter.read} bytes read for a {size}-byte file"
    assert csp == []


def test_an_upload_resumes_after_a_reload_from_the_servers_offset(live_server, page, tmp_path):
    counter = PatchBytes(live_server.app)
    case_id, line = _partner_case(live_server)
    photo = tmp_path / "IMG_reload.jpg"
    photo.write_bytes(photo_bytes())
    size = photo.stat().st_size
    _start(page, live_server, f"/cases/{case_id}/receipts/new")
    page.get_by_label("Receipt files").set_input_files(str(photo))
    _wait_progress(page, 35)
    page.reload()

    # Golden Retriever put the file back; tus asks the server how far it got and carries on from there.
    expect(page.locator(".upload-card").filter(has_text="IMG_reload.jpg")).to_have_count(1)
    assert _progress(page) >= 30
    _ready_card(page, "IMG_reload.jpg")
    assert counter.created == 1, "the upload was started again instead of resumed"
    assert size <= counter.read <= 1.15 * size, f"{counter.read} bytes read for a {size}-byte file"

    # A second reload: the finished upload is still listed (from the device), then the form is sent with it.
    page.reload()
    _ready_card(page, "IMG_reload.jpg")
    _fill(page, line, "Reloaded Upload Ltd")
    page.get_by_role("button", name="Submit receipt").click()
    page.wait_for_url(re.compile(r".*/receipts/\d+$"), timeout=30_000)
    receipt_id = int(page.url.rsplit("/", 1)[-1])
    with Session(live_server.engine()) as s:
        assert s.exec(select(ReceiptFile).where(ReceiptFile.receipt_id == receipt_id)).one().size > 0


def test_a_form_error_keeps_the_uploaded_file(live_server, page, tmp_path):
    case_id, line = _partner_case(live_server)
    photo = tmp_path / "IMG_kept.jpg"
    photo.write_bytes(photo_bytes(size=(900, 700)))
    cdp = _start(page, live_server, f"/cases/{case_id}/receipts/new")
    cdp.send("Network.emulateNetworkConditions", FAST)
    page.get_by_label("Receipt files").set_input_files(str(photo))
    _ready_card(page, "IMG_kept.jpg")
    _fill(page, line, "Typo Amount Ltd", amount="12O.00")  # a letter O
    page.get_by_role("button", name="Submit receipt").click()

    expect(page.locator(".error-summary")).to_be_visible()
    card = _ready_card(page, "IMG_kept.jpg")  # still listed, still part of the form
    expect(card.get_by_role("button", name=re.compile("Remove"))).to_be_visible()
    violations = axe_violations(page)
    assert violations == [], format_violations(violations)
    page.get_by_label("Amount", exact=True).fill("120.00")
    page.get_by_role("button", name="Submit receipt").click()
    page.wait_for_url(re.compile(r".*/receipts/\d+$"), timeout=30_000)
    receipt_id = int(page.url.rsplit("/", 1)[-1])
    with Session(live_server.engine()) as s:
        row = s.exec(select(ReceiptFile).where(ReceiptFile.receipt_id == receipt_id)).one()
    assert row.original_filename == "IMG_kept.jpg"

    # The add-files form of the saved receipt: the purpose is what its "Type of file" select says.
    proof = tmp_path / "IMG_handover.jpg"
    proof.write_bytes(photo_bytes(size=(800, 600)))
    page.get_by_label("Type of file").select_option("handover")
    page.get_by_label("Files", exact=True).set_input_files(str(proof))
    _ready_card(page, "IMG_handover.jpg")
    page.get_by_role("button", name="Add files").click()
    expect(page.get_by_role("table").get_by_text("IMG_handover.jpg")).to_be_visible(timeout=30_000)
    with Session(live_server.engine()) as s:
        added = s.exec(select(ReceiptFile).where(ReceiptFile.receipt_id == receipt_id)
                       .where(ReceiptFile.original_filename == "IMG_handover.jpg")).one()
    assert added.kind == "handover"

    # A shared phone: signing out forgets the files and resume URLs kept on the device.
    page.evaluate("() => { localStorage.setItem('tus::tus-x::1', '{}');"
                  " localStorage.setItem('integplan-uploads:receipt-1--', '[]'); }")
    databases = "async () => (await indexedDB.databases()).map(d => d.name)"
    assert "uppy-blobs" in page.evaluate(databases)
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r".*/login.*"))
    assert page.evaluate("() => Object.keys(localStorage).filter(k => /^(tus::|uppyState:|integplan-)/.test(k))") == []
    assert "uppy-blobs" not in page.evaluate(databases)


def test_a_visit_photo_takes_the_same_path(live_server, page, tmp_path):
    with Session(live_server.engine()) as s:
        partner = s.exec(select(User).where(User.email == PARTNER)).one()
        partner.locale = "en"
        s.add(partner)
        s.commit()
        case = s.exec(select(Case).where(Case.organisation_id == partner.organisation_id)).first()
        visit_id = make_visit(s, case, created_by_id=partner.id).id
    photo = tmp_path / "IMG_visit.jpg"
    photo.write_bytes(photo_bytes(size=(2400, 1800), quality=90))
    _start(page, live_server, f"/visits/{visit_id}")
    field = page.get_by_label("Photo", exact=True)
    assert field.get_attribute("capture") == "environment" and "image/" in field.get_attribute("accept")
    field.set_input_files(str(photo))
    _ready_card(page, "IMG_visit.jpg")
    page.get_by_label("The returnee agreed to this photo").check()
    page.get_by_role("button", name="Add photo").click()
    expect(page.locator("#photos").get_by_text("IMG_visit.jpg")).to_be_visible(timeout=30_000)
    with Session(live_server.engine()) as s:
        row = s.exec(select(VisitPhoto).where(VisitPhoto.visit_id == visit_id)
                     .where(VisitPhoto.original_filename == "IMG_visit.jpg")).one()
    with live_server.app.app_context():
        from portal.storage import get_storage

        with get_storage().open(row.key) as fh, Image.open(fh) as img:
            assert max(img.size) == 1600  # shrunk in the browser by the slow-link rules
