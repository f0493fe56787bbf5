#!/usr/bin/env bash
# Create (or update) the project's virtualenv in .venv and install drdo_lib with its dev + judge extras.
# Idempotent: re-runs only when pyproject.toml changed. On machines without an NVIDIA GPU the CPU build of
# torch is installed first, so the `torch` requirement never resolves to a multi-GB CUDA wheel.
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
want="$(cat "$root/pyproject.toml" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  "$venv/bin/python" -m pip install -q --upgrade pip
  if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
      echo "[setup] NVIDIA GPU found: installing torch from PyPI (CUDA build)"
      "$venv/bin/python" -m pip install -q "torch>=2.1"
    else
      echo "[setup] no GPU: installing the CPU build torch==$torch_version"
      "$venv/bin/python" -m pip install -q "torch==$torch_version" \
        || "$venv/bin/python" -m pip install -q "torch==$torch_version" --index-url https://download.pytorch.org/whl/cpu
    fi
  fi
  echo "[setup] installing drdo_lib[dev,judge,alpaca] (editable)"
  "$venv/bin/python" -m pip install -q -e "$root[dev,judge,alpaca]"
  "$venv/bin/python" -m ipykernel install --sys-prefix --name drdo --display-name "Python (drdo)" >/dev/null
  echo "$want" > "$stamp"
fi
