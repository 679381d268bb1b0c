#!/usr/bin/env bash
# `make soak`: concurrent partners upload and read receipts against gunicorn + PostgreSQL + Ceph S3 while
# the S3 gateway is stopped and started again; prints acknowledged and lost uploads, orphans, unexpected
# 5xx and latency percentiles, writes bench-results/soak.md. Not part of `make test`; about 5 minutes.
# Options go to scripts/soak.py: --minutes, --uploaders, --readers, --outages, --outage, --think.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

command -v pg_isready >/dev/null || scripts/apt-install.sh postgresql postgresql-client
scripts/postgres.sh
export BENCH_ADMIN_URL=${BENCH_ADMIN_URL:-$(scripts/postgres.sh url)}
scripts/s3-server.sh start
eval "$(scripts/s3-server.sh env)"

exec "$VENV/bin/python" scripts/soak.py "$@"
