"""Tests of drdo_lib.judge against a real OpenAI-compatible HTTP server on 127.0.0.1 (tests/openai_stub_server.py),
through the real ``openai`` client, plus the templates against the paper's text and the parsers."""
from __future__ import annotations

import importlib.util
import json
import logging
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from openai_stub_server import StubServer, alternating_pairs  # noqa: E402

from drdo_lib import judge_prompts as jp  # noqa: E402
from drdo_lib.judge import (CostLimitExceeded, JudgeCache, JudgeSettings, estimate_cost,  # noqa: E402
                            estimate_judge_cost, judge_pairs, request_key, win_rate_summary)

REPO = Path(__file__).resolve().parent.parent
PAPER = REPO.parent / "shared" / "paper" / "000_e78bc0cc26b8d448.txt"
#: The loopback server is not api.openai.com, so every call names its key variable (unset: a placeholder key is sent).
LOCAL_KEY = {"api_key_env": "DRDO_JUDGE_STUB_KEY"}
FAST = {"backoff_base": 0.01, "backoff_max": 0.05, "timeout": 5.0, **LOCAL_KEY}


# ------------------------------------------------------------------------------------------- templates
def _paper_block(title: str, caption: str) -> str:
    text = PAPER.read_text()
    start = text.index(title) + len(title)
    return text[start:text.index(caption, start)].strip()


@pytest.mark.skipif(not PAPER.exists(), reason=f"paper text not found at {PAPER}")
def test_paper_prompts_are_verbatim():
    assert jp.FIG5_TEXT == _paper_block("Summarization GPT-4 win rate prompt (C).", "Figure 5:")
    assert jp.FIG6_TEXT == _paper_block("Summarization GPT-4 win rate prompt (vs human written).", "Figure 6:")


def test_paper_prompt_rendering():
    msgs = jp.build_messages("tldr_reference", "THE POST <summary>", "first one", "second one", "the reference")
    assert len(msgs) == 1 and msgs[0]["role"] == "user"
    text = msgs[0]["content"]
    assert " \\ " not in text and "most important points in the given forum post" in text
    assert "Post:\nTHE POST <summary>\n\nReference Summary:\nthe reference\n\nSummary A:\nfirst one\n" \
           "Summary B:\nsecond one\n\nFIRST" in text
    assert text.endswith('Preferred: <"A" or "B">')
    # the whole text is the figure with wrap marks joined and the placeholders filled: nothing else changed
    expected = jp.FIG5_TEXT.replace(" \\ ", " ").replace("<post>", "THE POST <summary>").replace(
        "<golden summary>", "the reference").replace("<Summary A>", "first one").replace("<Summary B>", "second one")
    assert text == expected
    vs = jp.build_messages("vs_human", "P", "<summary>", "y")[0]["content"]  # a response that looks like a slot
    assert "Summary A:\n<summary>\nSummary B:\ny\n" in vs and "news article" in vs
    with pytest.raises(ValueError, match="reference"):
        jp.build_messages("tldr_reference", "p", "a", "b")
    with pytest.raises(ValueError, match="unknown template"):
        jp.build_messages("nope", "p", "a", "b")


def test_alpaca_template_and_messages():
    msgs = jp.build_messages("alpaca", "Say hi", "hello", "hi there")
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert msgs[0]["content"].startswith("You are a highly efficient assistant")
    assert '"instruction": """Say hi""",' in msgs[1]["content"]
    assert msgs[1]["content"].index('"""hello"""') < msgs[1]["content"].index('"""hi there"""')
    assert msgs[1]["content"].endswith("## Best Model Identifier")


def test_alpaca_template_matches_upstream_file():
    spec = importlib.util.find_spec("alpaca_eval")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("alpaca-eval not installed; the template is a cited verbatim copy")
    f = Path(list(spec.submodule_search_locations)[0]) / "evaluators_configs" / "alpaca_eval_clf_gpt4_turbo" \
        / "alpaca_eval_clf.txt"
    assert jp.ALPACA_CLF_TEXT == f.read_text()


