"""The fields of a receipt found in its recognised text: supplier, invoice number, date, total, currency.

`extract(page)` returns {field: {"value": …, "box": [left, top, width, height] | None, "line": n}} for the
fields it found (a field it did not find is absent). Values: supplier and invoice number as text, the
date as ISO text, the amount as a Decimal's text (parsed by portal/numbers.py), the currency as its ISO
code. Rules, in short:

- supplier: the first line near the top with three letters or more that is no label, date, amount,
  address or phone line (two lines when the first is short and the second continues the name);
- invoice number: the token after an invoice label ("Invoice No.", "Rechnung Nr.", "Facture N°", "Счёт №",
  "فاتورة رقم", "ინვოისი №", "#", …) that has a digit;
- date: day-month-year with . / - (the order of the receipts' countries), year-month-day, month names in
  en/de/fr/ru/ar, Arabic-Indic digits; the one on a line labelled as the date first;
- total: the amount on the last line labelled total (not subtotal), else the largest amount;
- currency: ISO codes, symbols and local abbreviations (an Arabic one also with its dot lost or its first
  letter doubled, as Tesseract reads them); the one on the total's line first, else the most frequent.

A label's value in another column of the same row is found along the page's slant (`slope`: a photo taken
at a slant lifts one end of a row).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from datetime import date
from decimal import Decimal

from portal.numbers import NumberProblem, parse_number
from portal.ocr.engine import Line, Page, is_rtl, union

_DIGITS = {**{0x0660 + i: str(i) for i in range(10)}, **{0x06F0 + i: str(i) for i in range(10)}}


def western(text: str) -> str:
    """Arabic-Indic and Persian digits as 0-9, the Arabic separators as . and , (same length)."""
    return text.translate(_DIGITS).replace("\u066b", ",").replace("\u066c", ".")


# Currencies ------------------------------------------------------------------------------------------

# The currencies of the return countries and the project (demo data, README), with what receipts print.
CURRENCY_SIGNS: dict[str, tuple[str, ...]] = {
    "EUR": ("€", "EUR", "Euro", "евро"),
    "USD": ("$", "USD", "US$", "долл"),
    "GBP": ("£", "GBP"),
    "GEL": ("₾", "GEL", "ლარი", "лари", "Lari"),
    "RUB": ("₽", "RUB", "руб", "р."),
    "UAH": ("₴", "UAH", "грн"),
    "TRY": ("₺", "TRY", "TL"),
    "TND": ("TND", "DT", "د.ت", "دينار تونسي"),
    "MAD": ("MAD", "DH", "Dhs", "د.م", "درهم"),
    "DZD": ("DZD", "DA", "د.ج", "دينار جزائري"),
    "IQD": ("IQD", "د.ع", "دينار عراقي"),
    "EGP": ("EGP", "LE", "ج.م", "جنيه"),
    "SYP": ("SYP", "ل.س", "ليرة"),
    "JOD": ("JOD", "JD", "د.أ", "د.ا", "دينار أردني"),
    "AFN": ("AFN", "؋", "Afs"),
    "XOF": ("XOF", "FCFA", "F CFA", "CFA"),
    "LBP": ("LBP", "ل.ل"),
    "SDG": ("SDG",),
    "PKR": ("PKR", "Rs"),
    "IRR": ("IRR", "ریال"),
    "AMD": ("AMD", "֏"),
    "AZN": ("AZN", "₼"),
}
_SIGN_RE: list[tuple[re.Pattern, str]] = []
for _code, _signs in CURRENCY_SIGNS.items():
    for _sign in _signs:
        if len(_sign) == 1 and not _sign.isalpha():
            pattern = re.escape(_sign)
        elif re.fullmatch("[\u0621-\u064a]\\.[\u0621-\u064a]", _sign):
            # an Arabic abbreviation (د.ع) as Tesseract reads it: its dot lost, or its first letter doubled
            # (or an alef after it) before the dot
            first, last = _sign[0], _sign[2]
            pattern = (f"(?<![^\\W\\d_.])(?:{first}\\s?{last}|{first}[{first}ا]?\\s?\\.\\s?{last})"
                       "(?![^\\W\\d_]|\\.)")
        else:
            pattern = r"(?<![^\W\d_])" + re.escape(_sign).replace(r"\ ", r"\s?") + r"(?![^\W\d_])"
        _SIGN_RE.append((re.compile(pattern, re.IGNORECASE if _sign.isascii() and len(_sign) > 2 else 0), _code))


def currencies_in(text: str) -> list[tuple[str, int, int]]:
    """(code, start, end) of each currency mention in text."""
    found = []
    for pattern, code in _SIGN_RE:
        for m in pattern.finditer(text):
            found.append((code, m.start(), m.end()))
    return found


# Amounts ---------------------------------------------------------------------------------------------

_AMOUNT_RE = re.compile(r"(?<![\w.,])[-−]?\d{1,3}(?:[ \u00a0\u202f.,'’]\d{3})*(?:[.,]\d{1,3})?(?![\w])"
                        r"|(?<![\w.,])\d+(?:[.,]\d{1,3})?(?![\w])")


def parse_amount(token: str, places: int | None = None) -> Decimal | None:
    """An amount as printed ("1.234,50", "1 234.50", "١٬٢٣٤٫٥٠", "12,500"); None if it is no amount."""
    token = western(token).replace("'", " ").replace("’", " ").replace("−", "-").strip()
    hint = None
    if places == 3:
        hint = "decimal"
    elif places is not None:
        hint = "group"
    try:
        value = parse_number(token, lone=hint)
    except NumberProblem:
        try:
            value = parse_number(token, lone="group")
        except NumberProblem:
            return None
    return value


def amounts_in(text: str, places: int | None = None) -> list[tuple[Decimal, int, int]]:
    text = western(text)
    out = []
    for m in _AMOUNT_RE.finditer(text):
        value = parse_amount(m.group(0), places)
        if value is not None:
            out.append((value, m.start(), m.end()))
    return out


# Labels ----------------------------------------------------------------------------------------------

TOTAL_RE = re.compile(r"(?<!sub)(?<!sous-)(?<!zwischen)\b(grand\s*total|total|summe|gesamt\w*|betrag|montant|net\s+[àa]\s+payer"
                      r"|[àa]\s+payer|итог\w*|всего|к\s+оплате|сумма)\b|المجموع|الإجمالي|الاجمالي|المبلغ|"
                      r"სულ|ჯამი", re.IGNORECASE)
SUBTOTAL_RE = re.compile(r"sub\s*-?total|sous-total|zwischensumme|без\s+ндс|المجموع\s+الفرعي|ქვეჯამი"
                         r"|\b(vat|tva|mwst|ндс|tax)\b|الضريبة|დღგ", re.IGNORECASE)
INVOICE_RE = re.compile(r"(invoice|receipt|bill|rechnung\w*|beleg\w*|quittung|facture|re[çc]u|ticket|сч[её]т\w*"
                        r"|чек|накладная|فاتورة|الفاتورة|إيصال|ايصال|ინვოის\w*|ანგარიშ\w*|ჩეკი)"
                        r"(?:[\s\-]*(?:no\.?|nr\.?|n[°º o]\.?|num(?:ber|éro)?|#|№|nummer|номер|رقم)?)\s*[:.#№]?\s*"
                        r"|(?:^|\s)(?:no\.?|nr\.?|n°|№|#|رقم|ne)(?![^\W\d_])\s*[:.]?\s*", re.IGNORECASE)  # "Ne": № as Tesseract reads it
DATE_LABEL_RE = re.compile(r"date|datum|дата|تاريخ|التاريخ|თარიღ", re.IGNORECASE)
SKIP_SUPPLIER_RE = re.compile(r"tel\b|tél|тел|phone|fax|هاتف|ტელ|www\.|@|http|str\.|straße|strasse|street|rue\b"
                              r"|avenue|ул\.|пр\.|شارع|გამზ|inn\b|инн|vat\s*id|ust-?id", re.IGNORECASE)
_TOKEN_RE = re.compile(r"[A-Za-z0-9\u0660-\u0669][A-Za-z0-9\u0660-\u0669\-/._]*")


# Dates -----------------------------------------------------------------------------------------------

MONTH_NAMES: dict[str, int] = {}
for _lang_months in (
    "january february march april may june july august september october november december",
    "jan feb mar apr may jun jul aug sep oct nov dec",
    "januar februar märz april mai juni juli august september oktober november dezember",
    "jänner feber maerz",
    "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
    "января февраля марта апреля мая июня июля августа сентября октября ноября декабря",
    "январь февраль март апрель май июнь июль август сентябрь октябрь ноябрь декабрь",
    "يناير فبراير مارس أبريل مايو يونيو يوليو أغسطس سبتمبر أكتوبر نوفمبر ديسمبر",
    "كانون٢ شباط آذار نيسان أيار حزيران تموز آب أيلول تشرين١ تشرين٢ كانون١",
    "იანვარი თებერვალი მარტი აპრილი მაისი ივნისი ივლისი აგვისტო სექტემბერი ოქტომბერი ნოემბერი დეკემბერი",
):
    for _i, _name in enumerate(_lang_months.split()):
        MONTH_NAMES.setdefault(_name, _i + 1 if len(_lang_months.split()) == 12 else {0: 1, 1: 2, 2: 3}[_i])

_NUMERIC_DATE = re.compile(r"(?<!\d)(\d{1,2})\s?([./\-])\s?(\d{1,2})\s?\2\s?(\d{4}|\d{2})(?!\d)")
_ISO_DATE = re.compile(r"(?<!\d)(\d{4})\s?([./\-])\s?(\d{1,2})\s?\2\s?(\d{1,2})(?!\d)")
_NAMED_DATE = re.compile(r"(?<!\d)(\d{1,2})\.?\s+([^\W\d_]+\.?)\s+(\d{4})(?!\d)")
_NAMED_DATE_US = re.compile(r"\b([A-Za-z]+)\.?\s+(\d{1,2}),?\s+(\d{4})(?!\d)")


def _year(text: str) -> int:
    year = int(text)
    return year + 2000 if year < 100 else year


def _ok(y: int, m: int, d: int) -> date | None:
    if not 1990 <= y <= 2100:
        return None
    try:
        return date(y, m, d)
    except ValueError:
        return None


def dates_in(text: str) -> list[tuple[date, int, int]]:
    """Every date in text with its position: day-month-year first, then year-month-day and month names."""
    text = western(text)
    found: list[tuple[date, int, int]] = []
    taken: list[range] = []

    def add(d: date | None, m: re.Match) -> None:
        if d is not None and not any(m.start() in r for r in taken):
            found.append((d, m.start(), m.end()))
            taken.append(range(m.start(), m.end()))

    for m in _ISO_DATE.finditer(text):
        add(_ok(int(m.group(1)), int(m.group(3)), int(m.group(4))), m)
    for m in _NUMERIC_DATE.finditer(text):
        day, month, year = int(m.group(1)), int(m.group(3)), _year(m.group(4))
        d = _ok(year, month, day) or _ok(year, day, month)  # day first; a US date only when it cannot be
        add(d, m)
    for m in _NAMED_DATE.finditer(text):
        month = MONTH_NAMES.get(m.group(2).lower().rstrip("."))
        if month:
            add(_ok(int(m.group(3)), month, int(m.group(1))), m)
    for m in _NAMED_DATE_US.finditer(text):
        month = MONTH_NAMES.get(m.group(1).lower())
        if month:
            add(_ok(int(m.group(3)), month, int(m.group(2))), m)
    return sorted(found, key=lambda f: f[1])


# Extraction ------------------------------------------------------------------------------------------

def _box(line: Line, start: int, end: int) -> list[int] | None:
    box = line.box_of(start, end)
    return list(box) if box else None


def _field(value, line: Line | None, index: int | None, start: int = 0, end: int | None = None) -> dict:
    box = None
    if line is not None:
        box = _box(line, start, len(line.text) if end is None else end)
    return {"value": value, "box": box, "line": index}


def _letters(text: str) -> int:
    return sum(1 for ch in text if ch.isalpha())


# Russian and Ukrainian legal forms, which Tesseract reads with zeros and a three for the letters О and З
_LEGAL_FORMS = {"000": "ООО", "0A0": "ОАО", "3A0": "ЗАО", "0OO": "ООО", "O0O": "ООО", "00O": "ООО", "TOB": "ТОВ"}


def _legal_form(word: str, line: str) -> str:
    if word in _LEGAL_FORMS and any("\u0400" <= ch <= "\u04ff" for ch in line):
        return _LEGAL_FORMS[word]
    return word


def _supplier(lines: list[Line]) -> dict | None:
    for i, line in enumerate(lines[:8]):
        text = line.text.strip(" .:-_|*=~")
        if _letters(text) < 3 or SKIP_SUPPLIER_RE.search(text) or INVOICE_RE.match(text):
            continue
        if DATE_LABEL_RE.search(text) or TOTAL_RE.search(text) or dates_in(text):
            continue
        letters = _letters(text)
        if letters / max(1, len(text.replace(" ", ""))) < 0.6:
            continue
        # Words of low confidence at a line's ends are mostly noise (the table's edge, a logo).
        words = [w for w in line.words if _letters(w.text) or w.conf >= 50]
        while words and words[-1].conf < 30:
            words.pop()
        while words and words[0].conf < 30:
            words.pop(0)
        if not words:
            continue
        value = " ".join(_legal_form(w.text, line.text) for w in words).strip(" .:-_|*=~")
        box = union(w.box for w in words)
        return {"value": value, "box": list(box) if box else None, "line": i}
    return None


def _number_token(text: str) -> tuple[str, int, int] | None:
    """The first token of text with a digit that is no date: (token, start, end)."""
    for t in _TOKEN_RE.finditer(text):
        token = t.group(0).strip("._-/")
        if not any(ch.isdigit() for ch in western(token)):
            continue
        if dates_in(token) or len(token) < 2:
            return None
        return western(token), t.start(), t.end()
    return None


def _invoice_number(lines: list[Line]) -> dict | None:
    candidates = []
    for i, line in enumerate(lines):
        text = line.text
        for m in INVOICE_RE.finditer(text):
            strong = m.lastindex is not None and m.group(1) is not None  # "Invoice No." over a bare "No."
            found = _number_token(text[m.end():])  # after the label, on this line
            if found is not None:
                token, start, end = found
                candidates.append((0 if strong else 2, i, token, line, m.end() + start, m.end() + end))
                break
            if strong and is_rtl(text):  # a right-to-left line that Tesseract gave number first
                found = _number_token(text[:m.start()])
                if found is not None:
                    token, start, end = found
                    candidates.append((0, i, token, line, start, end))
                    break
            # in another column of the same row (after the label at most a misread № such as "Ne", "M")
            if strong and _number_token(text[m.end():]) is None and len(text[m.end():].strip()) <= 3:
                for j in _same_row(lines, i):
                    other = lines[j].text
                    if INVOICE_RE.search(other) or DATE_LABEL_RE.search(other):
                        continue
                    found = _number_token(other)
                    if found is not None:
                        token, start, end = found
                        candidates.append((1, j, token, lines[j], start, end))
                        break
    if not candidates:
        return None
    candidates.sort(key=lambda c: (c[0], c[1]))
    _rank, i, value, line, start, end = candidates[0]
    return _field(value, line, i, start, end)


def _date(lines: list[Line]) -> dict | None:
    best = None
    for i, line in enumerate(lines):
        for d, start, end in dates_in(line.text):
            rank = 0 if DATE_LABEL_RE.search(line.text) else 1
            if best is None or rank < best[0]:
                best = (rank, d, line, i, start, end)
    if best is None:
        return None
    _rank, d, line, i, start, end = best
    return _field(d.isoformat(), line, i, start, end)


def _currency(lines: list[Line], total_line: int | None) -> dict | None:
    counts: Counter = Counter()
    first: dict[str, tuple] = {}
    for i, line in enumerate(lines):
        for code, start, end in currencies_in(line.text):
            weight = 3 if i == total_line else 1
            counts[code] += weight
            first.setdefault(code, (line, i, start, end))
            if i == total_line:
                first[code] = (line, i, start, end)
    if not counts:
        return None
    code = counts.most_common(1)[0][0]
    line, i, start, end = first[code]
    return _field(code, line, i, start, end)


def _places(currency: str | None) -> int | None:
    if not currency:
        return None
    from babel.numbers import get_currency_precision

    try:
        return int(get_currency_precision(currency))
    except Exception:  # noqa: BLE001
        return None


def _is_phone_or_id(text: str) -> bool:
    return bool(SKIP_SUPPLIER_RE.search(text)) or bool(INVOICE_RE.search(text) and not TOTAL_RE.search(text))


def _total(lines: list[Line], places: int | None) -> dict | None:
    labelled = []
    for i, line in enumerate(lines):
        text = western(line.text)
        if not TOTAL_RE.search(text) or SUBTOTAL_RE.search(text):
            continue
        amounts = [a for a in amounts_in(text, places) if a[0] > 0 and not _in_date(text, a)]
        if not amounts:
            # the amount in another column of the same row (Tesseract may read columns as blocks of their
            # own, right-to-left tables), else on the next line (narrow slips)
            for j in [*_same_row(lines, i), i + 1]:
                if j >= len(lines) or j == i or (j == i + 1 and TOTAL_RE.search(lines[j].text)):
                    continue
                other = western(lines[j].text)
                found = [a for a in amounts_in(other, places) if a[0] > 0 and not _in_date(other, a)]
                if found:
                    value, start, end = max(found, key=lambda a: a[0])
                    labelled.append((value, lines[j], j, start, end))
                    break
            continue
        if amounts:
            value, start, end = max(amounts, key=lambda a: a[0])
            labelled.append((value, line, i, start, end))
    if labelled:
        value, line, i, start, end = max(labelled, key=lambda t: (t[0], t[2]))
        return _field(str(value), line, i, start, end)
    best = None
    for i, line in enumerate(lines):
        text = western(line.text)
        if _is_phone_or_id(text):
            continue
        for value, start, end in amounts_in(text, places):
            if _in_date(text, (value, start, end)):
                continue
            has_fraction = bool(re.search(r"[.,]\d{1,3}$", text[start:end]))
            if best is None or (has_fraction, value) > (best[0], best[1]):
                best = (has_fraction, value, line, i, start, end)
    if best is None:
        return None
    _f, value, line, i, start, end = best
    return _field(str(value), line, i, start, end)


def slope(lines: list[Line]) -> float:
    """How far a row of the page drops per pixel to the right (a photo taken at a slant): the median over
    the lines of three words or more of the straight line through their words' middles."""
    slopes = []
    for line in lines:
        points = [(w.box[0] + w.box[2] / 2, w.box[1] + w.box[3] / 2) for w in line.words if w.box]
        if len(points) < 3:
            continue
        mx, my = sum(x for x, _y in points) / len(points), sum(y for _x, y in points) / len(points)
        spread = sum((x - mx) ** 2 for x, _y in points)
        if spread:
            slopes.append(sum((x - mx) * (y - my) for x, y in points) / spread)
    if not slopes:
        return 0.0
    return max(-0.1, min(0.1, sorted(slopes)[len(slopes) // 2]))


def _same_row(lines: list[Line], i: int) -> list[int]:
    """The other lines whose words sit on the same row of the page as line i's (the row followed at the
    page's slant: a photo taken at a slant lifts one end of a row)."""
    box = union(w.box for w in lines[i].words)
    if box is None or not box[3]:
        return []
    drop = slope(lines)
    centre, middle = box[0] + box[2] / 2, box[1] + box[3] / 2
    rows = []
    for j, line in enumerate(lines):
        other = union(w.box for w in line.words)
        if j == i or other is None:
            continue
        expected = middle + drop * (other[0] + other[2] / 2 - centre)
        distance = abs(other[1] + other[3] / 2 - expected)
        if distance <= box[3] * 1.0:
            rows.append((distance, j))
    return [j for _d, j in sorted(rows)]


def _in_date(text: str, amount: tuple) -> bool:
    _v, start, end = amount
    return any(s <= start < e or s < end <= e for _d, s, e in dates_in(text))


# The currency a page in a script of one country is in when no sign was read (Tesseract's Georgian model
# has no ₾: it reads ¢, « or nothing).
SCRIPT_CURRENCY = {"Georgian": "GEL"}


def extract(page: Page) -> dict[str, dict]:
    """The fields found on the page (see the module's docstring)."""
    lines = [line for line in page.lines if line.text.strip()]
    for line in lines:
        for w in line.words:
            w.text = unicodedata.normalize("NFC", w.text)
    fields: dict[str, dict] = {}
    supplier = _supplier(lines)
    if supplier:
        fields["supplier"] = supplier
    number = _invoice_number(lines)
    if number:
        fields["invoice_number"] = number
    day = _date(lines)
    if day:
        fields["invoice_date"] = day
    # the currency first (it tells how many decimals an amount has), then the total, then the currency
    # again, preferring the one on the total's line
    currency = _currency(lines, None)
    total = _total(lines, _places(currency["value"] if currency else None))
    if total:
        fields["amount"] = total
        currency = _currency(lines, total["line"]) or currency
    if currency is None and SCRIPT_CURRENCY.get(page.script):
        currency = {"value": SCRIPT_CURRENCY[page.script], "box": None, "line": None}
    if currency:
        fields["currency"] = currency
    return fields


def as_values(fields: dict[str, dict]) -> dict[str, str]:
    """Just the values: {"supplier": "…", "invoice_number": "…", "invoice_date": "2024-03-20", …}."""
    return {name: f["value"] for name, f in fields.items()}
