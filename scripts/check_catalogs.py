"""Fail when a translation catalog has an untranslated or fuzzy entry (every string is translated)."""

import sys
from pathlib import Path

from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
problems = []
for po in sorted(ROOT.glob("translations/*/LC_MESSAGES/messages.po")):
    with po.open("rb") as fh:
        catalog = read_po(fh)
    for msg in catalog:
        if not msg.id:
            continue
        strings = msg.string if isinstance(msg.string, tuple) else (msg.string,)
        if msg.fuzzy or not all(strings):
            problems.append(f"{po.parent.parent.name}: {msg.id if isinstance(msg.id, str) else msg.id[0]!r}"
                            f"{' (fuzzy)' if msg.fuzzy else ''}")
if problems:
    print(f"{len(problems)} catalog entries are untranslated or fuzzy:", *problems[:40], sep="\n  ")
    sys.exit(1)
