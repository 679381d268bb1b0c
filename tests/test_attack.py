"""Findings of an attack test (issue 13, item 4): each test fails without its fix."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal

import pytest
from sqlmodel import select

from portal import csvfile
from portal.auth.models import User
from portal.cases.models import Case
from portal.demo import DEMO_PASSWORD, load_demo
from portal.receipts.models import Receipt
from portal.security import safe_next
from tests.factories import (
    PASSWORD,
    make_case,
    make_line,
    make_org,
    make_receipt,
    make_registration,
    make_user,
    make_workshop,
    pdf_of_objects,
)
from tests.helpers import enrol, next_code, staff_client

EVIL = ["/%09/evil.example", "/%0A/evil.example", "/%0D%0A/evil.example", "//evil.example", "/\\evil.example",
        "https://evil.example/", "/%5Cevil.example", "javascript:alert(1)", "/%00/x"]


# Open redirects -----------------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["/\t/evil.example", "/\n/evil.example", "//evil.example", "/\\evil.example",
                                    "https://evil.example", "http:/evil.example", "", None, "cases/",
                                    "/ok\x7f", " /cases/"])
def test_safe_next_refuses_other_sites(target):
    assert safe_next(target) is None


@pytest.mark.parametrize("target", ["/cases/", "/cases/?q=a%20b&page=2", "/receipts/3#top", "/%2F"])
def test_safe_next_keeps_paths_of_this_site(target):
    assert safe_next(target) == target


def _local(resp) -> str:
    location = resp.headers["Location"]
    assert location.startswith("/") and not location.startswith("//") and "\\" not in location, location
    return location


@pytest.mark.parametrize("target", EVIL)
def test_sign_in_does_not_redirect_to_another_site(client, db, target):
    user = make_user(db)
    resp = client.submit(f"/login?next={target}", {"email": user.email, "password": PASSWORD})
    if "%00" in target:
        assert resp.status_code == 400  # a NUL anywhere in a request: refused before the view
        return
    assert resp.status_code == 303
    assert _local(resp) == "/"


def test_sign_in_follows_a_local_next(client, db):
    user = make_user(db)
    resp = client.submit("/login?next=/cases/%3Fq%3Dx", {"email": user.email, "password": PASSWORD})
    assert resp.headers["Location"] == "/cases/?q=x"


@pytest.mark.parametrize("target", ["/%09/evil.example", "/%0A/evil.example"])
def test_second_factor_step_does_not_redirect_to_another_site(client, db, target):
    user = make_user(db)
    client.login(user)
    secret, _codes = enrol(client)
    client.submit("/logout")
    resp = client.submit(f"/login?next={target}", {"email": user.email, "password": PASSWORD})
    assert resp.headers["Location"] == "/login/code"
    resp = client.submit("/login/code", {"code": next_code(secret, db, user)})
    assert resp.status_code == 303
    assert _local(resp) == "/"


@pytest.mark.parametrize("target", ["/\t/evil.example", "/\n/evil.example", "/\r\n/evil.example",
                                    "//evil.example"])
def test_language_switch_does_not_redirect_to_another_site(client, target):
    resp = client.submit("/language", {"lang": "de", "next": target})
    assert resp.status_code == 303
    assert _local(resp) == "/"


# CSV formula injection after a separator -----------------------------------------------------------

def _formula_cells(body: bytes) -> list[str]:
    """Cells a spreadsheet would run, read the ways spreadsheets read a CSV file: German Excel with ";",
    others with "," or tab, honouring quotes or (a careless import) not."""
    text = body.decode("utf-8-sig")
    found = []
    for delimiter in (";", ",", "\t"):
        for row in csv.reader(io.StringIO(text), delimiter=delimiter):
            found += [c for c in row if c.lstrip()[:1] in ("=", "+", "-", "@")]
        for line in text.splitlines():
            found += [c for c in line.split(delimiter) if c.lstrip().lstrip('"').lstrip()[:1] in ("=", "+", "@")]
    return found


@pytest.mark.parametrize("text,safe", [
    ("ACME;=1+1", "ACME;'=1+1"), ("ACME", "ACME"), ("=1+1", "'=1+1"), ("a,@SUM(A1)", "a,'@SUM(A1)"),
    ("x\t+1", "x\t'+1"), ("Müller; -2", "Müller;' -2"), ("\r=1", "'\r=1"), ("5 - 3", "5 - 3"),
])
def test_safe_text_escapes_every_part_after_a_separator(text, safe):
    assert csvfile.safe_text(text) == safe
    assert csvfile.cell(Decimal("-5.00")) == "-5.00"  # numbers stay numbers


def test_belegliste_csv_has_no_formula_after_a_separator(app, client, db):
    with app.app_context():
        load_demo(db)
    case = db.exec(select(Case).order_by(Case.id.desc())).first()
    make_receipt(db, case, supplier="ACME;=1+1", description="x;@SUM(A1)", invoice_number="7,+1",
                 status="approved", invoice_date=date(2024, 5, 20), eur_cents=1234, amount_minor=1234)
    client.login(db.exec(select(User).where(User.email == "staff2@example.org")).one(), DEMO_PASSWORD)
    body = client.get("/reports/belegliste.csv?start=2024-05-01&end=2024-05-31").data
    assert _formula_cells(body) == []
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert ["ACME;'=1+1", "7,'+1"] in [r[3:5] for r in rows]  # still readable, and one cell each


def test_participant_csv_has_no_formula_after_a_separator(client, db):
    w = make_workshop(db)
    make_registration(db, w, organisation="ACME;=1+1", dietary_needs="none;+1", name="Ana;@x")
    staff_client(client, db)
    body = client.get(f"/workshops/{w.id}/participants.csv").data
    assert _formula_cells(body) == []
    assert "ACME;'=1+1" in body.decode("utf-8-sig")


def test_audit_csv_has_no_formula_after_a_separator(app, client, db):
    from portal import audit

    staff = make_user(db, role="staff", name="Eve;=1+1")
    audit.record(db, staff, "test.formula", staff, after={"note": "a;=HYPERLINK(1)"})
    db.commit()
    client.login(staff)
    body = client.get("/reports/audit.csv").data
    assert "Eve;'=1+1" in body.decode("utf-8-sig")
    assert _formula_cells(body) == []


# Sign-out ends the session on the server; a deactivated organisation's people lose access --------------

def _clients(app, n):
    from tests.fixtures import PortalClient

    app.test_client_class = PortalClient
    return [app.test_client() for _ in range(n)]


def test_signing_out_ends_the_copied_cookies_but_not_other_devices(app, db):
    user = make_user(db)
    phone, laptop, thief = _clients(app, 3)
    laptop.login(user)
    phone.submit("/login", {"email": user.email, "password": PASSWORD, "remember": "y"})
    copied_session = phone.get_cookie("session").value
    copied_remember = phone.get_cookie("remember_token").value
    thief.set_cookie("session", copied_session)
    assert thief.get("/cases/").status_code == 200  # the copy works while the phone is signed in ...
    assert phone.submit("/logout").status_code == 303
    for cookies in ({"session": copied_session}, {"remember_token": copied_remember},
                    {"session": copied_session, "remember_token": copied_remember}):
        (replay,) = _clients(app, 1)
        for name, value in cookies.items():
            replay.set_cookie(name, value)
        resp = replay.get("/cases/")
        assert resp.status_code == 302 and "/login" in resp.headers["Location"], cookies  # ... not after
    assert laptop.get("/cases/").status_code == 200  # a sign-out on the phone leaves the laptop signed in


def test_deactivating_an_organisation_ends_its_users_access(app, db):
    from tests.helpers import fields, unique_pdf

    org = make_org(db, country="GE")
    case = make_case(db, org, country="GE")
    line = make_line(db, case, planned_cents=100_000)
    partner, other = make_user(db, organisation=org), make_user(db, organisation=make_org(db))
    p, o, admin = _clients(app, 3)
    p.submit("/login", {"email": partner.email, "password": PASSWORD, "remember": "y"})
    remember = p.get_cookie("remember_token").value
    o.login(other)
    admin.login(make_user(db, role="admin"))
    assert p.get(f"/cases/{case.id}").status_code == 200
    resp = admin.submit(f"/organisations/{org.id}/edit", {"name": org.name, "country": org.country,
                                                          "contact_email": org.contact_email})
    assert resp.status_code == 303
    assert p.get(f"/cases/{case.id}").status_code == 302  # signed out
    data = {**fields({"line": line}), "files": [(io.BytesIO(unique_pdf()), "invoice.pdf")]}
    resp = p.submit(f"/cases/{case.id}/receipts/new", data, content_type="multipart/form-data")
    assert resp.status_code == 302 and db.exec(select(Receipt)).all() == []  # no upload
    (replay,) = _clients(app, 1)
    replay.set_cookie("remember_token", remember)
    assert replay.get("/cases/").status_code == 302  # the remember-me cookie is void
    fresh = p.submit("/login", {"email": partner.email, "password": PASSWORD})
    assert fresh.status_code == 422  # and no new sign-in while the organisation is inactive
    assert o.get("/cases/").status_code == 200  # other organisations go on


# Images keep no comment or colour profile; PDFs with dangerous links, late HTML or damage are refused ----

@pytest.fixture(scope="module")
def files_ctx(tmp_path_factory):
    """A request context for the translated messages; these checks need no database."""
    from portal import create_app
    from tests.fixtures import app_config

    app = create_app(app_config("sqlite:///:memory:", tmp_path_factory.mktemp("files"), 1025))
    with app.test_request_context():
        yield


def _photo(fmt: str, **save) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 30)).save(out, fmt, **save)
    return out.getvalue()


def _srgb_profile() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.mark.parametrize("name,fmt", [("photo.jpg", "JPEG"), ("scan.png", "PNG"), ("photo.webp", "WEBP")])
def test_reencoded_images_keep_no_comment_or_colour_profile(files_ctx, name, fmt):
    from PIL import Image

    from portal.uploads.files import clean_upload

    icc = _srgb_profile()
    extra = {"comment": b"Taken at Kutaisi bus station"} if fmt == "JPEG" else {}
    data = _photo(fmt, icc_profile=icc, **extra)
    with Image.open(io.BytesIO(data)) as upload:  # the upload carries both
        assert upload.info["icc_profile"] == icc and (fmt != "JPEG" or b"Kutaisi" in upload.info["comment"])
    stored = clean_upload(name, io.BytesIO(data)).data.read()
    assert b"Kutaisi" not in stored
    assert icc[-200:] not in stored and b"ICC_PROFILE" not in stored and b"iCCP" not in stored
    with Image.open(io.BytesIO(stored)) as img:
        assert "comment" not in img.info and "icc_profile" not in img.info
        red, green, blue = img.convert("RGB").getpixel((10, 10))[:3]
        assert red > 180 and green < 70 and blue < 60  # the colours are kept (converted to sRGB)


def _pdf(catalog_extra: str = "", page_extra: str = "", extra_objects: tuple[str, ...] = ()) -> bytes:
    objs = [f"<< /Type /Catalog /Pages 2 0 R {catalog_extra} >>",
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Resources << >> {page_extra} >>",
            *extra_objects]
    return pdf_of_objects([body.encode("latin-1") for body in objs])


def _pdf_refused(data: bytes) -> str:
    from portal.uploads.files import FileProblem, clean_upload

    with pytest.raises(FileProblem) as info:
        clean_upload("invoice.pdf", io.BytesIO(data))
    return str(info.value)


LINK = "/Annots [<< /Type /Annot /Subtype /Link /Rect [0 0 50 50] /A << /S /URI /URI {uri} >> >>]"


@pytest.mark.parametrize("uri", ["(javascript:app.alert\\(1\\))", "( JavaScript:alert\\(1\\))",
                                 "(java\tscript:alert\\(1\\))", "<6A6176617363726970743A616C657274283129>",
                                 "(data:text/html;base64,PHNjcmlwdD4=)", "(file:///etc/passwd)"])
def test_pdf_link_to_javascript_is_refused(files_ctx, uri):
    assert "scripts, actions" in _pdf_refused(_pdf(page_extra=LINK.format(uri=uri)))


def test_pdf_open_action_to_a_uri_is_refused(files_ctx):
    data = _pdf("/OpenAction << /S /URI /URI (https://evil.example/track) >>")
    assert "scripts, actions" in _pdf_refused(data)
    data = _pdf("/OpenAction 4 0 R", extra_objects=("<< /S /URI /URI (https://evil.example/) >>",))
    assert "scripts, actions" in _pdf_refused(data)  # the action as an object of its own
    data = _pdf(page_extra="/AA << /O << /S /URI /URI (https://evil.example/) >> >>")
    assert "scripts, actions" in _pdf_refused(data)  # on opening the page


def test_pdf_with_ordinary_links_and_a_page_to_open_is_accepted(files_ctx):
    from portal.uploads.files import clean_upload

    data = _pdf("/OpenAction [3 0 R /Fit]", LINK.format(uri="(https://shop.example/invoice/7)"))
    assert clean_upload("invoice.pdf", io.BytesIO(data)).size == len(data)
    data = _pdf("/OpenAction << /S /GoTo /D [3 0 R /Fit] >>", LINK.format(uri="(mailto:office@shop.example)"))
    assert clean_upload("invoice.pdf", io.BytesIO(data)).size == len(data)


@pytest.mark.parametrize("offset", [1100, 5000, 1024 * 1024 - 3])
def test_pdf_with_html_after_the_first_kilobyte_is_refused(files_ctx, offset):
    filler = "% " + "x" * 70 + "\n"
    comment = filler * (offset // len(filler))
    data = _pdf(extra_objects=(comment + "<< /Note (<HTML><body><script>alert(1)</script>) >>",))
    assert data.lower().find(b"<html") > 1024
    assert "damaged or not a real PDF" in _pdf_refused(data)


def test_pdf_that_qpdf_must_repair_is_refused(files_ctx):
    good = _pdf()
    from portal.uploads.files import clean_upload

    assert clean_upload("invoice.pdf", io.BytesIO(good)).size == len(good)
    shifted = good.replace(b"%PDF-1.7\n", b"%PDF-1.7\n% twelve bytes\n", 1)  # every xref offset wrong
    truncated = good[: good.rindex(b"startxref")]
    broken = good.replace(b"/Count 1", b"/Count 1 >> >> >>")
    for data in (shifted, truncated, broken):
        assert "damaged or not a real PDF" in _pdf_refused(data)


# No 500s: ids beyond 64 bits, NaN amounts, NUL characters ----------------------------------------------

HUGE = str(2**64)


def _int_routes(app, huge: str):
    from portal.security import BoundedIntConverter

    for rule in app.url_map.iter_rules():
        ints = [name for name, conv in rule._converters.items() if isinstance(conv, BoundedIntConverter)]
        if ints:
            values = {name: (huge if name in ints else "x") for name in rule.arguments}
            yield rule, rule.build(values, append_unknown=False)[1]


@pytest.mark.parametrize("huge", [HUGE, str(2**63), str(2**31)])
def test_every_id_in_a_url_beyond_the_columns_range_is_a_404(app, client, db, huge):
    client.login(make_user(db, role="admin"))
    routes = list(_int_routes(app, huge))
    assert len(routes) > 30  # every <int:> route of the portal
    token = client.csrf_token()
    for rule, url in routes:
        resp = client.get(url) if "GET" in rule.methods else client.post(url, data={"csrf_token": token})
        assert resp.status_code == 404, (url, resp.status_code)
    assert client.get(f"/cases/{2**31 - 1}").status_code == 404  # the largest id is still just "not found"


def test_id_filters_in_query_strings_beyond_64_bits_are_ignored(client, db):
    client.login(make_user(db, role="admin"))
    for huge in (HUGE, str(2**31)):
        assert client.get(f"/cases/?organisation={huge}").status_code == 200
        assert client.get(f"/reports/audit?user={huge}").status_code == 200
        assert client.get(f"/reports/audit.csv?user={huge}").status_code == 200


@pytest.mark.parametrize("amount", ["sNaN", "NaN", "Infinity", "-Infinity", "inf", "-sNaN"])
def test_not_a_number_as_an_amount_is_a_form_error(client, db, amount):
    from tests.helpers import upload

    org = make_org(db, country="GE")
    case = make_case(db, org, country="GE")
    w = {"case": case, "line": make_line(db, case, planned_cents=100_000)}
    client.login(make_user(db, organisation=org))
    resp = upload(client, w, amount=amount)
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    assert "Enter the amount as a number, for example 120.50." in page and f'value="{amount}"' in page  # kept
    assert db.exec(select(Receipt)).all() == []


@pytest.mark.parametrize("amount", ["sNaN", "NaN", "Infinity"])
def test_not_a_number_in_amount_filters_and_the_sample_share(client, db, amount):
    client.login(make_user(db, role="staff"))
    resp = client.get(f"/review/?min_eur={amount}&max_eur={amount}")
    assert resp.status_code == 200 and "Enter the amount as a number, for example 120.50." in resp.get_data(as_text=True)
    resp = client.submit("/review/samples", {"share": amount, "start": "2024-01-01", "end": "2024-12-31"})
    assert resp.status_code == 422 and "Enter a number, like 250.50" in resp.get_data(as_text=True)
    org = make_org(db)
    case = make_case(db, org)
    resp = client.submit(f"/cases/{case.id}/lines/new", {"budget_category": "equipment", "description": "Oven",
                                                         "planned_amount": amount})
    assert resp.status_code in (404, 422) and resp.status_code != 500


@pytest.mark.parametrize("lang,message", [("en", "not allowed (a null character)"),
                                          ("de", "nicht erlaubt")])
def test_a_nul_character_is_a_clear_400_in_the_users_language(client, db, lang, message):
    from tests.helpers import fields, unique_pdf

    org = make_org(db, country="GE")
    case = make_case(db, org, country="GE")
    line = make_line(db, case, planned_cents=100_000)
    client.login(make_user(db, organisation=org, locale=lang))
    for resp in (client.get("/cases/?q=Tbi%00lisi"), client.get("/cases/?q%00=x"),
                 client.submit(f"/cases/{case.id}/receipts/new",
                               {**fields({"line": line}), "supplier": "ACME\x00 Ltd",
                                "files": [(io.BytesIO(unique_pdf()), "invoice.pdf")]},
                               content_type="multipart/form-data"),
                 client.get("/workshops/join/abc%00def")):
        assert resp.status_code == 400
        assert message in resp.get_data(as_text=True)
    assert db.exec(select(Receipt)).all() == []


# Another organisation's receipt is not named to a partner; staff see the match ---------------------------

def test_a_duplicate_of_another_organisations_receipt_is_not_named(client, db):
    from portal.audit import AuditEntry
    from tests.helpers import load, new_receipt, switch, unique_pdf, upload

    org_a, org_b = make_org(db, country="GE"), make_org(db, country="SN")
    case_a, case_b = make_case(db, org_a, country="GE"), make_case(db, org_b, country="SN")
    w_a = {"case": case_a, "line": make_line(db, case_a)}
    w_b = {"case": case_b, "line": make_line(db, case_b)}
    partner_a, partner_b = make_user(db, organisation=org_a), make_user(db, organisation=org_b)
    staff = make_user(db, role="staff")
    pdf = unique_pdf()
    client.login(partner_a)
    first = load(db, new_receipt(client, w_a, files=[(io.BytesIO(pdf), "a.pdf")], supplier="Dakar Tools",
                                 invoice_number="F-2024-17"))
    switch(client, partner_b)
    # The same file: refused, said to be in the portal, but not where.
    page = upload(client, w_b, files=[(io.BytesIO(pdf), "b.pdf")]).get_data(as_text=True)
    assert "This file is already in the portal." in page
    assert first.reference not in page and case_a.reference not in page
    # The same supplier and invoice number: a confirmation, without naming the receipt.
    resp = upload(client, w_b, supplier="Dakar Tools", invoice_number="F-2024-17")
    page = resp.get_data(as_text=True)
    assert resp.status_code == 422 and "This invoice may already be in the portal" in page
    assert "a receipt of another organisation" in page
    assert first.reference not in page and case_a.reference not in page
    second = new_receipt(client, w_b, supplier="Dakar Tools", invoice_number="F-2024-17", confirm_duplicate="y")
    # Staff see the match on the receipt, and the refused file in the audit log.
    switch(client, staff)
    page = client.get(f"/receipts/{second}").get_data(as_text=True)
    assert "Possible duplicate" in page and first.reference in page
    refused = db.exec(select(AuditEntry).where(AuditEntry.action == "receipt.duplicate_file_refused")).one()
    assert refused.object_id == str(first.id) and refused.actor_id == partner_b.id
    assert "receipt.duplicate_file_refused" in client.get("/reports/audit").get_data(as_text=True)


# The workshop: no registered-address oracle, links that expire and void each other, no caching ------------

def test_registering_an_address_again_answers_like_a_new_registration(client, db, delivered_mails):
    mails = delivered_mails
    from portal.workshop.models import Registration
    from tests.helpers import form, link_path

    w = make_workshop(db)
    first = form()
    new = client.submit(f"/workshops/join/{w.public_key}", first)
    again = client.submit(f"/workshops/join/{w.public_key}", {**form(), "email": first["email"].upper()})
    other = client.submit(f"/workshops/join/{w.public_key}", form())
    for resp in (new, again, other):
        assert resp.status_code == 303 and resp.headers["Location"] == f"/workshops/join/{w.public_key}/sent"
    assert len(db.exec(select(Registration)).all()) == 2
    mails_to_first = mails.to(first["email"])
    assert len(mails_to_first) == 2 and link_path(mails_to_first[-1], "confirm")  # the link, by e-mail only
    assert "already registered" not in client.get(again.headers["Location"]).get_data(as_text=True)


def _confirmed(client, mails, w):
    from tests.helpers import link_path, register_and_confirm

    data = register_and_confirm(client, mails, w)
    return data, link_path(mails.to(data["email"])[-1], "my")


def test_a_new_link_voids_the_older_ones(client, db, delivered_mails):
    mails = delivered_mails
    from tests.helpers import link_path

    w = make_workshop(db)
    data, old = _confirmed(client, mails, w)
    assert client.get(old).status_code == 200
    assert client.submit(f"/workshops/join/{w.public_key}/resend", {"email": data["email"]}).status_code == 303
    new = link_path(mails.to(data["email"])[-1], "my")
    assert new != old
    assert client.get(old).status_code == 404
    assert client.submit(f"{old}/withdraw").status_code == 404
    assert client.get(new).status_code == 200


@pytest.mark.parametrize("app_overrides", [{"WORKSHOP_LINK_DAYS": 30}])
def test_manage_links_expire(app, client, db, delivered_mails, monkeypatch, app_overrides):
    mails = delivered_mails
    import time

    from itsdangerous.timed import TimestampSigner

    from portal.workshop import services as ws
    from portal.workshop.models import Registration

    w = make_workshop(db)
    data, link = _confirmed(client, mails, w)
    reg = db.exec(select(Registration).where(Registration.email == data["email"])).one()
    with app.test_request_context():
        for days, status in ((29, 200), (31, 404)):
            monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self, d=days: int(time.time()) - d * 86400)
            token = ws.make_token(reg, ws.MANAGE)
            monkeypatch.undo()
            assert client.get(f"/workshops/my/{token}").status_code == status, days


def test_personal_link_pages_are_not_cached(client, db, delivered_mails):
    mails = delivered_mails
    from tests.helpers import link_path, register

    w = make_workshop(db)
    data = register(client, w)
    confirm = link_path(mails.to(data["email"])[-1], "confirm")
    assert client.get(confirm).headers["Cache-Control"] == "no-store"
    manage = client.submit(confirm).headers["Location"]
    resp = client.get(manage)
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"


# Anonymous posts are size-limited before their bodies are parsed -----------------------------------------

@pytest.mark.parametrize("path", ["/login", "/reset", "/language", "/workshops/join/nope"])
def test_a_large_anonymous_post_is_refused_before_it_is_read(client, path, monkeypatch):
    from werkzeug.formparser import FormDataParser

    parsed = []
    monkeypatch.setattr(FormDataParser, "parse", lambda self, *a, **kw: parsed.append(1) or (a[0], {}, {}))
    big = {"email": "a@example.org", "password": "x" * (200 * 1024)}
    resp = client.post(path, data=big, headers={"Accept-Language": "de"})
    assert resp.status_code == 413 and parsed == []  # refused on its Content-Length, nothing parsed
    assert "Zu viele Daten" in resp.get_data(as_text=True)


def test_a_large_chunked_anonymous_post_is_cut_off(client):
    class Counting(io.BytesIO):
        taken = 0

        def read(self, size=-1):
            data = super().read(size)
            Counting.taken += len(data)
            return data

        def readline(self, size=-1):
            data = super().readline(size)
            Counting.taken += len(data)
            return data

    body = b"email=a%40example.org&password=" + b"x" * (2 * 1024 * 1024)
    resp = client.post("/login", input_stream=Counting(body), content_type="application/x-www-form-urlencoded",
                       headers={"Transfer-Encoding": "chunked"},
                       environ_overrides={"wsgi.input_terminated": True})  # as gunicorn passes a chunked body
    assert resp.status_code in (400, 413)  # cut off at the limit: no sign-in, no 500
    assert Counting.taken <= 128 * 1024 + 64 * 1024  # the rest of the 2 MB was never read


def test_signed_in_uploads_keep_the_large_limit(client, db):
    from tests.helpers import upload

    org = make_org(db, country="GE")
    case = make_case(db, org, country="GE")
    client.login(make_user(db, organisation=org))
    w = {"case": case, "line": make_line(db, case, planned_cents=100_000)}
    scan = pdf_of_objects([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                           b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Resources << >> >>",
                           b"<< /Length 300000 >>\nstream\n" + b"0" * 300_000 + b"\nendstream"])  # over 128 KB
    resp = upload(client, w, files=[(io.BytesIO(scan), "scan.pdf")])
    assert resp.status_code == 303, resp.get_data(as_text=True)[:500]


# Two-factor changes need the password or a current code ---------------------------------------------------

def test_turning_two_factor_off_needs_the_password_or_a_code(client, db):
    user = make_user(db)
    client.login(user)
    enrol(client)
    page = client.get("/account/two-factor").get_data(as_text=True)
    assert "Your password or a current code from the app" in page
    for proof in (None, "", "wrong password 123", "000000"):
        data = {} if proof is None else {"proof": proof}
        resp = client.submit("/account/two-factor/off", data)
        assert resp.status_code == 422, proof
        db.refresh(user)
        assert user.totp_secret_enc is not None  # still on
    assert "neither your password nor a current code" in resp.get_data(as_text=True)
    resp = client.submit("/account/two-factor/off", {"proof": PASSWORD})
    assert resp.status_code == 303
    db.refresh(user)
    assert user.totp_secret_enc is None


def test_new_recovery_codes_need_the_password_or_a_code(client, db):
    from tests.helpers import CODES_RE

    user = make_user(db)
    client.login(user)
    secret, old_codes = enrol(client)
    resp = client.submit("/account/two-factor/recovery-codes")
    assert resp.status_code == 422 and not CODES_RE.findall(resp.get_data(as_text=True))
    resp = client.submit("/account/two-factor/recovery-codes", {"proof": next_code(secret, db, user)})
    assert resp.status_code == 200
    new_codes = CODES_RE.findall(resp.get_data(as_text=True))
    assert len(new_codes) == 10 and not set(new_codes) & set(old_codes)


# Password reset: the same work for known and unknown addresses, no mail sent in the request -------------

def test_password_reset_sends_nothing_during_the_request_known_or_not(app, client, db, mails, monkeypatch):
    import smtplib

    from portal import mail as mailer

    user = make_user(db)
    connections = []

    class NoSMTP:
        def __init__(self, *args, **kwargs):
            connections.append(args)
            raise AssertionError("SMTP during the request")

    monkeypatch.setattr(smtplib, "SMTP", NoSMTP)
    monkeypatch.setattr(smtplib, "SMTP_SSL", NoSMTP)
    answers = [client.submit("/reset", {"email": email}) for email in (user.email, "nobody@example.org")]
    assert connections == []
    assert [r.status_code for r in answers] == [303, 303]
    assert answers[0].headers["Location"] == answers[1].headers["Location"]
    queued = db.exec(select(mailer.OutboxMail)).all()
    assert [m.to for m in queued] == [user.email] and queued[0].sent_at is None  # waiting for the mail job
    monkeypatch.undo()
    with app.app_context():
        assert mailer.deliver_pending(db) == (1, 0)
    assert len(mails.to(user.email)) == 1
