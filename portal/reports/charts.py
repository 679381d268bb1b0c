"""Bar charts as server-rendered SVG (templates/reports/_chart.html): no JavaScript, no style attributes
(the CSP allows none), colours as SVG presentation attributes.

Every chart has a title and a description for assistive technology, and the page shows the same figures
in a table next to it; colours are told apart by the legend and by the order of the bars, and each bar
carries its value in a <title> (a tooltip).

The gridlines, bars and labels are written here in one pass, one element a line, coordinates to a tenth,
every text escaped: a chart has up to ~200 elements of four coordinates each, and a template (or an object
per element) cost more than the rest of the dashboard.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from markupsafe import Markup, escape

# Colours that stay apart for the common colour-vision deficiencies (the visits trend uses the same).
PLANNED, SUBMITTED, APPROVED, BUDGET = "#6b6b6b", "#b35900", "#0b4f8a", "#2e7d32"


@dataclass
class Series:
    name: str
    color: str


@dataclass
class Chart:
    id: str
    title: str
    desc: str
    width: int
    height: int
    series: list[Series]
    shapes: Markup  # the gridlines, bars (their values in <title>) and labels as SVG elements
    legend_y: float = 0
    empty: bool = False  # no bars: the page says so instead of drawing an empty chart


@lru_cache(maxsize=8192)
def escaped(text: str | None) -> str:
    """`text` escaped for HTML ("" for None); kept, as the same names and labels come page after page."""
    return str(escape(text or ""))


def _line(x1: float, y1: float, x2: float, y2: float) -> str:
    return f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}"/>\n'


def _label(x: float, y: float, text: str, middle: bool = False) -> str:
    """A label, its end at x (or its middle); `text` is escaped already."""
    anchor = ' text-anchor="middle"' if middle else ""
    return f'<text x="{x:.1f}" y="{y:.1f}"{anchor}>{text}</text>\n'


def _shapes(grid: list[str], bars: list[str], labels: list[str]) -> Markup:
    """The gridlines, bars and labels, the attributes they share set once on a group."""
    return Markup(f'<g stroke="#d0d0d0" stroke-width="1">\n{"".join(grid)}</g>\n{"".join(bars)}'  # noqa: S704
                  f'<g text-anchor="end" font-size="12" fill="#1a1a1a">\n{"".join(labels)}</g>\n')


def _nice_max(value: int) -> int:
    """A round upper bound for the axis (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0:
        return 1
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return int(step * magnitude)
    return int(10 * magnitude)


def _short(text: str, n: int = 26) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


WIDTH = 720  # every chart is drawn at this width and scaled to the page, so their text has one size


def hbar_chart(chart_id: str, title: str, desc: str, rows: list[tuple[str, list[int]]], series: list[Series],
               fmt: Callable[[int], str], width: int = WIDTH, row_colors: list[str] | None = None) -> Chart:
    """Horizontal grouped bars: one group per row (a country, an organisation…), one bar per series.

    `fmt` writes a value as HTML-safe text (escaped already: the same figures are kept per locale).
    `row_colors` colours a one-series chart's bars row by row (the totals: budget, planned, approved…).
    """
    left, right, top, bar_h, gap = 200, 24, 28, 14, 14
    group_h = bar_h * len(series) + gap
    height = top + group_h * len(rows) + 48
    peak = _nice_max(max([v for _l, values in rows for v in values], default=0))
    plot_w = width - left - right
    grid, labels, bars = [], [], []
    for i in range(5):
        x = left + plot_w * i / 4
        grid.append(_line(x, top - 6, x, top + group_h * len(rows) - gap / 2))
        labels.append(_label(x, top - 10, fmt(peak * i // 4), middle=True))
    names = [(escaped(ser.name), escaped(ser.color)) for ser in series]
    colors = [escaped(c) for c in row_colors] if row_colors else None
    # Bars and row labels are written inline (~170 a page): x, height and the label's x are the same for all.
    rect, height_text, label_x = f'<rect x="{left}" y="', f'" height="{bar_h - 2}" fill="', f"{left - 8:.1f}"
    offsets = [s * bar_h for s in range(len(series))]
    middle = bar_h * len(series) / 2 + 4
    for r, (label, values) in enumerate(rows):
        y0 = top + r * group_h
        text = escaped(label)
        labels.append(f'<text x="{label_x}" y="{y0 + middle:.1f}">{escaped(_short(label))}</text>\n')
        row_color = colors[r] if colors else None
        for value, (name, color), dy in zip(values, names, offsets, strict=True):
            w = plot_w * value / peak if value > 0 else 0
            bars.append(f'{rect}{y0 + dy}" width="{w if w > 1 or not value else 1:.1f}{height_text}'
                        f'{row_color or color}"><title>{text} – {name}: {fmt(value)}</title></rect>\n')
    return Chart(chart_id, title, desc, width, height, series, _shapes(grid, bars, labels), legend_y=height - 16,
                 empty=not bars)


def vbar_chart(chart_id: str, title: str, desc: str, columns: list[tuple[str, list[int]]], series: list[Series],
               fmt: Callable[[int], str], height: int = 280) -> Chart:
    """Vertical grouped bars over time: one group per month, one bar per series; `fmt` as for hbar_chart."""
    left, right, top, bottom = 80, 16, 16, 64
    width = WIDTH
    group_w = (width - left - right) / max(1, len(columns))
    bar_w = min(24.0, (group_w - 4) / len(series))
    label_every = max(1, math.ceil(60 / group_w))  # a label needs about 60 units
    peak = _nice_max(max([v for _l, values in columns for v in values], default=0))
    plot_h = height - top - bottom
    grid, labels, bars = [], [], []
    for i in range(5):
        y = top + plot_h - plot_h * i / 4
        grid.append(_line(left, y, width - right, y))
        labels.append(_label(left - 6, y + 4, fmt(peak * i // 4)))
    names = [(escaped(ser.name), escaped(ser.color)) for ser in series]
    width_text = f"{max(bar_w - 1, 1):.1f}"
    for c, (label, values) in enumerate(columns):
        x0 = left + c * group_w + (group_w - bar_w * len(series)) / 2
        text = escaped(label)
        if c % label_every == 0:
            labels.append(_label(x0 + bar_w * len(series) / 2, top + plot_h + 16, text, middle=True))
        for s, (value, (name, color)) in enumerate(zip(values, names, strict=True)):
            h = plot_h * value / peak if value > 0 else 0
            bars.append(f'<rect x="{x0 + s * bar_w:.1f}" y="{top + plot_h - h:.1f}" width="{width_text}" '
                        f'height="{h:.1f}" fill="{color}"><title>{text} – {name}: {fmt(value)}</title></rect>\n')
    return Chart(chart_id, title, desc, width, height, series, _shapes(grid, bars, labels), legend_y=height - 12,
                 empty=not bars)
