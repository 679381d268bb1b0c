"""Bar charts as plain geometry for server-rendered SVG (templates/reports/_chart.html): no JavaScript, no
style attributes (the CSP allows none), colours as SVG presentation attributes.

Every chart has a title and a description for assistive technology, and the page shows the same figures
in a table next to it; colours are told apart by the legend and by the order of the bars, and each bar
carries its value in a <title> (a tooltip).

The geometry is written compactly, since a chart has up to ~200 elements: the gridlines are one path, the
bars of a series one group that sets their colour and thickness once, and each bar a path of two numbers
(a stroke as thick as the bar), its tooltip text beside it. The template escapes every text.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

# Colours that stay apart for the common colour-vision deficiencies (the visits trend uses the same).
PLANNED, SUBMITTED, APPROVED, BUDGET = "#6b6b6b", "#b35900", "#0b4f8a", "#2e7d32"


@dataclass
class Series:
    name: str
    color: str


Bars = tuple[str, str, list[tuple[str, str]]]  # colour, thickness, [(path, tooltip text), …]


@dataclass
class Chart:
    id: str
    title: str
    desc: str
    width: int
    height: int
    series: list[Series]
    grid: str  # the gridlines as one path
    end_x: str  # labels in a column, their ends at x (the row names of horizontal bars, a vertical axis)
    end_labels: list[tuple[str, str]]  # y, text
    middle_y: str  # labels in a row, centred on their x (a horizontal axis, the months)
    middle_labels: list[tuple[str, str]]  # x, text
    bars: list[Bars]  # the bars, grouped by colour
    legend_y: float = 0
    empty: bool = False  # no bars: the page says so instead of drawing an empty chart


def _n(value: float) -> str:
    """A coordinate to a tenth, without a trailing ".0"."""
    return f"{value:.1f}".removesuffix(".0")


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

    `fmt` writes a value as text (the axis labels and the tooltips). `row_colors` colours a one-series
    chart's bars row by row (the totals: budget, planned, approved…).
    """
    left, right, top, bar_h, gap = 200, 24, 28, 14, 14
    group_h = bar_h * len(series) + gap
    height = top + group_h * len(rows) + 48
    peak = _nice_max(max([v for _l, values in rows for v in values], default=0))
    plot_w = width - left - right
    bottom = _n(top + group_h * len(rows) - gap / 2)
    grid, ticks = [], []
    for i in range(5):
        x = _n(left + plot_w * i / 4)
        grid.append(f"M{x} {top - 6}V{bottom}")
        ticks.append((x, fmt(peak * i // 4)))
    names = []
    groups = [(ser.color, str(bar_h - 2), []) for ser in series]
    if row_colors:
        groups = [(color, str(bar_h - 2), []) for color in row_colors]
    middle = bar_h * len(series) // 2 + 4
    for r, (label, values) in enumerate(rows):
        y0 = top + r * group_h
        names.append((str(y0 + middle), _short(label)))
        for s, (value, ser) in enumerate(zip(values, series, strict=True)):
            w = plot_w * value / peak if value > 0 else 0
            path = f"M{left} {y0 + s * bar_h + (bar_h - 2) // 2}h{_n(w if w > 1 or not value else 1)}"
            groups[r if row_colors else s][2].append((path, f"{label} – {ser.name}: {fmt(value)}"))
    return Chart(chart_id, title, desc, width, height, series, "".join(grid), end_x=str(left - 8),
                 end_labels=names, middle_y=str(top - 10), middle_labels=ticks, bars=groups, legend_y=height - 16, empty=not rows)


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
        ticks.append((_n(y + 4), fmt(peak * i // 4)))
    thickness = max(bar_w - 1, 1)
    groups = [(ser.color, _n(thickness), []) for ser in series]
    for c, (label, values) in enumerate(columns):
        x0 = left + c * group_w + (group_w - bar_w * len(series)) / 2
        if c % label_every == 0:
            names.append((_n(x0 + bar_w * len(series) / 2), label))
        for s, (value, ser) in enumerate(zip(values, series, strict=True)):
            h = plot_h * value / peak if value > 0 else 0
            groups[s][2].append((f"M{_n(x0 + s * bar_w + thickness / 2)} {base}V{_n(base - h)}",
                                 f"{label} – {ser.name}: {fmt(value)}"))
    return Chart(chart_id, title, desc, width, height, series, "".join(grid), end_x=str(left - 6),
                 end_labels=ticks, middle_y=str(base + 16), middle_labels=names, bars=groups, legend_y=height - 12, empty=not columns)
