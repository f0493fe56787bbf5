"""Resume under a real kill: a policy-training subprocess (``python -m drdo_lib train``) is
SIGKILLed between checkpoint saves with ``save_total_limit=1``; a partial checkpoint folder (a kill mid-save) and a
torn last ``metrics.jsonl`` line are left behind as such a kill can leave them. ``resume_from_checkpoint=last`` picks
the newest *complete* checkpoint, survives the rotation of the checkpoint it resumed from, and reaches the final
metrics and weights of an uninterrupted run; resuming the finished run trains nothing more."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from drdo_lib.hf import read_metrics

from policy_helpers import PROFILE, assert_same_training, write_profile

REPO = Path(__file__).resolve().parents[1]
MAX_STEPS = 8
#: sitecustomize for the killed job only: each optimizer step sleeps, so the test can kill it between two saves.
SLOW_STEPS = """
import os
if os.environ.get("DRDO_TEST_STEP_SLEEP"):
    import time
    import drdo_lib.trainer as T
    _orig = T.PreferenceTrainer.training_step
    def training_step(self, *a, **k):
        time.sleep(float(os.environ["DRDO_TEST_STEP_SLEEP"]))
        return _orig(self, *a, **k)
    T.PreferenceTrainer.training_step = training_step
"""


def _cmd(config: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "drdo_lib", "train", "--config", str(config), "--stage", "policy", "--method", "dpo",
            "--split", "D_all", "--log-level", "WARNING", *overrides]


def _env(extra_path: Path | None = None, **kw) -> dict[str, str]:
    env = dict(os.environ, DRDO_PROGRESS="0", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", **kw)
    paths = [str(p) for p in (extra_path, REPO) if p] + [env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def _train(config: Path, *overrides: str) -> subprocess.CompletedProcess:
    res = subprocess.run(_cmd(config, *overrides), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    return res


def _complete(out: Path) -> list[int]:
    """Steps of the checkpoint folders holding everything a resume reads (the trainer state is written last)."""
    need = ("trainer_state.json", "model.safetensors", "optimizer.pt", "scheduler.pt")
    return sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*") if all((p / f).is_file() for f in need))


@pytest.mark.slow
def test_sigkill_between_saves_then_resume_matches_uninterrupted_run(tmp_path):
    config = write_profile(tmp_path, policy={"max_steps": MAX_STEPS, "save_steps": 2, "save_total_limit": 1,
                                             "logging_steps": 1})
    out = tmp_path / "runs" / PROFILE / "policy" / "dpo_D_all"

    _train(config)  # the uninterrupted run
    want = read_metrics(out)
    want_weights = load_file(str(out / "final" / "model.safetensors"))
    assert [r["step"] for r in want] == list(range(1, MAX_STEPS + 1))
    shutil.rmtree(out)

    # The killed run: SIGKILL once a checkpoint is complete, before the next save starts (each step sleeps 0.5 s).
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SLOW_STEPS)
    proc = subprocess.Popen(_cmd(config), cwd=REPO, env=_env(site, DRDO_TEST_STEP_SLEEP="0.5"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not _complete(out) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "the job ended before a checkpoint was seen"
        time.sleep(0.1)  # let the trainer state finish writing; the next save is >= 1 s (two steps) away
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    done = _complete(out)
    assert done and done[-1] < MAX_STEPS, done
    killed_at = done[-1]
    assert not (out / "final").exists() and not (out / "summary.json").exists()
    # What a kill mid-save / mid-write leaves: a newer checkpoint folder without its trainer state or optimizer,
    # and a torn last metrics line.
    partial = out / f"checkpoint-{killed_at + 2}"
    partial.mkdir(exist_ok=True)
    shutil.copy(out / f"checkpoint-{killed_at}" / "model.safetensors", partial / "model.safetensors")
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 0.3, "loss": 0.69')

    res = _train(config, "resume_from_checkpoint=last")
    assert "incomplete" in res.stderr and partial.name in res.stderr  # the fallback is logged
    assert "unreadable" in res.stderr  # the torn metrics line is skipped with a warning
    got = read_metrics(out)
    assert [r["step"] for r in got] == list(range(1, MAX_STEPS + 1))
    assert_same_training(got, want, out, want_weights)
    assert [p.name for p in out.glob("checkpoint-*")] == [f"checkpoint-{MAX_STEPS}"]  # rotation kept one

    # Resuming the finished run trains nothing: same metrics, same final weights, no new checkpoint.
    before = (out / "metrics.jsonl").read_text(), (out / "final" / "model.safetensors").stat().st_mtime_ns
    _train(config, "resume_from_checkpoint=last")
    assert ((out / "metrics.jsonl").read_text(), (out / "final" / "model.safetensors").stat().st_mtime_ns) == before
    assert [p.name for p in out.glob("checkpoint-*")] == [f"checkpoint-{MAX_STEPS}"]


def test_finished_run_is_not_trained_again_and_a_missing_final_is_saved_from_its_checkpoint(tmp_path, caplog):
    from drdo_lib.policy import PolicyConfig
    from drdo_lib.policy import run as run_policy
    from drdo_lib.run import Run

    prof = Run.create(write_profile(tmp_path, n_train=32, policy={"max_steps": 4, "save_steps": 2,
                                                                  "save_total_limit": 1}))
    out = run_policy(prof, prof.config(PolicyConfig, "policy"), "dpo", "D_all", progress=False)
    metrics = (out / "metrics.jsonl").read_text()
    weights = load_file(str(out / "final" / "model.safetensors"))
    resumed = prof.config(PolicyConfig, "policy", resume_from_checkpoint="last")
    mtime = (out / "final" / "model.safetensors").stat().st_mtime_ns
    import logging
    with caplog.at_level(logging.INFO, logger="drdo_lib.policy"):
        run_policy(prof, resumed, "dpo", "D_all", progress=False)  # finished: returns at once
    assert (out / "metrics.jsonl").read_text() == metrics
    assert (out / "final" / "model.safetensors").stat().st_mtime_ns == mtime
    assert "already finished" in caplog.text
    # killed after its last checkpoint but before final/: final/ is that checkpoint, with no step trained
    shutil.rmtree(out / "final")
    (out / "summary.json").unlink()
    run_policy(prof, resumed, "dpo", "D_all", progress=False)
    assert (out / "metrics.jsonl").read_text() == metrics
    got = load_file(str(out / "final" / "model.safetensors"))
    for k in weights:
        torch.testing.assert_close(got[k], weights[k], rtol=0, atol=0)
    import json
    assert json.loads((out / "summary.json").read_text())["steps"] == 4
