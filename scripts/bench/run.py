"""`make bench`: the portal's speed against the limits of this machine, measured in one run.

Starts the portal, the lean reference (scripts/bench/lean.py: the case list's work and nothing else) and a
bare Flask "hello" app under the same gunicorn configuration (the README's `gunicorn -w N
'portal:create_app()'`, PORTAL_ENV=production), on a fresh PostgreSQL database and the Ceph S3 server that
scripts/bench.sh started; generates the volume; measures every page as a share of the lean reference in
interleaved rounds (scripts/bench/pages.py) at 1,000 and at 100,000 receipts; writes
bench-results/bench.md and bench-results/throughput.svg.

Loopback only: production refuses plain-http cookies, so the bench sets COOKIE_SECURE=false
(the browser and wrk talk http://127.0.0.1 without a TLS proxy in front).
"""

from __future__ import annotations

import gzip
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT), str(HERE)]

import pages  # noqa: E402
import requests  # noqa: E402
import sqlalchemy as sa  # noqa: E402

OUT = ROOT / "bench-results"
VENV = Path(os.environ.get("VENV", ROOT / ".venv"))
ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
# Names and ports can be moved (BENCH_DB_NAME, BENCH_BUCKET, BENCH_PORT) so two runs on one machine do not
# drop each other's database or bucket.
DB_NAME = os.environ.get("BENCH_DB_NAME", "integplan_bench")
BUCKET = os.environ.get("BENCH_BUCKET", "integplan-bench")
DB_URL = ADMIN_URL.rsplit("/", 1)[0] + "/" + DB_NAME
PORT = int(os.environ.get("BENCH_PORT", "8090"))
HELLO_PORT, LEAN_PORT = PORT + 1, PORT + 5  # scripts/bench/uploads.py takes 8092 (BENCH_UPLOADS_PORT)
BASE = f"http://127.0.0.1:{PORT}"
WORKERS = os.environ.get("BENCH_WORKERS", "2")
SECONDS = int(os.environ.get("BENCH_SECONDS", "6"))
PAGE_SECONDS = int(os.environ.get("BENCH_PAGE_SECONDS", "3"))  # one wrk run of a page in a round
CONNECTIONS = 16
UA = "Mozilla/5.0 (X11; Linux x86_64) integplan-bench/1"  # wrk, requests and Chromium send the same one:
# the portal's "strong" session protection ties the session to the address and the User-Agent.
UPLOAD_MB = 100  # the size; the bench's portal accepts receipts up to RECEIPT_MAX_MB=110
# BENCH_QUICK=1 (for iterating, not for the README): 3 rounds, 1,000 then 10,000 receipts, no uploads, no 2G.
# BENCH_SKIP_UPLOADS=1: the full page measures without the upload, the 2G and the resumable-upload parts.
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
SKIP_UPLOADS = QUICK or os.environ.get("BENCH_SKIP_UPLOADS", "") not in ("", "0")
ROUNDS = 3 if QUICK else pages.ROUNDS


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# Environment, database, servers -------------------------------------------------------------------

def portal_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "PORTAL_ENV": "production", "SECRET_KEY": secrets.token_urlsafe(32), "COOKIE_SECURE": "false",
        "DATABASE_URL": DB_URL, "STORAGE_BACKEND": "s3", "S3_BUCKET": BUCKET,
        "RATELIMIT_STORAGE_URI": os.environ.get("BENCH_RATELIMIT_URI", "redis://127.0.0.1:6379"),
        "BASE_URL": BASE, "PORTAL_INSTANCE_DIR": str(OUT / "instance"),
        # Staff must use a second factor in production; the bench signs in with the password alone.
        "TOTP_REQUIRED_ROLES": "",
        # The production default is 20 MB; the upload measure sends a 100 MB scan through the same code.
        "RECEIPT_MAX_MB": "110",
    })
    return env


def fresh_database() -> None:
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{DB_NAME}"'))
    admin.dispose()
    from portal.db import upgrade

    upgrade(DB_URL)


@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    port: int

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


SERVERS: dict[int, Server] = {}  # by port: whose workers' CPU a wrk run on that port is charged


