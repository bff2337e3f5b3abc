"""A labelling task: one concept over a clip library, with durable labels and an active learner.

The task glues three parts, each in its own module: the clip library (features, search), the
label store (SQLite event log) and the active-learning engine (classifier, feeds, quality).
Every label event is committed to the store before the call returns; the engine is then
retrained from the store's current labels, so several annotators or processes stay consistent.
"""

from __future__ import annotations

import getpass
import os
import re
import uuid
import warnings
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from va_widgets.checks import check_count
from va_widgets.errors import RetrainError, TextSearchUnavailable, VaWidgetsError
from va_widgets.learner import FEEDS, ActiveLearningEngine, Quality
from va_widgets.store import Decision, Event, LabelStore

if TYPE_CHECKING:
    from va_widgets.library import ClipLibrary


class Task:
    """Label clips of ``library`` for the concept ``name``; the active learner picks what to show.

    Parameters
    ----------
    library : the indexed clips (:class:`~va_widgets.library.ClipLibrary`).
    name : the task (concept) name, e.g. ``"car-chase"``; its labels live under this name.
    query : a text prompt for zero-shot search and cold start (needs an embedder with text);
        ``None`` keeps the query the task was created with.
    store : the SQLite label file (default ``<library cache>/labels.sqlite``).
    annotator : who labels (default: the login name).
    estimator : a scikit-learn classifier (default: balanced logistic regression).
    seed : the seed of the random feed and tie-breaks (default: from the library and the task
        name, so that two tasks on one library do not start with the same random clips).

    Each Task object is one labelling session (:attr:`session`): :meth:`undo` undoes this
    session's own actions, never those of another notebook labelling the same task under
    the same name.

    Notes
    -----
    Labels collected by active learning are not a random sample of the clips, so
    :meth:`quality` estimates the collection's AP from the labels the feeds drew at random
    with known probabilities (see :mod:`va_widgets.learner.quality`); the paper evaluated on a
    held-out random split, which :func:`va_widgets.simulate` reproduces beside that estimate.
    """

    def __init__(
        self,
        library: ClipLibrary,
        name: str,
        *,
        query: str | None = None,
        store: str | os.PathLike[str] | LabelStore | None = None,
        annotator: str | None = None,
        estimator: Any = None,
        seed: int | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"task name must be a non-empty string, got {name!r}")
        if len(library) == 0:
            raise VaWidgetsError(
                f"the library in {str(library.cache)!r} has no clips; index videos into it first "
                "(see lib.errors for files that failed)"
            )
        self.library = library
        self.name = name
        self.annotator = annotator or _login()
        self.session = uuid.uuid4().hex  # this object's writes, for undo
        self.store = (
            store
            if isinstance(store, LabelStore)
            else LabelStore(
                Path(store) if store is not None else Path(library.cache) / "labels.sqlite"
            )
        )
        info = self.store.open_task(
            name,
            library_id=library.id,
            embedder_fingerprint=str(
                library.embedder_spec.get("fingerprint", library.embedder_spec)
            ),
            query=query,
        )
        if seed is None:  # each task its own random clips (two tasks on a library differ)
            seed = zlib.crc32(f"{library.id}/{name}".encode())
        self.engine = ActiveLearningEngine(library.features, None, estimator=estimator, seed=seed)
        self.query: str | None = None
        self.last_feed: str | None = None
        self.last_source = ""
        self.last_undone: list[Event] = []  # the events the last undo() undid
        self._labelled = np.zeros(len(library), dtype=bool)
        self._skipped = np.zeros(len(library), dtype=bool)
        self._orphans = 0
        self._drawn: dict[str, float] = {}  # clip id -> probability of its pending random draw
        text = query if query is not None else info.query
        if text:
            if not library.embedder.supports_text:
                warnings.warn(
                    f"query {text!r} ignored: {library.embedder.name} has no text encoder; "
                    "label a few clips to start instead",
                    stacklevel=2,
                )
            else:
                self.set_query(text)
        current = self.store.current(self.name)
        try:
            self._sync(current)
        except RetrainError as exc:  # never unopenable because of what the store holds
            warnings.warn(str(exc), RuntimeWarning, stacklevel=2)
        self._feed = "auto"
        self._persisted: tuple[str, int] = ("", -1)  # (feed, rewards) last saved
        self._restore(current)

    def __repr__(self) -> str:
        c = self.counts()
        return (
            f"Task({self.name!r}, query={self.query!r}, annotator={self.annotator!r}, "
            f"positives={c['positives']}, negatives={c['negatives']}, skipped={c['skipped']}, "
            f"model_version={self.model_version})"
        )

    # -- labelling ------------------------------------------------------------------------
    def next(
        self,
        feed: str | None = None,
        n: int = 8,
        *,
        similar_to: str | None = None,
        exclude: Iterable[str] = (),
    ) -> list[str]:
        """Clip ids to label next from ``feed`` (see :data:`FEEDS`); never a labelled or skipped
        clip (except in ``"review"``), never one of ``exclude`` (e.g. clips already queued for
        the annotator), never one twice in a batch.

        The sampled feeds (auto, top, bottom, borderline, random) draw at random with known
        probabilities from the clips left; the task keeps each drawn clip's probability and
        :meth:`label` stores it with the label (the honest :meth:`quality` estimate weights by
        it). Leave queued clips out here rather than dropping them from a larger batch: a
        dropped draw would make the recorded probabilities wrong. ``feed`` defaults to
        :attr:`feed`."""
        feed = self._feed if feed is None else feed
        if feed not in FEEDS:
            raise ValueError(f"unknown feed {feed!r}; choose one of {', '.join(FEEDS)}")
        n = check_count("n", n, maximum=100_000)
        skip = [exclude] if isinstance(exclude, str) else list(exclude)
        skip_rows = self.library.rows(skip) if skip else np.empty(0, dtype=np.int64)
        mask = self._labelled | self._skipped
        mask[skip_rows] = True
        row = None
        if feed == "similar":
            row = self._similar_row(similar_to)
        # review returns labelled clips by rank and ignores the mask: ask for enough to drop
        ask = n + len(skip) if feed == "review" else n
        rows = self.engine.next(feed, ask, exclude=mask, similar_to=row)
        props = self.engine.last_propensities
        if feed == "review" and skip:
            keep = ~np.isin(rows, skip_rows)
            rows, props = rows[keep][:n], props[keep][:n]
        ids = self.library.clips["clip_id"].iloc[rows].tolist()  # no 1M-row array
        for c, p in zip(ids, props.tolist(), strict=True):
            if np.isfinite(p):  # drawn at random: label() records the probability of the draw
                self._drawn[c] = float(p)
            else:
                self._drawn.pop(c, None)
        self.last_feed = self.engine.last_feed
        self.last_source = self.engine.last_source
        self._persist()  # an auto batch may have credited the last one
        if row is not None:  # the engine names a row; a user knows the clip
            self.last_source = f"cosine similarity to clip {self.library.clips['clip_id'].iat[row]}"
        return ids

    def label(
        self,
        clip_id: str,
        label: bool,
        *,
        feed: str | None = None,
        propensity: float | None = None,
    ) -> None:
        """Record ``label`` for ``clip_id`` (durable on disk when this returns) and retrain.

        ``propensity``: the probability with which the feed drew this clip at random; None
        (default) takes the one recorded when :meth:`next` drew it, if it did (a clip chosen
        by hand, as in search or similar, has none); see :meth:`LabelStore.add_event`.
        """
        self.label_many([clip_id], label, feed=feed, propensities=[propensity])

    def label_many(
        self,
        clip_ids: list[str],
        label: bool,
        *,
        feed: str | None = None,
        propensities: list[float | None] | None = None,
        feeds: list[str | None] | None = None,
    ) -> None:
        """Give every clip of ``clip_ids`` the same ``label`` as ONE action (one transaction;
        one :meth:`undo` undoes it whole), then retrain. ``feeds``: the feed of each clip,
        where they differ (a page of the auto feed); otherwise ``feed`` for all."""
        if not isinstance(label, (bool, np.bool_)):
            raise TypeError(
                f"label for {clip_ids!r} must be True or False, got {label!r} "
                f"({type(label).__name__}); pass bool(value) if you mean its truth value"
            )
        self._check_ids(clip_ids)
        if propensities is None:
            propensities = [None] * len(clip_ids)
        if feeds is None:
            feeds = [feed] * len(clip_ids)
        for name, values in (("propensities", propensities), ("feeds", feeds)):
            if len(values) != len(clip_ids):
                raise ValueError(
                    f"{name} must have one entry per clip ({len(clip_ids)}), got {len(values)}"
                )
        propensities = [
            self._drawn.get(c) if p is None else p
            for c, p in zip(clip_ids, propensities, strict=True)
        ]
        self._write(
            [
                Decision(c, "label", bool(label), f or self.last_feed, self.model_version, p)
                for c, p, f in zip(clip_ids, propensities, feeds, strict=True)
            ]
        )

    def skip(self, clip_id: str, *, feed: str | None = None) -> None:
        """Record that ``clip_id`` was skipped (not shown again by the feeds)."""
        self._check_ids([clip_id])
        self._write([Decision(clip_id, "skip", None, feed or self.last_feed, self.model_version)])

    def _check_ids(self, clip_ids: list[str]) -> None:
        """Raise before anything is written: not a list of ids, or an unknown id."""
        if isinstance(clip_ids, str) or not all(isinstance(c, str) for c in clip_ids):
            raise TypeError(f"clip ids must be a list of strings, got {clip_ids!r}")
        if not clip_ids:
            raise ValueError("no clip ids given")
        self.library.rows(clip_ids)  # unknown ids fail here

    def _write(self, decisions: list[Decision]) -> None:
        self.store.add_events(self.name, decisions, annotator=self.annotator, session=self.session)
        self._sync()
        self._persist()

    def undo(self, *, annotator: str | None = None) -> list[str]:
        """Undo this session's last action (a label, a skip or a page of labels); return the
        clip ids it covered (empty when there is nothing to undo).

        Actions of other Task objects (another notebook, a restarted kernel) are left alone;
        ``annotator=<name>`` undoes that annotator's last action from any session instead.
        """
        if annotator is None:
            events = self.store.undo(self.name, annotator=self.annotator, session=self.session)
        else:
            events = self.store.undo(self.name, annotator=annotator)
        self._sync()
        self._persist(always=True)  # the version went on although the labels went back
        self.last_undone = events
        return [e.clip_id for e in events]

    def set_query(self, text: str) -> None:
        """Use ``text`` as the zero-shot query (search feed and cold start)."""
        if not self.library.embedder.supports_text:
            raise TextSearchUnavailable(
                f"cannot search for {text!r}: {self.library.embedder.name} has no text encoder; "
                "index with an open_clip embedder for text search"
            )
        self.engine.set_prior(self.library.text_scores(text))
        self.query = text

    def _similar_row(self, clip_id: str | None) -> int:
        if clip_id is None:
            current = self.store.current(self.name)
            positives = current[current["label"]]
            if positives.empty:
                raise ValueError(
                    "the 'similar' feed needs similar_to=<clip id> or a positive label"
                )
            clip_id = positives.sort_values("event_id")["clip_id"].iloc[-1]
        return int(self.library.rows(clip_id)[0])

    def refresh(self) -> None:
        """Reload the labels from the store (other annotators or processes) and retrain."""
        self._sync()

    def _sync(self, current: pd.DataFrame | None = None) -> None:
        """Reload the current labels from the store (or take ``current``, just read from it)
        and retrain the engine on them."""
        if current is None:
            current = self.store.current(self.name)
        rows = self.library.rows(current["clip_id"], strict=False)
        known = rows >= 0
        self._orphans = int((~known).sum())  # labels of clips no longer in the library
        self._labelled[:] = False
        self._labelled[rows[known]] = True
        self._skipped[:] = False
        skipped = self.library.rows(list(self.store.skipped(self.name)), strict=False)
        self._skipped[skipped[skipped >= 0]] = True
        labels = dict(
            zip(rows[known].tolist(), current["label"].to_numpy()[known].tolist(), strict=True)
        )
        # events without a propensity (hand-picked, or written before stores kept it) are
        # known labels, never a sample
        props = current["propensity"].to_numpy(dtype=float)[known]
        drawn = np.isfinite(props)
        propensities = dict(zip(rows[known][drawn].tolist(), props[drawn].tolist(), strict=True))
        for c in set(current["clip_id"]) & set(self._drawn):
            del self._drawn[c]
        try:
            self.engine.update(labels, propensities)
        except Exception as exc:  # the labels are on disk whatever the estimator does
            raise RetrainError(
                f"task {self.name!r}: the {len(labels)} labels are saved in {self.store.path}, "
                f"but the classifier could not be trained on them ({type(exc).__name__}: "
                f"{exc}); the task has no model until a retrain succeeds (check the estimator "
                "passed to Task, or undo the last label)"
            ) from exc

    # -- state ----------------------------------------------------------------------------
    @property
    def feed(self) -> str:
        """The feed chosen for this task (the default of :meth:`next`; the widget's selector).

        Saved in the store with the model version and the auto feed's learned rewards, so a
        restarted kernel continues with them; ``"auto"`` for a new task.
        """
        return self._feed

    @feed.setter
    def feed(self, value: str) -> None:
        if value not in FEEDS:
            raise ValueError(f"unknown feed {value!r}; choose one of {', '.join(FEEDS)}")
        self._feed = value
        self._persist()

    def _persist(self, *, always: bool = False) -> None:
        """Save the serving state when the feed or the auto feed's rewards changed (the model
        version alone is known again from the label events)."""
        key = (self._feed, len(self.engine.reward_log))
        if always or key != self._persisted:
            self.store.save_task_state(self.name, {"feed": self._feed, **self.engine.state()})
            self._persisted = key

    def _restore(self, current: pd.DataFrame) -> None:
        """Continue the task's last session (``current``: its labels in the store): its feed,
        model version and auto-feed rewards."""
        state = self.store.task_state(self.name)
        versions = pd.to_numeric(current["model_version"], errors="coerce")
        if versions.notna().any():  # each label event was followed by a retrain
            state.setdefault("version", 0)
            if type(state["version"]) is int:
                state["version"] = max(state["version"], int(versions.max()) + 1)
        ignored = self.engine.restore(state)
        feed = state.get("feed")
        if feed in FEEDS:
            self._feed = str(feed)
        elif feed is not None:
            ignored.append(f"feed={feed!r:.40}")
        if ignored:
            warnings.warn(
                f"{self.store.path}: task {self.name!r}: the saved {', '.join(ignored)} are not "
                "valid and were left out; the task starts them afresh (labels are not affected)",
                RuntimeWarning,
                stacklevel=3,
            )
        self._persisted = (self._feed, len(self.engine.reward_log))

    @property
    def model_version(self) -> int:
        """Increases whenever the model changes (after label events)."""
        return int(self.engine.version)

    def counts(self) -> dict[str, int]:
        """Positives, negatives and skipped clips of this task (all annotators)."""
        labels = self.engine.labels
        n_pos = sum(labels.values())
        return {
            "positives": int(n_pos),
            "negatives": len(labels) - int(n_pos),
            "skipped": int(self._skipped.sum()),
        }

    def quality(self) -> Quality:
        """The honest estimate of the classifier's AP over all clips with a 90 % interval (and
        precision, recall, prevalence), or the reason there is none yet.

        Only labels drawn at random by a feed (with known probability) correct the model's own
        predictions; hand-picked labels (search, similar) count as known labels of their clips.
        ``advice`` says when the estimate stopped improving and what to try instead.
        """
        return self.engine.quality()

    def learning_curve(self, *, points: int = 12) -> pd.DataFrame:
        """The honest AP estimate after the first n labels, in the order they were given.

        One row per checkpoint (at most ``points``): ``n_labels``, ``n_pos``, ``estimate``,
        ``estimate_low``, ``estimate_high`` (NaN while there was no estimate), ``n_sampled``.
        """
        from va_widgets.learner import learning_curve

        current = self.store.current(self.name)
        rows = self.library.rows(current["clip_id"], strict=False)
        known = rows >= 0
        props = current["propensity"].to_numpy(dtype=float)[known]
        drawn = np.isfinite(props)
        return learning_curve(
            self.library.features,
            rows[known].tolist(),
            current["label"].to_numpy(dtype=bool)[known].tolist(),
            dict(zip(rows[known][drawn].tolist(), props[drawn].tolist(), strict=True)),
            points=points,
        )

    def feed_stats(self) -> pd.DataFrame:
        """Per feed: pulls, mean reward, UCB value, and the auto feed's choice with its reason."""
        return self.engine.feed_stats()

    @property
    def classifier(self) -> Any:
        """The fitted scikit-learn classifier of the current model version."""
        if not self.engine.has_model:
            c = self.counts()
            raise VaWidgetsError(
                f"task {self.name!r} has no classifier yet: it needs at least one positive and one "
                f"negative label (has {c['positives']} and {c['negatives']})"
            )
        return self.engine.estimator

    def scores(self) -> pd.Series:
        """The current model's probability for every clip, indexed by clip id."""
        self.classifier  # noqa: B018 - raises a clear error when there is no model yet
        scores = self.engine.scores()
        return pd.Series(scores, index=self.library.clips["clip_id"], name="score")

    def scores_of(self, clip_ids: list[str]) -> np.ndarray:
        """The current model's probability for each clip (NaN while there is no model)."""
        scores = self.engine.scores()
        if scores is None:
            return np.full(len(clip_ids), np.nan, dtype=np.float32)
        return scores[self.library.rows(clip_ids)]

    def labels(self) -> pd.DataFrame:
        """Current labels: clip_id, label, annotator, feed, time, model_version, video and times."""
        current = self.store.current(self.name)
        clips = self.library.clips[["clip_id", "video", "start_seconds", "end_seconds"]]
        return current.merge(clips, on="clip_id", how="left")

    def export(self, path: str | os.PathLike[str]) -> dict[str, Path]:
        """Write the labels (``.csv``, ``.parquet``) and the classifier (``.skops``).

        ``path`` is a file prefix (``exports/car-chase`` gives ``exports/car-chase.csv`` ...)
        or a folder (an existing one, or a path ending in ``/``), in which the files are named
        after the task. Nothing is written when the task has no classifier yet.
        """
        from va_widgets.classifier import VideoClassifier

        out = export_paths(path, self.name)
        classifier = VideoClassifier.from_task(self)  # raises before any file is written
        labels = self.labels()
        out["csv"].parent.mkdir(parents=True, exist_ok=True)
        labels.to_csv(out["csv"], index=False)
        labels.to_parquet(out["parquet"], index=False)
        classifier.save(out["classifier"])
        return out


