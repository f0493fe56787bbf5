"""Pinned short loss trajectories per method (tests/fixtures/trajectories.json, written by
scripts/record_trajectories.py): a silent change of the losses, the trainer or the model factory shows up here.
Re-recording the fixture is a separate, explained commit."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("record_trajectories", REPO / "scripts" / "record_trajectories.py")
rt = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rt)


def test_trajectories_match_the_pinned_fixture():
    pinned = json.loads(rt.FIXTURE.read_text())
    assert set(pinned["runs"]) == set(rt.RUNS)
    got = rt.compute_trajectories()
    problems = rt.compare(got, pinned["runs"], rtol=pinned["meta"]["rtol"])
    assert not problems, "\n".join(problems[:20])


def test_trajectories_move_and_differ_between_methods():
    pinned = json.loads(rt.FIXTURE.read_text())["runs"]
    for label, rows in pinned.items():
        assert len(rows) == rt.STEPS and rows[0]["loss"] != rows[-1]["loss"], label
    assert len({round(rows[0]["loss"], 6) for rows in pinned.values()}) == len(pinned)


def test_compare_flags_a_changed_value():
    pinned = json.loads(rt.FIXTURE.read_text())["runs"]
    changed = json.loads(json.dumps(pinned))
    changed["dpo"][2]["loss"] *= 1.01
    assert any("dpo step 3 loss" in p for p in rt.compare(changed, pinned))
