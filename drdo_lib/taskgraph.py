"""A small dependency-graph runner on a pool of worker processes (used by the study's ``workers`` setting).

A tiny model trains no faster on two threads than on one (measured on the 2-core CI machine: a 2-layer GPT-2 step
0.73 s with 1 thread vs 4.3 s with 2 threads while other jobs held the cores), so throughput on one machine comes
from running independent pieces of work side by side. :func:`run_graph` keeps at most ``workers`` tasks in flight
and always starts the ready task (all its dependencies done) with the lowest ``(priority, order)``. The workers are
*spawned* processes (safe under Jupyter), set up once by ``initializer``; each task is ``execute(kind, args)`` in a
worker, so ``execute`` and every argument must be picklable (module-level functions, dataclasses).

On the first failure nothing new is started, the tasks in flight finish (their results are kept by whatever they
wrote), and the error is raised. ``on_done(task, result)`` may return an exception to stop the same way (e.g. a
failed sanity gate). A worker process that dies (killed, out of memory) breaks the pool: that is raised as
:class:`WorkerDied` (a user error: one line naming the tasks that were running).
"""
from __future__ import annotations

import contextlib
import logging
from concurrent.futures import FIRST_COMPLETED, Executor, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Callable

from drdo_lib.errors import UserError

logger = logging.getLogger(__name__)

__all__ = ["Task", "run_graph", "WorkerDied"]


class WorkerDied(UserError):
    """A worker process died (killed, out of memory) while running the named tasks; finished work is kept."""


@dataclass
class Task:
    """One unit of work: ``execute(kind, args)`` once every name in ``deps`` is done; ``priority`` then ``order``
    decide among ready tasks (lower first)."""

    name: str
    kind: str
    args: tuple
    deps: set[str] = field(default_factory=set)
    priority: int = 0
    order: int = 0


def run_graph(tasks: dict[str, Task], execute: Callable[[str, tuple], Any], *, workers: int,
              initializer: Callable | None = None, initargs: tuple = (),
              on_done: Callable[[Task, Any], BaseException | None] | None = None,
              executor: Executor | None = None) -> None:
    """Run every task of ``tasks`` (module docstring). ``executor``: an already-open executor to use instead of a
    spawned process pool (tests pass a thread pool; ``initializer`` is then not called)."""
    import multiprocessing

    unknown = sorted({d for t in tasks.values() for d in t.deps} - set(tasks))
    if unknown:
        raise ValueError(f"run_graph: tasks depend on unknown tasks {unknown[:5]}")
    if executor is None:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=initializer, initargs=initargs)
    else:
        pool = contextlib.nullcontext(executor)
    done: set[str] = set()
    running: dict[Any, Task] = {}
    error: BaseException | None = None
    broken: list[str] = []  # tasks running when the pool broke
    with pool as ex:
        while True:
            if error is None:
                started = {t.name for t in running.values()}
                ready = sorted((t for t in tasks.values() if t.name not in done and t.name not in started
                                and t.deps <= done), key=lambda t: (t.priority, t.order))
                for t in ready[: workers - len(running)]:
                    running[ex.submit(execute, t.kind, t.args)] = t
            if not running:
                break
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in finished:
                t = running.pop(fut)
                try:
                    res = fut.result()
                except BrokenProcessPool as e:
                    broken.append(t.name)
                    error = error or e
                    continue
                except BaseException as e:  # noqa: BLE001 - raised below, once the tasks in flight are done
                    logger.error("task %s failed: %s", t.name, e)
                    error = error or e
                    continue
                stop = on_done(t, res) if on_done is not None else None
                if stop is not None:
                    error = error or stop
                    continue
                done.add(t.name)
    if isinstance(error, BrokenProcessPool):
        raise WorkerDied(f"a worker process died (killed, or out of memory?) while running {', '.join(broken)}; "
                         "the work finished before it is kept: run again to resume") from None
    if error is not None:
        raise error
    left = sorted(set(tasks) - done)
    if left:  # a dependency that can never be met (a cycle)
        raise RuntimeError(f"run_graph: {len(left)} task(s) never became ready: {left[:5]}")
