"""PDFs for staff: the visa invitation letter (English or German) and printable name badges (fpdf2).

DejaVu Sans (Debian's fonts-dejavu-core) prints Cyrillic, Arabic letters, Georgian and more; without it
the core Helvetica font is used and names are transliterated to Latin letters.
"""

from __future__ import annotations

import unicodedata
from datetime import date
from pathlib import Path

from babel import Locale
from babel.dates import format_date
from flask import current_app
from flask_babel import force_locale
from fpdf import FPDF

from portal.workshop.models import Registration, Workshop

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")


def _names(lang: str) -> dict[str, str]:
    """The grantee, project and funding names from the configuration, in the letter's language."""
    cfg = current_app.config
    with force_locale(lang):
        return {"grantee": str(cfg["GRANTEE_NAME"]), "project": str(cfg["PROJECT_NAME"]),
                "emblem": str(cfg["EU_EMBLEM_TEXT"]), "funding": str(cfg["FUNDING_LINE"])}


def _pdf() -> tuple[FPDF, str, bool]:
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=20)
    regular, bold = FONT_DIR / "DejaVuSans.ttf", FONT_DIR / "DejaVuSans-Bold.ttf"
    if regular.exists() and bold.exists():
        pdf.add_font("DejaVu", "", str(regular))
        pdf.add_font("DejaVu", "B", str(bold))
        return pdf, "DejaVu", True
    return pdf, "Helvetica", False


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
        "person": "Name as in the passport: {name}\nNationality: {nationality}\nPassport number: {number}\n"
                  "Date of birth: {born}",
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
        "person": "Name laut Reisepass: {name}\nStaatsangehörigkeit: {nationality}\nPassnummer: {number}\n"
                  "Geburtsdatum: {born}",
        "closing": ("Wir bitten Sie, das erforderliche Visum für die Dauer des Workshops zu erteilen. "
                    "Für Rückfragen stehen wir gerne zur Verfügung."),
        "regards": "Mit freundlichen Grüßen",
        "for": "für {grantee}",
    },
}


def _letterhead(pdf: FPDF, font: str, clean, names: dict[str, str]) -> None:
    pdf.set_font(font, "B", 16)
    pdf.cell(0, 8, clean(names["grantee"]), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(font, "", 10)
    pdf.cell(0, 5, clean(names["project"]), new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 5, clean(f"{names['emblem']} – {names['funding']}"), new_x="LMARGIN", new_y="NEXT")
    pdf.line(pdf.l_margin, pdf.get_y() + 2, pdf.w - pdf.r_margin, pdf.get_y() + 2)
    pdf.ln(8)


def visa_letter(workshop: Workshop, reg: Registration, lang: str, signer: str, today: date | None = None) -> bytes:
    pdf, font, unicode_ok = _pdf()
    clean = (lambda s: s or "") if unicode_ok else _latin
    t = TEXTS[lang]
    fmt = lambda d: format_date(d, "long", locale=lang) if d else ""  # noqa: E731
    names = _names(lang)
    pdf.add_page()
    _letterhead(pdf, font, clean, names)
    pdf.set_font(font, "", 11)
    pdf.cell(0, 6, clean(fmt(today or date.today())), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.multi_cell(0, 6, clean(t["to"]), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font(font, "B", 13)
    pdf.cell(0, 8, clean(t["subject"]), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(font, "", 11)
    pdf.ln(2)
    pdf.multi_cell(0, 6, clean(t["body"].format(title=workshop.title, **names)), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.multi_cell(0, 6, clean(t["event"].format(start=fmt(workshop.starts_on), end=fmt(workshop.ends_on),
                                                 venue=workshop.venue, city=workshop.city)),
                   new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font(font, "B", 11)
    pdf.multi_cell(0, 6, clean(t["person"].format(
        name=reg.passport_name, nationality=_country(reg.nationality, lang), number=reg.passport_number,
        born=fmt(reg.birth_date))), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(font, "", 11)
    pdf.ln(3)
    pdf.multi_cell(0, 6, clean(t["closing"]), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.cell(0, 6, clean(t["regards"]), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(16)
    pdf.line(pdf.l_margin, pdf.get_y(), pdf.l_margin + 70, pdf.get_y())
    pdf.ln(1)
    pdf.cell(0, 6, clean(signer), new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 6, clean(t["for"].format(**names)), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def badges(workshop: Workshop, registrations: list[Registration]) -> bytes:
    """Eight badges per A4 page (2 × 4, 90 × 60 mm), with cut lines."""
    pdf, font, unicode_ok = _pdf()
    clean = (lambda s: s or "") if unicode_ok else _latin
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
        pdf.set_font(font, "", 8)
        pdf.cell(width - 10, 5, clean(workshop.title)[:80], align="C")
        pdf.set_xy(x + 5, y + 20)
        pdf.set_font(font, "B", 16)
        pdf.multi_cell(width - 10, 8, clean(reg.name)[:60], align="C")
        pdf.set_xy(x + 5, y + 40)
        pdf.set_font(font, "", 10)
        pdf.multi_cell(width - 10, 5, clean(f"{reg.organisation}\n{_country(reg.country, 'en')}")[:120],
                       align="C")
    return bytes(pdf.output())
