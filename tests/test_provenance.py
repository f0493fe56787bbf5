"""Provenance records: what produced a run (versions, commit, device, threads)."""
import json
import subprocess
from importlib import metadata

import torch

from drdo_lib import provenance


def test_record_names_versions_commit_device_and_threads():
    rec = provenance.record()
    assert rec["packages"]["torch"] == metadata.version("torch")
    assert rec["packages"]["transformers"] == metadata.version("transformers")
    assert rec["device"]["torch_threads"] == torch.get_num_threads()
    head = subprocess.run(["git", "-C", str(provenance._REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:
        assert rec["git"]["commit"] == head.stdout.strip()
        assert isinstance(rec["git"]["dirty"], bool)
    json.dumps(rec)  # stored as JSON beside every artefact


def test_thread_count_is_read_at_call_time():
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert provenance.record()["device"]["torch_threads"] == 1
    finally:
        torch.set_num_threads(n)


def test_differences_lists_only_changed_keys():
    a = {"packages": {"torch": "2.13.0", "numpy": "2.4.6"}, "device": {"torch_threads": 2}}
    b = {"packages": {"torch": "2.13.0", "numpy": "2.4.7"}, "device": {"torch_threads": 1}, "python": "3.11"}
    assert provenance.differences(a, b) == {"device.torch_threads": (2, 1), "packages.numpy": ("2.4.6", "2.4.7"),
                                            "python": (None, "3.11")}
    assert provenance.differences(a, a) == {}


def test_stage_records_and_summary_table(tmp_path):
    rec = provenance.record()
    (tmp_path / "sft").mkdir()
    (tmp_path / "sft" / "metrics.json").write_text(json.dumps({"steps": 3, "provenance": rec}))
    (tmp_path / "policy" / "dpo_D_all").mkdir(parents=True)
    other = json.loads(json.dumps(rec))
    other["device"]["torch_threads"] = rec["device"]["torch_threads"] + 1
    (tmp_path / "policy" / "dpo_D_all" / "summary.json").write_text(json.dumps({"provenance": other}))
    (tmp_path / "oracle").mkdir()
    (tmp_path / "oracle" / "metrics.json").write_text(json.dumps({"steps": 1}))  # an older artefact: no record
    rows = provenance.stage_records(tmp_path)
    assert [(r["stage"], r["artefact"]) for r in rows] == [("sft", "sft"), ("policy", "policy/dpo_D_all")]
    table = provenance.summary_table(tmp_path)
    assert "device.torch_threads" in table.columns  # differs between the rows: shown per row
    assert table.attrs["common"]["packages.torch"] == rec["packages"]["torch"]  # same everywhere: shown once


def test_dirty_flag_follows_code_not_executed_notebooks():
    import shutil

    if shutil.which("git") is None or provenance.git_commit()["commit"] is None:
        import pytest
        pytest.skip("not a git checkout")
    changed = subprocess.run(["git", "-C", str(provenance._REPO), "status", "--porcelain", "--untracked-files=no",
                              "--", *provenance.CODE_PATHS], capture_output=True, text=True).stdout
    assert provenance.git_commit()["dirty"] == bool(changed.strip())
    assert "notebooks" not in provenance.CODE_PATHS and "figures" not in provenance.CODE_PATHS
