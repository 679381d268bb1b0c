"""Reintegration visits: recording with a server-side draft, follow-up by staff, due list and digest,
case timeline and score trend. Runs on SQLite and PostgreSQL; mail goes to the real SMTP sink."""

from __future__ import annotations

import io
import re
from datetime import date, timedelta

from babel.dates import format_date
from PIL import Image
from sqlmodel import select

from portal.audit import AuditEntry
from portal.cases import timeline as case_timeline
from portal.visits.models import Visit, VisitComment, VisitDraft, VisitPhoto
from tests.factories import make_case, make_org, make_user, make_visit
from tests.helpers import count_statements, open_form, partner_with_case, visit_form

# Factories (also used by tests/test_isolation.py) -----------------------------------------------


# Recording --------------------------------------------------------------------------------------

def test_partner_records_visit_and_second_submit_returns_the_same_visit(client, db):
    _org, _staff, case, partner = partner_with_case(db)
    client.login(partner)
    key, page = open_form(client, case)
    # Every step of every dimension is a radio button with its descriptor as hint, so partners score alike.
    assert re.search(r'<input type="radio" id="score_economic-3" name="score_economic" value="3" '
                     r'aria-describedby="score_economic-3-hint">\s*<label for="score_economic-3"><span>3</span> '
                     r'<span class="hint" id="score_economic-3-hint" aria-hidden="true">Some regular income; '
                     r'basic needs are mostly met</span>', page)
    assert 'id="score_psychosocial-5-hint" aria-hidden="true">Feels well, safe and confident about the future' in page
    assert page.count('type="radio"') == 3 * 6  # five steps and "No score" per dimension
    assert re.search(rf'<input [^>]*name="visit_date"[^>]*value="{date.today().isoformat()}"', page)  # today
    resp = client.submit(f"/cases/{case.id}/visits/new", visit_form(key))
    assert resp.status_code == 303
    visit = db.exec(select(Visit)).one()
    assert resp.headers["Location"].endswith(f"/visits/{visit.id}")
    assert (visit.scores, visit.mode, visit.people_employed) == ((3, 4, 2), "business", 2)
    assert visit.created_by_id == partner.id and not visit.flagged
    # The same draft sent again (a double click, a retry after a lost answer): still one visit.
    again = client.submit(f"/cases/{case.id}/visits/new", visit_form(key, notes="changed"))
    assert again.status_code == 303 and again.headers["Location"] == resp.headers["Location"]
    assert len(db.exec(select(Visit)).all()) == 1
    assert db.exec(select(AuditEntry).where(AuditEntry.action == "visit.created")).one()
    page = client.get(f"/visits/{visit.id}").get_data(as_text=True)
    assert "The workshop is open six days a week." in page and "Rustavi market" in page


def test_htmx_submit_redirects_and_htmx_double_submit_makes_one_visit(htmx_client, db):
    _org, _staff, case, partner = partner_with_case(db)
    htmx_client.login(partner)
    key, _page = open_form(htmx_client, case)
    for _ in range(2):
        resp = htmx_client.submit(f"/cases/{case.id}/visits/new", visit_form(key))
        assert resp.status_code == 200
        assert re.fullmatch(r".*/visits/\d+", resp.headers["HX-Redirect"])
    assert len(db.exec(select(Visit)).all()) == 1


def test_form_errors_keep_everything_typed(client, db):
    _org, _staff, case, partner = partner_with_case(db)
    client.login(partner)
    key, _page = open_form(client, case)
    resp = client.submit(f"/cases/{case.id}/visits/new",
                         visit_form(key, score_social="", flag_safety="y", notes="keep this text please"))
    page = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert "There is a problem" in page and "Score the social dimension." in page
    assert "keep this text please" in page and "Rustavi market" in page
    assert db.exec(select(Visit)).first() is None
    # A ticked concern needs a description for staff.
    resp = client.submit(f"/cases/{case.id}/visits/new", visit_form(key, flag_safety="y"))
    assert resp.status_code == 422
    assert "Describe the concern you ticked" in resp.get_data(as_text=True)