@pytest.mark.parametrize("text,expected", [
    ("Comparison: A is shorter.\nPreferred: A", "A"),
    ("Comparison: B covers more.\nPreferred: B\n", "B"),
    ("Comparison: x\n**Preferred:** b", "B"),
    ('Comparison: x\nPreferred: "A"', "A"),
    ("Comparison: x\nPreferred: <B>.", "B"),
    ("Preferred: A\nComparison: on reflection...\nPreferred: B", "B"),  # the last verdict counts
    ("Comparison: x\nPreferred: A or B", None),
    ("Comparison: x\nPreferred: neither", None),
    ("Comparison: A and B are both fine.", None),
    ("B", "B"),
    ("", None),
    (None, None),
    ("Preferred: Absolutely the first", None),
    # only an unambiguous A/B verdict counts
    ("Comparison: both equally good.\nPreferred: a tie", None),  # the article, not option A
    ("Comparison: x\nPreferred: A tie", None),
    ("Comparison: x\nPreferred: B - it is a tie", None),
    ("Comparison: x\nPreferred: both", None),
    ("Comparison: x\nPreferred: A is better", None),
    ("Comparison: x\nPreferred: B (A is too long)", None),
    ("Comparison: x\nPreferred: an A", None),
    ("Comparison: x\nPreferred: a", "A"),
    ("Comparison: x\nPreferred: A (more concise)", "A"),
    ("Comparison: x\nPreferred: Summary B", "B"),
    ("Comparison: x\nPreferred: B, because it keeps the key fact", "B"),
])
def test_parse_preferred(text, expected):
    assert jp.parse_preferred(text) == expected


def test_parse_alpaca():
    assert jp.parse_alpaca("m") == ("A", 0.0)
    assert jp.parse_alpaca("M") == ("B", 1.0)
    w, p = jp.parse_alpaca("Output", None)
    assert w is None and math.isnan(p)
    w, p = jp.parse_alpaca("m", [{"token": "m", "logprob": math.log(0.3)}, {"token": "M", "logprob": math.log(0.6)},
                                 {"token": "The", "logprob": math.log(0.1)}])
    assert w == "B" and p == pytest.approx(0.6 / 0.9)


# ------------------------------------------------------------------------------------------- settings
def test_settings_validation_and_request_key():
    with pytest.raises(ValueError, match="template"):
        JudgeSettings(template="x", model="m")
    with pytest.raises(ValueError, match="order"):
        JudgeSettings(template="alpaca", model="m", order="sometimes")
    with pytest.raises(ValueError, match="max_concurrency"):
        JudgeSettings(template="alpaca", model="m", max_concurrency=0)
    with pytest.raises(ValueError, match="NAME"):
        JudgeSettings(template="alpaca", model="m", api_key_env="sk-abc 123")
    msgs = [{"role": "user", "content": "x"}]
    k = request_key(None, "gpt-4o", msgs, {"temperature": 0.0})
    assert k == request_key("https://api.openai.com/v1/", "gpt-4o", msgs, {"temperature": 0.0})
    assert len({k, request_key("http://h/v1", "gpt-4o", msgs, {"temperature": 0.0}),
                request_key(None, "gpt-4", msgs, {"temperature": 0.0}),
                request_key(None, "gpt-4o", msgs, {"temperature": 1.0}),
                request_key(None, "gpt-4o", [{"role": "user", "content": "y"}], {"temperature": 0.0})}) == 5


def test_estimate_cost_by_hand():
    reqs = [{"messages": [{"role": "user", "content": "x" * 400}]}, {"messages": [{"role": "user", "content": "y"}]}]
    est = estimate_cost(reqs, "gpt-4o", 10, {"gpt-4o": (2.0, 8.0)})
    tin = math.ceil((400 + 16 + 1 + 16) / 4)
    assert est["input_tokens"] == tin and est["output_tokens"] == 20
    assert est["usd"] == pytest.approx((tin * 2.0 + 20 * 8.0) / 1e6)
    assert math.isnan(estimate_cost(reqs, "unknown-model", 10)["usd"])


