#!/usr/bin/env bash
# The S3 server for tests and local runs: a Ceph RADOS Gateway (Debian's radosgw) on top of a
# single-node Ceph cluster on loopback. One monitor, one BlueStore OSD backed by a sparse file,
# no cephx inside the cluster; clients talk S3 with SigV4 signatures like to any real S3 service.
#
#   scripts/s3-server.sh start [DIR]   install packages if needed; create the cluster on first use,
#                                      otherwise restart it; returns at once if S3 already answers
#   scripts/s3-server.sh stop  [DIR]   stop the gateway, OSD and monitor (data stays in DIR)
#   scripts/s3-server.sh env   [DIR]   print the S3 settings as one `export` line:
#                                      eval "$(scripts/s3-server.sh env)"
#   scripts/s3-server.sh stop-gateway  [DIR]  stop only the S3 gateway (fault tests: "S3 is down")
#   scripts/s3-server.sh start-gateway [DIR]  start it again and wait until S3 answers
#
# DIR defaults to /tmp/integplan-ceph. Settings (environment):
#   S3_SERVER_PORT (7480), S3_SERVER_MON_PORT (6789),
#   S3_SERVER_ACCESS_KEY (portal-dev), S3_SERVER_SECRET_KEY (portal-dev-secret)
# Must run as root (daemons, apt-get).
set -euo pipefail

CMD=${1:-start}
DIR=${2:-/tmp/integplan-ceph}
PORT=${S3_SERVER_PORT:-7480}
MON_PORT=${S3_SERVER_MON_PORT:-6789}
ACCESS_KEY=${S3_SERVER_ACCESS_KEY:-portal-dev}
SECRET_KEY=${S3_SERVER_SECRET_KEY:-portal-dev-secret}
CONF="$DIR/ceph.conf"
# Marker written only after the cluster and the S3 user exist: without it DIR is half-made.
READY="$DIR/initialised"

log() { echo "s3-server: $*" >&2; }