def test_returnee_not_met_needs_a_reason_and_is_not_scored(client, db):
    _org, _staff, case, partner = partner_with_case(db)
    client.login(partner)
    key, _page = open_form(client, case)
    form = visit_form(key, returnee_met="no", score_economic="", score_social="", score_psychosocial="")
    resp = client.submit(f"/cases/{case.id}/visits/new", form)
    assert resp.status_code == 422 and "Say why the returnee was not met." in resp.get_data(as_text=True)
    resp = client.submit(f"/cases/{case.id}/visits/new", {**form, "not_met_reason": "Travelling to the capital"})
    assert resp.status_code == 303
    visit = db.exec(select(Visit)).one()
    assert visit.returnee_met is False and visit.scores == (None, None, None)


def test_location_is_stored_only_with_consent(client, db):
    _org, _staff, case, partner = partner_with_case(db)
    client.login(partner)
    key, _page = open_form(client, case)
    client.submit(f"/cases/{case.id}/visits/new", visit_form(key, latitude="41.7151", longitude="44.8271"))
    no_consent = db.exec(select(Visit)).one()
    assert (no_consent.location_consent, no_consent.latitude, no_consent.longitude) == (False, None, None)
    key, _page = open_form(client, case)
    client.submit(f"/cases/{case.id}/visits/new", visit_form(key, location_consent="y", latitude="41.7151234",
                                                             longitude="44.8271"))
    consented = db.exec(select(Visit).where(Visit.id != no_consent.id)).one()
    assert (consented.location_consent, consented.latitude, consented.longitude) == (True, 41.71512, 44.8271)


def test_future_visit_and_next_visit_before_visit_are_refused(client, db):
    _org, _staff, case, partner = partner_with_case(db)
    client.login(partner)
    key, _page = open_form(client, case)
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    resp = client.submit(f"/cases/{case.id}/visits/new", visit_form(key, visit_date=tomorrow, next_visit_date=""))
    assert resp.status_code == 422 and "cannot be in the future" in resp.get_data(as_text=True)
    resp = client.submit(f"/cases/{case.id}/visits/new", visit_form(key, next_visit_date="2025-02-01"))
    assert resp.status_code == 422 and "The next visit must be after this visit." in resp.get_data(as_text=True)


# Draft autosave ---------------------------------------------------------------------------------

def test_autosave_restore_cycle(htmx_client, db):
    _org, _staff, case, partner = partner_with_case(db)
    htmx_client.login(partner)
    key, page = open_form(htmx_client, case)
    # The form autosaves on change and after typing stops, and only swaps the status line.
    assert 'hx-trigger="change, keyup delay:3s"' in page and 'hx-target="#draft-status"' in page
    typed = {"draft_key": key, "visit_date": "2025-03-02", "mode": "home", "place": "Gardabani",
             "score_economic": "2", "flag_health": "y", "notes": "Half-typed observation", "evil": "x" * 10}
    resp = htmx_client.submit(f"/cases/{case.id}/visits/draft", typed)
    assert resp.status_code == 200
    assert "Draft saved at" in resp.get_data(as_text=True)
    assert 'id="draft-status"' in resp.get_data(as_text=True)
    draft = db.exec(select(VisitDraft)).one()
    assert draft.key == key and draft.user_id == partner.id and "evil" not in draft.data

    # The page is lost; opening the form again restores the entries under the same key.
    key_again, page = open_form(htmx_client, case)
    assert key_again == key
    assert "is restored" in page
    assert "Half-typed observation" in page and 'value="Gardabani"' in page
    assert '<input type="radio" id="score_economic-2" name="score_economic" value="2" checked' in page
    assert re.search(r'<input checked id="flag_health"', page)
    # The case page offers to continue it.
    assert "Continue your draft visit" in htmx_client.get(f"/cases/{case.id}", headers={"HX-Boosted": "true"}).get_data(
        as_text=True)

    # Submitting uses the draft key; the draft is gone afterwards.
    resp = htmx_client.submit(f"/cases/{case.id}/visits/new", visit_form(key))
    assert resp.status_code == 200 and "HX-Redirect" in resp.headers
    assert db.exec(select(VisitDraft)).first() is None
    # A late autosave of the submitted form does not bring the draft back.
    resp = htmx_client.submit(f"/cases/{case.id}/visits/draft", typed)
    assert "This visit was already submitted." in resp.get_data(as_text=True)
    assert db.exec(select(VisitDraft)).first() is None
    new_key, page = open_form(htmx_client, case)
    assert new_key != key and "Half-typed observation" not in page


