"""Numbers as people type them: the parser, the form fields, and a receipt typed with Arabic-Indic digits."""

from __future__ import annotations

import io
import re
from decimal import Decimal

import pytest
from flask_babel import force_locale
from flask_wtf import FlaskForm
from sqlmodel import select
from werkzeug.datastructures import MultiDict
from wtforms.validators import InputRequired, NumberRange, Optional

from portal.forms import AmountField, FloatNumberField, IntegerCountField
from portal.numbers import NumberProblem, parse_number
from portal.receipts.models import Receipt
from tests.helpers import fields, unique_pdf

# Parser -----------------------------------------------------------------------------------------

ACCEPTED = [
    ("١٢٠٫٥٠", "120.50"),            # Arabic-Indic digits, Arabic decimal separator
    ("۱۲۰٫۵", "120.5"),              # Eastern Arabic-Indic (Persian) digits
    ("١٬٢٥٠٫٥٠", "1250.50"),          # Arabic thousands separator
    ("۱۲۳۴", "1234"),
    ("1 250,50", "1250.50"),
    ("1\u00a0250,50", "1250.50"),      # no-break space
    ("1\u202f250,50", "1250.50"),      # narrow no-break space (French)
    ("1.250,50", "1250.50"),
    ("1,250.50", "1250.50"),
    ("120.5", "120.5"),
    ("120,5", "120.5"),
    ("120.50", "120.50"),
    ("1.250.000", "1250000"),
    ("1,250,000.5", "1250000.5"),
    ("0,250", "0.250"),              # a leading zero is never a thousands group
    ("12500,000", "12500.000"),      # four digits before: not a thousands group
    (" 42 ", "42"),
    ("+7", "7"),
    ("-3,5", "-3.5"),
    (".5", "0.5"),
]


@pytest.mark.parametrize(("typed", "value"), ACCEPTED)
def test_numbers_people_type_are_read_right(typed, value):
    assert parse_number(typed) == Decimal(value)
    assert str(parse_number(typed)) == value


@pytest.mark.parametrize("typed", ["12O.00", "12,5O", "abc", "NaN", "nan", "Infinity", "-Infinity", "inf", "sNaN",
                                   "1e5", "1E-3", "0x10", "1,2,3", "1.2.3,4,5", "12 50", "1 2345", "1.25.000",
                                   "1٫2٫3", "--1", "1-2", "١٢O", "9" * 41, "1" * 30, ".", ",", "½"])
def test_wrong_numbers_are_refused(typed):
    with pytest.raises(NumberProblem) as problem:
        parse_number(typed)
    assert problem.value.kind == "wrong"


def test_empty_is_no_number():
    assert parse_number("") is None
    assert parse_number("  \u00a0") is None


@pytest.mark.parametrize("typed", ["1,250", "1.250", "12,500", "999.000", "١,٢٥٠"])
def test_a_lone_separator_before_three_digits_is_ambiguous_without_a_language(typed):
    with pytest.raises(NumberProblem) as problem:
        parse_number(typed)
    assert problem.value.kind == "ambiguous"


def test_the_users_language_decides_a_lone_separator():
    # German: "," decimals, "." thousands; English and Arabic the other way round.
    assert parse_number("1,250", ",", ".") == Decimal("1.250")
    assert parse_number("1.250", ",", ".") == Decimal("1250")
    assert parse_number("1,250", ".", ",") == Decimal("1250")
    assert parse_number("1.250", ".", ",") == Decimal("1.250")
    # French groups with a narrow no-break space: "," decides, "." stays ambiguous.
    assert parse_number("1,250", ",", "\u202f") == Decimal("1.250")
    with pytest.raises(NumberProblem):
        parse_number("1.250", ",", "\u202f")
    # Whole-number fields read it as thousands, coordinates as decimals, whatever the language.
    assert parse_number("1.250", ",", "\u202f", lone="group") == Decimal("1250")
    assert parse_number("41.715", ",", ".", lone="decimal") == Decimal("41.715")


# Fields -----------------------------------------------------------------------------------------

class NumbersForm(FlaskForm):
    class Meta:
        csrf = False

    amount = AmountField("Amount", places=2, validators=[InputRequired("Enter the amount"),
                                                         NumberRange(min=0.01, message="Above 0")])
    count = IntegerCountField("Count", validators=[Optional(), NumberRange(0, 999_999)])
    latitude = FloatNumberField("Latitude", validators=[Optional(), NumberRange(-90, 90)])


