#!/usr/bin/env bash
# The whole test suite on real services, as `make test` and CI run it:
# PostgreSQL (a fresh database per test), a one-node Ceph RADOS Gateway as the S3 server, Debian's
# Chromium for the browser tests, clamd (virus scanner, local EICAR signature), nginx (started by the
# tests in front of gunicorn), an SMTP sink (aiosmtpd, started by the tests), then ruff, bandit, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
command -v pg_isready >/dev/null || need_apt+=(postgresql postgresql-client)
command -v openssl >/dev/null || need_apt+=(openssl)  # a throw-away certificate for the nginx TLS check
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_apt+=(fonts-dejavu-core)  # PDFs: Latin, Cyrillic, Georgian, Arabic
# PDFs: the scripts DejaVu lacks (Urdu/Pashto letters, Ethiopic, Indic, ...); optional on a dev machine, CI has them
[ -f /usr/share/fonts/truetype/noto/NotoSansArabic-Regular.ttf ] || need_apt+=(fonts-noto-core)
# Text recognition of receipts (portal/ocr) and the receipts tests/test_ocr.py draws (Arabic, Georgian fonts).
command -v tesseract >/dev/null || need_apt+=(tesseract-ocr)
for lang in eng deu fra ara rus kat; do
  [ -f "/usr/share/tesseract-ocr/5/tessdata/$lang.traineddata" ] || need_apt+=("tesseract-ocr-$lang")
done
scripts/apt-install.sh "${need_apt[@]}"

scripts/postgres.sh
export TEST_DATABASE_URL=${TEST_DATABASE_URL:-$(scripts/postgres.sh url)}

# Redis: the rate limits shared between worker processes.
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  command -v redis-server >/dev/null || scripts/apt-install.sh redis-server redis-tools
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
export TEST_REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379/0}

scripts/s3-server.sh start
eval "$(scripts/s3-server.sh env)"

# clamd with a local EICAR signature for tests/test_scanning.py (the other tests run without a scanner).
scripts/clamd.sh start
export TEST_CLAMD_HOST=${TEST_CLAMD_HOST:-127.0.0.1} TEST_CLAMD_PORT=${TEST_CLAMD_PORT:-${CLAMD_SERVER_PORT:-3310}}

# nginx: tests/test_nginx.py starts it on loopback with deploy/nginx/portal.conf in front of gunicorn.
scripts/nginx.sh install

echo "== ruff"
"$VENV/bin/ruff" check portal tests scripts
echo "== bandit (high severity fails)"
"$VENV/bin/bandit" -q -r portal -lll
echo "== pytest"
exec "$VENV/bin/pytest" "$@"
