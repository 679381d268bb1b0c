"""The receipt set for `make bench-ocr` and tests/test_ocr.py: receipts rendered here, with their true fields.

Each receipt is drawn with Pillow (raqm shapes Arabic) in real Debian fonts (fonts-dejavu-core,
fonts-noto-core) in one of four scripts — Latin (English, German, French), Cyrillic (Russian), Arabic and
Georgian — in one of three layouts (a centred shop receipt, an invoice with a meta column, a narrow
till slip), with the amount, date and currency written the way that country writes them (Arabic-Indic
digits, day-month-year, month names, currency codes, symbols or local abbreviations). `degrade()` then
makes a phone photo of it: the paper on a table, a slight perspective and rotation, a shadow, blur,
noise and JPEG compression. A few receipts are also written as text PDFs (fpdf2), as accounting software
would.

    python scripts/bench/ocr_set.py OUT_DIR [--count 64] [--pdfs 6]

writes OUT_DIR/<name>.jpg|.pdf and OUT_DIR/truth.json. `receipt(seed)` and `clean_image(spec)` are what
the tests use (clean, not degraded: reliable).
"""

from __future__ import annotations

import io
import json
import random
import sys
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

DEJAVU = "/usr/share/fonts/truetype/dejavu/"
NOTO = "/usr/share/fonts/truetype/noto/"