# ------------------------------------------------------------------------------------------- gold judge
def test_gold_judge_by_reward():
    reward = {"good": 2.0, "bad": -1.0, "same1": 0.5, "same2": 0.5}
    df = judge_pairs(["x"] * 3, ["good", "bad", "same1"], ["bad", "good", "same2"], template="vs_human",
                     model="gold", cache_dir=None, reward_fn=lambda p, y: reward[y])
    assert list(df["outcome"]) == ["a", "b", "tie"]
    assert df["winner"].tolist()[:2] == ["a", "b"] and df["winner"].iloc[2] is None
    s = win_rate_summary(df)
    assert (s["wins"], s["losses"], s["ties"], s["discarded"]) == (1, 1, 1, 0) and s["win_rate"] == 0.5
    with pytest.raises(ValueError, match="reward_fn"):
        judge_pairs(["x"], ["a"], ["b"], template="vs_human", model="gold", cache_dir=None)
    with pytest.raises(ValueError, match="same length"):
        judge_pairs(["x"], ["a", "c"], ["b"], template="vs_human", model="gold", cache_dir=None, reward_fn=len)
    with pytest.raises(ValueError, match="nothing to judge"):
        judge_pairs([], [], [], template="vs_human", model="gold", cache_dir=None, reward_fn=len)


def test_win_rate_summary_counts_and_ci():
    df = pd.DataFrame({"outcome": ["a"] * 60 + ["b"] * 30 + ["tie"] * 10 + ["discarded"] * 5})
    s = win_rate_summary(df, n_boot=4000, seed=1)
    assert (s["n"], s["judged"], s["wins"], s["losses"], s["ties"], s["discarded"]) == (105, 100, 60, 30, 10, 5)
    assert s["win_rate"] == pytest.approx(0.65) and s["win_rate_excl_ties"] == pytest.approx(60 / 90)
    # normal-approximation CI of a mean of scores in {0, .5, 1} as an independent check of the bootstrap
    scores = np.array([1] * 60 + [0] * 30 + [0.5] * 10)
    half = 1.96 * scores.std() / math.sqrt(len(scores))
    assert s["ci_low"] == pytest.approx(0.65 - half, abs=0.02) and s["ci_high"] == pytest.approx(0.65 + half, abs=0.02)


# ------------------------------------------------------------------------------------------- server tests
def test_answers_in_both_presentation_orders(tmp_path):
    prompts, a, b, refs, truth = alternating_pairs(16)
    with StubServer() as srv:
        df = judge_pairs(prompts, a, b, refs, template="tldr_reference", model="stub", base_url=srv.base_url,
                         cache_dir=tmp_path, seed=3, max_concurrency=4, **FAST)
        assert len(srv.state.requests) == 16
    assert df["winner"].tolist() == truth  # right verdict whichever order was shown
    assert df["swapped"].any() and not df["swapped"].all()
    # the order shown matches the swapped flag: the server saw b's text in slot A exactly when swapped
    for body in srv.state.requests:
        content = body["messages"][0]["content"]
        i = int(content.split("Post number ")[1].split(":")[0])
        assert (f"summary b{i}" in content.split("Summary B:")[0]) == bool(df.loc[i, "swapped"])
    assert df["raw"].str.contains("Preferred:").all()
    assert win_rate_summary(df)["win_rate"] == 0.5


def test_seeded_order_is_reproducible(tmp_path):
    prompts, a, b, refs, _ = alternating_pairs(20)
    with StubServer() as srv:
        d1 = judge_pairs(prompts, a, b, refs, template="tldr_reference", model="stub", base_url=srv.base_url,
                         cache_dir=tmp_path, seed=7, **FAST)
        d2 = judge_pairs(prompts, a, b, refs, template="tldr_reference", model="stub", base_url=srv.base_url,
                         cache_dir=tmp_path, seed=7, **FAST)
        d3 = judge_pairs(prompts, a, b, refs, template="tldr_reference", model="stub", base_url=srv.base_url,
                         cache_dir=tmp_path, seed=8, **FAST)
    assert d1["swapped"].tolist() == d2["swapped"].tolist() != d3["swapped"].tolist()
    assert d2["cached"].all() and not d3["cached"].all()


