"""Tests for drdo_lib.models: tiny configs, tokenizer, reward head at the last real token, safetensors round trip."""
import pytest
import torch

from drdo_lib.models import (
    TINY_MODELS,
    CausalLMWithRewardHead,
    build_causal_lm,
    build_tokenizer,
    count_parameters,
    last_token_index,
    load_model,
    save_model,
)

WORDS = "the cat sat on a mat dog ran fast slow big small red blue summary post".split()


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer("tiny-gpt2", ["the cat sat on the mat . ok !"], vocab_words=WORDS)


def test_tokenizer_specials_and_roundtrip(tok):
    assert tok.pad_token == "<pad>" and tok.eos_token == "<eos>" and tok.bos_token == "<bos>"
    assert len({tok.pad_token_id, tok.eos_token_id, tok.bos_token_id, tok.unk_token_id}) == 4
    ids = tok("the cat sat on a mat")["input_ids"]
    assert ids[0] == tok.bos_token_id and len(ids) == 7
    assert tok.decode(ids, skip_special_tokens=True) == "the cat sat on a mat"
    assert tok("zebra", add_special_tokens=False)["input_ids"] == [tok.unk_token_id]
    # vocab_words come first, in order, after the 4 special tokens
    assert [tok.convert_tokens_to_ids(w) for w in WORDS[:3]] == [4, 5, 6]


def test_tokenizer_from_corpus_respects_vocab_size():
    corpus = ["a b c d e f g h a b c a b a"]
    tok = build_tokenizer("tiny-opt", corpus, vocab_size=7)
    assert len(tok) == 7  # 4 specials + the 3 most frequent words a, b, c
    assert tok.convert_ids_to_tokens([4, 5, 6]) == ["a", "b", "c"]
    with pytest.raises(ValueError):
        build_tokenizer("tiny-opt", [])


def test_last_token_index():
    m = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    assert last_token_index(m).tolist() == [2, 4, 4, 0]
    with pytest.raises(ValueError):
        last_token_index(torch.tensor([[0, 0]]))


@pytest.mark.parametrize("name", TINY_MODELS)
def test_tiny_models_seeded_and_sized(tok, name):
    a = build_causal_lm(name, tok, seed=3, size="micro")
    b = build_causal_lm(name, tok, seed=3, size="micro")
    c = build_causal_lm(name, tok, seed=4, size="micro")
    sa, sc = a.state_dict(), c.state_dict()
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in sa.items())
    assert any(not torch.equal(v, sc[k]) for k, v in sa.items() if v.dtype.is_floating_point and v.numel() > 16)
    assert a.config.vocab_size == len(tok)
    mini = build_causal_lm(name, tok, size="mini")
    assert 0.3e6 < count_parameters(mini) < 1.5e6  # the sub-1M-parameter model of the mini profile


@pytest.mark.parametrize("name", TINY_MODELS)
def test_reward_head_reads_last_real_token_left_and_right_padding(tok, name):
    lm = build_causal_lm(name, tok, seed=0, size="micro")
    model = CausalLMWithRewardHead.from_causal_lm(lm, head_seed=1).eval()
    seqs = [[2, 4, 5, 6, 7, 1], [2, 8, 9, 1], [2, 10, 1]]
    T = 6
    right = torch.full((3, T), tok.pad_token_id)
    left = torch.full((3, T), tok.pad_token_id)
    rm, lmk = torch.zeros(3, T, dtype=torch.long), torch.zeros(3, T, dtype=torch.long)
    for i, s in enumerate(seqs):
        right[i, : len(s)] = torch.tensor(s)
        rm[i, : len(s)] = 1
        left[i, T - len(s):] = torch.tensor(s)
        lmk[i, T - len(s):] = 1
    with torch.no_grad():
        r_right = model(right, rm)["rewards"]
        r_left = model(left, lmk)["rewards"]
        # independent computation: each sequence alone, unpadded, head applied to the final position
        singles = []
        for s in seqs:
            ids = torch.tensor([s])
            out = model(ids, torch.ones_like(ids))
            h = out["hidden"][0, -1]
            singles.append(float(model.reward_head(h)))
            assert torch.allclose(out["rewards"], model.reward_head(h).squeeze(-1))
    expected = torch.tensor(singles)
    assert torch.allclose(r_right, expected, atol=1e-5)
    assert torch.allclose(r_left, expected, atol=1e-5)
    # the reward is not read at the pad position: changing the pad id changes nothing
    right2 = right.clone()
    right2[rm == 0] = 5
    with torch.no_grad():
        assert torch.allclose(model(right2, rm)["rewards"], r_right, atol=1e-6)
    # the LM head is kept: logits match the plain LM
    with torch.no_grad():
        ref = lm(input_ids=right[:1, :6], attention_mask=rm[:1, :6]).logits
        assert torch.allclose(model(right[:1], rm[:1])["logits"], ref, atol=1e-5)


def test_head_seed_changes_head_only(tok):
    lm = build_causal_lm("tiny-gpt2", tok, size="micro")
    a = CausalLMWithRewardHead.from_causal_lm(lm, head_seed=0)
    b = CausalLMWithRewardHead.from_causal_lm(lm, head_seed=1)
    assert not torch.equal(a.reward_head.weight, b.reward_head.weight)
    assert torch.equal(a.reward_head.weight, CausalLMWithRewardHead.from_causal_lm(lm, head_seed=0).reward_head.weight)


