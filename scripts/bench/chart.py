"""The throughput chart, SVG written by hand: each page's requests/s against the lean reference
(scripts/bench/lean.py), with the issue's target share marked on the pages that have one."""

from __future__ import annotations

from html import escape


def throughput_svg(pages: list[tuple[str, float, float | None]], reference: float) -> str:
    rows = [("lean reference", reference, None), *pages]
    width, left, right, bar, gap, top = 760, 230, 110, 22, 10, 40
    height = top + len(rows) * (bar + gap) + 40
    plot = width - left - right
    scale = plot / max(reference, max((v for _n, v, _t in rows), default=1), 1)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
           f'height="{height}" font-family="sans-serif" font-size="12" role="img">',
           "<title>Page throughput (requests/s, 16 connections, medians) against the lean reference</title>",
           f'<rect width="{width}" height="{height}" fill="#fff"/>',
           f'<text x="{left}" y="22" font-size="14" font-weight="bold">Requests/s at 16 connections '
           "(gunicorn, same configuration; medians of interleaved rounds)</text>"]
    for i, (name, value, target) in enumerate(rows):
        y = top + i * (bar + gap)
        w = max(1.0, value * scale)
        if i == 0 or target is None:
            color = "#6b6b6b"
        else:
            color = "#2e7d32" if value >= target * reference else "#b3261e"
        out.append(f'<text x="{left - 8}" y="{y + bar * 0.7:.1f}" text-anchor="end">{escape(name)}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar}" fill="{color}"/>')
        pct = f" ({value / reference:.0%})" if i and reference else ""
        out.append(f'<text x="{left + w + 6:.1f}" y="{y + bar * 0.7:.1f}">{value:,.0f}{pct}</text>')
        if target is not None:
            x = left + target * reference * scale
            out.append(f'<line x1="{x:.1f}" y1="{y - 3}" x2="{x:.1f}" y2="{y + bar + 3}" stroke="#000" '
                       f'stroke-dasharray="3 2"><title>target: {target:.0%} of the lean reference</title></line>')
    bottom = top + len(rows) * (bar + gap)
    out.append(f'<text x="{left}" y="{bottom + 16}">dashed: the page\'s target share of the lean reference</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
