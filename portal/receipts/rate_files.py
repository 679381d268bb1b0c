"""Reading a file of monthly exchange rates: the Commission's InforEuro export (XLSX or CSV, one row per
country with its currency's ISO code and the rate per EUR) or the portal's plain CSV
(`currency,month,units_per_eur[,source]`). Pure parsing: no database, no storage.

Tolerant of what exports vary in: the header row is found by its names wherever it is (title lines above
it are fine), `,` `;` or tab between cells, a decimal comma, UTF-8 or Windows-1252 text. The month is
taken from a month column, else from a title line, else from the file name (`inforeuro-2024-03.xlsx`,
`exdata202403.csv`, `March 2024.csv`), else from the month the user chose. Every problem names its line.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from babel.dates import get_month_names
from babel.numbers import is_currency
from flask_babel import gettext as _

from portal.receipts.errors import ReceiptError
from portal.receipts.money import first_of_month, rate_to_micro

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_TYPE = "text/csv"
MAX_ROWS = 5000  # InforEuro lists about 170 countries
HEADER_SEARCH_ROWS = 30

# Header names, compared lower-case with punctuation as spaces.
CODE_NAMES = {"iso code", "code", "iso", "iso a3 code", "iso a3", "isoa3code", "iso 4217", "iso 4217 code",
              "currency code", "iso currency code", "currency iso code", "iso alpha 3", "alpha 3 code"}
CURRENCY_NAMES = {"currency", "currency name", "curr"}
RATE_NAMES = {"value", "rate", "units per eur", "rate per eur", "euro rate", "exchange rate", "amount",
              "units for 1 eur", "accounting rate", "conversion rate", "value eur", "rate eur"}
MONTH_NAMES = {"month", "period", "rate month", "date", "valid from", "validity"}
SOURCE_NAMES = {"source"}


@dataclass(frozen=True)
class RateRow:
    line: int
    currency: str
    month: date
    micro: int
    source: str


@dataclass(frozen=True)
class RateFile:
    kind: str  # "xlsx" or "csv"
    content_type: str
    rows: list[RateRow]


def _norm(value) -> str:
    return " ".join(re.sub(r"[^0-9a-z]+", " ", str(value or "").lower()).split())


def _is_code(name: str) -> bool:
    return name in CODE_NAMES or ("code" in name.split() and not {"num", "numeric", "a2", "country"} & set(
        name.split()))


def _is_rate(name: str) -> bool:
    return name in RATE_NAMES or ("month" not in name and (name.startswith(("rate", "value"))
                                                          or "per eur" in name))


@dataclass
class _Columns:
    code: int
    rate: int
    month: int | None = None
    source: int | None = None


def _header(cells: list) -> _Columns | None:
    names = [_norm(c) for c in cells]
    code = next((i for i, n in enumerate(names) if _is_code(n)), None)
    if code is None:  # the plain CSV names the code "currency"
        code = next((i for i, n in enumerate(names) if n in CURRENCY_NAMES), None)
    rate = next((i for i, n in enumerate(names) if _is_rate(n) and i != code), None)
    if code is None or rate is None:
        return None
    return _Columns(code=code, rate=rate,
                    month=next((i for i, n in enumerate(names) if n in MONTH_NAMES), None),
                    source=next((i for i, n in enumerate(names) if n in SOURCE_NAMES), None))


# Months ---------------------------------------------------------------------------------------------

def _month_words() -> dict[str, int]:
    words: dict[str, int] = {}
    for locale in ("en", "de", "fr"):
        for width in ("wide", "abbreviated"):
            for number, name in get_month_names(width, locale=locale).items():
                words[_norm(name)] = number
    return words


_MONTH_WORDS = _month_words()
_ISO = re.compile(r"(?<!\d)(20\d\d|19\d\d)[-_./ ]?(0[1-9]|1[0-2])(?!\d)")
_EUROPEAN = re.compile(r"(?<!\d)(0?[1-9]|1[0-2])[-_./ ](20\d\d|19\d\d)(?!\d)")
_WORDS = re.compile(r"([^\W\d_]+)[\s_.-]*(20\d\d|19\d\d)(?!\d)", re.UNICODE)


def month_in_text(text: str) -> date | None:
    """The month a title line or file name speaks of: 2024-03, 202403, 03/2024, March 2024, mars 2024."""
    if not text:
        return None
    if m := _ISO.search(text):
        return date(int(m.group(1)), int(m.group(2)), 1)
    if m := _EUROPEAN.search(text):
        return date(int(m.group(2)), int(m.group(1)), 1)
    for m in _WORDS.finditer(text):
        number = _MONTH_WORDS.get(_norm(m.group(1)))
        if number:
            return date(int(m.group(2)), number, 1)
    return None


def _month_cell(value) -> date | None:
    if isinstance(value, datetime):
        return first_of_month(value.date())
    if isinstance(value, date):
        return first_of_month(value)
    text = str(value or "").strip()
    if not text:
        return None
    try:
        return first_of_month(date.fromisoformat(text if len(text) != 7 else text + "-01"))
    except ValueError:
        return month_in_text(text)


# Numbers --------------------------------------------------------------------------------------------

def _rate_cell(value) -> Decimal | None:
    """The rate as a Decimal: numbers as they are, text with a decimal point or comma and any grouping."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        exact = Decimal(repr(value))
        rounded = exact.quantize(Decimal("0.000001"))
        # A spreadsheet's binary float of 2.9123 may read 2.9122999999: six places are what is stored.
        return rounded if abs(exact - rounded) < Decimal("1e-9") else exact
    text = re.sub(r"[\s\u00a0\u202f']", "", str(value))
    if "," in text and "." in text:  # the last one is the decimal separator, the other groups digits
        if text.rfind(",") > text.rfind("."):
            text = text.replace(".", "").replace(",", ".")
        else:
            text = text.replace(",", "")
    else:
        text = text.replace(",", ".")
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


