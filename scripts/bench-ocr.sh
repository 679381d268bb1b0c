#!/usr/bin/env bash
# `make bench-ocr`: text recognition of receipts on a generated set (scripts/bench/ocr.py): installs
# Debian's Tesseract with the languages and the fonts the set is drawn in if missing, then measures;
# writes bench-results/ocr.md. Not part of `make test` (about 4 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

need_apt=()
command -v tesseract >/dev/null || need_apt+=(tesseract-ocr)
for lang in eng deu fra ara rus kat; do
  [ -f "/usr/share/tesseract-ocr/5/tessdata/$lang.traineddata" ] || need_apt+=("tesseract-ocr-$lang")
done
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_apt+=(fonts-dejavu-core)
[ -f /usr/share/fonts/truetype/noto/NotoNaskhArabic-Regular.ttf ] || need_apt+=(fonts-noto-core)
scripts/apt-install.sh "${need_apt[@]}"

exec "$VENV/bin/python" scripts/bench/ocr.py "$@"
