"""Near-duplicates, measured: `make bench-neardup` (about a minute; no services needed).

Builds a set of receipt pictures with Pillow and DejaVu fonts — suppliers in Latin, Cyrillic, Arabic and
Georgian script, each with a layout of its own (paper size, header box, columns, fonts), several purchases
from the same supplier (the hard cases: the same layout, other goods and amounts) — photographs each one
like a phone would (on a table, turned up to ±3°, scaled, cropped, lighter or darker, blurred, JPEG), and
adds altered copies of some: photographed again and typed again ("INV-0077" as "inv 77", "Ltd" left out),
typed with a slip, or sent as the supplier's PDF instead of the photo. Then it runs the portal's matcher
(portal.receipts.neardup: the field rules and the fingerprint with its THRESHOLD) on every pair and prints
recall and precision (a pair is a true duplicate when both are the same purchase), per rule and per kind
of copy, and the figures for other thresholds. `--save DIR` writes the pictures.
"""

from __future__ import annotations

import argparse
import io
import itertools
import random
import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from portal.receipts import neardup  # noqa: E402

FONTS = Path("/usr/share/fonts/truetype/dejavu")
GOODS = ["Welding machine", "Safety gloves", "Sewing machine", "Fabric 10 m", "Flour 50 kg", "Oven", "Drill",
         "Cable 20 m", "Paint 5 l", "Fridge", "Chairs x4", "Table", "Scissors", "Thread", "Hammer", "Ladder",
         "Tyres x2", "Water pump", "Seeds", "Fertiliser", "Мука 50 кг", "Швейная машина", "ماكينة خياطة",
         "ثلاجة", "სახერხი", "საღებავი"]
# (name on the receipt, how a partner may type it again, invoice number style, currency)
SUPPLIERS = [
    ("Tbilisi Tools Ltd", "TBILISI TOOLS", "INV-{n:04d}", "GEL"),
    ("შპს ბათუმის ბაზარი", "ბათუმის ბაზარი", "{n}/2024", "GEL"),
    ("შპს ქუთაისი ტექნიკა", "ქუთაისი-ტექნიკა", "KT-{n:05d}", "GEL"),
    ("Rustavi Steel LLC", "rustavi steel", "RS {n:04d}", "GEL"),
    ("Dakar Outils SARL", "DAKAR OUTILS S.A.R.L.", "F-2024-{n:03d}", "XOF"),
    ("Quincaillerie Thiès", "quincaillerie thies", "QT/{n:05d}", "XOF"),
    ("Boulangerie Touba SA", "Boulangerie Touba", "N° {n}", "XOF"),
    ("ООО «Ромашка»", "Ромашка", "№ {n:06d}", "RUB"),
    ("ООО Техносила", "ТЕХНОСИЛА ООО", "ТС-{n:04d}", "RUB"),
    ("ИП Сидоров А.В.", "ип сидоров а в", "{n:05d}", "RUB"),
    ("مؤسسة النور ش.م.م", "مؤسسة النور", "{n}", "JOD"),
    ("شركة الأمل للتجارة", "شركه الامل للتجارة", "A-{n:04d}", "JOD"),
    ("Amman Hardware Co.", "AMMAN HARDWARE", "AH{n:05d}", "JOD"),
    ("Kabul Electric", "kabul electric", "KE-{n}", "USD"),
    ("Herat Textiles Ltd.", "Herat Textiles", "HT/{n:04d}/24", "USD"),
    ("Erbil Building Supply", "ERBIL BUILDING SUPPLY LLC", "EBS-{n:05d}", "USD"),
    ("Almaty Agro TOO", "almaty agro", "AA-{n:04d}", "EUR"),
    ("Bishkek Motors", "bishkek motors", "BM {n:04d}", "EUR"),
    ("Yerevan Print GmbH", "Yerevan Print", "YP-{n:03d}", "EUR"),
    ("Pristina Mobile", "PRISTINA MOBILE", "PM{n:06d}", "EUR"),
]
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


@dataclass
class Layout:
    size: tuple[int, int]
    paper: tuple[int, int, int]
    ink: tuple[int, int, int]
    header_box: bool
    centred: bool
    title: int
    body: int
    margin: int
    top: int
    rows_boxed: bool
    shade: bool
    mono: bool