answering() { curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/"; }

wait_for_s3() {  # $1 = seconds
  local deadline=$((SECONDS + $1))
  while ((SECONDS < deadline)); do
    answering && return 0
    sleep 0.3
  done
  log "no S3 answer on port $PORT after $1 s (logs: $DIR/log)"
  return 1
}

ceph_cli() { timeout 60 ceph -c "$CONF" --connect-timeout 30 "$@"; }

install_packages() {
  command -v radosgw >/dev/null && return 0
  log "installing radosgw ceph-mon ceph-osd"
  "$(dirname "$0")/apt-install.sh" radosgw ceph-mon ceph-osd
}

new_uuid() { python3 -c 'import uuid; print(uuid.uuid4())'; }

write_conf() {  # $1 = fsid
  cat >"$CONF" <<EOF
[global]
fsid = $1
mon_host = 127.0.0.1:$MON_PORT
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
keyring = /dev/null
ms_bind_ipv6 = false
run_dir = $DIR/run
admin_socket = $DIR/run/\$name.asok
log_file = $DIR/log/\$name.log
# one OSD: every pool keeps a single copy and never waits for a second host
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
osd_crush_chooseleaf_type = 0
osd_pool_default_pg_autoscale_mode = off
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
mon_max_pg_per_osd = 1000

[mon]
mon_data = $DIR/mon/\$cluster-\$id

[osd]
osd_data = $DIR/osd
osd_objectstore = bluestore
# a sparse 24 GiB file instead of a disk; only what is written takes space (a full OSD stops every
# write: the bench alone writes 600 MB a run, and deletes it afterwards)
bluestore_block_path = $DIR/osd/block.file
bluestore_block_size = 25769803776
bluestore_block_create = true
bluestore_block_db_create = false
bluestore_block_wal_create = false
bluestore_cache_autotune = false
bluestore_cache_size = 134217728
osd_memory_target = 939524096

[client.rgw]
rgw_frontends = beast endpoint=127.0.0.1:$PORT
rgw_data = $DIR/rgw
EOF
}

# The gateway sends no Server header unless told to; name the software so clients can report it.
rgw_server_name() { radosgw --version 2>/dev/null | awk '{print "Ceph-RGW/" $3 " (" $5 ")"}'; }

start_rgw() {
  radosgw -c "$CONF" -n client.rgw --pid-file "$DIR/run/rgw.pid" --rgw_service_provider_name "$(rgw_server_name)"
}

run_daemons() {  # explicit || return: errexit does not apply inside an `if` condition
  ceph-mon -c "$CONF" -i a --pid-file "$DIR/run/mon.pid" || return 1
  ceph-osd -c "$CONF" -i "$(cat "$DIR/osd.id")" --pid-file "$DIR/run/osd.pid" 2>>"$DIR/log/start.log" || return 1
  start_rgw || return 1
}

init_cluster() {
  log "creating a new one-node cluster in $DIR"
  mkdir -p "$DIR"/{mon,osd,run,log,rgw}
  local fsid osd_uuid osd_id
  fsid=$(new_uuid)
  write_conf "$fsid"
  monmaptool --create --add a "127.0.0.1:$MON_PORT" --fsid "$fsid" "$DIR/monmap" >/dev/null
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap"
  ceph-mon -c "$CONF" -i a --pid-file "$DIR/run/mon.pid"
  osd_uuid=$(new_uuid)
  osd_id=$(ceph_cli osd new "$osd_uuid")
  echo "$osd_id" >"$DIR/osd.id"
  ceph-osd -c "$CONF" -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" >>"$DIR/log/setup.log" 2>&1
  {
    ceph_cli osd crush add-bucket localhost host
    ceph_cli osd crush move localhost root=default
    ceph_cli osd crush add "osd.$osd_id" 1.0 host=localhost
  } >>"$DIR/log/setup.log" 2>&1
  ceph-osd -c "$CONF" -i "$osd_id" --pid-file "$DIR/run/osd.pid" 2>>"$DIR/log/setup.log"
  start_rgw
  # the first gateway start creates its pools: slower than a restart
  wait_for_s3 120
  timeout 60 radosgw-admin -c "$CONF" user create --uid=portal --display-name="IntegPlan portal" \
    --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >>"$DIR/log/setup.log"
  touch "$READY"
}

# Only signal a process that is really ours: after a reboot a stale pid file may name another program.
our_pid() {  # $1 = daemon name (mon|osd|rgw); prints the pid if it runs one of our daemons
  local pid exe
  pid=$(cat "$DIR/run/$1.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  exe=$(tr '\0' ' ' <"/proc/$pid/cmdline")
  [[ $exe == *"$CONF"* ]] || return 1
  echo "$pid"
}

stop_daemons() {  # $@ = daemon names, default all
  local name pid deadline names=("$@")
  [ ${#names[@]} -eq 0 ] && names=(rgw osd mon)
  for name in "${names[@]}"; do
    pid=$(our_pid "$name") || continue
    kill "$pid" 2>/dev/null || continue
    deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name ($pid) did not stop; killing it"
      kill -9 "$pid" 2>/dev/null || true
      # gone before a new daemon takes its port (a new monitor beside the old one: "wrong fsid")
      deadline=$((SECONDS + 10))
      while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    fi
  done
  [ $# -eq 0 ] && rm -f "$DIR"/run/*.pid
  return 0
}

# A first creation on a new, busy machine has failed once in a while (a daemon not up in time, exit 250);
# the second try then worked. So: two tries, each from an empty DIR, and the first one's logs kept.
wipe_and_init() {
  local attempt
  for attempt in 1 2; do
    stop_daemons
    rm -rf "$DIR"
    # in a child process: errexit does not hold inside a function called from an `if` condition
    if "$0" __init "$DIR"; then
      return 0
    fi
    log "creating the cluster failed (try $attempt of 2)"
    mkdir -p "${DIR}-failed" && cp -r "$DIR/log" "${DIR}-failed/log-$attempt" 2>/dev/null || true
  done
  return 1
}

start() {
  if answering; then
    log "S3 already answering on port $PORT"
    return 0
  fi
  install_packages
  if [ ! -f "$READY" ]; then
    wipe_and_init
    return
  fi
  if ! grep -q "^bluestore_block_size = 25769803776$" "$CONF"; then
    log "the cluster in $DIR was made with an older layout (smaller OSD); starting afresh"
    wipe_and_init
    return
  fi
  log "restarting the cluster in $DIR"
  # left-overs of a crashed run would hold the ports or the OSD's lock
  stop_daemons
  if run_daemons && wait_for_s3 60; then
    return 0
  fi
  log "restart failed (stale data from an earlier machine state?); starting afresh"
  wipe_and_init
}

case $CMD in
  start)
    start
    echo "S3 ready at http://127.0.0.1:$PORT (data in $DIR)"
    ;;
  stop)
    stop_daemons
    ;;
  stop-gateway)
    stop_daemons rgw
    ;;
  start-gateway)
    answering || { start_rgw && wait_for_s3 60; }
    ;;
  __init)  # wipe_and_init's child
    init_cluster
    ;;
  env)
    printf 'export S3_ENDPOINT_URL=http://127.0.0.1:%s AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s AWS_DEFAULT_REGION=us-east-1\n' \
      "$PORT" "$ACCESS_KEY" "$SECRET_KEY"
    ;;
  *)
    echo "usage: $0 start|stop|env [DIR]" >&2
    exit 2
    ;;
esac
