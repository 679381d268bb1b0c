"""Recognition on our own machine: Tesseract (Debian's tesseract-ocr, through pytesseract) for pictures,
pdfium's text layer for digital PDFs (a scanned PDF without one is rendered and read like a picture).

`recognise(stream, content_type)` returns a Page: the text, its lines with their words and boxes (pixels
of the upright page image; for a text PDF, points of the page), the page size, the engine and the time.
When the tesseract binary is missing, pictures are simply not read (`available()` is False, recognise
returns None); text PDFs are read all the same.

Preparation (measured on the generated set, bench-results/ocr.md): the EXIF orientation applied,
grayscale, autocontrast, small pictures enlarged and huge ones reduced. The script is found by
Tesseract's OSD (Latin, Cyrillic, Arabic); a Latin reading with low confidence is read again as Georgian,
which OSD does not tell from Latin. Reading with only the languages of one script is 2–3 times faster than
with all of them.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from functools import cache
from typing import BinaryIO

from PIL import Image, ImageOps

from portal.storage import CHUNK_SIZE

log = logging.getLogger(__name__)

# Tesseract languages per script, the script's own first; Latin covers the English, German and French labels.
LANGUAGES = {"Latin": "deu+eng+fra", "Cyrillic": "rus+eng", "Arabic": "ara+eng", "Georgian": "kat+eng"}
MIN_EDGE, MAX_EDGE = 1600, 3000  # px, the long edge a picture is brought to (small ones enlarged at most 2x)
LOW_CONFIDENCE = 75  # mean confidence of the words below which a "Latin" page is tried as Georgian
TIMEOUT = 60  # seconds for one tesseract run
PDF_MIN_TEXT = 20  # characters a PDF's text layer needs to be taken instead of reading the rendered page
# One core per reading (Tesseract's OpenMP threads only fight each other on a busy worker, which runs jobs
# side by side); set OMP_THREAD_LIMIT in the worker's environment to change it.
os.environ.setdefault("OMP_THREAD_LIMIT", "1")

Box = tuple[int, int, int, int]  # left, top, width, height


@dataclass
class Word:
    text: str
    box: Box
    conf: float


@dataclass
class Line:
    words: list[Word] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)

    def spans(self) -> list[tuple[int, int, Word]]:
        """(start, end, word) of each word in `text`."""
        out, pos = [], 0
        for w in self.words:
            out.append((pos, pos + len(w.text), w))
            pos += len(w.text) + 1
        return out

    def box_of(self, start: int, end: int) -> Box | None:
        """The union of the boxes of the words that the characters start..end of `text` fall in."""
        boxes = [w.box for s, e, w in self.spans() if s < end and e > start and w.box]
        return union(boxes)


def union(boxes) -> Box | None:
    boxes = [b for b in boxes if b]
    if not boxes:
        return None
    left, top = min(b[0] for b in boxes), min(b[1] for b in boxes)
    right, bottom = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
    return (left, top, right - left, bottom - top)


@dataclass
class Page:
    lines: list[Line]
    width: int
    height: int
    engine: str
    seconds: float = 0.0
    script: str = ""
    confidence: float = 0.0

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


@cache
def tesseract_version() -> str | None:
    """The tesseract binary's version, None when it (or pytesseract) is not installed."""
    if shutil.which("tesseract") is None:
        return None
    try:
        import pytesseract

        return str(pytesseract.get_tesseract_version())
    except Exception as exc:  # noqa: BLE001 - a broken installation is a missing one
        log.warning("tesseract not usable: %s", exc)
        return None


def available() -> bool:
    return tesseract_version() is not None


@cache
def installed_languages() -> frozenset[str]:
    import pytesseract

    try:
        return frozenset(pytesseract.get_languages(config=""))
    except Exception:  # noqa: BLE001
        return frozenset()


def _langs(script: str) -> str:
    wanted = LANGUAGES.get(script, LANGUAGES["Latin"]).split("+")
    have = installed_languages()
    return "+".join(lang for lang in wanted if lang in have) or "eng"


# Pictures ----------------------------------------------------------------------------------------------