@pytest.mark.parametrize("name", TINY_MODELS)
def test_save_load_safetensors_roundtrip(tok, name, tmp_path):
    model = CausalLMWithRewardHead.from_causal_lm(build_causal_lm(name, tok, seed=0, size="micro"), head_seed=7)
    save_model(model, tok, tmp_path / "rm")
    files = {p.name for p in (tmp_path / "rm").iterdir()}
    assert "model.safetensors" in files and "reward_head.safetensors" in files
    assert not any(f.endswith((".bin", ".pt", ".pth")) for f in files)
    loaded, tok2 = load_model(tmp_path / "rm")
    assert isinstance(loaded, CausalLMWithRewardHead) and loaded.head_seed == 7
    ids = torch.tensor([[2, 4, 5, 1]])
    with torch.no_grad():
        a, b = model.eval()(ids), loaded.eval()(ids)
    assert torch.allclose(a["rewards"], b["rewards"]) and torch.allclose(a["logits"], b["logits"])
    assert tok2("the cat")["input_ids"] == tok("the cat")["input_ids"]
    # a plain LM folder loads as a causal LM
    save_model(model.lm, tok, tmp_path / "lm")
    lm2, _ = load_model(tmp_path / "lm")
    assert not isinstance(lm2, CausalLMWithRewardHead)


# ------------------------------------------------------------------------------- safetensors only ---------------
def _bin_only(model, tok, d):
    """A folder in the old pickle format: config + pytorch_model.bin (+ tokenizer), no model.safetensors.
    (transformers 5 ignores ``safe_serialization=False``, so the .bin is written by hand.)"""
    d.mkdir(parents=True)
    model.config.save_pretrained(d)
    torch.save(model.state_dict(), d / "pytorch_model.bin")
    tok.save_pretrained(d)
    assert not any(p.name.endswith(".safetensors") for p in d.iterdir() if p.name.startswith("model"))
    return d


def test_weights_load_from_safetensors_only(tok, tmp_path):
    """Every weight-loading entry point loads the project's safetensors folders and refuses a .bin-only folder."""
    import shutil

    from drdo_lib.generation import load_policy
    from drdo_lib.oracle import OracleConfig, reward_agreement
    from drdo_lib.precompute import _load
    from drdo_lib.sft import evaluate_sft, true_reward_of_samples
    from drdo_lib.smollm import _check_logits

    lm = build_causal_lm("tiny-gpt2", tok, seed=0, size="micro")
    rm = CausalLMWithRewardHead.from_causal_lm(lm, head_seed=3)
    st_lm, st_rm = save_model(lm, tok, tmp_path / "st_lm"), save_model(rm, tok, tmp_path / "st_rm")
    bin_lm = _bin_only(lm, tok, tmp_path / "bin_lm")
    bin_rm = _bin_only(rm.lm, tok, tmp_path / "bin_rm")
    for name in (CausalLMWithRewardHead.HEAD_WEIGHTS, CausalLMWithRewardHead.HEAD_CONFIG):
        shutil.copy(st_rm / name, bin_rm / name)  # the head is safetensors; only the LM is a pickle
    ids = torch.tensor([[2, 4, 5, 1]])
    with torch.no_grad():
        ref = lm.eval()(ids).logits
    cpu = torch.device("cpu")
    lm_loaders = {
        "load_model": lambda d: load_model(d)[0],
        "build_causal_lm": lambda d: build_causal_lm(str(d), tok),
        "generation.load_policy": lambda d: load_policy(d, device="cpu", dtype="float32")[0],
        "precompute._load(policy)": lambda d: _load(str(d), "policy", cpu, None)[0],
    }
    rm_loaders = {
        "load_model(reward)": lambda d: load_model(d)[0],
        "CausalLMWithRewardHead.from_pretrained": lambda d: CausalLMWithRewardHead.from_pretrained(d),
        "generation.load_policy(reward)": lambda d: load_policy(d, device="cpu", dtype="float32")[0],
        "precompute._load(reward)": lambda d: _load(str(d), "reward", cpu, None)[0],
    }
    for loaders, good in ((lm_loaders, st_lm), (rm_loaders, st_rm)):
        for what, load in loaders.items():
            with torch.no_grad():
                out = load(good).eval()(ids)
            assert torch.allclose(out["logits"] if isinstance(out, dict) else out.logits, ref, atol=1e-5), what
    # loads that only run inside a larger step: the model load is their first use of the folder's weights
    refusers = {
        **{k: (f, bin_lm) for k, f in lm_loaders.items()},
        **{k: (f, bin_rm) for k, f in rm_loaders.items()},
        "sft.true_reward_of_samples": (lambda d: true_reward_of_samples(str(d), tok, ["the cat"],
                                                                        lambda p, r: [0.0] * len(p)), bin_lm),
        "sft.evaluate_sft": (lambda d: evaluate_sft(d, None), bin_lm),
        "oracle.reward_agreement": (lambda d: reward_agreement(d, None, cfg=OracleConfig()), bin_rm),
        "smollm._check_logits": (lambda d: _check_logits(None, d, tok), bin_lm),
    }
    accepted = []
    for what, (load, bad) in refusers.items():
        try:
            load(bad)
        except OSError as e:
            assert "model.safetensors" in str(e) and str(bad) in str(e), (what, e)
        except Exception as e:  # got past the load (then tripped on the dummy rows), or broke before loading
            accepted.append(f"{what} ({type(e).__name__}: {str(e)[:80]})")
        else:
            accepted.append(what)
    assert accepted == [], f"loaded a pytorch_model.bin-only folder: {accepted}"
