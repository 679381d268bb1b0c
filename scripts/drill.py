"""`make drill`: back up the database and the bucket, add records, destroy both, restore, verify.

Runs against the PostgreSQL server and the Ceph S3 gateway that scripts/drill.sh started, on a database
and a bucket of its own (unique names, removed at the end unless --keep):

1. setup: `flask db upgrade`, `flask init-storage`, `flask demo load`, then more receipts with real files
   (photos, scans, PDFs, one over the multipart limit), handover proofs, previews, reviewer decisions,
   visits with photos, comments, a sample draw and a workshop — all through the portal's own services;
2. backup: `pg_dump -Fc`; every object copied through the storage API (`keys`, `open`); a manifest with,
   per table, the row count and a SHA-256 over its rows in primary-key order (every table, audit_log and
   alembic_version included), the sequences, the schema objects, and per object its size and SHA-256;
3. records added after the backup — a receipt with a file and its preview, a visit with a photo, a
   comment — which the restore must not bring back;
4. destroy: the database dropped, every object and the bucket deleted;
5. restore: `pg_restore` into a new database of the same name, the bucket recreated and every object
   uploaded from the backup through the storage API;
6. verify: tables, sequences and schema against the manifest; the key set and every object's SHA-256;
   every receipt file and visit photo row against its object; the post-backup records absent; the audit
   chain (`flask audit verify`); the restored portal signing in, serving a case page and downloads;
7. a summary on stdout and in bench-results/drill.md. Exit status 1 on any mismatch, naming it.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from pathlib import Path
from uuid import UUID

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE / "bench")]

import pyotp  # noqa: E402
import requests  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from run import big_pdf, csrf_of  # noqa: E402 - scripts/bench/run.py: random-pixel PDFs, the sign-in form's token
from sqlmodel import Session, select  # noqa: E402

OUT = ROOT / "bench-results"
WORK = OUT / "drill"
BACKUP = WORK / "backup"
VENV = Path(os.environ.get("VENV", ROOT / ".venv"))
ADMIN_URL = os.environ.get("DRILL_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
RUN_ID = secrets.token_hex(4)
DB_NAME = f"integplan_drill_{RUN_ID}"
BUCKET = f"integplan-drill-{RUN_ID}"
DB_URL = sa.engine.make_url(ADMIN_URL).set(database=DB_NAME).render_as_string(hide_password=False)
# pg_dump and pg_restore speak libpq: the same URL without SQLAlchemy's driver suffix.
LIBPQ_URL = sa.engine.make_url(DB_URL).set(drivername="postgresql").render_as_string(hide_password=False)
EXTRA_RECEIPTS = 30
BIG_PDF_MB = 17  # above the S3 backend's single-PUT limit (16 MiB): stored, copied and restored in parts
CHUNK = 1024 * 1024
STAFF_EMAIL = "staff@example.org"

_T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[drill {time.monotonic() - _T0:6.1f}s] {msg}", flush=True)


# S3 may go away for a moment (a gateway restart): wait for it and try again, and count it -----------

RETRIES: Counter = Counter()


def s3_answers() -> bool:
    try:
        requests.get(os.environ["S3_ENDPOINT_URL"], timeout=2)
        return True
    except requests.RequestException:
        return False


def wait_for_s3(seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not s3_answers():
        if time.monotonic() > deadline:
            raise RuntimeError(f"S3 at {os.environ['S3_ENDPOINT_URL']} did not answer for {seconds:.0f} s")
        time.sleep(0.5)


def retrying(what: str, fn, *args, attempts: int = 4, **kwargs):
    """fn(*args) with up to `attempts` tries; between tries, wait until S3 answers again."""
    for attempt in range(1, attempts + 1):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - storage, botocore and service errors alike; re-raised at the end
            if attempt == attempts:
                raise
            RETRIES[what] += 1
            log(f"{what}: {type(exc).__name__}: {str(exc)[:160]} — waiting for S3, try {attempt + 1}/{attempts}")
            time.sleep(1)
            wait_for_s3()
    raise AssertionError("unreachable")


# The run's record: timings, checks, figures -----------------------------------------------------

@dataclass
class Report:
    durations: dict[str, float] = field(default_factory=dict)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    figures: dict[str, object] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
            log(f"NOTE {text}")

    def check(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append((name, ok, detail))
        log(f"{'PASS' if ok else 'FAIL'} {name}: {detail}")
        return ok

    @property
    def failed(self) -> list[tuple[str, bool, str]]:
        return [c for c in self.checks if not c[1]]


@contextmanager
def step(report: Report, name: str):
    log(f"== {name}")
    started = time.monotonic()
    yield
    report.durations[name] = time.monotonic() - started
    log(f"== {name}: {report.durations[name]:.2f} s")


def mib(n: int) -> str:
    return f"{n / 1024 / 1024:.2f} MiB"


# Environment, commands, the app ---------------------------------------------------------------------

def configure_environment() -> None:
    """What the portal reads (flask CLI and in-process apps alike): our database and bucket on S3."""
    os.environ.update({
        "DATABASE_URL": DB_URL, "STORAGE_BACKEND": "s3", "S3_BUCKET": BUCKET,
        "PORTAL_INSTANCE_DIR": str(WORK / "instance"), "RATELIMIT_STORAGE_URI": "memory://",
        # Nothing listens for mail here: queued messages stay in the outbox (a table the drill checks too).
        "MAIL_TIMEOUT": "2", "BASE_URL": "http://127.0.0.1:5000",
    })
    if not os.environ.get("S3_ENDPOINT_URL"):
        raise SystemExit("S3_ENDPOINT_URL is not set: run scripts/drill.sh (or eval \"$(scripts/s3-server.sh env)\")")


def flask_cli(*args: str) -> str:
    """`flask --app portal …` as an operator would run it; its output, or exit naming what failed."""
    cmd = [str(VENV / "bin" / "flask"), "--app", "portal", *args]
    done = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, check=False)
    out = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        last = out.splitlines()[-1] if out else "no output"  # the exception, after the traceback
        raise CommandFailed(f"flask {' '.join(args)} exited {done.returncode}: {last[:600]}")
    return out


def run_tool(*cmd: str) -> str:
    done = subprocess.run(list(cmd), cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise CommandFailed(f"{cmd[0]} exited {done.returncode}: {(done.stdout + done.stderr).strip()[-2000:]}")
    return done.stdout


class CommandFailed(RuntimeError):
    pass


def new_app():
    """A fresh portal app (own engine and S3 client) configured from the environment."""
    from portal import create_app

    return create_app()


def dispose(app) -> None:
    app.extensions["db_engine"].dispose()
    storage = app.extensions["storage"]
    if hasattr(storage, "close"):
        storage.close()


def admin_engine() -> sa.Engine:
    return sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


def database_exists() -> bool:
    with admin_engine().connect() as conn:
        return conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": DB_NAME}).first() is not None


def create_database() -> None:
    with admin_engine().connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{DB_NAME}"'))


def drop_database() -> None:
    with admin_engine().connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))


# Files the partners upload -----------------------------------------------------------------------

def receipt_scan(label: str, rnd: random.Random, size=(1240, 1754)) -> Image.Image:
    """A page that looks photographed: paper tone, a coloured letterhead, lines of 'text', sensor noise."""
    img = Image.new("RGB", size, (246, 243, 236))
    draw = ImageDraw.Draw(img)
    colour = tuple(rnd.randrange(40, 200) for _ in range(3))
    draw.rectangle((60, 60, size[0] - 60, 200), fill=colour)
    draw.text((90, 110), label, fill="white")
    for y in range(280, size[1] - 120, 44):
        draw.line((90, y, 90 + rnd.randrange(300, size[0] - 180), y), fill=(90, 90, 90), width=5)
    noise = Image.effect_noise(size, rnd.uniform(12, 30)).convert("RGB")
    return Image.blend(img, noise, 0.12)


def photo(rnd: random.Random, size=(1600, 1200)) -> Image.Image:
    """A visit photo stand-in: a coloured scene with noise (photos compress badly, like these)."""
    base = Image.radial_gradient("L").resize(size)
    tint = Image.new("RGB", size, tuple(rnd.randrange(30, 220) for _ in range(3)))
    img = Image.composite(tint, Image.new("RGB", size, (200, 190, 170)), base)
    noise = Image.effect_noise(size, rnd.uniform(20, 45)).convert("RGB")
    return Image.blend(img, noise, 0.25)


def encoded(img: Image.Image, fmt: str, **options) -> io.BytesIO:
    out = io.BytesIO()
    img.save(out, fmt, **options)
    out.seek(0)
    return out


def pdf_file(tmp: Path, name: str, megabytes: float) -> io.BytesIO:
    path = tmp / name
    big_pdf(path, megabytes)
    data = io.BytesIO(path.read_bytes())
    path.unlink()
    return data


def receipt_upload(n: int, rnd: random.Random, tmp: Path) -> list[tuple[str, io.BytesIO]]:
    """The files of the n-th extra receipt: a phone photo, a scan, a PDF, or a photo plus a PDF."""
    label = f"INVOICE DR-{RUN_ID}-{n:03d}"
    if n == 5:
        return [(f"invoice-{n}-scanned.pdf", pdf_file(tmp, f"{n}.pdf", BIG_PDF_MB))]
    kind = n % 4
    if kind == 0:
        return [(f"IMG_2024{n:04d}.jpg", encoded(receipt_scan(label, rnd), "JPEG", quality=92))]
    if kind == 1:
        return [(f"scan-{n}.png", encoded(receipt_scan(label, rnd, (900, 1270)), "PNG"))]
    if kind == 2:
        return [(f"invoice-{n}.pdf", pdf_file(tmp, f"{n}.pdf", rnd.uniform(0.2, 1.5)))]
    return [(f"IMG_2024{n:04d}.jpg", encoded(receipt_scan(label, rnd), "JPEG", quality=88)),
            (f"delivery-note-{n}.pdf", pdf_file(tmp, f"{n}b.pdf", rnd.uniform(0.1, 0.6)))]


# 1. Setup ----------------------------------------------------------------------------------------

def visit_data(rnd: random.Random, day: date, flagged: bool) -> dict:
    return {
        "visit_date": day, "visit_time": dtime(10, 30), "mode": rnd.choice(["home", "business", "office"]),
        "place": "Workshop in the market hall", "location_consent": True,
        "latitude": 41.7151 + rnd.random() / 100, "longitude": 44.8271 + rnd.random() / 100,
        "attendees": "Returnee, partner counsellor", "returnee_met": True, "not_met_reason": "",
        "purpose": "monitoring", "goods_state": "in_use", "goods_by_receipt": {},
        "business_status": "operating", "income_band": rnd.choice(["100_300", "300_600"]),
        "people_employed": rnd.randrange(0, 4), "score_economic": rnd.randint(2, 5),
        "score_social": rnd.randint(2, 5), "score_psychosocial": rnd.randint(1, 5),
        "flag_health": flagged, "flag_psychosocial": False, "flag_family": False, "flag_safety": False,
        "flag_legal": False, "flag_details": "Needs to see a doctor about back pain" if flagged else "",
        "actions_taken": "Referred to the local clinic" if flagged else "",
        "next_visit_date": day + timedelta(days=90), "notes": "Business runs; new customers from the market.",
    }


def _fail(key: str):
    raise RuntimeError(f"no preview of {key}")


class Portal:
    """The portal's services on one session, inside a request context (mails build links with url_for)."""

    def __init__(self, app):
        from portal.storage import get_storage

        self.app = app
        self._ctx = app.test_request_context()
        self._ctx.push()
        self.db = Session(app.extensions["db_engine"], expire_on_commit=False)
        self.storage = get_storage()
        from portal.auth.models import User
        from portal.cases.models import Case

        self.users = {u.email: u for u in self.db.exec(select(User))}
        self.cases = list(self.db.exec(select(Case).order_by(Case.id)))
        self.partner_of = {u.organisation_id: u for u in self.users.values() if u.role == "partner"}

    def close(self) -> None:
        self.db.close()
        self._ctx.pop()

    def add_receipt(self, n: int, case, files: list[tuple[str, io.BytesIO]], rnd: random.Random):
        from portal.cases import services as cases
        from portal.receipts import services as receipts

        partner = self.partner_of[case.organisation_id]
        line = rnd.choice(cases.budget_lines(self.db, case))
        data = {"budget_line_id": line.id, "supplier": f"Supplier {rnd.randrange(100, 999)} SARL",
                "invoice_number": f"DR-{RUN_ID}-{n:03d}",
                "invoice_date": date(2024, 1, 8) + timedelta(days=rnd.randrange(0, 600)),
                "amount_minor": rnd.randrange(5_000, 250_000), "currency": "EUR", "description": line.description,
                "translation": "", "paid_directly_confirmed": True}

        def send():
            uploads = [("files", "receipt", receipts.Upload(name, stream)) for name, stream in files]
            return receipts.create_receipt(self.db, self.storage, partner, case, data,
                                           receipts.clean_uploads(uploads), receipts.new_nonce(),
                                           confirm_duplicate=False).receipt

        return retrying("upload a receipt", send)

    def decide(self, receipt, decision: str, comment: str = "") -> None:
        from portal.receipts import decisions as receipt_decisions

        for email in ("staff@example.org", "staff2@example.org"):
            self.db.refresh(receipt)
            if receipt.status != "submitted":
                return
            receipt_decisions.decide(self.db, self.users[email], receipt, decision, comment, receipt.version)
            if decision != receipt_decisions.APPROVE:
                return

    def add_handover(self, receipt, name: str, stream: io.BytesIO) -> None:
        from portal.receipts import services as receipts

        partner = self.partner_of[self.cases_by_id()[receipt.case_id].organisation_id]

        def send():
            files = receipts.clean_uploads([("files", "handover", receipts.Upload(name, stream))])
            receipts.add_files(self.db, self.storage, partner, receipt, "handover", files)

        retrying("upload a handover proof", send)

    def cases_by_id(self) -> dict:
        return {c.id: c for c in self.cases}

    def previews(self, receipt) -> int:
        from portal.receipts import previews as receipt_previews
        from portal.receipts import services as receipts

        made = 0
        for row in receipts.files_of(self.db, receipt):
            # preview() answers None when storage fails: that is worth a retry here, every file has a picture
            retrying("make a preview", lambda r=row: receipt_previews.preview(self.storage, r) or _fail(r.key))
            made += 1
        return made

    def add_visit(self, case, rnd: random.Random, day: date, flagged: bool, photos: int):
        from portal.visits import drafts
        from portal.visits import photos as visit_photos
        from portal.visits import services as visits

        partner = self.partner_of[case.organisation_id]
        visit, _created = visits.create_visit(self.db, partner, case, drafts.new_draft_key(),
                                              visit_data(rnd, day, flagged), today=date.today())
        for i in range(photos):
            data = encoded(photo(rnd), "JPEG", quality=90)

            def send(data=data, name=f"visit-{visit.id}-{i + 1}.jpg"):
                data.seek(0)  # add_photo reads the type from the stream's current position
                visit_photos.add_photo(self.db, partner, visit, name, data, consent=True)

            retrying("upload a visit photo", send)
        return visit

    def comment(self, visit, body: str):
        from portal.visits import followup

        return followup.add_comment(self.db, self.users["staff@example.org"], visit, body)


