"""The score trend of a case's visits: the geometry of a small chart of the three reintegration scores,
drawn by templates/visits/_trend.html."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

from flask_babel import format_date
from markupsafe import Markup

from portal.i18n import locale_name
from portal.visits.models import DIMENSIONS, Visit


@dataclass
class Series:
    name: str
    color: str
    dash: str
    marker: str  # circle, square, triangle
    points: list[tuple[float, float, int]] = field(default_factory=list)

    @property
    def path(self) -> str:
        return " ".join(f"{x:.1f},{y:.1f}" for x, y, _score in self.points)

    @property
    def markers(self) -> Markup:
        """The points' shapes as SVG, written here in one go (numbers and the series' own colour only: nothing
        to escape) instead of a template loop of a dozen values per point."""
        c = self.color
        if self.marker == "circle":
            shapes = [f'<circle cx="{x}" cy="{y}" r="4.5" fill="{c}"/>' for x, y, _score in self.points]
        elif self.marker == "square":
            shapes = [f'<rect x="{x - 4}" y="{y - 4}" width="8" height="8" fill="{c}"/>' for x, y, _score in self.points]
        else:
            shapes = [f'<polygon points="{x},{y - 5} {x + 5},{y + 4} {x - 5},{y + 4}" fill="{c}"/>'
                      for x, y, _score in self.points]
        return Markup("\n".join(shapes))  # noqa: S704 - numbers and a colour of _STYLE


@dataclass
class Trend:
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    visits: list[Visit]
    xs: list[float]
    series: list[Series]
    y_ticks: list[tuple[int, float]]

    @property
    def empty(self) -> bool:
        return not self.visits

    @property
    def date_labels(self) -> list[str]:
        """Each visit's date in the locale's short format, for the chart's axis (kept per locale and date)."""
        locale = locale_name()
        return [_short_date(locale, v.visit_date) for v in self.visits]

    @property
    def grid(self) -> Markup:
        """The horizontal lines of the scores 1 to 5 with their numbers, as SVG (numbers only)."""
        x1, x2, label_x = self.left, self.width - self.right, self.left - 12
        return Markup("\n".join(  # noqa: S704 - numbers only
            f'<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="#d0d0d0" stroke-width="1"/>\n'
            f'<text x="{label_x}" y="{y + 5}" text-anchor="end" font-size="14" fill="#333">{score}</text>'
            for score, y in self.y_ticks))


@lru_cache(maxsize=4096)
def _short_date(_locale: str, day: date) -> str:
    return format_date(day, "short")  # a date, not a moment: the same in every time zone


# Colours that stay apart for the common colour-vision deficiencies; dashes and markers differ too.
_STYLE = {"score_economic": ("#0b4f8a", "", "circle"), "score_social": ("#b35900", "6 4", "square"),
          "score_psychosocial": ("#2e7d32", "2 3", "triangle")}


def trend(visits: list[Visit], last: int = 12, width: int = 360, height: int = 220) -> Trend:
    """Chart geometry of the three scores over the last visits that have scores (oldest left).

    The drawing is about as wide as a phone, so that its 13–14 px labels stay that size on a phone
    (a wider drawing is scaled down, its labels with it); the margins leave room for half a date label
    on either side."""
    scored = [v for v in visits if v.score_economic is not None]
    scored = sorted(scored, key=lambda v: (v.visit_date, v.id))[-last:]
    left, right, top, bottom = 48, 44, 12, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(scored)
    xs = [left + plot_w / 2] if n == 1 else [left + i * plot_w / (n - 1) for i in range(n)]

    def y(score: int) -> float:
        return top + (5 - score) * plot_h / 4

    series = []
    for name in DIMENSIONS:
        color, dash, marker = _STYLE[name]
        s = Series(name, color, dash, marker)
        s.points = [(x, y(getattr(v, name)), getattr(v, name)) for x, v in zip(xs, scored, strict=True)]
        series.append(s)
    return Trend(width, height, left, right, top, bottom, scored, xs, series,
                 [(score, y(score)) for score in range(1, 6)])
