#!/usr/bin/env bash
# Submit ./run_all.sh for one profile as a one-node GPU job (run_all.sbatch); prints the job id.
#   PROFILE=tldr scripts/slurm/submit_run_all.sh [run_all.sh arguments, e.g. --only 04]
# Knobs (unset: the #SBATCH default of run_all.sbatch): DRDO_SLURM_GPUS (GPUs of the node, default 8; 0 for a CPU
# profile), DRDO_SLURM_CPUS (default: every CPU of the node), DRDO_SLURM_MEM (default 0 = all of it),
# DRDO_SLURM_TIME (default 24:00:00), DRDO_SLURM_PARTITION, DRDO_SLURM_ACCOUNT, DRDO_SLURM_EXTRA (more sbatch
# flags), DRDO_SLURM_LOGS (log folder, default runs/slurm-logs/: drdo-run-all-<jobid>.out).
# The job runs in the environment this script is called from (sbatch exports it): activate the conda / virtual
# environment first and the job passes --no-setup to run_all.sh.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export PROFILE="${PROFILE:-tldr}"
flags=()
. "$root/scripts/slurm/flags.sh"
slurm_flags DRDO_SLURM_
job=$(sbatch --parsable "${flags[@]}" --output="$logs/%x-%j.out" "$root/scripts/slurm/run_all.sbatch" "$@")
job="${job%%;*}"
echo "submitted run_all.sh --profile $PROFILE as job $job (log: $logs/drdo-run-all-$job.out)"
echo "job=$job"