@dataclass
class Doc:
    key: int  # the purchase: copies share it
    kind: str  # original, photo, retyped, slip, image, pdf
    supplier: str
    number: str
    day: date
    amount_minor: int
    currency: str
    image: Image.Image
    phash: int = 0

    def facts(self) -> neardup.Facts:
        return neardup.Facts.typed(self.supplier, self.number, self.amount_minor, self.currency, self.day)


def font(rng_or_name, size: int, bold: bool = False, mono: bool = False) -> ImageFont.FreeTypeFont:
    name = "DejaVuSansMono" if mono else "DejaVuSans"
    return ImageFont.truetype(str(FONTS / f"{name}{'-Bold' if bold else ''}.ttf"), size)


def make_layout(rng: random.Random) -> Layout:
    width = rng.choice([380, 420, 480, 600, 700])
    return Layout(size=(width, int(width * rng.uniform(1.0, 1.9))),
                  paper=rng.choice([(255, 255, 255), (250, 248, 235), (245, 245, 250)]),
                  ink=rng.choice([(0, 0, 0), (20, 20, 110), (60, 20, 20)]), header_box=rng.random() < 0.5,
                  centred=rng.random() < 0.5, title=rng.randint(22, 34), body=rng.randint(15, 21),
                  margin=rng.randint(20, 60), top=rng.randint(20, 140), rows_boxed=rng.random() < 0.3,
                  shade=rng.random() < 0.4, mono=rng.random() < 0.5)


def money_text(minor: int, currency: str) -> str:
    return f"{minor // 100}.{minor % 100:02d} {currency}"


def render(layout: Layout, supplier: str, number: str, day: date, items, amount_minor: int, currency: str):
    w, h = layout.size
    im = Image.new("RGB", layout.size, layout.paper)
    d = ImageDraw.Draw(im)
    m, y = layout.margin, layout.top
    title, body = font(None, layout.title, bold=True), font(None, layout.body, mono=layout.mono)
    x, anchor = (w // 2, "mt") if layout.centred else (m + 10, "lt")
    if layout.header_box:
        d.rectangle((m, y - 10, w - m, y + layout.title + 45), outline=layout.ink, width=3)
    d.text((x, y), supplier, font=title, fill=layout.ink, anchor=anchor)
    y += layout.title + 15
    d.text((x, y), "Main street 12, tel. 555 0101", font=font(None, 14), fill=layout.ink, anchor=anchor)
    y += 60
    d.text((m, y), number, font=body, fill=layout.ink)
    d.text((w - m, y), day.strftime("%d.%m.%Y"), font=body, fill=layout.ink, anchor="ra")
    y += 45
    if layout.shade:
        d.rectangle((m, y, w - m, y + 30), fill=(200, 200, 200))
    d.line((m, y + 32, w - m, y + 32), fill=layout.ink, width=2)
    y += 45
    for name, price in items:
        if layout.rows_boxed:
            d.rectangle((m, y - 4, w - m, y + layout.body + 8), outline=(130, 130, 150))
        d.text((m + 6, y), name, font=body, fill=layout.ink)
        d.text((w - m - 6, y), money_text(price, currency), font=body, fill=layout.ink, anchor="ra")
        y += layout.body + 16
    d.line((m, y + 5, w - m, y + 5), fill=layout.ink, width=2)
    d.text((w - m, y + 20), "TOTAL " + money_text(amount_minor, currency), font=font(None, layout.title - 4, bold=True),
           fill=layout.ink, anchor="ra")
    return im


def photograph(paper: Image.Image, rng: random.Random) -> Image.Image:
    """A phone photo of the paper: on a table, turned, scaled, cropped, lit, blurred, JPEG."""
    w, h = paper.size
    margin = int(max(w, h) * rng.uniform(0.03, 0.10))
    table = rng.choice([(90, 70, 50), (150, 150, 150), (60, 60, 70), (120, 100, 80), (40, 90, 60)])
    canvas = Image.new("RGB", (w + 2 * margin, h + 2 * margin), table)
    canvas.paste(paper, (margin, margin))
    canvas = canvas.rotate(rng.uniform(-3, 3), resample=Image.Resampling.BICUBIC, expand=True, fillcolor=table)
    scale = rng.uniform(0.6, 1.3)
    canvas = canvas.resize((int(canvas.width * scale), int(canvas.height * scale)), Image.Resampling.BILINEAR)
    cw, ch = canvas.size
    cut = [rng.uniform(0, 0.03) for _ in range(4)]
    canvas = canvas.crop((int(cw * cut[0]), int(ch * cut[1]), int(cw * (1 - cut[2])), int(ch * (1 - cut[3]))))
    canvas = ImageEnhance.Brightness(canvas).enhance(rng.uniform(0.75, 1.2))
    canvas = ImageEnhance.Contrast(canvas).enhance(rng.uniform(0.8, 1.15))
    canvas = canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.5)))
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=rng.randint(35, 85))
    return Image.open(io.BytesIO(out.getvalue())).convert("RGB")


