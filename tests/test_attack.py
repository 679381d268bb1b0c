"""Findings of an attack test (issue 13, item 4): each test fails without its fix."""

from __future__ import annotations

import pytest

from portal.security import safe_next
from tests.factories import PASSWORD, make_user
from tests.test_two_factor import enrol, next_code

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
