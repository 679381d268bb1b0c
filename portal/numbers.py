"""Numbers as people type them: one parser for every amount, count and score field.

static/js/checks.js holds the same rules for the browser's checks before sending; change both together.

Accepted:
- digits 0–9, Arabic-Indic ٠–٩ and Eastern Arabic-Indic (Persian) ۰–۹, in any mix;
- the Arabic decimal separator ٫ and thousands separator ٬;
- spaces (also no-break and narrow no-break spaces), "." and "," as thousands separators between
  groups of exactly three digits (the first group has one to three);
- "." or "," as the decimal separator.

Which of "." and "," is the decimal separator:
1. both appear: the last one is the decimal separator, the other groups thousands ("1.250,50", "1,250.50");
2. one of them appears more than once: it groups thousands ("1.250.000");
3. a space, ٬ or ٫ is there as well: the single "." or "," is the other role ("1 250,50" is 1250.50);
4. it appears once and is NOT followed by exactly three digits, or the digits before it are only zeros or
   more than three: it is the decimal separator ("120,5", "120.50", "0,250", "12500,000");
5. it appears once, followed by exactly three digits, after one to three digits ("1,250", "2.500"): this
   could be 1.25 or 1250 (three-decimal currencies such as the Jordanian or Iraqi dinar exist), so the
   user's language decides when its conventions name that character (German "1.250" is 1250 and "1,250"
   is 1.25; English and Arabic the other way round), and the value is refused as ambiguous otherwise
   (French and Russian group with spaces, so "1.250" is ambiguous there). A whole-number field takes
   the thousands reading, the only one that gives a whole number; a coordinate the decimal one.
Refused: letters (also NaN, Infinity, exponents), several decimal separators, badly placed groups,
more than MAX_CHARS characters.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

MAX_CHARS = 40
MAX_DIGITS = 24

_DIGITS = {**{0x0660 + i: str(i) for i in range(10)}, **{0x06F0 + i: str(i) for i in range(10)}}
ARABIC_DECIMAL = "\u066b"
ARABIC_GROUP = "\u066c"
SPACES = " \u00a0\u202f\u2009\u2007"
MINUS = "-\u2212"
_SHAPE = re.compile(r"^[0-9., \u066b\u066c]+$")


def ascii_digits(text: str) -> str:
    """`text` with every decimal digit of any script (Arabic-Indic, Persian, Devanagari, fullwidth …) as 0–9."""
    import unicodedata

    return "".join(str(unicodedata.decimal(ch)) if not ch.isascii() and unicodedata.decimal(ch, None) is not None
                   else ch for ch in text)


class NumberProblem(ValueError):
    """Why a typed number was refused: `kind` is "wrong" (not a number) or "ambiguous"."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


def _groups_ok(integer: str, group_chars: str) -> bool:
    if not any(ch in integer for ch in group_chars):
        return integer.isdigit() or integer == ""
    parts = re.split("[" + re.escape(group_chars) + "]", integer)
    return (1 <= len(parts[0]) <= 3 and parts[0].isdigit()
            and all(len(p) == 3 and p.isdigit() for p in parts[1:]))


def parse_number(text: str, decimal_hint: str | None = None, group_hint: str | None = None,
                 lone: str | None = None) -> Decimal | None:
    """The Decimal `text` stands for, None when empty; NumberProblem when wrong or ambiguous.

    `decimal_hint`/`group_hint`: the user's language's decimal and group symbols (rule 5 above);
    `lone`: how a field reads a lone separator before three digits regardless of the language: "group" for
    whole-number fields (the only reading that gives a whole number), "decimal" for fields whose values
    never reach a thousand (coordinates); None asks the language, else the value is ambiguous.
    """
    if text is None:
        return None
    if len(text) > MAX_CHARS:
        raise NumberProblem("wrong")
    s = text.translate(_DIGITS).strip(SPACES + "\t\r\n")
    if not s:
        return None
    sign = ""
    if s[0] in MINUS + "+":
        sign = "-" if s[0] in MINUS else ""
        s = s[1:].lstrip(SPACES)
    s = "".join(" " if ch in SPACES else ch for ch in s)
    if not s or not _SHAPE.match(s) or not any(ch.isdigit() for ch in s):
        raise NumberProblem("wrong")

    dots, commas = s.count("."), s.count(",")
    other_marks = any(ch in s for ch in " " + ARABIC_GROUP + ARABIC_DECIMAL)
    decimal = None  # the character that separates the fraction
    if s.count(ARABIC_DECIMAL) > 1:
        raise NumberProblem("wrong")
    if ARABIC_DECIMAL in s:
        decimal = ARABIC_DECIMAL
    elif dots and commas:
        decimal = "." if s.rfind(".") > s.rfind(",") else ","
    elif dots > 1 or commas > 1:
        decimal = None
    elif dots or commas:
        mark = "." if dots else ","
        before, after = s.split(mark)
        three = len(after) == 3 and after.isdigit() and before.isdigit() and 1 <= len(before) <= 3
        if other_marks or not three or before.strip("0") == "":
            decimal = mark
        elif lone == "group" or (lone is None and group_hint == mark):
            decimal = None
        elif lone == "decimal" or decimal_hint == mark:
            decimal = mark
        else:
            raise NumberProblem("ambiguous")
    if decimal is not None:
        if s.count(decimal) != 1:
            raise NumberProblem("wrong")
        integer, fraction = s.split(decimal)
    else:
        integer, fraction = s, ""
    group_chars = " " + ARABIC_GROUP + "".join(c for c in ".," if c != decimal)
    if not fraction.isdigit() and fraction != "":
        raise NumberProblem("wrong")
    if not _groups_ok(integer, group_chars) or (integer == "" and fraction == ""):
        raise NumberProblem("wrong")
    digits = re.sub(r"\D", "", integer)
    if len(digits) + len(fraction) > MAX_DIGITS:
        raise NumberProblem("wrong")
    try:
        return Decimal(f"{sign}{digits or '0'}" + (f".{fraction}" if fraction else ""))
    except InvalidOperation:  # pragma: no cover - the shape checks above leave only digits
        raise NumberProblem("wrong") from None
