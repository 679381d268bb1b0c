"""The measured pages of `make bench`, each as a share of the lean reference (scripts/bench/lean.py).

Every figure is the median of ROUNDS interleaved rounds with its spread (lowest–highest): a round runs
wrk once against the lean app and once against each page, in an order that rotates from round to round,
so a slow spell of the machine (two cores shared with PostgreSQL and wrk) falls on all of them alike.
A page's ratio is taken within each round (page ÷ lean of the same round), then the median of those.

Beside the throughput, each wrk run charges the CPU the server's gunicorn workers and PostgreSQL spent
(from /proc) to its requests: CPU per request, and its ratio to the lean reference's (lean ÷ page). That
figure does not depend on how wrk's 16 kept-alive connections fell on the two workers: a worker that took
all of them serves them with one core while the other idles, which halves that run's throughput (the log
names the busiest worker's share of the CPU for each run).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

ROUNDS = 5
CASE_ID = 42  # has 10 receipts in both phases
RECEIPT_ID = (CASE_ID - 1) * 10 + 1  # its first receipt (scripts/bench/data.py numbers them in order)
WORKSHOP_ID = 1
MAX_HTML_KB = 100
MAX_GROWTH = 1.2  # a page's time at 100,000 receipts over its time at 1,000


@dataclass
class Page:
    name: str
    path: str
    target: float | None  # the least share of the lean reference's throughput, where the issue sets one


PAGES = [
    Page("case list", "/cases/", 0.6),
    Page("case page with receipts", f"/cases/{CASE_ID}", 0.4),
    Page("receipt page", f"/receipts/{RECEIPT_ID}", None),
    Page("review desk", "/review/", 0.25),
    Page("dashboard", "/reports/dashboard", 0.25),
    Page("visits due", "/visits/due", None),
    Page("workshop participants", f"/workshops/{WORKSHOP_ID}", None),
]
LEAN = "lean reference"


@dataclass
class Series:
    rps: list[float] = field(default_factory=list)
    ms: list[float] = field(default_factory=list)
    ratio: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    db_ms: list[float] = field(default_factory=list)
    cpu_ratio: list[float] = field(default_factory=list)
    busiest: list[float] = field(default_factory=list)
    errors: int = 0
    html_bytes: int = 0


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    """'median [lowest–highest]'."""
    if not values:
        return "–"
    return f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}–{fmt.format(max(values))}]"


def measure(targets: dict[str, tuple[str, str]], wrk: Callable, drain: Callable, seconds: int,
            rounds: int = ROUNDS, log: Callable = print) -> dict[str, Series]:
    """targets: name → (url, cookie), the lean reference under LEAN. Interleaved rounds of wrk."""
    names = list(targets)
    out = {name: Series() for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        this_round = {}
        for name in order:
            url, cookie = targets[name]
            load = wrk(url, cookie, seconds)
            drain(url, cookie)
            this_round[name] = load
            out[name].rps.append(load.rps)
            out[name].ms.append(load.avg_ms)
            out[name].cpu_ms.append(load.cpu_ms)
            out[name].db_ms.append(load.db_ms)
            out[name].busiest.append(load.busiest)
            out[name].errors += load.errors
        lean, lean_cpu = this_round[LEAN].rps, this_round[LEAN].cpu_ms
        for name in names:
            out[name].ratio.append(this_round[name].rps / lean if lean else float("nan"))
            out[name].cpu_ratio.append(lean_cpu / this_round[name].cpu_ms if this_round[name].cpu_ms else float("nan"))
        log(f"  round {r + 1}/{rounds}: " + ", ".join(
            f"{n} {this_round[n].rps:,.0f}/s {this_round[n].cpu_ms:.1f} ms CPU ({this_round[n].db_ms:.1f} in PostgreSQL; "
            f"busiest worker {this_round[n].busiest:.0%})"
            for n in names))
    return out


def html_size(session, url: str) -> tuple[int, int]:
    """(status, bytes of HTML as the browser gets it after decompressing)."""
    r = session.get(url, allow_redirects=False)
    return r.status_code, len(r.content)


def rows(small: dict[str, Series], large: dict[str, Series], add: Callable, volume: str = "100,000") -> None:
    """The table's rows: throughput as a share of lean (targets from the issue), growth with the volume,
    HTML size."""
    lean = large[LEAN]
    add(f"{LEAN}: the case list's work (signed session, user, one Core query, Jinja of the same size)",
        f"{spread(lean.rps, '{:,.0f}')} req/s", "", "1.00")
    measured = [(page, large[page.name]) for page in PAGES if page.name in large]
    for page, s in measured:
        ratio = statistics.median(s.ratio)
        errs = f" ({s.errors} errors)" if s.errors else ""
        add(f"{page.name}: throughput at {volume} receipts", f"{spread(s.rps, '{:,.1f}')} req/s{errs}",
            f"{statistics.median(lean.rps):,.0f} req/s (lean)", spread(s.ratio),
            f"≥ {page.target} of lean" if page.target else "(reported)",
            ratio >= page.target if page.target else None)
    add(f"{LEAN}: CPU per request (gunicorn workers and PostgreSQL, from /proc)",
        f"{spread(lean.cpu_ms, '{:.2f}')} ms ({statistics.median(lean.db_ms):.2f} in PostgreSQL)", "", "1.00")
    for page, s in measured:
        add(f"{page.name}: CPU per request at {volume} receipts (workers and PostgreSQL)",
            f"{spread(s.cpu_ms, '{:.2f}')} ms ({statistics.median(s.db_ms):.2f} in PostgreSQL)",
            f"{statistics.median(lean.cpu_ms):.2f} ms (lean)",
            spread(s.cpu_ratio), "(reported: the throughput ratio without the workers' balance)")
    for page in PAGES:
        if page.name not in large or page.name not in small:
            continue
        big, few = statistics.median(large[page.name].ms), statistics.median(small[page.name].ms)
        growth = big / few if few else float("nan")
        add(f"{page.name}: mean time, {volume} vs 1,000 receipts", f"{spread(large[page.name].ms, '{:.1f}')} ms",
            f"{spread(small[page.name].ms, '{:.1f}')} ms", f"{growth:.2f}", f"≤ {MAX_GROWTH}",
            growth <= MAX_GROWTH)
    for page in PAGES:
        if page.name not in large:
            continue
        biggest = max(large[page.name].html_bytes, small.get(page.name, Series()).html_bytes)
        add(f"{page.name}: HTML size (largest of both volumes)", f"{biggest / 1024:.1f} KB", "", "",
            f"≤ {MAX_HTML_KB} KB", biggest <= MAX_HTML_KB * 1024)