def _form(app, locale="en", **data):
    with app.test_request_context(), force_locale(locale):
        form = NumbersForm(formdata=MultiDict(data))
        ok = form.validate()
        return ok, form.data, {k: [str(e) for e in v] for k, v in form.errors.items()}


def test_fields_keep_the_types_the_views_expect(app):
    ok, data, errors = _form(app, amount="١٢٠٫٥٠", count="١٬٢٠٠", latitude="41,7152")
    assert ok, errors
    assert data["amount"] == Decimal("120.50") and isinstance(data["amount"], Decimal)
    assert data["count"] == 1200 and isinstance(data["count"], int)
    assert data["latitude"] == pytest.approx(41.7152) and isinstance(data["latitude"], float)


def test_a_wrong_amount_gives_one_clear_message(app):
    ok, _data, errors = _form(app, amount="12O.00")
    assert not ok
    assert errors["amount"] == ["Enter the amount as a number, for example 120.50."]  # not also "Above 0"
    ok, _data, errors = _form(app, amount="NaN", count="1.5")
    assert errors["amount"] == ["Enter the amount as a number, for example 120.50."]
    assert errors["count"] == ["Enter a whole number, for example 12."]


def test_an_ambiguous_amount_names_both_readings_in_the_users_language(app):
    ok, _data, errors = _form(app, "fr", amount="1.250")
    assert not ok
    (message,) = errors["amount"]
    assert "1.250" in message and "1250" in message and "1,25" in message
    assert "séparateur" in message  # translated
    ok, data, _errors = _form(app, "de", amount="1.250")
    assert ok and data["amount"] == Decimal("1250")
    ok, data, _errors = _form(app, "en", amount="1,250")
    assert ok and data["amount"] == Decimal("1250")


def test_wrong_numbers_never_break_the_page(app):
    for typed in ("sNaN", "Infinity", "9" * 5000, "1" * 40, "\x00", "١" * 39):
        ok, _data, errors = _form(app, amount=typed, count=typed, latitude=typed)
        assert not ok
        assert len(errors["amount"]) == 1


def test_the_field_carries_its_messages_for_the_browser(app):
    with app.test_request_context(), force_locale("de"):
        html = str(NumbersForm(formdata=None).amount())
    assert 'data-number="decimal"' in html and 'inputmode="decimal"' in html
    assert 'data-decimal=","' in html and 'data-group="."' in html
    assert "{value}" in html and "{whole}" in html  # the ambiguous message, filled in by checks.js


# A receipt typed on an Arabic phone keyboard ----------------------------------------------------

def test_receipt_amount_typed_with_arabic_indic_digits_is_saved_right(client, db, w):  # noqa: F811
    client.login(w["partner"])
    data = fields(w, amount="١٢٠٫٥٠", currency="EUR")
    data["files"] = [(io.BytesIO(unique_pdf()), "invoice.pdf")]
    resp = client.submit(f"/cases/{w['case'].id}/receipts/new", data, content_type="multipart/form-data")
    assert resp.status_code == 303, resp.get_data(as_text=True)[:2000]
    receipt = db.exec(select(Receipt).where(Receipt.invoice_number == data["invoice_number"])).one()
    assert receipt.amount_minor == 12050 and receipt.currency == "EUR"


def test_receipt_form_lists_every_problem_at_once_files_included(client, db, w):  # noqa: F811
    client.login(w["partner"])
    data = {"nonce": "n" * 20, "amount": "12O.00", "budget_line_id": "0"}
    resp = client.submit(f"/cases/{w['case'].id}/receipts/new", data, content_type="multipart/form-data")
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    summary = html.split('class="error-summary"', 1)[1].split("</div>", 1)[0]
    for message in ("Select at least one file of the receipt", "Enter the amount as a number, for example 120.50.",
                    "Enter the name of the supplier", "Choose the budget line this purchase belongs to."):
        assert message in summary, message
    assert summary.count("<li>") >= 7
    assert db.exec(select(Receipt)).first() is None


def test_an_invalid_file_is_listed_with_the_field_errors(client, db, w):  # noqa: F811
    client.login(w["partner"])
    data = fields(w, supplier="")
    data["files"] = [(io.BytesIO(b"MZ\x90\x00 not a receipt"), "invoice.pdf")]
    resp = client.submit(f"/cases/{w['case'].id}/receipts/new", data, content_type="multipart/form-data")
    assert resp.status_code == 422
    summary = resp.get_data(as_text=True).split('class="error-summary"', 1)[1].split("</div>", 1)[0]
    assert "Enter the name of the supplier" in summary
    assert re.search(r'<a href="#files">[^<]+</a>', summary)


