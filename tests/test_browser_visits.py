"""A visit recorded in a real Chromium, in French: the draft survives a lost page and a lost connection,
the submitted visit raises a flag that a staff member sees. Labels and roles only, under the real CSP."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlmodel import Session, select

from portal.cases.models import Case
from portal.orgs.models import Organisation
from portal.visits.models import Visit
from tests.browser_fixtures import axe_violations, format_violations, sign_in, watch_csp

pytestmark = pytest.mark.browser

PARTNER = "partner.b@example.org"  # Awa Partner, French
STAFF = "staff@example.org"  # Stefan Staff, German; opened the demo cases
ORG = "Association Retour Dakar"


def _active_case(live_server) -> Case:
    with Session(live_server.engine()) as db:
        org = db.exec(select(Organisation).where(Organisation.name == ORG)).one()
        return db.exec(select(Case).where(Case.organisation_id == org.id, Case.status == "active")).first()


def settle(page: Page) -> None:
    """Let the page finish loading its scripts before the next navigation: a request the browser
    abandons half-way leaves the live server's open static file to the garbage collector (a warning)."""
    page.wait_for_load_state("load")


def _prefix(live_server, locale: str, message: str, name: str) -> str:
    """The translated text of `message` up to its placeholder `name`."""
    return live_server.t(locale, message, **{name: "\x00"}).split("\x00")[0]


