#!/usr/bin/env bash
# The README's test command: sets up .venv if needed, then runs the unit tests and the notebook regression tests.
#   ./scripts/test.sh          fast unit tests + nbval-lax on every executed notebook in notebooks/
#   ./scripts/test.sh --slow   additionally the slow tests (multi-process training, browser); CI runs this
# Extra arguments after the options are passed to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"$root/scripts/setup_env.sh"
. "$root/.venv/bin/activate"
marker=(-m "not slow")
if [ "${1:-}" = "--slow" ]; then marker=(); shift; fi
export DRDO_STATIC=1 DRDO_PROGRESS=0 PYTHONHASHSEED=0 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1

set +e
python -m pytest tests "${marker[@]}" "$@"
rc=$?
set -e
# pytest exits 5 when it collected no tests: that is a failure of the suite, not a pass.
if [ $rc -ne 0 ]; then echo "[test] unit tests failed (exit $rc)"; exit $rc; fi

shopt -s nullglob
nbs=(notebooks/[0-9][0-9]_*.ipynb)
if [ ${#nbs[@]} -eq 0 ]; then echo "[test] no executed notebooks to check"; exit 1; fi
echo "[test] nbval-lax on ${#nbs[@]} notebooks"
python -m pytest --nbval-lax -p no:cacheprovider "${nbs[@]}" -o addopts="" -o testpaths=""
