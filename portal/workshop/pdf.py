"""PDFs for staff: the visa invitation letter (English or German) and printable name badges (fpdf2).

Every script prints: text shaping (HarfBuzz, through uharfbuzz) joins Arabic letters and lays out
right-to-left runs in their visual order, and each text takes the font that has all its letters.
DejaVu Sans (Debian's fonts-dejavu-core) has Latin, Greek, Cyrillic, Armenian, Georgian, Hebrew and
Arabic (with Persian); Debian's fonts-noto-core, when installed, adds Noto Sans for what DejaVu lacks
(Urdu and Pashto letters, Georgian capitals, Ethiopic, the Indic scripts, Thai, Khmer, Myanmar) and
only the ones a document needs are loaded. Without Noto, those letters print as empty boxes; without
DejaVu, the core Helvetica font is used and names are transliterated to Latin letters.
"""

from __future__ import annotations

import functools
import unicodedata
from datetime import date
from pathlib import Path

from babel import Locale
from babel.dates import format_date
from flask import current_app
from flask_babel import force_locale
from fontTools.ttLib import TTFont
from fpdf import FPDF

from portal.workshop.models import Registration, Workshop

DEJAVU_DIR = Path("/usr/share/fonts/truetype/dejavu")
NOTO_DIR = Path("/usr/share/fonts/truetype/noto")
# Noto Sans fonts (fonts-noto-core) for the scripts DejaVu Sans lacks or has only in part, in the order
# they are tried; Noto Sans Arabic first, so that an Urdu or Pashto name is not split between two fonts.
NOTO_SCRIPTS = ("Arabic", "Georgian", "Armenian", "Hebrew", "Ethiopic", "Devanagari", "Bengali", "Gurmukhi",
                "Gujarati", "Tamil", "Telugu", "Kannada", "Malayalam", "Sinhala", "Thai", "Lao", "Khmer", "Myanmar")


def _names(lang: str) -> dict[str, str]:
    """The grantee, project and funding names from the configuration, in the letter's language."""
    cfg = current_app.config
    with force_locale(lang):
        return {"grantee": str(cfg["GRANTEE_NAME"]), "project": str(cfg["PROJECT_NAME"]),
                "emblem": str(cfg["EU_EMBLEM_TEXT"]), "funding": str(cfg["FUNDING_LINE"])}


@functools.cache
def _letters_of(path: Path) -> frozenset[int]:
    """The characters a font file has glyphs for (read once per process)."""
    with TTFont(path, lazy=True) as font:
        return frozenset(font.getBestCmap())


class Document(FPDF):
    """An A4 document that prints every script. `use(style, size, text)` sets the font for one text:
    the family with the most of its letters (DejaVu Sans on a tie), the others as fallbacks for the rest."""

    def __init__(self) -> None:
        super().__init__(format="A4")
        self.set_auto_page_break(auto=True, margin=20)
        regular, bold = DEJAVU_DIR / "DejaVuSans.ttf", DEJAVU_DIR / "DejaVuSans-Bold.ttf"
        self.unicode = regular.exists() and bold.exists()
        self.families: dict[str, frozenset[int]] = {}
        if self.unicode:
            self._add_family("DejaVu", regular, bold)
            self.set_text_shaping(True)

    def _add_family(self, family: str, regular: Path, bold: Path) -> None:
        self.add_font(family, "", str(regular))
        self.add_font(family, "B", str(bold if bold.exists() else regular))
        self.families[family] = _letters_of(regular)
        self.set_fallback_fonts(list(self.families), exact_match=False)

    def _family(self, text: str) -> str:
        letters = {ord(c) for c in text if not c.isspace()}
        best, most = "DejaVu", len(letters & self.families["DejaVu"])
        if most == len(letters):
            return best
        missing = letters - self.families["DejaVu"]
        for script in NOTO_SCRIPTS:
            family, regular = f"Noto{script}", NOTO_DIR / f"NotoSans{script}-Regular.ttf"
            if family not in self.families:
                if not regular.exists() or not missing & _letters_of(regular):
                    continue
                self._add_family(family, regular, NOTO_DIR / f"NotoSans{script}-Bold.ttf")
            if len(letters & self.families[family]) > most:
                best, most = family, len(letters & self.families[family])
        return best

    def use(self, style: str, size: float, text: str | None) -> str:
        """Set the font for `text` and return the text to print."""
        if not self.unicode:
            self.set_font("Helvetica", style, size)
            return _latin(text or "")
        self.set_font(self._family(text or ""), style, size)
        return text or ""


def _latin(text: str) -> str:
    """For the core font (Latin-1 only): drop accents, replace what is left outside Latin-1."""
    text = text or ""
    try:
        text.encode("latin-1")
        return text
    except UnicodeEncodeError:
        pass
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c if ord(c) < 256 else "?" for c in decomposed if not unicodedata.combining(c))


def _country(code: str | None, lang: str) -> str:
    return Locale.parse(lang).territories.get(code or "", code or "")


