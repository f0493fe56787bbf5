# Sourced by submit_run_all.sh and submit_study.sh: turns the DRDO_SLURM_* variables into sbatch flags.
#   slurm_flags PREFIX   appends to the array `flags`: --partition, --account (shared by every job), then
#                        --time, --mem, --cpus-per-task, --gpus-per-node from ${PREFIX}TIME, ${PREFIX}MEM,
#                        ${PREFIX}CPUS, ${PREFIX}GPUS where set, and the words of DRDO_SLURM_EXTRA (any other flags,
#                        e.g. "--qos=high --constraint=a100"); unset variables keep the template's #SBATCH default.
# The log folder (DRDO_SLURM_LOGS, default runs/slurm-logs/ of the repository) is created: Slurm does not.
slurm_flags() {
  local p="$1" v
  flags+=(--chdir="$root")
  [ -n "${DRDO_SLURM_PARTITION:-}" ] && flags+=(--partition="$DRDO_SLURM_PARTITION")
  [ -n "${DRDO_SLURM_ACCOUNT:-}" ] && flags+=(--account="$DRDO_SLURM_ACCOUNT")
  v="${p}TIME"; [ -n "${!v:-}" ] && flags+=(--time="${!v}")
  v="${p}MEM"; [ -n "${!v:-}" ] && flags+=(--mem="${!v}")
  v="${p}CPUS"; [ -n "${!v:-}" ] && flags+=(--cpus-per-task="${!v}")
  v="${p}GPUS"; [ -n "${!v:-}" ] && flags+=(--gpus-per-node="${!v}")
  # shellcheck disable=SC2206
  [ -n "${DRDO_SLURM_EXTRA:-}" ] && flags+=($DRDO_SLURM_EXTRA)
  return 0
}
logs="${DRDO_SLURM_LOGS:-$root/runs/slurm-logs}"
mkdir -p "$logs"
export DRDO_ROOT="$root"
