#!/usr/bin/env bash
# Regenerate every notebook, table and figure for one profile.
#   ./run_all.sh                      profile `mini` (CPU, no network, synthetic testbed)
#   ./run_all.sh --profile sample     real text from DRDO_DATA_DIR (scripts/fetch_data_samples.py), tiny models, CPU
#   ./run_all.sh --profile tldr       the paper's TL;DR experiment (GPU node, HF hub access)
#   ./run_all.sh --profile study      notebook 07's full robustness grid (CPU, <= 60 min on 2 cores), figures/study/
# Options: --profile NAME, --only NN (run one notebook, e.g. --only 04), --no-setup (use the active environment).
# Executed notebooks: profile mini in place (notebooks/NN_*.ipynb, what nbval checks), any other profile under
# figures/<profile>/notebooks/; figures and tables under figures/<profile>/, run artefacts under runs/<profile>/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"
profile="mini"; only=""; setup=1
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="${2:?--profile needs a name}"; shift 2;;
    --profile=*) profile="${1#*=}"; shift;;
    --only) only="${2:?--only needs a notebook number}"; shift 2;;
    --no-setup) setup=0; shift;;
    -h|--help) sed -n '2,10p' "$0"; exit 0;;
    *) echo "run_all.sh: unknown argument '$1' (try --help)" >&2; exit 2;;
  esac
done
if [ "$profile" = "study" ] && [ -z "$only" ]; then
  only="07"  # the study profile is notebook 07's full grid; notebooks 00-06 run on the other profiles
  echo "run_all.sh: profile study runs notebook 07 (the robustness study) only"
fi
config="configs/$profile.yaml"
if [ ! -f "$config" ]; then
  avail=$(ls configs/*.yaml 2>/dev/null | xargs -n1 basename | sed 's/\.yaml$//' | tr '\n' ' ')
  echo "run_all.sh: unknown profile '$profile': $config does not exist. Available profiles: $avail" >&2
  exit 2
fi
if [ $setup -eq 1 ]; then
  ./scripts/setup_env.sh
  . .venv/bin/activate
fi
# The notebooks' kernel is the interpreter running this script (the .venv above, or the active conda/module
# environment with --no-setup): a kernelspec named `drdo` is written for it under .cache/ and put first on
# JUPYTER_PATH, so no globally registered kernel is needed and a stale one (another environment's) is never used.
py="$(command -v python || command -v python3)"
kernels="$root/.cache/jupyter"
"$py" -m ipykernel install --prefix "$kernels" --name drdo --display-name "Python (drdo)" >/dev/null 2>&1 \
  || { echo "run_all.sh: cannot register a Jupyter kernel for $py (is ipykernel installed? pip install -e '.[dev]')" >&2; exit 2; }
export JUPYTER_PATH="$kernels/share/jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}"
export TOKENIZERS_PARALLELISM=false PYTHONHASHSEED=0 DRDO_STATIC=1 DRDO_PROGRESS=0  # static widgets, no live trainer progress displays in executed notebooks
if [ "$profile" = "mini" ] || [ "$profile" = "sample" ] || [ "$profile" = "smol" ] || [ "$profile" = "study" ]; then
  export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
fi

shopt -s nullglob
nbs=(notebooks/[0-9][0-9]_*.ipynb)
[ ${#nbs[@]} -gt 0 ] || { echo "run_all.sh: no notebooks found in notebooks/" >&2; exit 1; }
summary=()
start_all=$(date +%s)
for nb in "${nbs[@]}"; do
  name=$(basename "$nb")
  if [ -n "$only" ] && [ "${name:0:2}" != "$only" ]; then continue; fi
  if [ "${name:0:2}" = "07" ]; then  # the robustness study needs the synthetic testbed (it measures r*)
    rc=0
    why=$("$py" -c 'import sys; from drdo_lib.study import profile_problem
why = profile_problem(sys.argv[1]); print(why or ""); sys.exit(3 if why else 0)' "$config") || rc=$?
    if [ $rc -eq 3 ]; then
      echo "=== [$profile] $name skipped: $why"
      summary+=("$(printf '%-36s %s' "$name" "skipped (no synthetic testbed)")")
      continue
    elif [ $rc -ne 0 ]; then echo "run_all.sh: cannot read $config" >&2; exit 1; fi
  fi
  echo "=== [$profile] $name"
  t0=$(date +%s)
  out="$nb"  # mini: in place (the committed notebooks are the mini run, which nbval re-executes in CI)
  if [ "$profile" != "mini" ]; then mkdir -p "figures/$profile/notebooks"; out="figures/$profile/notebooks/$name"; fi
  "$py" -m papermill "$nb" "$out" -f "$config" -p profile "$profile" -k drdo --cwd notebooks --progress-bar \
    || { echo "run_all.sh: $name failed (profile $profile); see the executed notebook $out for the error" >&2; exit 1; }
  "$py" -m drdo_lib.notebook_outputs "$out"  # stored outputs without progress widgets, log dicts or absolute paths
  summary+=("$(printf '%-36s %5ss' "$name" "$(( $(date +%s) - t0 ))")")
done
echo
echo "=== run_all.sh summary (profile $profile, config $config)"
for line in "${summary[@]}"; do echo "  $line"; done
echo "  total: $(( $(date +%s) - start_all ))s"
echo "  figures and tables: $(find figures -type f 2>/dev/null | wc -l) files under figures/"
echo "  run artefacts:      runs/$profile/"
