"""The synthetic testbed: schemas, r* against hand computations, determinism, BT label noise vs temperature."""
from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from drdo_lib.data.formats import format_tldr_prompt
from drdo_lib.data.synthetic import FILLER_WORDS, TOPIC_WORDS, SyntheticConfig, SyntheticTestbed, post_from_prompt


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@pytest.fixture(scope="module")
def tb():
    return SyntheticTestbed(SyntheticConfig(seed=0))


def test_word_lists_are_disjoint():
    keys = [w for ws in TOPIC_WORDS.values() for w in ws]
    assert len(keys) == len(set(keys))
    assert not set(keys) & set(FILLER_WORDS)


def test_true_reward_hand_examples(tb):
    post = "i have a dog and a cat so the vet said no"  # key words: dog, cat, vet
    assert tb.key_words_of(post) == ["dog", "cat", "vet"]
    assert tb.true_reward(post, " dog cat vet") == pytest.approx(4.0)
    assert tb.true_reward(post, "") == pytest.approx(0.0)
    assert tb.true_reward(post, " dog") == pytest.approx(4.0 / 3)
    # one invented word (kitten is a key word absent from the post)
    assert tb.true_reward(post, " dog cat vet kitten") == pytest.approx(4.0 - 1.0)
    # 3 keys + slack 2 = 5 words allowed; 7 words -> 2 excess (filler copied from the post is not invented)
    assert tb.true_reward(post, " i have dog cat vet so the") == pytest.approx(4.0 - 0.5 * 2)
    # repetition counts towards length, not coverage
    assert tb.true_reward(post, " dog dog dog dog dog dog") == pytest.approx(4.0 / 3 - 0.5 * 1)
    # the full TL;DR prompt gives the same value as the bare post
    prompt = format_tldr_prompt("pets", "help with dog", post)
    assert post_from_prompt(prompt) == post
    assert tb.true_reward(prompt, " dog cat") == tb.true_reward(post, " dog cat")
    assert tb.true_reward(prompt + " ", " dog cat") == tb.true_reward(post, " dog cat")


def test_true_reward_weights_are_settings():
    tb2 = SyntheticTestbed(SyntheticConfig(w_coverage=2.0, w_invented=3.0, w_excess=0.0))
    post = "my dog and my cat"
    assert tb2.true_reward(post, " dog kitten a b c d e f") == pytest.approx(2.0 * 0.5 - 3.0 * 7)


def test_true_rewards_vectorised(tb):
    sft = tb.sft_rows(50)
    r = tb.true_rewards([s["prompt"] for s in sft], [s["label"] for s in sft])
    assert r.shape == (50,) and r.dtype == np.float64
    assert r[3] == tb.true_reward(sft[3]["prompt"], sft[3]["label"])
    with pytest.raises(ValueError):
        tb.true_rewards(["a"], [])


def test_determinism_and_seed(tb):
    again = SyntheticTestbed(SyntheticConfig(seed=0))
    assert tb.comparison_rows(300) == again.comparison_rows(300)
    assert tb.sft_rows(100) == again.sft_rows(100)
    assert tb.ood_rows(20) == again.ood_rows(20)
    other = SyntheticTestbed(SyntheticConfig(seed=1))
    assert tb.comparison_rows(50) != other.comparison_rows(50)
    # splits use independent streams: train and valid posts differ
    train_posts = {r["info"]["post"] for r in tb.comparison_rows(200, "train")}
    valid_posts = {r["info"]["post"] for r in tb.comparison_rows(200, "valid2")}
    assert not train_posts & valid_posts


def test_comparison_schema_and_budget(tb):
    rows = tb.comparison_rows(2000, "valid1")
    vocab = set(tb.vocabulary)
    assert len(rows) == 2000
    ids = set()
    for r in rows:
        assert set(r) == {"info", "split", "summaries", "choice", "worker", "batch", "extra"}
        assert set(r["info"]) == {"id", "post", "title", "subreddit"}
        assert r["split"] == "valid1" and r["choice"] in (0, 1)
        assert len(r["summaries"]) == 2
        texts = [s["text"] for s in r["summaries"]]
        assert texts[0] != texts[1]
        for t in texts:
            assert t.startswith(" ") and 1 <= len(t.split()) <= 16
            assert set(t.split()) <= vocab
        c = r["extra"]["confidence"]
        assert c in (1, 2, 3, 4, 6, 7, 8, 9)
        assert (c < 5) == (r["choice"] == 0)  # directional, as the published data
        prompt = format_tldr_prompt(r["info"]["subreddit"], r["info"]["title"], r["info"]["post"])
        assert len(prompt.split()) <= 64
        assert set(prompt.split()) <= vocab
        assert 30 <= len(r["info"]["post"].split()) <= 50
        ids.add((r["info"]["id"], r["worker"]))
    assert len(ids) == len(rows)  # a repeated pair always has another worker
    assert len(tb.vocabulary) < 400