def populate(app, tmp: Path) -> Counter:
    """The extra volume on top of the demo, through the portal's services. Returns what was made."""
    from portal.receipts import decisions as receipt_decisions
    from portal.review import services as review
    from portal.review.models import SampleItem, SampleOutcome
    from portal.visits import drafts, followup
    from portal.workshop import services as workshop

    rnd = random.Random(20_251_124)
    made: Counter = Counter()
    p = Portal(app)
    try:
        staff = p.users["staff@example.org"]
        for n in range(EXTRA_RECEIPTS):
            case = p.cases[n % len(p.cases)]
            files = receipt_upload(n, rnd, tmp)
            receipt = p.add_receipt(n, case, files, rnd)
            made["receipts"] += 1
            made["receipt files"] += len(files)
            fate = n % 6
            if fate in (0, 1, 2):
                p.decide(receipt, receipt_decisions.APPROVE)
                if n % 2 == 0:
                    p.add_handover(receipt, f"handover-{n}.jpg", encoded(photo(rnd, (1200, 900)), "JPEG", quality=85))
                    made["handover files"] += 1
            elif fate == 3:
                p.decide(receipt, receipt_decisions.REJECT, "The invoice is not made out to the returnee.")
            elif fate == 4:
                p.decide(receipt, receipt_decisions.CORRECTION, "Please add the page with the supplier's stamp.")
            if n % 5 != 4:
                made["previews"] += p.previews(receipt)
        # Visits: two per case, one flagged per partner organisation, with photos.
        flagged = []
        for i, case in enumerate(p.cases):
            for k in range(2):
                day = date.today() - timedelta(days=200 - 90 * k + i)
                visit = p.add_visit(case, rnd, day, flagged=(k == 1 and i in (0, 3)), photos=1 + (i + k) % 2)
                made["visits"] += 1
                if visit.flagged:
                    flagged.append(visit)
        made["visit photos"] = sum(1 + (i + k) % 2 for i in range(len(p.cases)) for k in range(2))
        for visit in flagged:
            p.comment(visit, "Called the clinic: appointment next week.")
        followup.acknowledge(p.db, staff, flagged[0], "Seen; follow up at the next visit.")
        partner = p.partner_of[p.cases[1].organisation_id]
        drafts.save_draft(p.db, partner, p.cases[1], drafts.new_draft_key(),
                          {"place": "Training centre", "notes": "Half written when the network dropped"})
        made["visit drafts"] += 1
        draw = review.draw_sample(p.db, staff, 0.3, date(2023, 11, 1), date(2025, 12, 31))
        items = list(p.db.exec(select(SampleItem).where(SampleItem.draw_id == draw.id)))
        if items:
            review.check_sample(p.db, p.users["staff2@example.org"], items[0], SampleOutcome.OK, "")
        made["sample items"] += len(items)
        today = date.today()
        w = workshop.create_workshop(p.db, staff, {
            "title": "Advisor exchange workshop", "description": "Three days with the partner organisations.",
            "starts_on": today + timedelta(days=60), "ends_on": today + timedelta(days=62), "city": "Berlin",
            "venue": "Haus der Kulturen der Welt", "capacity": 3, "registration_deadline": today + timedelta(days=40),
            "working_languages": "en,fr", "travel_support": True, "visa_letters": True, "moderated": False})
        for i, (name, country) in enumerate([("Amina Diallo", "SN"), ("Giorgi Beridze", "GE"),
                                              ("Lena Vogel", "DE"), ("Omar Haddad", "MA")]):
            reg = workshop.register(p.db, w, {
                "name": name, "email": f"guest{i}.{RUN_ID}@example.org", "organisation": "Return desk",
                "country": country, "role": "return_country", "languages": "en", "dietary_needs": "",
                "accessibility_needs": "", "consent_processing": True}, "en", today=today)
            if i < 3:
                workshop.confirm_email(p.db, reg)
            made["registrations"] += 1
        # Accounts: an invitation waiting to be accepted, and a reviewer with two-factor sign-in
        # (the secret is stored encrypted with SECRET_KEY: the restored portal must still read it).
        from portal.auth import services as accounts
        from portal.auth import totp

        accounts.invite_user(p.db, p.users["admin@example.org"], email=f"new.partner.{RUN_ID}@example.org",
                             name="Invited Partner", role="partner", organisation_id=p.cases[0].organisation_id,
                             locale="en")
        made["invitations"] += 1
        secret = totp.new_secret()
        codes = totp.enable(p.db, p.users["staff2@example.org"], secret, pyotp.TOTP(secret).now())
        made["recovery codes"] += len(codes or [])
    finally:
        p.close()
    return made


