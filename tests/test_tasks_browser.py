"""The receipt page while the worker checks a file: "Pending virus scan", then "clean" without a reload.

The live server runs a real Huey consumer (tests/browser_fixtures.py), as `make run` starts the worker.
"""

from __future__ import annotations

import io

import pytest
from playwright.sync_api import Page, expect
from sqlmodel import Session, select

from portal import tasks
from portal.auth.models import User
from portal.cases.models import BudgetLine, Case
from portal.demo import DEMO_PASSWORD
from portal.receipts.models import ReceiptFile
from tests.browser_fixtures import sign_in
from tests.fixtures import PortalClient, free_port
from tests.helpers import CLAMD_HOST, CLAMD_PORT, clean_pdf, scan_upload

PARTNER = "partner.a@example.org"  # Nino Partner


@pytest.mark.browser
def test_the_receipt_page_updates_itself_when_the_worker_has_checked_the_file(page: Page, live_server):
    if not CLAMD_HOST:
        pytest.skip("TEST_CLAMD_HOST is not set (scripts/clamd.sh start)")
    app = live_server.app
    app.config.update(CLAMD_HOST=CLAMD_HOST, CLAMD_PORT=free_port(), CLAMD_TIMEOUT=5.0)  # clamd is down at first
    with Session(live_server.engine()) as db:
        partner = db.exec(select(User).where(User.email == PARTNER)).one()
        case = db.exec(select(Case).where(Case.organisation_id == partner.organisation_id)).first()
        line = db.exec(select(BudgetLine).where(BudgetLine.case_id == case.id)).first()
    app.test_client_class = PortalClient
    client = app.test_client()
    client.login(partner, DEMO_PASSWORD)
    resp = scan_upload(client, {"case": case, "line": line}, [(io.BytesIO(clean_pdf()), "scan.pdf")])
    assert resp.status_code == 303
    receipt_id = int(resp.location.rsplit("/", 1)[-1])

    def t(message: str) -> str:  # the partner reads the portal in her own language
        return live_server.t(partner.locale or "en", message)

    sign_in(page, live_server, PARTNER)
    page.goto(f"{live_server.url}/receipts/{receipt_id}")
    files = page.locator("#receipt-files")
    expect(files).to_contain_text(t("Pending virus scan"))
    expect(files.get_by_role("status")).to_have_text(t("Files are being checked for viruses. This list updates itself when the check is done."))

    app.config["CLAMD_PORT"] = CLAMD_PORT  # clamd is back; the worker scans the file
    with Session(live_server.engine()) as db:
        row = db.exec(select(ReceiptFile).where(ReceiptFile.receipt_id == receipt_id)).one()
    with app.app_context():
        assert tasks.enqueue("scan_file", "receipt_file", row.id)
    expect(files).to_contain_text(t("Virus scan: clean"), timeout=20_000)  # no reload: the list asked again
    expect(files.get_by_role("status")).to_have_count(0)
    expect(files.get_by_role("link", name="scan.pdf")).to_be_visible()
    page.wait_for_timeout(3500)
    expect(page.locator("[hx-trigger]")).to_have_count(0)  # nothing pending: the polling stopped