def test_discard_draft_starts_again(client, db):
    _org, _staff, case, partner = partner_with_case(db)
    client.login(partner)
    key, _page = open_form(client, case)
    client.submit(f"/cases/{case.id}/visits/draft", {"draft_key": key, "notes": "scratch"})
    resp = client.submit(f"/cases/{case.id}/visits/draft/discard", {"draft_key": key})
    assert resp.status_code == 303
    new_key, page = open_form(client, case)
    assert new_key != key and "scratch" not in page


def test_drafts_are_per_user_and_a_foreign_draft_key_is_404(client, db):
    org, _staff, case, partner = partner_with_case(db)
    colleague = make_user(db, organisation=org)
    client.login(partner)
    key, _page = open_form(client, case)
    client.submit(f"/cases/{case.id}/visits/draft", {"draft_key": key, "notes": "mine"})
    client.post("/logout", data={"csrf_token": client.csrf_token()})
    client.login(colleague)
    other_key, page = open_form(client, case)
    assert other_key != key and "mine" not in page
    resp = client.submit(f"/cases/{case.id}/visits/draft", {"draft_key": key, "notes": "overwrite"})
    assert resp.status_code == 404
    db.expire_all()
    assert db.exec(select(VisitDraft)).one().data["notes"] == "mine"


# Isolation --------------------------------------------------------------------------------------

def test_other_organisations_visits_are_404(client, db):
    _org, _staff, case_b, partner_b = partner_with_case(db)
    visit_b = make_visit(db, case_b, flag_legal=True, flag_details="B's secret")
    partner_a = make_user(db)
    client.login(partner_a)
    assert client.get(f"/visits/{visit_b.id}").status_code == 404
    assert client.get(f"/cases/{case_b.id}/visits/new").status_code == 404
    assert client.submit(f"/cases/{case_b.id}/visits/new", visit_form("a" * 32)).status_code == 404
    assert client.submit(f"/cases/{case_b.id}/visits/draft", {"draft_key": "a" * 32}).status_code == 404
    # Staff-only pages do not exist for partners.
    assert client.get("/visits/flagged").status_code == 404
    assert client.submit(f"/visits/{visit_b.id}/comments", {"comment-body": "x"}).status_code == 404
    assert db.exec(select(VisitDraft)).first() is None and db.exec(select(VisitComment)).first() is None


# Follow-up --------------------------------------------------------------------------------------

def test_flagged_visit_reaches_the_staff_queue_and_the_case_creator_by_mail(client, db, mails, run_jobs):
    _org, staff, case, partner = partner_with_case(db)
    other_staff = make_user(db, role="staff")
    client.login(partner)
    key, _page = open_form(client, case)
    resp = client.submit(f"/cases/{case.id}/visits/new",
                         visit_form(key, flag_health="y", flag_family="y", flag_details="Untreated injury"))
    assert resp.status_code == 303
    visit = db.exec(select(Visit)).one()
    assert visit.flags == ["flag_health", "flag_family"]
    # The staff member who opened the case hears of it, in German; nobody else.
    run_jobs()
    [message] = mails.to(staff.email)
    assert case.reference in message["Subject"]
    body = message.get_content()
    assert "Untreated injury" in body and f"http://localhost/visits/{visit.id}" in body
    assert not mails.to(other_staff.email) and not mails.to(partner.email)

    client.post("/logout", data={"csrf_token": client.csrf_token()})
    client.login(other_staff)
    page = client.get("/visits/flagged").get_data(as_text=True)
    assert case.reference in page and "Untreated injury" in page
    assert re.search(r'Flagged visits <span class="badge badge-flag">1</span>', page)
    resp = client.submit(f"/visits/{visit.id}/acknowledge", {"ack-body": "Called the partner, referral made"})
    assert resp.status_code == 303
    page = client.get("/visits/flagged").get_data(as_text=True)
    assert case.reference not in page and "No flagged visits wait for acknowledgement." in page
    assert case.reference in client.get("/visits/flagged?show=all").get_data(as_text=True)
    # Acknowledged once only.
    assert client.submit(f"/visits/{visit.id}/acknowledge", {"ack-body": ""}).status_code == 422
    db.refresh(visit)
    assert visit.acknowledged_by_id == other_staff.id
    assert db.exec(select(AuditEntry).where(AuditEntry.action == "visit.acknowledged")).one()


