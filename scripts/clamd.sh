#!/usr/bin/env bash
# The virus scanner for tests and local runs: Debian's clamd on loopback, with a local signature
# database that knows only the EICAR test string (there is no signature download offline; in
# production the operator runs freshclam and points CLAMD_HOST at a clamd with the real database).
#
#   scripts/clamd.sh start [DIR]   install clamav-daemon if needed, write the signature and clamd.conf,
#                                  start clamd in the background; returns at once if it already answers
#   scripts/clamd.sh stop  [DIR]   stop the clamd this script started (its pid file in DIR)
#   scripts/clamd.sh env   [DIR]   print the portal's settings as one `export` line:
#                                  eval "$(scripts/clamd.sh env)"
#   scripts/clamd.sh ping          exit 0 if clamd answers PING
#
# DIR defaults to /tmp/integplan-clamd. Settings (environment): CLAMD_SERVER_PORT (3310).
# Must run as root when the packages are missing (apt-get).
set -euo pipefail

CMD=${1:-start}
DIR=${2:-/tmp/integplan-clamd}
PORT=${CLAMD_SERVER_PORT:-3310}
CONF="$DIR/clamd.conf"
PIDFILE="$DIR/clamd.pid"
# The EICAR test string, hex-encoded (the signature matches it anywhere in a file: offset "*").
EICAR_HEX=58354f2150254041505b345c505a58353428505e2937434329377d2445494341522d5354414e444152442d414e544956495255532d544553542d46494c452124482b482a

log() { echo "clamd: $*" >&2; }

answering() {  # clamd's PING over TCP, in bash alone (no nc needed)
  local reply=""
  { exec 3<>"/dev/tcp/127.0.0.1/$PORT"; } 2>/dev/null || return 1
  printf 'nPING\n' >&3
  IFS= read -r -t 2 reply <&3 || true
  exec 3>&- 3<&-
  [ "$reply" = "PONG" ]
}

install_packages() {
  command -v clamd >/dev/null && return 0
  [ -x /usr/sbin/clamd ] && return 0
  log "installing clamav clamav-daemon"
  "$(dirname "$0")/apt-install.sh" clamav clamav-daemon
}

clamd_bin() { command -v clamd || echo /usr/sbin/clamd; }

write_files() {
  mkdir -p "$DIR/db" "$DIR/tmp"
  printf 'Local.Test.EICAR:0:*:%s\n' "$EICAR_HEX" >"$DIR/db/local.ndb"
  cat >"$CONF" <<EOF
DatabaseDirectory $DIR/db
TemporaryDirectory $DIR/tmp
TCPSocket $PORT
TCPAddr 127.0.0.1
Foreground yes
PidFile $PIDFILE
LogFile $DIR/clamd.log
LogTime yes
StreamMaxLength 100M
MaxFileSize 100M
MaxScanSize 200M
EOF
}

# Only signal a process that is really ours: a stale pid file may name another program.
our_pid() {
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  [[ $(tr '\0' ' ' <"/proc/$pid/cmdline") == *"$CONF"* ]] || return 1
  echo "$pid"
}

stop() {
  local pid deadline
  pid=$(our_pid) || { rm -f "$PIDFILE"; return 0; }
  kill "$pid" 2>/dev/null || true
  deadline=$((SECONDS + 15))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  rm -f "$PIDFILE"
  log "stopped ($pid)"
}

start() {
  if answering; then
    log "clamd already answering on port $PORT"
    return 0
  fi
  install_packages
  stop
  write_files
  nohup "$(clamd_bin)" --config-file="$CONF" >>"$DIR/clamd.out" 2>&1 </dev/null &
  local deadline=$((SECONDS + 60))
  while ((SECONDS < deadline)); do
    answering && return 0
    sleep 0.3
  done
  log "no PING answer on port $PORT after 60 s (log: $DIR/clamd.log, $DIR/clamd.out)"
  return 1
}

case $CMD in
  start)
    start
    echo "clamd ready on 127.0.0.1:$PORT (local EICAR signature, files in $DIR)"
    ;;
  stop)
    stop
    ;;
  env)
    printf 'export CLAMD_HOST=127.0.0.1 CLAMD_PORT=%s\n' "$PORT"
    ;;
  ping)
    answering
    ;;
  *)
    echo "usage: $0 start|stop|env|ping [DIR]" >&2
    exit 2
    ;;
esac
