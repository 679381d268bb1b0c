"""The advisor exchange workshop: public registration with double opt-in, waitlist, moderation,
self-service links, staff management, exports, PDFs, the outbox and the retention purge."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import pytest
from flask_babel import force_locale, format_date
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook
from pypdf import PdfReader
from sqlmodel import select

from portal import mail
from portal.audit import AuditEntry
from portal.mail import OutboxMail
from portal.workshop.models import Registration, Workshop, WorkshopStat
from tests.factories import TODAY, make_org, make_registration, make_user, make_workshop
from tests.helpers import body, form, link_path, register, register_and_confirm, staff_client


@pytest.fixture
def mails(delivered_mails):
    """Registrants read their mail after the worker ran (see delivered_mails)."""
    return delivered_mails


@pytest.fixture
def app_overrides():
    """Many registrations from one test client: the rate limit gets its own test."""
    return {"WORKSHOP_RATE_LIMIT": "10000 per hour"}


def reg_by_email(db, email) -> Registration:
    db.expire_all()
    return db.exec(select(Registration).where(Registration.email == email)).one()


def ics_of(message) -> str:
    parts = [p for p in message.iter_attachments() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1, [p.get_content_type() for p in message.iter_attachments()]
    content = parts[0].get_content()
    return content.decode() if isinstance(content, bytes) else content


# Staff set-up -----------------------------------------------------------------------------------

def test_staff_create_and_edit_a_workshop(client, db):
    staff_client(client, db)
    data = {"title": "Advisor exchange 2026", "description": "Exchange of experience.",
            "title_de": "Beraterinnenaustausch 2026", "starts_on": "2030-05-04", "ends_on": "2030-05-06",
            "city": "Berlin", "venue": "Haus der Kulturen", "capacity": "30", "registration_deadline": "2030-04-20",
            "working_languages": "English, French", "visa_letters": "y", "moderated": "y"}
    resp = client.submit("/workshops/new", data)
    assert resp.status_code == 303
    w = db.exec(select(Workshop)).one()
    assert (w.capacity, w.moderated, w.visa_letters, w.travel_support) == (30, True, True, False)
    assert w.translations == {"de": {"title": "Beraterinnenaustausch 2026", "description": ""}}
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Advisor exchange 2026" in page and w.public_key in page

    resp = client.submit(f"/workshops/{w.id}/edit", {**data, "capacity": "0", "ends_on": "2030-05-01"})
    assert resp.status_code == 422
    assert "Enter a number between 1 and 10,000." in resp.get_data(as_text=True)
    assert 'value="Advisor exchange 2026"' in resp.get_data(as_text=True)  # input kept
    assert client.submit(f"/workshops/{w.id}/edit", {**data, "capacity": "25"}).status_code == 303
    db.refresh(w)
    assert w.capacity == 25
    actions = db.exec(select(AuditEntry.action).where(AuditEntry.object_type == "Workshop")).all()
    assert actions == ["workshop.created", "workshop.updated"]


def test_participant_list_is_paged_and_keeps_its_filter(client, db, monkeypatch):
    from portal.workshop import services as workshop_services

    monkeypatch.setattr(workshop_services, "REGISTRATIONS_PER_PAGE", 2)
    w = make_workshop(db, capacity=50)
    regs = [make_registration(db, w, country="GE") for _ in range(5)]
    make_registration(db, w, country="SN")
    client.login(make_user(db, role="staff"))
    first = client.get(f"/workshops/{w.id}?country=GE").get_data(as_text=True)
    assert "5 registrations" in first and "Page 1 of 3" in first
    assert [r.name in first for r in regs] == [True, True, False, False, False]
    assert f"/workshops/{w.id}?country=GE&amp;page=2#participants" in first
    last = client.get(f"/workshops/{w.id}?country=GE&page=3").get_data(as_text=True)
    assert [r.name in last for r in regs] == [False] * 4 + [True] and 'rel="prev"' in last


def test_participant_rows_show_name_link_country_role_status_and_needs_escaped(client, db):
    w = make_workshop(db, capacity=50)
    reg = make_registration(db, w, name="<b>Ana</b> & Co", organisation="O'Brien <Ltd>", country="SN",
                            dietary_needs="vegan", visa_letter=True)
    plain = make_registration(db, w)
    client.login(make_user(db, role="staff"))
    page = client.get(f"/workshops/{w.id}").get_data(as_text=True)
    row = page.split(f'href="/workshops/{w.id}/registrations/{reg.id}"')[1].split("</tr>")[0]
    assert ">&lt;b&gt;Ana&lt;/b&gt; &amp; Co</a>" in row and "<td>O&#39;Brien &lt;Ltd&gt;</td>" in row
    assert "<td>Senegal</td>" in row and "<td>Confirmed</td>" in row and "<td>Dietary Visa</td>" in row
    other = page.split(f'href="/workshops/{w.id}/registrations/{plain.id}"')[1].split("</tr>")[0]
    assert "<td>Georgia</td>" in other and "<td></td>" in other


def test_partners_do_not_see_workshop_management(client, db):
    w = make_workshop(db)
    client.login(make_user(db, organisation=make_org(db)))
    assert client.get("/workshops/").status_code == 404
    assert client.get(f"/workshops/{w.id}").status_code == 404
    assert client.get(f"/workshops/{w.id}/participants.csv").status_code == 404


# Public registration ----------------------------------------------------------------------------

def test_public_page_in_visitors_language_without_account(client, db):
    w = make_workshop(db, translations={"de": {"title": "Beratungsaustausch", "description": "Drei Tage."}})
    page = client.get(f"/workshops/join/{w.public_key}", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert '<html lang="de"' in page
    assert "Beratungsaustausch" in page and "Drei Tage." in page
    for label in ("name", "email", "organisation", "country", "role", "languages", "dietary_needs",
                  "accessibility_needs", "travel_support", "visa_letter", "passport_name", "nationality",
                  "passport_number", "birth_date", "consent_processing", "consent_list"):
        assert f'for="{label}"' in page, label
    assert "/workshops/privacy" in page
    page = client.get(f"/workshops/join/{w.public_key}", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert "Advisor exchange" in page  # no French title given: the main title


def test_double_opt_in(client, db, mails, app):
    w = make_workshop(db)
    data = register(client, w)
    reg = reg_by_email(db, data["email"])
    assert reg.status == "unconfirmed"
    (confirm_mail,) = mails.to(data["email"])
    assert "confirm" in confirm_mail["Subject"].lower()
    path = link_path(confirm_mail, "confirm")
    # Opening the link shows a button; only pressing it counts (mail scanners open links too).
    page = client.get(path).get_data(as_text=True)
    assert "Confirm my registration" in page
    assert reg_by_email(db, data["email"]).status == "unconfirmed"
    resp = client.submit(path)
    assert resp.status_code == 303 and "/workshops/my/" in resp.headers["Location"]
    assert reg_by_email(db, data["email"]).status == "confirmed"
    confirmed = mails.to(data["email"])[-1]
    assert "confirmed" in confirmed["Subject"]
    ics = ics_of(confirmed)
    assert "BEGIN:VEVENT" in ics
    assert f"DTSTART;VALUE=DATE:{w.starts_on:%Y%m%d}" in ics
    assert f"DTEND;VALUE=DATE:{w.ends_on + timedelta(days=1):%Y%m%d}" in ics
    assert "Haus der Kulturen" in ics
    # A second press changes nothing and sends nothing.
    client.submit(path)
    assert len(mails.to(data["email"])) == 2
    # The self-service page shows the status.
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Your place is confirmed" in page


def test_mails_are_in_the_registrants_language(client, db, mails, app):
    w = make_workshop(db, translations={"fr": {"title": "Échange des conseillers", "description": ""}})
    data = form()
    client.get(f"/workshops/join/{w.public_key}")
    resp = client.submit(f"/workshops/join/{w.public_key}", data, headers={"Accept-Language": "fr"})
    assert resp.status_code == 303
    assert reg_by_email(db, data["email"]).locale == "fr"
    message = mails.to(data["email"])[-1]
    assert "Échange des conseillers" in message["Subject"]
    with app.test_request_context(), force_locale("fr"):
        french_date = format_date(w.starts_on)
    assert french_date in body(message)


def test_one_registration_per_email_and_resend(client, db, mails):
    w = make_workshop(db)
    data = register(client, w)
    again = client.submit(f"/workshops/join/{w.public_key}", {**data, "email": data["email"].upper()})
    assert again.status_code == 303  # the same answer as a new registration (tests/test_attack.py) ...
    assert len(db.exec(select(Registration)).all()) == 1
    assert len(mails.to(data["email"])) == 2  # ... and the link again by e-mail
    resp = client.submit(f"/workshops/join/{w.public_key}/resend", {"email": data["email"]})
    assert resp.status_code == 303
    assert len(mails.to(data["email"])) == 3
    assert link_path(mails.to(data["email"])[-1], "confirm")
    # Once confirmed, the resend brings the self-service link instead.
    client.submit(link_path(mails.to(data["email"])[-1], "confirm"))
    client.submit(f"/workshops/join/{w.public_key}/resend", {"email": data["email"]})
    assert link_path(mails.to(data["email"])[-1], "my")


def test_capacity_waitlist_and_promotion_on_withdrawal(client, db, mails):
    w = make_workshop(db, capacity=1)
    a = register_and_confirm(client, mails, w)
    b = register_and_confirm(client, mails, w)
    c = register_and_confirm(client, mails, w)
    assert [reg_by_email(db, x["email"]).status for x in (a, b, c)] == ["confirmed", "waitlisted", "waitlisted"]
    assert "waitlist" in mails.to(b["email"])[-1]["Subject"]
    # Unconfirmed registrations never take a seat.
    register(client, w)

    manage = link_path(mails.to(a["email"])[-1], "my")
    resp = client.submit(manage + "/withdraw")
    assert resp.status_code == 303
    assert reg_by_email(db, a["email"]).status == "withdrawn"
    assert "withdrawn" in mails.to(a["email"])[-1]["Subject"]
    assert reg_by_email(db, b["email"]).status == "confirmed"  # the first on the waitlist moved up
    assert reg_by_email(db, c["email"]).status == "waitlisted"
    moved = mails.to(b["email"])[-1]
    assert "place became free" in moved["Subject"]
    assert "BEGIN:VCALENDAR" in ics_of(moved)
    actions = db.exec(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert "workshop.withdrawn" in actions and "workshop.moved_up" in actions
    assert "Your registration is withdrawn." in client.get(manage).get_data(as_text=True)


def test_moderated_approvals_respect_capacity(client, db, mails):
    w = make_workshop(db, capacity=1, moderated=True)
    a = register_and_confirm(client, mails, w)
    b = register_and_confirm(client, mails, w)
    ra, rb = reg_by_email(db, a["email"]), reg_by_email(db, b["email"])
    assert (ra.status, rb.status) == ("pending", "pending")
    staff = staff_client(client, db)
    url = f"/workshops/{w.id}/registrations/{{}}/status"
    assert client.submit(url.format(ra.id), {"status": "confirmed"}).status_code == 303
    assert reg_by_email(db, a["email"]).status == "confirmed"
    approved = mails.to(a["email"])[-1]
    assert "approved" in approved["Subject"]
    assert "BEGIN:VEVENT" in ics_of(approved)

    full = client.submit(url.format(rb.id), {"status": "confirmed"})
    assert full.status_code == 422
    assert "The workshop is full (1 places)" in full.get_data(as_text=True)
    assert reg_by_email(db, b["email"]).status == "pending"

    resp = client.submit(url.format(rb.id), {"status": "declined", "message": "We are sorry, the room is small."})
    assert resp.status_code == 303
    declined = mails.to(b["email"])[-1]
    assert "declined" in declined["Subject"]
    assert "We are sorry, the room is small." in body(declined)
    entries = db.exec(select(AuditEntry).where(AuditEntry.actor_id == staff.id,
                                               AuditEntry.object_type == "Registration")).all()
    assert [e.action for e in entries] == ["workshop.confirmed", "workshop.declined"]
    # The audit log keeps no names or message texts (it outlives the purge).
    assert all(set(e.after) <= {"status", "country", "role", "message"} for e in entries)
    assert "room is small" not in str([e.after for e in entries])


def test_staff_add_by_hand_and_move_between_statuses(client, db, mails):
    w = make_workshop(db, capacity=1)
    make_registration(db, w)  # the one seat is taken
    staff_client(client, db)
    data = form(locale="de", email="nino@example.org")
    data.pop("consent_processing")
    resp = client.submit(f"/workshops/{w.id}/registrations/new", data)
    assert resp.status_code == 303, resp.get_data(as_text=True)[:2000]
    reg = reg_by_email(db, "nino@example.org")
    assert (reg.status, reg.locale) == ("waitlisted", "de")
    assert "Warteliste" in mails.to("nino@example.org")[-1]["Subject"]  # in her language
    # Staff move the seated person to the waitlist's end: the first waiting moves up.
    seated = db.exec(select(Registration).where(Registration.status == "confirmed")).one()
    client.submit(f"/workshops/{w.id}/registrations/{seated.id}/status", {"status": "withdrawn"})
    assert reg_by_email(db, "nino@example.org").status == "confirmed"
    assert "Ein Platz ist für Sie frei geworden" in mails.to("nino@example.org")[-1]["Subject"]
    actions = db.exec(select(AuditEntry.action).where(AuditEntry.object_type == "Registration")
                      .order_by(AuditEntry.id)).all()
    assert actions == ["workshop.added_by_staff", "workshop.withdrawn", "workshop.moved_up"]
    # Participant list: counts against capacity, filters, and the htmx swap gets only the list.
    page = client.get(f"/workshops/{w.id}?status=confirmed").get_data(as_text=True)
    assert "1 of 1 places taken" in page
    assert reg.name in page and seated.name not in page
    part = client.get(f"/workshops/{w.id}?status=withdrawn&needs=", headers={"HX-Request": "true"})
    assert "<html" not in part.get_data(as_text=True)
    assert seated.name in part.get_data(as_text=True) and reg.name not in part.get_data(as_text=True)
    assert reg.name not in client.get(f"/workshops/{w.id}?country=DE").get_data(as_text=True)
    assert client.get(f"/workshops/{w.id}?country=%00%00&status=%00").status_code == 400  # a clear 400


def test_self_service_change_keeps_passport_data_private(client, db, mails):
    w = make_workshop(db)
    data = register_and_confirm(client, mails, w, visa_letter="y", passport_name="DIALLO AMINA",
                                nationality="SN", passport_number="A1234567", birth_date="1985-03-21")
    manage = link_path(mails.to(data["email"])[-1], "my")
    page = client.get(manage).get_data(as_text=True)
    assert "A1234567" not in page and "DIALLO AMINA" not in page
    resp = client.submit(manage, {**form(), "organisation": "New Desk", "email": "ignored@example.org"})
    assert resp.status_code == 303
    reg = reg_by_email(db, data["email"])
    assert reg.organisation == "New Desk" and reg.passport_number == "A1234567"
    change = db.exec(select(AuditEntry).where(AuditEntry.action == "workshop.registration_changed")).one()
    assert "organisation" in change.after["fields"] and "New Desk" not in str(change.after)
    staff_client(client, db)
    page = client.get(f"/workshops/{w.id}/registrations/{reg.id}").get_data(as_text=True)
    assert "A1234567" in page and "DIALLO AMINA" in page


def test_invalid_links_are_404(client, db):
    make_workshop(db)
    for path in ("/workshops/join/nope", "/workshops/confirm/nope", "/workshops/my/nope",
                 "/workshops/my/" + "x" * 5000):
        assert client.get(path).status_code == 404
    assert client.submit("/workshops/my/nope/withdraw").status_code == 404


def test_registration_closes_after_the_deadline(client, db):
    w = make_workshop(db, registration_deadline=TODAY - timedelta(days=1))
    page = client.get(f"/workshops/join/{w.public_key}").get_data(as_text=True)
    assert "Registration for this workshop is closed." in page
    client.submit(f"/workshops/join/{w.public_key}", form())
    assert db.exec(select(Registration)).all() == []


# Hardening --------------------------------------------------------------------------------------

def test_honeypot_answers_like_success_and_stores_nothing(client, db, mails):
    w = make_workshop(db)
    data = form(website="http://spam.example")
    resp = client.submit(f"/workshops/join/{w.public_key}", data)
    assert resp.status_code == 303
    assert db.exec(select(Registration)).all() == []
    assert mails.to(data["email"]) == []


@pytest.mark.parametrize("app_overrides", [{"WORKSHOP_RATE_LIMIT": "2 per hour"}])
def test_public_form_is_rate_limited(client, db):
    w = make_workshop(db)
    codes = [client.submit(f"/workshops/join/{w.public_key}", form(name="")).status_code for _ in range(3)]
    assert codes == [422, 422, 429]
    assert client.get(f"/workshops/join/{w.public_key}").status_code == 200  # reading is not limited


@pytest.mark.parametrize("value, message", [
    ("A" * 5000, "Use at most 200 characters."),
    ("\x1b[31mred", "Remove the invisible control characters from this field."),
])
def test_odd_input_gets_a_clear_message(client, db, value, message):
    w = make_workshop(db)
    resp = client.submit(f"/workshops/join/{w.public_key}", form(name=value, organisation=value))
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    assert message in page
    assert "There is a problem" in page
    assert db.exec(select(Registration)).all() == []


def test_a_nul_character_is_refused_before_the_form(client, db):
    w = make_workshop(db)
    resp = client.submit(f"/workshops/join/{w.public_key}", form(name="Amina\x00Diallo"))
    assert resp.status_code == 400  # portal.security: a NUL anywhere in a request, before any view
    assert "not allowed (a null character)" in resp.get_data(as_text=True)
    assert db.exec(select(Registration)).all() == []


def test_unicode_names_are_welcome(client, db, mails):
    w = make_workshop(db)
    data = register(client, w, name="ნინო ბერიძე — Нино", organisation="منظمة العودة")
    assert reg_by_email(db, data["email"]).name == "ნინო ბერიძე — Нино"


FIELDS = ["name", "email", "organisation", "country", "role", "languages", "dietary_needs", "accessibility_needs",
          "travel_support", "visa_letter", "passport_name", "nationality", "passport_number", "birth_date",
          "consent_processing", "consent_list", "website", "unexpected"]
ODD_TEXT = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60),
    st.text(alphabet=st.sampled_from("\x00\x01\x1b\u202e\ufeff\u200b\U0001F600aé@.-"), max_size=30),
    st.builds(lambda c, n: c * n, st.sampled_from(["a", "é", "\x00", "😀", "@"]), st.integers(200, 20_000)),
    st.sampled_from(["SN", "return_country", "y", "1985-03-21", "amina@example.org", "ü@example.org"]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.dictionaries(st.sampled_from(FIELDS), ODD_TEXT, max_size=len(FIELDS)))
def test_public_form_never_fails_with_a_server_error(client, db, data):
    w = db.exec(select(Workshop)).first() or make_workshop(db)
    token = client.csrf_token()
    resp = client.post(f"/workshops/join/{w.public_key}", data={**data, "csrf_token": token})
    assert resp.status_code in (200, 303, 400, 413, 422), resp.status_code
    if resp.status_code == 422:
        assert "There is a problem" in resp.get_data(as_text=True) or "already registered" in resp.get_data(
            as_text=True)


# Outbox -----------------------------------------------------------------------------------------

def test_outbox_survives_a_stopped_smtp_server(client, db, mails, app):
    w = make_workshop(db)
    sink_port = app.config["MAIL_PORT"]
    app.config["MAIL_PORT"] = 1  # nothing listens there: the server is "down"
    data = register(client, w)
    assert mails.to(data["email"]) == []
    db.expire_all()
    (waiting,) = db.exec(select(OutboxMail).where(OutboxMail.to == data["email"])).all()
    assert waiting.sent_at is None and waiting.attempts == 1 and waiting.last_error
    assert reg_by_email(db, data["email"]).status == "unconfirmed"  # the registration is kept

    app.config["MAIL_PORT"] = sink_port
    with app.app_context():
        sent, still = mail.deliver_pending(db)
    assert (sent, still) == (1, 0)
    assert len(mails.to(data["email"])) == 1
    # The link in the late mail still works.
    assert client.submit(link_path(mails.to(data["email"])[0], "confirm")).status_code == 303


def test_mail_retry_command_sends_attachments(client, db, mails, app):
    w = make_workshop(db)
    data = register(client, w)
    confirm = link_path(mails.to(data["email"])[-1], "confirm")
    app.config["MAIL_PORT"] = 1
    client.submit(confirm)
    assert len(mails.to(data["email"])) == 1
    app.config["MAIL_PORT"] = mails.port
    result = app.test_cli_runner().invoke(args=["mail", "retry"])
    assert "sent 1, waiting 0" in result.output
    assert "BEGIN:VEVENT" in ics_of(mails.to(data["email"])[-1])


# Exports and PDFs -------------------------------------------------------------------------------

def test_csv_and_xlsx_exports_open_back(client, db):
    w = make_workshop(db)
    make_registration(db, w, name="Нино Беридзе", organisation="=HYPERLINK(\"http://evil\")", country="GE",
                      dietary_needs="vegetarian", passport_number="P999", visa_letter=True)
    make_registration(db, w, name="Awa Ndiaye", country="SN", status="waitlisted", role="eu_member_state")
    staff_client(client, db)
    resp = client.get(f"/workshops/{w.id}/participants.csv")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(resp.data.decode("utf-8-sig"))))
    assert rows[0][:3] == ["Status", "Full name", "Email"]
    names = {r[1]: r for r in rows[1:]}
    assert set(names) == {"Нино Беридзе", "Awa Ndiaye"}
    assert names["Нино Беридзе"][3].startswith("'=")  # no formula
    assert "P999" not in resp.data.decode("utf-8-sig")  # passport data stays on the staff screen

    resp = client.get(f"/workshops/{w.id}/participants.xlsx?country=SN")
    ws = load_workbook(io.BytesIO(resp.data)).active
    values = [[c.value for c in row] for row in ws.iter_rows()]
    assert values[0][1] == "Full name"
    assert [v[1] for v in values[1:]] == ["Awa Ndiaye"]
    assert values[1][0] == "Waitlist"
    assert values[1][5] == "Return counsellor in an EU member state"


def test_visa_letter_pdf_in_english_and_german(client, db):
    w = make_workshop(db)
    reg = make_registration(db, w, visa_letter=True, passport_name="БЕРИДЗЕ НИНО", nationality="GE",
                            passport_number="13AB45678", birth_date=date(1988, 7, 1))
    staff_client(client, db)
    resp = client.get(f"/workshops/{w.id}/registrations/{reg.id}/visa-letter.pdf?lang=en")
    assert resp.status_code == 200 and resp.mimetype == "application/pdf"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(resp.data)).pages)
    assert "БЕРИДЗЕ НИНО" in text
    assert "13AB45678" in text and "Invitation letter" in text and "Haus der Kulturen" in text
    assert "Micado Migration gGmbH" in text and "Stefan Staff" in text
    resp = client.get(f"/workshops/{w.id}/registrations/{reg.id}/visa-letter.pdf?lang=de")
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(resp.data)).pages)
    assert "Einladungsschreiben" in text and "Georgien" in text
    # No letter for someone without a seat or without the request.
    other = make_registration(db, w, status="waitlisted", visa_letter=True, passport_name="X")
    assert client.get(f"/workshops/{w.id}/registrations/{other.id}/visa-letter.pdf").status_code == 404


def test_name_badges_pdf(client, db):
    w = make_workshop(db, capacity=20)
    for i in range(9):
        make_registration(db, w, name=f"Badge Person {i}")
    make_registration(db, w, name="Not Seated", status="waitlisted")
    staff_client(client, db)
    resp = client.get(f"/workshops/{w.id}/badges.pdf")
    reader = PdfReader(io.BytesIO(resp.data))
    text = "".join(page.extract_text() for page in reader.pages)
    assert len(reader.pages) == 2
    assert "Badge Person 8" in text and "Not Seated" not in text


# Retention --------------------------------------------------------------------------------------

def test_purge_removes_passports_then_personal_data(app, db):
    ended = TODAY - timedelta(days=1)
    w = make_workshop(db, starts_on=ended - timedelta(days=2), ends_on=ended,
                      registration_deadline=ended - timedelta(days=10))
    running = make_workshop(db)
    for country, role in (("GE", "return_country"), ("GE", "return_country"), ("DE", "eu_member_state")):
        make_registration(db, w, country=country, role=role, visa_letter=True, passport_name="X Y",
                          passport_number="P1", nationality="GE", birth_date=date(1980, 1, 1))
    keep = make_registration(db, running, passport_number="P2", visa_letter=True)
    runner = app.test_cli_runner()

    result = runner.invoke(args=["workshop", "purge"])
    assert "passport data purged for 1 workshops, personal data purged for 0" in result.output
    db.expire_all()
    regs = db.exec(select(Registration).where(Registration.workshop_id == w.id)).all()
    assert len(regs) == 3 and all(r.passport_number is None and r.birth_date is None for r in regs)
    assert db.get(Registration, keep.id).passport_number == "P2"

    later = (ended + timedelta(days=31)).isoformat()
    result = runner.invoke(args=["workshop", "purge", "--today", later])
    assert "personal data purged for 1 workshops" in result.output
    db.expire_all()
    assert db.exec(select(Registration).where(Registration.workshop_id == w.id)).all() == []
    counts = {(s.country, s.role, s.status): s.count for s in db.exec(select(WorkshopStat))}
    assert counts == {("GE", "return_country", "confirmed"): 2, ("DE", "eu_member_state", "confirmed"): 1}
    assert db.get(Registration, keep.id) is not None
    # The public page is gone with the data.
    client = app.test_client()
    assert client.get(f"/workshops/join/{w.public_key}").status_code == 404


@pytest.mark.parametrize("app_overrides", [{"WORKSHOP_RETENTION_DAYS": 5}])
def test_purge_retention_days_are_configurable(app, db):
    ended = TODAY - timedelta(days=7)
    w = make_workshop(db, starts_on=ended, ends_on=ended, registration_deadline=ended)
    make_registration(db, w)
    result = app.test_cli_runner().invoke(args=["workshop", "purge"])
    assert "personal data purged for 1 workshops" in result.output