def slip(text: str, rng: random.Random) -> str:
    """One typing slip: a character dropped or two neighbours swapped."""
    digits = [i for i, ch in enumerate(text) if ch.isdigit()]
    i = rng.choice(digits[:-1] or digits)
    if rng.random() < 0.5 and i + 1 < len(text):
        return text[:i] + text[i + 1] + text[i] + text[i + 2:]
    return text[:i] + text[i + 1:]


def retype(number: str, rng: random.Random) -> str:
    """The same number as another person types it: case, separators, leading zeros, Arabic-Indic digits."""
    options = [number.lower(), number.replace("-", " ").replace("/", " "), number.replace("-", "").lower(),
               "".join(ch for ch in number if ch.isalnum()), number.lstrip("№N° ").lstrip("0") or number,
               number.translate(ARABIC_INDIC)]
    import re

    options.append(re.sub(r"0+(\d)", r"\1", number))
    choices = [o for o in options if o != number]
    return rng.choice(choices) if choices else number.lower()


def build(seed: int = 16) -> list[Doc]:
    rng = random.Random(seed)
    layouts = [make_layout(rng) for _ in SUPPLIERS]
    docs: list[Doc] = []
    purchases = []
    for key in range(72):
        s = key % len(SUPPLIERS) if key < len(SUPPLIERS) * 2 else rng.randrange(len(SUPPLIERS))
        name, typed_again, style, currency = SUPPLIERS[s]
        items = [(rng.choice(GOODS), rng.randint(5, 900) * 100) for _ in range(rng.randint(1, 6))]
        total = sum(p for _n, p in items)
        day = date(2024, 1, 1) + timedelta(days=rng.randint(0, 330))
        if key >= 66:  # the same supplier and amount a month later (a rent, a monthly delivery): not a duplicate
            earlier = purchases[rng.randrange(len(SUPPLIERS))]
            s, name, typed_again, style, currency = earlier[0], *SUPPLIERS[earlier[0]]
            items, total, day = earlier[2], earlier[3], earlier[4] + timedelta(days=rng.randint(20, 40))
        number = style.format(n=rng.randint(1, 9999))
        if s == 10:
            number = number.translate(ARABIC_INDIC) if rng.random() < 0.5 else number
        paper = render(layouts[s], name, number, day, items, total, currency)
        purchases.append((s, paper, items, total, day, number))
        docs.append(Doc(key, "original", name, number, day, total, currency, photograph(paper, rng)))
    kinds = ["photo", "retyped", "slip", "image", "pdf"]
    for key in rng.sample(range(66), 44):
        s, paper, items, total, day, number = purchases[key]
        name, typed_again, _style, currency = SUPPLIERS[s]
        for kind in rng.sample(kinds, 2 if rng.random() < 0.25 else 1):
            image = photograph(paper, rng)
            supplier, typed, amount, when = name, number, total, day
            if kind == "retyped":
                supplier, typed = typed_again, retype(number, rng)
            elif kind == "slip":
                supplier, typed = typed_again, slip(number, rng)
            elif kind == "image":  # typed anew with slips everywhere: only the picture can tell
                supplier, typed = typed_again + " shop", slip(number, rng)
                amount, when = total + rng.choice([-1, 1]) * rng.randint(3, 9) * total // 100, day + timedelta(days=9)
            elif kind == "pdf":  # the supplier's PDF instead of the photo: another picture, the same invoice
                image = render(make_layout(rng), name, number, day, items, total, currency)
                supplier, typed = typed_again, retype(number, rng)
            docs.append(Doc(key, kind, supplier, typed, when, amount, currency, image))
    return docs


