"""Feeds as known sampling distributions, and the auto feed's bandit.

Every sampled feed draws its rows at random from a distribution the engine knows, so that each
label carries its *propensity*: the probability with which its row was chosen at that draw
(given the rows labelled, skipped or already drawn before it). The honest quality estimate
(:mod:`va_widgets.learner.quality`) weights labels by these probabilities.

A feed's distribution mixes two parts (as libact's ``pmin`` and Active Learning by Learning
mix a uniform share into every query):

- with probability ``explore``, a row uniformly at random from the pool;
- otherwise a row from the feed's ranking (top: highest score first, bottom: lowest,
  borderline: most uncertain), the row of rank r (0-based) with weight exp(-r / spread): the
  feed's best ``spread`` rows carry about 63 % of that share, its best 3 x spread 95 %.

The auto feed mixes the arms' distributions with the bandit's arm probabilities, so its
propensities are exact too. "search" and "similar" are chosen by hand: no propensity.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from va_widgets.linalg import top_k

FEEDS: tuple[str, ...] = (
    "search",
    "top",
    "bottom",
    "borderline",
    "random",
    "similar",
    "review",
    "auto",
)
#: the feeds the auto feed mixes ("search" only when there is a zero-shot prior).
ARMS: tuple[str, ...] = ("borderline", "top", "random", "bottom", "search")
#: feeds whose rows are drawn from a known distribution (their labels are a sample).
SAMPLED: tuple[str, ...] = ("top", "bottom", "borderline", "random", "auto")

#: default uniform share of every sampled feed
EXPLORE = 0.2
#: default spread of a feed's ranking (rows)
SPREAD = 10.0
#: default least probability of each arm of the auto feed
ARM_FLOOR = 0.02
#: the auto feed's default leading arm, and how much more estimated-AP gain per batch another
#: arm must show to lead instead (rewards are noisy: without it the lead wanders)
FAVOURITE = "borderline"
FAVOUR = 0.1


@dataclass
class Component:
    """One arm's part of a sampling mixture: ``uniform`` probability spread evenly over the
    pool, and ``probs`` (summing to its share) over the ranked ``rows``."""

    arm: str
    uniform: float
    rows: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    probs: np.ndarray = field(default_factory=lambda: np.empty(0))
    _index: dict[int, int] = field(default_factory=dict, repr=False)

    def ranked_prob(self, row: int) -> float:
        if not self._index and len(self.rows):
            self._index = {int(r): i for i, r in enumerate(self.rows.tolist())}
        i = self._index.get(int(row))
        return 0.0 if i is None else float(self.probs[i])


def ranked(
    arm: str,
    mass: float,
    criterion: np.ndarray | None,
    exclude: np.ndarray,
    explore: float,
    spread: float,
) -> Component:
    """``arm``'s component of probability ``mass``: ``explore`` of it uniform over the pool, the
    rest on the best rows of ``criterion`` (higher first) with weights exp(-rank / spread);
    ``criterion`` None: all of it uniform."""
    if criterion is None:
        return Component(arm, mass)
    k = int(min(max(1, math.ceil(12 * spread)), (~exclude).sum()))
    rows = top_k(criterion, k, exclude=exclude)
    w = np.exp(-np.arange(len(rows)) / spread)
    return Component(arm, mass * explore, rows, mass * (1 - explore) * w / w.sum())


def draw(
    components: Sequence[Component], n: int, exclude: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``n`` distinct rows outside ``exclude`` from the mixture of ``components``.

    Rows are drawn one after another, each from the mixture restricted to the rows not drawn
    yet (sampling without replacement). Returns the rows, the propensity of each (its
    probability at its draw, given the earlier draws of the batch) and the arm whose part
    drew it.
    """
    pool = int((~exclude).sum())
    n = min(int(n), pool)
    rows: list[int] = []
    props: list[float] = []
    arms: list[str] = []
    if n <= 0:
        return np.empty(0, dtype=np.int64), np.empty(0), arms
    uniform = sum(c.uniform for c in components)
    # parts: 0 = the pooled uniform share, then each component's ranked rows (still undrawn)
    live = [c.probs.copy() for c in components]
    chosen: set[int] = set()
    drawn = 0.0
    for _ in range(n):
        masses = np.array([uniform * (pool - len(chosen)) / pool] + [w.sum() for w in live])
        masses = np.maximum(masses, 0.0)
        if masses.sum() <= 1e-15:
            break
        part = int(rng.choice(len(masses), p=masses / masses.sum()))
        if part == 0:
            row = _uniform(exclude, chosen, rng)
            weights = np.array([c.uniform for c in components])
            arm = components[int(rng.choice(len(components), p=weights / weights.sum()))].arm
        else:
            w = live[part - 1]
            row = int(components[part - 1].rows[rng.choice(len(w), p=w / w.sum())])
            arm = components[part - 1].arm
        q = uniform / pool + sum(c.ranked_prob(row) for c in components)
        rows.append(row)
        props.append(min(q / max(1.0 - drawn, 1e-12), 1.0))
        arms.append(arm)
        chosen.add(row)
        drawn += q
        for c, w in zip(components, live, strict=True):
            i = c._index.get(row) if c._index else None
            if i is not None:
                w[i] = 0.0
    return np.array(rows, dtype=np.int64), np.array(props), arms


