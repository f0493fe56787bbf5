"""Tests of drdo_lib.scoring: response encoding against the training tokenisation, batched reward scoring against
unpadded single forwards."""
from __future__ import annotations

import pytest
import torch

from drdo_lib.scoring import RewardScorer, encode_responses
from tiny_lms import tiny_lm, tiny_tokenizer


def test_encode_responses_matches_training_tokenisation():
    datasets = pytest.importorskip("datasets")
    from drdo_lib.data.tokenize import tokenize_preference_dataset

    tok = tiny_tokenizer()
    rows = {"prompt": ["POST: the cat sat on a mat TL;DR:", "POST: dog ran far TL;DR:"],
            "chosen": [" cat mat", " dog ran"], "rejected": [" the", " away and then"]}
    ds, _ = tokenize_preference_dataset(datasets.Dataset.from_dict(rows), tok, max_prompt_length=32, max_length=64)
    ours = encode_responses(tok, rows["prompt"], rows["chosen"], max_prompt_length=32, max_length=64)
    assert ours == [list(x) for x in ds["chosen_input_ids"]]
    # responses without the leading space tokenise the same way
    ours2 = encode_responses(tok, rows["prompt"], [c.strip() for c in rows["chosen"]], max_prompt_length=32,
                             max_length=64)
    assert ours2 == ours
    # too long: the start is cut, the response and EOS kept
    cut = encode_responses(tok, rows["prompt"][:1], [" cat mat"], max_prompt_length=32, max_length=5)
    assert cut[0][-1] == tok.eos_token_id and len(cut[0]) == 5 and cut[0] == ours[0][-5:]


def test_reward_scorer_matches_unpadded_single_forwards():
    from drdo_lib.models import CausalLMWithRewardHead

    tok = tiny_tokenizer()
    rm = CausalLMWithRewardHead.from_causal_lm(tiny_lm(tok), head_seed=1).eval()
    prompts = ["POST: the cat sat TL;DR:", "POST: a dog ran far away and then came back home TL;DR:", "POST: mat"]
    responses = ["cat", "dog came home", ""]
    scorer = RewardScorer(rm, tok, batch_size=2, device="cpu", progress=False)
    got = scorer(prompts, responses)
    seqs = encode_responses(tok, prompts, responses, max_prompt_length=512, max_length=1024)
    for g, s in zip(got, seqs):
        with torch.no_grad():
            ref = rm(input_ids=torch.tensor([s]), attention_mask=torch.ones(1, len(s), dtype=torch.long))["rewards"]
        assert g == pytest.approx(float(ref[0]), abs=1e-5)
    assert scorer.single(prompts[1], responses[1]) == pytest.approx(got[1], abs=1e-5)