def measure(docs: list[Doc], threshold: int) -> dict:
    pairs = list(itertools.combinations(range(len(docs)), 2))
    tp = fp = fn = 0
    by_rule = {"fields": 0, "image": 0}
    missed_kinds: dict[str, int] = {}
    kinds_total: dict[str, int] = {}
    facts = [doc.facts() for doc in docs]
    for i, j in pairs:
        a, b = docs[i], docs[j]
        fields = neardup.field_reasons(facts[i], facts[j])
        image = neardup.hamming(a.phash, b.phash) <= threshold
        said, true = bool(fields) or image, a.key == b.key
        kind = b.kind if b.kind != "original" else a.kind
        if true:
            kinds_total[kind] = kinds_total.get(kind, 0) + 1
        if said and true:
            tp += 1
            by_rule["fields"] += bool(fields)
            by_rule["image"] += image
        elif said:
            fp += 1
        elif true:
            fn += 1
            missed_kinds[kind] = missed_kinds.get(kind, 0) + 1
    recall = tp / (tp + fn) if tp + fn else 1.0
    precision = tp / (tp + fp) if tp + fp else 1.0
    return {"tp": tp, "fp": fp, "fn": fn, "recall": recall, "precision": precision, "by_rule": by_rule,
            "missed": missed_kinds, "kinds": kinds_total}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--save", type=Path, help="write the pictures to this directory")
    args = parser.parse_args()
    started = time.perf_counter()
    docs = build(args.seed)
    built = time.perf_counter()
    for doc in docs:
        doc.phash = neardup.fingerprint(doc.image)
    hashed = time.perf_counter()
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        for n, doc in enumerate(docs):
            doc.image.save(args.save / f"{n:03d}-p{doc.key:02d}-{doc.kind}.jpg", quality=85)
    originals = sum(doc.kind == "original" for doc in docs)
    print(f"{len(docs)} receipt pictures: {originals} purchases ({len(SUPPLIERS)} suppliers, several from the "
          f"same one), {len(docs) - originals} altered copies; {len(docs) * (len(docs) - 1) // 2} pairs")
    print(f"built in {built - started:.1f} s; fingerprints {1000 * (hashed - built) / len(docs):.0f} ms each")
    print("\nthreshold  recall  precision  (true pairs found / pairs said wrongly)")
    for threshold in (0, 1, 2, 3, 4, 6, 8):
        r = measure(docs, threshold)
        mark = "  <- THRESHOLD" if threshold == neardup.THRESHOLD else ""
        print(f"{threshold:9d}  {r['recall']:6.1%}  {r['precision']:9.1%}  ({r['tp']}, {r['fp']}){mark}")
    r = measure(docs, neardup.THRESHOLD)
    fields_only = measure(docs, -1)
    print(f"\nwith THRESHOLD = {neardup.THRESHOLD}: recall {r['recall']:.1%}, precision {r['precision']:.1%} "
          f"({r['tp']} of {r['tp'] + r['fn']} duplicate pairs found, {r['fp']} pairs flagged wrongly)")
    print(f"typed fields alone: recall {fields_only['recall']:.1%}, precision {fields_only['precision']:.1%}")
    print(f"found by the fields {r['by_rule']['fields']}, by the picture {r['by_rule']['image']} (both count)")
    for kind, total in sorted(r["kinds"].items()):
        missed = r["missed"].get(kind, 0)
        print(f"  {kind:9s} {total - missed:3d} of {total:3d} found")
    ok = r["recall"] >= 0.9 and r["precision"] >= 0.9
    print("\ntarget recall >= 90 % at precision >= 90 %:", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
