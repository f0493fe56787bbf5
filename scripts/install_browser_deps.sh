#!/usr/bin/env bash
# Install what the JupyterLab browser test (tests/test_jupyterlab_browser.py) needs: Debian's `chromium` and
# `chromium-driver` via apt-get (no browser download at test time; fonts-liberation for a readable screenshot)
# and the selenium Python client (also in the dev extra).
# Idempotent: does nothing for the parts already present. CI calls this before ./scripts/test.sh --slow.
# Settings (environment): DRDO_VENV (default .venv), DRDO_CHROMIUM (default /usr/bin/chromium),
# DRDO_CHROMEDRIVER (default /usr/bin/chromedriver).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${DRDO_VENV:-$root/.venv}"
chromium="${DRDO_CHROMIUM:-/usr/bin/chromium}"
driver="${DRDO_CHROMEDRIVER:-/usr/bin/chromedriver}"

if [ -x "$chromium" ] && [ -x "$driver" ]; then
  echo "[browser-deps] chromium and chromedriver already present: $("$driver" --version 2>/dev/null | head -n1)"
else
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "[browser-deps] apt-get not found: install Chromium and a matching chromedriver yourself and set" \
         "DRDO_CHROMIUM / DRDO_CHROMEDRIVER (the browser test skips without them)" >&2
    exit 1
  fi
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "[browser-deps] installing chromium + chromium-driver with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  # A stale package index makes the install 404; refresh it only when the first try fails.
  $sudo apt-get install -y --no-install-recommends chromium chromium-driver fonts-liberation \
    || { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends chromium chromium-driver fonts-liberation; }
fi

if [ -x "$venv/bin/python" ]; then
  if "$venv/bin/python" -c "import selenium" 2>/dev/null; then
    echo "[browser-deps] selenium already installed in $venv"
  else
    echo "[browser-deps] installing selenium into $venv"
    "$venv/bin/python" -m pip install -q "selenium>=4.20"
  fi
else
  echo "[browser-deps] no virtualenv at $venv yet: scripts/setup_env.sh installs selenium with the dev extra"
fi