def fresh_start() -> None:
    """A new database and bucket with the demo; started over from nothing when S3 fails half-way
    (a half-loaded demo cannot be loaded again, and its stored files would be left without rows)."""
    drop_database()
    app = new_app()
    try:
        storage = app.extensions["storage"]
        wait_for_s3()
        if not storage.describe().endswith("(bucket missing)"):
            destroy_bucket(storage)
    finally:
        dispose(app)
    create_database()
    log(flask_cli("db", "upgrade").splitlines()[-1])
    wait_for_s3()
    log(flask_cli("init-storage").splitlines()[-1])
    wait_for_s3()
    log(flask_cli("demo", "load").splitlines()[-1])


# 2. Manifests ------------------------------------------------------------------------------------

def _plain(value):
    if isinstance(value, datetime | date | dtime):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    raise TypeError(f"no canonical form for {type(value).__name__}")


def canonical_row(row) -> bytes:
    return json.dumps(list(row), default=_plain, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode() + b"\n"


SCHEMA_QUERIES = {
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                   "WHERE connamespace = 'public'::regnamespace",
    "triggers": "SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger "
                "WHERE NOT tgisinternal",
    "functions": "SELECT proname, pg_get_function_identity_arguments(oid), md5(prosrc) FROM pg_proc "
                 "WHERE pronamespace = 'public'::regnamespace",
}


def database_manifest(url: str = DB_URL) -> dict:
    """Per table its columns, row count and SHA-256 over all rows in primary-key order; sequences; schema."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        meta = sa.MetaData()
        meta.reflect(engine)
        tables = {}
        with engine.connect() as conn:
            for name in sorted(meta.tables):
                table = meta.tables[name]
                order = list(table.primary_key.columns) or list(table.columns)
                digest = hashlib.sha256(json.dumps([c.name for c in table.columns]).encode() + b"\n")
                count = 0
                result = conn.execution_options(yield_per=2000).execute(sa.select(table).order_by(*order))
                for row in result:
                    digest.update(canonical_row(row))
                    count += 1
                tables[name] = {"rows": count, "sha256": digest.hexdigest()}
            sequences = {r[0]: r[1] for r in conn.execute(sa.text(
                "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1"))}
            schema = {}
            for what, query in SCHEMA_QUERIES.items():
                rows = sorted(tuple(map(str, r)) for r in conn.execute(sa.text(query)))
                schema[what] = {"count": len(rows),
                                "sha256": hashlib.sha256(json.dumps(rows).encode()).hexdigest()}
    finally:
        engine.dispose()
    return {"tables": tables, "sequences": sequences, "schema": schema}


def content_types(url: str = DB_URL) -> dict[str, str]:
    """Content type of every object the database knows (the storage protocol does not return it)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT key, content_type FROM receipt_files "
                                        "UNION ALL SELECT key, content_type FROM visit_photos")).all()
    finally:
        engine.dispose()
    return dict(rows)


