#!/usr/bin/env bash
# `make run`: the embedded default in one command — the task queue's worker (Huey consumer with the
# periodic jobs, SQLite queue in instance/tasks.db) in the background, the development server in the
# foreground. Stopping the server (Ctrl-C) stops the worker too.
set -euo pipefail
cd "$(dirname "$0")/.."
FLASK=${FLASK:-.venv/bin/flask}

"$FLASK" --app portal worker --workers 2 &
worker=$!
trap 'kill -TERM "$worker" 2>/dev/null || true; wait "$worker" 2>/dev/null || true' EXIT INT TERM

"$FLASK" --app portal run --host 127.0.0.1 --port 5000