# Fonts per script, regular and bold; a cell is drawn in the first font of its script that has every
# character of it (Noto's Arabic and Georgian fonts have no Latin digits, DejaVu has no ₾).
FONTS = {
    "latin": [("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", DEJAVU), ("DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", DEJAVU),
              ("NotoSans-Regular.ttf", "NotoSans-Bold.ttf", NOTO), ("NotoSerif-Regular.ttf", "NotoSerif-Bold.ttf", NOTO)],
    "cyrillic": [("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", DEJAVU), ("NotoSerif-Regular.ttf", "NotoSerif-Bold.ttf", NOTO),
                 ("NotoSans-Regular.ttf", "NotoSans-Bold.ttf", NOTO)],
    "arabic": [("NotoNaskhArabic-Regular.ttf", "NotoNaskhArabic-Bold.ttf", NOTO),
               ("NotoSansArabic-Regular.ttf", "NotoSansArabic-Bold.ttf", NOTO),
               ("NotoKufiArabic-Regular.ttf", "NotoKufiArabic-Bold.ttf", NOTO),
               ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", DEJAVU)],
    "georgian": [("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", DEJAVU), ("DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", DEJAVU),
                 ("NotoSansGeorgian-Regular.ttf", "NotoSansGeorgian-Bold.ttf", NOTO)],
}
FALLBACK = [("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", DEJAVU), ("NotoSans-Regular.ttf", "NotoSans-Bold.ttf", NOTO)]
MONO = ("DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", DEJAVU)

ARABIC_INDIC = str.maketrans("0123456789.,", "٠١٢٣٤٥٦٧٨٩٫٬")  # amounts: digits and separators
ARABIC_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")  # dates: digits only

# label words per language
LABELS = {
    "en": {"invoice": ["Invoice No.", "Receipt No.", "Invoice #"], "date": ["Date", "Invoice date"],
           "total": ["TOTAL", "Total", "Total due"], "subtotal": "Subtotal", "vat": "VAT 18%", "qty": "pcs",
           "tel": "Tel."},
    "de": {"invoice": ["Rechnung Nr.", "Rechnungsnummer", "Beleg-Nr."], "date": ["Datum", "Rechnungsdatum"],
           "total": ["SUMME", "Gesamtbetrag", "Summe"], "subtotal": "Zwischensumme", "vat": "MwSt. 19%", "qty": "Stk.",
           "tel": "Tel."},
    "fr": {"invoice": ["Facture N°", "Facture n°", "Reçu N°"], "date": ["Date", "Date de facture"],
           "total": ["TOTAL TTC", "Total", "Net à payer"], "subtotal": "Sous-total", "vat": "TVA 18%", "qty": "pce",
           "tel": "Tél."},
    "ru": {"invoice": ["Счёт №", "Счет-фактура №", "Чек №"], "date": ["Дата", "Дата счёта"],
           "total": ["ИТОГО", "Итого", "Итого к оплате"], "subtotal": "Сумма без НДС", "vat": "НДС 20%", "qty": "шт.",
           "tel": "Тел."},
    "ar": {"invoice": ["فاتورة رقم", "رقم الفاتورة", "إيصال رقم"], "date": ["التاريخ", "تاريخ الفاتورة"],
           "total": ["المجموع", "الإجمالي", "المبلغ الإجمالي"], "subtotal": "المجموع الفرعي", "vat": "الضريبة", "qty": "قطعة",
           "tel": "هاتف"},
    "ka": {"invoice": ["ინვოისი №", "ანგარიში №", "ჩეკი №"], "date": ["თარიღი", "ინვოისის თარიღი"],
           "total": ["სულ", "ჯამი", "სულ გადასახდელი"], "subtotal": "ქვეჯამი", "vat": "დღგ 18%", "qty": "ც.",
           "tel": "ტელ."},
}
SCRIPT_OF = {"en": "latin", "de": "latin", "fr": "latin", "ru": "cyrillic", "ar": "arabic", "ka": "georgian"}

SUPPLIERS = {
    "en": ["Tbilisi Tools LLC", "Global Sewing Supplies", "Kabul Hardware Store", "Nile Office Equipment",
           "Sunrise Bakery Equipment", "Baghdad Electric Co"],
    "de": ["Werkzeug Krause GmbH", "Bäckerei Technik Müller", "Nähmaschinen Schulz KG", "Elektro Weber GmbH"],
    "fr": ["Quincaillerie du Port", "Atelier Couture Diallo", "Boulangerie Équipement Sarl", "Librairie Moderne Tunis"],
    "ru": ["ООО Стройматериалы", "ИП Петров Инструмент", "ООО Швейный Мир", "Магазин Электроника"],
    "ar": ["مؤسسة النور للتجارة", "شركة الأمل للمعدات", "مكتبة الفجر", "محلات السلام للأدوات"],
    "ka": ["შპს ხელსაწყოები", "მაღაზია ნიკორა", "შპს თბილისის ტექნიკა", "სამკერვალო ცენტრი"],
}
ADDRESSES = {
    "en": ["12 Market Street", "Industrial Zone, Block 4"], "de": ["Hauptstraße 17", "Am Markt 3"],
    "fr": ["12 rue de la Paix", "Avenue Bourguiba 44"], "ru": ["ул. Ленина, д. 5", "пр. Мира, 17"],
    "ar": ["شارع الجمهورية ١٢", "حي المنصور"], "ka": ["რუსთაველის გამზ. 12", "აღმაშენებლის 45"],
}
ITEMS = {
    "en": ["Sewing machine", "Drill set", "Work bench", "Fabric roll", "Oven tray", "Cables", "Display fridge"],
    "de": ["Bohrmaschine", "Werkbank", "Stoffballen", "Backblech", "Kabel", "Kühlvitrine"],
    "fr": ["Machine à coudre", "Perceuse", "Établi", "Rouleau de tissu", "Plaque de four", "Câbles"],
    "ru": ["Швейная машина", "Дрель", "Верстак", "Ткань рулон", "Противень", "Кабель"],
    "ar": ["ماكينة خياطة", "مثقاب", "طاولة عمل", "قماش", "صينية فرن", "كابلات"],
    "ka": ["საკერავი მანქანა", "ბურღი", "სამუშაო მაგიდა", "ქსოვილი", "ღუმელის ფირფიტა", "კაბელი"],
}
MONTHS = {
    "en": ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"],
    "de": ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober",
           "November", "Dezember"],
    "fr": ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
           "novembre", "décembre"],
    "ru": ["января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября", "октября",
           "ноября", "декабря"],
}
# currency: (ISO code, what a receipt prints beside the amount: choices)
CURRENCIES = {
    "en": [("USD", ["USD", "$"]), ("GBP", ["GBP", "£"]), ("EUR", ["EUR", "€"]), ("GEL", ["GEL"]),
           ("AFN", ["AFN"]), ("EGP", ["EGP"]), ("IQD", ["IQD"]), ("TRY", ["TRY", "₺"]), ("JOD", ["JOD"])],
    "de": [("EUR", ["EUR", "€"]), ("TRY", ["TRY", "₺"]), ("USD", ["USD"])],
    "fr": [("XOF", ["FCFA", "XOF"]), ("TND", ["TND", "DT"]), ("MAD", ["MAD", "DH"]), ("DZD", ["DZD", "DA"]),
           ("EUR", ["EUR", "€"])],
    "ru": [("RUB", ["руб.", "₽", "RUB"]), ("UAH", ["грн", "₴", "UAH"]), ("GEL", ["GEL"]), ("USD", ["USD"])],
    "ar": [("IQD", ["IQD", "د.ع"]), ("EGP", ["EGP", "ج.م"]), ("SYP", ["SYP", "ل.س"]), ("JOD", ["JOD", "د.أ"]),
           ("TND", ["TND", "د.ت"]), ("MAD", ["MAD"]), ("DZD", ["DZD", "د.ج"]), ("USD", ["USD", "$"])],
    "ka": [("GEL", ["GEL", "₾", "ლარი"]), ("USD", ["USD", "$"]), ("EUR", ["EUR", "€"])],
}
PRECISION = {"TND": 3, "JOD": 3, "IQD": 0, "SYP": 0, "AFN": 0, "XOF": 0}
LAYOUTS = ("centred", "invoice", "till")


