"""Text recognition of receipts (portal/ocr): field extraction, the PDF text layer, Tesseract on generated
receipts in Latin, Cyrillic, Arabic and Georgian script, and the job that stores what was read."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal

import pytest
from sqlmodel import select

from portal import tasks
from portal.ocr import engine, services
from portal.ocr.engine import Line, Page, Word
from portal.ocr.fields import as_values, currencies_in, dates_in, extract, parse_amount, slope
from portal.ocr.models import ReceiptText
from portal.storage import get_storage
from tests.factories import make_receipt, make_receipt_file, make_receipt_picture
from tests.helpers import new_receipt, switch

needs_tesseract = pytest.mark.skipif(
    not engine.available(),
    reason="the tesseract binary is not installed (scripts/test.sh installs tesseract-ocr and its languages)")


def page(*texts: str) -> Page:
    """A page of these lines, each word with a box of its own (20 px per character, 40 px per line)."""
    lines = []
    for row, text in enumerate(texts):
        words, x = [], 10
        for word in text.split():
            words.append(Word(word, (x, 10 + 40 * row, 20 * len(word), 30), 95.0))
            x += 20 * len(word) + 20
        lines.append(Line(words))
    return Page(lines=lines, width=1000, height=40 * len(texts) + 20, engine="test")


# Field extraction ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("Datum: 20.03.2024", date(2024, 3, 20)),
    ("Date 05/04/2024", date(2024, 4, 5)),  # day first, as in the return countries
    ("04/25/2024", date(2024, 4, 25)),  # only a month-first reading is a date
    ("2024-03-20", date(2024, 3, 20)),
    ("20.03.24 14:32", date(2024, 3, 20)),
    ("20 March 2024", date(2024, 3, 20)),
    ("March 20, 2024", date(2024, 3, 20)),
    ("19. September 2025", date(2025, 9, 19)),
    ("3 août 2024", date(2024, 8, 3)),
    ("15 марта 2024 г.", date(2024, 3, 15)),
    ("التاريخ: ٢٢/٠٦/٢٠٢٤", date(2024, 6, 22)),  # Arabic-Indic digits
    ("12 مارس 2024", date(2024, 3, 12)),
])
def test_dates_in_the_orders_and_scripts_of_the_receipts(text, expected):
    assert [d for d, _s, _e in dates_in(text)] == [expected]


def test_no_date_in_impossible_or_far_away_numbers():
    assert dates_in("32.13.2024 and 01.01.1066 and 45 32 245 67 89") == []


@pytest.mark.parametrize(("text", "places", "expected"), [
    ("1.234,50", 2, "1234.50"),
    ("1,234.50", 2, "1234.50"),
    ("1 234,50", 2, "1234.50"),
    ("١٬٢٣٤٫٥٠", 2, "1234.50"),  # Arabic-Indic digits and separators
    ("12,500", 0, "12500"),  # CFA francs have no decimals
    ("7,837", 3, "7.837"),  # a Jordanian dinar amount with three decimals
    ("abc", 2, None),
])
def test_amounts_are_read_by_the_projects_number_parser(text, places, expected):
    value = parse_amount(text, places)
    assert (None if value is None else value) == (None if expected is None else Decimal(expected))


def test_the_total_line_wins_over_subtotal_tax_and_larger_numbers():
    fields = extract(page("Werkzeug Krause GmbH", "Tel. +49 30 123 456 78", "Rechnung Nr.: RE-2024-0815",
                          "Datum: 20.03.2024", "Bohrmaschine 2 Stk. 1.250,00 EUR", "Zwischensumme 1.250,00 EUR",
                          "MwSt. 19% 237,50 EUR", "Summe 1.487,50 EUR", "IBAN DE12 5001 0517 0648 4898 90"))
    assert as_values(fields) == {"supplier": "Werkzeug Krause GmbH", "invoice_number": "RE-2024-0815",
                                 "invoice_date": "2024-03-20", "amount": "1487.50", "currency": "EUR"}
    # each with the box of the words it came from
    assert fields["amount"]["box"] == [10 + 20 * 5 + 20, 10 + 40 * 7, 20 * 8, 30]
    assert fields["supplier"]["box"][1] == 10 and fields["supplier"]["line"] == 0


def test_arabic_total_with_arabic_indic_digits_and_a_local_currency_sign():
    fields = as_values(extract(page("مؤسسة النور للتجارة", "فاتورة رقم: INV-4471", "التاريخ: ١١/١٠/٢٠٢٤",
                                    "مثقاب 2 قطعة ٢٥٠٫٠٠٠ د.ت", "المجموع ١٬٢٥٠٫٥٠٠ د.ت")))
    assert fields == {"supplier": "مؤسسة النور للتجارة", "invoice_number": "INV-4471",
                      "invoice_date": "2024-10-11", "amount": "1250.500", "currency": "TND"}


@pytest.mark.parametrize(("lines", "amount", "currency"), [
    (["ИТОГО 12 450,00 ₽"], "12450.00", "RUB"),
    (["Итого к оплате", "3 200,00 грн"], "3200.00", "UAH"),  # the amount on the next line
    (["ჯამი 7 710.30 ₾"], "7710.30", "GEL"),
    (["TOTAL TTC 125 000 FCFA"], "125000", "XOF"),
    (["Total due £1,204.99"], "1204.99", "GBP"),
    (["Cables 2 pcs 40.00", "Drill 1 pcs 85.50", "USD"], "85.50", "USD"),  # no total line: the largest amount
])
def test_totals_and_currencies(lines, amount, currency):
    fields = as_values(extract(page("Shop", *lines)))
    assert (fields.get("amount"), fields.get("currency")) == (amount, currency)


@pytest.mark.parametrize(("line", "number"), [
    ("Invoice No.: NHS89269", "NHS89269"), ("Rechnung Nr. 2024/0577", "2024/0577"),
    ("Facture N° FA-2025-0042", "FA-2025-0042"), ("Счёт № 00451", "00451"), ("ინვოისი № WU-38690", "WU-38690"),
    ("فاتورة رقم: 2024/34920", "2024/34920"), ("Receipt # 7781", "7781"),
])
def test_invoice_numbers_after_their_labels(line, number):
    assert as_values(extract(page("Shop", line))).get("invoice_number") == number


def test_supplier_skips_phone_address_and_labels():
    fields = as_values(extract(page("Tel. +995 32 245 67 89", "Invoice No. 77", "Fabric House LLC",
                                    "12 Market Street")))
    assert fields["supplier"] == "Fabric House LLC"


# The text layer of digital PDFs (pdfium; no tesseract needed) ----------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "de", "fr", "ru", "ar", "ka"])
def test_a_text_pdf_is_read_from_its_text_layer(lang):
    data, truth = make_receipt_picture(3, lang, "invoice", kind="pdf")
    result = engine.recognise(io.BytesIO(data), "application/pdf")
    assert result.engine == "pdfium text layer" and result.seconds < 2
    fields = extract(result)
    assert as_values(fields) == truth
    left, top, width, height = fields["amount"]["box"]  # points from the page's top left
    assert 0 < left < result.width and 0 < top < result.height and width > 0 and height > 0


# Tesseract on generated receipts, one per script and layout (clean renderings: reliable) ------------------------

RECEIPTS = [  # (language, seed, layout, the fields asserted)
    ("en", 1, "centred", "all"),
    ("de", 2, "invoice", "all"),
    ("ru", 2, "centred", "all"),
    ("ka", 1, "centred", "all"),
    ("ka", 2, "invoice", "all"),
    ("ar", 2, "invoice", ("invoice_number", "currency")),
    ("ar", 3, "centred", "all"),  # Arabic-Indic digits, three decimals (JOD): read glyph by glyph
    ("ar", 9, "centred", "all"),  # Arabic-Indic digits beside a $ (a sign, no digit)
    ("ar", 6, "till", "all"),  # a Western total in a right-to-left line, which Tesseract reads in part
]


@needs_tesseract
@pytest.mark.parametrize(("lang", "seed", "layout", "which"), RECEIPTS)
def test_tesseract_reads_generated_receipts_in_each_script(lang, seed, layout, which):
    data, truth = make_receipt_picture(seed, lang, layout)
    result = engine.recognise(io.BytesIO(data), "image/png")
    fields = extract(result)
    wanted = truth if which == "all" else {k: truth[k] for k in which}
    assert {k: as_values(fields).get(k) for k in wanted} == wanted, result.text
    assert result.script == {"en": "Latin", "de": "Latin", "ru": "Cyrillic", "ka": "Georgian",
                             "ar": "Arabic"}[lang]
    for name in wanted:  # where on the picture each field was
        left, top, width, height = fields[name]["box"]
        assert 0 <= left < result.width and 0 <= top < result.height and width > 0 and height > 0


# Numbers and signs read again by their shapes (clean renderings, no tesseract needed) ---------------------------

FONTS = "/usr/share/fonts/truetype/"


def drawn(text: str, font: str, size: int = 36) -> tuple:
    """A picture of text in a font (grey paper, a little blur, as a photo's part), and each word's box."""
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    face = ImageFont.truetype(FONTS + font, size, layout_engine=ImageFont.Layout.RAQM)
    img = Image.new("L", (size * len(text) + 80, size * 3), 235)
    draw = ImageDraw.Draw(img)
    boxes, x = [], 30
    for word in text.split(" "):
        left, top, right, bottom = draw.textbbox((x, size), word, font=face)
        draw.text((x, size), word, font=face, fill=20)
        boxes.append((word, (left, top, right - left, bottom - top)))
        x = right + size // 2
    return img.filter(ImageFilter.GaussianBlur(0.6)), boxes


@pytest.mark.parametrize("font", ["dejavu/DejaVuSans.ttf", "noto/NotoNaskhArabic-Regular.ttf",
                                  "noto/NotoSansArabic-Bold.ttf"])
@pytest.mark.parametrize("text", ["٢٬٤٠٠٫٤٨", "١٣.٠٦.٢٠٢٤", "٩٨٧٦٥٤٣٢١٠"])
def test_arabic_indic_numbers_are_read_glyph_by_glyph(font, text):
    img, _boxes = drawn(text, font)
    [(number, box, _distance)] = engine.read_digits(img)
    assert number == text
    assert box[0] > 20 and box[2] > 3 * box[3]  # where the number is on the picture


def test_latin_letters_and_a_dollar_beside_arabic_indic_digits_are_no_digits():
    img, _boxes = drawn("MAD ٢٧٦٫٨٨ $", "dejavu/DejaVuSans.ttf")
    assert [text for text, _box, _d in engine.read_digits(img)] == ["٢٧٦٫٨٨", "$"]


@pytest.mark.parametrize(("read", "tidy"), [
    ("٠٣/٠٩-٢٠٢٤", "٠٣/٠٩/٢٠٢٤"),  # a date's two separators alike
    ("٢٠٫٠٦.٢٠٢٤", "٢٠.٠٦.٢٠٢٤"),
    ("٢١٬٣١٤٬٥٠", "٢١٬٣١٤٫٥٠"),  # two digits after the last sign: the decimals
    ("١٣٫٥١٩٫٥٦", "١٣٬٥١٩٫٥٦"),  # a sign before a group of three and more: thousands
    ("٢٬٦٠٧٫٠١١", "٢٬٦٠٧٫٠١١"),  # three decimals stay decimals
    ("١٬٢٢٥٬٧٢٥", "١٬٢٢٥٬٧٢٥"),
    ("١٢٣", "١٢٣"),
])
def test_the_separators_of_a_number_read_glyph_by_glyph_are_told_by_where_they_stand(read, tidy):
    assert engine.tidy_number(read) == tidy


@pytest.mark.parametrize(("text", "misread", "sign", "currency"), [
    ("3.796,28 ₺", "&", "₺", "TRY"), ("1 860,80 ₴", "е", "₴", "UAH"), ("12 450,00 ₽", "P", "₽", "RUB")])
def test_a_currency_sign_tesseract_misread_is_read_again_by_its_shape(text, misread, sign, currency):
    img, boxes = drawn(text, "dejavu/DejaVuSans.ttf")
    words = [Word(word if word != sign else misread, box, 80.0) for word, box in boxes]
    line = Line([Word("Summe", (0, words[0].box[1], 20, words[0].box[3]), 90.0), *words])
    line.words[0].box = (-400, line.words[0].box[1], 300, line.words[0].box[3])  # far left: no neighbour
    assert engine.reread_signs(img, [line], 1.0) == 1
    assert line.words[-1].text == sign
    fields = as_values(extract(Page(lines=[line], width=img.width, height=img.height, engine="test")))
    assert fields["currency"] == currency


def test_a_number_beside_an_amount_stays_a_number():
    img, boxes = drawn("1 860,80 EUR", "dejavu/DejaVuSans.ttf")
    line = Line([Word(word, box, 90.0) for word, box in boxes])
    assert engine.reread_signs(img, [line], 1.0) == 0
    assert [w.text for w in line.words] == ["1", "860,80", "EUR"]


# The job -----------------------------------------------------------------------------------------------------------


def rows_of(db, receipt_id):
    db.expire_all()
    return db.exec(select(ReceiptText).where(ReceiptText.receipt_id == receipt_id)).all()


def test_an_uploaded_receipt_is_read_by_the_worker_once_however_often_the_job_runs(app, client, db, w, run_jobs):
    data, truth = make_receipt_picture(4, "fr", "invoice", kind="pdf")
    switch(client, w["partner"])
    receipt_id = new_receipt(client, w, files=[(io.BytesIO(data), "facture.pdf")])
    assert services.text_of(db, receipt_id) is None  # not in the request: on the queue
    run_jobs()
    [row] = rows_of(db, receipt_id)
    assert row.status == "read" and row.engine == "pdfium text layer" and row.lines
    assert as_values(services.fields_of(db, receipt_id)) == truth
    assert truth["supplier"] in services.text_of(db, receipt_id)
    assert services.page_of(db, receipt_id) == (row.width, row.height)
    with app.app_context():
        assert tasks.enqueue("read_receipt", receipt_id)  # a duplicate job, as after a worker restart
        assert tasks.enqueue("ocr_catchup")
    run_jobs()
    with app.app_context():
        assert services.read_receipt(db, get_storage(), receipt_id) == "read before"
        assert services.read_receipt(db, get_storage(), receipt_id, force=True).startswith("read:")
    [again] = rows_of(db, receipt_id)
    assert again.id == row.id and again.fields == row.fields


@needs_tesseract
def test_a_photo_is_read_and_without_tesseract_simply_not(app, db, w, monkeypatch):
    data, truth = make_receipt_picture(2, "ru", "centred")
    receipt = make_receipt(db, w["case"])
    with app.app_context():
        storage = get_storage()
        key = f"receipts/{w['case'].id}/ocr-photo"
        stored = storage.put(key, io.BytesIO(data), content_type="image/png")
        make_receipt_file(db, receipt, key=key, size=stored.size, content_type="image/png",
                          original_filename="photo.png")
        monkeypatch.setattr(engine, "available", lambda: False)  # as on a machine without tesseract-ocr
        assert services.read_receipt(db, storage, receipt.id) == "no reader"
        assert services.missing(db) == [] and rows_of(db, receipt.id) == []
        monkeypatch.undo()
        assert services.missing(db) == [receipt.id]
        assert services.catchup_job() == "1 read"
    assert as_values(services.fields_of(db, receipt.id)) == truth
    assert services.result_of(db, receipt.id).script == "Cyrillic"


def test_an_unreadable_file_is_recorded_once_and_the_catchup_leaves_it(app, db, w):
    receipt = make_receipt(db, w["case"])
    with app.app_context():
        storage = get_storage()
        key = f"receipts/{w['case'].id}/broken"
        storage.put(key, io.BytesIO(b"%PDF-1.7 not really"), content_type="application/pdf")
        make_receipt_file(db, receipt, key=key, size=19)
        assert services.read_receipt(db, storage, receipt.id) == "unreadable"
        assert services.missing(db) == []
        assert services.read_receipt(db, storage, receipt.id) == "read before"
    assert services.text_of(db, receipt.id) is None and services.fields_of(db, receipt.id) == {}


def test_a_total_in_another_column_of_the_same_row_and_a_legal_form_read_as_zeros():
    # Tesseract read the right-to-left table's columns as blocks of their own: label and amount apart
    lines = [Line([Word("000", (300, 10, 60, 30), 90), Word("Швейный", (370, 10, 150, 30), 90),
                   Word("Мир", (530, 10, 60, 30), 90)]),
             Line([Word("Счёт", (600, 60, 80, 30), 90), Word("№", (690, 60, 20, 30), 90)]),
             Line([Word("ИТОГО", (600, 200, 120, 30), 90)]),
             Line([Word("A-778", (40, 62, 90, 30), 90)]),
             Line([Word("1", (40, 150, 20, 30), 90)]),
             Line([Word("4 500,00", (40, 203, 140, 30), 90), Word("₽", (190, 203, 20, 30), 90)])]
    fields = extract(Page(lines=lines, width=800, height=300, engine="test"))
    assert as_values(fields) == {"supplier": "ООО Швейный Мир", "invoice_number": "A-778", "amount": "4500.00",
                                 "currency": "RUB"}
    assert fields["amount"]["box"] == [40, 203, 140, 30]


def test_a_georgian_page_without_a_readable_lari_sign_is_in_lari():
    georgian = page("შპს ხელსაწყოები", "ჩეკი Ne: WU-38690", "სულ 7 710.30 «")
    georgian.script = "Georgian"
    assert as_values(extract(georgian)) == {"supplier": "შპს ხელსაწყოები", "invoice_number": "WU-38690",
                                            "amount": "7710.30", "currency": "GEL"}
    assert "currency" not in as_values(extract(page("Shop", "Total 7 710.30")))  # no guess in other scripts


def test_a_french_total_read_without_its_accent_is_still_the_total():
    fields = as_values(extract(page("Atelier Couture Diallo", "Facture n° 2025/47896", "Sous-total 1 828,29 €",
                                    "TVA 18% 329,09 €", "Net a payer 2 157,38 €")))
    assert (fields["amount"], fields["invoice_number"]) == ("2157.38", "2025/47896")


def test_a_misread_number_sign_after_an_invoice_label_sends_the_search_to_the_same_row():
    # "ანგარიში №" read as "ანგარიში Ne", its number in the other column, a line of its own
    fields = as_values(extract(page("შპს ხელსაწყოები", "ანგარიში Ne", "ინვოისი M")))
    assert "invoice_number" not in fields
    lines = [Line([Word("ანგარიში", (100, 330, 140, 38), 93), Word("Ne", (260, 332, 30, 25), 96)]),
             Line([Word("2024/60997", (880, 306, 190, 32), 92)])]
    assert as_values(extract(Page(lines=lines, width=1200, height=800, engine="test")))["invoice_number"] == (
        "2024/60997")


def test_rows_are_followed_at_the_slant_of_the_photo():
    # every row drops 5 px per 100 px to the right: the total's label is level with the lower amount
    def row(y, *words):
        return Line([Word(text, (x, y + x // 20, 20 * len(text), 30), 95.0) for x, text in words])

    lines = [row(100, (100, "Tel."), (200, "+995"), (300, "32"), (400, "245")),
             row(200, (100, "Drill"), (200, "1"), (300, "pcs")),
             row(300, (100, "Subtotal")), row(325, (100, "TOTAL")),
             Line([Word("153.85", (900, 300 + 45, 120, 30), 95.0)]),
             Line([Word("1008.56", (900, 325 + 45, 140, 30), 95.0)])]
    assert slope(lines) == pytest.approx(0.05, abs=0.005)
    assert as_values(extract(Page(lines=lines, width=1200, height=800, engine="test")))["amount"] == "1008.56"


@pytest.mark.parametrize(("text", "code"), [
    ("دد.ع", "IQD"), ("دا.ج", "DZD"), ("ل س", "SYP"), ("المجموع 1 د.ع", "IQD")])
def test_an_arabic_currency_abbreviation_misread_a_little_is_still_the_currency(text, code):
    assert [c for c, _s, _e in currencies_in(text)] == [code]


def test_arabic_words_like_an_abbreviation_are_no_currency():
    assert currencies_in("دعم مدع ددع") == []
