#!/usr/bin/env bash
# Make sure a fresh Debian machine has what `make run` needs: python3 with venv, node with npm.
set -euo pipefail
missing=()
python3 -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null || missing+=(python3)
python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v npm >/dev/null || missing+=(npm)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "Please install: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
