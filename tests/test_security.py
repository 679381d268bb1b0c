"""Security baseline: headers everywhere, cookies, CSRF, configuration refusals."""

from __future__ import annotations

import re

import pytest

from portal import create_app
from portal.config import ConfigError, load_config
from tests.factories import make_case, make_org, make_user


def _check_headers(resp):
    csp = resp.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "same-origin"


def test_headers_on_pages_fragments_and_errors(client, htmx_client, db):
    _check_headers(client.get("/login"))
    _check_headers(client.get("/nowhere"))
    user = make_user(db, role="staff")
    htmx_client.login(user)
    resp = htmx_client.get("/cases/")
    _check_headers(resp)
    assert resp.headers["Cache-Control"] == "no-store"  # signed-in pages are not cached


def test_post_without_csrf_token_is_refused(client, db):
    user = make_user(db, role="staff")
    client.login(user)
    resp = client.post("/cases/new", data={"country": "GE"})
    assert resp.status_code == 400
    assert "could not be understood" in resp.get_data(as_text=True)


def test_a_token_in_the_header_alone_is_accepted(htmx_client, db):
    """What htmx sends (tests/test_browser.py checks that it does): the header, no form field."""
    org = make_org(db)
    case = make_case(db, org)
    htmx_client.login(make_user(db, role="staff"))
    token = htmx_client.csrf_token()
    resp = htmx_client.post(f"/cases/{case.id}/lines", headers={"X-CSRFToken": token},
                            data={"category": "other", "description": "Header token", "planned_amount": "10"})
    assert resp.status_code == 200


def test_session_cookie_flags(client, db):
    resp = client.get("/login")
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_production_cookies_are_secure(tmp_path):
    cfg = load_config({"PORTAL_ENV": "production", "SECRET_KEY": "x" * 40,
                       "PORTAL_INSTANCE_DIR": str(tmp_path)})
    assert cfg["SESSION_COOKIE_SECURE"] and cfg["REMEMBER_COOKIE_SECURE"]


def test_production_refuses_to_start_without_secret_key(tmp_path):
    with pytest.raises(ConfigError):
        load_config({"PORTAL_ENV": "production", "PORTAL_INSTANCE_DIR": str(tmp_path)})


def test_development_key_is_generated_and_kept(tmp_path):
    first = load_config({"PORTAL_INSTANCE_DIR": str(tmp_path)})["SECRET_KEY"]
    assert len(first) > 40
    assert load_config({"PORTAL_INSTANCE_DIR": str(tmp_path)})["SECRET_KEY"] == first


def test_no_debugger_and_generic_500(db_url, tmp_path):
    app = create_app({"TESTING": False, "DATABASE_URL": db_url, "SECRET_KEY": "k" * 32,
                      "STORAGE_LOCAL_DIR": str(tmp_path)})

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret detail")

    resp = app.test_client().get("/boom")
    assert app.debug is False
    assert resp.status_code == 500
    body = resp.get_data(as_text=True)
    assert "secret detail" not in body and "Traceback" not in body and "Something went wrong" in body
    app.extensions["db_engine"].dispose()


def test_templates_autoescape(client, db):
    org = make_org(db, name="<script>alert(1)</script>")
    client.login(make_user(db, role="staff"))
    page = client.get("/organisations/").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert org.id


def test_production_sends_hsts_and_secure_cookies(db_url, tmp_path):
    app = create_app({"PORTAL_ENV": "production", "DATABASE_URL": db_url, "SECRET_KEY": "k" * 32,
                      "STORAGE_LOCAL_DIR": str(tmp_path), "SESSION_COOKIE_SECURE": True})
    resp = app.test_client().get("/login", base_url="https://portal.example.org")
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert "Secure" in resp.headers["Set-Cookie"]
    app.extensions["db_engine"].dispose()


def test_static_files_are_versioned_and_cached_in_production(db_url, tmp_path):
    import re

    app = create_app({"PORTAL_ENV": "production", "DATABASE_URL": db_url, "SECRET_KEY": "k" * 32,
                      "STORAGE_LOCAL_DIR": str(tmp_path), "SESSION_COOKIE_SECURE": False})
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    url = re.search(r'src="(/static/js/portal\.js\?v=[0-9a-f]{12})"', page).group(1)
    assert client.get(url).headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert client.get("/static/js/portal.js").headers["Cache-Control"] == "no-cache"
    assert client.get("/login", headers={"Accept-Encoding": "gzip"}).headers.get("Content-Encoding") in ("gzip", "br")
    app.extensions["db_engine"].dispose()


def test_kept_layout_parts_follow_the_language_and_carry_nothing_of_the_user(app, db):
    """layout.kept: the navigation is rendered once per language and kept; the user's name, the CSRF token
    and the counts are written afresh for each page."""
    from tests.factories import make_user
    from tests.fixtures import PortalClient

    app.test_client_class = PortalClient
    pages = {}
    for name, locale in (("Anna Example", "en"), ("Berta Beispiel", "de")):
        c = app.test_client()
        c.login(make_user(db, role="staff", name=name, locale=locale))
        pages[name] = c.get("/cases/").get_data(as_text=True)
    assert ">Visits due<" in pages["Anna Example"] and "Anna Example" in pages["Anna Example"]
    assert ">Visits due<" not in pages["Berta Beispiel"] and "Berta Beispiel" in pages["Berta Beispiel"]
    assert "Anna Example" not in pages["Berta Beispiel"]
    tokens = [re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1) for page in pages.values()]
    assert tokens[0] != tokens[1]


def test_url_pattern_is_what_url_for_writes_with_the_ids_left_open(app):
    from flask import url_for

    from portal.layout import url_pattern

    with app.test_request_context("/"):
        assert url_pattern("cases.show", "case_id") % 42 == url_for("cases.show", case_id=42)
        assert url_pattern("receipts.files_part", "receipt_id") % 7 == url_for("receipts.files_part", receipt_id=7)
        assert url_pattern("receipts.preview", "receipt_id", "file_id") % (3, 9) == \
            url_for("receipts.preview", receipt_id=3, file_id=9)
        with pytest.raises(ValueError):
            url_pattern("receipts.preview", "file_id", "receipt_id")  # not in the URL's order


def test_templates_escape_every_value_as_markupsafe_does(app):
    """layout.escape, which the compiled templates use for `{{ value }}`: the same Markup as markupsafe's
    escape for strings, Markup, numbers, None and objects with __html__, and every template compiled by the
    app imports it (a template of the app's escapes a script a user typed)."""
    from flask import render_template_string
    from markupsafe import Markup
    from markupsafe import escape as markupsafe_escape

    from portal.layout import escape

    class Html:
        def __html__(self):
            return "<b>bold</b>"

    for value in ("<script>alert('x') & \"y\"</script>", "", "plain", "ع<>", Markup("<i>kept</i>"), 42, 3.5,
                  None, Html(), ["<a>"]):
        ours, theirs = escape(value), markupsafe_escape(value)
        assert type(ours) is Markup and ours == theirs, value
    source = app.jinja_env.compile("{{ x }}", raw=True)
    assert "from portal.layout import escape" in source.splitlines()[1]
    with app.test_request_context("/"):
        html = render_template_string("<p>{{ x }}{{ y }}</p>", x="<script>alert(1)</script>", y=Markup("<br>"))
    assert html == "<p>&lt;script&gt;alert(1)&lt;/script&gt;<br></p>"