@dataclass
class Spec:
    """One receipt: what is printed on it and how. The first five fields are the truth."""

    supplier: str
    invoice_number: str
    date: str  # ISO
    amount: str  # Decimal as text
    currency: str  # ISO code
    lang: str
    layout: str
    seed: int
    lines: list = field(default_factory=list)  # [(cells, size, bold)] cells: [(text, align)]
    font: int = 0

    @property
    def script(self) -> str:
        return SCRIPT_OF[self.lang]

    def truth(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k in ("supplier", "invoice_number", "date", "amount",
                                                             "currency", "lang", "layout", "seed")}


def _fmt_amount(value: Decimal, places: int, lang: str, arabic_digits: bool, rng: random.Random) -> str:
    text = f"{value:,.{places}f}"  # 1,234.50
    if lang == "de":
        text = text.replace(",", "_").replace(".", ",").replace("_", ".")
    elif lang in ("fr", "ru"):
        text = text.replace(",", " ").replace(".", ",")
    elif lang == "ka":
        text = text.replace(",", " ") if rng.random() < 0.5 else text.replace(",", "")
    if arabic_digits:
        text = text.translate(ARABIC_INDIC)
    return text


def _fmt_date(d: date, lang: str, arabic_digits: bool, rng: random.Random) -> str:
    styles = ["dmy.", "dmy/"]
    if lang in MONTHS:
        styles.append("name")
    if lang in ("en", "ka", "de"):
        styles.append("iso")
    if lang == "ru":
        styles.append("dmy-short")
    style = rng.choice(styles)
    if style == "dmy.":
        text = f"{d.day:02d}.{d.month:02d}.{d.year}"
    elif style == "dmy/":
        text = f"{d.day:02d}/{d.month:02d}/{d.year}"
    elif style == "dmy-short":
        text = f"{d.day:02d}.{d.month:02d}.{d.year % 100:02d}"
    elif style == "iso":
        text = d.isoformat()
    else:
        month = MONTHS[lang][d.month - 1]
        text = {"de": f"{d.day}. {month} {d.year}", "ru": f"{d.day} {month} {d.year} г."}.get(
            lang, f"{d.day} {month} {d.year}")
    if arabic_digits:
        text = text.translate(ARABIC_DIGITS)
    return text


