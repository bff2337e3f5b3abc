"""Run a generator function over items in worker processes, streaming results back.

A worker that dies (a decoder crash takes the whole process down) fails only the item it was
working on: the pool reports it and starts a fresh worker for the rest. The caller's process,
and so a notebook kernel, never runs the risky code itself. Each worker has its own pipes, so
a worker killed in the middle of a message cannot corrupt what the others send.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any


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
    """One worker: a fresh ``python -m va_widgets.workers`` process talking over two pipes.

    A plain subprocess (not multiprocessing's spawn) so the caller's ``__main__`` is never
    re-imported: a script without an ``if __name__ == "__main__"`` guard works too.
    """

    def __init__(self, fn: Callable[[Any], Iterator[Any]]) -> None:
        jobs_read, jobs_write = os.pipe()
        results_read, results_write = os.pipe()
        env = dict(os.environ)
        # the child sees the caller's import path, as multiprocessing's spawn would arrange
        env["PYTHONPATH"] = os.pathsep.join(p or os.getcwd() for p in sys.path)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "va_widgets.workers", str(jobs_read), str(results_write)],
            pass_fds=(jobs_read, results_write),
            stdin=subprocess.DEVNULL,
            env=env,
        )
        os.close(jobs_read)
        os.close(results_write)
        self.jobs = Connection(jobs_write, readable=False)
        self.results = Connection(results_read, writable=False)
        self.jobs.send(fn)  # pickled by reference: module and name
        self.assigned: list[int] = []  # items sent to this worker, the first in progress

    @property
    def exitcode(self) -> int | None:
        """The process's exit status; negative for a signal (e.g. -11 for SIGSEGV)."""
        try:
            return self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        with contextlib.suppress(OSError):  # the worker may be dead already
            self.jobs.send(None)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
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
    worker's exit code). Each worker holds its next item already, so it goes on decoding while
    the caller consumes; a worker blocks until its last result was received, so a slow
    consumer slows the workers instead of filling memory.
    """
    items = list(items)
    if not items:
        return
    todo = list(range(len(items)))[::-1]
    pool = [_Worker(fn) for _ in range(max(1, min(workers, len(items))))]
    try:
        for worker in pool:
            _top_up(worker, todo, items)
        while any(w.assigned for w in pool):
            busy = {w.results: w for w in pool if w.assigned}
            for ready in wait(list(busy)):
                worker = busy[ready]  # type: ignore[index]
                index = worker.assigned[0]
                try:
                    kind, payload = worker.results.recv()
                except (EOFError, OSError):
                    yield WorkerEvent(index, items[index], "crash", worker.exitcode)
                    todo.extend(reversed(worker.assigned[1:]))  # queued, never started
                    worker.stop()
                    pool[pool.index(worker)] = replacement = _Worker(fn)
                    _top_up(replacement, todo, items)
                    continue
                yield WorkerEvent(index, items[index], kind, payload)
                if kind != "result":
                    worker.assigned.pop(0)
                    _top_up(worker, todo, items)
    finally:
        for worker in pool:
            worker.stop()


def _top_up(worker: _Worker, todo: list[int], items: list[Any]) -> None:
    """Keep each worker two items deep: it starts the next while the caller consumes this one."""
    while todo and len(worker.assigned) < 2:
        index = todo.pop()
        worker.assigned.append(index)
        try:
            worker.jobs.send(items[index])
        except BrokenPipeError:
            # The worker died after its last message (e.g. it exited on the item before).
            # The item stays assigned: reading the results pipe then hits EOF, which reports
            # the crash for the item in progress and queues this one again for a new worker.
            return


if __name__ == "__main__":  # a worker process started by _Worker
    _jobs = Connection(int(sys.argv[1]), writable=False)
    _out = Connection(int(sys.argv[2]), readable=False)
    _worker_main(_jobs.recv(), _jobs, _out)