def test_order_both_and_position_consistency(tmp_path):
    prompts, a, b, refs, truth = alternating_pairs(6)
    a[4] += " [biasA]"  # this pair: the judge always picks whatever is shown first
    with StubServer() as srv:
        df = judge_pairs(prompts, a, b, refs, template="tldr_reference", model="stub", base_url=srv.base_url,
                         cache_dir=tmp_path, order="both", **FAST)
        assert len(srv.state.requests) == 12
    assert df.loc[4, "outcome"] == "tie" and df.loc[4, "consistent"] == False  # noqa: E712
    assert (df.loc[4, "winner_unswapped"], df.loc[4, "winner_swapped"]) == ("a", "b")
    keep = [0, 1, 2, 3, 5]
    assert df.loc[keep, "winner"].tolist() == [truth[i] for i in keep]
    s = win_rate_summary(df)
    assert s["position_consistency"] == pytest.approx(5 / 6) and s["ties"] == 1


def test_garbage_is_discarded_and_counted(tmp_path):
    prompts, a, b, refs, truth = alternating_pairs(6)
    b[1] += " [garbage]"
    b[2] += " [garbage]"
    with StubServer() as srv:
        df = judge_pairs(prompts, a, b, refs, template="tldr_reference", model="stub", base_url=srv.base_url,
                         cache_dir=tmp_path, **FAST)
    assert df.loc[[1, 2], "outcome"].tolist() == ["discarded", "discarded"]
    assert df.loc[[1, 2], "winner"].isna().all()
    s = win_rate_summary(df)
    assert s["discarded"] == 2 and s["judged"] == 4
    assert s["win_rate"] == pytest.approx(np.mean([truth[i] == "a" for i in (0, 3, 4, 5)]))


def test_a_tie_answer_is_discarded_and_counted_not_read_as_option_a(tmp_path):
    """"Preferred: a tie" used to count as a vote for A (the article read as the option)."""
    prompts, a, b, refs, truth = alternating_pairs(6)
    b[1] += " [tie]"
    a[4] += " [tie]"
    with StubServer() as srv:
        df = judge_pairs(prompts, a, b, refs, template="tldr_reference", model="stub", base_url=srv.base_url,
                         cache_dir=tmp_path, **FAST)
        assert len(srv.state.requests) == 6
    assert df.loc[[1, 4], "raw"].str.endswith("Preferred: a tie").all()
    assert df.loc[[1, 4], "outcome"].tolist() == ["discarded", "discarded"] and df.loc[[1, 4], "winner"].isna().all()
    s = win_rate_summary(df)
    assert (s["discarded"], s["judged"], s["ties"]) == (2, 4, 0)
    assert s["win_rate"] == pytest.approx(np.mean([truth[i] == "a" for i in (0, 2, 3, 5)]))


@pytest.mark.parametrize("marker", ["[429]", "[500]", "[slow]", "[drop]"])
def test_transient_failures_are_retried(tmp_path, marker):
    prompts, a, b, refs, truth = alternating_pairs(4)
    a[1] += f" {marker}"
    settings = dict(FAST, timeout=1.0) if marker == "[slow]" else FAST
    with StubServer(slow_s=2.5) as srv:
        df = judge_pairs(prompts, a, b, refs, template="tldr_reference", model="stub", base_url=srv.base_url,
                         cache_dir=tmp_path, max_concurrency=2, **settings)
        attempts = sorted(srv.state.attempts.values())
    assert df["winner"].tolist() == truth
    assert attempts == [1, 1, 1, 2]  # exactly one retry, of the scripted request only


def test_non_transient_error_stops_without_retry(tmp_path):
    import openai

    prompts, a, b, refs, _ = alternating_pairs(1)
    a[0] += " [fatal]"
    with StubServer() as srv:
        with pytest.raises(openai.BadRequestError):
            judge_pairs(prompts, a, b, refs, template="tldr_reference", model="stub", base_url=srv.base_url,
                        cache_dir=tmp_path, **FAST)
        assert len(srv.state.requests) == 1


