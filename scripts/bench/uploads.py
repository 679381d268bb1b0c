"""Resumable uploads over emulated 2G (issue 12, "Measured"): run on its own with

    python -m scripts.bench.uploads [--pdf-mb 6] [--only photo|pdf] [--keep]

from the repository root (the venv's python; after `make assets`). It starts the portal under gunicorn
(PORTAL_ENV=production, the README's command) on a fresh PostgreSQL database (BENCH_ADMIN_URL, else SQLite)
and the S3 server when S3_ENDPOINT_URL is set (else local files), loads the demo data, and drives
Debian's Chromium at 390×844 on emulated 2G (250 kbit/s down, 50 kbit/s up, 300 ms):

- a 4 MB phone photo, then a 6 MB PDF scan, each on the receipt form: the connection is cut at 50 % of the
  upload for 10 s, and the page is reloaded at 70 % (the form is filled in again after the reload, as the
  person would; the file comes back by itself). Reported: the request bytes the tus endpoint received
  (request line, headers and bodies, counted in the server) ÷ the stored file's size and ÷ the bytes the
  browser had to send (the shrunk photo); and the seconds from choosing the file until the saved receipt's
  page has loaded (photo target ≤ 35 s including the 10 s cut);
- the first load of the receipt form with its scripts and style sheet, compressed as sent (≤ 60 KB).

The PDF leg takes about 17 minutes (6 MB at 50 kbit/s); `--pdf-mb 1` or `--only photo` for a quick run.
Writes bench-results/uploads.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urljoin

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT), str(HERE)]

OUT = ROOT / "bench-results"
VENV = Path(os.environ.get("VENV", ROOT / ".venv"))
PORT = int(os.environ.get("BENCH_UPLOADS_PORT", "8092"))
BASE = f"http://127.0.0.1:{PORT}"
UA = "Mozilla/5.0 (X11; Linux x86_64) integplan-bench/1"
PARTNER = "partner.a@example.org"
TWO_G = {"offline": False, "latency": 300, "downloadThroughput": 250_000 // 8, "uploadThroughput": 50_000 // 8}
CUT = {**TWO_G, "offline": True}
FAST = {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
CUT_SECONDS = 10
COUNT_FILE = "BENCH_TUS_COUNT_FILE"


def log(msg: str) -> None:
    print(f"[uploads {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# The server: the portal, with the tus requests' bytes counted -------------------------------------

def counted_app():
    """gunicorn's app: the portal, appending one line per /uploads/ request to $BENCH_TUS_COUNT_FILE:
    method, path, bytes of request line + headers, body bytes the portal read, Upload-Length (creation)."""
    from portal import create_app

    app = create_app()
    inner = app.wsgi_app
    path = os.environ[COUNT_FILE]
    lock = threading.Lock()

    class Counted:
        def __init__(self, stream):
            self.stream, self.n = stream, 0

        def read(self, *args):
            data = self.stream.read(*args)
            self.n += len(data)
            return data

        def readline(self, *args):
            data = self.stream.readline(*args)
            self.n += len(data)
            return data

        def readinto(self, buffer):  # werkzeug's LimitedStream reads this way when it can
            data = self.read(len(buffer))
            buffer[:len(data)] = data
            return len(data)

        def __getattr__(self, name):
            return getattr(self.stream, name)

    def counting(environ, start_response):
        if not environ.get("PATH_INFO", "").startswith("/uploads/"):
            return inner(environ, start_response)
        head = len(environ["REQUEST_METHOD"]) + len(environ.get("RAW_URI") or environ["PATH_INFO"]) + 11
        head += sum(len(k) - 5 + len(str(v)) + 4 for k, v in environ.items() if k.startswith("HTTP_"))
        head += sum(len(k) + len(str(environ[k])) + 4 for k in ("CONTENT_TYPE", "CONTENT_LENGTH") if environ.get(k))
        counted = Counted(environ["wsgi.input"])
        environ["wsgi.input"] = counted
        try:
            return inner(environ, start_response)
        finally:
            line = json.dumps([environ["REQUEST_METHOD"], environ["PATH_INFO"], head, counted.n,
                               int(environ.get("HTTP_UPLOAD_LENGTH") or 0)])
            with lock, open(path, "a") as fh:
                fh.write(line + "\n")

    app.wsgi_app = counting
    return app


def counts(path: Path, since: int = 0) -> list[list]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines[since:]]


class Portal:
    def __init__(self, work: Path):
        self.work = work
        self.count_file = work / "tus-requests.jsonl"
        self.proc: subprocess.Popen | None = None
        self.db_name = ""
        self.env = dict(os.environ)
        admin = os.environ.get("BENCH_ADMIN_URL", "")
        if admin:
            self.db_name = f"integplan_bench_uploads_{secrets.token_hex(4)}"
            db_url = admin.rsplit("/", 1)[0] + "/" + self.db_name
        else:
            db_url = f"sqlite:///{work / 'portal.db'}"
        storage = ({"STORAGE_BACKEND": "s3", "S3_BUCKET": f"bench-uploads-{secrets.token_hex(4)}"}
                   if os.environ.get("S3_ENDPOINT_URL") else
                   {"STORAGE_BACKEND": "local", "STORAGE_LOCAL_DIR": str(work / "files")})
        self.env.update({
            "PORTAL_ENV": "production", "SECRET_KEY": secrets.token_urlsafe(32), "COOKIE_SECURE": "false",
            "DATABASE_URL": db_url, "BASE_URL": BASE, "PORTAL_INSTANCE_DIR": str(work / "instance"),
            "TOTP_REQUIRED_ROLES": "", "RATELIMIT_STORAGE_URI": "memory://", "RATELIMIT_ENABLED": "false",
            COUNT_FILE: str(self.count_file), **storage,
        })
        self.admin = admin

    def start(self) -> None:
        import sqlalchemy as sa
        from sqlmodel import Session

        if self.db_name:
            engine = sa.create_engine(self.admin, isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{self.db_name}"'))
            engine.dispose()
        from portal.db import upgrade

        upgrade(self.env["DATABASE_URL"])
        os.environ.update(self.env)
        from portal import create_app
        from portal.demo import load_demo
        from portal.storage import get_storage

        app = create_app()
        with app.app_context():
            get_storage().ensure_ready()
            with Session(app.extensions["db_engine"], expire_on_commit=False) as session:
                load_demo(session)
        app.extensions["db_engine"].dispose()
        logf = open(self.work / "gunicorn.log", "w")  # noqa: SIM115 - lives as long as the server
        env = {**self.env, "WEB_CONCURRENCY": "2", "BIND": f"127.0.0.1:{PORT}", "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen([str(VENV / "bin" / "gunicorn"), "-c", "python:portal.gunicorn_conf",
                                      "--chdir", str(HERE), "uploads:counted_app()"],
                                     env=env, stdout=logf, stderr=subprocess.STDOUT)
        import requests

        deadline = time.time() + 60
        while time.time() < deadline and self.proc.poll() is None:
            try:
                requests.get(BASE + "/login", timeout=10)
                return
            except requests.RequestException:
                time.sleep(0.3)
        raise SystemExit(f"the portal did not start: see {logf.name}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.db_name:
            import sqlalchemy as sa

            engine = sa.create_engine(self.admin, isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)'))
            engine.dispose()

    def engine(self):
        import sqlalchemy as sa

        return sa.create_engine(self.env["DATABASE_URL"])


# Page weight --------------------------------------------------------------------------------------

ASSET_RE = re.compile(r'<(?:link[^>]+rel="stylesheet"[^>]+href|script[^>]+src)="([^"]+)"')
CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
BUNDLE_RE = re.compile(r'data-bundle="([^"]+)"')


def first_load(path: str) -> tuple[int, list[tuple[str, int]]]:
    """The receipt form and its scripts and style sheets as sent (compressed), signed in as the partner."""
    import requests

    s = requests.Session()
    s.headers["User-Agent"] = UA
    form = s.get(BASE + "/login")
    s.post(BASE + "/login", data={"csrf_token": CSRF_RE.search(form.text).group(1), "email": PARTNER,
                                  "password": _password()})

    def wire(url: str) -> tuple[int, str]:
        r = s.get(url, headers={"Accept-Encoding": "gzip"}, stream=True, allow_redirects=False)
        raw = r.raw.read(decode_content=False)
        body = gzip.decompress(raw) if r.headers.get("Content-Encoding") == "gzip" else raw
        return len(raw), body.decode("utf-8", "replace")

    size, html = wire(BASE + path)
    parts = [(path, size)]
    for asset in sorted(set(ASSET_RE.findall(html))):
        n = wire(urljoin(BASE + path, asset))[0]
        parts.append((asset, n))
        size += n
    # Fetched on demand (when a file field is used), not part of the first load: reported on its own.
    for bundle in sorted(set(BUNDLE_RE.findall(html))):
        parts.append((f"on demand: {bundle}", wire(urljoin(BASE + path, bundle))[0]))
    return size, parts


def _password() -> str:
    from portal.demo import DEMO_PASSWORD

    return DEMO_PASSWORD


# The browser --------------------------------------------------------------------------------------

def _fill(page, invoice: str) -> None:
    page.select_option("select[name=budget_line_id]", index=1)
    page.fill("input[name=supplier]", "Resumable upload supplier")
    page.fill("input[name=invoice_number]", invoice)
    page.fill("input[name=invoice_date]", "2024-06-01")
    page.fill("input[name=amount]", "42.00")
    page.select_option("select[name=currency]", "EUR")
    page.fill("textarea[name=description]", "Tools, photographed with a phone")
    page.check("input[name=paid_directly]")


def _progress(page) -> tuple[int, int]:
    """(percent, bytes total) of the card being uploaded, from its progress bar; (-1, 0) if none."""
    try:
        return page.evaluate("""() => { const b = document.querySelector('.upload-card progress');
            return b ? [b.value, 0] : [-1, 0]; }""")
    except Exception:  # noqa: BLE001 - the page is navigating
        return (-1, 0)


def leg(browser, portal: Portal, case_id: int, file: Path, cap_s: float) -> dict:
    """One file on the receipt form over 2G, cut at 50 % for 10 s, reloaded at 70 %."""
    context = browser.new_context(user_agent=UA, locale="en-GB", viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.set_default_timeout(int(cap_s * 1000))
    page.on("dialog", lambda dialog: dialog.accept())  # the leave warning at the reload: leave
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", FAST)  # signing in is not what is measured
    page.goto(BASE + "/login")
    page.fill("input[name=email]", PARTNER)
    page.fill("input[name=password]", _password())
    with page.expect_navigation():
        page.click("form [type=submit]:not(.secondary)")
    cdp.send("Network.emulateNetworkConditions", TWO_G)
    page.goto(f"{BASE}/cases/{case_id}/receipts/new", wait_until="load")
    invoice = f"UP-{time.time_ns()}"
    _fill(page, invoice)
    since = len(counts(portal.count_file))
    events = []
    t0 = time.perf_counter()
    page.set_input_files("input[name=files]", str(file))
    # Sent at once: the form waits for the file and goes as soon as it is uploaded.
    page.click("form[data-upload] [type=submit]")
    cut = reloaded = False
    saved = None
    # Where the upload is: the progress bar, or (it moves in steps of a whole tus piece) the time the bytes
    # need at 50 kbit/s since the server created the upload.
    created_at = length = 0.0
    back_at = 0.0
    samples: list[tuple[float, int]] = []
    while time.perf_counter() - t0 < cap_s:
        if re.search(r"/receipts/\d+$", page.url):
            page.wait_for_load_state("load")
            saved = time.perf_counter() - t0
            break
        if not created_at:
            posts = [r for r in counts(portal.count_file, since) if r[0] == "POST"]
            if posts:
                created_at, length = time.perf_counter(), posts[0][4]
        pct = _progress(page)[0]
        samples.append((round(time.perf_counter() - t0, 1), pct))
        need = length / TWO_G["uploadThroughput"] if length else float("inf")
        if created_at and not cut:
            pct = max(pct, int(100 * (time.perf_counter() - created_at) / need))
        elif cut and back_at:
            pct = max(pct, 50 + int(100 * (time.perf_counter() - back_at) / need))
        if not cut and pct >= 50:
            events.append((round(time.perf_counter() - t0, 1), f"cut at {pct} %"))
            cdp.send("Network.emulateNetworkConditions", CUT)
            page.wait_for_timeout(CUT_SECONDS * 1000)
            cdp.send("Network.emulateNetworkConditions", TWO_G)
            cut, back_at = True, time.perf_counter()
            continue
        if cut and not reloaded and pct >= 70:
            events.append((round(time.perf_counter() - t0, 1), f"reload at {pct} %"))
            reloaded = True
            page.reload(wait_until="load")
            # The person fills in the form again (the file comes back by itself) and sends it.
            page.wait_for_selector(".upload-card")
            _fill(page, invoice)
            page.click("form[data-upload] [type=submit]")
            events.append((round(time.perf_counter() - t0, 1), "form filled in again and sent"))
            continue
        page.wait_for_timeout(200)
    cdp.send("Network.emulateNetworkConditions", FAST)
    rows = counts(portal.count_file, since)
    stored = uploaded = 0
    with portal.engine().connect() as conn:
        import sqlalchemy as sa

        got = conn.execute(sa.text("SELECT rf.size FROM receipt_files rf JOIN receipts r ON r.id = rf.receipt_id "
                                   "WHERE r.invoice_number = :n"), {"n": invoice}).all()
        stored = sum(r[0] for r in got)
    for method, _path, _head, body, _length in rows:
        if method == "PATCH":
            uploaded += body
    sent = sum(head + body for _m, _p, head, body, _length in rows)
    patches = sum(1 for r in rows if r[0] == "PATCH")
    # The bytes the upload had to carry: the Upload-Length of its creation (the photo after shrinking).
    length = sum(r[4] for r in rows if r[0] == "POST")
    context.close()
    return {"file": file.name, "size": file.stat().st_size, "saved_s": saved, "stored": stored,
            "tus_requests": len(rows), "patches": patches, "patch_body_bytes": uploaded,
            "request_bytes": sent, "events": events, "length": length,
            "progress": [s for i, s in enumerate(samples) if i == 0 or s[1] != samples[i - 1][1]]}


# Partner and public pages for the widest-page measure (the full walk, with every page, is the browser test
# tests/test_phone_browser.py; this is the figure for the bench table).
PUBLIC_PAGES = ("/login", "/reset", "/workshops/privacy")
PARTNER_PAGES = ("/cases/", "/cases/{case}", "/cases/{case}/receipts/new", "/cases/{case}/visits/new",
                 "/visits/due", "/receipts/search?q=a", "/account")
LANGS = ("en", "de", "fr", "ar", "ru")


def widest(browser, portal: Portal, case_id: int) -> dict[int, tuple[int, str]]:
    """The widest partner or public page (document scroll width) at 360 and 390 px, in every language."""
    import sqlalchemy as sa

    found: dict[int, tuple[int, str]] = {}
    for width in (360, 390):
        for lang in LANGS:
            with portal.engine().begin() as conn:  # a signed-in partner sees their own language
                conn.execute(sa.text("UPDATE users SET locale = :l WHERE email = :e"), {"l": lang, "e": PARTNER})
            context = browser.new_context(user_agent=UA, locale=lang, viewport={"width": width, "height": 740})
            page = context.new_page()
            for path in PUBLIC_PAGES:
                page.goto(BASE + path, wait_until="load")
                wide = page.evaluate("() => document.documentElement.scrollWidth")
                if wide > found.get(width, (0, ""))[0]:
                    found[width] = (wide, f"{lang} {path}")
            page.goto(BASE + "/login")
            page.fill("input[name=email]", PARTNER)
            page.fill("input[name=password]", _password())
            with page.expect_navigation():
                page.click("form [type=submit]:not(.secondary)")
            for path in PARTNER_PAGES:
                page.goto(BASE + path.format(case=case_id), wait_until="load")
                wide = page.evaluate("() => document.documentElement.scrollWidth")
                if wide > found.get(width, (0, ""))[0]:
                    found[width] = (wide, f"{lang} {path}")
            context.close()
    return found


def measure(pdf_mb: float = 6.0, photo_mb: float = 4.0, only: str | None = None,
            keep: bool = False) -> list[tuple[str, str, str, bool | None]]:
    """Start the portal, measure, stop it. Rows of (what, value, target, met or None); `make bench` adds them
    to its table (scripts/bench/run.py)."""
    from browser import ARGS, CHROMIUM, phone_photo
    from playwright.sync_api import sync_playwright
    from run import pdf_bytes

    OUT.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-uploads-"))
    portal = Portal(work)
    results = []
    try:
        log(f"portal on {BASE} ({'PostgreSQL' if portal.db_name else 'SQLite'}, "
            f"{portal.env['STORAGE_BACKEND']} storage); work dir {work}")
        portal.start()
        import sqlalchemy as sa

        with portal.engine().connect() as conn:
            case_id = conn.execute(sa.text(
                "SELECT c.id FROM cases c JOIN users u ON u.organisation_id = c.organisation_id "
                "JOIN budget_lines b ON b.case_id = c.id WHERE u.email = :e ORDER BY c.id LIMIT 1"),
                {"e": PARTNER}).scalar_one()
        weight, parts = first_load(f"/cases/{case_id}/receipts/new")
        log(f"first load of the receipt form: {weight / 1024:.1f} KB compressed: "
            + ", ".join(f"{p} {n / 1024:.1f}" for p, n in parts))
        files = []
        if only in (None, "photo"):
            photo = work / "IMG_2G.jpg"
            phone_photo(photo, photo_mb)
            files.append((photo, 120.0))
        if only in (None, "pdf"):
            pdf = work / "scan-2G.pdf"
            pdf.write_bytes(pdf_bytes(pdf_mb))
            files.append((pdf, 1.5 * pdf_mb * 8_000_000 / 50_000 + 120))
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            wide = widest(browser, portal, case_id)
            log(f"widest page: {wide}")
            for file, cap in files:
                log(f"{file.name}: {file.stat().st_size / 1e6:.1f} MB over 2G (cap {cap:.0f} s)")
                r = leg(browser, portal, case_id, file, cap)
                log(f"  {json.dumps(r)}")
                results.append(r)
            browser.close()
    finally:
        portal.stop()
        if not keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)

    rows: list[tuple[str, str, str, bool | None]] = [
        ("2G uploads: first load of the receipt form with its scripts, compressed", f"{weight / 1024:.1f} KB",
         "≤ 60 KB", weight <= 60 * 1024)]
    for width, (px, where) in sorted(wide.items()):
        rows.append((f"widest partner or public page at {width} px (5 languages)", f"{px} px ({where})",
                     f"≤ {width} px", px <= width))
    for name, n in parts:
        if name.startswith("on demand"):
            rows.append((f"2G uploads: {name} (when a file field is used)", f"{n / 1024:.1f} KB", "", None))
    for r in results:
        kind = "photo" if r["file"].endswith(".jpg") else "PDF scan"
        what = f"2G uploads, {kind} {r['size'] / 1e6:.1f} MB (cut at 50 % for {CUT_SECONDS} s, reload at 70 %)"
        ratio = r["request_bytes"] / r["stored"] if r["stored"] else float("inf")
        body_ratio = r["patch_body_bytes"] / r["stored"] if r["stored"] else float("inf")
        sent_ratio = r["request_bytes"] / r["length"] if r["length"] else float("inf")
        rows.append((f"{what}: tus request bytes ÷ stored file ({r['stored'] / 1e3:.0f} KB)",
                     f"{ratio:.3f} (bodies alone {body_ratio:.3f}; {r['tus_requests']} requests, "
                     f"{r['patches']} PATCH)", "≤ 1.15", ratio <= 1.15))
        rows.append((f"{what}: tus request bytes ÷ bytes to upload (Upload-Length {r['length'] / 1e3:.0f} KB)",
                     f"{sent_ratio:.3f}", "≤ 1.15", sent_ratio <= 1.15))
        took = f"{r['saved_s']:.1f} s" if r["saved_s"] else "not saved"
        rows.append((f"{what}: seconds from choosing the file until the receipt is saved", took,
                     "≤ 35 s" if kind == "photo" else "",
                     (r["saved_s"] is not None and r["saved_s"] <= 35) if kind == "photo" else None))
        rows.append((f"{what}: events", "; ".join(f"{t} s {e}" for t, e in r["events"]) or "none", "", None))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pdf-mb", type=float, default=6.0)
    parser.add_argument("--photo-mb", type=float, default=4.0)
    parser.add_argument("--only", choices=("photo", "pdf"))
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    rows = measure(args.pdf_mb, args.photo_mb, args.only, args.keep)
    lines = ["| measure | value | target | met |", "|---|---|---|---|"]
    for what, value, target, ok in rows:
        lines.append(f"| {what} | {value} | {target} | {'' if ok is None else ('yes' if ok else '**no**')} |")
    table = "\n".join(lines)
    print(table)
    (OUT / "uploads.md").write_text("# Resumable uploads over emulated 2G\n\n" + table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