def test_flag_mail_goes_to_all_staff_when_the_case_has_no_staff_contact(client, db, mails, run_jobs):
    org = make_org(db)
    case = make_case(db, org)
    staff = [make_user(db, role="staff"), make_user(db, role="staff")]
    partner = make_user(db, organisation=org)
    client.login(partner)
    key, _page = open_form(client, case)
    client.submit(f"/cases/{case.id}/visits/new", visit_form(key, flag_safety="y", flag_details="Threats"))
    run_jobs()
    assert all(len(mails.to(s.email)) == 1 for s in staff)


def test_staff_comment_is_shown_to_the_partner(htmx_client, db):
    _org, staff, case, partner = partner_with_case(db)
    staff.locale = "en"
    db.add(staff)
    db.commit()
    visit = make_visit(db, case, created_by_id=partner.id)
    htmx_client.login(staff)
    resp = htmx_client.submit(f"/visits/{visit.id}/comments", {"comment-body": ""})
    assert resp.status_code == 422 and "Write a comment." in resp.get_data(as_text=True)
    resp = htmx_client.submit(f"/visits/{visit.id}/comments", {"comment-body": "Please send a photo of the pump."})
    assert resp.status_code == 200
    fragment = resp.get_data(as_text=True)
    assert fragment.lstrip().startswith('<section id="followup"') and "Comment added." in fragment
    htmx_client.post("/logout", data={"csrf_token": htmx_client.csrf_token()})
    htmx_client.htmx = False
    htmx_client.login(partner)
    page = htmx_client.get(f"/visits/{visit.id}").get_data(as_text=True)
    assert "Please send a photo of the pump." in page and staff.name in page
    # Partners read comments but cannot write them.
    assert 'name="comment-body"' not in page


# Due list and digest ----------------------------------------------------------------------------

def test_due_list_is_scoped_and_uses_the_latest_visit(client, db):
    today = date.today()
    org_a, org_b = make_org(db), make_org(db)
    overdue = make_case(db, org_a)
    make_visit(db, overdue, visit_date=today - timedelta(days=60), next_visit_date=today - timedelta(days=5))
    superseded = make_case(db, org_a)
    make_visit(db, superseded, visit_date=today - timedelta(days=60), next_visit_date=today - timedelta(days=30))
    make_visit(db, superseded, visit_date=today - timedelta(days=2), next_visit_date=today + timedelta(days=60))
    closed = make_case(db, org_a, status="closed")
    make_visit(db, closed, visit_date=today - timedelta(days=60), next_visit_date=today - timedelta(days=5))
    soon_b = make_case(db, org_b)
    make_visit(db, soon_b, visit_date=today - timedelta(days=20), next_visit_date=today + timedelta(days=3))

    client.login(make_user(db, organisation=org_a))
    page = client.get("/visits/due").get_data(as_text=True)
    assert overdue.reference in page and "5 days" in page
    for hidden in (superseded, closed, soon_b):
        assert hidden.reference not in page
    client.post("/logout", data={"csrf_token": client.csrf_token()})
    client.login(make_user(db, role="staff"))
    page = client.get("/visits/due").get_data(as_text=True)
    assert overdue.reference in page and soon_b.reference in page and closed.reference not in page


def test_each_cases_latest_visit_is_kept_with_every_new_visit_and_reconciled(app, db):
    """The due list reads each case's kept latest visit (portal/visits/latest.py): a visit recorded later
    with an earlier date does not replace it; `visits reconcile` names a broken row and --fix repairs it."""
    from sqlalchemy import text

    from portal.visits.models import LatestVisit

    today = date.today()
    case = make_case(db, make_org(db))
    assert db.get(LatestVisit, case.id) is None
    newest = make_visit(db, case, visit_date=today - timedelta(days=3), next_visit_date=today + timedelta(days=9))
    make_visit(db, case, visit_date=today - timedelta(days=40), next_visit_date=today - timedelta(days=10))
    db.expire_all()
    kept = db.get(LatestVisit, case.id)
    assert (kept.visit_id, kept.next_visit_date) == (newest.id, today + timedelta(days=9))
    runner = app.test_cli_runner()
    assert "match" in runner.invoke(args=["visits", "reconcile"]).output
    db.exec(text("UPDATE case_latest_visits SET next_visit_date = NULL WHERE case_id = :id").bindparams(id=case.id))
    db.commit()
    broken = runner.invoke(args=["visits", "reconcile"])
    assert broken.exit_code == 1 and f"case {case.id}:" in broken.output and "1 difference(s)" in broken.output
    assert runner.invoke(args=["visits", "reconcile", "--fix"]).exit_code == 0
    db.expire_all()
    assert db.get(LatestVisit, case.id).next_visit_date == today + timedelta(days=9)
    assert runner.invoke(args=["visits", "reconcile"]).exit_code == 0


