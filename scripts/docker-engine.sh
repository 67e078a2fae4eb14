#!/usr/bin/env bash
# Start or stop a Docker engine of our own for `make test-compose` (no systemd here).
#   scripts/docker-engine.sh start   install docker.io if missing, start dockerd, wait for it
#   scripts/docker-engine.sh stop    stop the dockerd this script started
# The engine listens on its own socket ($PINPIPE_DOCKER_HOST), so a Docker the machine already
# runs is never touched; its data root persists between runs to cache images and layers.
set -euo pipefail
root=${PINPIPE_DOCKER_ROOT:-/var/cache/pinpipe/docker}
state=${PINPIPE_DOCKER_STATE:-/run/pinpipe-docker}
socket=${PINPIPE_DOCKER_SOCKET:-$state/docker.sock}
pidfile=$state/dockerd.pid

start() {
  if ! command -v dockerd >/dev/null; then
    echo "installing Debian's docker.io..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends docker.io iptables debootstrap >/dev/null
  fi
  mkdir -p "$root" "$state/exec"
  if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "dockerd already running (pid $(cat "$pidfile")) on unix://$socket"
    return
  fi
  nohup dockerd --data-root "$root" --exec-root "$state/exec" --pidfile "$pidfile" \
    --host "unix://$socket" >"$state/dockerd.log" 2>&1 &
  for _ in $(seq 60); do
    if DOCKER_HOST="unix://$socket" docker info >/dev/null 2>&1; then
      echo "dockerd ready on unix://$socket (data root $root)"
      return
    fi
    sleep 1
  done
  echo "dockerd did not start; last log lines:" >&2
  tail -20 "$state/dockerd.log" >&2
  exit 1
}

stop() {
  [[ -f $pidfile ]] || { echo "dockerd (ours) is not running"; return; }
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 30); do
    kill -0 "$pid" 2>/dev/null || { echo "dockerd stopped"; rm -f "$pidfile"; return; }
    sleep 1
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  echo "dockerd killed"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  host) echo "unix://$socket" ;;
  *) echo "usage: $0 start|stop|host" >&2; exit 2 ;;
esac
