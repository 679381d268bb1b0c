"""`make soak`: many partners upload and read receipts for minutes while the S3 gateway is restarted.

Not part of `make test`. scripts/soak.sh starts PostgreSQL and the Ceph S3 server; this driver makes a
fresh database (`integplan_soak`, migrated), a fresh bucket with a unique name and a small volume
(4 partner organisations), starts the portal under the production gunicorn configuration, and runs:

- uploader threads, each its own signed-in partner session, posting the receipt form with a small real
  PDF or JPEG (random pixels: never a duplicate file) in a loop, as a person would: after a 503 or a
  missing answer the same form is sent again (same nonce: idempotent); after "could not be uploaded –
  try again" (422) the form the portal sent back is sent again (the portal gives it a new nonce);
- reader threads loading the case list, case pages, receipt pages, previews and downloads (the
  presigned S3 link is followed and the bytes compared with what was uploaded);
- the S3 gateway stopped for ~20 s at 1/3 and at 2/3 of the time (`scripts/s3-server.sh stop-gateway`).

Afterwards gunicorn is stopped, `flask --app portal receipts sweep --minutes 0` runs, and every
acknowledged upload is checked in the database and in the bucket (SHA-256 of the stored object).
Prints a table, writes bench-results/soak.md; exits 1 when an acknowledged upload is lost, an orphan
remains, or the portal answered a 5xx other than 503.

Helpers (servers, sign-in, the receipt form, PDFs) come from scripts/bench/run.py.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import math
import os
import random
import re
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE / "bench")]

import data as bench_data  # noqa: E402 - scripts/bench/data.py
import requests  # noqa: E402
import run as bench  # noqa: E402 - scripts/bench/run.py
import sqlalchemy as sa  # noqa: E402

PORT = int(os.environ.get("SOAK_PORT", "8093"))
DB_NAME = "integplan_soak"
ORGS, CASES = 4, 40
OUT = bench.OUT
# The bench helpers read these module settings when called: point them at the soak's portal and database.
bench.BASE = f"http://127.0.0.1:{PORT}"
bench.DB_NAME = DB_NAME
bench.DB_URL = bench.ADMIN_URL.rsplit("/", 1)[0] + "/" + DB_NAME
BASE = bench.BASE
S3_SCRIPT = ROOT / "scripts" / "s3-server.sh"
TRY_AGAIN = "could not be uploaded"  # portal/uploads/files.py MSG_FAILED: storage failed, nothing kept
IN_FLIGHT = "already being sent"  # services.InFlight: the same nonce is being processed
FILE_LINK_RE = re.compile(r'/receipts/(\d+)/files/(\d+)"')
GRACE = 5.0  # seconds after the gateway answers again that still count as the outage


def log(msg: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# What happened -----------------------------------------------------------------------------------

@dataclass
class Hit:
    """One HTTP request to the portal (or, for "s3 get", to the presigned S3 link)."""

    kind: str  # "upload", "form", "case list", "case page", "receipt page", "preview", "download", "s3 get"
    started: float
    seconds: float
    status: int  # 0: no answer (connection refused/reset, timeout)
    note: str = ""


@dataclass
class Ack:
    """An upload the portal acknowledged with a 303 to the receipt."""

    receipt_id: int
    org: int
    sha256: str  # of the bytes sent
    content_type: str
    invoice_number: str
    file_id: int | None = None  # learnt by a reader from the receipt page


@dataclass
class Run:
    hits: list[Hit] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # things a user would call a bug, with details
    outages: list[tuple[float, float]] = field(default_factory=list)  # (gateway stopped, answering again)
    gave_up: int = 0  # forms abandoned at the end of the run while still being retried
    lock: threading.Lock = field(default_factory=threading.Lock)

    def hit(self, hit: Hit) -> None:
        with self.lock:
            self.hits.append(hit)

    def problem(self, text: str) -> None:
        with self.lock:
            if len(self.problems) < 200:
                self.problems.append(text)
        log("PROBLEM " + text)

    def acks_of(self, org: int) -> list[Ack]:
        with self.lock:
            return [a for a in self.acks if a.org == org]

    def during_outage(self, hit: Hit) -> bool:
        end = hit.started + hit.seconds
        return any(hit.started < up + GRACE and end > down for down, up in self.outages)


def timed_request(run: Run, kind: str, call, *args, **kw) -> requests.Response | None:
    t0 = time.time()
    p0 = time.perf_counter()
    try:
        response = call(*args, timeout=120, allow_redirects=False, **kw)
    except requests.RequestException as exc:
        run.hit(Hit(kind, t0, time.perf_counter() - p0, 0, type(exc).__name__))
        return None
    run.hit(Hit(kind, t0, time.perf_counter() - p0, response.status_code))
    return response


# Files -----------------------------------------------------------------------------------------

def jpeg_bytes(rnd: random.Random) -> bytes:
    """A small photo-like JPEG of random pixels (the portal re-encodes images before storing them)."""
    from PIL import Image

    width, height = rnd.randrange(200, 360), rnd.randrange(150, 280)
    img = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def receipt_file(rnd: random.Random, n: int) -> tuple[str, bytes, str]:
    if n % 2:
        return f"scan-{n}.pdf", bench.pdf_bytes(rnd.uniform(0.02, 0.15)), "application/pdf"
    return f"photo-{n}.jpg", jpeg_bytes(rnd), "image/jpeg"


# Load ------------------------------------------------------------------------------------------

def cases_of(org: int) -> list[int]:
    return [cid for cid in range(1, CASES + 1) if (cid - 1) % ORGS + 1 == org]


def uploader(run: Run, number: int, org: int, deadline: float, think: float) -> None:
    rnd = random.Random(number)
    s = bench.sign_in(f"partner{org}@bench.example.org", bench_data.PASSWORD)
    n = number * 100_000
    while time.time() < deadline:
        n += 1
        case_id = rnd.choice(cases_of(org))
        t0, p0 = time.time(), time.perf_counter()
        try:
            fields = bench.receipt_form(s, case_id, n)
        except (requests.RequestException, AttributeError, SystemExit) as exc:
            run.hit(Hit("form", t0, time.perf_counter() - p0, 0, type(exc).__name__))
            time.sleep(1)
            continue
        run.hit(Hit("form", t0, time.perf_counter() - p0, 200))
        fields["supplier"] = f"Soak supplier {org}"
        name, body, ctype = receipt_file(rnd, n)
        sha = hashlib.sha256(body).hexdigest()
        url = f"{BASE}/cases/{case_id}/receipts/new"
        while True:
            r = timed_request(run, "upload", s.post, url, data=fields, files={"files": (name, body, ctype)})
            if r is not None and r.status_code == 303:
                match = re.search(r"/receipts/(\d+)$", r.headers.get("Location", ""))
                if not match:
                    run.problem(f"upload 303 without a receipt in Location: {r.headers.get('Location')!r}")
                    break
                with run.lock:
                    run.acks.append(Ack(int(match.group(1)), org, sha, ctype, fields["invoice_number"]))
                break
            if time.time() >= deadline:
                with run.lock:
                    run.gave_up += 1
                break
            if r is None or r.status_code == 503:
                pass  # no answer or "service unavailable": send the same form again (same nonce)
            elif r.status_code == 422 and TRY_AGAIN in r.text:
                fields["nonce"] = bench.NONCE_RE.search(r.text).group(1)  # the form as the portal sent it back
                fields["csrf_token"] = bench.csrf_of(r.text)
            elif r.status_code == 422 and IN_FLIGHT in r.text:
                pass
            elif r.status_code >= 500:
                run.problem(f"upload to case {case_id} answered {r.status_code}")
            else:
                errors = re.findall(r'<li><a href="#[^"]*">([^<]*)</a>', r.text)[:3]
                run.problem(f"upload to case {case_id} refused ({r.status_code}): {errors}")
                break
            time.sleep(rnd.uniform(0.5, 1.5))
        time.sleep(rnd.uniform(0, 2 * think))


def reader(run: Run, number: int, org: int, deadline: float, think: float) -> None:
    rnd = random.Random(1000 + number)
    s = bench.sign_in(f"partner{org}@bench.example.org", bench_data.PASSWORD)
    plain = requests.Session()  # the presigned link is fetched like a browser would: no portal cookie
    cases = cases_of(org)
    while time.time() < deadline:
        acks = run.acks_of(org)
        with_file = [a for a in acks if a.file_id]
        action = rnd.choices(["case list", "case page", "receipt page", "preview", "download"], [2, 3, 3, 1, 1])[0]
        if action in ("receipt page", "preview", "download") and not (with_file if action != "receipt page"
                                                                       else acks):
            action = "case page"
        if action == "case list":
            timed_request(run, action, s.get, f"{BASE}/cases/")
        elif action == "case page":
            timed_request(run, action, s.get, f"{BASE}/cases/{rnd.choice(cases)}")
        elif action == "receipt page":
            ack = rnd.choice(acks)
            r = timed_request(run, action, s.get, f"{BASE}/receipts/{ack.receipt_id}")
            if r is not None and r.status_code == 200:
                links = [(int(a), int(b)) for a, b in FILE_LINK_RE.findall(r.text) if int(a) == ack.receipt_id]
                if links:
                    ack.file_id = links[0][1]
                else:
                    run.problem(f"receipt {ack.receipt_id} (acknowledged) shows no file")
            elif r is not None and r.status_code == 404:
                run.problem(f"receipt {ack.receipt_id} (acknowledged) answers 404")
        elif action == "preview":
            ack = rnd.choice(with_file)
            timed_request(run, action, s.get, f"{BASE}/receipts/{ack.receipt_id}/files/{ack.file_id}/preview")
        else:
            ack = rnd.choice(with_file)
            r = timed_request(run, action, s.get, f"{BASE}/receipts/{ack.receipt_id}/files/{ack.file_id}")
            if r is not None and r.status_code == 302:
                got = timed_request(run, "s3 get", plain.get, r.headers["Location"])
                if got is not None and got.status_code == 200 and ack.content_type == "application/pdf" \
                        and hashlib.sha256(got.content).hexdigest() != ack.sha256:
                    run.problem(f"receipt {ack.receipt_id}: downloaded PDF differs from the uploaded one")
        time.sleep(rnd.uniform(0, 2 * think))


def guarded(run: Run, target, *args) -> None:
    """Run a user thread; a crash of the script itself is reported, never silently fewer users."""
    try:
        target(run, *args)
    except Exception as exc:  # noqa: BLE001 - reported as a problem of the run
        run.problem(f"{target.__name__} {args[0]} stopped: {type(exc).__name__}: {exc}")


def gateway(action: str) -> None:
    subprocess.run([str(S3_SCRIPT), action], check=True, capture_output=True, timeout=120)


def outages(run: Run, started: float, seconds: float, count: int, down_for: float, stop: threading.Event) -> None:
    """Stop the S3 gateway `count` times, evenly spread over the run, for `down_for` seconds each."""
    for k in range(1, count + 1):
        if stop.wait(max(0.0, started + seconds * k / (count + 1) - time.time())):
            return
        log(f"stopping the S3 gateway ({k}/{count})")
        down = time.time()  # uploads may fail from the moment the stop begins
        gateway("stop-gateway")
        stop.wait(down_for)
        gateway("start-gateway")
        up = time.time()
        with run.lock:
            run.outages.append((down, up))
        log(f"S3 gateway answering again after {up - down:.1f} s")


# Checking --------------------------------------------------------------------------------------

@dataclass
class Check:
    acknowledged: int = 0
    lost: list[str] = field(default_factory=list)
    orphan_objects: list[str] = field(default_factory=list)
    missing_objects: list[str] = field(default_factory=list)  # confirmed rows whose object is gone or differs
    intents_left: int = 0
    pending_left: int = 0
    receipts_in_db: int = 0
    objects: int = 0
    sweep: str = ""


def sha_of_object(storage, key: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with storage.open(key) as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def check(app, run: Run) -> Check:
    """Every acknowledged upload in the database and the bucket; orphans both ways."""
    from sqlmodel import Session, select

    from portal import db as dbm
    from portal.receipts.models import Receipt, ReceiptFile, ReceiptStatus
    from portal.storage import StorageError, get_storage

    result = Check()
    with app.app_context(), Session(dbm.engine()) as session:
        storage = get_storage()
        rows = session.exec(select(ReceiptFile)).all()
        by_key = {row.key: row for row in rows}
        listed = set(storage.keys("receipts/"))
        result.objects = len(listed)
        result.orphan_objects = sorted(listed - set(by_key))
        def read(key: str) -> tuple[str, int] | None:
            try:
                return sha_of_object(storage, key)
            except (FileNotFoundError, StorageError):
                return None

        confirmed = [row for row in rows if row.confirmed]
        result.intents_left = len(rows) - len(confirmed)
        with ThreadPoolExecutor(8) as pool:  # one S3 GET each: in parallel, the check takes seconds
            stored = dict(zip([row.key for row in confirmed], pool.map(read, [row.key for row in confirmed]),
                              strict=True))
        for row in confirmed:
            if stored[row.key] != (row.sha256, row.size):
                result.missing_objects.append(f"{row.key} (receipt {row.receipt_id}): stored {stored[row.key]}, "
                                              f"row says {(row.sha256, row.size)}")
        result.pending_left = len(session.exec(select(Receipt.id).where(Receipt.status == ReceiptStatus.PENDING)).all())
        result.receipts_in_db = len(session.exec(select(Receipt.id).where(Receipt.supplier.like("Soak supplier %"),
                                                                         Receipt.status != ReceiptStatus.PENDING))
                                    .all())
        seen: set[int] = set()
        for ack in run.acks:
            if ack.receipt_id in seen:
                continue
            seen.add(ack.receipt_id)
            receipt = session.get(Receipt, ack.receipt_id)
            if receipt is None or receipt.status == ReceiptStatus.PENDING:
                result.lost.append(f"receipt {ack.receipt_id}: {'no row' if receipt is None else 'still pending'}")
                continue
            if receipt.invoice_number != ack.invoice_number:
                result.lost.append(f"receipt {ack.receipt_id}: invoice {receipt.invoice_number!r}, "
                                   f"sent {ack.invoice_number!r}")
                continue
            files = [r for r in rows if r.receipt_id == ack.receipt_id and r.confirmed
                     and r.original_sha256 == ack.sha256]
            if not files:
                result.lost.append(f"receipt {ack.receipt_id}: no confirmed file with the uploaded SHA-256")
            elif stored.get(files[0].key) != (files[0].sha256, files[0].size):
                result.lost.append(f"receipt {ack.receipt_id}: object {files[0].key} missing or different")
        result.acknowledged = len(seen)
    return result


def sweep(env: dict) -> str:
    done = subprocess.run([str(bench.VENV / "bin" / "flask"), "--app", "portal", "receipts", "sweep", "--minutes", "0"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    return (done.stdout + done.stderr).strip() + ("" if done.returncode == 0 else f" (exit {done.returncode})")


def sabotage(app, run: Run) -> None:
    """--prove-checks: damage the bucket the way a bug would, so the checks are seen to catch it."""
    from sqlmodel import Session, select

    from portal import db as dbm
    from portal.receipts.models import ReceiptFile
    from portal.storage import get_storage, new_key

    with app.app_context(), Session(dbm.engine()) as session:
        ack = run.acks[len(run.acks) // 2]
        row = session.exec(select(ReceiptFile).where(ReceiptFile.receipt_id == ack.receipt_id)).first()
        get_storage().delete(row.key)
        stray = new_key("receipts/1")
        get_storage().put(stray, io.BytesIO(b"no row refers to this"), content_type="text/plain")
    log(f"--prove-checks: deleted {row.key} (receipt {ack.receipt_id}), stored {stray}")


def remove_bucket(app) -> None:
    from portal.storage import get_storage

    with app.app_context():
        storage = get_storage()
        for key in list(storage.keys("")):
            storage.delete(key)
        storage.client.delete_bucket(Bucket=storage.bucket)


# Report ----------------------------------------------------------------------------------------

def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of the values (seconds), in milliseconds."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return 1000 * ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def latency(hits: list[Hit]) -> str:
    values = [h.seconds for h in hits]
    if not values:
        return "–"
    return (f"p50 {percentile(values, 50):,.0f} ms, p95 {percentile(values, 95):,.0f} ms, "
            f"p99 {percentile(values, 99):,.0f} ms (n={len(values):,})")


def report(run: Run, result: Check, args, seconds: float, log_text: str) -> tuple[str, bool]:
    portal_hits = [h for h in run.hits if h.kind != "s3 get"]
    unexpected_5xx = [h for h in portal_hits if h.status >= 500 and h.status != 503]
    uploads = [h for h in run.hits if h.kind == "upload"]
    reads = [h for h in portal_hits if h.kind not in ("upload", "form")]
    outage_uploads = [h for h in uploads if run.during_outage(h)]
    calm_uploads = [h for h in uploads if not run.during_outage(h)]
    statuses = Counter((h.kind, h.status) for h in portal_hits)
    out_status = Counter((h.kind, h.status) for h in portal_hits if run.during_outage(h))
    no_answer = [h for h in portal_hits if h.status == 0]
    tracebacks = log_text.count("Traceback (most recent call last)")
    timeouts = log_text.count("WORKER TIMEOUT")
    orphans = len(result.orphan_objects) + len(result.missing_objects)
    down = sum(up - dn for dn, up in run.outages)
    ok = not result.lost and orphans == 0 and not unexpected_5xx

    def count(kind: str, status: int, where: Counter = statuses) -> int:
        return where[(kind, status)]

    rows = [
        ("acknowledged uploads (303 to the receipt)", f"{result.acknowledged:,}"
         + (f" (+{len(run.acks) - result.acknowledged} repeated forms answered with the same receipt)"
            if len(run.acks) > result.acknowledged else ""), ""),
        ("lost uploads (acknowledged, not in the database and S3 with the same SHA-256)", f"{len(result.lost)}", "0"),
        ("orphans after the sweep (objects without a row + rows without their object)",
         f"{len(result.orphan_objects)} + {len(result.missing_objects)}", "0"),
        ("unexpected 5xx (other than 503)", f"{len(unexpected_5xx)}", "0"),
        ("upload latency, all attempts", latency(uploads), ""),
        ("upload latency, S3 up", latency(calm_uploads), ""),
        ("upload latency, during the S3 outages", latency(outage_uploads), ""),
        ("read latency (case list, case/receipt pages, previews, download links)", latency(reads), ""),
        ("throughput", f"{result.acknowledged / (seconds / 60):,.1f} acknowledged uploads/min, "
         f"{len(reads) / seconds:,.1f} reads/s", ""),
        ("upload attempts: 303 / 422 try again / 503 / no answer",
         f"{count('upload', 303)} / {count('upload', 422)} / {count('upload', 503)} / {count('upload', 0)}", ""),
        ("… of them during the outages (+5 s)",
         f"{count('upload', 303, out_status)} / {count('upload', 422, out_status)} / "
         f"{count('upload', 503, out_status)} / {count('upload', 0, out_status)}", ""),
        ("forms still being retried when the run ended (not acknowledged, not counted as lost)", f"{run.gave_up}", ""),
        ("receipts saved in the database (soak suppliers, not pending)", f"{result.receipts_in_db:,}", ""),
        ("objects under receipts/ checked by SHA-256", f"{result.objects:,}", ""),
        ("the sweep removed", result.sweep.removeprefix("removed "), ""),
        ("upload intents / pending receipts left after the sweep", f"{result.intents_left} / {result.pending_left}", "0 / 0"),
        ("S3 outages (stop-gateway, pause, start-gateway)",
         f"{len(run.outages)} × {args.outage:.0f} s pause; {down:.0f} s in all from each stop until S3 answered again",
         ""),
        ("requests without an answer (connection refused/reset, 120 s timeout)", f"{len(no_answer)}", ""),
        ("gunicorn log: tracebacks / worker timeouts", f"{tracebacks} / {timeouts}", ""),
    ]
    lines = ["| measure | value | must be |", "|---|---|---|"]
    lines += [f"| {what} | {value} | {target} |" for what, value, target in rows]
    by_kind = sorted({k for k, _s in statuses})
    lines += ["", "Answers by request kind (status: count; 0 = no answer; outage = gateway down + 5 s):", ""]
    for kind in by_kind:
        all_ = ", ".join(f"{s}: {c}" for (k, s), c in sorted(statuses.items()) if k == kind)
        during = ", ".join(f"{s}: {c}" for (k, s), c in sorted(out_status.items()) if k == kind)
        lines.append(f"- {kind}: {all_}" + (f" (outage: {during})" if during else ""))
    s3_gets = Counter(h.status for h in run.hits if h.kind == "s3 get")
    if s3_gets:
        lines.append(f"- presigned S3 link followed: {dict(sorted(s3_gets.items()))}")
    lines += ["", "Sweep: `flask --app portal receipts sweep --minutes 0`, run after gunicorn stopped."]
    details = ([f"lost: {x}" for x in result.lost] + [f"orphan object: {x}" for x in result.orphan_objects]
               + [f"row without its object: {x}" for x in result.missing_objects]
               + [f"unexpected {h.status}: {h.kind} at {time.strftime('%H:%M:%S', time.localtime(h.started))}"
                  for h in unexpected_5xx] + run.problems)
    if details:
        lines += ["", "Details (first 40):", ""] + [f"- {d}" for d in details[:40]]
    lines += ["", f"Run: {seconds / 60:.1f} min of load, {args.uploaders} uploaders, {args.readers} readers "
              f"({ORGS} partner organisations, {CASES} cases), think time ≤ {2 * args.think:.1f} s; "
              f"gunicorn -c python:portal.gunicorn_conf ({bench.WORKERS} gthread workers × 8 threads), "
              f"PORTAL_ENV=production, PostgreSQL, Ceph RGW; {os.cpu_count()} CPUs. "
              f"Result: {'PASS' if ok else 'FAIL'}."]
    return "\n".join(lines), ok


# Main ------------------------------------------------------------------------------------------

def soak_env(bucket: str) -> dict[str, str]:
    env = bench.portal_env()
    env.update({
        "S3_BUCKET": bucket, "PORTAL_INSTANCE_DIR": str(OUT / "soak-instance"),
        # Every simulated partner signs in from 127.0.0.1: the per-address sign-in limit (10 a minute)
        # would refuse the twelfth of them.
        "LOGIN_RATE_LIMIT": "1000 per minute",
    })
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.5, help="length of the load (default 3.5)")
    parser.add_argument("--uploaders", type=int, default=8)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--outages", type=int, default=2, help="S3 gateway stops during the load (default 2)")
    parser.add_argument("--outage", type=float, default=20, help="seconds the gateway stays down (default 20)")
    parser.add_argument("--think", type=float, default=0.5, help="mean pause between a user's requests (s)")
    parser.add_argument("--keep-bucket", action="store_true", help="keep the bucket after a passing run")
    parser.add_argument("--prove-checks", action="store_true",
                        help="before checking, delete one acknowledged upload's object and store one object no "
                             "row refers to: the run must then report 1 lost, 1 + 1 orphans and fail")
    args = parser.parse_args()

    OUT.mkdir(exist_ok=True)
    bucket = f"integplan-soak-{secrets.token_hex(4)}"
    env = soak_env(bucket)
    os.environ.update(env)
    os.environ["RATELIMIT_STORAGE_URI"] = "memory://"  # the in-process app only checks; it serves no one
    run = Run()
    server = None
    stop = threading.Event()
    outage_thread = None
    try:
        log(f"fresh database {DB_NAME}, migrations; bucket {bucket}")
        bench.fresh_database()
        engine = sa.create_engine(bench.DB_URL)
        bench_data.base(engine, n_orgs=ORGS, n_cases=CASES, n_visits=CASES)
        engine.dispose()
        from portal import create_app

        app = create_app()
        with app.app_context():
            from portal.storage import get_storage

            get_storage().ensure_ready()
        server = bench.gunicorn("soak", "portal:create_app()", PORT, env, ROOT)
        log(f"portal under gunicorn on {BASE} (log: {OUT / 'gunicorn-soak.log'})")

        seconds = args.minutes * 60
        started = time.time()
        deadline = started + seconds
        threads = [threading.Thread(target=guarded, args=(run, uploader, i, i % ORGS + 1, deadline, args.think),
                                    daemon=True) for i in range(args.uploaders)]
        threads += [threading.Thread(target=guarded, args=(run, reader, i, i % ORGS + 1, deadline, args.think),
                                     daemon=True) for i in range(args.readers)]
        outage_thread = threading.Thread(target=outages, args=(run, started, seconds, args.outages, args.outage, stop),
                                         daemon=True)
        log(f"load: {args.uploaders} uploaders, {args.readers} readers for {args.minutes} min; "
            f"{args.outages} S3 outages of {args.outage:.0f} s")
        for t in threads:
            t.start()
        outage_thread.start()
        while any(t.is_alive() for t in threads):
            time.sleep(10)
            with run.lock:
                n_acks, n_hits = len(run.acks), len(run.hits)
            log(f"  {n_acks} acknowledged uploads, {n_hits} requests")
        outage_thread.join()
        elapsed = max(h.started + h.seconds for h in run.hits) - started
    finally:
        stop.set()
        if outage_thread is not None:
            outage_thread.join(timeout=150)
        gateway("start-gateway")  # never leave S3 down for the others on this machine
        if server is not None:
            server.stop()

    log("sweep, then checking every acknowledged upload")
    result_sweep = sweep(env)
    if args.prove_checks:
        sabotage(app, run)
    result = check(app, run)
    result.sweep = result_sweep
    log_text = (OUT / "gunicorn-soak.log").read_text(errors="replace")
    table, ok = report(run, result, args, elapsed, log_text)
    text = "# Soak\n\n" + table + "\n"
    (OUT / "soak.md").write_text(text)
    print(text)
    if ok and not args.keep_bucket:
        remove_bucket(app)
    else:
        log(f"bucket {bucket} and database {DB_NAME} kept for inspection")
    log(f"written: {OUT / 'soak.md'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