def test_interrupted_run_then_rerun_makes_no_duplicate_requests(tmp_path):
    import openai

    prompts, a, b, refs, truth = alternating_pairs(10)
    with StubServer() as srv:
        srv.state.fail_after = 4  # the "crash": everything after 4 answers fails
        with pytest.raises(openai.BadRequestError):
            judge_pairs(prompts, a, b, refs, template="tldr_reference", model="stub", base_url=srv.base_url,
                        cache_dir=tmp_path, max_concurrency=2, **FAST)
        finished = srv.state.n_answered
        assert 4 <= finished < 10
        assert len(list(tmp_path.rglob("*.json"))) == finished  # every finished judgement is on disk
        assert not list(tmp_path.rglob(".tmp-*"))
        srv.state.fail_after = None
        df = judge_pairs(prompts, a, b, refs, template="tldr_reference", model="stub", base_url=srv.base_url,
                         cache_dir=tmp_path, max_concurrency=2, **FAST)
        assert df["winner"].tolist() == truth
        assert len(srv.state.answered) == 10 and set(srv.state.answered.values()) == {1}  # no request paid twice
        assert df["cached"].sum() == finished
        n_before = len(srv.state.requests)
        again = judge_pairs(prompts, a, b, refs, template="tldr_reference", model="stub", base_url=srv.base_url,
                            cache_dir=tmp_path, **FAST)
        assert len(srv.state.requests) == n_before and again["cached"].all()
    pd.testing.assert_frame_equal(df.drop(columns="cached"), again.drop(columns="cached"))


def test_concurrency_limit(tmp_path):
    prompts, a, b, refs, _ = alternating_pairs(12)
    with StubServer(delay_s=0.15) as srv:
        judge_pairs(prompts, a, b, refs, template="tldr_reference", model="stub", base_url=srv.base_url,
                    cache_dir=tmp_path, max_concurrency=3, **FAST)
        assert 2 <= srv.state.max_in_flight <= 3
    with StubServer(delay_s=0.05) as srv:
        judge_pairs(prompts, a, b, refs, template="tldr_reference", model="stub", base_url=srv.base_url,
                    cache_dir=tmp_path / "serial", max_concurrency=1, **FAST)
        assert srv.state.max_in_flight == 1


def test_api_key_only_from_env_and_never_leaks(tmp_path, monkeypatch, caplog, capsys):
    secret = "sk-test-DO-NOT-LEAK-4f9c2e"
    monkeypatch.setenv("DRDO_JUDGE_TEST_KEY", secret)
    prompts, a, b, refs, _ = alternating_pairs(4)
    a[0] += " [429]"  # a retry path logs too
    b[1] += " [garbage]"
    caplog.set_level(logging.DEBUG)
    with StubServer() as srv:
        df = judge_pairs(prompts, a, b, refs, template="tldr_reference", model="stub", base_url=srv.base_url,
                         cache_dir=tmp_path, **{**FAST, "api_key_env": "DRDO_JUDGE_TEST_KEY"})
        assert set(srv.state.auth_headers) == {f"Bearer {secret}"}  # the key is used ...
    out = capsys.readouterr()
    assert secret not in caplog.text and secret not in out.out + out.err  # ... but never logged or printed,
    assert caplog.text  # (logging did happen)
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert secret not in f.read_text()  # never cached,
    assert secret not in df.to_json()  # and not in the results
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(RuntimeError, match="OPENAI_API_KEY"):  # api.openai.com without a key: clear error
        judge_pairs(prompts, a, b, refs, template="tldr_reference", model="gpt-4o", cache_dir=tmp_path / "k")


def test_cost_limit_blocks_before_any_request(tmp_path, caplog):
    prompts, a, b, refs, _ = alternating_pairs(5)
    caplog.set_level(logging.INFO, logger="drdo_lib.judge")
    with StubServer() as srv:
        with pytest.raises(CostLimitExceeded):
            judge_pairs(prompts, a, b, refs, template="tldr_reference", model="gpt-4o", base_url=srv.base_url,
                        cache_dir=tmp_path, max_cost=1e-6, **FAST)
        with pytest.raises(CostLimitExceeded, match="no price"):
            judge_pairs(prompts, a, b, refs, template="tldr_reference", model="stub", base_url=srv.base_url,
                        cache_dir=tmp_path, max_cost=100.0, **FAST)
        assert srv.state.requests == []
        before = estimate_judge_cost(prompts, a, b, refs, template="tldr_reference", model="gpt-4o",
                                     base_url=srv.base_url, cache_dir=tmp_path, **LOCAL_KEY)
        msgs = [{"messages": jp.build_messages("tldr_reference", p, x, y, r)}
                for p, x, y, r in zip(prompts, a, b, refs)]
        assert before["n_requests"] == 5 and before["n_cached"] == 0
        assert before["usd"] == pytest.approx(estimate_cost(msgs, "gpt-4o", 256)["usd"], rel=1e-9)  # A/B order keeps the length
        df = judge_pairs(prompts, a, b, refs, template="tldr_reference", model="gpt-4o", base_url=srv.base_url,
                         cache_dir=tmp_path, max_cost=1.0, **FAST)
        assert len(df) == 5 and "estimated" in caplog.text
        after = estimate_judge_cost(prompts, a, b, refs, template="tldr_reference", model="gpt-4o",
                                    base_url=srv.base_url, cache_dir=tmp_path, **LOCAL_KEY)
        assert (after["n_requests"], after["n_cached"], after["usd"]) == (0, 5, 0.0)
        # a fully cached rerun costs nothing, so even max_cost=0 passes
        judge_pairs(prompts, a, b, refs, template="tldr_reference", model="gpt-4o", base_url=srv.base_url,
                    cache_dir=tmp_path, max_cost=0.0, **FAST)
        assert len(srv.state.requests) == 5