# Reading the cells ----------------------------------------------------------------------------------

def _not_readable() -> ReceiptError:
    return ReceiptError(_("The selected file must be a CSV file or an Excel workbook (XLSX)"), "file")


def _xlsx_sheets(raw: bytes) -> list[list[tuple[int, list]]]:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, ValueError, OSError):
        raise _not_readable() from None
    try:
        sheets = []
        for sheet in workbook.worksheets:
            rows = []
            for number, row in enumerate(sheet.iter_rows(values_only=True, max_col=40), start=1):
                if number > MAX_ROWS:
                    raise ReceiptError(_("The file has more than %(count)d lines.", count=MAX_ROWS), "file")
                rows.append((number, list(row)))
            sheets.append(rows)
        return sheets
    finally:
        workbook.close()


def _text(raw: bytes) -> str:
    if b"\x00" in raw[:4096]:
        raise _not_readable()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")  # an export from Excel on Windows


def _csv_rows(text: str, delimiter: str) -> list[tuple[int, list]]:
    rows = []
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        for row in reader:
            if reader.line_num > MAX_ROWS:
                raise ReceiptError(_("The file has more than %(count)d lines.", count=MAX_ROWS), "file")
            rows.append((reader.line_num, [c.strip() for c in row]))
    except csv.Error:
        raise ReceiptError(_("Line %(line)d: %(reason)s", line=reader.line_num,
                             reason=_("the line cannot be read as CSV")), "file") from None
    return rows


