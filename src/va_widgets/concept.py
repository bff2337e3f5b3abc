"""One concept of an Annotator: its Task and what the widget has served from it.

An Annotator labels one concept or several (``tasks=[...]``); each concept is its own binary
task with its own feed, queue of served clips, model and quality (as in the paper), and keeps
them while the widget shows another concept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from va_widgets.library import ClipLibrary
    from va_widgets.store import LabelStore
    from va_widgets.task import Task


@dataclass(frozen=True)
class Origin:
    """How a clip was served to the widget: recorded with the label given to it."""

    feed: str | None
    propensity: float | None = None  # the probability of a random draw (None: ranked)


def decision_word(kind: str, label: bool | None) -> str:
    """The front end's word for a label event: "positive", "negative" or "skip"."""
    return "skip" if kind == "skip" else "positive" if label else "negative"


@dataclass
class Concept:
    """A task and the widget's serving state for it: the feed chosen, the clips served in this
    epoch, the queue of those not yet decided, and the estimates of its quality so far."""

    task: Task
    feed: str = "auto"
    similar_to: str = ""
    feed_source: str = ""
    queue: list[str] = field(default_factory=list)
    served: set[str] = field(default_factory=set)
    origin: dict[str, Origin] = field(default_factory=dict)
    ap_history: list[tuple[int, float]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.task.name

    def restart(self) -> None:
        """A new feed or query: forget what was served."""
        self.served.clear()
        self.queue = []

    def serve(self, n: int, have: set[str]) -> list[str]:
        """``n`` clips to show next: queued ones the view lacks first, then new ones from the
        feed (never one served before in this epoch)."""
        out = [c for c in self.queue if c not in have][:n]
        missing = n - len(out)
        if missing > 0:
            similar = (self.similar_to or None) if self.feed == "similar" else None
            # the served clips are left out of the draw (not drawn and dropped), so the
            # probabilities the task records for the sampled feeds hold
            fresh = self.task.next(self.feed, missing, similar_to=similar, exclude=self.served)
            feed = self.task.last_feed or self.feed
            # the auto feed's batch mixes feeds: each clip records the one that chose it
            arms = self.task.engine.auto_arms if self.feed == "auto" and fresh else {}
            rows = self.task.library.rows(fresh).tolist() if arms else [None] * len(fresh)
            for c, row in zip(fresh, rows, strict=True):
                self.origin[c] = Origin(arms.get(row, feed) if row is not None else feed)
            self.served.update(fresh)
            self.queue = self.queue + fresh
            self.feed_source = self.task.last_source
            out += fresh
        return out

    def label(self, clip_ids: list[str], label: bool) -> None:
        """Label the clips as ONE action (one transaction, one undo step), each with the feed
        that served it."""
        origins = [self.origin.get(c, Origin(None)) for c in clip_ids]
        self.task.label_many(
            clip_ids,
            label,
            feeds=[o.feed for o in origins],
            propensities=[o.propensity for o in origins],
        )
        self.decided(clip_ids)

    def skip(self, clip_id: str) -> None:
        self.task.skip(clip_id, feed=self.origin.get(clip_id, Origin(None)).feed)
        self.decided([clip_id])

    def decided(self, clip_ids: Iterable[str]) -> None:
        done = set(clip_ids)
        self.queue = [c for c in self.queue if c not in done]

    def undo(self) -> tuple[list[str], dict[str, str]]:
        """Undo this task's last action: the clips it covered (back at the head of the queue)
        and the decision each had."""
        undone = self.task.undo()
        for clip_id in undone:
            self.origin.setdefault(clip_id, Origin("undo"))
        back = set(undone)
        self.queue = [*undone, *(c for c in self.queue if c not in back)]
        was = {e.clip_id: decision_word(e.kind, e.label) for e in self.task.last_undone}
        return undone, was

    def labels_of(self, clip_ids: list[str]) -> dict[str, str]:
        """The current label of each labelled clip among ``clip_ids``: "positive" or "negative"."""
        if not clip_ids:
            return {}
        labels = self.task.engine.labels  # library row -> label
        rows = self.task.library.rows(clip_ids)
        return {
            c: "positive" if labels[int(r)] else "negative"
            for c, r in zip(clip_ids, rows, strict=True)
            if int(r) in labels
        }

    def decisions_of(self, clip_ids: list[str]) -> dict[str, str]:
        """Like :meth:`labels_of`, skips included ("skip")."""
        skipped = self.task.store.skipped(self.name) & set(clip_ids)
        return {**dict.fromkeys(skipped, "skip"), **self.labels_of(clip_ids)}

    def left(self) -> int:
        """Clips the feed can still show: for review, labelled clips not yet shown again in
        this epoch; for every other feed, the clips not yet decided (they rank them all)."""
        counts = self.task.counts()
        labelled = counts["positives"] + counts["negatives"]
        if self.feed == "review":
            return max(0, labelled - len(self.served) + len(self.queue))
        return max(0, len(self.task.library) - labelled - counts["skipped"])


def wide_labels(store: LabelStore, tasks: Iterable[str]) -> pd.DataFrame:
    """The current labels of several tasks as one table for export: one row per clip labelled
    in any of them, one column per task (True, False, or <NA> where that task has no label)."""
    columns: dict[str, pd.Series] = {}
    for name in tasks:
        current = store.current(name).sort_values("event_id")
        current = current.drop_duplicates("clip_id", keep="last")  # several annotators: the latest
        columns[name] = pd.Series(
            current["label"].astype("boolean").to_numpy(),
            index=pd.Index(current["clip_id"], name="clip_id"),
            name=name,
        )
    if not columns:
        return pd.DataFrame(index=pd.Index([], name="clip_id"))
    table = pd.concat(columns, axis=1).astype("boolean")
    table.index.name = "clip_id"
    table.columns.name = "task"
    return table.sort_index()


MAX_CONCEPTS = 9  # the number keys 1-9 switch between them


def resolve_tasks(
    library: ClipLibrary | None,
    task: Task | str | None,
    tasks: Sequence[Task | str] | None,
    *,
    query: str | Mapping[str, str] | None,
    store: Any,
    annotator: str | None,
) -> list[Task]:
    """The widget's Tasks: ``task=`` (one) or ``tasks=[...]`` (several concepts, one store)."""
    if (task is None) == (tasks is None):
        raise TypeError(
            "Annotator() takes task=<name or Task> or tasks=[...] (several concepts), not "
            + ("both" if task is not None else "neither")
        )
    if tasks is None:
        if isinstance(query, Mapping):
            raise TypeError(
                "query must be a string with task=; a {task: query} dict goes with tasks="
            )
        return [resolve_task(library, task, query=query, store=store, annotator=annotator)]  # type: ignore[arg-type]
    if isinstance(tasks, str) or not isinstance(tasks, Sequence) or not tasks:
        raise TypeError(f"tasks must be a non-empty list of task names or Tasks, got {tasks!r}")
    if len(tasks) > MAX_CONCEPTS:
        raise ValueError(
            f"at most {MAX_CONCEPTS} concepts in one widget (keys 1-9), got {len(tasks)}"
        )
    if query is not None and not isinstance(query, Mapping):
        raise TypeError("with tasks=, give the queries as a dict: query={'car': 'a red car'}")
    queries = dict(query or {})
    out: list[Task] = []
    for item in tasks:
        name = item.name if hasattr(item, "name") else item
        shared = store if not out else out[0].store  # one store (one SQLite connection)
        out.append(
            resolve_task(
                library,
                item,
                query=queries.pop(name, None) if isinstance(name, str) else None,
                store=shared if isinstance(item, str) else None,
                annotator=annotator if isinstance(item, str) else None,
            )
        )
    names = [t.name for t in out]
    if len(set(names)) != len(names):
        raise ValueError(f"tasks must have different names, got {names}")
    if queries:
        raise ValueError(f"query names task(s) {sorted(queries)} not in tasks={names}")
    if any(t.library is not out[0].library for t in out):
        raise ValueError("every task of one Annotator must label the same library")
    if any(Path(t.store.path) != Path(out[0].store.path) for t in out):
        raise ValueError("every task of one Annotator must keep its labels in the same store")
    return out


def resolve_task(
    library: ClipLibrary | None,
    task: Task | str,
    *,
    query: str | None,
    store: Any,
    annotator: str | None,
) -> Task:
    from va_widgets.task import Task

    if isinstance(task, Task):
        given: Mapping[str, Any] = {"query": query, "store": store, "annotator": annotator}
        extra = [k for k, v in given.items() if v is not None]
        if library is not None and library is not task.library:
            extra.insert(0, "library")
        if extra:
            raise TypeError(
                f"Annotator(task=<Task>) takes its library and settings from the Task; "
                f"drop {', '.join(extra)} (or pass task as a name)"
            )
        return task
    if isinstance(task, str):
        if library is None:
            raise TypeError(
                f"Annotator(task={task!r}) needs the library: Annotator(lib, task={task!r})"
            )
        return Task(library, task, query=query, store=store, annotator=annotator)
    raise TypeError(f"task must be a Task or a task name (str), got {type(task).__name__}")
