#!/usr/bin/env bash
# Install Debian packages for the project's scripts (quietly, without recommended extras):
#   scripts/apt-install.sh PACKAGE...
set -euo pipefail
[ $# -gt 0 ] || exit 0
echo "installing: $*"
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