def test_due_list_is_paged_overdue_first(app, client, db, monkeypatch):
    from portal.visits import due

    monkeypatch.setattr(due, "DUE_PER_PAGE", 3)
    today = date.today()
    org = make_org(db)
    cases = []
    for days in (-9, -8, -7, -6, 2, 3, 4):  # four overdue, three due soon
        case = make_case(db, org)
        make_visit(db, case, visit_date=today - timedelta(days=40), next_visit_date=today + timedelta(days=days))
        cases.append(case)
    client.login(make_user(db, role="staff"))
    first = client.get("/visits/due").get_data(as_text=True)
    assert "Page 1 of 3" in first and 'rel="next"' in first
    assert [c.reference in first for c in cases] == [True] * 3 + [False] * 4
    assert "Overdue <span class=\"count\">(4)</span>" in first
    second = client.get("/visits/due?page=2").get_data(as_text=True)
    assert [c.reference in second for c in cases] == [False] * 3 + [True] * 3 + [False]
    assert "Due soon <span class=\"count\">(3)</span>" in second
    last = client.get("/visits/due?page=3").get_data(as_text=True)
    assert [c.reference in last for c in cases] == [False] * 6 + [True] and 'rel="prev"' in last
    # The counts, then the page's rows, both from the kept latest visits (no ranking of every visit); a page
    # past the last shows the last.
    with count_statements(app) as statements:
        past = client.get("/visits/due?page=9").get_data(as_text=True)
        client.get("/visits/due?page=2")
    assert "Page 3 of 3" in past and [c.reference in past for c in cases] == [False] * 6 + [True]
    assert "Due soon <span class=\"count\">(3)</span>" in past
    assert sum("FROM cases JOIN case_latest_visits" in s for s in statements) == 2 + 2
    assert not any("FROM visits" in s for s in statements)


def test_digest_mails_each_partner_in_their_language(app, db, mails):
    today = date(2025, 6, 10)
    org_a, org_b, org_c = make_org(db), make_org(db), make_org(db)
    case_a = make_case(db, org_a)
    make_visit(db, case_a, visit_date=date(2025, 3, 1), next_visit_date=date(2025, 6, 1))
    case_b = make_case(db, org_b)
    make_visit(db, case_b, visit_date=date(2025, 5, 1), next_visit_date=date(2025, 6, 20))
    make_visit(db, make_case(db, org_c), visit_date=date(2025, 5, 1), next_visit_date=date(2025, 9, 1))
    fr = make_user(db, organisation=org_a, locale="fr")
    de = make_user(db, organisation=org_a, locale="de")
    en_b = make_user(db, organisation=org_b, locale="en")
    nothing_due = make_user(db, organisation=org_c)
    make_user(db, organisation=org_a, active=False)

    result = app.test_cli_runner().invoke(args=["visits", "digest", "--today", today.isoformat()])
    assert result.exit_code == 0, result.output
    assert "digests queued 3, mails sent 3" in result.output
    assert len(mails.messages) == 3 and not mails.to(nothing_due.email)
    for user, locale in ((fr, "fr"), (de, "de")):
        [message] = mails.to(user.email)
        body = message.get_content()
        assert case_a.reference in body and f"http://localhost/cases/{case_a.id}" in body
        assert format_date(date(2025, 6, 1), locale=locale) in body  # dates in the reader's language
        assert case_b.reference not in body
    [message_b] = mails.to(en_b.email)
    assert message_b["Subject"] == "Visits due: 0 overdue, 1 coming up"
    body_b = message_b.get_content()
    assert case_b.reference in body_b and "Due soon" in body_b and case_a.reference not in body_b


# Case page: visits, trend, timeline -------------------------------------------------------------

