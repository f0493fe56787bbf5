#!/usr/bin/env bash
# Install and configure a one-node Slurm cluster on this machine (this host is both the controller and the only
# compute node): what the Slurm test (tests/test_slurm.py) runs the batch templates of scripts/slurm/ against, and
# a way to try those templates on a workstation. Needs root (or sudo) and apt-get (Debian/Ubuntu: Slurm 22.05 on
# Debian 12). Idempotent: every step is skipped when already done. CI calls this before ./scripts/test.sh --slow.
#
# What it does:
#   1. apt-get install slurmctld slurmd slurm-client munge (only if `slurmctld`, `slurmd`, `sbatch` or `munged` is missing);
#   2. a munge key at /etc/munge/munge.key (0400, owned by munge) unless one exists;
#   3. /etc/slurm/slurm.conf for this host (controller + node: CPUs=$(nproc), RealMemory from /proc/meminfo, the
#      GPUs nvidia-smi lists as gres gpu), written only when missing or written earlier by this script (a file
#      without this script's header line is a real cluster's configuration and is left alone);
#   4. the spool, state and log directories.
# Start and stop the daemons with scripts/slurm/local_cluster.sh start|stop|status (this script starts nothing).
# Settings (environment): DRDO_SLURM_CONF (default /etc/slurm/slurm.conf), DRDO_SLURM_PARTITION (the partition
# name, default `local`), DRDO_SLURM_FORCE_CONF=1 (rewrite slurm.conf even without this script's header).
set -euo pipefail
conf="${DRDO_SLURM_CONF:-/etc/slurm/slurm.conf}"
partition="${DRDO_SLURM_PARTITION:-local}"
header="# Written by drdo scripts/install_slurm.sh: a one-node cluster on this host (rerun it to refresh)."
say() { echo "[install_slurm] $*"; }

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "[install_slurm] needs root (or sudo)" >&2; exit 1; }
  sudo="sudo"
fi

# 1. packages
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
if have slurmctld && have slurmd && have sbatch && have munged; then
  say "slurmctld, slurmd, sbatch and munged already installed ($(sbatch --version 2>/dev/null || echo '?'))"
else
  command -v apt-get >/dev/null 2>&1 || {
    echo "[install_slurm] apt-get not found: install slurmctld, slurmd, the Slurm client and munge yourself" >&2; exit 1; }
  say "installing slurmctld slurmd slurm-client munge with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  # No service is started by the packages' install scripts here (scripts/slurm/local_cluster.sh starts them).
  pkgs=(slurmctld slurmd slurm-client munge)
  $sudo apt-get install -y --no-install-recommends "${pkgs[@]}" \
    || { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends "${pkgs[@]}"; }
fi

# 2. munge key
if $sudo test -s /etc/munge/munge.key; then
  say "munge key present: /etc/munge/munge.key"
else
  say "creating the munge key /etc/munge/munge.key"
  $sudo mkdir -p /etc/munge
  $sudo dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
$sudo chown munge:munge /etc/munge/munge.key
$sudo chmod 0400 /etc/munge/munge.key
for d in /run/munge /var/lib/munge /var/log/munge; do
  $sudo mkdir -p "$d"; $sudo chown munge:munge "$d"; $sudo chmod 0700 "$d"
done
$sudo chmod 0755 /run/munge  # clients (sbatch, slurmd) reach munged's socket here

# 3. slurm.conf
host="$(hostname -s)"
cpus="$(nproc)"
mem_mb=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 ))
# 95 % of MemTotal rounded down to whole GiB: slurmd measures a little less than MemTotal (a node configured above
# what it measures is drained), and the rounding keeps the file unchanged when MemTotal moves by a few MB
real_mem=$(( mem_mb * 95 / 100 / 1024 * 1024 ))
ngpu=0
if command -v nvidia-smi >/dev/null 2>&1; then ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true); fi
gres_line=""; node_gres=""
if [ "$ngpu" -gt 0 ]; then gres_line="GresTypes=gpu"; node_gres=" Gres=gpu:$ngpu"; fi
want=$(cat <<EOF
$header
ClusterName=drdo-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
# no cgroups in a container: processes tracked through /proc, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# CPUs (and GPUs) are what jobs consume; --mem is checked against RealMemory but not reserved
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
# finished jobs stay visible to squeue/scontrol for an hour (there is no accounting database for sacct)
MinJobAge=3600
SlurmctldTimeout=30
SlurmdTimeout=30
$gres_line
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$real_mem$node_gres State=UNKNOWN
PartitionName=$partition Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
)
if [ -f "$conf" ] && ! head -n1 "$conf" | grep -qF "$header" && [ "${DRDO_SLURM_FORCE_CONF:-0}" != 1 ]; then
  say "$conf exists and was not written by this script: left alone (DRDO_SLURM_FORCE_CONF=1 rewrites it)"
elif [ -f "$conf" ] && [ "$(cat "$conf")" = "$want" ]; then
  say "$conf up to date ($host: $cpus CPUs, RealMemory=$real_mem MB, $ngpu GPUs, partition $partition)"
else
  say "writing $conf ($host: $cpus CPUs, RealMemory=$real_mem MB, $ngpu GPUs, partition $partition)"
  $sudo mkdir -p "$(dirname "$conf")"
  printf '%s\n' "$want" | $sudo tee "$conf" >/dev/null
fi
if [ "$ngpu" -gt 0 ]; then
  gres_conf="$(dirname "$conf")/gres.conf"
  if [ ! -f "$gres_conf" ] || head -n1 "$gres_conf" | grep -qF "$header"; then
    printf '%s\nAutoDetect=off\nName=gpu File=/dev/nvidia[0-%d]\n' "$header" "$((ngpu - 1))" | $sudo tee "$gres_conf" >/dev/null
  fi
fi

# 4. directories
$sudo mkdir -p /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
say "done; start the cluster with scripts/slurm/local_cluster.sh start"
