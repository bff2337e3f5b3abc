"""Latency of one label event: label -> retrain -> rescore every clip -> next batch.

Synthetic 512-d float16 features (normalised, like CLIP), memory-mapped from a temporary file,
at 10k, 100k and 1M clips. Each event adds one label (with the propensity of its draw, as a
Task records it) to a set of ~60-100 and asks the auto feed for the next 10 rows: the scores of
the new model version are computed, the quality estimate that rewards the feed is updated, and
the next rows are ranked.
Targets on the 2-core development machine: <= 50 ms at 100k, <= 1 s at 1M.

    python benchmarks/loop_latency.py            # 10k, 100k, 1M
    python benchmarks/loop_latency.py --quick    # 10k, 100k
    python benchmarks/loop_latency.py --no-copy  # no float32 copy: chunked float16 scoring
    python benchmarks/loop_latency.py --copy-mb 4096  # force the float32 copy at 1M

By default the engine keeps a float32 copy of the matrix in RAM up to 1 GB (500k clips; a
quarter of the available memory if less), so 1M clips are scored from float16 chunk by chunk.
Engine setup includes the float32 copy and the one-pass column mean/std (standardisation).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from va_widgets.learner import ActiveLearningEngine

DIM = 512


def make_features(path: Path, n: int, rng: np.random.Generator) -> np.memmap:
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, DIM))
    centre = rng.standard_normal(DIM).astype(np.float32)
    for start in range(0, n, 65536):
        k = min(65536, n - start)
        x = rng.standard_normal((k, DIM), dtype=np.float32)
        x[: k // 10] += 0.6 * centre  # ~10 % "positives" near one direction
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        mm[start : start + k] = x
    mm.flush()
    del mm
    return np.load(path, mmap_mode="r")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench(n: int, events: int, tmp: Path, copy_mb: float | None) -> None:
    rng = np.random.default_rng(0)
    feats = make_features(tmp / f"f{n}.npy", n, rng)
    truth = np.zeros(n, dtype=bool)
    for start in range(0, n, 65536):
        truth[start : start + max(1, min(65536, n - start) // 10)] = True
    prior = np.asarray(rng.standard_normal(n), dtype=np.float32)
    t0 = time.perf_counter()
    engine = ActiveLearningEngine(feats, prior, float32_copy_mb=copy_mb)
    setup = time.perf_counter() - t0
    labels = {int(r): bool(truth[r]) for r in rng.choice(n, 50, replace=False)}
    labels[0] = True
    propensities: dict[int, float] = {}  # of the rows the auto feed drew, as a Task records
    engine.update(labels)

    def label_next() -> float:
        """The annotator labels the batch's first clip; seconds to retrain and the next batch."""
        rows = engine.next("auto", 10)
        t0 = time.perf_counter()
        labels[int(rows[0])] = bool(truth[rows[0]])
        propensities[int(rows[0])] = float(engine.last_propensities[0])
        engine.update(labels, propensities)  # retrain
        engine.next("auto", 10)  # rescore all n, estimate the quality (reward), rank
        return time.perf_counter() - t0

    for _ in range(10):  # warm up: first scoring, imports; enough drawn labels to estimate
        label_next()
    assert engine.quality().ap is not None  # the timed events include the estimate
    times = [label_next() for _ in range(events)]
    t = np.array(times) * 1e3
    print(
        f"n={n:>9,}  events={events:3d}  p50 {np.percentile(t, 50):7.1f} ms  "
        f"p95 {np.percentile(t, 95):7.1f} ms  peak RSS {peak_rss_mb():7.0f} MB  "
        f"(engine setup {setup:.2f} s, float32 copy: {engine._score_features is not feats})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip 1M")
    ap.add_argument("--events", type=int, default=30)
    ap.add_argument(
        "--no-copy", action="store_true", help="score the float16 memmap chunk by chunk"
    )
    ap.add_argument(
        "--copy-mb", type=float, default=None, help="float32_copy_mb (default: the engine's)"
    )
    args = ap.parse_args()
    sizes = [10_000, 100_000] + ([] if args.quick else [1_000_000])
    with tempfile.TemporaryDirectory() as d:
        for n in sizes:
            events = args.events if n < 1_000_000 else max(10, args.events // 3)
            bench(n, events, Path(d), 0.0 if args.no_copy else args.copy_mb)
    print("(peak RSS is the process maximum so far; memory-mapped pages read count towards it)")


if __name__ == "__main__":
    main()