def test_alpaca_template_through_server(tmp_path):
    prompts, a, b, _, truth = alternating_pairs(8)
    with StubServer() as srv:
        df = judge_pairs(prompts, a, b, template="alpaca", model="stub", base_url=srv.base_url, cache_dir=tmp_path,
                         **FAST)
        body = srv.state.requests[0]
    assert (body["max_tokens"], body["temperature"], body["logprobs"], body["top_logprobs"]) == (1, 1.0, True, 5)
    assert df["winner"].tolist() == truth
    assert np.allclose(df["p_b"], [0.2 if t == "a" else 0.8 for t in truth])  # log-prob weight, unswapped


def test_duplicate_pairs_are_sent_once(tmp_path):
    prompts, a, b, refs, _ = alternating_pairs(2)
    with StubServer() as srv:
        df = judge_pairs(prompts * 3, a * 3, b * 3, refs * 3, template="tldr_reference", model="stub",
                         base_url=srv.base_url, cache_dir=tmp_path, order="both", **FAST)
        assert len(srv.state.requests) == 4 and len(df) == 6


def test_cache_entries_hold_the_full_request(tmp_path):
    prompts, a, b, refs, _ = alternating_pairs(2)
    with StubServer() as srv:
        judge_pairs(prompts, a, b, refs, template="vs_human", model="stub", base_url=srv.base_url,
                    cache_dir=tmp_path, **FAST)
    files = sorted(tmp_path.rglob("*.json"))
    assert len(files) == 2
    for f in files:
        entry = json.loads(f.read_text())
        req = entry["request"]
        assert f.stem == request_key(req["base_url"], req["model"], req["messages"], req["params"])
        assert JudgeCache(tmp_path).get(f.stem) == entry


def test_a_malformed_cache_entry_is_a_miss(tmp_path, caplog):
    """a cache entry without ``response`` (or without its text) used to raise KeyError; it is now a
    miss, requested again from the server and rewritten."""
    prompts, a, b, refs, truth = alternating_pairs(4)
    with StubServer() as srv:
        first = judge_pairs(prompts, a, b, refs, template="tldr_reference", model="stub", base_url=srv.base_url,
                            cache_dir=tmp_path, **FAST)
        files = sorted(tmp_path.rglob("*.json"))
        assert len(files) == 4 and len(srv.state.requests) == 4
        broken = {files[0]: {"request": json.loads(files[0].read_text())["request"]},  # no response
                  files[1]: {"request": {}, "response": {"top_logprobs": None}},  # no text
                  files[2]: ["not", "an", "entry"]}
        for f, entry in broken.items():
            f.write_text(json.dumps(entry))
        caplog.set_level(logging.WARNING, logger="drdo_lib.judge")
        again = judge_pairs(prompts, a, b, refs, template="tldr_reference", model="stub", base_url=srv.base_url,
                            cache_dir=tmp_path, **FAST)
        assert len(srv.state.requests) == 4 + 3  # exactly the three bad entries were requested again
    assert caplog.text.count("malformed cache entry") == 3
    assert again["winner"].tolist() == first["winner"].tolist() == truth
    assert again["cached"].tolist().count(True) == 1
    for f in broken:  # rewritten as complete entries
        assert isinstance(json.loads(f.read_text())["response"]["text"], str)


