"""CSV files for spreadsheets: every export writes through to_csv, so no cell runs as a formula.

A spreadsheet runs a cell as a formula when it starts with = + - @ (or a tab or carriage return before
one). German Excel splits a CSV line on ";", others on "," or tab, so "ACME;=1+1" becomes two cells, the
second a formula: every part after a separator is checked, not only the start of the field. A part that
would start a formula gets a "'" in front (shown as text), and every field is quoted.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from itertools import chain

FORMULA_START = frozenset("=+-@")
_SEPARATED = re.compile(r"([;,\t])")


def safe_text(text: str) -> str:
    """The text with a "'" before every separator-delimited part that a spreadsheet would run."""
    parts = _SEPARATED.split(text)
    for i in range(0, len(parts), 2):  # the odd places hold the separators themselves
        part = parts[i]
        if part[:1] in ("\r", "\n") or part.lstrip()[:1] in FORMULA_START:
            parts[i] = "'" + part
    return "".join(parts)


def cell(value) -> str:
    """One field: numbers as plain decimals with a point, dates in ISO 8601, text checked."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    return safe_text(str(value))


def to_csv(header: list[str], rows: Iterable[Iterable]) -> bytes:
    """UTF-8 with a byte order mark (spreadsheets then read the accents right), comma-separated, CRLF,
    every field quoted and passed through cell()."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    for values in chain([header], rows):
        writer.writerow([cell(v) for v in values])
    return out.getvalue().encode("utf-8-sig")
