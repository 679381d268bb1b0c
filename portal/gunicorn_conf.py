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


# The young generation's threshold (Python's default: 700 allocations). A page allocates thousands of objects
# that are freed as it ends, and a worker serves several at once, so at 700 a collection ran every few
# requests and every tenth of them also walked the middle generation, every hundredth the whole heap:
# measured under wrk on the desk and the case list, 2.5 % of the workers' CPU went to collections at 700,
# 0.8 % at 10,000 (gen-2 collections 5 → 0 a run). Cycles wait a little longer to be freed.
GC_GEN0 = int(os.environ.get("GC_GEN0_THRESHOLD", "10000"))


def post_worker_init(worker):
    """Freeze what loading the app allocated (modules, templates, catalogs, the metadata): gen-2 garbage
    collections then skip those objects, which cost ~5 ms a request on the desk and ~28 ms on the
    dashboard when every collection walked them; then collect less often (GC_GEN0). Runs in each worker,
    after the app is loaded there."""
    import gc

    gc.collect()
    gc.freeze()
    _generation0, generation1, generation2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0, generation1, generation2)


def on_starting(server):
    """Refuse to start several workers that would each count rate limits on their own (memory://)."""
    from portal.config import limiter_storage_error, load_config

    problem = limiter_storage_error(load_config(), server.cfg.workers)
    if problem:
        sys.exit(f"Not starting: {problem}")
