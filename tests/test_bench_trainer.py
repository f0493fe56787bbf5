"""The trainer benchmark script still runs end to end (a micro configuration, one round) and ends with exactly the
four ratio lines the README quotes; its numbers are not checked here (benchmarks, not timed tests)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.parametrize("checkpointing", ["--activation-checkpointing", "--no-activation-checkpointing"])
def test_bench_trainer_micro_run_prints_the_four_ratios(tmp_path, checkpointing):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "bench_trainer.py"), "--layers", "1", "--dim", "64",
           "--vocab", "200", "--prompt-words", "12", "--response-words", "4", "--batch", "2", "--steps", "1",
           "--warmup", "1", "--rounds", "1", "--threads", "1", checkpointing, "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-4:]
    names = ["step drdo/trl_live_ref", "step drdo/trl_precomputed_ref", "peak_memory drdo/trl_live_ref",
             "step drdo/bare_policy"]
    for line, name in zip(last, names):
        m = re.fullmatch(rf"{re.escape(name)} = (\d+\.\d+)", line)
        assert m and float(m.group(1)) > 0, line
    res = json.loads(out.read_text())["results"]
    on = checkpointing == "--activation-checkpointing"
    assert {w: r["checkpointing"] for w, r in res.items()} == {"drdo": on, "trl_live": on, "trl_pre": on, "bare": on}
    # the same model in every worker: DRDO's student is the LM plus a linear reward head (dim + 1 parameters)
    assert res["drdo"]["parameters"] == res["trl_live"]["parameters"] + 64 + 1 == res["trl_pre"]["parameters"] + 65
    assert res["bare"]["parameters"] == res["trl_live"]["parameters"]
