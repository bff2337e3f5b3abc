"""Sample efficiency of the feeds: held-out AP after 25, 50, 100 and 200 labels.

The protocol of Video Annotator's experiments (arXiv 2402.06560, exp1/exp2), on real labelled
data shipped with scikit-learn: the 1,797 handwritten digits (64-d), ten one-vs-rest tasks,
several seeds. Each seed splits the digits into a pool (55 %, what the simulated annotator
labels from), a held-out evaluation split (40 %) and a small "query" split (5 %). There is no
text on digits, so the zero-shot prior is by-example: cosine similarity to the mean of the
query split's examples of the target digit (a handful of clips outside the pool), standing in
for a CLIP text query. Features are standardised on the pool and L2-normalised (like CLIP).

Methods (the classifier is always the engine's balanced logistic regression):
  baselines   random, zero-shot (rank by the prior), zero-shot+random (50/50)
  fixed feeds top, borderline, bottom (each seeded by the prior while there is no model)
  VA          the paper's uncertainty-led feeds on a fixed schedule
  round robin the auto feed's arms in turn
  auto        UCB bandit over the arms with an honest reward (default: label surprise)
  auto[...]   other rewards with --rewards (e.g. cv_ap, the reward that does not work)

Reported per n: median over tasks of (method - best baseline), the paper's statistic, where
each task's AP is the mean over seeds; and auto vs the best fixed feed and vs round robin.

``--data videos``: the synthetic sample videos (:func:`va_widgets.make_sample_videos`, 16
videos x 48 s, 2 s clips = 384 clips per seed, a new set of videos per seed) indexed with the
offline pixel-statistics embedder (176-d unit vectors, like the real product without CLIP
weights); two tasks, "red ball" and "blue box". Split BY VIDEO: 2 query videos (the
by-example prior: mean of their positive clips), 7 pool videos, 7 evaluation videos.

    python benchmarks/sample_efficiency.py            # digits: 10 tasks x 5 seeds
    python benchmarks/sample_efficiency.py --quick    # digits: 10 tasks x 2 seeds
    python benchmarks/sample_efficiency.py --data videos          # 2 tasks x 5 seeds
    python benchmarks/sample_efficiency.py --C 0.3 --raw          # classifier variants
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from va_widgets.learner import ARMS, default_estimator, simulate

CHECKPOINTS = (25, 50, 100, 200)
VIDEO_CHECKPOINTS = (10, 25, 50, 100)
VIDEO_TASKS = ("red ball", "blue box")
BASELINES = ("random", "zero-shot", "zero-shot+random")
FIXED = ("top", "borderline", "bottom", "VA")
#: VA: the paper's uncertainty-led feeds on a fixed schedule (search until there is a model).
VA_SCHEDULE = ("borderline", "borderline", "top", "borderline", "borderline", "bottom")


class Seeded:
    """A feed policy that starts like the auto feed (search, then random for a negative)."""

    def __init__(self, schedule):
        self.schedule = (schedule,) if isinstance(schedule, str) else tuple(schedule)
        self.step = 0

    def __call__(self, batch: int, engine) -> str:
        if not engine.has_model:
            return engine.cold_start_feed()[0]
        feed = self.schedule[self.step % len(self.schedule)]
        self.step += 1
        return feed


def methods(rewards: list[str]) -> dict[str, tuple[object, dict]]:
    m: dict[str, tuple[object, dict]] = {
        "random": ("random", {}),
        "zero-shot": ("search", {}),
        "zero-shot+random": (("search", "random"), {}),
        "top": (Seeded("top"), {}),
        "borderline": (Seeded("borderline"), {}),
        "bottom": (Seeded("bottom"), {}),
        "VA": (Seeded(VA_SCHEDULE), {}),
        "round robin": (Seeded(ARMS), {}),
        "auto": ("auto", {}),
    }
    for r in rewards:
        if r.startswith("c="):
            m[f"auto[{r}]"] = ("auto", {"ucb_c": float(r[2:])})
        else:
            m[f"auto[{r}]"] = ("auto", {"reward": r})
    return m


def make_task(seed: int):
    x, y = load_digits(return_X_y=True)
    idx = np.arange(len(y))
    pool, rest = train_test_split(idx, train_size=0.55, stratify=y, random_state=seed)
    evl, query = train_test_split(rest, test_size=0.11, stratify=y[rest], random_state=seed)
    mu, sd = x[pool].mean(0), x[pool].std(0) + 1e-6
    z = (x - mu) / sd
    z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    return z.astype(np.float32), y, pool, evl, query


def video_features(seed: int, cache: Path) -> Path:
    """Make and index sample-video set ``seed`` once; an .npz of features, labels, video ids."""
    out = cache / f"videos{seed}.npz"
    if out.exists():
        return out
    import va_widgets as va
    from va_widgets.samples import clip_truth

    folder = cache / f"videos{seed}"
    truth = va.make_sample_videos(folder, n_videos=16, seconds_per_video=48, seed=seed)
    lib = va.index_videos(
        folder, cache / f"library{seed}", embedder=va.PixelStatsEmbedder(), progress=False
    )
    labels = {c: clip_truth(lib.clips, truth, c).to_numpy() for c in VIDEO_TASKS}
    np.savez(
        out,
        x=np.asarray(lib.features, dtype=np.float32),
        video=lib.clips["video"].to_numpy(dtype=str),
        **{c.replace(" ", "_"): v for c, v in labels.items()},
    )
    return out


def make_video_task(seed: int, concept: str, cache: Path):
    d = np.load(cache / f"videos{seed}.npz")
    z, y, video = d["x"], d[concept.replace(" ", "_")], d["video"]
    names = np.unique(video)
    np.random.default_rng(seed).shuffle(names)
    order = pd.Series(video).map({v: i for i, v in enumerate(names)}).to_numpy()
    query, pool = np.flatnonzero(order < 2), np.flatnonzero((order >= 2) & (order < 9))
    evl = np.flatnonzero(order >= 9)
    return z, y, pool, evl, query


def run_one(args) -> list[dict]:
    seed, task, rewards, batch_size, data, est_kw = args
    if data == "videos":
        z, labels, pool, evl, query = make_video_task(seed, task, est_kw["cache"])
        y, target, checkpoints = labels, True, VIDEO_CHECKPOINTS
    else:
        z, y, pool, evl, query = make_task(seed)
        target, checkpoints = task, CHECKPOINTS
    q = z[query][y[query] == target].mean(0)
    q /= np.linalg.norm(q)
    prior, eval_prior = z[pool] @ q, z[evl] @ q
    engine_kw: dict = {"standardize": not est_kw["raw"]}
    if est_kw["C"] is not None:
        engine_kw["estimator"] = LogisticRegression(
            C=est_kw["C"], class_weight="balanced", max_iter=1000
        )
    rows = []
    for name, (policy, kw) in methods(rewards).items():
        df = simulate(
            z[pool],
            y[pool] == target,
            budget=max(checkpoints),
            policy=policy,
            prior_scores=prior,
            eval_features=z[evl],
            eval_labels=y[evl] == target,
            eval_prior_scores=eval_prior,
            checkpoints=checkpoints,
            batch_size=batch_size,
            seed=seed,
            **engine_kw,
            **kw,
        )
        for rec in df.itertuples():
            rows.append(
                {
                    "method": name,
                    "seed": seed,
                    "task": task,
                    "n": rec.n_labels,
                    "ap": 100 * rec.ap,
                    "feeds": rec.feeds,
                }
            )
    return rows


def report(res: pd.DataFrame) -> None:
    n_max = int(res["n"].max())
    per_task = res.groupby(["method", "task", "n"])["ap"].mean().unstack("method")
    best_base = per_task[list(BASELINES)].max(axis=1)
    best_fixed = per_task[list(FIXED)].max(axis=1)
    print("\nMean held-out AP (points) over tasks and seeds")
    print(per_task.groupby("n").mean().T.round(1).to_string())
    autos = [m for m in per_task.columns if m.startswith("auto")]
    print("\nMedian over tasks of the AP gain (points) over the best baseline per task")
    gains = {
        m: (per_task[m] - best_base).groupby("n").median()
        for m in ["VA", "borderline", "round robin", *autos]
    }
    print(pd.DataFrame(gains).T.round(2).to_string())
    print("\nAuto feed vs the best fixed feed per task (top/borderline/bottom/VA) and round robin")
    rows = {}
    for m in autos:
        rows[f"{m} - best fixed (median)"] = (per_task[m] - best_fixed).groupby("n").median()
        rows[f"{m} - best fixed (mean)"] = (per_task[m] - best_fixed).groupby("n").mean()
        rows[f"{m} - round robin (median)"] = (
            (per_task[m] - per_task["round robin"]).groupby("n").median()
        )
    print(pd.DataFrame(rows).T.round(2).to_string())
    at = res[res.method.str.startswith("auto") & (res.n == n_max)]
    print(f"\nLabels per serving feed at n={n_max} (mean over runs)")
    for m, g in at.groupby("method"):
        counts = pd.DataFrame(list(g.feeds)).fillna(0).mean().round(1)
        print(f"  {m}: " + ", ".join(f"{k} {v:g}" for k, v in counts.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 seeds instead of 5")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=5)
    ap.add_argument(
        "--rewards",
        default="cv_ap",
        help="comma-separated extra auto-feed variants: a reward name, or c=<ucb_c> ('' for none)",
    )
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--data", choices=("digits", "videos"), default="digits")
    ap.add_argument(
        "--cache",
        default=str(Path(os.environ.get("TMPDIR", "/tmp")) / "va_sample_efficiency"),
        help="--data videos: where the sample videos and their libraries are kept",
    )
    ap.add_argument(
        "--C", type=float, default=None, help="logistic regression C (default: engine's)"
    )
    ap.add_argument("--raw", action="store_true", help="fit on raw features (standardize=False)")
    args = ap.parse_args()
    seeds = args.seeds or (2 if args.quick else 5)
    rewards = [r for r in args.rewards.split(",") if r]
    est_kw = {"C": args.C, "raw": args.raw, "cache": Path(args.cache)}
    tasks: tuple = tuple(range(10))
    if args.data == "videos":
        tasks = VIDEO_TASKS
        Path(args.cache).mkdir(parents=True, exist_ok=True)
        for s in range(seeds):  # index in this process, before the simulations fan out
            video_features(s, Path(args.cache))
    jobs = [
        (s, t, rewards, args.batch_size, args.data, est_kw) for s in range(seeds) for t in tasks
    ]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as ex:
        res = pd.DataFrame([r for rows in ex.map(run_one, jobs) for r in rows])
    clf = "raw features" if args.raw else "standardised features"
    C = default_estimator().C if args.C is None else args.C
    print(
        f"{args.data}: {len(tasks)} tasks x {seeds} seeds, batch {args.batch_size}, "
        f"logistic regression C={C:g} on {clf}, {time.perf_counter() - t0:.0f} s"
    )
    report(res)


if __name__ == "__main__":
    main()
