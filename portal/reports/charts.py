"""Bar charts as plain geometry for server-rendered SVG (templates/reports/_chart.html): no JavaScript,
no style attributes (the CSP allows none), colours as SVG presentation attributes.

Every chart has a title and a description for assistive technology, and the page shows the same figures
in a table next to it; colours are told apart by the legend and by the order of the bars, and each bar
carries its value in a <title> (a tooltip).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from markupsafe import Markup, escape

# Colours that stay apart for the common colour-vision deficiencies (the visits trend uses the same).
PLANNED, SUBMITTED, APPROVED, BUDGET = "#6b6b6b", "#b35900", "#0b4f8a", "#2e7d32"


@dataclass
class Series:
    name: str
    color: str


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    color: str
    title: str


@dataclass
class Label:
    x: float
    y: float
    text: str
    anchor: str = "end"


@dataclass
class Chart:
    id: str
    title: str
    desc: str
    width: int
    height: int
    series: list[Series]
    bars: list[Bar] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    gridlines: list[tuple[float, float, float, float]] = field(default_factory=list)  # x1, y1, x2, y2
    legend_y: float = 0

    @property
    def empty(self) -> bool:
        return not self.bars

    def shapes(self) -> Markup:
        """The gridlines, bars and labels as SVG elements, one a line, coordinates to a tenth. Written here
        rather than in the template: a chart has up to ~200 elements of four coordinates each, and a Jinja
        format filter per coordinate cost more than the rest of the dashboard's rows."""
        out = [f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="#d0d0d0" stroke-width="1"/>\n'
               for x1, y1, x2, y2 in self.gridlines]
        out += [f'<rect x="{b.x:.1f}" y="{b.y:.1f}" width="{b.width:.1f}" height="{b.height:.1f}" '
                f'fill="{escape(b.color)}"><title>{escape(b.title)}</title></rect>\n' for b in self.bars]
        out += [f'<text x="{lb.x:.1f}" y="{lb.y:.1f}" text-anchor="{escape(lb.anchor)}" font-size="12" '
                f'fill="#1a1a1a">{escape(lb.text)}</text>\n' for lb in self.labels]
        return Markup("".join(out))  # noqa: S704 - every text in it is escaped above


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

    `row_colors` colours a one-series chart's bars row by row (the totals: budget, planned, approved…).
    """
    left, right, top, bar_h, gap = 200, 24, 28, 14, 14
    group_h = bar_h * len(series) + gap
    height = top + group_h * len(rows) + 48
    chart = Chart(chart_id, title, desc, width, height, series, legend_y=height - 16)
    peak = _nice_max(max((v for _l, values in rows for v in values), default=0))
    plot_w = width - left - right
    for i in range(5):
        x = left + plot_w * i / 4
        chart.gridlines.append((x, top - 6, x, top + group_h * len(rows) - gap / 2))
        chart.labels.append(Label(x, top - 10, fmt(peak * i // 4), "middle"))
    for r, (label, values) in enumerate(rows):
        y0 = top + r * group_h
        chart.labels.append(Label(left - 8, y0 + bar_h * len(series) / 2 + 4, _short(label)))
        for s, (value, ser) in enumerate(zip(values, series, strict=True)):
            w = plot_w * max(value, 0) / peak
            color = row_colors[r] if row_colors else ser.color
            chart.bars.append(Bar(left, y0 + s * bar_h, max(w, 1 if value else 0), bar_h - 2, color,
                                  f"{label} – {ser.name}: {fmt(value)}"))
    return chart


def vbar_chart(chart_id: str, title: str, desc: str, columns: list[tuple[str, list[int]]], series: list[Series],
               fmt: Callable[[int], str], height: int = 280) -> Chart:
    """Vertical grouped bars over time: one group per month, one bar per series."""
    left, right, top, bottom = 80, 16, 16, 64
    width = WIDTH
    group_w = (width - left - right) / max(1, len(columns))
    bar_w = min(24.0, (group_w - 4) / len(series))
    label_every = max(1, math.ceil(60 / group_w))  # a label needs about 60 units
    chart = Chart(chart_id, title, desc, width, height, series, legend_y=height - 12)
    peak = _nice_max(max((v for _l, values in columns for v in values), default=0))
    plot_h = height - top - bottom
    for i in range(5):
        y = top + plot_h - plot_h * i / 4
        chart.gridlines.append((left, y, width - right, y))
        chart.labels.append(Label(left - 6, y + 4, fmt(peak * i // 4)))
    for c, (label, values) in enumerate(columns):
        x0 = left + c * group_w + (group_w - bar_w * len(series)) / 2
        if c % label_every == 0:
            chart.labels.append(Label(x0 + bar_w * len(series) / 2, top + plot_h + 16, label, "middle"))
        for s, (value, ser) in enumerate(zip(values, series, strict=True)):
            h = plot_h * max(value, 0) / peak
            chart.bars.append(Bar(x0 + s * bar_w, top + plot_h - h, max(bar_w - 1, 1), h, ser.color,
                                  f"{label} – {ser.name}: {fmt(value)}"))
    return chart
