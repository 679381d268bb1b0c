"""Every page a partner or a public workshop registrant uses, on a 360 × 740 phone, in Arabic (right to
left), French, Russian and German: no horizontal scrolling, touch targets of at least 44 × 44 CSS px, and
no serious axe-core violations. Staff pages at 768 px: no horizontal scrolling.

The walk is complete by construction: every GET route of the app is either walked here or listed as
excluded with its reason (staff only, a file rather than a page, a redirect), so a new page fails
`test_every_page_is_walked_or_excluded` until it gets its check.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from datetime import date, timedelta

import pyotp
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlmodel import Session, select

from portal.auth import services as auth_services
from portal.auth import totp
from portal.auth.models import User
from portal.cases.models import Case
from portal.demo import DEMO_PASSWORD
from portal.receipts.models import Receipt
from portal.visits.models import Visit
from portal.workshop import services as workshop_services
from tests.browser_fixtures import axe_violations, format_violations
from tests.factories import make_registration, make_workshop

pytestmark = pytest.mark.browser

LANGUAGES = ("ar", "fr", "ru", "de")
PHONE = {"width": 360, "height": 740}
TABLET = {"width": 768, "height": 1024}
TARGET = 44  # CSS px, WCAG 2.5.5
PARTNER = "partner.a@example.org"  # Nino Partner, Tbilisi Reintegration Centre
STAFF = "staff@example.org"

# The pages, by endpoint: a function of the walk's data (`d`) giving the path to open.
PUBLIC_PAGES: dict[str, Callable[[dict], str]] = {
    "auth.login": lambda d: "/login",
    "auth.login_code": lambda d: "/login/code",  # after the password step of a user with two-factor sign-in
    "auth.request_reset": lambda d: "/reset",
    "auth.reset_password": lambda d: f"/reset/{d['reset_token']}",
    "auth.accept_invitation": lambda d: f"/invitation/{d['invite_token']}",
    "workshop.register": lambda d: f"/workshops/join/{d['workshop_key']}",
    "workshop.sent": lambda d: f"/workshops/join/{d['workshop_key']}/sent",
    "workshop.confirm": lambda d: f"/workshops/confirm/{d['confirm_token']}",
    "workshop.manage": lambda d: f"/workshops/my/{d['manage_token']}",
    "workshop.privacy": lambda d: "/workshops/privacy",
}
PARTNER_PAGES: dict[str, Callable[[dict], str]] = {
    "cases.index": lambda d: "/cases/",
    "cases.show": lambda d: f"/cases/{d['case_id']}",
    "receipts.new": lambda d: f"/cases/{d['case_id']}/receipts/new",
    "receipts.show": lambda d: f"/receipts/{d['receipt_id']}",
    "receipts.edit": lambda d: f"/receipts/{d['receipt_id']}/edit",
    "visits.create": lambda d: f"/cases/{d['case_id']}/visits/new",
    "visits.show": lambda d: f"/visits/{d['visit_id']}",
    "visits.due": lambda d: "/visits/due",
    "receipts.search": lambda d: "/receipts/search?q=Tbilisi",
    "auth.account": lambda d: "/account",
    "auth.two_factor": lambda d: "/account/two-factor",
}
# Pages that are not an endpoint of their own: error pages and a link that no longer works.
EXTRA_PUBLIC = {"error page (404, public)": "/workshops/join/no-such-workshop",
                "link expired": "/reset/no-such-token"}
EXTRA_PARTNER = {"error page (404)": "/cases/99999999", "error page (404, a staff page)": "/organisations/"}

EXCLUDED = {
    # Not a page: a redirect, a file or data download.
    "index": "redirects to the case list or the sign-in page",
    "static": "static files",
    "receipts.download": "a stored file (attachment)",
    "receipts.rate_evidence": "a kept rate file (attachment), staff only",
    "receipts.preview": "an image",
    "receipts.files_part": "a receipt's file list, a fragment the receipt page (walked) polls while a scan runs",
    "visits.photos_part": "a visit's photo list, a fragment the visit page (walked) polls while a scan runs",
    "health.healthz": "a health check for the proxy and systemd (plain text)",
    "ocr.suggestions": "suggestions from an uploaded receipt, a fragment inside the new-receipt form (shown at 360 px in tests/test_ocr_prefill.py)",
    "ocr.text": "the recognised text of a receipt, a staff fragment inside the desk and the receipt page",
    "uploads.card": "an upload's card, a fragment inside the receipt and visit forms (walked with a file in tests/test_upload_resume_browser.py)",
    "visits.photo": "a stored photo",
    "cases.privacy_export": "JSON download, administrators only",
    "cases.line": "an htmx fragment for staff (cancel an edit); a plain GET redirects to the case",
    # Staff only (Micado staff and administrators).
    "auth.users": "staff", "auth.invite": "staff",
    "orgs.index": "staff", "orgs.create": "staff", "orgs.edit": "staff",
    "cases.create": "staff", "cases.edit": "staff", "cases.edit_line": "staff", "cases.countries": "staff",
    "cases.privacy_erase": "administrators",
    "receipts.queue": "staff", "receipts.rates": "staff",
    "reports.index": "staff", "reports.dashboard": "staff", "reports.audit_log": "staff",
    "reports.audit_csv": "staff (file)", "reports.belegliste_csv": "staff (file)",
    "reports.belegliste_xlsx": "staff (file)",
    "review.index": "staff", "review.samples": "staff", "review.sample": "staff",
    "visits.flagged": "staff",
    "workshop.index": "staff", "workshop.show": "staff", "workshop.create": "staff", "workshop.edit": "staff",
    "workshop.add_registration": "staff", "workshop.registration": "staff",
    "workshop.badges": "staff (PDF)", "workshop.export_csv": "staff (file)",
    "workshop.export_xlsx": "staff (file)", "workshop.visa_letter": "staff (PDF)",
}
STAFF_PAGES = {"review desk": "/review/", "dashboard": "/reports/dashboard", "case list": "/cases/"}

# One evaluation per page: the page's width against the screen's, and every visible control of the
# header and the main content that is smaller than a 44 × 44 px target. A link inside running text (a
# sentence, a timeline entry) is exempt, as WCAG 2.5.5 exempts inline targets; for a checkbox or a radio
# the clickable area is the box together with its label.
MEASURE = """(target) => {
  const inner = window.innerWidth;
  const visible = (el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== "hidden"
      && !el.closest(".visually-hidden, .skip, [hidden]");
  };
  const inRunningText = (el) => {
    const block = el.parentElement.closest("p, dd, li, td, th, label, .hint, h1, h2, h3, figcaption, legend, span");
    return block !== null && block.textContent.trim() !== el.textContent.trim();
  };
  const small = [];
  const controls = document.querySelectorAll(
    "header.top :is(a, button, select, input[type=checkbox], input[type=radio], input[type=submit], summary),"
    + "main :is(a, button, select, input[type=checkbox], input[type=radio], input[type=submit], summary)");
  for (const el of controls) {
    if (!visible(el)) continue;
    if (el.matches("a") && inRunningText(el)) continue;
    let r = el.getBoundingClientRect();
    let box = {left: r.left, right: r.right, top: r.top, bottom: r.bottom};
    if (el.matches("input[type=checkbox], input[type=radio]")) {
      for (const label of el.labels || []) {
        const l = label.getBoundingClientRect();
        box = {left: Math.min(box.left, l.left), right: Math.max(box.right, l.right),
               top: Math.min(box.top, l.top), bottom: Math.max(box.bottom, l.bottom)};
      }
    }
    const w = box.right - box.left, h = box.bottom - box.top;
    if (w < target - 0.5 || h < target - 0.5) {
      small.push(`${el.outerHTML.slice(0, 120)} is ${w.toFixed(0)}×${h.toFixed(0)}`);
    }
  }
  // Checkboxes and radios are drawn visibly larger than the 13 px default.
  for (const box of document.querySelectorAll("main input[type=checkbox], main input[type=radio]")) {
    const r = box.getBoundingClientRect();
    if (visible(box) && (r.width < 20 || r.height < 20)) small.push(`${box.outerHTML.slice(0, 120)} box is ${r.width.toFixed(0)}×${r.height.toFixed(0)}`);
  }
  // A reference or an amount isolated with <bdi> stays on one line (in Arabic it used to break at "IP-").
  const broken = [...document.querySelectorAll("bdi:not(.wrap)")].filter(
    (b) => visible(b) && new Set([...b.getClientRects()].map((r) => Math.round(r.bottom))).size > 1
  ).map((b) => b.textContent);  // one rectangle per bidi run, but all on one line
  const wide = [];
  if (document.documentElement.scrollWidth > inner) {
    for (const el of document.body.querySelectorAll("*")) {
      const r = el.getBoundingClientRect();
      if ((r.right > inner + 0.5 || r.left < -0.5) && r.width > 0 && !el.closest(".visually-hidden, .skip")) {
        wide.push(`${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}${el.className && typeof el.className === "string" ? "." + el.className.trim().replace(/\\s+/g, ".") : ""} [${r.left.toFixed(0)}, ${r.right.toFixed(0)}]`);
      }
    }
  }
  return {scrollWidth: document.documentElement.scrollWidth, innerWidth: inner, small, broken,
          wide: wide.slice(0, 12)};
}"""


def test_every_page_is_walked_or_excluded(app):
    """A GET route that is neither walked on the phone nor excluded with a reason fails the suite."""
    walked = set(PUBLIC_PAGES) | set(PARTNER_PAGES)
    assert not walked & set(EXCLUDED), walked & set(EXCLUDED)
    gettable = {rule.endpoint for rule in app.url_map.iter_rules() if "GET" in (rule.methods or ())}
    missing = gettable - walked - set(EXCLUDED)
    assert not missing, f"pages without a phone check (walk them or exclude them with a reason): {sorted(missing)}"
    stale = (walked | set(EXCLUDED)) - gettable
    assert not stale, f"listed but not a GET route any more: {sorted(stale)}"


# The walk --------------------------------------------------------------------------------------

def _walk_data(live_server) -> dict:
    """Tokens and objects the pages need, made once: the demo data plus visits, links and a workshop."""
    app = live_server.app
    with app.test_request_context(), Session(live_server.engine(), expire_on_commit=False) as db:
        partner = db.exec(select(User).where(User.email == PARTNER)).one()
        receipt = db.exec(select(Receipt).where(Receipt.supplier == "Fabric House")).one()  # not yet decided
        case = db.get(Case, receipt.case_id)
        visit = None
        for n, (scores, flag) in enumerate((((2, 2, 1), False), ((3, 3, 2), False), ((3, 4, 3), True))):
            visit = Visit(case_id=case.id, draft_key=uuid.uuid4().hex, created_by_id=partner.id,
                          visit_date=date.today() - timedelta(days=60 * (2 - n)), mode="business",
                          purpose="monitoring", returnee_met=True, score_economic=scores[0],
                          score_social=scores[1], score_psychosocial=scores[2], flag_psychosocial=flag,
                          flag_details="Sorgen wegen der Miete; Nachbarschaftsstreitigkeiten" if flag else "",
                          place="Rustavi, Kvemo-Kartli", attendees="returnee, spouse, case worker",
                          next_visit_date=date.today() + timedelta(days=3))
            db.add(visit)
        db.commit()
        reset_token = auth_services.issue_token(db, partner, auth_services.RESET, timedelta(hours=1))
        invitee = auth_services.create_user(db, email="invitee@example.org", name="Invited Partner",
                                            role="partner", organisation_id=partner.organisation_id,
                                            password=DEMO_PASSWORD, locale="en")
        invite_token = auth_services.issue_token(db, invitee, auth_services.INVITE, timedelta(hours=1))
        two_factor = auth_services.create_user(db, email="twofactor@example.org", name="Code Partner",
                                               role="partner", organisation_id=partner.organisation_id,
                                               password=DEMO_PASSWORD, locale="en")
        secret = totp.new_secret()
        assert totp.enable(db, two_factor, secret, pyotp.TOTP(secret).now())
        db.commit()
        workshop = make_workshop(db, title="Erfahrungsaustausch der Rückkehrberatungsstellen",
                                 registration_deadline=date.today() + timedelta(days=20))
        unconfirmed = make_registration(db, workshop, status="unconfirmed")
        confirmed = make_registration(db, workshop, email="olga.petrova-ivanova@organisation.example.org")
        return {"case_id": case.id, "receipt_id": receipt.id, "visit_id": visit.id,
                "case_ref": case.reference, "receipt_ref": receipt.reference,
                "reset_token": reset_token, "invite_token": invite_token,
                "workshop_key": workshop.public_key,
                "confirm_token": workshop_services.make_token(unconfirmed, workshop_services.CONFIRM),
                "manage_token": workshop_services.make_token(confirmed, workshop_services.MANAGE)}


def _set_locale(live_server, email: str, locale: str) -> None:
    with Session(live_server.engine()) as db:
        user = db.exec(select(User).where(User.email == email)).one()
        user.locale = locale
        db.add(user)
        db.commit()


def _sign_in(page: Page, live_server, lang: str, email: str) -> None:
    """The sign-in form in the browser's language (its labels looked up in the catalogue)."""
    page.goto(f"{live_server.url}/login")
    page.get_by_label(live_server.t(lang, "Email"), exact=True).fill(email)
    page.get_by_label(live_server.t(lang, "Password"), exact=True).fill(DEMO_PASSWORD)
    page.get_by_role("button", name=live_server.t(lang, "Sign in"), exact=True).click()
    page.wait_for_load_state("load")


