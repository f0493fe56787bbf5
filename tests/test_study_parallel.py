"""The study's parallel runner (study.plan / study.run_parallel over drdo_lib.taskgraph): the task graph, the
scheduler's order and its failure behaviour (thread pool + fake builders: fast), and one real tiny grid on two
spawned processes whose cells a serial rerun reads back instead of recomputing."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from drdo_lib import gate, study, taskgraph
from tests.test_study import _cfg, _run


def test_plan_orders_dependencies(tmp_path):
    run = _run(tmp_path)
    cfg = _cfg(seeds=[0, 1], methods=["drdo_head", "dpo", "edpo"], gate="require")
    tasks = study.plan(run, cfg, study.expand_grid(cfg), gate_seeds=[0, 1])
    kinds = sorted({t.kind for t in tasks.values()})
    assert kinds == ["cell", "ensemble", "gate", "oracle", "sft"]
    # both noise levels of a seed share one SFT policy (the temperature does not shape the SFT rows)
    assert sum(t.kind == "sft" for t in tasks.values()) == 2
    cells = [t for t in tasks.values() if t.kind == "cell"]
    assert len(cells) == len(study.expand_grid(cfg))
    for t in cells:
        cell = t.args[0]
        want = {f"gate:{cell.seed}", next(n for n in tasks if n.startswith(f"sft:{cell.seed}:"))}
        if cell.oracle == "trained":
            want.add(f"oracle:{cell.noise}:{cell.seed}")
            if cell.method == "edpo":
                want.add(f"ensemble:{cell.noise}:{cell.seed}")
        assert t.deps == want, cell
    # record: the gate runs but nothing waits for it; off: no gate at all
    rec = study.plan(run, _cfg(seeds=[0], gate="record"), study.expand_grid(_cfg(seeds=[0])), gate_seeds=[0])
    assert "gate:0" in rec and not any("gate:0" in t.deps for t in rec.values())
    off = study.plan(run, _cfg(seeds=[0]), study.expand_grid(_cfg(seeds=[0])), gate_seeds=[0])
    assert not any(t.kind == "gate" for t in off.values())


def _fake_builders(monkeypatch, log, *, gate_status="passed", fail_cell=None):
    lock = threading.Lock()

    def note(x):
        with lock:
            log.append(x)

    monkeypatch.setattr(study, "ensure_sft", lambda r, c, noise, seed, **k: note(("sft", seed)))
    monkeypatch.setattr(study, "ensure_oracle",
                        lambda r, c, noise, seed, ensemble, oracle=True, **k: note(
                            ("ensemble" if ensemble else "oracle", noise, seed)))
    monkeypatch.setattr(study, "ensure_gate", lambda r, c, seed, raise_on_fail=True: note(("gate", seed)) or {
        "status": gate_status, "message": f"gate of seed {seed} {gate_status}"})

    def cell(run_, cfg, c, **k):
        note(("cell", c))
        if fail_cell is not None and c == fail_cell:
            raise RuntimeError("this cell broke")
        return {"metrics": {"gold_greedy": 1.0}, "per_prompt": {}, "p_star_bins": [], "margin_curve": []}

    monkeypatch.setattr(study, "run_cell", cell)


def test_scheduler_runs_each_task_once_after_its_inputs(tmp_path, monkeypatch):
    run = _run(tmp_path)
    cfg = _cfg(seeds=[0, 1], methods=["drdo_head", "dpo", "edpo"], gate="require", workers=2)
    log: list = []
    _fake_builders(monkeypatch, log)
    cells = study.expand_grid(cfg)
    with ThreadPoolExecutor(2) as ex:
        recs = study.run_parallel(run, cfg, cells, progress=False, executor=ex)
    assert [r["cell"] for r in recs] == [dict(vars(c)) for c in cells]
    done = [x for x in log if x[0] == "cell"]
    assert len(done) == len(cells) == len({x[1] for x in done})
    assert sorted(x for x in log if x[0] != "cell") == sorted(set(x for x in log if x[0] != "cell"))  # once each
    for i, x in enumerate(log):
        if x[0] == "cell":
            c = x[1]
            before = log[:i]
            assert ("sft", c.seed) in before and ("gate", c.seed) in before
            if c.oracle == "trained":
                assert ("oracle", c.noise, c.seed) in before
    # a rerun (serial or parallel) computes nothing
    log.clear()
    study.run(run, study.dataclasses.replace(cfg, workers=1), progress=False)
    with ThreadPoolExecutor(2) as ex:
        study.run_parallel(run, cfg, cells, progress=False, executor=ex)
    assert not [x for x in log if x[0] == "cell"]


def test_failed_required_gate_stops_the_parallel_study(tmp_path, monkeypatch):
    run = _run(tmp_path)
    cfg = _cfg(seeds=[0], methods=["dpo"], oracle_kinds=["true_reward"], gate="require", workers=2)
    log: list = []
    _fake_builders(monkeypatch, log, gate_status="failed")
    with ThreadPoolExecutor(2) as ex, pytest.raises(gate.GateFailed, match="gate of seed 0 failed"):
        study.run_parallel(run, cfg, study.expand_grid(cfg), progress=False, executor=ex)
    assert not [x for x in log if x[0] == "cell"]
    assert not list(study.cells_dir(run).glob("*.json"))


def test_a_failing_cell_is_raised_and_the_others_are_kept(tmp_path, monkeypatch):
    run = _run(tmp_path)
    cfg = _cfg(seeds=[0], methods=["dpo", "ipo"], oracle_kinds=["true_reward"])
    cells = study.expand_grid(cfg)
    log: list = []
    _fake_builders(monkeypatch, log, fail_cell=cells[1])
    with ThreadPoolExecutor(1) as ex, pytest.raises(RuntimeError, match="this cell broke"):
        study.run_parallel(run, cfg, cells, progress=False, executor=ex)
    assert len(list(study.cells_dir(run).glob("*.json"))) == 1  # the cell before the failure; none started after


def test_real_tiny_grid_on_two_processes_is_read_back_by_a_serial_rerun(tmp_path, monkeypatch):
    """Two spawned workers train and measure a micro grid (SFT, gate, DPO and DRDO cells); the serial runner then
    finds every cell finished (same keys) and recomputes none."""
    run = _run(tmp_path, gate={"n_prompts": 4, "n_bootstrap": 100})
    cfg = _cfg(seeds=[0, 1], methods=["drdo_logprob", "dpo"], oracle_kinds=["true_reward"], gate="record",
               noise_levels=[{"temperature": 1.0, "tie_fraction": 0.3}], n_prompts=4, n_train_prompts=4,
               max_tie_pairs=8, margin_every=1, reading_oracle="true_reward", student="drdo_logprob",
               baselines=["dpo"], n_bootstrap=200, workers=2, sft_min_reward=-1e9, sft_check_prompts=4)
    df = study.run(run, cfg, progress=False)
    assert len(df) == len(study.expand_grid(cfg)) == 6 and set(df.seed) == {0, 1}
    for s in (0, 1):
        marker = study.sft_run(run, cfg, 0, s).dir / "gate" / "study_key.json"
        assert marker.exists()
        hist = study.sft_history(run, cfg, s)  # the restart rule's real check ran (and accepted the first attempt)
        assert len(hist) == 1 and hist[0]["accepted"] and np.isfinite(hist[0]["train_prompt_reward"])

    def boom(*a, **k):
        raise AssertionError("a finished cell was recomputed")

    monkeypatch.setattr(study, "run_cell", boom)
    serial = study.run(run, study.dataclasses.replace(cfg, workers=1), progress=False)
    assert sorted(serial.key) == sorted(df.key)
    again = study.run(run, cfg, progress=False)  # workers 2 on a finished grid: read back in this process
    assert sorted(again.key) == sorted(df.key)


def test_taskgraph_refuses_unknown_dependencies_and_reports_cycles():
    def never(kind, args):
        raise AssertionError("nothing should run")

    with pytest.raises(ValueError, match="unknown tasks"):
        taskgraph.run_graph({"a": taskgraph.Task("a", "x", (), {"b"})}, never, workers=1,
                            executor=ThreadPoolExecutor(1))
    cyc = {"a": taskgraph.Task("a", "x", (), {"b"}), "b": taskgraph.Task("b", "x", (), {"a"})}
    with ThreadPoolExecutor(1) as ex, pytest.raises(RuntimeError, match="never became ready"):
        taskgraph.run_graph(cyc, never, workers=1, executor=ex)
