"""Bar charts as server-rendered SVG (templates/reports/_chart.html): no JavaScript, no style attributes
(the CSP allows none), colours as SVG presentation attributes.

Every chart has a title and a description for assistive technology, and the page shows the same figures
in a table next to it; colours are told apart by the legend and by the order of the bars, and each bar
carries its value in a <title> (a tooltip).

The gridlines, bars and labels are written here in one pass, one element a line, coordinates to a tenth,
every text escaped: a chart has up to ~200 elements, and a template (an escape call per value, or an object
per element) cost more than the rest of the dashboard. They are written compactly: the gridlines are one
path, the bars of a series one group that sets their colour and thickness once, each bar a path of two
numbers (a stroke as thick as the bar) with its tooltip, and the labels of a column or a row a group that
places them (each label then needs one coordinate).
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


def _n(value: float) -> str:
    """A coordinate to a tenth, without a trailing ".0"."""
    return f"{value:.1f}".removesuffix(".0")


def _shapes(grid: list[str], bars: list[str], end_labels: tuple[int, list[str]],
            middle_labels: tuple[int, list[str]]) -> Markup:
    """The gridlines (as one path), the bars (grouped already) and the labels: those whose end is at one x
    (row names, a vertical axis) and those centred in one row at y (a horizontal axis, the months)."""
    (end_x, ends), (middle_y, middles) = end_labels, middle_labels
    return Markup(f'<path d="{"".join(grid)}" fill="none" stroke="#d0d0d0"/>\n{"".join(bars)}'  # noqa: S704
                  f'<g font-size="12" fill="#1a1a1a">\n<g text-anchor="end" transform="translate({end_x} 0)">\n'
                  f'{"".join(ends)}</g>\n<g text-anchor="middle" transform="translate(0 {middle_y})">\n'
                  f'{"".join(middles)}</g>\n</g>\n')


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
    bottom = _n(top + group_h * len(rows) - gap / 2)
    grid, ticks, names = [], [], []
    for i in range(5):
        x = _n(left + plot_w * i / 4)
        grid.append(f"M{x} {top - 6}V{bottom}")
        ticks.append(f'<text x="{x}">{fmt(peak * i // 4)}</text>\n')
    colors = [escaped(c) for c in row_colors] if row_colors else [escaped(ser.color) for ser in series]
    groups: list[list[str]] = [[] for _c in colors]
    names_ = [escaped(ser.name) for ser in series]
    middle = bar_h * len(series) // 2 + 4
    for r, (label, values) in enumerate(rows):
        y0 = top + r * group_h
        text = escaped(label)
        names.append(f'<text y="{y0 + middle}">{escaped(_short(label))}</text>\n')
        for s, (value, name) in enumerate(zip(values, names_, strict=True)):
            w = plot_w * value / peak if value > 0 else 0
            groups[r if row_colors else s].append(
                f'<path d="M{left} {y0 + s * bar_h + 6}h{w if w > 1 or not value else 1:.1f}">'
                f'<title>{text} – {name}: {fmt(value)}</title></path>\n')
    bars = [f'<g stroke="{color}" stroke-width="{bar_h - 2}">\n{"".join(paths)}</g>\n'
            for color, paths in zip(colors, groups, strict=True)]
    return Chart(chart_id, title, desc, width, height, series,
                 _shapes(grid, bars, (left - 8, names), (top - 10, ticks)), legend_y=height - 16, empty=not rows)


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
    base = top + plot_h
    grid, ticks, names = [], [], []
    for i in range(5):
        y = base - plot_h * i / 4
        grid.append(f"M{left} {_n(y)}H{width - right}")
        ticks.append(f'<text y="{_n(y + 4)}">{fmt(peak * i // 4)}</text>\n')
    thickness = max(bar_w - 1, 1)
    names_ = [escaped(ser.name) for ser in series]
    groups: list[list[str]] = [[] for _s in series]
    for c, (label, values) in enumerate(columns):
        x0 = left + c * group_w + (group_w - bar_w * len(series)) / 2
        text = escaped(label)
        if c % label_every == 0:
            names.append(f'<text x="{_n(x0 + bar_w * len(series) / 2)}">{text}</text>\n')
        for s, (value, name) in enumerate(zip(values, names_, strict=True)):
            h = plot_h * value / peak if value > 0 else 0
            groups[s].append(f'<path d="M{x0 + s * bar_w + thickness / 2:.1f} {base}V{base - h:.1f}">'
                             f'<title>{text} – {name}: {fmt(value)}</title></path>\n')
    bars = [f'<g stroke="{escaped(ser.color)}" stroke-width="{_n(thickness)}">\n{"".join(paths)}</g>\n'
            for ser, paths in zip(series, groups, strict=True)]
    return Chart(chart_id, title, desc, width, height, series,
                 _shapes(grid, bars, (left - 6, ticks), (base + 16, names)), legend_y=height - 12,
                 empty=not columns)