TEXTS = {
    "en": {
        "subject": "Invitation letter",
        "to": "To the competent consular authorities",
        "body": ("{grantee} hereby invites the person named below to take part in the \"{title}\", an "
                 "exchange of return counsellors in the project {project} ({emblem} – {funding})."),
        "event": "Dates: {start} to {end}\nVenue: {venue}, {city}",
        "name": "Name as in the passport:",
        "person": "Nationality: {nationality}\nPassport number: {number}\nDate of birth: {born}",
        "closing": ("We kindly ask you to issue the necessary visa for the duration of the workshop. "
                    "Please do not hesitate to contact us should you need further information."),
        "regards": "Yours faithfully,",
        "for": "for {grantee}",
    },
    "de": {
        "subject": "Einladungsschreiben",
        "to": "An die zuständige Auslandsvertretung",
        "body": ("{grantee} lädt die unten genannte Person zur Teilnahme am „{title}“ ein, einem Austausch "
                 "von Rückkehrberaterinnen und Rückkehrberatern im Projekt {project} ({emblem} – {funding})."),
        "event": "Termin: {start} bis {end}\nVeranstaltungsort: {venue}, {city}",
        "name": "Name laut Reisepass:",
        "person": "Staatsangehörigkeit: {nationality}\nPassnummer: {number}\nGeburtsdatum: {born}",
        "closing": ("Wir bitten Sie, das erforderliche Visum für die Dauer des Workshops zu erteilen. "
                    "Für Rückfragen stehen wir gerne zur Verfügung."),
        "regards": "Mit freundlichen Grüßen",
        "for": "für {grantee}",
    },
}


def _letterhead(pdf: Document, names: dict[str, str]) -> None:
    pdf.cell(0, 8, pdf.use("B", 16, names["grantee"]), new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 5, pdf.use("", 10, names["project"]), new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 5, pdf.use("", 10, f"{names['emblem']} – {names['funding']}"), new_x="LMARGIN", new_y="NEXT")
    pdf.line(pdf.l_margin, pdf.get_y() + 2, pdf.w - pdf.r_margin, pdf.get_y() + 2)
    pdf.ln(8)


def _paragraph(pdf: Document, style: str, text: str) -> None:
    pdf.multi_cell(0, 6, pdf.use(style, 11, text), new_x="LMARGIN", new_y="NEXT")


def visa_letter(workshop: Workshop, reg: Registration, lang: str, signer: str, today: date | None = None) -> bytes:
    pdf = Document()
    t = TEXTS[lang]
    fmt = lambda d: format_date(d, "long", locale=lang) if d else ""  # noqa: E731
    names = _names(lang)
    pdf.add_page()
    _letterhead(pdf, names)
    pdf.cell(0, 6, pdf.use("", 11, fmt(today or date.today())), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    _paragraph(pdf, "", t["to"])
    pdf.ln(4)
    pdf.cell(0, 8, pdf.use("B", 13, t["subject"]), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    _paragraph(pdf, "", t["body"].format(title=workshop.title, **names))
    pdf.ln(3)
    _paragraph(pdf, "", t["event"].format(start=fmt(workshop.starts_on), end=fmt(workshop.ends_on),
                                          venue=workshop.venue, city=workshop.city))
    pdf.ln(3)
    # The name is a text of its own after its label, so that it takes a font that has all its letters
    # (one font for a whole Arabic word keeps its letters joined) and its own direction.
    pdf.write(6, pdf.use("B", 11, t["name"] + " "))
    pdf.write(6, pdf.use("B", 11, reg.passport_name))
    pdf.ln(6)
    _paragraph(pdf, "B", t["person"].format(nationality=_country(reg.nationality, lang),
                                            number=reg.passport_number, born=fmt(reg.birth_date)))
    pdf.ln(3)
    _paragraph(pdf, "", t["closing"])
    pdf.ln(6)
    pdf.cell(0, 6, pdf.use("", 11, t["regards"]), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(16)
    pdf.line(pdf.l_margin, pdf.get_y(), pdf.l_margin + 70, pdf.get_y())
    pdf.ln(1)
    pdf.cell(0, 6, pdf.use("", 11, signer), new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 6, pdf.use("", 11, t["for"].format(**names)), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def badges(workshop: Workshop, registrations: list[Registration]) -> bytes:
    """Eight badges per A4 page (2 × 4, 90 × 60 mm), with cut lines."""
    pdf = Document()
    pdf.set_auto_page_break(auto=False)
    width, height, left, top = 90, 60, 15, 20
    if not registrations:
        pdf.add_page()
    for i, reg in enumerate(registrations):
        if i % 8 == 0:
            pdf.add_page()
        col, row = i % 2, (i % 8) // 2
        x, y = left + col * width, top + row * height
        pdf.rect(x, y, width, height)
        pdf.set_xy(x + 5, y + 6)
        pdf.cell(width - 10, 5, pdf.use("", 8, (workshop.title or "")[:80]), align="C")
        pdf.set_xy(x + 5, y + 20)
        pdf.multi_cell(width - 10, 8, pdf.use("B", 16, (reg.name or "")[:60]), align="C")
        pdf.set_xy(x + 5, y + 40)
        pdf.multi_cell(width - 10, 5, pdf.use("", 10, f"{reg.organisation}\n{_country(reg.country, 'en')}"[:120]),
                       align="C")
    return bytes(pdf.output())
