"""drdo_lib.reward_fit: the student's pairwise accuracy and correlation, each against a hand computation."""
from __future__ import annotations

import math

import datasets
import numpy as np
import pytest
import torch

from drdo_lib import losses as L
from drdo_lib.data.tokenize import tokenize_preference_dataset
from drdo_lib.models import CausalLMWithRewardHead, build_causal_lm, build_tokenizer
from drdo_lib.reward_fit import FIT_KEYS, pairwise_agreement, pearson, reward_fit, student_pair_rewards

from policy_helpers import WORDS
from policy_helpers import random_preference_rows as _rows


def test_pairwise_agreement_by_hand():
    pred = [1.0, -2.0, 0.0, 3.0, 5.0]
    ref = [2.0, 1.0, 4.0, 0.0, 1.0]  # pair 4 undecided by the reference; pair 3's tie counts 1/2
    share, n = pairwise_agreement(pred, ref)
    assert n == 4 and share == pytest.approx((1 + 0 + 0.5 + 1) / 4)
    assert math.isnan(pairwise_agreement([1.0], [0.0])[0])
    with pytest.raises(ValueError):
        pairwise_agreement([1.0, 2.0], [1.0])


def test_pearson_by_hand():
    x, y = [1.0, 2.0, 4.0, 7.0], [2.0, 1.0, 5.0, 9.0]
    mx, my = sum(x) / 4, sum(y) / 4
    cov = sum((a - mx) * (b - my) for a, b in zip(x, y))
    want = cov / math.sqrt(sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y))
    assert pearson(x, y) == pytest.approx(want)
    assert math.isnan(pearson([1.0, 1.0], [1.0, 2.0]))


def test_reward_fit_on_a_worked_example():
    s_c, s_r = [2.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0]   # student diffs  +1 −1  0 +1
    o_c, o_r = [3.0, 1.0, 0.0, 2.0], [0.0, 2.0, 1.0, 2.0]   # oracle diffs   +3 −1 −1  0
    t_c, t_r = [1.0, 0.0, 0.0, 5.0], [0.0, 1.0, 1.0, 5.0]   # true diffs     +1 −1 −1  0
    fit = reward_fit(s_c, s_r, o_c, o_r, t_c, t_r)
    assert set(fit) == set(FIT_KEYS)
    assert fit["acc_labels"] == pytest.approx((1 + 0 + 0.5 + 1) / 4)
    assert fit["acc_oracle"] == pytest.approx((1 + 1 + 0.5) / 3) and fit["n_oracle_decided"] == 3
    assert fit["acc_true"] == pytest.approx((1 + 1 + 0.5) / 3) and fit["n_true_decided"] == 3
    assert fit["oracle_acc_labels"] == pytest.approx((1 + 0 + 0 + 0.5) / 4)
    assert fit["oracle_acc_true"] == pytest.approx(1.0)
    assert fit["pearson_oracle"] == pytest.approx(pearson([1, -1, 0, 1], [3, -1, -1, 0]))
    nt = reward_fit(s_c, s_r, o_c, o_r)
    assert math.isnan(nt["acc_true"]) and nt["n_true_decided"] == 0


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer("tiny-gpt2", vocab_words=WORDS + ["POST:", "TL;DR:", "POST", "TL", "DR", ":", ";"])


@pytest.mark.parametrize("student_reward", ["head", "logprob"])
def test_student_pair_rewards_equal_separate_forwards(tok, student_reward):
    ds, _ = tokenize_preference_dataset(datasets.Dataset.from_list(_rows(10)), tok, max_prompt_length=32,
                                        max_length=48)
    lm = build_causal_lm("tiny-gpt2", tok, seed=1, size="micro")
    model = CausalLMWithRewardHead.from_causal_lm(lm, head_seed=3) if student_reward == "head" else lm
    got = student_pair_rewards(model, ds, tok.pad_token_id, student_reward=student_reward, beta=0.3, batch_size=4)
    rows = [ds[i] for i in range(len(ds))]
    model.eval()
    for k, side in enumerate(("chosen", "rejected")):
        for i, r in enumerate(rows):  # one row at a time, no padding at all
            ids = torch.tensor([r[f"{side}_input_ids"]])
            with torch.no_grad():
                out = model(input_ids=ids, attention_mask=torch.ones_like(ids))
            if student_reward == "head":
                want = float(out["rewards"][0])
            else:
                want = 0.3 * float(L.sequence_logps(out.logits, ids, torch.tensor([r[f"{side}_response_mask"]]))[0])
            assert got[i, k] == pytest.approx(want, rel=1e-4, abs=1e-5)
    assert got.shape == (len(ds), 2) and np.std(got[:, 0]) > 0
