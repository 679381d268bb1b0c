"""Matching keys of a receipt's supplier and invoice number: what stays when the way it was typed is removed.

Both are stored on the receipt (receipts.supplier_norm, receipts.invoice_norm, indexed) and kept in step by
the model's insert/update hooks; the near-duplicate check (portal/receipts/neardup.py) compares them.
- invoice number: case, spaces, dashes, slashes, dots and other punctuation, leading zeros of each run of
  digits, digits of any script (Arabic-Indic …), a leading "No."/"Nr."/"№"/"#", and Cyrillic letters
  that look like Latin ones ("АВ-12" typed on a Russian keyboard) do not count: "INV-0077" = "inv 77".
- supplier: case, accents, punctuation and spaces, and legal forms at either end (LLC, Ltd, GmbH, SARL,
  ООО, შპს, ش.م.م …) do not count: "Tbilisi Tools Ltd." = "TBILISI-TOOLS".
"""

from __future__ import annotations

import re
import unicodedata

from portal.numbers import ascii_digits

# Cyrillic (and Greek) capitals and small letters drawn like Latin ones, after casefolding.
_LOOKALIKE = str.maketrans("авсеһікмнорстухѕјԁɡοαβεικνορτυχ", "abcehikmhopctyxsjdgoabeiknoptux")
_LEADING_ZEROS = re.compile(r"(?<!\d)0+(?=\d)")
_NUMBER_WORD = re.compile(r"^(?:no|nr|num|n°|#)\s*[.:]?\s*(?=\d)")
_NOT_ALNUM = re.compile(r"[\W_]+")

# Legal forms, as the words they become once punctuation is gone ("S.A.R.L." → s a r l).
LEGAL_FORMS = [tuple(form.split()) for form in (
    "llc", "l l c", "ltd", "limited", "co ltd", "co", "company", "inc", "corp", "corporation", "plc", "llp",
    "gmbh", "ag", "kg", "ug", "ohg", "e k", "ek", "gbr", "mbh",
    "sarl", "s a r l", "sarlu", "suarl", "sa", "s a", "sas", "s a s", "sasu", "snc", "eurl", "gie", "ets",
    "ооо", "ooo", "оао", "зао", "пао", "ао", "ип", "тоо", "тов", "чп", "одо",
    "შპს", "სს", "იმ", "ი მ",
    "ش م م", "ش ذ م م", "ذ م م", "ش م ل", "ش م ع", "ش م ع م", "شركة", "مؤسسة",
    "bv", "b v", "nv", "srl", "s r l", "spa", "ltda", "sl", "s l", "as", "ab", "oy", "pty", "pvt", "pty ltd",
)]
# Arabic letters written two ways (alef maksura and yeh, Persian yeh and kaf, teh marbuta and heh).
_ARABIC_VARIANTS = str.maketrans("ىیکة", "ييكه")


def _plain(text: str) -> str:
    """NFKC, digits as 0–9, casefolded, accents and Arabic vowel marks and tatweel removed."""
    text = ascii_digits(unicodedata.normalize("NFKC", text or "")).casefold()
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn" and ch != "\u0640")
    return unicodedata.normalize("NFKC", kept).translate(_ARABIC_VARIANTS)


LEGAL_FORMS = sorted({tuple(_plain(word) for word in form) for form in LEGAL_FORMS}, key=len, reverse=True)


def invoice_key(number: str) -> str:
    """The invoice number without the ways of typing it; "" when nothing of it is left."""
    text = _plain(number).translate(_LOOKALIKE).strip()
    text = _NUMBER_WORD.sub("", text)
    text = _LEADING_ZEROS.sub("", text)
    return _NOT_ALNUM.sub("", text)[:100]


def supplier_key(name: str) -> str:
    """The supplier's name without case, accents, punctuation, spaces and legal forms at either end."""
    words = [w for w in _NOT_ALNUM.split(_plain(name)) if w]
    changed = True
    while changed and len(words) > 1:
        changed = False
        for form in LEGAL_FORMS:
            n = len(form)
            if len(words) > n and tuple(words[-n:]) == form:
                words, changed = words[:-n], True
                break
            if len(words) > n and tuple(words[:n]) == form:
                words, changed = words[n:], True
                break
    return "".join(words)[:200]
