"""Documents in every script: badges and visa letters print Arabic (joined, right to left), Georgian and
Cyrillic names, read back from the PDF with pdfium; scripts DejaVu Sans lacks come from Debian's Noto
fonts when they are installed (CI installs them) and nothing breaks when they are not."""

from __future__ import annotations

import ctypes
import io
import os
import unicodedata
from datetime import date

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
from fontTools.ttLib import TTFont
from pypdf import PdfReader

from portal.workshop import pdf
from portal.workshop.models import Registration, Workshop
from tests.factories import make_registration, make_workshop
from tests.helpers import staff_client

ARABIC, GEORGIAN, CYRILLIC = "محمد عبد الله", "ნინო ბერიძე", "Ольга Иванова"
# The letters of the Arabic name that join a neighbour: printed joined, none of them is the letter's
# own (isolated) glyph.
ARABIC_JOINING = "محعبل"
URDU, TIGRINYA = "عائشہ خان", "ሰላም ተስፋይ"  # ہ is not in DejaVu Sans; Ethiopic letters are in no DejaVu font


def nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def as_drawn(name: str) -> str:
    """How the name reads on the page from left to right: a right-to-left name is drawn reversed."""
    rtl = any(unicodedata.bidirectional(c) in ("R", "AL") for c in name)
    return nfkc(name[::-1] if rtl else name)


def extracted_text(data: bytes) -> str:
    """The text pdfium extracts (in logical order where pdfium can tell), NFKC-normalised."""
    doc = pdfium.PdfDocument(data)
    try:
        return nfkc("\n".join(page.get_textpage().get_text_range() for page in doc))
    finally:
        doc.close()


def drawn_lines(data: bytes) -> list[str]:
    """Every printed line as it stands on the page: its characters sorted by their origin, left to right
    (two badges side by side are two lines: a gap of more than 30 pt splits a line)."""
    doc = pdfium.PdfDocument(data)
    lines: dict[tuple[int, float], list[tuple[float, int, str]]] = {}
    try:
        for number, page in enumerate(doc):
            textpage = page.get_textpage()
            x, y = ctypes.c_double(), ctypes.c_double()
            for i in range(textpage.count_chars()):
                char = chr(pdfium_c.FPDFText_GetUnicode(textpage, i))
                if char in "\r\n":  # pdfium's own line ends
                    continue
                pdfium_c.FPDFText_GetCharOrigin(textpage, i, x, y)
                lines.setdefault((number, round(y.value, 1)), []).append((round(x.value, 2), i, char))
    finally:
        doc.close()
    parts = []
    for chars in lines.values():
        part, last_x = "", None
        for x, _, char in sorted(chars):
            if last_x is not None and x - last_x > 30:
                parts.append(part)
                part = ""
            part, last_x = part + char, x
        parts.append(part)
    return [nfkc(part).strip() for part in parts]


def embedded_fonts(data: bytes) -> dict[str, set[int]]:
    """Each embedded font (its base name) and the characters its subset's cmap still maps to a glyph."""
    fonts = {}
    for page in PdfReader(io.BytesIO(data)).pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            if "/DescendantFonts" not in font:
                continue
            descriptor = font["/DescendantFonts"][0].get_object()["/FontDescriptor"]
            subset = TTFont(io.BytesIO(descriptor["/FontFile2"].get_data()))
            fonts[str(font["/BaseFont"]).split("+")[-1]] = set(subset.getBestCmap())
    return fonts


def assert_joined(data: bytes, letters: str) -> None:
    """No letter that should join is drawn with its isolated glyph: the fonts embedded hold only the
    contextual forms the shaping chose, so the letters' own code points map to nothing in them."""
    for name, cmap in embedded_fonts(data).items():
        isolated = sorted(c for c in letters if ord(c) in cmap)
        assert not isolated, f"{name} draws {isolated} unjoined"


