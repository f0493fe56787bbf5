"""DataConfig validation and load_profile_data for the synthetic, local and missing-folder cases."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from drdo_lib.config import build_config, load_profile
from drdo_lib.data import DataConfig, build_splits, dropped_counts, load_profile_data

REPO = Path(__file__).resolve().parent.parent


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
    data = load_profile_data(cfg, "mini", seed=4, runs_dir=tmp_path)
    assert data.testbed is not None and data.testbed.config.seed == 4 and data.testbed.config.temperature == 0.5
    assert data.data_dir == tmp_path / "mini" / "data" / "synthetic"
    assert len(data.preferences) == 800 and dropped_counts(data.preferences) == {}
    assert sorted(set(data.sft["split"])) == ["test", "train"] and len(data.sft) == 120
    assert len(data.ood) == 10
    # same config -> same rows; the seed in `synthetic` wins over the profile seed
    again = load_profile_data(cfg, "mini", seed=4, runs_dir=tmp_path / "b")
    assert again.preferences["id"] == data.preferences["id"]
    other = load_profile_data(DataConfig(n_train=50, n_valid=0, n_sft=5, synthetic={"seed": 9}), "mini", seed=4,
                              runs_dir=tmp_path / "c")
    assert other.testbed.config.seed == 9


def test_synthetic_confidence_splits_separate_determinism(tmp_path):
    """On the testbed, D_hc_he labels agree with r* more often than D_lc_le labels (the point of the split)."""
    cfg = DataConfig(n_train=3000, n_valid=0, n_sft=5, n_sft_test=0, n_ood=0)
    data = load_profile_data(cfg, "mini", seed=0, runs_dir=tmp_path)
    tb = data.testbed
    splits, _ = build_splits(data.preferences)

    def agreement(ds):
        rc = tb.true_rewards(ds["prompt"], ds["chosen"])
        rr = tb.true_rewards(ds["prompt"], ds["rejected"])
        m = rc != rr
        return float(np.mean(rc[m] > rr[m]))

    hc, lc = agreement(splits["D_hc_he"]), agreement(splits["D_lc_le"])
    assert hc > 0.85 and hc > lc + 0.1


def test_local_profile_data(monkeypatch):
    d = Path(os.environ.get("DRDO_DATA_DIR") or REPO.parent / "shared" / "data")
    if not d.is_dir():
        pytest.skip(f"real data samples not found at {d} (set DRDO_DATA_DIR)")
    monkeypatch.setenv("DRDO_DATA_DIR", str(d))
    data = load_profile_data(DataConfig(source="local", data_dir="does/not/matter"), "sample")
    assert data.testbed is None and data.data_dir == d
    assert len(data.preferences) == 679 and len(data.sft) == 500 and len(data.ood) == 250


def test_missing_local_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("DRDO_DATA_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="DRDO_DATA_DIR"):
        load_profile_data(DataConfig(source="local", data_dir=str(tmp_path / "nope")), "sample")