def gunicorn(name: str, app: str, port: int, env: dict, chdir: Path) -> Server:
    """The README's production command: gunicorn -c python:portal.gunicorn_conf 'module:create_app()'."""
    logf = open(OUT / f"gunicorn-{name}.log", "w")  # noqa: SIM115 - lives as long as the server
    env = {**env, "WEB_CONCURRENCY": WORKERS, "BIND": f"127.0.0.1:{port}", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([str(VENV / "bin" / "gunicorn"), "-c", "python:portal.gunicorn_conf",
                             "--chdir", str(chdir), app],
                            env=env, stdout=logf, stderr=subprocess.STDOUT)
    server = Server(name, proc, port)
    SERVERS[port] = server
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=10, allow_redirects=False)
            return server
        except requests.RequestException:
            time.sleep(0.3)
    server.stop()
    raise SystemExit(f"{name} did not start: see {logf.name}")


# Signing in ---------------------------------------------------------------------------------------

CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF_RE.search(html)
    if not match:
        raise SystemExit("no CSRF token in the page")
    return match.group(1)


def sign_in(email: str, password: str) -> requests.Session:
    """A real sign-in: GET the form, POST it with its CSRF token; the session cookie is then reused."""
    s = requests.Session()
    s.headers["User-Agent"] = UA
    form = s.get(BASE + "/login")
    r = s.post(BASE + "/login", data={"csrf_token": csrf_of(form.text), "email": email, "password": password})
    if not r.url.rstrip("/").endswith("/cases"):
        raise SystemExit(f"sign-in failed: ended on {r.url} ({r.status_code})")
    return s


def cookie_header(s: requests.Session) -> str:
    return "; ".join(f"{c.name}={c.value}" for c in s.cookies)


# wrk ----------------------------------------------------------------------------------------------

@dataclass
class Load:
    rps: float
    avg_ms: float
    p99_ms: float
    errors: int
    cpu_ms: float = float("nan")  # CPU per request: the server's gunicorn workers and PostgreSQL
    busiest: float = float("nan")  # the busiest worker's share of the workers' CPU (0.5: even, 1.0: one did all)
    db_ms: float = float("nan")  # PostgreSQL's part of cpu_ms


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """User and system CPU of a process (all its threads) from /proc, 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _postgres_pids() -> list[int]:
    """PostgreSQL's backends for the bench's database (their title: "postgres: … postgres integplan_bench
    127.0.0.1(port) idle"); not its background processes (autovacuum, the checkpointer) or other databases."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres" \
                        and f" {DB_NAME} " in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _cpu_snapshot(port: int) -> tuple[dict[int, float], dict[int, float]]:
    """(each worker's CPU seconds, each PostgreSQL process's) of the server on `port`."""
    server = SERVERS.get(port)
    workers = {pid: _cpu_seconds(pid) for pid in (server.worker_pids() if server else [])}
    return workers, {pid: _cpu_seconds(pid) for pid in _postgres_pids()}


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url: str, cookie: str = "", seconds: int = SECONDS) -> Load:
    # --timeout 30s: a page slower than wrk's default 2 s still gets measured instead of counted as an error
    cmd = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "30s", "--latency", "-H", f"User-Agent: {UA}",
           "-H", "Accept-Encoding: gzip, deflate"]
    if cookie:
        cmd += ["-H", f"Cookie: {cookie}"]
    port = int(url.split(":")[2].split("/")[0])
    workers_before, db_before = _cpu_snapshot(port)
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    workers_after, db_after = _cpu_snapshot(port)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    done = int(re.search(r"(\d+) requests in", out).group(1))
    spent = {pid: workers_after[pid] - workers_before.get(pid, 0.0) for pid in workers_after}
    in_db = sum(db_after[pid] - db_before.get(pid, 0.0) for pid in db_after)
    cpu_ms = (sum(spent.values()) + in_db) * 1000 / done if done else float("nan")
    db_ms = in_db * 1000 / done if done else float("nan")
    busiest = max(spent.values()) / sum(spent.values()) if spent and sum(spent.values()) else float("nan")
    try:
        avg = _ms(re.search(r"Latency\s+(\S+)", out).group(1))
        p99 = _ms(re.search(r"^\s*99%\s+(\S+)", out, re.MULTILINE).group(1))  # not "53.99%" of the Stdev column
    except AttributeError:  # no request finished in the time: wrk prints no latencies
        log(f"wrk gave no latencies for {url}:\n{out}")
        avg = p99 = float("nan")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (sum(int(g) for g in errs.groups()) if errs else 0)
    return Load(rps, avg, p99, errors, cpu_ms, busiest, db_ms)