def object_type(key: str, types: dict[str, str]) -> str:
    if key in types:
        return types[key]
    if key.startswith("previews/"):
        return "image/jpeg"  # previews are always JPEGs the portal encoded (portal/receipts/previews.py)
    return "application/octet-stream"


def read_object(storage, key: str, sink=None) -> tuple[int, str]:
    """Size and SHA-256 of a stored object, streamed in chunks (optionally written to sink)."""
    digest, size = hashlib.sha256(), 0
    with storage.open(key) as src:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if sink is not None:
                sink.write(chunk)
    return size, digest.hexdigest()


def bucket_manifest(storage) -> dict[str, dict]:
    """Every object in the bucket read back: key → size and SHA-256."""
    out = {}
    for key in sorted(retrying("list the bucket", lambda: list(storage.keys()))):
        size, sha = retrying("read an object", read_object, storage, key)
        out[key] = {"size": size, "sha256": sha}
    return out


# 2. Backup ---------------------------------------------------------------------------------------

def backup_database(dump: Path) -> None:
    run_tool("pg_dump", "--format=custom", "--file", str(dump), "--dbname", LIBPQ_URL)


def backup_bucket(storage, dest: Path, types: dict[str, str]) -> list[dict]:
    """Copy every object to dest/<key> through the storage API; the manifest entries of what was copied."""
    def copy(key: str, path: Path) -> tuple[int, str]:
        with path.open("wb") as out:
            return read_object(storage, key, out)

    entries = []
    for key in sorted(retrying("list the bucket", lambda: list(storage.keys()))):
        path = dest / key
        path.parent.mkdir(parents=True, exist_ok=True)
        size, sha = retrying("copy an object", copy, key, path)
        entries.append({"key": key, "size": size, "sha256": sha, "content_type": object_type(key, types)})
    return entries


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# 3. Records after the backup -----------------------------------------------------------------------

