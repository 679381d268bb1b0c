"""The shipped production processes, started for tests as their systemd units start them: gunicorn from
integplan-web.service, workers from integplan-worker.service, nginx with deploy/nginx/portal.conf, all
configured from deploy/portal.env.example with the test's services (PostgreSQL, Ceph S3, Redis, the SMTP
sink) filled in. Used by tests/test_nginx.py and tests/test_deploy.py."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests
import sqlalchemy as sa
from requests.adapters import HTTPAdapter

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
VENV_BIN = Path(sys.executable).parent
INSTALL_DIR = "/srv/integplan-portal"
PASSWORD = "a long test password 2025"
CSRF_RE = re.compile(r'"X-CSRFToken": "([^"]+)"')


def unit(name: str) -> dict[str, str]:
    """The [Service] settings of deploy/systemd/<name>.service (last one wins, as in systemd)."""
    settings: dict[str, str] = {}
    for line in (DEPLOY / "systemd" / f"{name}.service").read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _sep, value = line.partition("=")
            settings[key.strip()] = value.strip()
    return settings


def unit_command(name: str, run_dir: Path) -> list[str]:
    """ExecStart of the unit, with the install's virtualenv and runtime directory mapped to the test's."""
    argv = shlex.split(unit(name)["ExecStart"])
    return [arg.replace(f"{INSTALL_DIR}/.venv/bin", str(VENV_BIN)).replace("/run/integplan-portal", str(run_dir))
            for arg in argv]


def env_example() -> dict[str, str]:
    """deploy/portal.env.example as systemd's EnvironmentFile= reads it."""
    env = {}
    for line in (DEPLOY / "portal.env.example").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _sep, value = line.partition("=")
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        env[key] = value
    return env


def fresh_database(admin_url: str, template: str) -> str:
    name = f"integplan_deploy_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    admin.dispose()
    return sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, url: str) -> None:
    name = sa.engine.make_url(url).database
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def portal_env(tmp: Path, **settings: str) -> dict[str, str]:
    """The process environment: the example file, then the test's services (and the S3 credentials)."""
    env = {key: value for key, value in os.environ.items()
           if key in ("PATH", "HOME", "LANG", "LC_ALL", "TZ") or key.startswith("AWS_")}
    env.update(env_example())
    env.update({
        "PYTHONPATH": str(ROOT), "PORTAL_INSTANCE_DIR": str(tmp / "instance"),
        "SECRET_KEY": "deploy-test-secret-key-0123456789abcdef",
        # Plain HTTP on loopback: cookies without Secure, no second factor for the test users.
        "COOKIE_SECURE": "false", "TOTP_REQUIRED_ROLES": "",
        "MAIL_SERVER": "127.0.0.1", "MAIL_USE_TLS": "false", "MAIL_USERNAME": "", "MAIL_PASSWORD": "",
        "CLAMD_HOST": "",
    })
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "S3_ENDPOINT_URL"):
        if os.environ.get(key):
            env[key] = os.environ[key]
    env.update(settings)
    return env


@dataclass
class Process:
    name: str
    proc: subprocess.Popen
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start(name: str, argv: list[str], env: dict[str, str], log: Path) -> Process:
    out = log.open("ab")
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,  # noqa: S603
                            stdin=subprocess.DEVNULL)
    out.close()
    return Process(name, proc, log)


def web(tmp: Path, port: int, env: dict[str, str], name: str = "web") -> Process:
    """gunicorn as integplan-web.service runs it, on 127.0.0.1:port; returns once /healthz answers ok."""
    run_dir = tmp / f"run-{name}"
    run_dir.mkdir(parents=True, exist_ok=True)
    process = start(name, unit_command("integplan-web", run_dir), {**env, "BIND": f"127.0.0.1:{port}"},
                    tmp / f"{name}.log")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.proc.poll() is not None:
            raise RuntimeError(f"{name} exited {process.proc.returncode}:\n{process.text()[-3000:]}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=30).status_code == 200:
                return process
        except requests.RequestException:
            pass
        time.sleep(0.2)
    process.stop()
    raise RuntimeError(f"{name} did not answer /healthz:\n{process.text()[-3000:]}")


def worker(tmp: Path, env: dict[str, str], name: str = "worker", unit_name: str = "integplan-worker") -> Process:
    return start(name, unit_command(unit_name, tmp), env, tmp / f"{name}.log")


@dataclass
class Nginx:
    dir: Path
    port: int
    upstreams: str
    env: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Nginx:
        self.env = {**os.environ, "NGINX_PORT": str(self.port), "NGINX_UPSTREAMS": self.upstreams,
                    "NGINX_STATIC": str(ROOT / "static")}
        subprocess.run([str(ROOT / "scripts" / "nginx.sh"), "start", str(self.dir)], env=self.env,  # noqa: S603
                       check=True, capture_output=True, timeout=600)
        return self

    def stop(self) -> None:
        subprocess.run([str(ROOT / "scripts" / "nginx.sh"), "stop", str(self.dir)], env=self.env,  # noqa: S603
                       check=False, capture_output=True, timeout=60)


class _FromAddress(HTTPAdapter):
    """Connect from a given loopback address (127.0.0.0/8 is all loopback on Linux): a distinct client."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def client(address: str = "127.0.0.1") -> requests.Session:
    session = requests.Session()
    adapter = _FromAddress(address)
    session.mount("http://", adapter)
    return session


def csrf(session: requests.Session, url: str) -> str:
    return CSRF_RE.search(session.get(url, timeout=30).text).group(1)


def sign_in(session: requests.Session, base: str, email: str, password: str = PASSWORD, **kw) -> int:
    token = csrf(session, base + "/login")
    return session.post(base + "/login", data={"csrf_token": token, "email": email, "password": password},
                        allow_redirects=False, timeout=30, **kw).status_code