def drain(url: str, cookie: str) -> None:
    """Wait until the workers have answered the requests wrk left queued (a slow page leaves a backlog
    that would otherwise be charged to the next measurement): one quick answer means the queue is empty."""
    deadline = time.time() + 180
    while time.time() < deadline:
        t0 = time.perf_counter()
        try:
            requests.get(url, headers={"User-Agent": UA, "Cookie": cookie}, timeout=180, allow_redirects=False)
        except requests.RequestException:
            pass
        if time.perf_counter() - t0 < 0.5:
            return
        time.sleep(0.2)


def settle(url: str, _cookie: str) -> None:
    """drain() on the server's cheapest answer (its root), so a slow page does not hold up the next one; then
    wait until every worker of every server is idle. A quick answer means one worker is free, not both: the
    other may still be working off the requests wrk left queued in it, and the next wrk run's 16 connections
    then all go to the free worker, which serves them with one core for the whole run while the other
    idles (seen: the busiest worker did 97-100 % of the work in most runs of the heavy pages, 60 % for the
    lean reference, whose backlog clears at once)."""
    drain("/".join(url.split("/")[:3]) + "/", "")
    pids = [pid for server in SERVERS.values() for pid in server.worker_pids()]
    deadline = time.time() + 60
    before = {pid: _cpu_seconds(pid) for pid in pids}
    while time.time() < deadline:
        time.sleep(0.2)
        now = {pid: _cpu_seconds(pid) for pid in pids}
        if all(now[pid] - before[pid] < 0.02 for pid in pids):  # under 10 % of a core over the last 0.2 s
            return
        before = now
    log("the workers were still busy after 60 s; the next run starts anyway")


def start_lean(servers: list, env: dict, portal_bytes: int) -> str:
    """Start the lean reference (scripts/bench/lean.py) with its page padded to the portal case list's size;
    returns its signed session cookie for the staff user."""
    probe = gunicorn("lean", "lean:create_app()", LEAN_PORT, {**env, "LEAN_PAD_BYTES": "0"}, HERE)
    s = requests.Session()
    s.headers["User-Agent"] = UA
    s.get(f"http://127.0.0.1:{LEAN_PORT}/login/2", allow_redirects=False)
    lean_bytes = pages.html_size(s, f"http://127.0.0.1:{LEAN_PORT}/cases/")[1]
    probe.stop()
    pad = max(0, portal_bytes - lean_bytes)
    servers.append(gunicorn("lean", "lean:create_app()", LEAN_PORT, {**env, "LEAN_PAD_BYTES": str(pad)}, HERE))
    log(f"lean reference: {lean_bytes:,} bytes + {pad:,} padding = the portal case list's {portal_bytes:,}")
    return cookie_header(s)


# SQL statements per page, in process --------------------------------------------------------------

class StatementCounter:
    """Counts the SQL statements of each request of an in-process test client on the same database."""

    def __init__(self, env: dict):
        os.environ.update({k: env[k] for k in ("PORTAL_ENV", "SECRET_KEY", "COOKIE_SECURE", "DATABASE_URL",
                                               "STORAGE_BACKEND", "S3_BUCKET", "BASE_URL", "PORTAL_INSTANCE_DIR",
                                               "TOTP_REQUIRED_ROLES")})
        os.environ["RATELIMIT_STORAGE_URI"] = "memory://"
        from portal import create_app

        self.app = create_app()
        self.count = 0
        sa.event.listen(self.app.extensions["db_engine"], "before_cursor_execute", self._one)
        self.client = self.app.test_client()
        self.client.environ_base["HTTP_USER_AGENT"] = UA
        from portal.extensions import limiter

        limiter.enabled = False

    def _one(self, *_args) -> None:
        self.count += 1

    def sign_in(self, email: str, password: str) -> None:
        page = self.client.get("/login").get_data(as_text=True)
        r = self.client.post("/login", data={"csrf_token": csrf_of(page), "email": email, "password": password})
        if r.status_code != 303:
            raise SystemExit(f"in-process sign-in failed ({r.status_code})")

    def statements(self, path: str, headers: dict | None = None) -> int:
        self.client.get(path, headers=headers)  # warm: one-off lookups (table inspection) are not per page
        self.count = 0
        r = self.client.get(path, headers=headers)
        if r.status_code != 200:
            raise SystemExit(f"{path}: {r.status_code}")
        return self.count


