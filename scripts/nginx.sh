#!/usr/bin/env bash
# Debian's nginx on loopback in front of the portal, with the site the project ships
# (deploy/nginx/portal.conf) — for tests/test_nginx.py and for trying the deployment locally.
#
#   scripts/nginx.sh install          apt-install nginx if it is missing (needs root)
#   scripts/nginx.sh start DIR        write DIR/nginx.conf and DIR/portal.conf, start nginx (returns when
#                                     it answers); DIR holds its pid, logs and temporary files
#   scripts/nginx.sh config DIR       only write the configuration and check it (nginx -t)
#   scripts/nginx.sh stop DIR         stop the nginx started with DIR
#
# Settings (environment) for start/config:
#   NGINX_PORT       loopback port to listen on (plain HTTP)                        required
#   NGINX_UPSTREAMS  gunicorn addresses, comma-separated (127.0.0.1:8001,…)          required
#   NGINX_STATIC     the static directory to serve (default: this checkout's static/)
#   NGINX_SITE       the site file (default: deploy/nginx/portal.conf)
# The site's TLS block ("# BEGIN tls" … "# END tls") becomes `listen 127.0.0.1:PORT;`, the port-80
# redirect block is dropped, everything else (body limits, timeouts, buffering, forwarded headers,
# static caching) is used as shipped.
set -euo pipefail
cd "$(dirname "$0")/.."

CMD=${1:-}
DIR=${2:-}

log() { echo "nginx: $*" >&2; }

nginx_bin() { command -v nginx || echo /usr/sbin/nginx; }

install() {
  [ -x "$(nginx_bin)" ] && return 0
  log "installing nginx"
  scripts/apt-install.sh nginx
}

write_config() {
  : "${NGINX_PORT:?set NGINX_PORT}" "${NGINX_UPSTREAMS:?set NGINX_UPSTREAMS}"
  local site=${NGINX_SITE:-deploy/nginx/portal.conf} static=${NGINX_STATIC:-$PWD/static}
  mkdir -p "$DIR/logs" "$DIR/tmp"
  awk -v port="$NGINX_PORT" -v ups="$NGINX_UPSTREAMS" -v static="${static%/}/" '
    /^[ \t]*# BEGIN redirect[ \t]*$/ { skip = 1; next }
    /^[ \t]*# END redirect[ \t]*$/   { skip = 0; next }
    /^[ \t]*# BEGIN tls[ \t]*$/      { skip = 1; print "    listen 127.0.0.1:" port ";"; next }
    /^[ \t]*# END tls[ \t]*$/        { skip = 0; next }
    skip { next }
    /^[ \t]*server 127\.0\.0\.1:8000;/ {
      n = split(ups, a, ","); for (i = 1; i <= n; i++) print "    server " a[i] ";"; next
    }
    /^[ \t]*alias \/srv\/integplan-portal\/static\/;/ { print "        alias " static ";"; next }
    { print }
  ' "$site" >"$DIR/portal.conf"
  local user_line=""
  [ "$(id -u)" = 0 ] && user_line="user root root;"  # workers read the checkout and write DIR/tmp
  cat >"$DIR/nginx.conf" <<CONF
$user_line
worker_processes 1;
pid $DIR/nginx.pid;
error_log $DIR/logs/error.log info;
events { worker_connections 256; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log $DIR/logs/access.log;
    client_body_temp_path $DIR/tmp/body;
    proxy_temp_path $DIR/tmp/proxy;
    fastcgi_temp_path $DIR/tmp/fastcgi;
    uwsgi_temp_path $DIR/tmp/uwsgi;
    scgi_temp_path $DIR/tmp/scgi;
    include $DIR/portal.conf;
}
CONF
  "$(nginx_bin)" -q -t -p "$DIR" -c "$DIR/nginx.conf"
}

answering() { { exec 3<>"/dev/tcp/127.0.0.1/$NGINX_PORT"; } 2>/dev/null || return 1; exec 3>&- 3<&-; }

our_pid() {
  local pid
  pid=$(cat "$DIR/nginx.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && [ -r "/proc/$pid/cmdline" ] || return 1
  [[ $(tr '\0' ' ' <"/proc/$pid/cmdline") == *"$DIR/nginx.conf"* ]] || return 1
  echo "$pid"
}

start() {
  install
  write_config
  "$(nginx_bin)" -p "$DIR" -c "$DIR/nginx.conf"
  local deadline=$((SECONDS + 15))
  while ((SECONDS < deadline)); do
    answering && return 0
    sleep 0.1
  done
  log "not answering on 127.0.0.1:$NGINX_PORT (log: $DIR/logs/error.log)"
  return 1
}

stop() {
  local pid deadline
  pid=$(our_pid) || return 0
  kill -QUIT "$pid" 2>/dev/null || true
  deadline=$((SECONDS + 10))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null
  return 0
}

case $CMD in
  install) install ;;
  start) [ -n "$DIR" ] || { echo "usage: $0 start DIR" >&2; exit 2; }; DIR=$(realpath -m "$DIR"); start
         echo "nginx on http://127.0.0.1:$NGINX_PORT -> $NGINX_UPSTREAMS (files in $DIR)" ;;
  config) [ -n "$DIR" ] || { echo "usage: $0 config DIR" >&2; exit 2; }; DIR=$(realpath -m "$DIR"); install; write_config ;;
  stop) [ -n "$DIR" ] || { echo "usage: $0 stop DIR" >&2; exit 2; }; DIR=$(realpath -m "$DIR"); stop ;;
  *) echo "usage: $0 install|start DIR|config DIR|stop DIR" >&2; exit 2 ;;
esac
