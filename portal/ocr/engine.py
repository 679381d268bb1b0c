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

Then what Tesseract's models cannot read is read again where it stands (the word boxes tell where):
- on an Arabic page, Arabic-Indic numbers glyph by glyph (`reread_arabic_digits`, `read_digits`: Debian's
  Arabic model knows only ٠ and ١), and Western numbers that it read with digits dropped in a right-to-left
  line by the English model on that part of the line (`_western_number`);
- beside an amount on any page, a currency sign the models lack (₺ ₴ ₽) by its shape (`reread_signs`).
The shapes are compared with the glyphs as the fonts installed for the workers draw them (fonts-dejavu-core,
fonts-noto-core): numbers in a font much unlike them are read less well (`make bench-ocr` measures it with
each font family left out).
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
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


# Arabic-Indic digits ----------------------------------------------------------------------------------
#
# Tesseract's Arabic models (Debian's ara: only ٠ and ١ in its alphabet; the Arabic script model: all ten,
# but it reads them as Latin look-alikes, Y for ٢, E for ٤, A for ٨, and drops ٠) do not read Arabic-Indic
# numbers. On an Arabic page, the words Tesseract could not read as Arabic words, Latin codes or Western
# numbers are read again glyph by glyph: the picture is made black and white there (Otsu), its connected
# shapes are compared with the digits and separators as the Arabic-capable fonts on this machine draw them
# (shape on a grid, height and place in the line's band of digits), and a run of shapes that are all close
# to one is taken as the number.

DIGIT_FONTS = ("dejavu/DejaVuSans.ttf", "dejavu/DejaVuSans-Bold.ttf", "dejavu/DejaVuSansCondensed.ttf",
               "dejavu/DejaVuSansMono.ttf", "dejavu/DejaVuSerif.ttf",
               "noto/NotoNaskhArabic-Regular.ttf", "noto/NotoNaskhArabic-Bold.ttf",
               "noto/NotoSansArabic-Regular.ttf", "noto/NotoSansArabic-Bold.ttf",
               "noto/NotoKufiArabic-Regular.ttf", "noto/NotoKufiArabic-Bold.ttf")
FONT_DIR = "/usr/share/fonts/truetype/"
GLYPHS = "٠١٢٣٤٥٦٧٨٩٫٬/.-:"
SIGNS = "$€£₺₴₽₾"
LATIN = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # the letters of currency codes beside a number are no digits
LOOKALIKES = "&@bBeеSCcoOЕЄ0123456789"  # what Tesseract reads for the signs its models lack (₺ ₴ ₽)
SIGN_FONTS = ("dejavu/DejaVuSans.ttf", "dejavu/DejaVuSans-Bold.ttf", "dejavu/DejaVuSerif.ttf",
              "dejavu/DejaVuSerif-Bold.ttf", "dejavu/DejaVuSansMono.ttf", "dejavu/DejaVuSansMono-Bold.ttf",
              "noto/NotoSans-Regular.ttf", "noto/NotoSans-Bold.ttf", "noto/NotoSerif-Regular.ttf",
              "noto/NotoSerif-Bold.ttf")
GRID = 18
GLYPH_CLOSE = 0.2  # the largest distance of a shape to its nearest glyph that is taken as that glyph
_ARABIC_LETTER = re.compile("[\u0621-\u064a]")
_CODE = re.compile(r"[A-Z]{3}|[$€£]")
_WESTERN_TOKEN = re.compile(r"[+\-]?[A-Za-z]{0,4}[\-/]?[0-9][0-9.,/:\-]*")


def otsu(img: Image.Image) -> int:
    """The grey level that best splits the picture's histogram in ink and paper (Otsu's method)."""
    hist = img.histogram()[:256]
    total, weighted = sum(hist), sum(i * n for i, n in enumerate(hist))
    below = below_sum = 0
    best, level = -1.0, 128
    for t in range(256):
        below += hist[t]
        if below == 0:
            continue
        above = total - below
        if above == 0:
            break
        below_sum += t * hist[t]
        spread = below * above * (below_sum / below - (weighted - below_sum) / above) ** 2
        if spread > best:
            best, level = spread, t
    return level


def _ink(img: Image.Image) -> tuple[bytearray, int, int]:
    img = ImageOps.autocontrast(img.convert("L"))
    level = otsu(img)
    return bytearray(1 if v <= level else 0 for v in img.tobytes()), img.width, img.height


