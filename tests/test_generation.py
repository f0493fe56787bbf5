"""Tests of drdo_lib.generation on a tiny GPT-2 built from a config with a word-level tokenizer built here."""
from __future__ import annotations

import json
import math

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, decoders
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from drdo_lib.generation import (
    GenerationConfig,
    generate,
    generate_policy_samples,
    load_generations,
    load_policy,
)
from drdo_lib.hf import model_fingerprint

WORDS = "the cat sat on a mat dog ran far away and then came back home TL;DR: POST: summary of it".split()


def make_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {w: i for i, w in enumerate(["<pad>", "<eos>", "<bos>", "<unk>"] + sorted(set(WORDS)))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins tokens with spaces
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>",
                                   unk_token="<unk>")


def make_model(tok, seed=0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return GPT2LMHeadModel(cfg).eval()


PROMPTS = ["POST: the cat sat on a mat TL;DR:", "the dog ran", "POST: a dog came back home and then ran far away TL;DR:",
           "cat"]


@pytest.fixture(scope="module")
def tok_model():
    tok = make_tokenizer()
    return tok, make_model(tok)


def _manual_greedy(model, tok, prompt, n):
    """Reference greedy decoding: one prompt, no padding, no cache, argmax of the full forward pass each step."""
    ids = tok(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    new = []
    for _ in range(n):
        with torch.no_grad():
            logits = model(input_ids=ids, use_cache=False).logits[0, -1]
        nxt = int(logits.argmax())
        new.append(nxt)
        if nxt == tok.eos_token_id:
            break
        ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    return new


def test_left_padded_batched_greedy_matches_unpadded_uncached(tok_model):
    tok, model = tok_model
    outs = generate(model, tok, PROMPTS, temperature=0.0, max_new_tokens=6, batch_size=4, progress=False)
    for prompt, o in zip(PROMPTS, outs):
        ref = _manual_greedy(model, tok, prompt, 6)
        n = ref.index(tok.eos_token_id) + 1 if tok.eos_token_id in ref else len(ref)
        assert o["n_new_tokens"] == n
        assert o["response"] == tok.decode(ref[:n], skip_special_tokens=True).strip()


def test_seeded_sampling_is_reproducible_and_seed_dependent(tok_model):
    tok, model = tok_model
    prompts = PROMPTS * 4
    a = generate(model, tok, prompts, temperature=0.9, max_new_tokens=8, batch_size=5, seed=3, progress=False)
    b = generate(model, tok, prompts, temperature=0.9, max_new_tokens=8, batch_size=5, seed=3, progress=False)
    c = generate(model, tok, prompts, temperature=0.9, max_new_tokens=8, batch_size=5, seed=4, progress=False)
    assert a == b
    assert [x["response"] for x in a] != [x["response"] for x in c]


def _fixed_distribution_model(tok, logits: torch.Tensor) -> GPT2LMHeadModel:
    """A GPT-2 whose next-token logits are ``logits`` at every position (ln_f maps every state to e_0)."""
    model = make_model(tok)
    with torch.no_grad():
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.zero_()
        model.transformer.ln_f.bias[0] = 1.0
        model.transformer.wte.weight[:, 0] = logits  # tied lm_head: logits = wte @ e_0
    return model


def test_nucleus_sampling_support_and_frequencies(tok_model):
    tok, _ = tok_model
    V = len(tok)
    logits = torch.full((V,), -30.0)
    words = ["cat", "dog", "mat", "home", "far"]
    ids = [tok.convert_tokens_to_ids(w) for w in words]
    for i, v in zip(ids, [2.0, 1.6, 1.0, 0.2, 0.0]):
        logits[i] = v
    model = _fixed_distribution_model(tok, logits)
    T, top_p = 0.9, 0.8
    # independent nucleus: smallest set of most-likely tokens whose mass reaches top_p at temperature T
    probs = torch.softmax(logits / T, dim=0)
    order = torch.argsort(probs, descending=True)
    cum = torch.cumsum(probs[order], 0)
    k = int((cum < top_p).sum()) + 1
    nucleus = set(order[:k].tolist())
    assert 1 < len(nucleus) < len(words)  # the test distribution must actually truncate something
    outs = generate(model, tok, ["cat"] * 400, temperature=T, top_p=top_p, max_new_tokens=1, batch_size=100,
                    seed=0, progress=False)
    got = [tok.convert_tokens_to_ids(o["response"]) for o in outs]
    assert set(got) <= nucleus
    # frequencies follow the renormalised nucleus distribution
    p_nuc = probs[list(nucleus)] / probs[list(nucleus)].sum()
    for tid, p in zip(list(nucleus), p_nuc.tolist()):
        freq = got.count(tid) / len(got)
        assert abs(freq - p) < 4 * math.sqrt(p * (1 - p) / len(got)) + 1e-9


def test_eos_stops_and_marks_finished(tok_model):
    tok, _ = tok_model
    logits = torch.full((len(tok),), -30.0)
    logits[tok.eos_token_id] = 5.0
    model = _fixed_distribution_model(tok, logits)
    outs = generate(model, tok, PROMPTS, temperature=0.0, max_new_tokens=5, progress=False)
    assert all(o["finished"] and o["n_new_tokens"] == 1 and o["response"] == "" for o in outs)


def test_long_prompts_keep_their_end(tok_model):
    tok, model = tok_model
    long_prompt = " ".join(["the cat sat"] * 30) + " TL;DR:"
    a = generate(model, tok, [long_prompt], temperature=0.0, max_new_tokens=4, max_prompt_length=10, progress=False)
    short = " ".join(long_prompt.split()[-10:])
    b = generate(model, tok, [short], temperature=0.0, max_new_tokens=4, max_prompt_length=10, progress=False)
    assert a == b


def test_generate_policy_samples_jsonl_settings_and_cache(tok_model, tmp_path, monkeypatch):
    tok, model = tok_model
    cfg = GenerationConfig(temperatures=(0.2, 0.9), max_new_tokens=4, batch_size=2, seeds=(0, 1), samples_per_prompt=2)
    path = generate_policy_samples("sft", model, tok, PROMPTS, list(range(len(PROMPTS))), cfg, tmp_path,
                                   extra={"method": "sft"}, progress=False)
    df = load_generations([path])
    assert len(df) == len(PROMPTS) * 2 * 2 * 2
    assert set(df.temperature) == {0.2, 0.9} and set(df.seed) == {0, 1} and set(df["sample"]) == {0, 1}
    assert (df.top_p == 0.8).all() and (df.max_new_tokens == 4).all() and (df.method == "sft").all()
    hot = df[df.temperature == 0.9].sort_values(["prompt_id", "sample"])
    assert list(hot[hot.seed == 0].response) != list(hot[hot.seed == 1].response)  # replicates are distinct draws
    settings = json.loads((tmp_path / "sft.settings.json").read_text())
    assert settings["generation_config"]["temperatures"] == [0.2, 0.9]
    # cache hit: generate must not be called again
    import drdo_lib.generation as g

    monkeypatch.setattr(g, "generate", lambda *a, **k: pytest.fail("cache miss"))
    assert generate_policy_samples("sft", model, tok, PROMPTS, list(range(len(PROMPTS))), cfg, tmp_path,
                                   extra={"method": "sft"}, progress=False) == path
    # a changed setting is a cache miss
    with pytest.raises(pytest.fail.Exception):
        generate_policy_samples("sft", model, tok, PROMPTS, list(range(len(PROMPTS))),
                                GenerationConfig(temperatures=(0.5,), max_new_tokens=4), tmp_path, progress=False)


def test_fingerprint_and_load_policy_roundtrip(tok_model, tmp_path):
    tok, model = tok_model
    model.save_pretrained(tmp_path / "final")
    tok.save_pretrained(tmp_path / "final")
    fp = model_fingerprint(tmp_path / "final")
    assert fp == model_fingerprint(tmp_path / "final")
    m2, t2 = load_policy(tmp_path / "final", device="cpu")
    assert model_fingerprint(m2) == model_fingerprint(model)
    a = generate(model, tok, PROMPTS, temperature=0.0, max_new_tokens=4, progress=False)
    assert generate(m2, t2, PROMPTS, temperature=0.0, max_new_tokens=4, progress=False) == a
    with torch.no_grad():
        m2.lm_head.weight.add_(1.0) if not m2.config.tie_word_embeddings else m2.transformer.wte.weight.add_(1.0)
    assert model_fingerprint(m2) != model_fingerprint(model)


@pytest.mark.parametrize("bad", [dict(top_p=0.0), dict(temperatures=()), dict(temperatures=(-1,)),
                                 dict(max_new_tokens=0), dict(seeds=()), dict(dtype="int8")])
def test_config_validation(bad):
    with pytest.raises(ValueError):
        GenerationConfig(**bad)
