#!/usr/bin/env bash
# Submit the robustness study as a Slurm array of N shards (study_array.sbatch) plus the report job
# (study_report.sbatch, --dependency=afterok on the array: it starts once every shard succeeded, and is cancelled
# if one fails); prints both job ids, the array's first.
#   PROFILE=study DRDO_STUDY_SHARDS=8 scripts/slurm/submit_study.sh [study overrides key=value ...]
# Each shard writes its cells under runs/$PROFILE/study/cells/; the report job writes figures/$PROFILE/study_*.
# Knobs of each array task (unset: the #SBATCH default of study_array.sbatch): DRDO_SLURM_CPUS (default 2),
# DRDO_SLURM_MEM (8G), DRDO_SLURM_TIME (04:00:00), DRDO_SLURM_GPUS (none); of the report job: DRDO_SLURM_REPORT_MEM
# (8G), DRDO_SLURM_REPORT_TIME (01:00:00); of both: DRDO_SLURM_PARTITION, DRDO_SLURM_ACCOUNT, DRDO_SLURM_EXTRA
# (more sbatch flags), DRDO_SLURM_LOGS (log folder, default runs/slurm-logs/). DRDO_STUDY_SHARDS: N (default 4);
# DRDO_SLURM_ARRAY_LIMIT: at most this many shards at once (sbatch --array=0-(N-1)%limit).
# The jobs run in the environment this script is called from (sbatch exports it: PYTHONPATH, DRDO_RUNS_DIR, ...).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export PROFILE="${PROFILE:-study}"
n="${DRDO_STUDY_SHARDS:-4}"
case "$n" in ''|*[!0-9]*|0) echo "submit_study.sh: DRDO_STUDY_SHARDS must be a positive integer, got '$n'" >&2; exit 2;; esac
export DRDO_STUDY_SHARDS="$n"
array="0-$((n - 1))${DRDO_SLURM_ARRAY_LIMIT:+%$DRDO_SLURM_ARRAY_LIMIT}"
flags=()
. "$root/scripts/slurm/flags.sh"
slurm_flags DRDO_SLURM_
array_job=$(sbatch --parsable "${flags[@]}" --array="$array" --output="$logs/%x-%A_%a.out" \
  "$root/scripts/slurm/study_array.sbatch" "$@")
array_job="${array_job%%;*}"
flags=()
slurm_flags DRDO_SLURM_REPORT_
report_job=$(sbatch --parsable "${flags[@]}" --dependency="afterok:$array_job" --kill-on-invalid-dep=yes \
  --output="$logs/%x-%j.out" "$root/scripts/slurm/study_report.sbatch" "$@")
report_job="${report_job%%;*}"
echo "submitted the study of profile $PROFILE: array job $array_job ($n shards, logs $logs/drdo-study-${array_job}_<i>.out)," \
     "report job $report_job (after the array; log $logs/drdo-study-report-$report_job.out)"
echo "array_job=$array_job report_job=$report_job"