def _shapes(mask: bytearray, width: int, height: int) -> list[tuple[int, int, int, int, list[int]]]:
    """The connected shapes of ink (8 neighbours): (left, top, right, bottom, pixels)."""
    seen = bytearray(width * height)
    out = []
    for start in range(width * height):
        if not mask[start] or seen[start]:
            continue
        stack, pixels = [start], []
        seen[start] = 1
        while stack:
            p = stack.pop()
            pixels.append(p)
            x, y = p % width, p // width
            for yy in (y - 1, y, y + 1):
                if 0 <= yy < height:
                    for xx in (x - 1, x, x + 1):
                        q = yy * width + xx
                        if 0 <= xx < width and mask[q] and not seen[q]:
                            seen[q] = 1
                            stack.append(q)
        xs, ys = [p % width for p in pixels], [p // width for p in pixels]
        out.append((min(xs), min(ys), max(xs) + 1, max(ys) + 1, pixels))
    return out


def _band(shapes) -> Callable[[float], tuple[float, float]]:
    """The band the digits stand in, as top and height at a place x: a straight line through the tops and
    one through the bottoms of the tall shapes (a photo taken at a slant tilts the line)."""
    tallest = max(s[3] - s[1] for s in shapes)
    tall = [((s[0] + s[2]) / 2, s[1], s[3]) for s in shapes if s[3] - s[1] >= 0.6 * tallest]

    def fit(points):
        n = len(points)
        mx, my = sum(x for x, _y in points) / n, sum(y for _x, y in points) / n
        spread = sum((x - mx) ** 2 for x, _y in points)
        slope = sum((x - mx) * (y - my) for x, y in points) / spread if spread else 0.0
        slope = max(-0.1, min(0.1, slope))  # a few degrees at most
        return lambda x: my + slope * (x - mx)

    top, bottom = fit([(x, t) for x, t, _b in tall]), fit([(x, b) for x, _t, b in tall])
    return lambda x: (top(x), max(1.0, bottom(x) - top(x)))


def _features(shape, width: int, band: Callable[[float], tuple[float, float]]):
    left, upper, right, lower, pixels = shape
    top, height = band((left + right) / 2)
    w, h = right - left, lower - upper
    side = max(w, h)
    square = Image.new("L", (side, side), 0)
    px, dx, dy = square.load(), (side - w) // 2, (side - h) // 2
    for p in pixels:
        px[p % width - left + dx, p // width - upper + dy] = 255
    grid = [v / 255 for v in square.resize((GRID, GRID), Image.Resampling.BOX).tobytes()]
    return grid, h / height, ((upper + lower) / 2 - top) / height, min(3.0, w / max(1, h))


def _distance(a, b) -> float:
    grid = math.dist(a[0], b[0]) ** 2 / len(a[0])
    if a[1] < 0.45:  # a small mark (zero, point, separators) is told by where it sits more than by its shape
        grid *= 0.3
    return grid + 0.5 * (a[1] - b[1]) ** 2 + 1.0 * (a[2] - b[2]) ** 2 + 0.05 * (a[3] - b[3]) ** 2


def _nearest(feats, templates) -> tuple[float, str]:
    """The distance to the nearest template and its glyph."""
    return min((_distance(feats, t), g) for g, t in templates)


@cache
def _has(path: str) -> frozenset[int]:
    """The characters a font file draws."""
    from fontTools.ttLib import TTFont

    with TTFont(path, lazy=True) as font:
        return frozenset(font.getBestCmap())


@cache
def _templates(glyphs: str, fonts: tuple[str, ...], band_text: str) -> tuple:
    """(glyph, features) of each glyph as each installed font that has it draws it, its height and place
    measured against the band of band_text (the digits) in the same font."""
    from PIL import ImageDraw, ImageFont

    out = []
    for name in fonts:
        try:
            font = ImageFont.truetype(FONT_DIR + name, 64)
            has = _has(FONT_DIR + name)
        except OSError:
            continue
        row = Image.new("L", (900, 140), 255)
        ImageDraw.Draw(row).text((20, 20), band_text, font=font, fill=0)
        band = _band(_shapes(*_ink(row)))
        for glyph in glyphs:
            if ord(glyph) not in has:
                continue
            cell = Image.new("L", (140, 140), 255)
            ImageDraw.Draw(cell).text((20, 20), glyph, font=font, fill=0)
            mask, width, height = _ink(cell)
            shapes = _shapes(mask, width, height)
            if len(shapes) == 1:
                out.append((glyph, _features(shapes[0], width, band)))
    return tuple(out)


def glyph_templates() -> tuple:
    """The Arabic-Indic digits and separators, and the currency signs that stand beside them."""
    return _templates(GLYPHS + "$€£" + LATIN, DIGIT_FONTS, "١٢٣٤٥٦٧٨٩")


def sign_templates() -> tuple:
    """Currency signs that Tesseract's models lack, and what it takes them for."""
    return _templates(SIGNS + LOOKALIKES, SIGN_FONTS, "0123456789")


def read_digits(img: Image.Image) -> list[tuple[str, Box, float]]:
    """The runs of Arabic-Indic digits and separators on a picture of one line's part, and the currency
    signs beside them: (text, box in the picture's pixels, the largest distance of one of its shapes to
    its glyph)."""
    templates = glyph_templates()
    if not templates or img.width < 4 or img.height < 4:
        return []
    mask, width, height = _ink(img)
    shapes = [s for s in _shapes(mask, width, height) if len(s[4]) >= 2]
    if not shapes:
        return []
    band = _band(shapes)
    # specks of noise away, by the size of the writing (a point is about a sixth of a digit's height)
    least = 0.015 * band(width / 2)[1] ** 2
    shapes = [s for s in shapes if len(s[4]) >= least]
    runs: list[list] = [[]]
    for shape in sorted(shapes, key=lambda s: s[0]):
        feats = _features(shape, width, band)
        distance, glyph = _nearest(feats, templates)
        top, height = band((shape[0] + shape[2]) / 2)
        inside = shape[1] < top + height * 1.2 and shape[3] > top - height * 0.2
        last = runs[-1][-1][0] if runs[-1] else None
        if (distance > GLYPH_CLOSE or not inside) and feats[1] < 0.45:
            continue  # a mark like none (a blot of JPEG, a separator blurred) does not end the number
        if distance > GLYPH_CLOSE or not inside:
            runs.append([])
            continue
        if glyph in LATIN:
            runs.append([])
            continue
        if glyph in SIGNS:  # a currency sign beside the number: a run of its own
            runs += [[(shape, glyph, distance)], []]
            continue
        if last is not None and shape[0] - last[2] > height * 0.9:
            runs.append([])
        runs[-1].append((shape, glyph, distance))
    out = []
    for run in runs:
        if len(run) == 1 and run[0][1] in SIGNS:
            shape, glyph, distance = run[0]
            out.append((glyph, (shape[0], shape[1], shape[2] - shape[0], shape[3] - shape[1]), distance))
            continue
        text = tidy_number("".join(g for _s, g, _d in run).strip("/.-:٫٬"))
        if not any("\u0660" <= ch <= "\u0669" for ch in text):
            continue
        box = union((s[0], s[1], s[2] - s[0], s[3] - s[1]) for s, _g, _d in run)
        out.append((text, box, max(d for _s, _g, d in run)))
    return out


_D = "[\u0660-\u0669]"
_SEP = "[./\\-٫٬,:]"
_DATE_SHAPE = re.compile(f"({_D}{{1,2}})({_SEP})({_D}{{1,2}})({_SEP})({_D}{{4}}|{_D}{{2}})")
_AMOUNT_SHAPE = re.compile(f"{_D}{{1,3}}(?:{_SEP}{_D}{{3}})*(?:{_SEP}{_D}{{1,3}})?")


def tidy_number(text: str) -> str:
    """The separators of an Arabic-Indic number read glyph by glyph, told by where they stand (their small
    shapes are easily taken for one another): a date's two alike (the one that is no Arabic decimal or
    thousands sign), an amount's thousands signs before groups of three and a decimal sign last."""
    date = _DATE_SHAPE.fullmatch(text)
    if date:
        one, two = date.group(2), date.group(4)
        sep = next((s for s in (one, two) if s in "./-"), ".")
        return f"{date.group(1)}{sep}{date.group(3)}{sep}{date.group(5)}"
    if _AMOUNT_SHAPE.fullmatch(text):
        parts = re.split(_SEP, text)
        if len(parts) == 1:
            return text
        last = parts[-1]
        decimal = len(last) <= 2 or text[-len(last) - 1] in ".٫"
        return "٬".join(parts[:-1]) + ("٫" if decimal else "٬") + last
    return text


def _unread(word: Word) -> bool:
    """Whether Tesseract read this word of an Arabic page as none of: an Arabic word, a Latin code, a
    Western number."""
    text = word.text.strip("\u200e\u200f:")
    if len(_ARABIC_LETTER.findall(text)) >= 2 and word.conf >= 50:
        return False
    if _CODE.fullmatch(text) and word.conf >= 60:
        return False
    return not (_WESTERN_TOKEN.fullmatch(text) and word.conf >= 60)


def _areas(words: list[Word]) -> list[tuple[list[Word], int, int, bool]]:
    """The parts of a line (words sorted left to right) to read again: (words, left, right, western).
    Each reaches from the word read well before to the one after, at most two heights beyond (Tesseract's
    boxes of words it could not read need not hold all of the number); overlapping parts are one. Western:
    a Western number that Tesseract read in far less room than there is for it (digits dropped, as it
    does with left-to-right numbers in right-to-left lines)."""
    areas: list[tuple[list[Word], int, int, bool]] = []
    for i, word in enumerate(words):
        height = word.box[3]
        left = max([word.box[0] - 2 * height, 0, *(w.box[0] + w.box[2] for w in words[:i] if not _unread(w))])
        right = min([word.box[0] + word.box[2] + 2 * height, *(w.box[0] for w in words[i + 1:] if not _unread(w))])
        if not _unread(word):
            text = word.text.strip("\u200e\u200f:")
            if not (_WESTERN_TOKEN.fullmatch(text) and not _CODE.fullmatch(text)):
                continue
            before = max([0, *(w.box[0] + w.box[2] for w in words[:i])])
            after = min([word.box[0] + word.box[2] + 2 * height, *(w.box[0] for w in words[i + 1:])])
            too_wide = word.box[2] > height * (0.9 * len(text) + 1.0)
            if not too_wide and min(after, word.box[0] + word.box[2] + 2 * height) - max(
                    before, word.box[0] - 2 * height) < 2.5 * word.box[2]:
                continue  # snug between its neighbours: read right
            # the neighbours' boxes of a number Tesseract read in part may hold its other digits
            areas.append(([word], max(0, word.box[0] - 3 * height), word.box[0] + word.box[2] + 3 * height, True))
            continue
        if areas and not areas[-1][3] and left < areas[-1][2]:
            group, before, after, _w = areas[-1]
            areas[-1] = ([*group, word], before, max(right, after), False)
        else:
            areas.append(([word], left, right, False))
    return areas


def _western_number(img: Image.Image) -> str | None:
    """A Western number on a picture of one line's part (Tesseract's English model, digits only)."""
    import pytesseract

    img = ImageOps.expand(img, border=10, fill=255)
    text = pytesseract.image_to_string(img, lang="eng", timeout=TIMEOUT,
                                       config="--psm 7").strip()
    numbers = re.findall(r"[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?|[0-9]+(?:[.,/-][0-9]+)*", text)
    return max(numbers, key=len) if numbers else None


def reread_arabic_digits(img: Image.Image, lines: list[Line], scale: float) -> int:
    """Words of an Arabic page that Tesseract could not read, read again as numbers (in place: the words
    of a number become one word); the number of numbers read. Arabic-Indic digits glyph by glyph
    (read_digits); a Western number that Tesseract read with digits missing by its English model."""
    found = 0
    for line in lines:
        words = sorted(line.words, key=lambda w: w.box[0])
        for group, left, right, western in _areas(words):
            box = union(w.box for w in group)
            pad = max(w.box[3] for w in group) * 0.3
            x0, y0 = round(left * scale), round((box[1] - pad) * scale)
            crop = img.crop((x0, y0, round(right * scale), round((box[1] + box[3] + pad) * scale)))
            if western:
                text = _western_number(crop)
                digits = sum(ch.isdigit() for ch in group[0].text)
                if text and sum(ch.isdigit() for ch in text) > digits:
                    group[0].text = text
                    group[0].box = (left, box[1], right - left, box[3])
                    found += 1
                    continue
                # no Western number there: perhaps Arabic-Indic digits Tesseract took for a Western one
            found_runs = read_digits(crop)
            runs = [r for r in found_runs if r[0] not in SIGNS]
            signs = [Word(r[0], (round((x0 + r[1][0]) / scale), round((y0 + r[1][1]) / scale),
                                 round(r[1][2] / scale), round(r[1][3] / scale)), 80.0)
                     for r in found_runs if r[0] in SIGNS]
            if not runs:
                continue
            spans = [((x0 + r[1][0]) / scale, (x0 + r[1][0] + r[1][2]) / scale) for r in runs]
            best = max(range(len(runs)), key=lambda k: min(spans[k][1], box[0] + box[2]) - max(spans[k][0], box[0]))
            if spans[best][1] - spans[best][0] < 0.4 * box[2]:
                continue  # a digit-like letter (alif) in a word Tesseract could not read: no number
            text, (rl, rt, rw, rh), _d = runs[best]
            number = Word(text, (round((x0 + rl) / scale), round((y0 + rt) / scale), round(rw / scale),
                                 round(rh / scale)), 80.0)
            line.words = [w for w in line.words if w not in group] + [number] + [
                sign for sign in signs if abs(sign.box[0] - number.box[0]) < number.box[2] + 2 * number.box[3]]
            found += 1
        if found:
            rtl = sum(is_rtl(w.text) for w in line.words) * 2 >= len(line.words)
            line.words.sort(key=lambda w: w.box[0], reverse=rtl)
    return found


_NUMBER = re.compile(r"[0-9][0-9 .,]*[.,][0-9]{2,3}|[0-9]{3,}")


def reread_signs(img: Image.Image, lines: list[Line], scale: float) -> int:
    """The word of one or two characters right beside an amount read again as a currency sign by its
    shape, when it is one (Tesseract's models lack ₺, ₴, ₽ and read them as &, b, e, 2, @…); in place,
    the number of signs read."""
    templates = sign_templates()
    if not templates:
        return 0
    found = 0
    for line in lines:
        words = sorted(line.words, key=lambda w: w.box[0])
        for i, word in enumerate(words):
            if not _NUMBER.fullmatch(word.text.strip("\u200e\u200f")):
                continue
            for j in (i - 1, i + 1):
                if not 0 <= j < len(words):
                    continue
                other = words[j]
                text = other.text.strip("\u200e\u200f")
                if not 1 <= len(text) <= 2 or text in SIGNS or (text.isalpha() and len(text) == 2):
                    continue
                gap = other.box[0] - (word.box[0] + word.box[2]) if j > i else word.box[0] - (
                    other.box[0] + other.box[2])
                if gap > word.box[3]:
                    continue
                box = union([word.box, other.box])
                pad = word.box[3] * 0.3
                x0, y0 = round((box[0] - pad) * scale), round((box[1] - pad) * scale)
                crop = img.crop((x0, y0, round((box[0] + box[2] + pad) * scale),
                                 round((box[1] + box[3] + pad) * scale)))
                sign = _sign(crop, ((other.box[0] - box[0] + pad) * scale, (other.box[0] + other.box[2] - box[0] + pad)
                                    * scale), templates)
                if sign:
                    other.text = sign
                    found += 1
    return found


def _sign(img: Image.Image, span: tuple[float, float], templates) -> str | None:
    """The currency sign among the shapes of img whose middle is within span (x), if the largest of them
    is closest to one."""
    if img.width < 4 or img.height < 4:
        return None
    mask, width, height = _ink(img)
    shapes = [s for s in _shapes(mask, width, height) if len(s[4]) >= 4]
    if not shapes:
        return None
    band = _band(shapes)
    inside = [s for s in shapes if span[0] <= (s[0] + s[2]) / 2 <= span[1]]
    if not inside:
        return None
    shape = max(inside, key=lambda s: len(s[4]))
    distance, glyph = _nearest(_features(shape, width, band), templates)
    return glyph if glyph in SIGNS and distance <= GLYPH_CLOSE else None


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
    if script == "Arabic":
        reread_arabic_digits(prepared, lines, scale)
    reread_signs(prepared, lines, scale)
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


def stored(page, started: float) -> dict:
    """What a reading keeps of its page besides the fields: the lines with their boxes, the page size, the
    engine, script and confidence, and the milliseconds since `started` (time.monotonic())."""
    return {
        "lines": [{"text": line.text, "box": list(union(w.box for w in line.words) or ())}
                  for line in (page.lines if page else [])][:500],
        "width": page.width if page else 0, "height": page.height if page else 0,
        "engine": (page.engine if page else "")[:100], "script": (page.script if page else "")[:20],
        "confidence": round(page.confidence) if page else 0,
        "millis": round((time.monotonic() - started) * 1000),
    }