def _invoice_number(rng: random.Random, lang: str) -> str:
    n = rng.randint(12, 99999)
    letters = "".join(rng.choice("ABCDEFGHKLMNPRSTUVW") for _ in range(rng.randint(1, 3)))
    style = rng.choice(["L-N", "LN", "Y/N", "N", "L-Y-N"])
    year = rng.choice([2024, 2025])
    return {"L-N": f"{letters}-{n}", "LN": f"{letters}{n:05d}", "Y/N": f"{year}/{n:04d}", "N": f"{n:06d}",
            "L-Y-N": f"{letters}-{year}-{n:04d}"}[style]


def receipt(seed: int, lang: str | None = None, layout: str | None = None) -> Spec:
    """The receipt with this seed (the same seed gives the same receipt)."""
    rng = random.Random(seed)
    lang = lang or rng.choice(["en", "de", "fr", "ru", "ar", "ka"])
    layout = layout or rng.choice(LAYOUTS)
    L = LABELS[lang]
    code, shows = rng.choice(CURRENCIES[lang])
    shown = rng.choice(shows)
    places = PRECISION.get(code, 2)
    arabic_digits = lang == "ar" and rng.random() < 0.5
    day = date(2024, 1, 1) + timedelta(days=rng.randint(0, 700))
    items = []
    for _ in range(rng.randint(2, 4)):
        qty = rng.randint(1, 5)
        unit = Decimal(rng.randint(200, 90000)) / 100
        if places == 0:
            unit = Decimal(rng.randint(5, 900)) * 250
        elif places == 3:
            unit = Decimal(rng.randint(2000, 900000)) / 1000
        items.append((rng.choice(ITEMS[lang]), qty, unit, (unit * qty)))
    subtotal = sum((i[3] for i in items), Decimal(0))
    with_vat = layout == "invoice"
    vat = (subtotal * Decimal("0.18")).quantize(Decimal(1).scaleb(-places)) if with_vat else Decimal(0)
    total = subtotal + vat
    spec = Spec(supplier=rng.choice(SUPPLIERS[lang]), invoice_number=_invoice_number(rng, lang),
                date=day.isoformat(), amount=str(total), currency=code, lang=lang, layout=layout, seed=seed,
                font=rng.randrange(len(FONTS[SCRIPT_OF[lang]])))

    def money(v: Decimal) -> str:
        text = _fmt_amount(v, places, lang, arabic_digits, rng)
        if shown in ("$", "£", "€") and lang == "en":
            return f"{shown}{text}"
        return f"{text} {shown}"

    rtl = lang == "ar"
    start, end = ("right", "left") if rtl else ("left", "right")
    inv_label, date_label, total_label = rng.choice(L["invoice"]), rng.choice(L["date"]), rng.choice(L["total"])
    date_text = _fmt_date(day, lang, arabic_digits, rng)
    phone = f"{L['tel']} +{rng.randint(20, 998)} {rng.randint(10, 99)} {rng.randint(100, 999)} {rng.randint(10, 99)} {rng.randint(10, 99)}"
    head = [([(spec.supplier, "center")], 1.5, True), ([(rng.choice(ADDRESSES[lang]), "center")], 0.9, False),
            ([(phone, "center")], 0.9, False)]
    item_rows = [([(f"{name}  {qty} {L['qty']}", start), (money(v), end)], 1.0, False) for name, qty, _u, v in items]
    lines: list = []
    if layout == "centred":
        lines = head + [None, ([(f"{inv_label}: {spec.invoice_number}", start)], 1.0, False),
                        ([(f"{date_label}: {date_text}", start)], 1.0, False), None, *item_rows, None,
                        ([(total_label, start), (money(total), end)], 1.25, True)]
    elif layout == "invoice":
        lines = [([(spec.supplier, start)], 1.6, True), ([(rng.choice(ADDRESSES[lang]), start)], 0.9, False),
                 ([(phone, start)], 0.9, False), None,
                 ([(inv_label, start), (spec.invoice_number, end)], 1.0, False),
                 ([(date_label, start), (date_text, end)], 1.0, False), None, *item_rows, None,
                 ([(L["subtotal"], start), (money(subtotal), end)], 1.0, False),
                 ([(L["vat"], start), (money(vat), end)], 1.0, False),
                 ([(total_label, start), (money(total), end)], 1.3, True)]
    else:  # till slip: the number and date at the bottom, with a time
        lines = head + [None, *item_rows, None, ([(total_label, start), (money(total), end)], 1.3, True), None,
                        ([(f"{inv_label} {spec.invoice_number}", start)], 0.9, False),
                        ([(f"{date_text}  {rng.randint(8, 20):02d}:{rng.randint(0, 59):02d}", start)], 0.9, False)]
    spec.lines = lines
    return spec


