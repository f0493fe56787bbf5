#!/usr/bin/env bash
# The README's JupyterLab command: sets up .venv (scripts/setup_env.sh installs drdo_lib and registers the kernel
# "drdo" / "Python (drdo)", the kernel every notebook names, so no kernel prompt appears), then starts JupyterLab
# on loopback with the repository as its root and notebook 00 open.
#   ./scripts/jupyterlab.sh                 http://127.0.0.1:8888, a fresh token printed with the URL
#   ./scripts/jupyterlab.sh --no-browser    extra arguments are passed to `jupyter lab`
# Settings (environment): DRDO_JUPYTER_PORT (default 8888), DRDO_JUPYTER_TOKEN (default: generated),
# DRDO_JUPYTER_NOTEBOOK (default notebooks/00_theory_sanity_checks.ipynb; relative to the repository root).
# Interactive controls (ipywidgets) are live here; DRDO_STATIC=1, which batch runs set, is cleared.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"$root/scripts/setup_env.sh"
. "$root/.venv/bin/activate"

port="${DRDO_JUPYTER_PORT:-8888}"
case "$port" in
  ''|*[!0-9]*) echo "jupyterlab.sh: DRDO_JUPYTER_PORT must be a port number, got '$port'" >&2; exit 2;;
esac
if ! python - "$port" <<'EOF'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
EOF
then
  echo "jupyterlab.sh: port $port on 127.0.0.1 is in use; choose another with DRDO_JUPYTER_PORT=8890 $0" >&2
  exit 2
fi
token="${DRDO_JUPYTER_TOKEN:-$(python -c 'import secrets; print(secrets.token_hex(24))')}"
notebook="${DRDO_JUPYTER_NOTEBOOK:-notebooks/00_theory_sanity_checks.ipynb}"
open_args=()
if [ -f "$root/$notebook" ]; then
  open_args=("$notebook")
  url="http://127.0.0.1:$port/lab/tree/$notebook?token=$token"
else
  echo "jupyterlab.sh: $notebook not found; opening the file browser instead" >&2
  url="http://127.0.0.1:$port/lab?token=$token"
fi
unset DRDO_STATIC
# The news feed is off (below), so JupyterLab's "get notified about official Jupyter news?" toast would ask for
# nothing: default that setting to "never" for this virtualenv's JupyterLab (app settings overrides.json; a value
# already there, or one the user picks in Settings, wins).
python - <<'EOF'
import json, sys
from pathlib import Path
path = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
data = json.loads(path.read_text()) if path.is_file() else {}
notification = data.setdefault("@jupyterlab/apputils-extension:notification", {})
if "fetchNews" not in notification:
    notification["fetchNews"] = "false"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
EOF
extra=()
if [ "$(id -u)" -eq 0 ]; then extra+=(--allow-root); fi  # containers often run as root

echo "[jupyterlab] kernel: $(jupyter kernelspec list | awk '$1 == "drdo" {print $1 " -> " $2}')"
echo "[jupyterlab] open: $url"
echo "[jupyterlab] stop with Ctrl-C"
# No announcements/news feed and no update check: JupyterLab makes no request to the internet on its own.
# Jupytext pairs notebooks/NN_x.ipynb with its percent script NN_x.py (the committed source): JupyterLab reads the
# inputs from the .py and the outputs from the .ipynb, and saving writes both. run_all.sh (papermill) leaves the
# .ipynb newer than the .py, with an injected-parameters cell, and jupytext's default 1-second margin would then
# refuse to open it ("File Load Error ... is more recent than ..."); the .py is the source of truth here, so the
# timestamp check is off (an infinite margin is jupytext's documented way to skip it).
exec jupyter lab \
  --ServerApp.ip=127.0.0.1 \
  --ServerApp.port="$port" \
  --ServerApp.port_retries=0 \
  --ServerApp.root_dir="$root" \
  --MultiKernelManager.default_kernel_name=drdo \
  --IdentityProvider.token="$token" \
  --LabApp.news_url=None \
  --LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate \
  --JupytextConfiguration.outdated_text_notebook_margin=inf \
  "${extra[@]}" "${open_args[@]}" "$@"