def add_after_backup(app, tmp: Path) -> dict[str, list[int]]:
    """A receipt with a file and its preview, a visit with a photo, a staff comment: ids by table."""
    from portal.receipts import services as receipts
    from portal.visits.models import VisitPhoto

    rnd = random.Random(99)
    p = Portal(app)
    try:
        case = p.cases[0]
        receipt = p.add_receipt(900, case, [("after-backup.jpg", encoded(receipt_scan("AFTER BACKUP", rnd),
                                                                          "JPEG", quality=90))], rnd)
        p.previews(receipt)
        visit = p.add_visit(p.cases[3], rnd, date.today() - timedelta(days=3), flagged=False, photos=1)
        old_visit = p.db.exec(select(type(visit)).where(type(visit).id != visit.id).order_by(type(visit).id)).first()
        comment = p.comment(old_visit, "Added after the backup: must not survive the restore.")
        photos = p.db.exec(select(VisitPhoto.id).where(VisitPhoto.visit_id == visit.id)).all()
        files = [row.id for row in receipts.files_of(p.db, receipt)]
        return {"receipts": [receipt.id], "receipt_files": files, "visits": [visit.id],
                "visit_photos": list(photos), "visit_comments": [comment.id]}
    finally:
        p.close()


# 4. Destroy ----------------------------------------------------------------------------------------

def destroy_bucket(storage) -> int:
    """Delete every object through the storage API, then the bucket itself."""
    deleted = 0
    for key in retrying("list the bucket", lambda: list(storage.keys())):
        retrying("delete an object", storage.delete, key)
        deleted += 1
    # The protocol has no "remove the bucket": S3Storage exposes its client for maintenance scripts.
    retrying("delete the bucket", storage.client.delete_bucket, Bucket=storage.bucket)
    return deleted


# 5. Restore ----------------------------------------------------------------------------------------

def restore_database(dump: Path) -> None:
    create_database()
    run_tool("pg_restore", "--exit-on-error", "--dbname", LIBPQ_URL, str(dump))


def restore_bucket(storage, source: Path, entries: list[dict]) -> int:
    """Recreate the bucket and upload every object of the backup through the storage API."""
    def upload(entry: dict) -> None:
        with (source / entry["key"]).open("rb") as fh:
            storage.put(entry["key"], fh, content_type=entry["content_type"])

    retrying("create the bucket", storage.ensure_ready)
    sent = 0
    for entry in entries:
        if not (source / entry["key"]).is_file():
            log(f"missing from the backup, not restored: {entry['key']}")  # the key check names it
            continue
        retrying("upload an object", upload, entry)
        sent += entry["size"]
    return sent


# 6. Verify -----------------------------------------------------------------------------------------

def compare_database(report: Report, backup: dict, restored: dict) -> None:
    bad = [name for name in sorted(set(backup["tables"]) | set(restored["tables"]))
           if backup["tables"].get(name) != restored["tables"].get(name)]
    for name in bad:
        want, got = backup["tables"].get(name), restored["tables"].get(name)
        report.check(f"table {name}", False, f"backup {want}, restored {got}")
    rows = sum(t["rows"] for t in restored["tables"].values())
    report.check("tables: row counts and row digests", not bad,
                 f"{len(restored['tables'])} tables, {rows} rows, "
                 + ("all equal to the manifest" if not bad else f"{len(bad)} differ: {', '.join(bad)}"))
    seq_bad = [s for s in sorted(set(backup["sequences"]) | set(restored["sequences"]))
               if backup["sequences"].get(s) != restored["sequences"].get(s)]
    report.check("sequences", not seq_bad, f"{len(restored['sequences'])} sequences, "
                 + ("all at their backup values" if not seq_bad else f"differ: {', '.join(seq_bad)}"))
    schema_bad = [k for k in backup["schema"] if backup["schema"][k] != restored["schema"].get(k)]
    counts = ", ".join(f"{v['count']} {k}" for k, v in restored["schema"].items())
    report.check("schema objects", not schema_bad,
                 counts + (": equal" if not schema_bad else f"; differ: {', '.join(schema_bad)}"))


def compare_objects(report: Report, entries: list[dict], restored: dict[str, dict]) -> None:
    want = {e["key"]: e for e in entries}
    missing = sorted(set(want) - set(restored))
    extra = sorted(set(restored) - set(want))
    report.check("object keys", not missing and not extra,
                 f"{len(restored)} keys restored, {len(want)} in the manifest"
                 + (f"; missing: {missing[:5]}" if missing else "") + (f"; unexpected: {extra[:5]}" if extra else ""))
    bad = [k for k in sorted(set(want) & set(restored))
           if (want[k]["size"], want[k]["sha256"]) != (restored[k]["size"], restored[k]["sha256"])]
    for key in bad:
        report.check(f"object {key}", False, f"manifest sha256 {want[key]['sha256']} ({want[key]['size']} B), "
                     f"restored {restored[key]['sha256']} ({restored[key]['size']} B)")
    total = sum(v["size"] for v in restored.values())
    report.check("object SHA-256", not bad, f"{len(restored) - len(bad)} of {len(want)} objects read back equal "
                 f"to the manifest ({mib(total)})")


