"""build_splits against a hand count, against an independent pandas computation on real data, and its errors."""
from __future__ import annotations

import json
import os
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest

from drdo_lib.data import build_splits, load_tldr_comparisons

REPO = Path(__file__).resolve().parent.parent

# id, raw confidence, edit distance, split. strength = |conf − 5|.
HAND = [
    ("r0", 1, 0.9, "train"),
    ("r1", 9, 0.1, "train"),
    ("r2", 2, 0.8, "valid1"),
    ("r3", 6, 0.2, "valid2"),
    ("r4", 7, 0.5, "train"),
    ("r5", 4, 0.6, "train"),
    ("r6", None, 0.7, "train"),
    ("r7", 8, 0.75, "valid1"),
    ("r8", 3, 0.5, "test"),
]
# By hand: strengths (non-null) 4,4,3,1,2,1,3,2 -> median 2.5; raw 1,9,2,6,7,4,8,3 -> median 5;
# edits .9 .1 .8 .2 .5 .6 .7 .75 .5 -> sorted .1 .2 .5 .5 .6 .7 .75 .8 .9 -> median 0.6.
HAND_EXPECTED = {
    "strength": {"D_hc_he": ["r0", "r2", "r7"], "D_lc_le": ["r3", "r4", "r5", "r8"]},
    "raw": {"D_hc_he": ["r7"], "D_lc_le": ["r5", "r8"]},
}


def hand_rows(description=None):
    info = datasets.DatasetInfo(description=description) if description else None
    return datasets.Dataset.from_dict(
        {"id": [h[0] for h in HAND], "confidence": [h[1] for h in HAND],
         "strength": [None if h[1] is None else float(abs(h[1] - 5)) for h in HAND],
         "edit_distance": [h[2] for h in HAND], "split": [h[3] for h in HAND]}, info=info)


@pytest.mark.parametrize("mode", ["strength", "raw"])
def test_hand_count(mode):
    splits, report = build_splits(hand_rows(), confidence_mode=mode)
    assert set(splits) == {"D_all", "D_hc_he", "D_lc_le"}
    assert splits["D_all"]["id"] == [h[0] for h in HAND]
    for name, ids in HAND_EXPECTED[mode].items():
        assert splits[name]["id"] == ids
    rep = report.set_index("split")
    assert list(rep.index) == ["D_all", "D_hc_he", "D_lc_le"]
    assert rep.loc["D_all", "median_confidence_measure"] == (2.5 if mode == "strength" else 5.0)
    assert rep.loc["D_all", "median_edit_distance"] == pytest.approx(0.6)
    assert (rep.loc["D_all", "n_train"], rep.loc["D_all", "n_valid"], rep.loc["D_all", "n_other"]) == (5, 3, 1)
    assert rep.loc["D_all", "mean_confidence"] == pytest.approx(40 / 8)
    assert rep.loc["D_all", "dropped_null_confidence"] == 0
    assert rep.loc["D_hc_he", "dropped_null_confidence"] == 1 and rep.loc["D_lc_le", "dropped_null_confidence"] == 1
    if mode == "strength":
        hc = rep.loc["D_hc_he"]
        assert (hc.n_train, hc.n_valid, hc.n_other) == (1, 2, 0)
        assert hc.mean_confidence == pytest.approx((1 + 2 + 8) / 3)
        assert hc.mean_strength == pytest.approx((4 + 3 + 3) / 3)
        assert hc.mean_edit_distance == pytest.approx((0.9 + 0.8 + 0.75) / 3)
        lc = rep.loc["D_lc_le"]
        assert (lc.n_train, lc.n_valid, lc.n_other) == (2, 1, 1)
        assert lc.mean_strength == pytest.approx((1 + 2 + 1 + 2) / 4)


def test_loader_drops_reach_the_report(tmp_path):
    rows = hand_rows(description=json.dumps({"drdo_dropped": {"identical_responses": 3, "missing_field": 2}}))
    _, report = build_splits(rows)
    assert (report["dropped_identical_responses"] == 3).all() and (report["dropped_missing_field"] == 2).all()


def test_errors():
    with pytest.raises(ValueError, match="confidence_mode"):
        build_splits(hand_rows(), confidence_mode="median")
    with pytest.raises(ValueError, match="lack column"):
        build_splits(hand_rows().remove_columns("edit_distance"))
    no_conf = datasets.Dataset.from_dict({"confidence": [None, None], "strength": [None, None],
                                          "edit_distance": [0.1, 0.2], "split": ["train", "train"]})
    with pytest.raises(ValueError, match="no row has a confidence"):
        build_splits(no_conf)


def test_real_data_against_pandas():
    d = Path(os.environ.get("DRDO_DATA_DIR") or REPO.parent / "shared" / "data")
    if not d.is_dir():
        pytest.skip(f"real data samples not found at {d} (set DRDO_DATA_DIR)")
    rows = load_tldr_comparisons(d / "summarize_from_feedback_comparisons")
    df = pd.DataFrame({"id": rows["id"], "conf": rows["confidence"], "edit": rows["edit_distance"],
                       "split": rows["split"]})
    df["strength"] = (df.conf - 5).abs()
    for mode, col in (("strength", "strength"), ("raw", "conf")):
        splits, report = build_splits(rows, confidence_mode=mode)
        mc, me = df[col].median(), df.edit.median()
        hc = df[(df[col] > mc) & (df.edit > me)]
        lc = df[(df[col] <= mc) & (df.edit <= me)]
        assert sorted(splits["D_hc_he"]["id"]) == sorted(hc.id)
        assert sorted(splits["D_lc_le"]["id"]) == sorted(lc.id)
        rep = report.set_index("split")
        assert rep.loc["D_hc_he", "mean_confidence"] == pytest.approx(hc.conf.mean())
        assert rep.loc["D_lc_le", "mean_edit_distance"] == pytest.approx(lc.edit.mean())
        assert rep.loc["D_all", "n_valid"] == len(df) and rep.loc["D_all", "n_train"] == 0
    # the confound: in raw mode the "high confidence" split is (almost) all choice-1 pairs
    splits, _ = build_splits(rows, confidence_mode="raw")
    assert np.mean(splits["D_hc_he"]["choice"]) == 1.0 and np.mean(splits["D_lc_le"]["choice"]) < 1.0