def test_repeat_labels(tb):
    rows = tb.comparison_rows(3000)
    by_pair = {}
    for r in rows:
        by_pair.setdefault(r["info"]["id"], []).append(r)
    repeated = [v for v in by_pair.values() if len(v) > 1]
    # repeat_fraction = 0.1 of pairs: about 0.1 / 1.1 of rows belong to a second label
    assert 0.05 < len(repeated) / len(by_pair) < 0.15
    for v in repeated:
        assert v[0]["summaries"] == v[1]["summaries"] and v[0]["worker"] != v[1]["worker"]


@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_label_noise_matches_temperature(temperature):
    tb = SyntheticTestbed(SyntheticConfig(seed=3, temperature=temperature))
    rows = tb.comparison_rows(6000)
    r0 = np.array([tb.true_reward(r["info"]["post"], r["summaries"][0]["text"]) for r in rows])
    r1 = np.array([tb.true_reward(r["info"]["post"], r["summaries"][1]["text"]) for r in rows])
    choice = np.array([r["choice"] for r in rows])
    p1 = sigmoid((r1 - r0) / temperature)
    # E[choice] = mean p1; 5-sigma binomial bound on the mean
    se = math.sqrt((p1 * (1 - p1)).sum()) / len(rows)
    assert abs(choice.mean() - p1.mean()) < 5 * se + 1e-9
    # calibration within bins of p1
    for lo, hi in [(0.0, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, 0.8), (0.8, 1.0)]:
        m = (p1 >= lo) & (p1 < hi)
        if m.sum() < 200:
            continue
        se = math.sqrt((p1[m] * (1 - p1[m])).sum()) / m.sum()
        assert abs(choice[m].mean() - p1[m].mean()) < 5 * se + 0.01


def test_temperature_is_a_noise_dial():
    def agreement(t):
        tb = SyntheticTestbed(SyntheticConfig(seed=5, temperature=t))
        rows = tb.comparison_rows(3000)
        agree = n = 0
        for r in rows:
            a, b = (tb.true_reward(r["info"]["post"], s["text"]) for s in r["summaries"])
            if a != b:
                n += 1
                agree += int((b > a) == (r["choice"] == 1))
        return agree / n

    low, mid, high = agreement(0.2), agreement(1.0), agreement(5.0)
    assert low > mid > high > 0.5
    assert low > 0.9 and high < 0.75


def test_confidence_tracks_p_star():
    tb = SyntheticTestbed(SyntheticConfig(seed=2, confidence_noise=0.0))
    rows = tb.comparison_rows(2000)
    for r in rows:
        a, b = (tb.true_reward(r["info"]["post"], s["text"]) for s in r["summaries"])
        u = 2 * abs(1 / (1 + math.exp(-(b - a))) - 0.5)
        expected = min(4, max(1, 1 + math.floor(4 * u)))
        assert abs(r["extra"]["confidence"] - 5) == expected


def test_null_confidence_fraction():
    tb = SyntheticTestbed(SyntheticConfig(seed=0, null_confidence_fraction=0.2))
    rows = tb.comparison_rows(2000)
    frac = np.mean([r["extra"]["confidence"] is None for r in rows])
    assert 0.15 < frac < 0.25


def test_sft_rows_noisy_references(tb):
    rows = tb.sft_rows(1000)
    assert set(rows[0]) == {"id", "prompt", "label"}
    assert all(r["prompt"].endswith("TL;DR: ") for r in rows)  # CarperAI layout
    assert all(not r["label"].startswith(" ") and 1 <= len(r["label"].split()) <= 16 for r in rows)
    ref = tb.true_rewards([r["prompt"] for r in rows], [" " + r["label"] for r in rows])
    ideal = tb.true_rewards([r["prompt"] for r in rows], [tb.ideal_summary(r["prompt"]) for r in rows])
    assert np.allclose(ideal, 4.0)
    # references are good but improvable: preference learning has room above SFT
    assert 2.0 < ref.mean() < 3.5
    assert (ref < ideal).mean() > 0.4


def test_ood_rows(tb):
    rows = tb.ood_rows(100)
    assert set(rows[0]) == {"id", "article", "highlights"}
    lens = [len(r["article"].split()) for r in rows]
    assert min(lens) >= 45 and max(lens) <= 58  # longer than posts (30–50)
    vocab = set(tb.vocabulary)
    for r in rows:
        assert set(r["article"].split()) | set(r["highlights"].split()) <= vocab
        assert all(line.endswith(" .") for line in r["highlights"].split("\n"))
        # key words from two topics
        keys = tb.key_words_of(r["article"])
        topics = {t for t, ws in TOPIC_WORDS.items() for k in keys if k in ws}
        assert len(topics) == 2


