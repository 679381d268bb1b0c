"""The throughput chart, SVG written by hand: each page's requests/s against the hello ceiling."""

from __future__ import annotations

from html import escape


def throughput_svg(pages: list[tuple[str, float]], ceiling: float) -> str:
    rows = [("hello (ceiling)", ceiling), *pages]
    width, left, right, bar, gap, top = 760, 230, 110, 22, 10, 40
    height = top + len(rows) * (bar + gap) + 40
    plot = width - left - right
    scale = plot / max(ceiling, max((v for _n, v in rows), default=1), 1)
    target_x = left + 0.20 * ceiling * scale
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
           f'height="{height}" font-family="sans-serif" font-size="12" role="img">',
           "<title>Page throughput (requests/s, 16 connections) against the bare Flask ceiling</title>",
           f'<rect width="{width}" height="{height}" fill="#fff"/>',
           f'<text x="{left}" y="22" font-size="14" font-weight="bold">Requests/s at 16 connections '
           "(gunicorn, same configuration)</text>"]
    for i, (name, value) in enumerate(rows):
        y = top + i * (bar + gap)
        w = max(1.0, value * scale)
        color = "#6b6b6b" if i == 0 else ("#2e7d32" if value >= 0.20 * ceiling else "#b3261e")
        out.append(f'<text x="{left - 8}" y="{y + bar * 0.7:.1f}" text-anchor="end">{escape(name)}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar}" fill="{color}"/>')
        pct = f" ({value / ceiling:.0%})" if i and ceiling else ""
        out.append(f'<text x="{left + w + 6:.1f}" y="{y + bar * 0.7:.1f}">{value:,.0f}{pct}</text>')
    bottom = top + len(rows) * (bar + gap)
    out.append(f'<line x1="{target_x:.1f}" y1="{top - 6}" x2="{target_x:.1f}" y2="{bottom}" stroke="#000" '
               'stroke-dasharray="4 3"/>')
    out.append(f'<text x="{target_x + 4:.1f}" y="{bottom + 16}">target: 20 % of the ceiling</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