def test_badges_print_arabic_joined_right_to_left_georgian_and_cyrillic(client, db):
    w = make_workshop(db, capacity=10)
    for name in (ARABIC, GEORGIAN, CYRILLIC):
        make_registration(db, w, name=name)
    staff_client(client, db)
    resp = client.get(f"/workshops/{w.id}/badges.pdf")
    assert resp.status_code == 200 and resp.mimetype == "application/pdf"
    text, lines = extracted_text(resp.data), drawn_lines(resp.data)
    for name in (ARABIC, GEORGIAN, CYRILLIC):
        assert nfkc(name) in text.splitlines()  # the same string comes back, in reading order
        assert as_drawn(name) in lines  # and stands on the page in the right visual order
    assert_joined(resp.data, ARABIC_JOINING)


@pytest.mark.parametrize("lang", ["en", "de"])
def test_visa_letters_print_arabic_georgian_and_cyrillic_names(client, db, lang):
    w = make_workshop(db, capacity=10)
    staff_client(client, db)
    label = {"en": "Name as in the passport: ", "de": "Name laut Reisepass: "}[lang]
    for name in (ARABIC, GEORGIAN, CYRILLIC):
        reg = make_registration(db, w, visa_letter=True, passport_name=name, nationality="GE",
                                passport_number="13AB45678", birth_date=date(1988, 7, 1))
        resp = client.get(f"/workshops/{w.id}/registrations/{reg.id}/visa-letter.pdf?lang={lang}")
        assert resp.status_code == 200
        # The name follows its label on the same line: the label left to right, an Arabic name right to left.
        assert nfkc(label).strip() + " " + as_drawn(name) in drawn_lines(resp.data)
        if name == ARABIC:
            assert_joined(resp.data, ARABIC_JOINING)
            assert all(word in extracted_text(resp.data) for word in ARABIC.split())  # each word joined, in order


def test_a_name_takes_the_font_that_has_all_its_letters():
    """An Urdu name takes Noto Sans Arabic whole (DejaVu lacks ہ: a font change inside a word would break
    its joining), a Tigrinya name Noto Sans Ethiopic; Latin text around them stays in DejaVu Sans."""
    if not (pdf.NOTO_DIR / "NotoSansArabic-Regular.ttf").exists():
        if os.environ.get("CI"):
            pytest.fail("fonts-noto-core is not installed (scripts/test.sh installs it)")
        pytest.skip("fonts-noto-core is not installed: scripts DejaVu Sans lacks print as boxes")
    data = pdf.badges(Workshop(title="Advisor exchange"), [
        Registration(name=URDU, organisation="Caritas", country="PK"),
        Registration(name=TIGRINYA, organisation="Caritas", country="ER")])
    lines, fonts = drawn_lines(data), embedded_fonts(data)
    assert as_drawn(URDU) in lines and as_drawn(TIGRINYA) in lines
    assert {ord(c) for c in TIGRINYA if c != " "} <= fonts["NotoSansEthiopicBold"]
    assert "Caritas" in lines and set(map(ord, "Caritas")) <= fonts["DejaVuSansBook"]
    assert_joined(data, "عئشخ")
    assert ord("ہ") not in fonts.get("DejaVuSansBold", set())


def test_without_the_optional_fonts_dejavu_prints_the_four_scripts(monkeypatch, tmp_path):
    monkeypatch.setattr(pdf, "NOTO_DIR", tmp_path)
    data = pdf.badges(Workshop(title="Advisor exchange"), [
        Registration(name=name, organisation="Caritas", country="GE") for name in (ARABIC, GEORGIAN, CYRILLIC)])
    lines = drawn_lines(data)
    assert all(as_drawn(name) in lines for name in (ARABIC, GEORGIAN, CYRILLIC))
    assert_joined(data, ARABIC_JOINING)
    assert set(embedded_fonts(data)) == {"DejaVuSansBook", "DejaVuSansBold"}