def test_openai_key_is_never_sent_to_another_server(tmp_path, monkeypatch):
    """with no ``api_key_env``, OPENAI_API_KEY used to go to any base_url. A non-OpenAI
    base_url now has to name its key variable; naming OPENAI_API_KEY explicitly is the only way to send it there."""
    secret = "sk-openai-NOT-FOR-OTHER-SERVERS"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    monkeypatch.delenv("DRDO_JUDGE_STUB_KEY", raising=False)
    prompts, a, b, refs, _ = alternating_pairs(2)
    fast = {k: v for k, v in FAST.items() if k != "api_key_env"}
    with StubServer() as srv:
        with pytest.raises(ValueError, match="api_key_env"):
            judge_pairs(prompts, a, b, refs, template="tldr_reference", model="stub", base_url=srv.base_url,
                        cache_dir=tmp_path / "none", **fast)
        with pytest.raises(ValueError, match="api_key_env"):
            estimate_judge_cost(prompts, a, b, refs, template="tldr_reference", model="stub", base_url=srv.base_url)
        assert srv.state.requests == []
        # a keyless local server: name a variable that is unset -> a placeholder, never the OpenAI key
        judge_pairs(prompts, a, b, refs, template="tldr_reference", model="stub", base_url=srv.base_url,
                    cache_dir=tmp_path / "unset", api_key_env="DRDO_JUDGE_STUB_KEY", **fast)
        assert set(srv.state.auth_headers) == {"Bearer unused"}
        monkeypatch.setenv("DRDO_JUDGE_STUB_KEY", "sk-local-server")
        judge_pairs(prompts, a, b, refs, template="tldr_reference", model="stub", base_url=srv.base_url,
                    cache_dir=tmp_path / "named", api_key_env="DRDO_JUDGE_STUB_KEY", **fast)
        assert srv.state.auth_headers[-2:] == ["Bearer sk-local-server"] * 2
        assert not any(secret in h for h in srv.state.auth_headers)
        # the explicit opt-in (e.g. a proxy in front of OpenAI) is the one way the OpenAI key goes elsewhere
        judge_pairs(prompts, a, b, refs, template="tldr_reference", model="stub", base_url=srv.base_url,
                    cache_dir=tmp_path / "optin", api_key_env="OPENAI_API_KEY", **fast)
        assert srv.state.auth_headers[-2:] == [f"Bearer {secret}"] * 2
    # api.openai.com itself (no base_url, or its URL) reads OPENAI_API_KEY by default
    assert JudgeSettings(template="alpaca", model="gpt-4o").key_env == "OPENAI_API_KEY"
    assert JudgeSettings(template="alpaca", model="gpt-4o", base_url="https://api.openai.com/v1").key_env == \
        "OPENAI_API_KEY"
    with pytest.raises(ValueError, match="api_key_env"):  # a look-alike host is another server
        JudgeSettings(template="alpaca", model="gpt-4o", base_url="https://api.openai.com.example.net/v1")
    JudgeSettings(template="alpaca", model="gold", base_url="http://x")  # the reward judge sends nothing


def test_gold_judge_with_synthetic_testbed():
    synthetic = pytest.importorskip("drdo_lib.data.synthetic")
    tb = synthetic.SyntheticTestbed(synthetic.SyntheticConfig(seed=0))
    rows = tb.sft_rows(40)
    prompts = [r["prompt"] for r in rows]
    ideal = [tb.ideal_summary(p) for p in prompts]
    noisy = [r["label"] for r in rows]
    df = judge_pairs(prompts, ideal, noisy, noisy, template="tldr_reference", model="gold", cache_dir=None,
                     reward_fn=tb.true_reward)
    diff = tb.true_rewards(prompts, ideal) - tb.true_rewards(prompts, noisy)  # the batch API, independently
    expected = np.where(diff > 0, "a", np.where(diff < 0, "b", "tie"))
    assert df["outcome"].tolist() == expected.tolist()
    assert (df["outcome"] == "a").sum() > 0 and (df["outcome"] == "b").sum() == 0  # the ideal never loses
    assert np.allclose(df["reward_a"] - df["reward_b"], diff)
