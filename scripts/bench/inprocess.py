"""Profile the bench's pages in process: `python scripts/bench/inprocess.py [--fresh N] [--pages a,b] [--prof]`.

The wall time of a wrk run on a shared 2-core machine moves with whatever else runs; CPU time of the same
requests through Flask's test client, the lean reference beside them in the same process, does not move much.
It prints each page's CPU milliseconds per request and its ratio to the lean reference (lean ms ÷ page ms,
which is what the bench's throughput ratio tends to when both are CPU-bound), and with --prof the top
functions of a cProfile of each page; with --plans whether PostgreSQL keeps one generic plan for each of
a page's statements or plans it anew on every request. --fresh N rebuilds the database (BENCH_DB_NAME, default
integplan_profile) with N receipts first (scripts/bench/data.py).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import re
import secrets
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT), str(HERE)]

import sqlalchemy as sa  # noqa: E402

ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
DB_NAME = os.environ.get("BENCH_DB_NAME", "integplan_profile")
DB_URL = ADMIN_URL.rsplit("/", 1)[0] + "/" + DB_NAME
UA = "Mozilla/5.0 (X11; Linux x86_64) integplan-bench/1"


def fresh(receipts: int) -> None:
    import data

    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{DB_NAME}"'))
    admin.dispose()
    from portal.db import upgrade

    upgrade(DB_URL)
    engine = sa.create_engine(DB_URL)
    data.base(engine)
    data.receipts(engine, 1, receipts // data.RECEIPTS_PER_CASE)
    engine.dispose()


def apps():
    os.environ.update({"PORTAL_ENV": "production", "SECRET_KEY": secrets.token_urlsafe(32), "COOKIE_SECURE": "false",
                       "DATABASE_URL": DB_URL, "STORAGE_BACKEND": "local", "BASE_URL": "http://127.0.0.1",
                       "PORTAL_INSTANCE_DIR": str(ROOT / "bench-results" / "profile-instance"),
                       "TOTP_REQUIRED_ROLES": "", "RATELIMIT_STORAGE_URI": "memory://"})
    import data
    import lean

    from portal import create_app
    from portal.extensions import limiter

    app = create_app()
    limiter.enabled = False
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = UA
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    r = client.post("/login", data={"csrf_token": token, "email": data.STAFF_EMAIL, "password": data.PASSWORD})
    assert r.status_code == 303, r.status_code
    lean_app = lean.create_app()
    lean_client = lean_app.test_client()
    lean_client.get("/login/2")
    # What gunicorn's post_worker_init does in each worker (for both apps): what loading allocated is left out
    # of the collections, and the young generation is collected less often.
    from portal import gunicorn_conf

    gunicorn_conf.post_worker_init(None)
    return client, lean_client


def interleaved(targets: dict, n: int, headers: dict) -> dict[str, tuple[float, float]]:
    """name → (median CPU ms, median wall ms) per request; the targets take turns request by request, so a
    busy spell of the machine falls on all of them alike."""
    cpu = {name: [] for name in targets}
    wall = {name: [] for name in targets}
    for client, path in targets.values():
        for _ in range(3):
            r = client.get(path, headers=headers)
            assert r.status_code == 200, (path, r.status_code)
    for _ in range(n):
        for name, (client, path) in targets.items():
            t0, w0 = time.thread_time(), time.perf_counter()
            client.get(path, headers=headers)
            cpu[name].append((time.thread_time() - t0) * 1000)
            wall[name].append((time.perf_counter() - w0) * 1000)
    return {name: (statistics.median(cpu[name]), statistics.median(wall[name])) for name in targets}


def sql_of(client, path: str, headers: dict, explain: bool = False) -> None:
    engine = client.application.extensions["db_engine"]
    seen = []

    def before(conn, cursor, statement, params, context, executemany):
        context._t0 = time.perf_counter()

    def after(conn, cursor, statement, params, context, executemany):
        seen.append(((time.perf_counter() - context._t0) * 1000, " ".join(statement.split())[:400],
                     statement, params))

    sa.event.listen(engine, "before_cursor_execute", before)
    sa.event.listen(engine, "after_cursor_execute", after)
    client.get(path, headers=headers)
    sa.event.remove(engine, "before_cursor_execute", before)
    sa.event.remove(engine, "after_cursor_execute", after)
    for ms, text, statement, params in seen:
        print(f"    {ms:7.2f} ms  {text}")
        if explain and statement.lstrip().upper().startswith("SELECT"):
            with engine.connect() as conn:
                cur = conn.connection.dbapi_connection.cursor()
                cur.execute("EXPLAIN ANALYZE " + statement, params)
                lines = [r[0] for r in cur.fetchall()]
                print("\n".join("        " + ln for ln in lines if "Scan" in ln or "Time" in ln or "Sort" in ln))


def plans_of(client, path: str, headers: dict) -> None:
    """Whether PostgreSQL keeps a generic plan for each statement of the page, as it would in a worker that
    has run them a while: each statement prepared and run 12 times on a fresh connection, then the server's
    own count of generic and custom plans. "custom 12" means it is planned anew on every request (with a
    LIMIT or a fixed state as a parameter, typically): portal.db.literal_param."""
    import psycopg

    engine = client.application.extensions["db_engine"]
    seen = []

    def before(conn, cursor, statement, params, context, executemany):
        seen.append((statement, params))

    sa.event.listen(engine, "before_cursor_execute", before)
    client.get(path, headers=headers)
    sa.event.remove(engine, "before_cursor_execute", before)
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url) as conn:
        for statement, params in seen:
            for _ in range(12):
                conn.execute(statement, params, prepare=True).fetchall()
        rows = conn.execute("SELECT generic_plans, custom_plans, statement FROM pg_prepared_statements").fetchall()
    for generic, custom, statement in rows:
        print(f"    generic {generic:2d} custom {custom:2d}  {' '.join(statement.split())[:110]}")


def calls_per_request(client, path: str, headers: dict, n: int = 10) -> float:
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        client.get(path, headers=headers)
    prof.disable()
    return pstats.Stats(prof).total_calls / n


def by_package(stats: pstats.Stats, n: int) -> None:
    """Own time per request, summed by package (site-packages' top folder, the portal, the templates)."""
    sums: dict[str, float] = {}
    for (filename, _line, _func), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():
        if "site-packages/" in filename:
            key = filename.split("site-packages/")[1].split("/")[0]
        elif "/templates/" in filename:
            key = "templates"
        elif "/portal/" in filename:
            key = "portal"
        elif filename.startswith("~") or filename.startswith("<"):
            key = "builtins"
        else:
            key = "stdlib"
        sums[key] = sums.get(key, 0.0) + tottime
    total = sum(sums.values())
    print(f"  own time per request (profiled): {total / n * 1000:.1f} ms")
    for key, value in sorted(sums.items(), key=lambda kv: -kv[1])[:14]:
        print(f"    {key:24} {value / n * 1000:6.2f} ms")


def main() -> None:
    import pages

    ap = argparse.ArgumentParser()
    ap.add_argument("--fresh", type=int, default=0, help="rebuild the database with this many receipts")
    ap.add_argument("--pages", default="", help="comma-separated page names (prefixes) to run")
    ap.add_argument("-n", type=int, default=30)
    ap.add_argument("--prof", action="store_true")
    ap.add_argument("--top", type=int, default=35)
    ap.add_argument("--sort", default="cumulative")
    ap.add_argument("--sql", action="store_true", help="print each statement of one request with its time")
    ap.add_argument("--calls", action="store_true", help="Python function calls per request, from cProfile")
    ap.add_argument("--explain", action="store_true", help="with --sql: EXPLAIN ANALYZE each SELECT")
    ap.add_argument("--plans", action="store_true", help="whether PostgreSQL keeps a generic plan for each statement")
    args = ap.parse_args()
    if args.fresh:
        fresh(args.fresh)
    client, lean_client = apps()
    headers = {"Accept-Encoding": "gzip, deflate"}
    wanted = [w.strip() for w in args.pages.split(",") if w.strip()]
    chosen = [p for p in pages.PAGES if not wanted or any(p.name.startswith(w) for w in wanted)]
    targets = {"lean reference": (lean_client, "/cases/"), **{p.name: (client, p.path) for p in chosen}}
    figures = interleaved(targets, args.n, headers)
    lean_cpu, lean_wall = figures["lean reference"]
    print(f"{'lean reference':28} cpu {lean_cpu:6.2f} ms  wall {lean_wall:6.2f} ms")
    for p in chosen:
        cpu, wall = figures[p.name]
        target = f"(target {p.target})" if p.target else ""
        print(f"{p.name:28} cpu {cpu:6.2f} ms  wall {wall:6.2f} ms  ratio cpu {lean_cpu / cpu:.2f} "
              f"wall {lean_wall / wall:.2f} {target}", flush=True)
    if args.calls:
        print("Python function calls per request (a measure the machine's load does not move):")
        for name, (c, path) in targets.items():
            print(f"  {name:28} {calls_per_request(c, path, headers):8,.0f}")
    for p in chosen:
        print(p.name) if args.sql or args.prof or args.plans else None
        if args.sql:
            sql_of(client, p.path, headers, args.explain)
        if args.plans:
            plans_of(client, p.path, headers)
        if args.prof:
            prof = cProfile.Profile(time.thread_time)  # CPU time: waiting for the database is not counted
            prof.enable()
            for _ in range(args.n):
                client.get(p.path, headers=headers)
            prof.disable()
            stats = pstats.Stats(prof)
            by_package(stats, args.n)
            stats.sort_stats(args.sort).print_stats(args.top)


if __name__ == "__main__":
    main()
