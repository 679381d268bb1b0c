"""The production server configuration: `gunicorn -c python:portal.gunicorn_conf 'portal:create_app()'`.

Threaded workers, so one partner's slow upload over a mobile link holds a thread, not a whole worker,
and is not killed by the worker timeout (sync workers are killed after `timeout` while still reading
a slow request). Behind a TLS proxy that buffers request bodies (nginx does by default) uploads reach
gunicorn whole anyway. Settings can be overridden with GUNICORN_CMD_ARGS or the environment below.
"""

import os
import sys

bind = os.environ.get("BIND", "127.0.0.1:8000")
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5


def post_worker_init(worker):
    """Freeze what loading the app allocated (modules, templates, catalogs, the metadata): gen-2 garbage
    collections then skip those objects, which cost ~5 ms a request on the desk and ~28 ms on the
    dashboard when every collection walked them. Runs in each worker, after the app is loaded there."""
    import gc

    gc.collect()
    gc.freeze()


def on_starting(server):
    """Refuse to start several workers that would each count rate limits on their own (memory://)."""
    from portal.config import limiter_storage_error, load_config

    problem = limiter_storage_error(load_config(), server.cfg.workers)
    if problem:
        sys.exit(f"Not starting: {problem}")
