"""Experiment tracking: ``report_to`` is a setting of every training stage; TensorBoard works offline."""
from __future__ import annotations

import pytest

from drdo_lib.cli import main
from drdo_lib.oracle import OracleConfig
from drdo_lib.policy import PolicyConfig
from drdo_lib.sft import SFTConfig

from policy_helpers import PROFILE, write_profile


@pytest.mark.parametrize("cls", [SFTConfig, OracleConfig, PolicyConfig])
def test_report_to_is_a_validated_setting_of_every_training_stage(cls):
    assert cls().report_to == "none"
    assert cls(report_to="tensorboard").report_to == "tensorboard"
    with pytest.raises(ValueError, match="report_to"):
        cls(report_to="tensorbored")


def test_a_policy_run_reports_to_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = write_profile(tmp_path, policy={"max_steps": 2, "logging_steps": 1, "save_steps": 10})
    assert main(["train", "--config", str(cfg), "--stage", "policy", "--method", "dpo", "--split", "D_all",
                 "report_to=tensorboard"]) == 0
    out = tmp_path / "runs" / PROFILE / "policy" / "dpo_D_all"
    events = sorted(out.glob("runs/*/events.out.tfevents*"))
    assert events, sorted(p.relative_to(out) for p in out.rglob("*"))
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    assert len(acc.Scalars("train/loss")) == 2  # one point per logged step