def test_case_page_shows_trend_svg_with_table_and_timeline(client, db):
    _org, staff, case, partner = partner_with_case(db)
    first = make_visit(db, case, visit_date=date(2025, 1, 10), score_economic=1, score_social=2,
                       score_psychosocial=2)
    make_visit(db, case, visit_date=date(2025, 3, 10), score_economic=3, score_social=3, score_psychosocial=4)
    make_visit(db, case, visit_date=date(2025, 5, 10), score_economic=4, score_social=5, score_psychosocial=4,
               returnee_met=True, flag_legal=True, flag_details="Residence papers")
    db.add(VisitComment(visit_id=first.id, author_id=staff.id, body="Good start"))
    db.commit()
    client.login(staff)
    client.submit(f"/cases/{case.id}/status", {"status": "active"})
    client.post("/logout", data={"csrf_token": client.csrf_token()})
    client.login(partner)
    resp = client.get(f"/cases/{case.id}")
    page = resp.get_data(as_text=True)
    svg = page[page.index("<svg"):page.index("</svg>")]
    assert 'role="img"' in svg and "<title" in svg
    assert svg.count("<polyline") == 3
    assert "style=" not in page and "<script>" not in page  # the CSP allows neither
    # The drawing is about phone-sized, so its labels keep their size on a phone; the legend is HTML.
    assert 'viewBox="0 0 360 220"' in svg and 'font-size="13"' in svg and 'direction="ltr"' in svg
    assert 'class="trend-legend"' in page
    table = page[page.index('class="trend-table'):]
    table = table[:table.index("</table>")]
    assert "Scores per visit" in table and table.count("<tr>") == 4
    assert re.search(r'<td class="num" data-label="Economic">4</td><td class="num" data-label="Social">5</td>'
                     r'<td class="num" data-label="Psychosocial">4</td>', table)
    timeline = page[page.index('id="timeline"'):]
    assert "Status changed to Active" in timeline and "commented on a visit" in timeline
    assert timeline.count("Visit: Home visit") == 3
    assert "Legal problems" in page  # the flag shows in the visit list


def test_no_trend_without_scored_visits(client, db):
    _org, _staff, case, partner = partner_with_case(db)
    client.login(partner)
    page = client.get(f"/cases/{case.id}").get_data(as_text=True)
    assert "No visits recorded yet." in page and "<svg" not in page


# Photos -----------------------------------------------------------------------------------------

def _jpeg_with_gps() -> bytes:
    img = Image.new("RGB", (40, 30), (200, 120, 40))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x8825] = {1: "N", 2: (41.0, 42.0, 54.0), 3: "E", 4: (44.0, 49.0, 37.0)}  # GPSInfo
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif)
    assert Image.open(io.BytesIO(out.getvalue())).getexif()
    return out.getvalue()


def test_photo_is_stored_without_exif_and_only_with_consent(app, client, db):
    _org, staff, case, partner = partner_with_case(db)
    visit = make_visit(db, case, created_by_id=partner.id)
    client.login(partner)
    data = _jpeg_with_gps()
    resp = client.submit(f"/visits/{visit.id}/photos", {"photo": (io.BytesIO(data), "pump.jpg")},
                         content_type="multipart/form-data")
    assert resp.status_code == 422 and "consent" in resp.get_data(as_text=True)
    resp = client.submit(f"/visits/{visit.id}/photos", {"photo": (io.BytesIO(b"%PDF-1.4 x"), "a.pdf"),
                                                        "consent": "y"}, content_type="multipart/form-data")
    assert resp.status_code == 422 and "JPG, PNG or WebP" in resp.get_data(as_text=True)
    resp = client.submit(f"/visits/{visit.id}/photos", {"photo": (io.BytesIO(data), "pump.jpg"), "consent": "y"},
                         content_type="multipart/form-data")
    assert resp.status_code == 303
    photo = db.exec(select(VisitPhoto)).one()
    assert photo.confirmed and photo.consent and photo.key.startswith(f"visits/{case.id}/")
    page = client.get(f"/visits/{visit.id}").get_data(as_text=True)
    assert "pump.jpg" in page
    with client.get(f"/visits/{visit.id}/photos/{photo.id}") as download:
        assert download.status_code == 200
        assert download.headers["Content-Disposition"].startswith("attachment")
        stored = Image.open(io.BytesIO(download.data))
    assert stored.size == (40, 30) and not stored.getexif()
    # A partner's download is not audited; a staff download is, before the file is handed out.
    assert not db.exec(select(AuditEntry).where(AuditEntry.action == "visit_photo.downloaded")).all()
    client.post("/logout", data={"csrf_token": client.csrf_token()})
    client.login(staff)
    with client.get(f"/visits/{visit.id}/photos/{photo.id}") as download:
        assert download.status_code == 200
    entry = db.exec(select(AuditEntry).where(AuditEntry.action == "visit_photo.downloaded")).one()
    assert entry.actor_id == staff.id and entry.object_id == str(photo.id)
    assert entry.after["visit_id"] == visit.id and entry.after["sha256"] == photo.sha256