def test_uploads_ahead_of_the_form_count_as_the_receipt_file(app):
    from portal.receipts.forms import NewReceiptForm

    with app.test_request_context(method="POST", data={"uploads": ["tok123"]}):
        form = NewReceiptForm(meta={"csrf": False})
        form.budget_line_id.choices = [(0, "—")]
        form.validate()
        assert "files" not in form.errors
    with app.test_request_context(method="POST", data={"uploads": [""]}):
        form = NewReceiptForm(meta={"csrf": False})
        form.budget_line_id.choices = [(0, "—")]
        form.validate()
        assert form.errors["files"] == ["Select at least one file of the receipt"]


# The visit form lists every problem at once -----------------------------------------------------

def test_visit_form_lists_field_and_cross_field_problems_at_once(client, db):
    from portal.visits.models import Visit
    from tests.helpers import open_form, partner_with_case, visit_form

    _org, _staff, case, partner = partner_with_case(db)
    client.login(partner)
    key, _page = open_form(client, case)
    data = visit_form(key, mode="", people_employed="2O", score_social="", flag_health="y", flag_details="",
                      next_visit_date="2025-02-01")
    resp = client.submit(f"/cases/{case.id}/visits/new", data)
    assert resp.status_code == 422
    summary = resp.get_data(as_text=True).split('class="error-summary"', 1)[1].split("</div>", 1)[0]
    for field_id, message in (("mode", "Choose how the visit took place."),
                              ("people_employed", "Enter a whole number, for example 12."),
                              ("score_social", "Score the social dimension."),
                              ("flag_details", "Describe the concern you ticked, so staff can follow up."),
                              ("next_visit_date", "The next visit must be after this visit.")):
        assert f'<a href="#{field_id}">{message}</a>' in summary, message
    assert summary.count("<li>") == 5
    assert db.exec(select(Visit)).first() is None
    # The people employed typed with Arabic-Indic digits and the rest fixed: saved.
    resp = client.submit(f"/cases/{case.id}/visits/new", visit_form(key, people_employed="١٢"))
    assert resp.status_code == 303
    assert db.exec(select(Visit)).one().people_employed == 12


# The browser's copy of the rules ----------------------------------------------------------------

_NODE_HARNESS = """
global.document = { addEventListener() {} }; global.window = {}; global.HTMLFormElement = function () {};
require(process.argv[1]);
const parse = window.portalChecks.parseNumber;
const cases = JSON.parse(require("fs").readFileSync(0, "utf8"));
console.log(JSON.stringify(cases.map(([t, d, g, l]) => {
  try { return parse(t, d, g, l); } catch (e) { if (e.kind) { return "!" + e.kind; } throw e; }
})));
"""


def test_the_browser_reads_numbers_exactly_like_the_server():
    """static/js/checks.js's parseNumber against portal.numbers.parse_number on thousands of inputs."""
    import json
    import random
    import shutil
    import subprocess

    from portal.config import ROOT

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    rng = random.Random(12)
    alphabet = "0123٠١٢۳۴ .,٫٬-+a\u00a0\u202f"
    inputs = [typed for typed, _value in ACCEPTED] + ["12O.00", "NaN", "1,250", "1.250", "9" * 41, "٫5", ""]
    inputs += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 10))) for _ in range(3000)]
    hints = [("", "", ""), (",", ".", ""), (".", ",", ""), (",", "\u202f", ""), (",", "\u00a0", "group"),
             (".", ",", "decimal")]
    cases = [(typed, d, g, lone) for typed in inputs for d, g, lone in hints]
    result = subprocess.run([node, "-e", _NODE_HARNESS, str(ROOT / "static" / "js" / "checks.js")],  # noqa: S603
                            input=json.dumps(cases), capture_output=True, text=True, check=True, timeout=60)
    browser = json.loads(result.stdout)

    def server(typed, d, g, lone):
        try:
            value = parse_number(typed, d or None, g or None, lone=lone or None)
        except NumberProblem as problem:
            return "!" + problem.kind
        return value

    def same(mine, theirs):
        if isinstance(mine, Decimal):
            return theirs is not None and not theirs.startswith("!") and Decimal(theirs) == mine
        return mine == theirs

    differ = [(case, server(*case), js) for case, js in zip(cases, browser, strict=True)
              if not same(server(*case), js)]
    assert not differ, differ[:10]
