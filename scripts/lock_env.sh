#!/usr/bin/env bash
# Refresh the locked environment of the CPU route: requirements/lock.txt, the exact versions that
# scripts/setup_env.sh installs (as pip constraints) and CI tests. Run it deliberately, then run the tests and
# commit the new lock together with any notebook outputs that changed: a dependency upgrade is a reviewed commit.
#   ./scripts/lock_env.sh            resolve the newest versions allowed by pyproject.toml in a scratch venv
# Settings (environment): DRDO_PYTHON (default python3), DRDO_TORCH_VERSION (default 2.13.0, the CPU build).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${DRDO_PYTHON:-python3}"
torch_version="${DRDO_TORCH_VERSION:-2.13.0}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$py" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install -q --upgrade pip
"$tmp/venv/bin/python" -m pip install -q "torch==$torch_version"
"$tmp/venv/bin/python" -m pip install -q "$root[dev,judge,alpaca]"
{
  echo "# Locked environment of the CPU route (pip constraints): written by scripts/lock_env.sh on $(date -u +%F),"
  echo "# Python $("$tmp/venv/bin/python" -c 'import sys; print(sys.version.split()[0])'), $(uname -m). Do not edit by hand."
  "$tmp/venv/bin/python" -m pip freeze --all --exclude-editable | grep -v -i -E "^(drdo[-_]lib|pip)==" \
    | sed -E 's/^(torch==[^+]+)\+cpu$/\1/'
} > "$root/requirements/lock.txt"
echo "[lock] wrote $root/requirements/lock.txt ($(grep -vc '^#' "$root/requirements/lock.txt") packages)"
