"""Languages: selection, right-to-left Arabic, locale formats, complete catalogs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from tests.factories import make_case, make_line, make_org, make_user

ROOT = Path(__file__).resolve().parent.parent
LANGS = ["de", "fr", "ar", "ru"]


def test_browser_language_decides_before_login(client):
    page = client.get("/login", headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}).get_data(as_text=True)
    assert '<html lang="de" dir="ltr">' in page
    assert "Anmelden" in page


def test_switch_to_arabic_gives_rtl(client):
    resp = client.submit("/language", {"lang": "ar", "next": "/login"})
    assert resp.status_code == 303 and resp.headers["Location"] == "/login"
    page = client.get("/login").get_data(as_text=True)
    assert '<html lang="ar" dir="rtl">' in page


def test_language_choice_is_kept_on_the_account(client, db):
    user = make_user(db, locale="en")
    client.login(user)
    client.submit("/language", {"lang": "ru", "next": "/cases/"})
    db.refresh(user)
    assert user.locale == "ru"
    assert 'lang="ru"' in client.get("/cases/").get_data(as_text=True)


def test_switcher_refuses_foreign_redirects(client):
    resp = client.submit("/language", {"lang": "fr", "next": "https://evil.example/"})
    assert resp.headers["Location"] == "/"


@pytest.mark.parametrize("locale,amount", [("de", "1.250,50\xa0€"), ("fr", "1\u202f250,50\xa0€"),
                                           ("en", "€1,250.50")])
def test_money_in_the_users_locale(client, db, locale, amount):
    org = make_org(db)
    case = make_case(db, org)
    make_line(db, case, planned_cents=125_050)
    client.login(make_user(db, organisation=org, locale=locale))
    assert amount in client.get(f"/cases/{case.id}").get_data(as_text=True)


def test_error_page_in_users_language(client, db):
    client.login(make_user(db, locale="de"))
    resp = client.get("/cases/999999")
    assert resp.status_code == 404
    assert "Seite nicht gefunden" in resp.get_data(as_text=True)


@pytest.mark.parametrize("lang", LANGS)
def test_catalog_is_complete(lang):
    po = ROOT / "translations" / lang / "LC_MESSAGES" / "messages.po"
    with po.open("rb") as fh:
        catalog = read_po(fh)
    with (ROOT / "translations" / "messages.pot").open("rb") as fh:
        pot_ids = {m.id for m in read_po(fh) if m.id}
    ids = {m.id for m in catalog if m.id}
    assert pot_ids <= ids, f"{lang}: missing {sorted(map(str, pot_ids - ids))[:10]}"
    bad = [m.id for m in catalog if m.id and (m.fuzzy or not all(m.string if isinstance(m.string, tuple)
                                                                    else (m.string,)))]
    assert not bad, f"{lang}: untranslated or fuzzy: {bad[:10]}"


def test_catalog_is_up_to_date_with_the_code(tmp_path):
    """Every string in the code is in messages.pot (run `make translations` after adding strings)."""
    out = tmp_path / "now.pot"
    subprocess.run([str(Path(sys.executable).parent / "pybabel"), "extract", "-F",
                    str(ROOT / "translations/babel.cfg"), "-k", "_l", "-k", "lazy_gettext", "-o", str(out),
                    # pybabel skips folders starting with "_" unless told otherwise: templates/_macros counts
                    "--ignore-dirs", ".*",
                    "--no-location", "portal", "templates"], check=True, cwd=ROOT, capture_output=True)
    with out.open("rb") as fh:
        now = {m.id for m in read_po(fh) if m.id}
    with (ROOT / "translations/messages.pot").open("rb") as fh:
        known = {m.id for m in read_po(fh) if m.id}
    assert now <= known, f"strings missing from the catalogs: {sorted(map(str, now - known))[:10]}"
    assert "Page %(page)s of %(pages)s" in now  # a string of templates/_macros/ui.html: the macros are read


def test_enum_titles_are_built_once_per_locale_and_follow_the_language(app):
    from flask_babel import force_locale

    from portal.cases.models import CaseStatus, MeasureType

    with app.test_request_context():
        with force_locale("de"):
            german = CaseStatus.titles()
            assert CaseStatus.titles() is german  # the same dictionary: not translated again
            assert CaseStatus.title("active") == "Aktiv" and MeasureType.title("business") == "Existenzgründung"
        with force_locale("fr"):
            assert CaseStatus.titles() is not german
            assert CaseStatus.title("active") == "Actif" and MeasureType.title("business") == "Création d'entreprise"
        with force_locale("de"):
            assert CaseStatus.titles() is german and CaseStatus.title("active") == "Aktiv"
        assert CaseStatus.title("unknown") == "unknown"


def test_the_case_list_shows_enum_titles_in_the_users_language(client, db):
    org = make_org(db)
    make_case(db, org, status="active", measure_type="business")
    client.login(make_user(db, organisation=org, locale="ru"))
    page = client.get("/cases/").get_data(as_text=True)
    assert "Активный" in page and "Открытие бизнеса" in page


def test_money_and_percentages_are_formatted_once_per_locale(app):
    from flask_babel import force_locale

    from portal.i18n import _number_formats, money, percent

    with app.test_request_context():
        with force_locale("de"):
            assert money(319_000, "GEL") == "3.190,00\xa0GEL" and percent(0.024) == "2,4\xa0%"
            formats = _number_formats("de")
        with force_locale("en"):
            assert money(319_000) == "€3,190.00" and percent(0.024) == "2.4%"
        assert _number_formats("de") is formats


@pytest.mark.parametrize("locale", ["en", "de", "fr", "ar", "ru"])
def test_a_currency_code_never_touches_the_digits(app, locale):
    """CLDR's currency spacing: "GEL 3,190.00", never "GEL3,190.00"; € and $ stay attached."""
    import re

    from flask_babel import force_locale

    from portal.i18n import money

    with app.test_request_context(), force_locale(locale):
        texts = {c: money(319_000, c) for c in ("GEL", "XOF", "USD", "EUR")} | {"neg": money(-319_000, "GEL")}
    for text in texts.values():
        assert not re.search(r"[A-Za-z]\d|\d[A-Za-z]", text), text
        assert "GEL" not in text or "\xa0GEL" in text or "GEL\xa0" in text
    if locale == "en":
        assert texts["GEL"] == "GEL\xa03,190.00" and texts["EUR"] == "€3,190.00" and texts["neg"] == "-GEL\xa03,190.00"


def test_receipt_amount_in_a_letter_currency_has_its_space(app):
    """Receipt amounts (in their own currency's minor units) are formatted the same way."""
    from flask_babel import force_locale

    from portal.receipts import _minor_money

    with app.test_request_context(), force_locale("en"):
        assert _minor_money(319_000, "GEL") == "GEL\xa03,190.00"
        assert _minor_money(983_936, "XOF") == "F\u202fCFA\xa0983,936"


def test_russian_date_at_the_end_of_a_sentence_has_one_full_stop(client, db):
    from datetime import date

    from tests.factories import make_workshop

    workshop = make_workshop(db, registration_deadline=date(2027, 1, 11), starts_on=date(2027, 2, 1),
                             ends_on=date(2027, 2, 3))
    page = client.get(f"/workshops/join/{workshop.public_key}",
                      headers={"Accept-Language": "ru"}).get_data(as_text=True)
    import re

    assert re.search(r"<p>Регистрация закрывается 11\s+янв\.\s+2027\s+г\.</p>", page)
    assert "г.." not in page
