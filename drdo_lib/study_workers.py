"""Run the study's grid on several worker processes (``study.workers`` > 1): one machine, all its cores.

A tiny model trains no faster on two threads than on one (measured on the 2-core CI machine: a 2-layer GPT-2 step
0.73 s with 1 thread vs 4.3 s with 2 threads while other jobs held the cores), so the study's throughput comes from
running independent pieces of work side by side. The grid's work is a small dependency graph:

* ``sft``: the SFT policy of a (seed, SFT key) (:func:`drdo_lib.study.ensure_sft`); everything of that seed needs it;
* ``gate``: the sanity gate of a seed (needs its SFT); with ``study.gate: require`` every cell of the seed waits for
  it and a failed gate stops the whole study (nothing new is started, :class:`~drdo_lib.gate.GateFailed` raised);
* ``oracle`` / ``ensemble``: the trained Oracle and the e-DPO ensemble of a (noise level, seed) (need its SFT), only
  where a ``trained`` cell needs them;
* ``cell``: one cell (needs its SFT, its Oracle / ensemble, and the gate under ``require``).

The parent process keeps at most ``workers`` tasks in flight and always starts the ready task that unblocks the
most (SFT, then gates and Oracles, then cells in grid order). Every task goes through the same cached builders as
the serial runner, so the results, cache keys and files are identical to ``workers: 1`` and an interrupted
parallel study resumes like a serial one. Workers are spawned processes (safe under Jupyter) with
``threads_per_worker`` torch threads each (default: cores // workers, at least 1).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["Task", "plan", "run_parallel"]

#: Start order among ready tasks: what unblocks most first.
_PRIORITY = {"sft": 0, "gate": 1, "oracle": 2, "ensemble": 2, "cell": 3}


@dataclass
class Task:
    """One unit of work: ``kind`` (a key of :data:`_PRIORITY`), its arguments and the names it waits for."""

    name: str
    kind: str
    args: tuple
    deps: set[str] = field(default_factory=set)
    order: int = 0


def plan(run_, cfg, cells, gate_seeds=()) -> dict[str, Task]:
    """The task graph of ``cells`` (the unfinished ones; see the module docstring), plus the gates of
    ``gate_seeds`` (every seed of the grid: a finished grid still records its gates)."""
    from drdo_lib import study

    tasks: dict[str, Task] = {}

    def add(name, kind, args, deps=()):
        if name not in tasks:
            tasks[name] = Task(name, kind, args, set(deps), order=len(tasks))
        return name

    def add_gate(seed):
        g0 = add(f"sft:{seed}:{study.sft_key(run_, cfg, 0, seed)}", "sft", (0, seed))
        return add(f"gate:{seed}", "gate", (seed,), {g0})

    if cfg.gate != "off":
        for seed in gate_seeds:
            add_gate(seed)
    for cell in cells:
        sft = add(f"sft:{cell.seed}:{study.sft_key(run_, cfg, cell.noise, cell.seed)}", "sft", (cell.noise, cell.seed))
        deps = {sft}
        if cfg.gate != "off":
            gate = add_gate(cell.seed)
            if cfg.gate == "require":
                deps.add(gate)
        if cell.oracle == "trained":
            deps.add(add(f"oracle:{cell.noise}:{cell.seed}", "oracle", (cell.noise, cell.seed), {sft}))
            if cell.method == "edpo":
                deps.add(add(f"ensemble:{cell.noise}:{cell.seed}", "ensemble", (cell.noise, cell.seed), {sft}))
        add(f"cell:{cell.name}", "cell", (cell,), deps)
    return tasks


_WORKER_STATE: dict[str, Any] = {}


def _init_worker(run_, cfg, threads: int) -> None:
    """Per worker process: torch threads, quiet progress bars, logging, the run and study settings."""
    os.environ.setdefault("DRDO_PROGRESS", "0")
    import torch

    from drdo_lib.hf import quiet_batch_progress

    torch.set_num_threads(max(1, int(threads)))
    quiet_batch_progress()
    logging.basicConfig(level=logging.WARNING)
    _WORKER_STATE.update(run=run_, cfg=cfg)


def _execute(kind: str, args: tuple) -> Any:
    """Run one task in a worker (the same cached builders as the serial runner)."""
    from drdo_lib import study

    run_, cfg = _WORKER_STATE["run"], _WORKER_STATE["cfg"]
    if kind == "sft":
        study.ensure_sft(run_, cfg, *args)
        return None
    if kind == "gate":
        return study.ensure_gate(run_, cfg, *args, raise_on_fail=False)
    if kind in ("oracle", "ensemble"):
        study.ensure_oracle(run_, cfg, *args, ensemble=kind == "ensemble", oracle=kind == "oracle")
        return None
    if kind == "cell":
        return study.run_and_store_cell(run_, cfg, args[0])
    raise ValueError(f"unknown task kind {kind!r}")


def _gate_failed(cfg, res) -> bool:
    return cfg.gate == "require" and bool(res) and res.get("status") == "failed"


def run_parallel(run_, cfg, cells, *, workers: int, threads_per_worker: int | None = None, progress: bool = True,
                 executor=None) -> list[dict]:
    """Compute the unfinished ``cells`` on ``workers`` processes; returns the records of every cell in ``cells``
    (finished ones read back). Raises :class:`~drdo_lib.gate.GateFailed` (``study.gate: require``) or the first
    task's error after the tasks in flight have finished (their results are kept). ``executor``: an
    already-open :class:`concurrent.futures.Executor` to use instead of the process pool (tests pass a thread
    pool, which shares this process's state)."""
    import multiprocessing

    from tqdm.auto import tqdm

    from drdo_lib import gate as gate_mod
    from drdo_lib import study
    from drdo_lib.hf import progress_disabled_by_env

    out_dir = study.cells_dir(run_)
    paths = {c.name: out_dir / f"{study.cell_key(run_, cfg, c)}.json" for c in cells}
    todo = [c for c in cells if not paths[c.name].exists()]
    tasks = plan(run_, cfg, todo, gate_seeds=sorted({c.seed for c in cells}))
    threads = threads_per_worker or max(1, (os.cpu_count() or 1) // workers)
    logger.info("study: %d of %d cells to compute, %d tasks on %d workers x %d thread(s)", len(todo), len(cells),
                len(tasks), workers, threads)
    bar = tqdm(total=len(cells), initial=len(cells) - len(todo), desc="study cells",
               disable=not progress or progress_disabled_by_env())
    done: set[str] = set()
    running: dict[Any, Task] = {}
    error: BaseException | None = None
    if executor is None:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(run_, cfg, threads))
    else:
        pool = contextlib.nullcontext(executor)
        _WORKER_STATE.update(run=run_, cfg=cfg)
    with pool as pool:
        while True:
            if error is None:
                started = {t.name for t in running.values()}
                ready = sorted((t for t in tasks.values() if t.name not in done and t.name not in started
                                and t.deps <= done), key=lambda t: (_PRIORITY[t.kind], t.order))
                for t in ready[: workers - len(running)]:
                    running[pool.submit(_execute, t.kind, t.args)] = t
            if not running:
                break
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in finished:
                t = running.pop(fut)
                try:
                    res = fut.result()
                except BaseException as e:  # noqa: BLE001 - re-raised below, after the tasks in flight
                    logger.error("study task %s failed: %s", t.name, e)
                    error = error or e
                    continue
                if t.kind == "gate" and _gate_failed(cfg, res):
                    error = error or gate_mod.GateFailed(study.gate_failure_message(res))
                    continue
                done.add(t.name)
                if t.kind == "cell":
                    bar.set_postfix_str(t.args[0].name)
                    bar.update(1)
    bar.close()
    if error is not None:
        raise error
    missing = [c.name for c in cells if not paths[c.name].exists()]
    if missing:
        raise RuntimeError(f"study: {len(missing)} cell(s) have no result after the parallel run: {missing[:3]}")
    return [json.loads(paths[c.name].read_text()) for c in cells]
