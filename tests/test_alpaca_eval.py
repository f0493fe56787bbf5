"""Tests of drdo_lib.alpaca_eval: model_outputs.json format, head-to-head judging (gold judge and the loopback
OpenAI-compatible server), and AlpacaEval's win-rate arithmetic (against hand counts and, where the package is
installed, its own scoring code)."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from openai_stub_server import StubServer  # noqa: E402

from drdo_lib.alpaca_eval import (alpaca_win_rate, head_to_head, head_to_head_table,  # noqa: E402
                                  model_outputs_from_generations, read_model_outputs, to_model_outputs,
                                  write_annotations, write_model_outputs)

FAST = {"backoff_base": 0.01, "backoff_max": 0.05, "timeout": 5.0, "api_key_env": "DRDO_JUDGE_STUB_KEY"}


def test_model_outputs_roundtrip_and_format(tmp_path):
    recs = to_model_outputs(["Write a poem", "Übersetze: cat"], ["Roses…", "Katze"], "drdo-mini",
                            extra={"dataset": ["helpful_base", "koala"]})
    path = write_model_outputs(recs, tmp_path / "drdo" / "model_outputs.json")
    raw = path.read_text(encoding="utf-8")
    assert "Übersetze" in raw and raw.startswith("[\n  {")  # a plain JSON list, UTF-8, indent 2
    data = json.loads(raw)
    assert data == [{"instruction": "Write a poem", "output": "Roses…", "generator": "drdo-mini",
                     "dataset": "helpful_base"},
                    {"instruction": "Übersetze: cat", "output": "Katze", "generator": "drdo-mini",
                     "dataset": "koala"}]
    assert read_model_outputs(path) == data
    # what AlpacaEval itself does with the file: pandas reads it as records with these columns
    df = pd.read_json(path, orient="records")
    assert list(df.columns[:3]) == ["instruction", "output", "generator"]
    assert not list(tmp_path.rglob("*.tmp"))


def test_model_outputs_validation(tmp_path):
    with pytest.raises(ValueError, match="duplicated"):
        to_model_outputs(["a", "a"], ["x", "y"], "g")
    with pytest.raises(ValueError, match="generator"):
        to_model_outputs(["a"], ["x"], "")
    with pytest.raises(ValueError, match="outputs"):
        to_model_outputs(["a", "b"], ["x"], "g")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"instruction": "a", "output": "x"}]))
    with pytest.raises(ValueError, match="generator"):
        read_model_outputs(bad)


def test_model_outputs_from_generations():
    gens = pd.DataFrame([
        {"policy": p, "prompt": f"q{i}", "response": f"{p}-{t}-{s}-{i}", "temperature": t, "seed": s, "sample": 0}
        for p in ("drdo", "dpo") for t in (0.2, 0.7) for s in (0, 1) for i in range(3)])
    recs = model_outputs_from_generations(gens, "DRDO", temperature=0.7, seed=1, policy="drdo")
    assert [r["output"] for r in recs] == ["drdo-0.7-1-0", "drdo-0.7-1-1", "drdo-0.7-1-2"]
    assert {r["generator"] for r in recs} == {"DRDO"}
    with pytest.raises(ValueError, match="no generations"):
        model_outputs_from_generations(gens, "x", temperature=0.9, policy="drdo")


def test_alpaca_win_rate_by_hand():
    prefs = [2, 2, 2, 1, 1.5, 0, float("nan"), 1.8, 1.2]
    m = alpaca_win_rate(prefs)
    x = np.array([1, 1, 1, 0, 0.5, 0.5, 0.8, 0.2])
    assert m["n_total"] == 8 and m["n_discarded"] == 1
    assert m["win_rate"] == pytest.approx(x.mean() * 100)
    assert m["standard_error"] == pytest.approx(x.std(ddof=1) / np.sqrt(8) * 100)
    assert (m["n_wins"], m["n_wins_base"], m["n_draws"]) == (4, 2, 2)
    assert m["discrete_win_rate"] == pytest.approx((4 + 2 / 2) / 8 * 100)  # 1.8 → win, 1.2 → loss


def _upstream_scoring_rules():
    """AlpacaEval's own metrics/helpers.py, loaded from the installed package's file without importing the
    package (which fails on current setuptools); None when the package is absent."""
    spec = importlib.util.find_spec("alpaca_eval")
    if spec is None or not spec.submodule_search_locations:
        return None
    src = (Path(list(spec.submodule_search_locations)[0]) / "metrics" / "helpers.py").read_text()
    src = src.replace("from alpaca_eval.utils import validate_alpacaeval_preference",
                      "def validate_alpacaeval_preference(x, is_allow_nan=True):\n"
                      "    return (1 <= x <= 2) or (is_allow_nan and np.isnan(x))")
    ns: dict = {"__name__": "alpaca_eval_helpers_copy"}
    exec(compile(src, "alpaca_eval/metrics/helpers.py", "exec"), ns)  # noqa: S102 - test-only cross-check
    return ns


def test_alpaca_win_rate_matches_upstream():
    ns = _upstream_scoring_rules()
    if ns is None:
        pytest.skip("alpaca-eval not installed; checked against hand counts instead")
    rng = np.random.default_rng(0)
    prefs = np.concatenate([rng.choice([1.0, 2.0, 1.5], 60), rng.uniform(1, 2, 40), [np.nan] * 3])
    ours = alpaca_win_rate(prefs)
    theirs = ns["AbsoluteScoringRule"]().describe_head2head(pd.Series(prefs))
    for k in ("win_rate", "standard_error", "n_wins", "n_wins_base", "n_draws", "n_total"):
        assert ours[k] == pytest.approx(theirs[k]), k
    valid = prefs[~np.isnan(prefs)]  # upstream's ZeroOne rule cannot take NaN (Int64 cast); compare on valid ones
    assert ours["discrete_win_rate"] == pytest.approx(
        ns["ZeroOneScoringRule"]().describe_head2head(pd.Series(valid))["win_rate"])


def _outputs(n, model_good):
    instr = [f"Instruction {i}" for i in range(n)]
    model = to_model_outputs(instr, [("GOOD" if g else "BAD") + f" model answer {i}" for i, g in
                                     enumerate(model_good)], "drdo")
    base = to_model_outputs(instr, [("BAD" if g else "GOOD") + f" base answer {i}" for i, g in
                                    enumerate(model_good)], "dpo")
    return model, base


def test_head_to_head_gold_judge():
    good = [True, True, True, False]
    model, base = _outputs(4, good)
    base.append({"instruction": "only in baseline", "output": "x", "generator": "dpo"})
    ann = head_to_head(model, base, model="gold", cache_dir=None,
                       reward_fn=lambda x, y: 1.0 if y.startswith("GOOD") else 0.0)
    assert len(ann) == 4 and ann["preference"].tolist() == [2.0, 2.0, 2.0, 1.0]
    assert ann["weighted_preference"].tolist() == [2.0, 2.0, 2.0, 1.0]
    assert (ann["generator_1"] == "dpo").all() and (ann["generator_2"] == "drdo").all()
    assert ann["output_2"].str.contains("model answer").all()
    table = head_to_head_table({("DRDO", "DPO"): ann})
    row = table.iloc[0]
    assert row["win_rate"] == pytest.approx(75.0) and (row["n_wins"], row["n_wins_base"]) == (3, 1)
    assert row["ci_low"] <= 75.0 <= row["ci_high"]


def test_head_to_head_through_server_with_logprobs(tmp_path):
    good = [True, False, True, True, False, True]
    model, base = _outputs(6, good)
    model[4]["output"] += " [garbage]"
    with StubServer() as srv:
        ann = head_to_head(model, base, model="stub", base_url=srv.base_url, cache_dir=tmp_path, seed=1, **FAST)
        assert len(srv.state.requests) == 6
        assert any('"instruction": """Instruction 0""",' in r["messages"][1]["content"] for r in srv.state.requests)
    assert ann.loc[[0, 1, 2, 3, 5], "preference"].tolist() == [2.0, 1.0, 2.0, 2.0, 2.0]
    assert np.isnan(ann.loc[4, "preference"]) and np.isnan(ann.loc[4, "weighted_preference"])
    # the stub puts 0.8 on the better output: weighted preference 1.8 for a model win, 1.2 for a loss
    assert np.allclose(ann.loc[[0, 1, 2, 3, 5], "weighted_preference"], [1.8, 1.2, 1.8, 1.8, 1.8])
    assert ann["swapped"].any() and not ann["swapped"].all()
    table = head_to_head_table({("DRDO", "DPO"): ann})
    assert table.loc[0, "win_rate"] == pytest.approx(np.mean([0.8, 0.2, 0.8, 0.8, 0.8]) * 100)
    assert table.loc[0, "discrete_win_rate"] == pytest.approx(80.0)
    assert table.loc[0, "n_discarded"] == 1 and table.loc[0, "n_total"] == 5
    path = write_annotations(ann, tmp_path / "annotations.json")
    data = json.loads(path.read_text())
    assert data[4]["preference"] is None and data[0]["preference"] == 2.0
    assert set(data[0]) >= {"instruction", "output_1", "generator_1", "output_2", "generator_2", "preference"}


# ------------------------------------------------------------------------------- length-controlled win rate
@pytest.fixture
def lc_package(tmp_path, monkeypatch):
    """The installed alpaca_eval package's GLM module, with its hub file served locally.

    The package's length-control GLM downloads ``df_gamed.csv`` (AlpacaEval's instruction difficulties and gamed
    models' annotations) from the hub, which tests cannot reach; a stand-in with the same columns is served instead
    (one row per AlpacaEval index, difficulty 0, gamed preferences ½). The length-only GLM used for non-AlpacaEval
    prompts reads nothing else from it; everything the package computes runs unchanged."""
    import warnings

    if importlib.util.find_spec("alpaca_eval") is None:
        pytest.skip("alpaca-eval is not installed (pip install -e '.[alpaca]')")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            from alpaca_eval.metrics import glm_winrate
        except ImportError as e:
            pytest.skip(f"alpaca-eval is installed but does not import (needs setuptools<81): {e}")
    gamed = pd.DataFrame({"model": "gamed", "index": np.arange(805), "instruction_difficulty": 0.0,
                          "preference": 0.5, "std_delta_len": 0.0, "not_gamed_baseline": False})
    path = tmp_path / "df_gamed.csv"
    gamed.to_csv(path, index=False)
    calls = []
    monkeypatch.setattr(glm_winrate, "hf_hub_download", lambda **kw: calls.append(kw) or str(path))
    return calls


def _length_annotations(prefs_of, n=40, seed=0):
    """Annotations (AlpacaEval encoding, output_2 = the model) with random lengths; ``prefs_of(len_model,
    len_base)`` gives each preference."""
    rng = np.random.default_rng(seed)
    l_base, l_model = rng.integers(10, 200, n), rng.integers(10, 200, n)
    prefs = np.array([prefs_of(m, b) for m, b in zip(l_model, l_base)], dtype=float)
    return pd.DataFrame({"instruction": [f"Instruction {i}" for i in range(n)],
                         "output_1": ["b" * k for k in l_base], "generator_1": "dpo",
                         "output_2": ["m" * k for k in l_model], "generator_2": "drdo", "annotator": "gold",
                         "preference": prefs, "weighted_preference": prefs})


def test_length_controlled_win_rate_by_the_package_moves_against_length(lc_package):
    """The package's LC win rate on our annotations: below the raw rate when the model wins by being longer, above
    it when it wins by being shorter; swapping model and baseline gives 100 − LC (the length-only GLM is
    symmetric); the package's raw win rate equals ours; the annotations are not modified."""
    from drdo_lib.alpaca_eval import LC_GLM_OTHER, length_controlled_win_rate

    longer = _length_annotations(lambda m, b: 2.0 if m > b else 1.0)
    before = longer.copy()
    lc_long = length_controlled_win_rate(longer)
    pd.testing.assert_frame_equal(longer, before)  # passed as they are, not re-written
    assert lc_package and lc_long["lc_glm"] == LC_GLM_OTHER
    raw = alpaca_win_rate(longer["preference"])["win_rate"]
    assert lc_long["win_rate"] == pytest.approx(raw)  # the package's describe_head2head = ours
    assert lc_long["lc_win_rate"] < raw - 10
    shorter = _length_annotations(lambda m, b: 2.0 if m < b else 1.0)
    lc_short = length_controlled_win_rate(shorter)
    assert lc_short["lc_win_rate"] > alpaca_win_rate(shorter["preference"])["win_rate"] + 10
    swapped = longer.rename(columns={"output_1": "output_2", "output_2": "output_1", "generator_1": "generator_2",
                                     "generator_2": "generator_1"})
    swapped["preference"] = swapped["weighted_preference"] = 3.0 - longer["preference"]
    assert length_controlled_win_rate(swapped)["lc_win_rate"] == pytest.approx(100 - lc_long["lc_win_rate"],
                                                                               abs=0.5)
    # the length-only GLM predicts the same preference for every instruction at Δlength = 0, so the package's
    # "standard error" (the s.e.m. of those predictions) is 0: it is not an uncertainty of the LC win rate
    assert lc_long["lc_standard_error"] == pytest.approx(0.0, abs=1e-9)
    # with AlpacaEval instruction indices the AlpacaEval 2.0 GLM is used
    v1 = length_controlled_win_rate(longer, instruction_index=range(len(longer)))
    assert v1["lc_glm"] == "length_controlled_v1" and 0 <= v1["lc_win_rate"] < raw
    with pytest.raises(ValueError, match="undefined"):  # no length differences: nothing to control for
        length_controlled_win_rate(longer.assign(output_1="x" * 50, output_2="y" * 50))


def test_table3_has_the_length_controlled_column(lc_package, monkeypatch, caplog):
    from alpaca_eval.metrics import glm_winrate

    ann = _length_annotations(lambda m, b: 2.0 if m > b else 1.0)
    t = head_to_head_table({("DRDO", "DPO"): ann, ("DRDO", "e-DPO"): ann})
    assert t["lc_glm"].tolist() == ["length_controlled_minimal"] * 2
    assert (t["lc_win_rate"] < t["win_rate"]).all() and t["lc_win_rate"].notna().all()

    def offline(**kw):
        raise OSError("offline: df_gamed.csv is not in the hub cache")

    monkeypatch.setattr(glm_winrate, "hf_hub_download", offline)
    t = head_to_head_table({("DRDO", "DPO"): ann, ("DRDO", "e-DPO"): ann})
    assert t["lc_win_rate"].isna().all() and t["win_rate"].notna().all()  # the column is there, NaN, and why:
    assert caplog.text.count("without the length-controlled win rate") == 1 and "df_gamed.csv" in caplog.text
    assert "lc_win_rate" not in head_to_head_table({("DRDO", "DPO"): ann}, length_controlled=False)
