"""Tests for drdo_lib.precompute: values equal an independent computation; the cache hits and invalidates."""
import numpy as np
import pytest
import torch

import drdo_lib.precompute as P
from drdo_lib.data.tokenize import collate_preference, tokenize_preference_dataset
from drdo_lib.hf import model_fingerprint
from drdo_lib.losses import sequence_logps
from drdo_lib.models import CausalLMWithRewardHead, build_causal_lm, build_tokenizer, save_model
from train_fixtures import corpus, preference_rows


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("pc")
    tok = build_tokenizer("tiny-gpt2", corpus())
    lm = build_causal_lm("tiny-gpt2", tok, seed=0, size="micro")
    save_model(lm, tok, root / "ref")
    for k in range(3):
        save_model(CausalLMWithRewardHead.from_causal_lm(lm, head_seed=k), tok, root / f"rm{k}")
    ds, _ = tokenize_preference_dataset(preference_rows(40), tok, max_prompt_length=40, max_length=48)
    return root, tok, ds


class CountCalls:
    def __init__(self, monkeypatch, name):
        self.rows = 0
        orig = getattr(P, name)

        def wrapped(*a, indices=None, **kw):
            self.rows += len(indices)
            return orig(*a, indices=indices, **kw)

        monkeypatch.setattr(P, name, wrapped)


def _independent_logps(lm, ds, tok, reduction):
    batch = collate_preference([ds[i] for i in range(len(ds))], tok.pad_token_id)
    out = []
    with torch.no_grad():
        for side in ("chosen", "rejected"):
            logits = lm(input_ids=batch[f"{side}_input_ids"], attention_mask=batch[f"{side}_attention_mask"]).logits
            out.append(sequence_logps(logits, batch[f"{side}_input_ids"], batch[f"{side}_response_mask"], reduction))
    return out


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-opt", "tiny-phi3"])
def test_response_logps_sum_equals_sequence_logps(name):
    tok = build_tokenizer(name, corpus())
    lm = build_causal_lm(name, tok, seed=1, size="micro").eval()
    ds, _ = tokenize_preference_dataset(preference_rows(5), tok, max_prompt_length=40, max_length=48)
    b = collate_preference([ds[i] for i in range(5)], tok.pad_token_id)
    with torch.no_grad():
        got = P.response_logps_sum(lm, b["rejected_input_ids"], b["rejected_attention_mask"], b["rejected_response_mask"],
                                   chunk_tokens=7)
    want = _independent_logps(lm, ds, tok, "sum")[1]
    assert torch.allclose(got, want, atol=1e-4)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_ref_logps_values_and_cache_hit(setup, tmp_path, monkeypatch, reduction):
    root, tok, ds = setup
    calls = CountCalls(monkeypatch, "score_ref_logps")
    out = P.precompute_ref_logps(root / "ref", ds, cache_dir=tmp_path, batch_size=8, logp_reduction=reduction)
    from transformers import AutoModelForCausalLM

    want_c, want_r = _independent_logps(AutoModelForCausalLM.from_pretrained(root / "ref").eval(), ds, tok, reduction)
    assert np.allclose(out["ref_chosen_logp"], want_c.numpy(), atol=1e-4)
    assert np.allclose(out["ref_rejected_logp"], want_r.numpy(), atol=1e-4)
    assert calls.rows == len(ds)
    again = P.precompute_ref_logps(root / "ref", ds, cache_dir=tmp_path, batch_size=8, logp_reduction=reduction)
    assert calls.rows == len(ds)  # cache hit: nothing recomputed
    assert again["ref_chosen_logp"] == out["ref_chosen_logp"]


def test_reward_cache_invalidates_when_oracle_changes(setup, tmp_path, monkeypatch):
    root, tok, ds = setup
    calls = CountCalls(monkeypatch, "score_rewards")
    oracle = tmp_path / "oracle"
    model = CausalLMWithRewardHead.from_pretrained(root / "rm0")
    save_model(model, tok, oracle)
    a = P.precompute_rewards(oracle, ds, cache_dir=tmp_path / "c", batch_size=16)
    assert calls.rows == len(ds)
    # independent: each pair scored alone, unpadded
    with torch.no_grad():
        for i in (0, 7):
            ids = torch.tensor([ds[i]["chosen_input_ids"]])
            assert a["oracle_chosen_reward"][i] == pytest.approx(float(model(ids)["rewards"]), abs=1e-5)
    P.precompute_rewards(oracle, ds, cache_dir=tmp_path / "c", batch_size=16)
    assert calls.rows == len(ds)  # unchanged model and data: cache hit
    with torch.no_grad():
        model.reward_head.bias += 1.0  # the oracle's weights change
    save_model(model, tok, oracle)
    b = P.precompute_rewards(oracle, ds, cache_dir=tmp_path / "c", batch_size=16)
    assert calls.rows == 2 * len(ds)  # recomputed
    assert np.allclose(np.array(b["oracle_chosen_reward"]) - np.array(a["oracle_chosen_reward"]), 1.0, atol=1e-5)
    # changed data: only the changed row is computed
    edited = ds.map(lambda r, i: {"rejected_input_ids": r["rejected_input_ids"][:-2] + [5, tok.eos_token_id]} if i == 3
                    else {}, with_indices=True)
    P.precompute_rewards(oracle, edited, cache_dir=tmp_path / "c", batch_size=16)
    assert calls.rows == 2 * len(ds) + 1
    # a subset of cached rows (e.g. D_hc_he within D_all) is a pure cache hit
    sub = P.precompute_rewards(oracle, ds.select([5, 2, 9]), cache_dir=tmp_path / "c", batch_size=16)
    assert calls.rows == 2 * len(ds) + 1
    assert sub["oracle_chosen_reward"] == [b["oracle_chosen_reward"][i] for i in (5, 2, 9)]


def test_ensemble_columns_and_in_memory_model(setup, tmp_path):
    root, tok, ds = setup
    dirs = [root / f"rm{k}" for k in range(3)]
    out = P.precompute_rewards(dirs, ds, cache_dir=tmp_path, batch_size=16)
    ch = np.array(out["ensemble_chosen_rewards"])
    assert ch.shape == (len(ds), 3) and np.array(out["ensemble_rejected_rewards"]).shape == (len(ds), 3)
    assert not np.allclose(ch[:, 0], ch[:, 1])  # different heads, different rewards
    single = P.precompute_rewards(dirs[1], ds, cache_dir=tmp_path, batch_size=16, column_prefix="m1")
    assert np.allclose(ch[:, 1], single["m1_chosen_reward"])
    mem = CausalLMWithRewardHead.from_pretrained(dirs[1]).eval()
    in_mem = P.precompute_rewards(mem, ds, cache_dir=tmp_path / "mem", batch_size=16)
    assert np.allclose(in_mem["oracle_chosen_reward"], single["m1_chosen_reward"], atol=1e-6)


def test_fingerprint_ignores_tokenizer_but_not_weights(setup, tmp_path):
    root, tok, _ = setup
    fp = model_fingerprint(root / "rm0")
    assert fp == model_fingerprint(root / "rm0")
    assert fp != model_fingerprint(root / "rm1")  # same LM, different head
    assert model_fingerprint(CausalLMWithRewardHead.from_pretrained(root / "rm0")) != \
        model_fingerprint(CausalLMWithRewardHead.from_pretrained(root / "rm1"))
