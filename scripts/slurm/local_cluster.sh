#!/usr/bin/env bash
# Start, stop or inspect the one-node Slurm cluster that scripts/install_slurm.sh configures on this machine
# (munged, slurmctld, slurmd; no systemd needed, so it works in a container). Needs root (or sudo).
#   scripts/slurm/local_cluster.sh start    start whichever of munged / slurmctld / slurmd is not running, then
#                                           wait (DRDO_SLURM_WAIT seconds, default 60) until the node is usable
#   scripts/slurm/local_cluster.sh stop     stop slurmd, slurmctld and munged (by the pid files they write)
#   scripts/slurm/local_cluster.sh status   exit 0 when all three run and the node accepts jobs (sinfo shown)
# Logs: /var/log/slurm/slurmctld.log, /var/log/slurm/slurmd.log, /var/log/munge/munged.log.
set -euo pipefail
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
say() { echo "[local_cluster] $*"; }
conf="${DRDO_SLURM_CONF:-/etc/slurm/slurm.conf}"
export SLURM_CONF="$conf"

munge_pid=/run/munge/munged.pid
ctld_pid=/run/slurmctld.pid
slurmd_pid=/run/slurmd.pid

alive() {  # alive PIDFILE NAME: the pid file names a running process called NAME
  local pid
  pid=$($sudo cat "$1" 2>/dev/null || true)
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}

node_ready() {  # the node is idle / mixed / allocated (not down, drained or unknown)
  local state
  state=$(sinfo -h -N -o '%T' 2>/dev/null | head -n1)
  case "$state" in idle*|mixed*|allocated*|completing*) return 0;; *) return 1;; esac
}

start() {
  [ -f "$conf" ] || { echo "[local_cluster] $conf missing: run scripts/install_slurm.sh first" >&2; exit 1; }
  if alive "$munge_pid" munged; then say "munged already running"; else
    say "starting munged"
    $sudo mkdir -p /run/munge && $sudo chown munge:munge /run/munge && $sudo chmod 0755 /run/munge
    if [ "$(id -un)" = munge ]; then /usr/sbin/munged; else $sudo runuser -u munge -- /usr/sbin/munged; fi
  fi
  if alive "$ctld_pid" slurmctld; then say "slurmctld already running"; else
    say "starting slurmctld"
    $sudo /usr/sbin/slurmctld -f "$conf"
  fi
  if alive "$slurmd_pid" slurmd; then say "slurmd already running"; else
    say "starting slurmd"
    $sudo /usr/sbin/slurmd -f "$conf"
  fi
  local wait="${DRDO_SLURM_WAIT:-60}" t=0
  until node_ready; do
    if [ "$t" -ge "$wait" ]; then
      echo "[local_cluster] the node is not usable after ${wait}s: $(sinfo -N -h -o '%N %T %E' 2>&1)" >&2
      echo "[local_cluster] see /var/log/slurm/slurmctld.log and /var/log/slurm/slurmd.log" >&2
      exit 1
    fi
    # a node that was down (e.g. the daemons were killed) comes back once slurmd registers; say so explicitly
    if [ $((t % 5)) -eq 4 ]; then
      $sudo scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
    fi
    sleep 1; t=$((t + 1))
  done
  say "cluster up: $(sinfo -h -o '%P %a %D %T %C' | head -n1) (partition avail nodes state CPUs A/I/O/T)"
}

stop_one() {  # stop_one PIDFILE NAME
  local pid i
  if ! alive "$1" "$2"; then say "$2 not running"; return 0; fi
  pid=$($sudo cat "$1")
  say "stopping $2 (pid $pid)"
  $sudo kill "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do
    [ -d "/proc/$pid" ] || return 0
    sleep 0.2
  done
  say "$2 (pid $pid) did not stop within 10 s: killing it"
  $sudo kill -9 "$pid" 2>/dev/null || true
}

stop() {
  stop_one "$slurmd_pid" slurmd
  stop_one "$ctld_pid" slurmctld
  stop_one "$munge_pid" munged
}

status() {
  local ok=0
  for p in "$munge_pid munged" "$ctld_pid slurmctld" "$slurmd_pid slurmd"; do
    set -- $p
    if alive "$1" "$2"; then say "$2 running (pid $($sudo cat "$1"))"; else say "$2 not running"; ok=1; fi
  done
  if [ $ok -eq 0 ]; then
    sinfo -N -o '%N %P %T %C %m' || ok=1
    node_ready || { say "the node is not ready"; ok=1; }
  fi
  return $ok
}

case "${1:-}" in
  start) start;;
  stop) stop;;
  status) status;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2;;
esac