def test_partner_fills_visit_in_french_loses_page_finds_draft_and_staff_sees_flag(page: Page, live_server,
                                                                                   mails):
    case = _active_case(live_server)
    csp = watch_csp(page)

    def t(message, **kw):
        return live_server.t("fr", message, **kw)

    sign_in(page, live_server, PARTNER)
    settle(page)
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    page.goto(f"{live_server.url}/cases/{case.id}")
    page.get_by_role("link", name=t("Record a visit")).click()
    settle(page)
    expect(page.get_by_role("heading", level=1)).to_contain_text(case.reference)
    violations = axe_violations(page)
    assert not violations, format_violations(violations)

    def autosaved(action):
        """Do something that triggers the autosave and wait for the server's answer."""
        with page.expect_response(lambda r: r.url.endswith("/visits/draft") and r.status == 200):
            action()

    visit_day = date.today() - timedelta(days=1)
    autosaved(lambda: page.get_by_label(t("Date of the visit"), exact=True).fill(visit_day.isoformat()))
    autosaved(lambda: page.get_by_label(t("Mode"), exact=True).select_option(label=t("Business visit")))
    autosaved(lambda: page.get_by_label(t("Purpose"), exact=True).select_option(label=t("Monitoring visit")))
    autosaved(lambda: page.get_by_label(t("Was the returnee met?"), exact=True).select_option(label=t("Yes")))
    for field, step, descriptor in (
            ("Economic dimension", 3, "Some regular income; basic needs are mostly met"),
            ("Social dimension", 4, "Good relations; access to housing, health care and services"),
            ("Psychosocial dimension", 2, "Often distressed or anxious; copes with difficulty")):
        # A radio button per step, its descriptor as hint (the option's description).
        option = page.get_by_role("group", name=t(field)).get_by_role("radio", name=str(step), exact=True)
        expect(option).to_have_accessible_description(t(descriptor))
        autosaved(lambda option=option: option.check())
    autosaved(lambda: page.get_by_label(t("Health"), exact=True).check())
    # Typed text is saved by the keyup autosave, a few seconds after typing stops.
    concern = page.get_by_label(t("What is the concern?"), exact=True)
    autosaved(lambda: concern.press_sequentially("Douleurs au dos, pas de médecin"))
    expect(page.get_by_text(_prefix(live_server, "fr", "Draft saved at %(time)s", "time"))).to_be_visible()

    # The connection drops: the page says so and keeps what was typed.
    page.context.set_offline(True)
    notes = page.get_by_label(f'{t("Notes")} {t("(optional)")}', exact=True)
    notes.fill("La pompe fonctionne bien.")
    notes.press("Tab")  # change → autosave, which cannot reach the server
    offline_word = t("Not saved: there is no connection. Your entries stay on this page and are saved when "
                     "the connection is back.")
    expect(page.get_by_text(offline_word)).to_be_visible()
    expect(notes).to_have_value("La pompe fonctionne bien.")
    expect(concern).to_have_value("Douleurs au dos, pas de médecin")
    with page.expect_response(lambda r: r.url.endswith("/visits/draft") and r.status == 200):
        page.context.set_offline(False)  # back online: the draft is saved at once

    # The page is lost (the user follows another link); coming back, the draft is there.
    page.goto(f"{live_server.url}/cases/")
    page.goto(f"{live_server.url}/cases/{case.id}")
    page.get_by_role("link", name=t("Continue your draft visit")).click()
    settle(page)
    expect(page.get_by_text(_prefix(live_server, "fr", "Your draft from %(when)s is restored. Check it and "
                                    "submit it, or start again.", "when"))).to_be_visible()
    expect(notes).to_have_value("La pompe fonctionne bien.")
    expect(page.get_by_label(t("What is the concern?"), exact=True)).to_have_value("Douleurs au dos, pas de médecin")
    expect(page.get_by_label(t("Health"), exact=True)).to_be_checked()
    expect(page.get_by_label(t("Mode"), exact=True)).to_have_value("business")
    expect(page.get_by_label(t("Date of the visit"), exact=True)).to_have_value(visit_day.isoformat())

    page.get_by_role("button", name=t("Submit visit")).click()
    expect(page).to_have_url(re.compile(r"/visits/\d+$"))
    expect(page.get_by_text(t("The visit is saved."))).to_be_visible()
    settle(page)
    with Session(live_server.engine()) as db:
        visits = db.exec(select(Visit).where(Visit.case_id == case.id)).all()
    assert len(visits) == 1 and visits[0].flag_health and visits[0].notes == "La pompe fonctionne bien."
    assert csp == []

    # The staff member who opened the case got an e-mail; in the portal the flag waits in the queue.
    assert any(case.reference in m["Subject"] for m in mails.to(STAFF))
    page.get_by_role("button", name=t("Sign out")).click()
    settle(page)
    sign_in(page, live_server, STAFF)
    settle(page)

    def de(message, **kw):
        return live_server.t("de", message, **kw)

    page.get_by_role("link", name=re.compile(re.escape(de("Flagged visits")))).click()
    settle(page)
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=case.reference))
    expect(row).to_contain_text(de("Health"))
    expect(row).to_contain_text("Douleurs au dos")
    row.get_by_role("link", name=re.compile(r"\d")).first.click()
    settle(page)
    page.get_by_label(de("Comment (optional)"), exact=True).fill("Bitte Arzttermin vermitteln.")
    page.get_by_role("button", name=de("Acknowledge visit")).click()
    expect(page.get_by_text("Bitte Arzttermin vermitteln.")).to_be_visible()
    expect(page.get_by_text(de("Visit acknowledged."))).to_be_visible()
    violations = axe_violations(page)
    assert not violations, format_violations(violations)

    # The case page: the visit in the list, the score chart with its table, the timeline.
    page.get_by_role("link", name=de("Back to case %(ref)s", ref=case.reference)).click()
    settle(page)
    expect(page.get_by_role("img", name=re.compile(re.escape(de("Chart of the economic, social and psychosocial "
                                                                  "scores from 1 to 5 across %(n)s visits. The "
                                                                  "table below gives the same figures.", n=1))))
           ).to_be_visible()
    scores = page.get_by_role("table", name=de("Scores per visit (1 = weakest, 5 = strongest)"))
    expect(scores.get_by_role("row")).to_have_count(2)
    expect(scores.get_by_role("row").nth(1)).to_contain_text("3")
    expect(page.get_by_role("region", name=de("Timeline"))).to_contain_text(
        de("%(name)s acknowledged a visit", name="Stefan Staff"))
    violations = axe_violations(page)
    assert not violations, format_violations(violations)
    assert csp == []