# Receipts: the state of each purchased item, and receipts on the timeline -----------------------

def test_goods_state_per_receipt_and_receipts_on_the_timeline(client, db):
    from portal.receipts.models import ReceiptEvent
    from tests.factories import make_receipt

    _org, staff, case, partner = partner_with_case(db)
    pump = make_receipt(db, case, supplier="Agro Dakar", description="Motor pump")
    seeds = make_receipt(db, case, supplier="Graines SA", description="Seeds")
    make_receipt(db, case, supplier="Half-uploaded", status="pending")
    db.add(ReceiptEvent(receipt_id=pump.id, revision=1, actor_id=partner.id, kind="submitted"))
    db.add(ReceiptEvent(receipt_id=pump.id, revision=1, actor_id=staff.id, kind="approved"))
    db.commit()
    other_case = make_case(db, make_org(db))
    foreign = make_receipt(db, other_case, supplier="Elsewhere")

    client.login(partner)
    key, page = open_form(client, case)
    assert "Agro Dakar – Motor pump" in page and "Graines SA – Seeds" in page and "Half-uploaded" not in page
    resp = client.submit(f"/cases/{case.id}/visits/new",
                         visit_form(key, **{f"goods_{pump.id}": "in_use", f"goods_{seeds.id}": "sold",
                                            f"goods_{foreign.id}": "missing"}))
    assert resp.status_code == 303
    visit = db.exec(select(Visit)).one()
    assert visit.goods_by_receipt == {str(pump.id): "in_use", str(seeds.id): "sold"}
    page = client.get(f"/visits/{visit.id}").get_data(as_text=True)
    assert "Agro Dakar – Motor pump" in page and "Sold" in page
    timeline = client.get(f"/cases/{case.id}").get_data(as_text=True)
    timeline = timeline[timeline.index('id="timeline"'):]
    assert f"Receipt <bdi>{pump.reference}</bdi> submitted" in timeline
    assert f"Receipt <bdi>{pump.reference}</bdi> approved" in timeline


# Timeline order ---------------------------------------------------------------------------------

def test_timeline_orders_a_visit_recorded_today_above_the_case_opened_this_morning(app, client, db):
    from portal import audit

    _org, staff, case, partner = partner_with_case(db)
    audit.record(db, staff, "case.created", case)  # the case is opened now
    db.commit()
    today = date.today()
    # Recorded today without a time: it happened today, after the case was opened (it is recorded after).
    make_visit(db, case, visit_date=today, notes="today")
    make_visit(db, case, visit_date=today - timedelta(days=3), mode="call")  # before the case was opened here
    client.login(partner)
    page = client.get(f"/cases/{case.id}").get_data(as_text=True)
    timeline = page[page.index('id="timeline"'):]
    assert timeline.index("Visit: Home visit") < timeline.index("Case opened") < timeline.index(
        "Visit: Phone or video call")
    with app.test_request_context():
        entries = case_timeline.timeline(db, case)
    keys = [e.order_key for e in entries]
    assert keys == sorted(keys, reverse=True) and [e.kind for e in entries] == ["visit", "status", "visit"]


def test_photo_input_opens_the_camera_and_the_receipt_input_does_not(client, db):
    _org, _staff, case, partner = partner_with_case(db)
    visit = make_visit(db, case)
    client.login(partner)
    page = client.get(f"/visits/{visit.id}").get_data(as_text=True)
    photo = re.search(r'<input [^>]*name="photo"[^>]*>', page).group(0)
    assert 'accept="image/*"' in photo and 'capture="environment"' in photo
    receipt_form = client.get(f"/cases/{case.id}/receipts/new").get_data(as_text=True)
    files = re.search(r'<input [^>]*name="files"[^>]*>', receipt_form).group(0)
    assert "capture" not in files and "pdf" in files.lower()  # a receipt may be a PDF scan
