#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:5432 and print the admin URL the tests use
# (`scripts/postgres.sh url`). Our machines run one with trust auth; a fresh Debian machine gets one.
set -euo pipefail
HOST=${PGHOST_TEST:-127.0.0.1}
PORT=${PGPORT_TEST:-5432}
url() { echo "postgresql+psycopg://postgres@$HOST:$PORT/postgres"; }
[ "${1:-}" = url ] && { url; exit 0; }

if ! pg_isready -q -h "$HOST" -p "$PORT"; then
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$version" ]; then
    echo "no PostgreSQL cluster found: install the Debian package postgresql" >&2
    exit 1
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 50); do pg_isready -q -h "$HOST" -p "$PORT" && break; sleep 0.2; done
fi
# The tests connect as postgres over TCP without a password; on a fresh cluster allow that on loopback.
if ! psql -h "$HOST" -p "$PORT" -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  hba=/etc/postgresql/$version/main/pg_hba.conf
  sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
  pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  sleep 1
fi
psql -h "$HOST" -p "$PORT" -U postgres -d postgres -tAc 'select 1' >/dev/null
