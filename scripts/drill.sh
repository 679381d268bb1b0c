#!/usr/bin/env bash
# `make drill`: start PostgreSQL and the Ceph S3 server, then run the backup and restore drill
# (scripts/drill.py): back up a fresh portal database and bucket, add records, destroy both, restore,
# verify every row and every object's SHA-256. Writes bench-results/drill.md; exits 1 on any mismatch.
# Not part of `make test`. Extra arguments go to drill.py (e.g. --keep).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

need_apt=()
# pg_dump/pg_restore (and pg_isready, psql for scripts/postgres.sh) come with postgresql-client.
for tool in pg_dump pg_restore pg_isready psql; do
  command -v "$tool" >/dev/null || { need_apt+=(postgresql-client); break; }
done
# A server only if none answers and no cluster exists to start.
if ! { command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; } && ! ls -d /etc/postgresql/*/main >/dev/null 2>&1; then
  need_apt+=(postgresql)
fi
command -v curl >/dev/null || need_apt+=(curl)
command -v pgrep >/dev/null || need_apt+=(procps)
scripts/apt-install.sh "${need_apt[@]}"

scripts/postgres.sh
export DRILL_ADMIN_URL=${DRILL_ADMIN_URL:-$(scripts/postgres.sh url)}
# The fault tests stop and start only the gateway for a few seconds; `start` would restart the whole
# cluster under them. While the cluster's OSD runs, give the gateway a moment to come back first.
if pgrep -x ceph-osd >/dev/null; then
  for _ in $(seq 1 30); do curl -s -o /dev/null --max-time 2 http://127.0.0.1:"${S3_SERVER_PORT:-7480}"/ && break; sleep 0.5; done
fi
scripts/s3-server.sh start
eval "$(scripts/s3-server.sh env)"
echo "tools: $(pg_dump --version), $(pg_restore --version)"

exec "$VENV/bin/python" scripts/drill.py "$@"