def _csv_tables(text: str) -> list[list[tuple[int, list]]]:
    """The text split at each candidate delimiter; the one whose header is found (or, without a header, the
    most frequent in the first line) comes first."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    order = sorted((";", "\t", ","), key=lambda d: -first.count(d))
    return [_csv_rows(text, d) for d in order]


# The file -------------------------------------------------------------------------------------------

def read(raw: bytes, filename: str, chosen_month: date | None) -> RateFile:
    """Every rate in the file, checked; ReceiptError (on "file" or "month") at the first problem."""
    is_xlsx = raw[:4] == b"PK\x03\x04"
    tables = _xlsx_sheets(raw) if is_xlsx else _csv_tables(_text(raw))
    kind, content_type = ("xlsx", XLSX_TYPE) if is_xlsx else ("csv", CSV_TYPE)
    for rows in tables:
        for index, (_line, cells) in enumerate(rows[:HEADER_SEARCH_ROWS]):
            columns = _header(cells)
            if columns is not None:
                title = " ".join(str(c) for _n, before in rows[:index] for c in before if c not in (None, ""))
                return RateFile(kind, content_type, _table(rows[index + 1:], columns, title, filename,
                                                           chosen_month))
    if is_xlsx:
        raise ReceiptError(_("The file has no header row with a currency code and a rate column."), "file")
    return RateFile(kind, content_type, _positional(tables[0]))


def _file_month(title: str, filename: str, chosen: date | None) -> date | None:
    found = month_in_text(title) or month_in_text(filename)
    if found and chosen and first_of_month(chosen) != found:
        raise ReceiptError(_("The file is for %(file)s but you chose %(chosen)s: choose the file's month or "
                             "leave the month empty.", file=found.strftime("%Y-%m"),
                             chosen=chosen.strftime("%Y-%m")), "month")
    return found or (first_of_month(chosen) if chosen else None)


def _cell(cells: list, index: int | None):
    return cells[index] if index is not None and index < len(cells) else None


def _table(rows: list[tuple[int, list]], columns: _Columns, title: str, filename: str,
           chosen: date | None) -> list[RateRow]:
    month = None if columns.month is not None else _file_month(title, filename, chosen)
    if columns.month is None and month is None:
        raise ReceiptError(_("The file does not say which month its rates are for: choose the month."), "month")
    out: list[RateRow] = []
    seen: dict[tuple[str, date], int] = {}
    for line, cells in rows:
        code, value = _cell(cells, columns.code), _cell(cells, columns.rate)
        if str(code or "").strip() == "" and str(value if value is not None else "").strip() == "":
            continue  # a blank line, a note under the table
        row_month = month or _month_cell(_cell(cells, columns.month)) or (first_of_month(chosen) if chosen else None)
        source = str(_cell(cells, columns.source) or "").strip() or "InforEuro"
        row = _row(line, code, value, row_month, source)
        if row is not None:
            _add(out, seen, row)
    if not out:
        raise ReceiptError(_("The file has no rates."), "file")
    return out


def _positional(rows: list[tuple[int, list]]) -> list[RateRow]:
    """The plain CSV without a header: currency, month, rate, source (optional)."""
    out: list[RateRow] = []
    seen: dict[tuple[str, date], int] = {}
    for line, cells in rows:
        if not any(cells):
            continue
        if len(cells) < 3:
            raise _line_error(line, _("expected currency, month, rate"))
        month = _month_cell(cells[1])
        if month is None:
            raise _line_error(line, _("%(value)s is not a month like 2024-03", value=cells[1]))
        row = _row(line, cells[0], cells[2], month, (cells[3] if len(cells) > 3 else "") or "InforEuro")
        if row is not None:
            _add(out, seen, row)
    if not out:
        raise ReceiptError(_("The file has no rates."), "file")
    return out


def _line_error(line: int, reason: str) -> ReceiptError:
    return ReceiptError(_("Line %(line)d: %(reason)s", line=line, reason=reason), "file")


def _row(line: int, code, value, month: date | None, source: str) -> RateRow | None:
    currency = str(code or "").strip().upper()
    if currency == "EUR":
        return None  # the euro countries, listed in some exports at 1
    if not re.fullmatch(r"[A-Z]{3}", currency) or not is_currency(currency):
        raise _line_error(line, _("%(code)s is not a currency code", code=str(code or "").strip() or "–"))
    if month is None:
        raise _line_error(line, _("the month is missing"))
    number = _rate_cell(value)
    if number is None:
        raise _line_error(line, _("the rate %(value)s is not a number",
                                  value=str(value if value is not None else "").strip() or "–"))
    try:
        micro = rate_to_micro(number)
    except ReceiptError as exc:
        raise _line_error(line, str(exc)) from None
    return RateRow(line=line, currency=currency, month=month, micro=micro, source=source[:100])


def _add(out: list[RateRow], seen: dict[tuple[str, date], int], row: RateRow) -> None:
    """Several countries share a currency (XOF, USD): the same rate again is fine, a different one is not."""
    key = (row.currency, row.month)
    if key in seen:
        if out[seen[key]].micro != row.micro:
            raise _line_error(row.line, _("%(code)s is listed again with a different rate", code=row.currency))
        return
    seen[key] = len(out)
    out.append(row)
