"""Translated titles of enum values, built once per locale (Indico keeps `__titles__` on its enums).

    class CaseStatus(Titled, StrEnum):
        PLANNED = "planned"
        __titles__ = {"planned": _l("Planned")}

    CaseStatus.title("planned")   # "Geplant" for a German page

Templates translated the whole dictionary of labels on every call of a macro; this builds it once per
enum and locale and keeps it.
"""

from __future__ import annotations

from functools import lru_cache

from flask_babel import force_locale

from portal.i18n import locale_name


class Titled:
    """Mixin for an enum with a `__titles__` dictionary of lazy strings (value → title)."""

    @classmethod
    def titles(cls) -> dict[str, str]:
        """Every value's title in the current language (the same dictionary for the same locale)."""
        return _titles(cls, locale_name())

    @classmethod
    def title(cls, value: str | None) -> str:
        if value is None:
            return ""
        return _titles(cls, locale_name()).get(str(value), str(value))


@lru_cache(maxsize=256)
def _titles(enum: type, locale: str) -> dict[str, str]:
    with force_locale(locale):
        return {str(key): str(title) for key, title in enum.__titles__.items()}