# Page weight --------------------------------------------------------------------------------------

ASSET_RE = re.compile(r'<(?:link[^>]+rel="stylesheet"[^>]+href|script[^>]+src)="([^"]+)"')


def wire_bytes(s: requests.Session, url: str, headers: dict | None = None) -> tuple[int, str, str]:
    """Body bytes as transferred (compressed if the server compressed), the text, and the encoding."""
    r = s.get(url, headers={"Accept-Encoding": "gzip", **(headers or {})}, stream=True, allow_redirects=False)
    raw = r.raw.read(decode_content=False)
    enc = r.headers.get("Content-Encoding", "")
    body = gzip.decompress(raw) if enc == "gzip" else raw
    return len(raw), body.decode("utf-8", "replace"), enc or "identity"


def first_load(s: requests.Session, path: str) -> tuple[int, str]:
    size, html, enc = wire_bytes(s, BASE + path)
    assets = sorted(set(ASSET_RE.findall(html)))
    for asset in assets:
        size += wire_bytes(s, urljoin(BASE + path, asset))[0]
    return size, f"{enc}, {len(assets)} assets"


# Upload -------------------------------------------------------------------------------------------

def big_pdf(path: Path, megabytes: int) -> None:
    """A valid one-page PDF whose page shows one big uncompressed RGB image (incompressible pixels)."""
    path.write_bytes(pdf_bytes(megabytes))


def pdf_bytes(megabytes: float) -> bytes:
    """The bytes of big_pdf: random pixels, so no two calls give the same file (the soak uses small ones)."""
    side = int((megabytes * 1_000_000 / 3) ** 0.5)
    pixels = os.urandom(side * side * 3)
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /XObject << /Im0 5 0 R >> >> "
            b"/Contents 4 0 R >>"]
    content = b"q 595 0 0 842 0 0 cm /Im0 Do Q"
    objs.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    objs.append(b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB "
                b"/BitsPerComponent 8 /Length %d >>\nstream\n" % (side, side, len(pixels)) + pixels + b"\nendstream")
    from tests.factories import pdf_of_objects

    return pdf_of_objects(objs, header=b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")


def memory_kb(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _sep, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = int(value.split()[0])
    return fields


class RssSampler:
    """The highest VmRSS of each worker while the block runs, read from /proc every 5 ms in a thread."""

    def __init__(self, pids: list[int]):
        self.pids, self.peak = pids, dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self.pids:
                try:
                    self.peak[pid] = max(self.peak[pid], memory_kb(pid)["VmRSS"])
                except (OSError, KeyError):
                    pass
            self._stop.wait(0.005)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_exc):
        self._stop.set()
        self._thread.join()


NONCE_RE = re.compile(r'name="nonce"[^>]*value="([^"]+)"')


def receipt_form(s: requests.Session, case_id: int, n: int) -> dict[str, str]:
    """GET the receipt form; the fields a browser sends with it (its CSRF token and one-time nonce)."""
    form = s.get(f"{BASE}/cases/{case_id}/receipts/new").text
    line = re.search(r'<option value="(\d+)"[^>]*>Budget line', form).group(1)
    return {"csrf_token": csrf_of(form), "nonce": NONCE_RE.search(form).group(1), "budget_line_id": line,
            "supplier": f"Bench upload {n}", "invoice_number": f"UP-{n}-{secrets.token_hex(4)}",
            "invoice_date": "2024-06-01", "amount": "100.00", "currency": "EUR", "description": "Scanned invoice",
            "paid_directly": "y"}


def upload_receipt(s: requests.Session, case_id: int, path: Path, name: str, n: int) -> float:
    """POST the receipt form with one file (as a browser without upload.js would); seconds taken."""
    data = receipt_form(s, case_id, n)
    with path.open("rb") as fh:
        t0 = time.perf_counter()
        r = s.post(f"{BASE}/cases/{case_id}/receipts/new", data=data, files={"files": (name, fh, "application/pdf")},
                   allow_redirects=False)
        took = time.perf_counter() - t0
    if r.status_code != 303:
        problems = re.findall(r'<li><a href="#[^"]*">([^<]*)</a>', r.text)[:3]
        raise SystemExit(f"upload refused ({r.status_code}): {problems}")
    return took


def s3_client():
    """boto3's own client with its defaults (the baseline), path-style for Ceph."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT_URL"],
                        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
                        config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                                      request_checksum_calculation="when_required",
                                      response_checksum_validation="when_required"))


def drop_bucket(bucket: str = BUCKET) -> None:
    """Remove the run's objects and bucket: the uploads (600 MB a run) must not pile up on the S3 server."""
    client = s3_client()
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=item["Key"])
        for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        client.delete_bucket(Bucket=bucket)
    except client.exceptions.NoSuchBucket:
        pass


