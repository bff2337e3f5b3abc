"""Run a generator function over items in worker processes, streaming results back.

A worker that dies (a decoder crash takes the whole process down) fails only the item it was
working on: the pool reports it and starts a fresh worker for the rest. The caller's process,
and so a notebook kernel, never runs the risky code itself. Each worker has its own pipes, so
a worker killed in the middle of a message cannot corrupt what the others send.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

# Spawned (not forked) workers: the caller may hold torch threads or open files that a fork
# would copy in a broken state.
_CONTEXT = mp.get_context("spawn")


@dataclass
class WorkerEvent:
    """One message from the pool about ``item`` (the ``index``-th input)."""

    index: int
    item: Any
    kind: str  # "result", "done", "error" or "crash"
    payload: Any = None


def _worker_main(fn: Callable[[Any], Iterator[Any]], jobs: Connection, out: Connection) -> None:
    while True:
        try:
            item = jobs.recv()
        except EOFError:  # the caller closed the pipe or died
            return
        if item is None:
            return
        try:
            for value in fn(item):
                out.send(("result", value))
        except Exception as exc:  # reported to the caller with its type and message
            out.send(("error", (exc, traceback.format_exc())))
        else:
            out.send(("done", None))


class _Worker:
    def __init__(self, fn: Callable[[Any], Iterator[Any]]) -> None:
        jobs_read, self.jobs = _CONTEXT.Pipe(duplex=False)
        self.results, out_write = _CONTEXT.Pipe(duplex=False)
        self.process = _CONTEXT.Process(
            target=_worker_main, args=(fn, jobs_read, out_write), daemon=True
        )
        self.process.start()
        jobs_read.close()
        out_write.close()
        self.index: int | None = None

    def stop(self) -> None:
        with contextlib.suppress(OSError):  # the worker may be dead already
            self.jobs.send(None)
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.jobs.close()
        self.results.close()


def run_isolated(
    fn: Callable[[Any], Iterator[Any]],
    items: Iterable[Any],
    *,
    workers: int = 1,
) -> Iterator[WorkerEvent]:
    """Yield :class:`WorkerEvent` s while ``fn(item)`` runs for every item in worker processes.

    ``fn`` must be a module-level generator function (it is pickled by reference). For each
    item the pool yields its ``result`` events in order, then exactly one of ``done``,
    ``error`` (payload: the exception and its traceback text) or ``crash`` (payload: the
    worker's exit code). A worker blocks until its last result was received, so a slow
    consumer slows the workers instead of filling memory.
    """
    items = list(items)
    if not items:
        return
    todo = list(range(len(items)))[::-1]
    pool = [_Worker(fn) for _ in range(max(1, min(workers, len(items))))]
    try:
        for worker in pool:
            _assign(worker, todo, items)
        while any(w.index is not None for w in pool):
            busy = {w.results: w for w in pool if w.index is not None}
            for ready in wait(list(busy)):
                worker = busy[ready]  # type: ignore[index]
                index = worker.index
                assert index is not None
                try:
                    kind, payload = worker.results.recv()
                except (EOFError, OSError):
                    worker.process.join(timeout=5)
                    yield WorkerEvent(index, items[index], "crash", worker.process.exitcode)
                    worker.stop()
                    pool[pool.index(worker)] = replacement = _Worker(fn)
                    _assign(replacement, todo, items)
                    continue
                yield WorkerEvent(index, items[index], kind, payload)
                if kind != "result":
                    _assign(worker, todo, items)
    finally:
        for worker in pool:
            worker.stop()


def _assign(worker: _Worker, todo: list[int], items: list[Any]) -> None:
    worker.index = todo.pop() if todo else None
    if worker.index is not None:
        worker.jobs.send(items[worker.index])