def prepare(img: Image.Image) -> tuple[Image.Image, float]:
    """The picture as Tesseract reads it best, and the scale from the upright original to it."""
    img = ImageOps.exif_transpose(img)
    img = img.convert("L")
    long_edge = max(img.size)
    scale = 1.0
    if long_edge < MIN_EDGE:
        scale = min(2.0, MIN_EDGE / long_edge)
    elif long_edge > MAX_EDGE:
        scale = MAX_EDGE / long_edge
    if scale != 1.0:
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
    img = ImageOps.autocontrast(img, cutoff=1)
    return img, scale


def detect_script(img: Image.Image) -> tuple[str, int]:
    """Tesseract's OSD: the script (Latin, Cyrillic, Arabic, …) and the rotation that makes the page upright."""
    import pytesseract

    if "osd" not in installed_languages():
        return "Latin", 0
    try:
        osd = pytesseract.image_to_osd(img, config="--psm 0", output_type=pytesseract.Output.DICT,
                                       timeout=TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - too little text for OSD: read it as Latin, upright
        log.debug("no OSD: %s", exc)
        return "Latin", 0
    rotate = int(osd.get("rotate") or 0) if float(osd.get("orientation_conf") or 0) >= 5 else 0
    return str(osd.get("script") or "Latin"), rotate


def _read(img: Image.Image, langs: str, scale: float) -> tuple[list[Line], float]:
    """Tesseract's words grouped into lines; boxes mapped back to the original picture's pixels."""
    import pytesseract

    data = pytesseract.image_to_data(img, lang=langs, config="--psm 4", output_type=pytesseract.Output.DICT,
                                     timeout=TIMEOUT)
    lines: dict[tuple, Line] = {}
    confs = []  # of the words with letters: numbers read well in any script, words tell the script
    for i, text in enumerate(data["text"]):
        text = (text or "").strip()
        conf = float(data["conf"][i])
        if not text or conf < 0:
            continue
        box = tuple(round(data[k][i] / scale) for k in ("left", "top", "width", "height"))
        key = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
        lines.setdefault(key, Line()).words.append(Word(text, box, conf))
        if sum(ch.isalpha() for ch in text) >= 2:
            confs.append(conf)
    return list(lines.values()), (sum(confs) / len(confs) if confs else 0.0)


def recognise_image(img: Image.Image) -> Page:
    started = time.monotonic()
    upright = ImageOps.exif_transpose(img)
    width, height = upright.size
    prepared, scale = prepare(upright)
    script, rotate = detect_script(prepared)
    if rotate:
        prepared = prepared.rotate(-rotate, expand=True)  # boxes are then of the rotated page
        width, height = (height, width) if rotate in (90, 270) else (width, height)
    langs = _langs(script)
    lines, conf = _read(prepared, langs, scale)
    if script == "Latin" and conf < LOW_CONFIDENCE and "kat" in installed_languages():
        other, other_conf = _read(prepared, _langs("Georgian"), scale)
        if other_conf > conf:
            script, langs, lines, conf = "Georgian", _langs("Georgian"), other, other_conf
    return Page(lines=lines, width=width, height=height, engine=f"tesseract {tesseract_version()} {langs}",
                seconds=round(time.monotonic() - started, 3), script=script, confidence=round(conf, 1))


# PDFs --------------------------------------------------------------------------------------------------

def _pdf_text_page(pdf) -> Page | None:
    """The first page's text layer as lines with boxes (points from the page's top left), None if it has
    too little text (a scan)."""
    page = pdf[0]
    width, height = page.get_size()
    textpage = page.get_textpage()
    try:
        count = textpage.count_chars()
        text = textpage.get_text_range(0, count) if count else ""
        if len(text.strip()) < PDF_MIN_TEXT:
            return None
        # The text order of a PDF need not be the reading order (right-to-left runs, table cells), so
        # lines are made again from where the words are; left-to-right words (digits, Latin) glyph by
        # glyph, right-to-left ones as pdfium gives them (their glyphs are shaped: ligatures).
        pieces: list[Word] = []
        for raw_line in _pdf_lines(textpage, count):
            for chars in raw_line:
                glyphs = [Word(c, (round(lft), round(height - tp), round(rgt - lft), round(tp - btm)), 100.0)
                          for c, (lft, btm, rgt, tp) in ((c, b) for c, b in chars if b)]
                text = "".join(c for c, _b in chars)
                if is_rtl(text):
                    pieces.append(Word(text, union(g.box for g in glyphs) or (0, 0, 0, 0), 100.0))
                else:
                    pieces.extend(glyphs)
        lines = _by_geometry(pieces)
        return Page(lines=lines, width=round(width), height=round(height), engine="pdfium text layer",
                    script="", confidence=100.0)
    finally:
        textpage.close()
        page.close()


def is_rtl(text: str) -> bool:
    """Whether text has right-to-left letters (Hebrew, Arabic; Arabic-Indic digits run left to right)."""
    return any(("\u0590" <= ch <= "\u08ff" or "\ufb1d" <= ch <= "\ufefc")
               and not ("\u0660" <= ch <= "\u066c" or "\u06f0" <= ch <= "\u06f9") for ch in text)


def _by_geometry(words: list[Word]) -> list[Line]:
    """Words grouped into lines by where they are on the page (a PDF's text order need not be the reading
    order: right-to-left text and table cells come in any order), each line in reading order."""
    lines: list[list[Word]] = []
    for word in sorted(words, key=lambda w: (w.box[1] + w.box[3] / 2, w.box[0])):
        middle = word.box[1] + word.box[3] / 2
        for line in lines:
            first = line[0].box
            if abs((first[1] + first[3] / 2) - middle) <= max(2, min(first[3], word.box[3]) * 0.5):
                line.append(word)
                break
        else:
            lines.append([word])
    out = []
    for line in sorted(lines, key=lambda ln: min(w.box[1] for w in ln)):
        line = _merge_glyphs(sorted(line, key=lambda w: w.box[0]))
        rtl = sum(is_rtl(w.text) for w in line) * 2 >= len(line) and any(is_rtl(w.text) for w in line)
        out.append(Line(sorted(line, key=lambda w: w.box[0], reverse=rtl)))
    return out


def _merge_glyphs(words: list[Word]) -> list[Word]:
    """Left-to-right glyphs (sorted left to right) joined into words: neighbours whose boxes (pdfium's
    loose ones, which touch within a word) are closer than an eighth of their height."""
    merged: list[Word] = []
    for word in words:
        last = merged[-1] if merged else None
        if last is not None and not is_rtl(last.text) and not is_rtl(word.text):
            gap = word.box[0] - (last.box[0] + last.box[2])
            if gap < max(last.box[3], word.box[3]) * 0.12:
                merged[-1] = Word(last.text + word.text, union([last.box, word.box]), min(last.conf, word.conf))
                continue
        merged.append(word)
    return merged


def _pdf_lines(textpage, count: int):
    """Characters grouped into words and lines as pdfium laid them out (a new line at CR/LF)."""
    line: list[list] = []
    word: list = []
    for i in range(count):
        ch = textpage.get_text_range(i, 1)
        if ch in ("\r", "\n"):
            if word:
                line.append(word)
                word = []
            if line:
                yield line
                line = []
            continue
        if ch.isspace() or ch == "\x00":
            if word:
                line.append(word)
                word = []
            continue
        try:
            box = textpage.get_charbox(i, loose=True)
        except Exception:  # noqa: BLE001
            box = None
        word.append((ch, box))
    if word:
        line.append(word)
    if line:
        yield line


def recognise_pdf(stream: BinaryIO) -> Page | None:
    import pypdfium2 as pdfium

    started = time.monotonic()
    with tempfile.TemporaryFile() as copy:
        shutil.copyfileobj(stream, copy, CHUNK_SIZE)
        copy.seek(0)
        pdf = pdfium.PdfDocument(copy)
        try:
            page = _pdf_text_page(pdf)
            if page is None:
                if not available():
                    return None
                first = pdf[0]
                try:
                    img = first.render(scale=300 / 72).to_pil()  # a scan: read at 300 dpi
                finally:
                    first.close()
                page = recognise_image(img)
                page.engine += " (rendered PDF)"
        finally:
            pdf.close()
    page.seconds = round(time.monotonic() - started, 3)
    return page


def recognise(stream: BinaryIO, content_type: str) -> Page | None:
    """The page read from a stored file; None when it cannot be read here (no tesseract for a picture,
    a type that has no text)."""
    if content_type == "application/pdf":
        return recognise_pdf(stream)
    if not content_type.startswith("image/") or not available():
        return None
    img = Image.open(stream)
    img.load()
    return recognise_image(img)

