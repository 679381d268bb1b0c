#!/usr/bin/env bash
# `make bench`: start PostgreSQL, the Ceph S3 server and (from the Python driver) the portal and a bare
# Flask app under gunicorn; generate the volume; measure; write bench-results/bench.md and throughput.svg.
# Not part of `make test`. Takes about 10 minutes on a 2-core machine, plus about 18 for the resumable uploads
# over 2G (a 6 MB PDF at 50 kbit/s; BENCH_UPLOADS_PDF_MB=1 for about 4). BENCH_SKIP_UPLOADS=1 leaves out the
# upload and 2G parts; BENCH_QUICK=1 (for iterating) also takes 3 rounds and 1,000 then 10,000 receipts.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

need_apt=()
command -v wrk >/dev/null || need_apt+=(wrk)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v pg_isready >/dev/null || need_apt+=(postgresql postgresql-client)
command -v pgrep >/dev/null || need_apt+=(procps)
scripts/apt-install.sh "${need_apt[@]}"

scripts/postgres.sh
export BENCH_ADMIN_URL=${BENCH_ADMIN_URL:-$(scripts/postgres.sh url)}
scripts/s3-server.sh start
eval "$(scripts/s3-server.sh env)"

exec "$VENV/bin/python" scripts/bench/run.py "$@"
