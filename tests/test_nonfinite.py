"""Non-finite values never reach training: a precompute cache holding NaN, or a truncated one, is
quarantined (renamed aside, named in a warning) and recomputed; NaN scores computed fresh raise naming the model; a
non-finite loss stops training at once naming the step and the loss terms, and no non-finite model is saved."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from transformers import TrainerCallback

import drdo_lib.policy as policy_mod
import drdo_lib.precompute as P
from drdo_lib.data.tokenize import tokenize_preference_dataset
from drdo_lib.models import CausalLMWithRewardHead, build_causal_lm, build_tokenizer, save_model
from drdo_lib.policy import PolicyConfig
from drdo_lib.run import Run

from policy_helpers import write_profile
from train_fixtures import corpus, preference_rows


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("nf")
    tok = build_tokenizer("tiny-gpt2", corpus())
    lm = build_causal_lm("tiny-gpt2", tok, seed=0, size="micro")
    save_model(CausalLMWithRewardHead.from_causal_lm(lm, head_seed=0), tok, root / "rm")
    ds, _ = tokenize_preference_dataset(preference_rows(24), tok, max_prompt_length=40, max_length=48)
    return root, tok, ds


def _cache_file(cache_dir):
    files = sorted(cache_dir.glob("reward-*.npz"))
    assert len(files) == 1, files
    return files[0]


def _count_rows(monkeypatch):
    calls = {"rows": 0}
    orig = P.score_rewards

    def wrapped(*a, indices=None, **kw):
        calls["rows"] += len(indices)
        return orig(*a, indices=indices, **kw)

    monkeypatch.setattr(P, "score_rewards", wrapped)
    return calls


def test_cache_with_nan_is_quarantined_and_recomputed(setup, tmp_path, monkeypatch, caplog):
    root, _, ds = setup
    want = P.precompute_rewards(root / "rm", ds, cache_dir=tmp_path, batch_size=8)
    path = _cache_file(tmp_path)
    with np.load(path) as z:
        keys, vals = z["keys"], z["values"].copy()
    vals[3, 0] = np.nan
    np.savez(path, keys=keys, values=vals)
    calls = _count_rows(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="drdo_lib.precompute"):
        got = P.precompute_rewards(root / "rm", ds, cache_dir=tmp_path, batch_size=8)
    assert calls["rows"] == len(ds)  # recomputed, not read back
    assert np.isfinite(got["oracle_chosen_reward"]).all()
    assert got["oracle_chosen_reward"] == pytest.approx(want["oracle_chosen_reward"], abs=1e-6)
    assert path.name in caplog.text and "non-finite" in caplog.text
    assert len(list(tmp_path.glob(path.name + ".bad-*"))) == 1  # moved aside, kept for inspection
    with np.load(path) as z:  # the rewritten cache is clean
        assert np.isfinite(z["values"]).all()


def test_truncated_cache_is_quarantined_and_recomputed(setup, tmp_path, monkeypatch, caplog):
    root, _, ds = setup
    want = P.precompute_rewards(root / "rm", ds, cache_dir=tmp_path, batch_size=8)
    path = _cache_file(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    calls = _count_rows(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="drdo_lib.precompute"):
        got = P.precompute_rewards(root / "rm", ds, cache_dir=tmp_path, batch_size=8)
    assert calls["rows"] == len(ds)
    assert got["oracle_chosen_reward"] == pytest.approx(want["oracle_chosen_reward"], abs=1e-6)
    assert path.name in caplog.text
    assert len(list(tmp_path.glob(path.name + ".bad-*"))) == 1


def test_nan_scores_computed_fresh_raise_naming_the_model(setup, tmp_path, monkeypatch):
    root, _, ds = setup
    orig = P.score_rewards

    def nan_scores(*a, **kw):
        out = orig(*a, **kw)
        out[1, 1] = np.nan
        return out

    monkeypatch.setattr(P, "score_rewards", nan_scores)
    with pytest.raises(FloatingPointError, match=str(root / "rm")):
        P.precompute_rewards(root / "rm", ds, cache_dir=tmp_path, batch_size=8)
    assert not list(tmp_path.glob("reward-*.npz"))  # nothing cached


def test_nan_reward_column_stops_training_at_step_1_and_saves_nothing(tmp_path, monkeypatch):
    prof = Run.create(write_profile(tmp_path, n_train=32, policy={"max_steps": 3, "save_steps": 1}))
    cfg = prof.config(PolicyConfig, "policy")
    orig = policy_mod.prepare_dataset

    def poisoned(*a, **kw):
        ds, report = orig(*a, **kw)
        col = [float("nan")] * len(ds)
        return ds.remove_columns("oracle_chosen_reward").add_column("oracle_chosen_reward", col), report

    monkeypatch.setattr(policy_mod, "prepare_dataset", poisoned)
    with pytest.raises(FloatingPointError, match=r"step 1\b.*loss") as err:
        policy_mod.run(prof, cfg, "drdo", "D_all", progress=False)
    assert "loss_reward" in str(err.value)
    out = prof.policy_dir("drdo", "D_all")
    assert not (out / "final").exists()
    assert not list(out.glob("checkpoint-*"))
    assert not (out / "summary.json").exists()


class PoisonAtEnd(TrainerCallback):
    """A parameter turns NaN after the last step (as a NaN that no loss saw would leave it)."""

    def on_train_end(self, args, state, control, model=None, **kwargs):
        with torch.no_grad():
            next(model.parameters()).view(-1)[0] = float("nan")


def test_non_finite_parameters_are_never_saved_as_final(tmp_path):
    prof = Run.create(write_profile(tmp_path, n_train=32, policy={"max_steps": 1, "save_steps": 10}))
    cfg = prof.config(PolicyConfig, "policy")
    with pytest.raises(FloatingPointError, match="non-finite"):
        policy_mod.run(prof, cfg, "dpo", "D_all", callbacks=[PoisonAtEnd()], progress=False)
    out = prof.policy_dir("dpo", "D_all")
    assert not (out / "final").exists()
