#!/usr/bin/env bash
# Create (or update) the project's virtualenv in .venv and install drdo_lib with its dev + judge extras.
# Idempotent: re-runs only when pyproject.toml or the lock changed. On machines without an NVIDIA GPU the CPU build
# of torch is installed first, so the `torch` requirement never resolves to a multi-GB CUDA wheel.
# Versions: every package is installed at the exact version of requirements/lock.txt (pip constraints: the set CI
# tested); scripts/lock_env.sh refreshes that file deliberately. DRDO_UNLOCKED=1 installs the newest versions that
# pyproject.toml allows instead (for trying an upgrade before locking it).
# Usage: source scripts/setup_env.sh   (or run it; run_all.sh and scripts/test.sh call it for you)
# Settings (environment): DRDO_VENV (default .venv), DRDO_PYTHON (default python3), DRDO_TORCH_VERSION (2.13.0).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${DRDO_VENV:-$root/.venv}"
py="${DRDO_PYTHON:-python3}"
torch_version="${DRDO_TORCH_VERSION:-2.13.0}"

if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating virtualenv $venv"
  "$py" -m venv "$venv"
fi
stamp="$venv/.drdo-installed"
lock="$root/requirements/lock.txt"
constraints=()
if [ "${DRDO_UNLOCKED:-0}" != "1" ] && [ -f "$lock" ]; then constraints=(-c "$lock"); fi
want="$(cat "$root/pyproject.toml" "${constraints[@]:+$lock}" | sha256sum | cut -c1-16)${constraints[*]:+-locked}"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  "$venv/bin/python" -m pip install -q --upgrade pip
  if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
      echo "[setup] NVIDIA GPU found: installing torch from PyPI (CUDA build)"
      "$venv/bin/python" -m pip install -q "torch>=2.1" "${constraints[@]}"
    else
      echo "[setup] no GPU: installing the CPU build torch==$torch_version"
      "$venv/bin/python" -m pip install -q "torch==$torch_version" \
        || "$venv/bin/python" -m pip install -q "torch==$torch_version" --index-url https://download.pytorch.org/whl/cpu
    fi
  fi
  echo "[setup] installing drdo_lib[dev,judge,alpaca] (editable${constraints[*]:+, versions of requirements/lock.txt})"
  "$venv/bin/python" -m pip install -q -e "$root[dev,judge,alpaca]" "${constraints[@]}"
  "$venv/bin/python" -m ipykernel install --sys-prefix --name drdo --display-name "Python (drdo)" >/dev/null
  echo "$want" > "$stamp"
fi