def export_paths(path: str | os.PathLike[str], task: str) -> dict[str, Path]:
    """The files :meth:`Task.export` writes for ``path`` (a prefix or a folder)."""
    text = os.fspath(path)
    if not isinstance(text, str) or not text.strip():
        raise ValueError(
            f"export path {text!r} is empty; give a file prefix such as 'exports/car-chase' "
            "or a folder such as 'exports/'"
        )
    base = Path(text).expanduser()
    if text.endswith(("/", os.sep)) or base.is_dir():
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", task).strip("._") or "task"
        base = base / safe
    return {
        "csv": base.with_name(base.name + ".csv"),
        "parquet": base.with_name(base.name + ".parquet"),
        "classifier": base.with_name(base.name + ".skops"),
    }


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (some containers)
        return "annotator"


def simulate(
    source: Task | ClipLibrary | np.ndarray,
    oracle_labels: Any,
    *,
    budget: int = 100,
    policy: Any = "auto",
    query: str | None = None,
    prior_scores: np.ndarray | None = None,
    eval_fraction: float = 0.3,
    checkpoints: tuple[int, ...] = (25, 50, 100, 200),
    batch_size: int = 10,
    seed: int = 0,
) -> pd.DataFrame:
    """Replay a labelling session against known labels (the paper's protocol).

    The clips are split at random (stratified) into a pool, which the simulated annotator
    labels following ``policy`` (a feed, a list of feeds cycled per batch, or ``"auto"``), and a
    held-out ``eval_fraction`` on which the average precision is measured at each checkpoint.

    Parameters
    ----------
    source : a :class:`Task` (its library and query are used), a clip library, or a plain
        (n, d) feature array (any data set, no video library needed).
    oracle_labels : the true label of every clip: a boolean array aligned with
        ``library.clips`` (or the feature rows), or a Series / dict keyed by clip id.
    prior_scores : (n,) zero-shot scores for a feature array (a library computes them from
        ``query``).
    checkpoints : label counts at which to evaluate; the budget (at most the pool's size),
        the session's end, is always one.

    Returns
    -------
    DataFrame, one row per checkpoint: n_labels, n_pos, ap (held-out), collection_ap,
    estimate, estimate_low, estimate_high (the honest estimate and its 90 % interval the user
    would have seen), n_sampled, model_version, feeds.
    """
    from sklearn.model_selection import train_test_split

    from va_widgets.learner import simulate as replay
    from va_widgets.learner.simulate import check_session, require_finite
    from va_widgets.library import ClipLibrary

    check_session(budget, batch_size, policy, checkpoints)
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(
            f"eval_fraction must lie strictly between 0 and 1 (the held-out share); got "
            f"{eval_fraction!r}"
        )
    if isinstance(source, np.ndarray):
        features = _feature_array(source)
        require_finite("features", features)
        y = _label_array(oracle_labels, len(features))
        prior = None if prior_scores is None else np.asarray(prior_scores, dtype=np.float32)
        if prior is not None and prior.shape != (len(features),):
            raise ValueError(
                f"prior_scores must have one entry per feature row ({len(features)}), "
                f"got shape {prior.shape}"
            )
        if prior is not None:
            require_finite("prior_scores", prior)
    elif not isinstance(source, Task | ClipLibrary):
        raise TypeError(
            "source must be a Task, a ClipLibrary or a numpy array of features (n, d); got "
            f"{type(source).__name__}"
        )
    else:
        library = source.library if isinstance(source, Task) else source
        if query is None and isinstance(source, Task):
            query = source.query
        y = _oracle(library, oracle_labels)
        features = np.asarray(library.features)
        prior = library.text_scores(query) if query else None
    if y.sum() < 2 or (~y).sum() < 2:
        raise ValueError(
            f"oracle_labels need at least 2 positives and 2 negatives (have {int(y.sum())} "
            f"and {int((~y).sum())})"
        )
    pool, held_out = train_test_split(
        np.arange(len(y)), test_size=eval_fraction, stratify=y, random_state=seed
    )
    pool, held_out = np.sort(pool), np.sort(held_out)
    return replay(
        features[pool],
        y[pool],
        budget=min(budget, len(pool)),
        policy=policy,
        prior_scores=None if prior is None else prior[pool],
        eval_features=features[held_out],
        eval_labels=y[held_out],
        eval_prior_scores=None if prior is None else prior[held_out],
        checkpoints=checkpoints,
        batch_size=batch_size,
        seed=seed,
    )


def _feature_array(features: np.ndarray) -> np.ndarray:
    if features.ndim != 2 or not np.issubdtype(features.dtype, np.number):
        raise ValueError(
            f"a feature array must be numeric with shape (n, d); got {features.dtype} "
            f"{features.shape}"
        )
    return features


def _label_array(labels: Any, n: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.shape != (n,) or y.dtype != bool:
        raise ValueError(
            f"oracle_labels for a feature array must be a bool array of shape ({n},); got "
            f"{y.dtype} {y.shape} (use labels == target for a class)"
        )
    return y


def _oracle(library: ClipLibrary, labels: Any) -> np.ndarray:
    if isinstance(labels, (pd.Series, dict)):
        series = pd.Series(labels)
        missing = library.clips["clip_id"][~library.clips["clip_id"].isin(series.index)]
        if len(missing):
            raise ValueError(
                f"oracle_labels has no label for {len(missing)} clip(s), e.g. {missing.iloc[0]!r}"
            )
        return series.reindex(library.clips["clip_id"]).to_numpy(dtype=bool)
    y = np.asarray(labels)
    if y.shape != (len(library),):
        raise ValueError(
            f"oracle_labels must have one entry per clip ({len(library)}), got shape {y.shape}"
        )
    return y.astype(bool)