def test_write_layout(tmp_path, tb):
    paths = tb.write(tmp_path, n_train=100, n_valid=50, n_sft=30, n_sft_test=10, n_ood=5)
    def n_lines(p):
        return sum(1 for _ in open(p))
    assert n_lines(paths["comparisons_train"]) == 100
    assert n_lines(paths["comparisons_valid"]) == 50
    assert n_lines(paths["sft_train"]) == 30 and n_lines(paths["sft_test"]) == 10 and n_lines(paths["ood"]) == 5
    splits = [json.loads(line)["split"] for line in open(paths["comparisons_valid"])]
    assert splits.count("valid1") == 10 and splits.count("valid2") == 40
    assert paths["comparisons_train"].parent.name == "summarize_from_feedback_comparisons"
    assert json.loads(paths["config"].read_text())["seed"] == 0


def test_speed_few_thousand_pairs_in_seconds():
    t0 = time.perf_counter()
    SyntheticTestbed(SyntheticConfig(seed=9)).comparison_rows(5000)
    assert time.perf_counter() - t0 < 10


@pytest.mark.parametrize("bad", [dict(temperature=0), dict(temperature=float("inf")), dict(repeat_fraction=1.5),
                                 dict(min_keys=5, max_keys=3), dict(max_post_words=70), dict(n_workers=1),
                                 dict(w_invented=-1), dict(max_summary_words=2)])
def test_config_validation(bad):
    with pytest.raises(ValueError):
        SyntheticConfig(**bad)


def test_bad_split_names(tb):
    with pytest.raises(ValueError):
        tb.comparison_rows(3, "validation")
    with pytest.raises(ValueError):
        tb.sft_rows(3, "dev")


def _pair_rewards(tb, rows):
    return np.array([[tb.true_reward(r["info"]["post"], s["text"]) for s in r["summaries"]] for r in rows])


def test_tie_fraction_gives_equal_reward_pairs_labelled_once():
    tb = SyntheticTestbed(SyntheticConfig(seed=3, tie_fraction=0.5, repeat_fraction=0.5, ref_quality_min=0.3))
    rows = tb.comparison_rows(1500)
    r = _pair_rewards(tb, rows)
    tie = np.array([row["summaries"][0]["policy"] == "tie" or row["summaries"][1]["policy"] == "tie" for row in rows])
    assert 0.35 < tie.mean() < 0.6
    assert np.all(r[tie, 0] == r[tie, 1])  # p* = 1/2 exactly
    assert all(rows[i]["summaries"][0]["text"] != rows[i]["summaries"][1]["text"] for i in np.flatnonzero(tie))
    ids = [row["info"]["id"] for row in rows]
    tie_ids = [ids[i] for i in np.flatnonzero(tie)]
    assert len(tie_ids) == len(set(tie_ids))  # a tied pair is labelled once, never repeated
    assert len(ids) > len(set(ids))  # while other pairs are (repeat_fraction 0.5)
    # the coin: about half of the tied pairs choose summary 1
    assert 0.4 < np.mean([rows[i]["choice"] for i in np.flatnonzero(tie)]) < 0.6


def test_sft_like_pairs_match_the_reference_writers_and_quality_is_a_dial():
    mixed = SyntheticTestbed(SyntheticConfig(seed=1, ref_quality_min=0.3, near_pair_fraction=0.0))
    refs = np.array([mixed.true_reward(r["prompt"], r["label"]) for r in mixed.sft_rows(3000)])
    pairs = _pair_rewards(mixed, mixed.comparison_rows(3000)).ravel()
    # pair summaries are drawn from the same writers the SFT targets come from (what the SFT policy imitates)
    assert abs(pairs.mean() - refs.mean()) < 0.1 and abs(pairs.std() - refs.std()) < 0.15
    single = SyntheticTestbed(SyntheticConfig(seed=1))  # ref_quality_min = 1: one writer of quality 1
    refs1 = np.array([single.true_reward(r["prompt"], r["label"]) for r in single.sft_rows(3000)])
    assert refs.mean() < refs1.mean() - 0.5 and refs.std() > refs1.std()
    # the first testbed's generator stays available as a labelled setting
    old = SyntheticTestbed(SyntheticConfig(seed=1, pair_source="perturbation"))
    assert any(s["policy"].startswith("synth_q") for r in old.comparison_rows(50) for s in r["summaries"])


def test_ood_reference_noisy_is_below_the_ideal():
    ideal = SyntheticTestbed(SyntheticConfig(seed=2))
    noisy = SyntheticTestbed(SyntheticConfig(seed=2, ood_reference="noisy", ref_quality_min=0.3))

    def mean_r(tb):
        rows = tb.ood_rows(300)
        return np.mean([tb.true_reward(r["article"], r["highlights"].replace(" .", "").replace("\n", " "))
                        for r in rows])

    assert mean_r(ideal) == pytest.approx(4.0)
    assert mean_r(noisy) < 3.5