def direct_put(path: Path) -> float:
    client = s3_client()
    with path.open("rb") as fh:
        t0 = time.perf_counter()
        client.put_object(Bucket=BUCKET, Key=f"bench/direct-{secrets.token_hex(6)}", Body=fh,
                          ContentType="application/pdf")
        return time.perf_counter() - t0


# Results ------------------------------------------------------------------------------------------

@dataclass
class Row:
    what: str
    value: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    ok: bool | None = None


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    chart: list[tuple[str, float, float | None]] = field(default_factory=list)
    ceiling: float = 0.0

    def add(self, *args, **kw) -> None:
        self.rows.append(Row(*args, **kw))

    def markdown(self) -> str:
        lines = ["| measure | value | baseline (same run) | ratio | target | met |", "|---|---|---|---|---|---|"]
        for r in self.rows:
            met = "" if r.ok is None else ("yes" if r.ok else "**no**")
            lines.append(f"| {r.what} | {r.value} | {r.baseline} | {r.ratio} | {r.target} | {met} |")
        return "\n".join(lines)


@contextmanager
def timed(what: str):
    t0 = time.perf_counter()
    log(what + " …")
    yield
    log(f"{what}: {time.perf_counter() - t0:.1f} s")


def main() -> int:  # noqa: C901 - one run, read top to bottom
    import data

    OUT.mkdir(exist_ok=True)
    started = time.perf_counter()
    env = portal_env()
    res = Results()
    servers: list[Server] = []
    try:
        with timed(f"fresh database {DB_NAME}, migrations"):
            fresh_database()
            drop_bucket()  # what a run that crashed left behind
        engine = sa.create_engine(DB_URL)
        with timed("volume: organisations, cases, budget lines, visits, registrations"):
            info = data.base(engine)
        with timed("receipts: the first 1,000"):
            data.receipts(engine, 1, 100)
        counter = StatementCounter(env)
        with counter.app.app_context():
            from portal.storage import get_storage

            get_storage().ensure_ready()
        counter.sign_in(data.STAFF_EMAIL, data.PASSWORD)

        servers.append(gunicorn("portal", "portal:create_app()", PORT, env, ROOT))
        servers.append(gunicorn("hello", "hello:create_app()", HELLO_PORT, env, HERE))
        staff = sign_in(data.STAFF_EMAIL, data.PASSWORD)
        cookie = cookie_header(staff)
        case_id = pages.CASE_ID
        present = []
        for page in pages.PAGES:
            r = staff.get(BASE + page.path, allow_redirects=False)
            if r.status_code == 200:
                present.append(page)
            else:
                res.notes.append(f"{page.name}: {page.path} answers {r.status_code} in this run, not measured.")
        lean_cookie = start_lean(servers, env, pages.html_size(staff, BASE + "/cases/")[1])
        targets = {pages.LEAN: (f"http://127.0.0.1:{LEAN_PORT}/cases/", lean_cookie),
                   **{p.name: (BASE + p.path, cookie) for p in present}}
        small_sql: dict[str, int] = {}
        with timed(f"pages at 1,000 receipts: {ROUNDS} interleaved rounds"):
            small = pages.measure(targets, wrk, settle, PAGE_SECONDS, rounds=ROUNDS, log=log)
            for p in present:
                small[p.name].html_bytes = pages.html_size(staff, BASE + p.path)[1]
                small_sql[p.name] = counter.statements(p.path)
        last_case = data.CASES // 10 if QUICK else data.CASES
        volume = f"{last_case * data.RECEIPTS_PER_CASE:,}"
        with timed(f"receipts: up to {volume}"):
            data.receipts(engine, 101, last_case)
        with engine.connect() as conn:
            counts = {t: conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one()  # noqa: S608
                      for t in ("organisations", "cases", "budget_lines", "receipts", "receipt_events", "visits",
                                "audit_log")}
        res.notes.append("Volume: " + ", ".join(f"{v:,} {k}" for k, v in counts.items())
                         + f"; workshop registrations: {info['registrations']}. Receipt file rows are not "
                         "generated (no measured page lists files).")

        with timed(f"pages at {volume} receipts: {ROUNDS} interleaved rounds"):
            large = pages.measure(targets, wrk, settle, PAGE_SECONDS, rounds=ROUNDS, log=log)
            for p in present:
                large[p.name].html_bytes = pages.html_size(staff, BASE + p.path)[1]
        pages.rows(small, large, res.add, volume)
        for p in present:
            res.chart.append((p.name, statistics.median(large[p.name].rps), p.target))
        res.ceiling = statistics.median(large[pages.LEAN].rps)
        with timed("bare Flask hello (for comparison)"):
            hello = wrk(f"http://127.0.0.1:{HELLO_PORT}/")
        res.add("bare Flask hello, 16 connections (not a target: no session, no database, no template)",
                f"{hello.rps:,.0f} req/s, p99 {hello.p99_ms:.1f} ms", "", "")
        for p in present:
            n_large = counter.statements(p.path)
            res.add(f"{p.name}: SQL statements per request", f"{n_large} (at {volume} receipts)",
                    f"{small_sql[p.name]} (at 1,000)", "", "≤ 6", n_large <= 6)

        with timed("page weight"):
            anon = requests.Session()
            anon.headers["User-Agent"] = UA
            size, how = first_load(anon, "/login")
            res.add("page weight, first load: sign-in page + CSS/JS", f"{size / 1024:.1f} KB ({how})", "", "",
                    "≤ 50 KB", size <= 50 * 1024)
            weighed = [*((p.name, p.path) for p in present), ("receipt form", f"/cases/{case_id}/receipts/new")]
            for name, path in weighed:
                size, how = first_load(staff, path)
                res.add(f"page weight, first load: {name} + CSS/JS", f"{size / 1024:.1f} KB ({how})", "", "",
                        "≤ 50 KB", size <= 50 * 1024)
            hx = {"HX-Request": "true"}
            line_id = (case_id - 1) * 3 + 1
            fragments = [("case list, page 2", "/cases/?page=2"), ("case list filtered", "/cases/?status=active"),
                         ("budget line editor", f"/cases/{case_id}/lines/{line_id}/edit"),
                         ("review desk, page 2 sorted by amount", "/review/?page=2&sort=amount_desc")]
            for name, path in fragments:
                size, _text, enc = wire_bytes(staff, BASE + path, hx)
                res.add(f"htmx fragment: {name}", f"{size / 1024:.1f} KB ({enc})", "", "", "≤ 8 KB",
                        size <= 8 * 1024)

        if SKIP_UPLOADS:
            res.notes.append("The upload, 2G and resumable-upload measures were skipped in this run "
                             "(BENCH_QUICK or BENCH_SKIP_UPLOADS).")
        else:
            with timed(f"upload: {UPLOAD_MB} MB PDF through the portal vs boto3 put_object"):
                pdfs = [OUT / f"upload-{n}.pdf" for n in range(3)]  # different bytes: the portal refuses duplicates
                for path in pdfs:
                    big_pdf(path, UPLOAD_MB)
                warm = [OUT / f"warm-{n}.pdf" for n in range(2)]
                for path in warm:
                    big_pdf(path, 1)
                portal_srv = servers[0]
                for n, path in enumerate(warm):  # warm both workers' imports (pikepdf, Pillow) with small uploads first
                    upload_receipt(staff, 43 + n, path, "warm.pdf", 1000 + n)
                before = {pid: memory_kb(pid) for pid in portal_srv.worker_pids()}
                with RssSampler(list(before)) as sampler:
                    portal_times = [upload_receipt(staff, 50 + n, path, "scan.pdf", n) for n, path in enumerate(pdfs)]
                after = {pid: memory_kb(pid) for pid in portal_srv.worker_pids()}
                pdf = pdfs[0]
                direct_times = [direct_put(pdf) for _ in range(3)]
                mb = pdf.stat().st_size / 1e6
                tp_portal, tp_direct = mb / statistics.median(portal_times), mb / statistics.median(direct_times)
                # VmHWM only moves when a new peak passes the worker's earlier one (a big page may have set it), so
                # the growth is the highest VmRSS sampled during the uploads over the worker's VmRSS before them.
                growth = max(max(sampler.peak[p] - before[p]["VmRSS"], after[p]["VmHWM"] - before[p]["VmHWM"])
                             for p in before if p in after) / 1024
                res.add(f"upload {mb:.1f} MB PDF through the portal (receipt form)", f"{tp_portal:.1f} MB/s",
                        f"{tp_direct:.1f} MB/s (boto3 put_object)", f"{tp_portal / tp_direct:.2f}", "≥ 0.7",
                        tp_portal / tp_direct >= 0.7)
                res.add("upload: worker peak memory growth", f"{growth:.1f} MB",
                        "VmRSS before (sampled every 5 ms)", "", "≤ 32 MB", growth <= 32)
                res.notes.append(f"Upload: a {mb:.1f} MB one-page scan (RECEIPT_MAX_MB=110 for the bench; production "
                                 "default 20). Median of 3; VmRSS after: "
                                 + ", ".join(f"{a['VmRSS'] / 1024:.0f} MB" for a in after.values()) + ".")

            with timed("Chromium on emulated 2G"):
                from browser import two_g

                try:
                    figures = two_g(BASE, UA, data.STAFF_EMAIL, data.PASSWORD, case_id, OUT)
                except Exception as exc:  # noqa: BLE001 - the table is still written, with the failure in a note
                    figures = []
                    res.notes.append(f"Chromium on 2G failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
                for name, seconds, target in figures:
                    value = f"{seconds:.1f} s" if seconds != float("inf") else "failed"
                    res.add(name, value, "", "", f"≤ {target} s", seconds <= target)

            # Its own portal (port 8092) and database: the cut and the reload must not disturb the figures above.
            with timed("resumable uploads on emulated 2G (scripts/bench/uploads.py)"):
                import uploads

                try:
                    for what, value, target, ok in uploads.measure(float(os.environ.get("BENCH_UPLOADS_PDF_MB", "6"))):
                        res.add(what, value, "", "", target, ok)
                except Exception as exc:  # noqa: BLE001 - the table is still written, with the failure in a note
                    res.notes.append(f"Uploads on 2G failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    finally:
        for server in servers:
            server.stop()
        drop_bucket()

    log_text = (OUT / "gunicorn-portal.log").read_text(errors="replace")
    if "WORKER TIMEOUT" in log_text:
        res.notes.append("gunicorn killed a portal worker at its timeout while it was still reading a slow "
                         "upload: see bench-results/gunicorn-portal.log.")
    total = time.perf_counter() - started
    res.notes.append(f"Run: {total / 60:.1f} min on {os.cpu_count()} CPUs; gunicorn -c python:portal.gunicorn_conf ({WORKERS} gthread workers × "
                     f"{os.environ.get('GUNICORN_THREADS', '8')} threads), "
                     f"wrk -t2 -c{CONNECTIONS} -d{SECONDS}s; PORTAL_ENV=production with COOKIE_SECURE=false "
                     "(plain http on loopback).")
    write_results(res)
    return 0


def write_results(res: Results) -> None:
    from chart import throughput_svg

    text = "# Benchmark\n\n" + res.markdown() + "\n\n" + "\n".join(f"- {n}" for n in res.notes) + "\n"
    (OUT / "bench.md").write_text(text)
    (OUT / "throughput.svg").write_text(throughput_svg(res.chart, res.ceiling))
    print(text)
    log(f"written: {OUT / 'bench.md'}, {OUT / 'throughput.svg'}")


if __name__ == "__main__":
    sys.exit(main())
