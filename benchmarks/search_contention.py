"""Text search while another process keeps every core busy, against the same search quiet.

The library: ``big_library.py``'s valid cache of ``--clips`` clips (ViT-B-32 with random
weights: the real text encoder's architecture and cost). Measured in one run, alternating
rounds so that machine noise falls on both sides alike:

* quiet: ``lib.search(prompt, k=20)`` with nothing else started by this script;
* contended: the same while a competing process runs torch matrix products on as many threads
  as there are cores (what an indexing run or a training job in another notebook does).

Prints p50/p95 of each and the ratio of the p95s. Target: contended p95 ≤ 1.5x quiet p95.

    python benchmarks/search_contention.py [--clips 100000] [--searches 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from big_library import build_library, clustered_unit_vectors
from million import PROMPTS, make_embedder, pct

import va_widgets as va

COMPETITOR = """
import os, torch
torch.set_num_threads(os.cpu_count() or 1)
a = torch.randn(1024, 1024)
print("busy", flush=True)
while True:
    a = torch.tanh(a @ a.T / 32)
"""


def timed_searches(lib: va.ClipLibrary, n: int) -> list[float]:
    """Milliseconds of ``n`` searches, cycling through the prompts."""
    out = []
    for i in range(n):
        prompt = PROMPTS[i % len(PROMPTS)] + f" {i}"  # no cache of the text vector can help
        t0 = time.perf_counter()
        lib.search(prompt, k=20)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def contended(lib: va.ClipLibrary, n: int) -> list[float]:
    """:func:`timed_searches` while a CPU-bound process runs on every core."""
    proc = subprocess.Popen([sys.executable, "-c", COMPETITOR], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "busy"
        time.sleep(1.0)  # let it reach its steady state
        return timed_searches(lib, n)
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=100_000)
    ap.add_argument("--searches", type=int, default=40, help="searches per round and condition")
    ap.add_argument("--rounds", type=int, default=3, help="quiet/contended rounds, alternating")
    ap.add_argument("--workdir", type=Path, help="keep the library here (default: a temp dir)")
    args = ap.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="va_contention_"))
    try:
        embedder = make_embedder()
        cache = build_library(workdir, args.clips, embedder, clustered_unit_vectors(), "vit-b-32")
        lib = va.ClipLibrary.open(cache, embedder=embedder)
        timed_searches(lib, 3)  # warm: the text encoder's first call and the feature pages
        quiet: list[float] = []
        busy: list[float] = []
        for _ in range(args.rounds):
            quiet += timed_searches(lib, args.searches)
            busy += contended(lib, args.searches)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    load = os.getloadavg()[0]
    print(
        f"{len(lib):,} clips, {len(quiet)} searches each, {os.cpu_count()} cores, load {load:.1f}"
    )
    for name, times in (("quiet", quiet), ("contended", busy)):
        print(f"{name:>10}: p50 {pct(times, 50):6.0f} ms  p95 {pct(times, 95):6.0f} ms  "
              f"max {max(times):6.0f} ms")  # fmt: skip
    ratio = pct(busy, 95) / pct(quiet, 95)
    stalls = float(np.mean(np.asarray(busy) > 500)) * 100
    print(f"contended p95 / quiet p95: {ratio:.2f}x (target ≤ 1.5x: "
          f"{'met' if ratio <= 1.5 else 'MISSED'}); contended searches over 0.5 s: {stalls:.0f} %")  # fmt: skip


if __name__ == "__main__":
    main()
