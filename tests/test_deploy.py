"""Several servers: two app instances (gunicorn as integplan-web.service starts it, on two ports) and two
task workers (integplan-worker.service) plus the scheduler (integplan-scheduler.service), on one
PostgreSQL database, one Redis (rate limits and the queue) and one Ceph S3 bucket. Rate limits are shared
between the instances; every mail is delivered once. And production refuses per-process limits when
gunicorn runs several workers."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid

import pytest
import redis
from sqlmodel import Session, select

from portal import create_app, tasks
from portal.mail import OutboxMail
from tests import deploy_stack as stack
from tests.factories import make_user
from tests.fixtures import PG_URL, S3_URL, app_config, free_port

REDIS_URL = os.environ.get("TEST_REDIS_URL", "")
needs_services = pytest.mark.skipif(not (PG_URL and S3_URL and REDIS_URL),
                                    reason="needs TEST_DATABASE_URL, S3_ENDPOINT_URL and TEST_REDIS_URL (scripts/test.sh)")


def test_production_refuses_memory_limits_with_several_gunicorn_workers(tmp_path):
    env = stack.portal_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'portal.db'}", STORAGE_BACKEND="local",
                           RATELIMIT_STORAGE_URI="memory://", WEB_CONCURRENCY="2", BIND=f"127.0.0.1:{free_port()}")
    process = stack.start("web", stack.unit_command("integplan-web", tmp_path), env, tmp_path / "web.log")
    process.proc.wait(60)
    assert process.proc.returncode != 0
    assert "Not starting: RATELIMIT_STORAGE_URI=memory:// counts attempts in each process: with 2 workers" \
        in process.text()


def test_each_gunicorn_worker_freezes_the_app_and_collects_less_often():
    """post_worker_init (in a process of its own: it changes the process's garbage collector): what was
    loaded is frozen, the young generation's threshold comes from GC_GEN0_THRESHOLD (default 10,000)."""
    code = ("import gc; from portal import gunicorn_conf as g; g.post_worker_init(None); "
            "print(gc.get_freeze_count() > 1000, gc.get_threshold()[0])")
    for env, expected in (({}, "True 10000"), ({"GC_GEN0_THRESHOLD": "2000"}, "True 2000")):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,  # noqa: S603
                             env={**os.environ, **env}, cwd=stack.ROOT).stdout
        assert out.split() == expected.split()


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_the_systemd_units_are_valid(tmp_path):
    """systemd's own check (unknown keys, bad values, missing programs), with the install's paths mapped to
    this machine's."""
    for name in ("integplan-web", "integplan-worker", "integplan-scheduler"):
        text = (stack.DEPLOY / "systemd" / f"{name}.service").read_text()
        text = text.replace(f"{stack.INSTALL_DIR}/.venv/bin", str(stack.VENV_BIN))
        text = text.replace("/etc/integplan-portal/portal.env", str(stack.DEPLOY / "portal.env.example"))
        text = text.replace("User=integplan", "User=root").replace("Group=integplan", "Group=root")
        (tmp_path / f"{name}.service").write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", *sorted(map(str, tmp_path.glob("*.service")))],  # noqa: S607
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and not result.stderr.strip() and not result.stdout.strip(), result.stderr


def _send(url: str, session, path: str, data: dict, **kw) -> int:
    token = stack.csrf(session, url + "/login")
    return session.post(url + path, data={"csrf_token": token, **data}, allow_redirects=False, timeout=30,
                        **kw).status_code