def rows_against_objects(url: str, objects: dict[str, dict]) -> tuple[int, list[str], dict]:
    """Every confirmed receipt file and visit photo has its object with the row's size and SHA-256;
    every preview belongs to a file. Returns (rows checked, problems, counts of the rest)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT 'receipt_files', id, key, size, sha256, confirmed FROM receipt_files "
                "UNION ALL SELECT 'visit_photos', id, key, size, sha256, confirmed FROM visit_photos "
                "ORDER BY 1, 2")).all()
    finally:
        engine.dispose()
    problems, checked, unconfirmed = [], 0, 0
    known_previews = set()
    from portal.receipts.previews import preview_key

    for table, row_id, key, size, sha, confirmed in rows:
        if not confirmed:
            unconfirmed += 1  # an upload intent: its object may or may not exist
            continue
        checked += 1
        obj = objects.get(key)
        if obj is None:
            problems.append(f"{table} {row_id}: object {key} missing")
        elif (obj["size"], obj["sha256"]) != (size, sha):
            problems.append(f"{table} {row_id}: row says {sha} ({size} B), object {key} has "
                            f"{obj['sha256']} ({obj['size']} B)")
        if table == "receipt_files":
            known_previews.add(preview_key(row_id, sha))
    row_keys = {r[2] for r in rows}
    previews = [k for k in objects if k.startswith("previews/")]
    orphans = sorted(k for k in objects if k not in row_keys and k not in known_previews)
    return checked, problems, {"unconfirmed rows": unconfirmed, "previews": len(previews), "orphans": orphans}


def check_rows_against_objects(report: Report, label: str, url: str, objects: dict[str, dict]) -> None:
    """Rows → objects must hold. Objects no row names (orphans of failed uploads) are not a restore error:
    they are named in a note, and the restore must bring back the same key set as the backup either way."""
    checked, problems, rest = rows_against_objects(url, objects)
    for problem in problems:
        report.check(f"{label}: file row", False, problem)
    orphans = rest["orphans"]
    report.check(f"{label}: file rows → objects", not problems,
                 f"{checked - len(problems)} of {checked} confirmed receipt_files/visit_photos rows have their object "
                 f"with the row's size and sha256; {rest['unconfirmed rows']} unconfirmed rows, {rest['previews']} previews, "
                 f"{len(orphans)} objects without a row")
    if orphans:
        report.note(f"objects no database row names (orphans of uploads that failed half-way; backed up and "
                    f"restored like the rest, as application/octet-stream): {', '.join(orphans)}")


def check_absent(report: Report, added: dict[str, list[int]], added_keys: list[str], restored: dict) -> None:
    engine = sa.create_engine(DB_URL, poolclass=sa.pool.NullPool)
    found = {}
    try:
        with engine.connect() as conn:
            for table, ids in added.items():
                if ids:
                    n = conn.execute(sa.select(sa.func.count()).select_from(sa.table(table, sa.column("id")))
                                     .where(sa.column("id").in_(ids))).scalar_one()
                    if n:
                        found[table] = n
    finally:
        engine.dispose()
    back = [k for k in added_keys if k in restored]
    what = ", ".join(f"{len(ids)} {table}" for table, ids in added.items())
    report.check("records added after the backup", not found and not back,
                 f"absent after the restore, as expected ({what}; {len(added_keys)} objects)" if not found and not back
                 else f"came back: rows {found}, objects {back}")


def check_audit(report: Report, expected_entries: int) -> None:
    try:
        out = flask_cli("audit", "verify")
        ok = out.endswith(f"intact: {expected_entries} entries")
        report.check("audit chain (flask audit verify)", ok, f"{out!r}; manifest has {expected_entries} audit_log rows")
    except CommandFailed as exc:
        report.check("audit chain (flask audit verify)", False, str(exc))


def check_portal(report: Report, app, objects: dict[str, dict]) -> None:
    """The restored portal: sign in as staff, a case page, a receipt file, a visit photo and a preview."""
    from portal.cases.models import Case
    from portal.demo import DEMO_PASSWORD
    from portal.receipts.models import Receipt, ReceiptFile
    from portal.receipts.previews import preview_key
    from portal.visits.models import Visit, VisitPhoto

    client = app.test_client()
    login = client.post("/login", data={"csrf_token": csrf_of(client.get("/login").get_data(as_text=True)),
                                        "email": STAFF_EMAIL, "password": DEMO_PASSWORD})
    report.check("portal: sign-in", login.status_code == 303 and "/login" not in login.headers.get("Location", ""),
                 f"{STAFF_EMAIL}: HTTP {login.status_code} → {login.headers.get('Location')}")
    check_two_factor_sign_in(report, app)
    with Session(app.extensions["db_engine"]) as db:
        big = db.exec(select(ReceiptFile, Receipt).join(Receipt, Receipt.id == ReceiptFile.receipt_id)
                      .where(ReceiptFile.confirmed.is_(True)).order_by(ReceiptFile.size.desc())).first()
        file_row, receipt = big
        case = db.get(Case, receipt.case_id)
        photo_row, visit = db.exec(select(VisitPhoto, Visit).join(Visit, Visit.id == VisitPhoto.visit_id)
                                   .where(VisitPhoto.confirmed.is_(True)).order_by(VisitPhoto.id)).first()
        with_preview = next(((f, r) for f, r in db.exec(
            select(ReceiptFile, Receipt).join(Receipt, Receipt.id == ReceiptFile.receipt_id).order_by(ReceiptFile.id))
            if preview_key(f.id, f.sha256) in objects), None)
    page = client.get(f"/cases/{case.id}")
    html = page.get_data(as_text=True)
    report.check("portal: case page", page.status_code == 200 and case.reference in html and receipt.reference in html,
                 f"/cases/{case.id}: HTTP {page.status_code}, {len(html)} characters, shows {case.reference} "
                 f"and {receipt.reference}")
    for label, url, row in (("receipt file", f"/receipts/{receipt.id}/files/{file_row.id}", file_row),
                            ("visit photo", f"/visits/{visit.id}/photos/{photo_row.id}", photo_row)):
        resp = client.get(url)
        location = resp.headers.get("Location", "")
        if resp.status_code != 302 or not location:
            report.check(f"portal: {label} download", False, f"{url}: HTTP {resp.status_code}, no presigned redirect")
            continue
        got = retrying("fetch a presigned URL", requests.get, location, timeout=60)
        sha = hashlib.sha256(got.content).hexdigest()
        report.check(f"portal: {label} download", got.status_code == 200 and sha == row.sha256,
                     f"{url} → 302 → S3 HTTP {got.status_code}, {len(got.content)} B, sha256 "
                     f"{'equals' if sha == row.sha256 else 'DIFFERS from'} the row's ({sha[:16]}…)")
    if with_preview is None:
        report.check("portal: preview", False, "no receipt file with a stored preview")
    else:
        f, r = with_preview
        resp = client.get(f"/receipts/{r.id}/files/{f.id}/preview")
        sha = hashlib.sha256(resp.data).hexdigest()
        want = objects[preview_key(f.id, f.sha256)]["sha256"]
        report.check("portal: preview", resp.status_code == 200 and sha == want,
                     f"/receipts/{r.id}/files/{f.id}/preview: HTTP {resp.status_code}, {resp.mimetype}, "
                     f"{len(resp.data)} B, {'the restored preview object' if sha == want else 'NOT the stored preview'}")


def check_two_factor_sign_in(report: Report, app) -> None:
    """A reviewer with two-factor sign-in: password, then a code from the secret the restored database holds."""
    from portal.auth import totp
    from portal.auth.models import User
    from portal.demo import DEMO_PASSWORD

    with app.app_context(), Session(app.extensions["db_engine"]) as db:
        users = db.exec(select(User).where(User.totp_secret_enc.is_not(None)).order_by(User.id)).all()
        secrets_read = {u.email: totp._secret_of(u) for u in users}
    unreadable = [email for email, secret in secrets_read.items() if secret is None]
    if not users or unreadable:
        report.check("portal: two-factor sign-in", False, f"{len(users)} users with two-factor sign-in; secrets "
                     f"not readable with this SECRET_KEY: {unreadable}")
        return
    email, secret = next(iter(secrets_read.items()))
    client = app.test_client()
    first = client.post("/login", data={"csrf_token": csrf_of(client.get("/login").get_data(as_text=True)),
                                        "email": email, "password": DEMO_PASSWORD})
    # The next 30-second step: newer than the one used to enrol, and within the accepted clock drift.
    code = pyotp.TOTP(secret).at(time.time() + 30)
    second = client.post("/login/code", data={
        "csrf_token": csrf_of(client.get("/login/code").get_data(as_text=True)), "code": code})
    ok = first.headers.get("Location", "").endswith("/login/code") and second.status_code == 303
    report.check("portal: two-factor sign-in", ok,
                 f"{email}: password → {first.status_code} {first.headers.get('Location')}, code → "
                 f"{second.status_code} {second.headers.get('Location')}; {len(users)} encrypted secret(s) "
                 "readable with this SECRET_KEY")


# 7. Summary ----------------------------------------------------------------------------------------

def summary(report: Report, backup_db: dict, before_destroy: dict, restored_db: dict | None,
            entries: list[dict], restored_objects: dict | None) -> str:
    f = report.figures
    lines = [f"# Backup and restore drill — {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}", "",
             f"Database `{DB_NAME}` on PostgreSQL {f.get('pg_version', '?')}, bucket `{BUCKET}` on "
             f"{f.get('s3', '?')}; backup in `{BACKUP.relative_to(ROOT)}`.", "",
             "| table | rows at backup | rows before destroy | rows restored | digest |", "|---|---:|---:|---:|---|"]
    for name in sorted(backup_db["tables"]):
        b = backup_db["tables"][name]
        d = before_destroy["tables"].get(name, {}).get("rows", "–")
        r = (restored_db or {"tables": {}})["tables"].get(name)
        same = "equal" if r == b else ("**differs**" if r else "–")
        lines.append(f"| {name} | {b['rows']} | {d} | {r['rows'] if r else '–'} | {same} |")
    total = sum(t["rows"] for t in backup_db["tables"].values())
    lines.append(f"| **all {len(backup_db['tables'])} tables** | {total} | "
                 f"{sum(t['rows'] for t in before_destroy['tables'].values())} | "
                 f"{sum(t['rows'] for t in restored_db['tables'].values()) if restored_db else '–'} | |")
    lines += ["", "| objects | count | bytes |", "|---|---:|---:|"]
    by_prefix: dict[str, list[int]] = {}
    for e in entries:
        by_prefix.setdefault(e["key"].split("/", 1)[0] + "/", []).append(e["size"])
    for prefix, sizes in sorted(by_prefix.items()):
        lines.append(f"| {prefix} | {len(sizes)} | {sum(sizes):,} |")
    lines.append(f"| **all** | {len(entries)} | {sum(e['size'] for e in entries):,} |")
    if restored_objects is not None:
        lines.append(f"| restored and read back | {len(restored_objects)} | "
                     f"{sum(o['size'] for o in restored_objects.values()):,} |")
    lines += ["", "| backup | size |", "|---|---:|",
              f"| pg_dump -Fc | {f.get('dump_bytes', 0):,} B ({mib(f.get('dump_bytes', 0))}) |",
              f"| objects | {f.get('objects_bytes', 0):,} B ({mib(f.get('objects_bytes', 0))}) |",
              f"| manifest | {f.get('manifest_bytes', 0):,} B |",
              f"| **total** | {f.get('backup_bytes', 0):,} B ({mib(f.get('backup_bytes', 0))}) |",
              "", "| step | seconds |", "|---|---:|"]
    lines += [f"| {name} | {secs:.2f} |" for name, secs in report.durations.items()]
    if report.notes:
        lines += [""] + [f"Note: {n}" for n in report.notes]
    if RETRIES:
        lines += ["", "S3 was briefly unavailable during the run (another process restarted the gateway); retried: "
                  + ", ".join(f"{what} ×{n}" for what, n in RETRIES.items()) + "."]
    lines += ["", "| check | result | detail |", "|---|---|---|"]
    lines += [f"| {name} | {'pass' if ok else '**FAIL**'} | {detail.replace('|', '/')} |"
              for name, ok, detail in report.checks]
    verdict = ("**PASSED**: the restore brought back exactly the backup point." if not report.failed
               else f"**FAILED**: {len(report.failed)} check(s) failed.")
    lines += ["", verdict, ""]
    return "\n".join(lines)


# The run -------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:  # noqa: C901 - one drill, read top to bottom
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the drill's database and bucket at the end")
    args = parser.parse_args(argv)
    configure_environment()
    report = Report()
    shutil.rmtree(WORK, ignore_errors=True)
    (WORK / "instance").mkdir(parents=True)
    objects_dir = BACKUP / "objects"
    objects_dir.mkdir(parents=True)
    tmp = WORK / "tmp"
    tmp.mkdir()
    dump = BACKUP / "database.dump"
    manifest_path = BACKUP / "manifest.json"
    log(f"database {DB_NAME}, bucket {BUCKET}, backup directory {BACKUP.relative_to(ROOT)}")
    backup_db = before_destroy = restored_db = None
    entries: list[dict] = []
    restored_objects = None
    app = None
    try:
        with step(report, "1. setup: database, bucket, demo and extra data"):
            if database_exists():
                raise SystemExit(f"database {DB_NAME} exists already")
            retrying("set up the database, the bucket and the demo", fresh_start)
            app = new_app()
            report.figures["s3"] = app.extensions["storage"].describe().split(" bucket=")[0]
            with app.extensions["db_engine"].connect() as conn:
                report.figures["pg_version"] = conn.execute(sa.text("SHOW server_version")).scalar_one()
            made = populate(app, tmp)
            log("made through the services: " + ", ".join(f"{v} {k}" for k, v in made.items()))
            source_objects = bucket_manifest(app.extensions["storage"])
            check_rows_against_objects(report, "source", DB_URL, source_objects)

        with step(report, "2a. backup: pg_dump -Fc"):
            backup_database(dump)
            report.figures["dump_bytes"] = dump.stat().st_size
            log(f"{dump.relative_to(ROOT)}: {mib(report.figures['dump_bytes'])}")
        with step(report, "2b. backup: bucket, object by object"):
            entries = backup_bucket(app.extensions["storage"], objects_dir, content_types())
            report.figures["objects_bytes"] = dir_size(objects_dir)
            log(f"{len(entries)} objects, {mib(report.figures['objects_bytes'])}")
        with step(report, "2c. backup: database manifest"):
            backup_db = database_manifest()
            manifest_path.write_text(json.dumps({"database": DB_NAME, "bucket": BUCKET, "tables": backup_db["tables"],
                                                 "sequences": backup_db["sequences"], "schema": backup_db["schema"],
                                                 "objects": entries}, indent=1))
            report.figures["manifest_bytes"] = manifest_path.stat().st_size
            report.figures["backup_bytes"] = dir_size(BACKUP)
            log(f"{len(backup_db['tables'])} tables, {sum(t['rows'] for t in backup_db['tables'].values())} rows; "
                f"backup total {mib(report.figures['backup_bytes'])}")

        with step(report, "3. add records after the backup"):
            keys_before = set(app.extensions["storage"].keys())
            added = add_after_backup(app, tmp)
            added_keys = sorted(set(app.extensions["storage"].keys()) - keys_before)
            before_destroy = database_manifest()
            grown = {n: before_destroy["tables"][n]["rows"] - backup_db["tables"][n]["rows"]
                     for n in backup_db["tables"]
                     if before_destroy["tables"][n]["rows"] != backup_db["tables"][n]["rows"]}
            log("added: " + ", ".join(f"{n} +{d}" for n, d in grown.items()) + f"; objects +{len(added_keys)}")

        with step(report, "4. destroy: drop the database, delete every object and the bucket"):
            storage = app.extensions["storage"]
            dispose(app)
            app = None
            drop_database()
            deleted = destroy_bucket(storage)
            gone = not database_exists()
            wait_for_s3()
            state = storage.describe()
            report.check("destroyed", gone and state.endswith("(bucket missing)"),
                         f"database {'gone' if gone else 'STILL THERE'}; {deleted} objects deleted; {state}")

        with step(report, "5a. restore: pg_restore"):
            restore_database(dump)
        with step(report, "5b. restore: bucket, object by object"):
            app = new_app()
            sent = restore_bucket(app.extensions["storage"], objects_dir, entries)
            log(f"{len(entries)} objects, {mib(sent)} uploaded")

        with step(report, "6. verify"):
            restored_db = database_manifest()
            compare_database(report, backup_db, restored_db)
            restored_objects = bucket_manifest(app.extensions["storage"])
            compare_objects(report, entries, restored_objects)
            check_rows_against_objects(report, "restored", DB_URL, restored_objects)
            check_absent(report, added, added_keys, restored_objects)
            check_audit(report, backup_db["tables"]["audit_log"]["rows"])
            check_portal(report, app, restored_objects)
            from portal.audit import verify_chain

            with Session(app.extensions["db_engine"]) as db:
                checked, problem = verify_chain(db)
            report.check("audit chain after the portal wrote to it", problem is None,
                         f"{checked} entries (the downloads above were logged)" if problem is None else problem)
    except Exception as exc:  # noqa: BLE001 - a drill that breaks half-way is a failed drill: say where
        log(f"ERROR: {type(exc).__name__}: {exc}")
        report.check("drill ran to the end", False, f"{type(exc).__name__}: {str(exc)[:500]}")
    finally:
        if app is not None:
            dispose(app)
        if not args.keep:
            cleanup()
        shutil.rmtree(tmp, ignore_errors=True)

    if backup_db is not None:
        text = summary(report, backup_db, before_destroy or backup_db, restored_db, entries, restored_objects)
        OUT.mkdir(exist_ok=True)
        (OUT / "drill.md").write_text(text)
        print("\n" + text, flush=True)
        log(f"written to {(OUT / 'drill.md').relative_to(ROOT)}")
    if report.failed:
        log(f"FAILED: {len(report.failed)} check(s): " + "; ".join(name for name, _ok, _d in report.failed))
        return 1
    log("PASSED")
    return 0


def cleanup() -> None:
    """Remove the drill's database and bucket (the backup directory stays for inspection)."""
    try:
        drop_database()
        app = new_app()
        storage = app.extensions["storage"]
        wait_for_s3(30)
        if not storage.describe().endswith("(bucket missing)"):
            destroy_bucket(storage)
        dispose(app)
        log(f"removed database {DB_NAME} and bucket {BUCKET}")
    except Exception as exc:  # noqa: BLE001 - cleaning up must not hide the drill's result
        log(f"cleanup incomplete ({exc}); remove database {DB_NAME} and bucket {BUCKET} by hand")


if __name__ == "__main__":
    sys.exit(main())
