#!/usr/bin/env bash
# The whole test suite on real services, as `make test` and CI run it:
# PostgreSQL (a fresh database per test), a one-node Ceph RADOS Gateway as the S3 server, Debian's
# Chromium for the browser tests, an SMTP sink (aiosmtpd, started by the tests), then ruff, bandit, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
command -v pg_isready >/dev/null || need_apt+=(postgresql postgresql-client)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi

scripts/postgres.sh
export TEST_DATABASE_URL=${TEST_DATABASE_URL:-$(scripts/postgres.sh url)}

scripts/s3-server.sh start
eval "$(scripts/s3-server.sh env)"

echo "== ruff"
"$VENV/bin/ruff" check portal tests scripts
echo "== bandit (high severity fails)"
"$VENV/bin/bandit" -q -r portal -lll
echo "== pytest"
exec "$VENV/bin/pytest" "$@"