@cache
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size, layout_engine=ImageFont.Layout.RAQM)


@cache
def _cmap(path: str) -> frozenset:
    from fontTools.ttLib import TTFont

    with TTFont(path, lazy=True) as font:
        return frozenset(font.getBestCmap())


def _pick(text: str, candidates, bold: bool) -> str:
    needed = {ord(ch) for ch in text if not ch.isspace()}
    for regular, heavy, folder in [*candidates, *FALLBACK]:
        path = folder + (heavy if bold else regular)
        if needed <= _cmap(path):
            return path
    return DEJAVU + "DejaVuSans.ttf"


def clean_image(spec: Spec, base: int = 30) -> Image.Image:
    """The receipt as a clean scan (white paper, black text), about 1000 px wide."""
    width = 640 if spec.layout == "till" else 1000
    if spec.layout == "till":
        base = 24
    rtl = spec.lang == "ar"
    fonts = [MONO] if spec.layout == "till" and spec.script != "arabic" else FONTS[spec.script]
    fonts = fonts[spec.font % len(fonts):] + fonts[:spec.font % len(fonts)]
    height = 80 + sum(int(base * (row[1] if row else 0.8) * 1.6) for row in spec.lines)
    img = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(img)
    y, margin = 40, 48
    for row in spec.lines:
        if row is None:
            y += int(base * 0.8 * 1.6)
            if spec.layout != "invoice":
                draw.text((width // 2, y - base // 2), "-" * 3, fill=140, anchor="mm")
            continue
        cells, scale, bold = row
        size = int(base * scale)
        for text, align in cells:
            font = _font(_pick(text, fonts, bold), size)
            kwargs = {"direction": "rtl", "language": "ar"} if rtl and any("\u0600" <= ch <= "\u06ff" for ch in text) else {}
            w = draw.textlength(text, font=font, **kwargs)
            x = {"left": margin, "right": width - margin - w, "center": (width - w) / 2}[align]
            draw.text((x, y), text, font=font, fill=0, **kwargs)
        y += int(size * 1.6)
    return img


def degrade(img: Image.Image, rng: random.Random) -> Image.Image:
    """A phone photo of the paper: on a table, tilted in perspective, shaded, blurred, noisy, JPEG'd."""
    paper = Image.merge("RGB", [img.point(lambda v, t=t: int(v * t / 255)) for t in
                                (rng.randint(235, 255), rng.randint(228, 250), rng.randint(215, 240))])
    w, h = paper.size
    pad = int(max(w, h) * 0.08)
    table = Image.new("RGB", (w + 2 * pad, h + 2 * pad), tuple(rng.randint(60, 140) for _ in range(3)))
    table.paste(paper, (pad, pad))
    tw, th = table.size
    # perspective: move each corner a little
    j = max(tw, th) * 0.035
    quad = [(rng.uniform(0, j), rng.uniform(0, j)), (rng.uniform(0, j), th - rng.uniform(0, j)),
            (tw - rng.uniform(0, j), th - rng.uniform(0, j)), (tw - rng.uniform(0, j), rng.uniform(0, j))]
    photo = table.transform((tw, th), Image.Transform.QUAD, [c for p in quad for c in p],
                            resample=Image.Resampling.BICUBIC)
    photo = photo.rotate(rng.uniform(-2.5, 2.5), resample=Image.Resampling.BICUBIC, expand=False,
                         fillcolor=(90, 90, 90))
    # a soft shadow across one side (a hand or the phone)
    shadow = Image.linear_gradient("L").resize((tw, th))
    if rng.random() < 0.5:
        shadow = shadow.rotate(90, expand=False)
    depth = rng.uniform(0.55, 0.9)
    shadow = shadow.point(lambda v: int(255 * (depth + (1 - depth) * v / 255)))
    photo = Image.composite(photo, Image.new("RGB", photo.size, (0, 0, 0)), shadow)
    photo = photo.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.3)))
    noise = Image.effect_noise((tw, th), rng.uniform(6, 14))
    photo = Image.blend(photo, Image.merge("RGB", [noise] * 3), 0.06)
    scale = rng.uniform(0.9, 1.25)
    photo = photo.resize((int(tw * scale), int(th * scale)), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    photo.save(out, "JPEG", quality=rng.randint(45, 80))
    return Image.open(io.BytesIO(out.getvalue()))


def text_pdf(spec: Spec) -> bytes:
    """The receipt as a PDF with a text layer (what accounting software exports)."""
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format="A4")
    pdf.add_page()
    rtl = spec.lang == "ar"
    fonts = FONTS[spec.script]
    if rtl:
        pdf.set_text_shaping(True)
    y = 60.0
    for row in spec.lines:
        if row is None:
            y += 14
            continue
        cells, scale, bold = row
        size = 11 * scale
        for text, align in cells:
            path = _pick(text, fonts, bold)
            family = Path(path).stem
            if family.lower() not in pdf.fonts:
                pdf.add_font(family, "", path)
            pdf.set_font(family, "", size)
            pdf.set_xy(50, y)
            pdf.cell(495, size * 1.4, text, align={"left": "L", "right": "R", "center": "C"}[align])
        y += size * 1.6
    return bytes(pdf.output())