@needs_services
def test_two_instances_and_two_workers_share_limits_and_send_each_mail_once(tmp_path, pg_template, smtp_sink):
    from portal.storage.s3 import S3Storage

    db_url = stack.fresh_database(PG_URL, pg_template)
    bucket = f"test-deploy-{uuid.uuid4().hex[:12]}"
    storage = S3Storage(S3_URL, bucket, region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    storage.ensure_ready()
    name = f"deploy-{uuid.uuid4().hex[:12]}"
    env = stack.portal_env(
        tmp_path, DATABASE_URL=db_url, S3_BUCKET=bucket, MAIL_PORT=str(smtp_sink.port), BASE_URL="http://127.0.0.1",
        RATELIMIT_STORAGE_URI=REDIS_URL, RATELIMIT_KEY_PREFIX=name, TASK_QUEUE_URL=REDIS_URL, TASK_QUEUE_NAME=name,
        LOGIN_RATE_LIMIT="3 per minute", ACCOUNT_RATE_LIMIT="100 per minute", WEB_CONCURRENCY="2")
    data_app = create_app(app_config(db_url, tmp_path, smtp_sink.port, TASK_QUEUE_URL=REDIS_URL,
                                     TASK_QUEUE_NAME=name))
    processes = []
    try:
        ports = [free_port(), free_port()]
        processes += [stack.web(tmp_path, port, env, name=f"web{n}") for n, port in enumerate(ports, 1)]
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        with Session(data_app.extensions["db_engine"], expire_on_commit=False) as db:
            target = make_user(db)
            users = [make_user(db) for _ in range(12)]

        # Limits: one client's failures, spread over both instances, hit one limit.
        client = stack.client("127.0.0.9")
        codes = [_send(urls[n % 2], client, "/login", {"email": target.email, "password": "wrong password 123"})
                 for n in range(5)]
        assert codes == [422, 422, 422, 429, 429]

        # Mail: two workers and the scheduler wait on the queue; reset requests through both instances
        # queue one job per mail, and each job is queued a second time (as after a worker died mid-job).
        processes += [stack.worker(tmp_path, env, name=f"worker{n}") for n in (1, 2)]
        processes.append(stack.worker(tmp_path, env, name="scheduler", unit_name="integplan-scheduler"))
        deadline = time.monotonic() + 90
        while not all("Huey consumer started" in p.text() for p in processes[2:]):
            assert time.monotonic() < deadline, [p.text()[-2000:] for p in processes[2:]]
            time.sleep(0.3)
        smtp_sink.clear()
        for n, user in enumerate(users):
            assert _send(urls[n % 2], stack.client(f"127.0.1.{n + 1}"), "/reset", {"email": user.email}) == 303
        with Session(data_app.extensions["db_engine"]) as db:
            outbox = [row.id for row in db.exec(select(OutboxMail)).all()]
        assert len(outbox) == len(users)
        with data_app.app_context():
            assert all(tasks.enqueue("send_mail", mail_id) for mail_id in outbox)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(smtp_sink.messages) < len(users):
            time.sleep(0.5)
        time.sleep(3)  # room for a second delivery of any message, if the claims let one through
        delivered = {user.email: len(smtp_sink.to(user.email)) for user in users}
        assert delivered == {user.email: 1 for user in users}, delivered
        assert len(smtp_sink.messages) == len(users)
        with Session(data_app.extensions["db_engine"]) as db:
            rows = db.exec(select(OutboxMail)).all()
        assert len(rows) == len(users) and all(row.sent_at for row in rows)
        ran = {p.name: len(re.findall(r"Executing portal\.tasks\.send_mail", p.text())) for p in processes[2:]}
        print(f"\nsend_mail jobs run per worker process: {ran}")  # shown with -s: how the work was spread
        assert sum(ran.values()) == 2 * len(users)
    finally:
        for process in processes:
            process.stop()
        data_app.extensions["db_engine"].dispose()
        data_app.extensions["huey"].storage.close()
        r = redis.Redis.from_url(REDIS_URL)
        for key in r.scan_iter(match=f"*{name}*"):
            r.delete(key)
        r.close()
        for key in list(storage.keys()):
            storage.delete(key)
        storage.client.delete_bucket(Bucket=bucket)
        storage.close()
        stack.drop_database(PG_URL, db_url)
