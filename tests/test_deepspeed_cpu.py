"""DeepSpeed ZeRO-2 executed: ``PreferenceTrainer`` with ``configs/deepspeed_zero2.json`` as 2 CPU
processes under ``torchrun`` (gloo) follows the loss trajectory of 1 process with the same global batch (2 x 2
pairs vs 1 x 4 pairs; a single process trains without DeepSpeed, see ``trainer.resolve_deepspeed``).

Run: ``python -m pytest tests/test_deepspeed_cpu.py -m slow`` (CI: ``./scripts/test.sh --slow``). Skips when
``deepspeed`` is not installed (the ``gpu`` extra and the ``dev`` extra install it; it runs on CPU).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from policy_helpers import PROFILE, write_profile

REPO = Path(__file__).resolve().parent.parent
DS_CONFIG = REPO / "configs" / "deepspeed_zero2.json"
#: ZeRO-2 reduces gradients in buckets and clips with its own global-norm code: float32 differences of ~1e-7
#: relative per step, compounded over 6 Adam steps; 1e-4 is the tolerance of the plain DDP test too.
RTOL = 1e-4


def _train(cmd_prefix: list[str], cfg: Path, tmp_path: Path, per_device: int, method: str,
           extra: list[str]) -> tuple[list[dict], dict, list[str]]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1",
           "DRDO_PROGRESS": "0"}
    cmd = cmd_prefix + ["-m", "drdo_lib", "train", "--config", str(cfg), "--method", method, "--split", "D_all",
                        f"per_device_train_batch_size={per_device}", *extra]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-5000:]
    out = tmp_path / "runs" / PROFILE / "policy" / f"{method}_D_all"
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((out / "summary.json").read_text())
    saved = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    shutil.rmtree(out)
    return rows, summary, saved


def test_zero2_config_is_valid_json_with_auto_values_for_the_trainer():
    ds = json.loads(DS_CONFIG.read_text())
    assert ds["zero_optimization"]["stage"] == 2
    # the batch sizes, accumulation and clipping come from TrainingArguments ("auto"), so one file fits every profile
    for key in ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps",
                "gradient_clipping"):
        assert ds[key] == "auto", key


@pytest.mark.slow
@pytest.mark.parametrize("method", ["drdo", "dpo"])
def test_deepspeed_zero2_two_cpu_processes_match_one_process(tmp_path, method):
    pytest.importorskip("deepspeed")
    cfg = write_profile(tmp_path, policy={"max_steps": 6, "save_steps": 100, "logging_steps": 1})
    one, s1, _ = _train([sys.executable], cfg, tmp_path, 4, method, ["deepspeed=null"])
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    # the DeepSpeed run also checkpoints its last step, to show what ran: a DeepSpeed engine checkpoint whose
    # optimizer states are partitioned over the two ranks (ZeRO), beside the usual safetensors weights
    two, s2, saved = _train(torchrun, cfg, tmp_path, 2, method, [f"deepspeed={DS_CONFIG}", "save_steps=6"])
    assert s1["world_size"] == 1 and s2["world_size"] == 2
    for rank in (0, 1):
        assert f"checkpoint-6/global_step6/zero_pp_rank_{rank}_mp_rank_00_optim_states.pt" in saved, saved
    assert "final/model.safetensors" in saved
    assert [r["step"] for r in one] == [r["step"] for r in two] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(one, two):
        for key in ("loss", "logps_chosen", "logps_rejected", "p_w"):
            assert b[key] == pytest.approx(a[key], rel=RTOL, abs=1e-6), (a["step"], key, a[key], b[key])
    # the trajectory really moves (a constant loss would match trivially)
    assert len({round(r["loss"], 4) for r in one}) > 3