def _uniform(exclude: np.ndarray, chosen: set[int], rng: np.random.Generator) -> int:
    """One row uniformly among those outside ``exclude`` and ``chosen`` (rejection sampling)."""
    total = exclude.shape[0]
    for _ in range(64):
        r = int(rng.integers(0, total))
        if not exclude[r] and r not in chosen:
            return r
    free = np.flatnonzero(~exclude)
    free = free[~np.isin(free, list(chosen))]
    return int(rng.choice(free))


class Bandit:
    """UCB over the feeds, rewarded by the honest estimate's gain; every arm keeps a floor.

    value(arm) = mean reward + c * sqrt(ln N / pulls), N = all pulls (an arm never credited
    has the mean of all rewards and one virtual pull). The arm of highest value leads the
    batch with probability 1 - (k - 1) * floor; every other arm keeps ``floor``, so the auto
    feed never stops drawing from the random arm (it cannot collapse below it).
    """

    def __init__(self, arms: Sequence[str], c: float, floor: float, favour: float = FAVOUR) -> None:
        self.arms = list(arms)
        self.c = c
        self.floor = floor
        self.favour = favour
        self.rewards: dict[str, list[float]] = {a: [] for a in self.arms}

    def add_arm(self, arm: str) -> None:
        if arm not in self.arms:
            self.arms.append(arm)
            self.rewards[arm] = []

    def _mean(self, arm: str) -> float:
        r = self.rewards[arm]
        if r:
            return float(np.mean(r))
        seen = [x for a in self.arms for x in self.rewards[a]]
        return float(np.mean(seen)) if seen else 0.0

    def ucb(self, arm: str) -> float:
        pulls = {a: max(len(self.rewards[a]), 1) for a in self.arms}
        total = max(sum(pulls.values()), 2)
        bonus = self.favour if arm == FAVOURITE else 0.0
        return self._mean(arm) + bonus + self.c * math.sqrt(math.log(total) / pulls[arm])

    def probabilities(self) -> tuple[dict[str, float], str, str]:
        """Arm probabilities for the next batch, the leading arm and a one-line reason."""
        values = {a: self.ucb(a) for a in self.arms}
        lead = max(self.arms, key=lambda a: values[a])  # ties: the first arm (borderline)
        floor = min(self.floor, 1.0 / len(self.arms))
        probs = {a: floor for a in self.arms}
        probs[lead] = 1.0 - floor * (len(self.arms) - 1)
        r = self.rewards[lead]
        how = (
            f"mean gain {np.mean(r):+.3f} over {len(r)} batches"
            if r
            else "not credited yet (first in line)"
        )
        return (
            probs,
            lead,
            f"{lead}: highest UCB {values[lead]:+.3f} ({how}); "
            f"{probs[lead]:.0%} of draws, each other feed {floor:.0%}",
        )

    def credit(self, arm: str, reward: float) -> None:
        self.rewards[arm].append(float(reward))


def arm_counts(arms: Mapping[int, str]) -> dict[str, int]:
    """How many rows each arm drew."""
    out: dict[str, int] = {}
    for a in arms.values():
        out[a] = out.get(a, 0) + 1
    return out