def build(out: Path, count: int = 64, pdfs: int = 6) -> list[dict]:
    """Write `count` degraded photos (scripts in turn) and `pdfs` text PDFs into out; return the truth."""
    out.mkdir(parents=True, exist_ok=True)
    truth = []
    langs = ["en", "ru", "ar", "ka", "de", "fr", "ar", "ka"]  # each script at least a quarter of the set
    for i in range(count):
        spec = receipt(1000 + i, lang=langs[i % len(langs)], layout=LAYOUTS[(i // len(langs)) % len(LAYOUTS)])
        name = f"r{i:03d}-{spec.lang}-{spec.layout}.jpg"
        photo = degrade(clean_image(spec), random.Random(spec.seed))
        photo.save(out / name, "JPEG", quality=92)
        truth.append({"file": name, "kind": "photo", **spec.truth()})
    for i in range(pdfs):
        spec = receipt(5000 + i, lang=["en", "ru", "ar", "ka", "de", "fr"][i % 6], layout="invoice")
        name = f"p{i:03d}-{spec.lang}.pdf"
        (out / name).write_bytes(text_pdf(spec))
        truth.append({"file": name, "kind": "pdf", **spec.truth()})
    (out / "truth.json").write_text(json.dumps(truth, ensure_ascii=False, indent=1), encoding="utf-8")
    return truth


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--pdfs", type=int, default=6)
    args = parser.parse_args()
    rows = build(args.out, args.count, args.pdfs)
    print(f"{len(rows)} receipts in {args.out}", file=sys.stderr)
