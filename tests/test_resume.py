"""Checkpoint and resume: a DRDO run that crashes after its step-4 checkpoint (at step 5) and is
resumed from its last checkpoint reaches the same trajectory, final metrics and weights as an uninterrupted run."""
from __future__ import annotations

import shutil

import pytest
from safetensors.torch import load_file
from transformers import TrainerCallback

from drdo_lib.hf import read_metrics
from drdo_lib.policy import PolicyConfig
from drdo_lib.policy import run as run_policy
from drdo_lib.run import Run

from policy_helpers import assert_same_training, write_profile


class Crash(RuntimeError):
    pass


class CrashAtStep(TrainerCallback):
    """Simulates a killed job: raises once optimizer step ``step`` is done and logged (past the last checkpoint)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Crash(f"killed at step {state.global_step}")


@pytest.mark.parametrize("method", ["drdo", pytest.param("dpo", marks=pytest.mark.slow)])
def test_resume_after_crash_matches_uninterrupted_run(tmp_path, method):
    prof = Run.create(write_profile(tmp_path, policy={"max_steps": 6, "save_steps": 2, "logging_steps": 1}))
    cfg = prof.config(PolicyConfig, "policy")

    ref_dir = run_policy(prof, cfg, method, "D_all", progress=False)
    want = read_metrics(ref_dir)
    want_weights = load_file(str(ref_dir / "final" / "model.safetensors"))
    shutil.copytree(ref_dir, tmp_path / "uninterrupted")
    shutil.rmtree(ref_dir)

    with pytest.raises(Crash):
        run_policy(prof, cfg, method, "D_all", callbacks=[CrashAtStep(5)], progress=False)
    assert sorted(p.name for p in ref_dir.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert [r["step"] for r in read_metrics(ref_dir)] == [1, 2, 3, 4, 5]  # step 5 logged but not checkpointed

    resumed = prof.config(PolicyConfig, "policy", resume_from_checkpoint="last")
    out = run_policy(prof, resumed, method, "D_all", progress=False)
    got = read_metrics(out)
    assert [r["step"] for r in got] == [r["step"] for r in want] == [1, 2, 3, 4, 5, 6]
    assert_same_training(got, want, out, want_weights)


def test_resume_last_without_checkpoint_trains_from_scratch(tmp_path, caplog):
    prof = Run.create(write_profile(tmp_path, policy={"max_steps": 2, "save_steps": 10}))
    cfg = prof.config(PolicyConfig, "policy", resume_from_checkpoint="last")
    out = run_policy(prof, cfg, "dpo", "D_all", progress=False)
    assert [r["step"] for r in read_metrics(out)] == [1, 2]
    assert "no checkpoint" in caplog.text
