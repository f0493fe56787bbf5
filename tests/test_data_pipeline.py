"""DataConfig validation; the data stage (run / load) for the synthetic, local and missing-folder cases; its
artefact is written once, read back without reloading, and rebuilt when a setting changes."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from drdo_lib.config import build_config, load_profile
from drdo_lib.data import DataConfig, build_splits, dropped_counts, load_sources
from drdo_lib.data import pipeline as data_stage
from drdo_lib.run import Run

REPO = Path(__file__).resolve().parent.parent


def _stage(cfg, seed, runs):
    """The data stage of a one-section profile ``mini`` under ``runs``."""
    return data_stage.run(Run.create({"profile": "mini"}, seed=seed, runs_dir=runs), cfg)


@pytest.mark.parametrize("bad", [dict(source="s3"), dict(confidence_mode="median"), dict(edit_distance_unit="x"),
                                 dict(strict="yes"), dict(n_train=-1), dict(n_sft=1.5), dict(synthetic=[1]),
                                 dict(synthetic={"temprature": 1.0}), dict(synthetic={"temperature": -1.0}),
                                 dict(n_train=0)])
def test_data_config_validation(bad):
    with pytest.raises(ValueError):
        DataConfig(**bad)


def test_profiles_build():
    for profile in ("mini", "sample"):
        build_config(DataConfig, load_profile(profile).get("data", {}))
    with pytest.raises(ValueError, match="unknown setting"):
        build_config(DataConfig, {"n_trian": 3})


def test_synthetic_profile_data(tmp_path):
    cfg = DataConfig(n_train=600, n_valid=200, n_sft=100, n_sft_test=20, n_ood=10,
                     synthetic={"temperature": 0.5})
    data = _stage(cfg, 4, tmp_path)
    assert data.testbed is not None and data.testbed.config.seed == 4 and data.testbed.config.temperature == 0.5
    assert data.data_dir == tmp_path / "mini" / "data" / "synthetic"
    assert len(data.preferences) == 800 and dropped_counts(data.preferences) == {}
    assert sorted(set(data.sft["split"])) == ["test", "train"] and len(data.sft) == 120
    assert len(data.ood) == 10
    # same config -> same rows; the seed in `synthetic` wins over the profile seed
    again = _stage(cfg, 4, tmp_path / "b")
    assert again.preferences["id"] == data.preferences["id"]
    other = _stage(DataConfig(n_train=50, n_valid=0, n_sft=5, synthetic={"seed": 9}), 4, tmp_path / "c")
    assert other.testbed.config.seed == 9


@pytest.mark.parametrize("pair_source,floor", [("sft_like", 0.8), ("perturbation", 0.85)])
def test_synthetic_confidence_splits_separate_determinism(tmp_path, pair_source, floor):
    """On the testbed, D_hc_he labels agree with r* more often than D_lc_le labels (the point of the split); the
    floors are each generator's measured level (sft_like pairs are closer in r*, so their labels are noisier)."""
    cfg = DataConfig(n_train=3000, n_valid=0, n_sft=5, n_sft_test=0, n_ood=0, synthetic={"pair_source": pair_source})
    data = _stage(cfg, 0, tmp_path)
    tb = data.testbed
    splits, _ = build_splits(data.preferences)

    def agreement(ds):
        rc = tb.true_rewards(ds["prompt"], ds["chosen"])
        rr = tb.true_rewards(ds["prompt"], ds["rejected"])
        m = rc != rr
        return float(np.mean(rc[m] > rr[m]))

    hc, lc = agreement(splits["D_hc_he"]), agreement(splits["D_lc_le"])
    assert hc > floor and hc > lc + 0.1, (hc, lc)


def test_local_profile_data(monkeypatch):
    d = Path(os.environ.get("DRDO_DATA_DIR") or REPO.parent / "shared" / "data")
    if not d.is_dir():
        pytest.skip(f"real data samples not found at {d} (set DRDO_DATA_DIR)")
    monkeypatch.setenv("DRDO_DATA_DIR", str(d))
    data = load_sources(DataConfig(source="local", data_dir="does/not/matter"), seed=0)
    assert data.testbed is None and data.data_dir == d
    assert len(data.preferences) == 679 and len(data.sft) == 500 and len(data.ood) == 250


def test_missing_local_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("DRDO_DATA_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="DRDO_DATA_DIR"):
        load_sources(DataConfig(source="local", data_dir=str(tmp_path / "nope")), seed=0)


def test_stage_artefact_is_read_back_not_rebuilt(tmp_path, monkeypatch):
    cfg = DataConfig(n_train=300, n_valid=60, n_sft=40, n_sft_test=10, n_ood=5)
    run = Run.create({"profile": "mini", "data": {"n_train": 300, "n_valid": 60, "n_sft": 40, "n_sft_test": 10,
                                                  "n_ood": 5}}, seed=3, runs_dir=tmp_path)
    written = data_stage.run(run)
    assert (tmp_path / "mini" / "data" / "stage" / "manifest.json").exists()
    manifest = json.loads((tmp_path / "mini" / "data" / "stage" / "manifest.json").read_text())
    assert manifest["provenance"]["packages"]["numpy"] and "commit" in manifest["provenance"]["git"]
    # the later stages read the artefact: no source is loaded again
    monkeypatch.setattr(data_stage, "load_sources", lambda *a, **k: pytest.fail("sources reloaded"))
    read = data_stage.load(run)
    assert read.preferences["id"] == written.preferences["id"] and read.sft["id"] == written.sft["id"]
    assert read.testbed is not None and read.testbed.config.seed == 3
    # the splits are the ones build_splits forms, by row
    splits, report = build_splits(written.preferences)
    for name in ("D_all", "D_hc_he", "D_lc_le"):
        assert read.split(name)["id"] == splits[name]["id"]
    assert read.split_report["n_rows"].tolist() == report["n_rows"].tolist()
    train, valid = read.preference_pairs("D_hc_he")
    assert set(train["split"]) == {"train"} and set(valid["split"]) <= {"valid1", "valid2"}
    assert len(train) + len(valid) == len(splits["D_hc_he"])
    # another seed or setting is a different artefact: the stage runs again
    monkeypatch.undo()
    calls = []
    real = data_stage.load_sources
    monkeypatch.setattr(data_stage, "load_sources", lambda *a, **k: calls.append(1) or real(*a, **k))
    data_stage.load(run.with_seed(4), cfg)
    data_stage.load(run.with_seed(4), DataConfig(**{**cfg.__dict__, "n_train": 200}))
    assert len(calls) == 2


def test_split_unavailable_without_confidence_says_why(tmp_path):
    import datasets

    prefs = datasets.Dataset.from_list([{"id": str(i), "prompt": "p", "chosen": "a", "rejected": "b",
                                         "confidence": None, "strength": None, "edit_distance": 0.5,
                                         "split": "train"} for i in range(4)])
    data = data_stage.ProfileData(preferences=prefs, sft=None, ood=None, data_dir=None)
    data_stage._split_indices(data)
    assert len(data.split("D_all")) == 4
    with pytest.raises(ValueError, match="not available.*confidence"):
        data.split("D_hc_he")
