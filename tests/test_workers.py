"""The isolated worker pool: streaming, errors and real crashes of worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from va_widgets.workers import run_isolated
from worker_fns import count_to, misbehave


def test_results_stream_in_order_per_item_and_each_item_ends_once():
    items = [("a", 3), ("b", 0), ("c", 5), ("d", 2)]
    events = list(run_isolated(count_to, items, workers=2))
    for index, (name, n) in enumerate(items):
        mine = [e for e in events if e.index == index]
        assert [e.kind for e in mine] == ["result"] * n + ["done"]
        assert [e.payload for e in mine[:-1]] == [(name, i) for i in range(n)]
        assert all(e.item == (name, n) for e in mine)


def test_a_crashing_worker_fails_only_its_item_and_the_caller_survives():
    items = ["ok1", "segfault", "ok2", "raise", "exit", "ok3", "segfault", "ok4"]
    events = list(run_isolated(misbehave, items, workers=2))
    ends = {e.index: e for e in events if e.kind != "result"}
    assert sorted(ends) == list(range(len(items)))
    assert ends[1].kind == "crash" and ends[1].payload == -11  # SIGSEGV
    assert ends[6].kind == "crash"
    assert ends[4].kind == "crash" and ends[4].payload == 3
    assert ends[3].kind == "error"
    exc, tb = ends[3].payload
    assert isinstance(exc, ValueError) and "bad item 'raise'" in str(exc) and "Traceback" in tb
    for i in (0, 2, 5, 7):
        assert ends[i].kind == "done"
        assert [e.payload for e in events if e.index == i and e.kind == "result"] == [
            f"{items[i]}:1",
            f"{items[i]}:2",
        ]


def test_a_worker_that_died_before_its_next_item_was_sent_is_replaced():
    # The consumer pauses on each end event, so the worker has run its queued "exit" item
    # and died before the pool sends it the next item into a broken pipe.
    items = ["ok1", "exit", "ok2", "ok3"]
    ends = {}
    for event in run_isolated(misbehave, items, workers=1):
        if event.kind != "result":
            ends[event.index] = event
            time.sleep(0.3)
    assert [ends[i].kind for i in range(4)] == ["done", "crash", "done", "done"]
    assert ends[1].payload == 3


def test_works_from_a_script_without_a_main_guard(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(
        "from va_widgets.workers import run_isolated\n"
        "from worker_fns import count_to\n"
        "print(sum(1 for e in run_isolated(count_to, [('a', 2), ('b', 3)], workers=2)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "7"  # 5 results + 2 done events, and the script ran once


def test_no_items_and_stopping_early_leave_no_worker_behind():
    assert list(run_isolated(count_to, [])) == []
    gen = run_isolated(count_to, [("x", 1000)], workers=1)
    first = next(gen)
    assert first.kind == "result"
    assert len(_worker_children()) == 1  # the check below can see a worker
    gen.close()  # the consumer stops early: workers are stopped, not leaked
    assert _worker_children() == []


def _worker_children() -> list[int]:
    """Pids of this process's children that run a va_widgets worker (Linux /proc)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
        if ppid == os.getpid() and b"va_widgets.workers" in cmdline:
            pids.append(int(stat.parent.name))
    return pids