def _check(page: Page, url: str, name: str, problems: list[str], *, targets: bool = True, axe: bool = True,
           goto: bool = True) -> None:
    if goto:
        response = page.goto(url)
        assert response is not None
    page.wait_for_load_state("load")
    found = page.evaluate(MEASURE, TARGET)
    if found["scrollWidth"] > found["innerWidth"]:
        problems.append(f"{name}: {found['scrollWidth']} px wide on a {found['innerWidth']} px screen; "
                        f"too wide: {found['wide']}")
    if found["broken"]:
        problems.append(f"{name}: references broken across lines: {found['broken']}")
    if targets and found["small"]:
        problems.append(f"{name}: targets under {TARGET}×{TARGET} px: " + "; ".join(found["small"]))
    if axe:
        violations = axe_violations(page)
        if violations:
            problems.append(f"{name}: axe-core:\n{format_violations(violations)}")


def test_partner_and_public_pages_fit_a_phone_in_four_languages(browser: Browser, live_server):
    data = _walk_data(live_server)
    problems: list[str] = []
    # PHONE_LANGS=ar,de narrows the walk while working on a page; the suite walks all four.
    for lang in os.environ.get("PHONE_LANGS", ",".join(LANGUAGES)).split(","):
        # Not `is_mobile`: a mobile viewport widens itself to fit content that overflows (and zooms out),
        # which would hide the very overflow measured here; a 360 px desktop viewport stays 360 px.
        context = browser.new_context(locale=lang, viewport=PHONE)
        page = context.new_page()
        page.set_default_timeout(10_000)
        try:
            # The public pages, in the browser's language.
            for endpoint, path in PUBLIC_PAGES.items():
                if endpoint == "auth.login_code":
                    continue
                _check(page, live_server.url + path(data), f"[{lang}] {endpoint}", problems)
                expect(page.locator("html")).to_have_attribute("lang", lang)
            for name, path in EXTRA_PUBLIC.items():
                _check(page, live_server.url + path, f"[{lang}] {name}", problems)
            # The code step of a two-factor sign-in.
            _set_locale(live_server, "twofactor@example.org", lang)
            _sign_in(page, live_server, lang, "twofactor@example.org")
            expect(page).to_have_url(f"{live_server.url}/login/code")
            _check(page, page.url, f"[{lang}] auth.login_code", problems, goto=False)
            context.clear_cookies()

            # The partner's pages, in the partner's language.
            _set_locale(live_server, PARTNER, lang)
            _sign_in(page, live_server, lang, PARTNER)
            expect(page).to_have_url(f"{live_server.url}/cases/")
            for endpoint, path in PARTNER_PAGES.items():
                _check(page, live_server.url + path(data), f"[{lang}] {endpoint}", problems)
                expect(page.locator("html")).to_have_attribute("dir", "rtl" if lang == "ar" else "ltr")
                if endpoint == "cases.show":
                    # The case reference in the heading and the receipt references and amounts in the
                    # table are isolated from the right-to-left text around them.
                    expect(page.get_by_role("heading", level=1).locator("bdi")).to_have_text(data["case_ref"])
                    expect(page.locator("#receipts td bdi", has_text=data["receipt_ref"])).to_have_count(1)
            for name, path in EXTRA_PARTNER.items():
                _check(page, live_server.url + path, f"[{lang}] {name}", problems)
            # A form sent empty: the error summary and the messages beside the fields fit too.
            page.goto(f"{live_server.url}{PARTNER_PAGES['receipts.new'](data)}")
            page.get_by_role("button", name=live_server.t(lang, "Submit receipt")).click()
            expect(page.locator(".error-summary")).to_be_visible()
            _check(page, page.url, f"[{lang}] receipts.new with errors", problems, goto=False, axe=False)
            # The no-cash tick box's error takes its own line: its label keeps the width of the form.
            label = page.locator('label[for="paid_directly"]').bounding_box()
            error = page.locator("#paid_directly-error").bounding_box()
            assert label and error and label["width"] > PHONE["width"] * 0.6 and error["y"] + error["height"] <= label["y"] + 1, (
                lang, label, error)
            # The handover form on the receipt page, sent without its required fields: its errors fit too.
            page.goto(f"{live_server.url}{PARTNER_PAGES['receipts.show'](data)}")
            page.get_by_label(live_server.t(lang, "Received by"), exact=True).fill("")
            page.get_by_role("button", name=live_server.t(lang, "Confirm handover")).click()
            expect(page.locator("#handover .error-summary")).to_be_visible()
            _check(page, page.url, f"[{lang}] receipts.show with handover errors", problems, goto=False)
        finally:
            context.close()
    assert not problems, "\n".join(problems)


def test_staff_pages_fit_a_768_px_tablet(browser: Browser, live_server):
    problems: list[str] = []
    for lang in ("en", "de"):
        context = browser.new_context(locale=lang, viewport=TABLET)
        page = context.new_page()
        page.set_default_timeout(10_000)
        try:
            _set_locale(live_server, STAFF, lang)
            _sign_in(page, live_server, lang, STAFF)
            for name, path in STAFF_PAGES.items():
                _check(page, live_server.url + path, f"[{lang}] {name}", problems, targets=False, axe=False)
        finally:
            context.close()
    assert not problems, "\n".join(problems)
