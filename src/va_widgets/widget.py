"""The Annotator: label the clips of a :class:`~va_widgets.task.Task` in a notebook, keyboard first.

Python owns the state (traits below) and every decision; the front end (``js/annotator.js``,
bundled into ``static/``) renders, captures keys and clicks, and keeps a queue of upcoming
clips so that a label never waits on the kernel.

Message protocol (custom messages; every request carries an ``id`` that its reply repeats, and
those about a concept its ``task``, which the reply repeats too):

=================================================  ================================================
front end -> Python                                Python -> front end
=================================================  ================================================
``{kind: "more", id, task, n, have: [clip ids]}``  ``{kind: "clips", id, task, epoch, clips}`` + frames
``{kind: "previews", id, task, clip_ids}``         ``{kind: "clips", id, task, epoch, clips}`` + frames
``{kind: "label", id, task, clip_ids, label}``     ``{kind: "ack", id, task, clip_ids, label, scores}``
``{kind: "skip", id, task, clip_id}``              ``{kind: "ack", id, task, clip_ids, label: null, ...}``
``{kind: "undo", id, task}``                       ``{kind: "undone", id, task, clip_ids, clips}`` + frames
``{kind: "decisions", id, task, clip_ids}``        ``{kind: "decisions", id, task, decisions}``
``{kind: "play", id, clip_id}``                    ``{kind: "video", id, clip_id, mime, frame_times}`` + MP4
``{kind: "query", id, task, text}``                ``{kind: "ack", id}``
``{kind: "similar", id, task, clip_id}``           ``{kind: "ack", id}``
``{kind: "status", id}``                           ``{kind: "ack", id}`` (quality traits refreshed)
any failed request                                 ``{kind: "error", id, request, error}``
=================================================  ================================================

An ``ack`` comes after the store committed the action. ``decisions`` maps each held clip
labelled or skipped in that concept to "positive", "negative" or "skip" (a view that switched
concept shows them on the same page).

Every field of a front-end message is checked (:mod:`va_widgets.messages`) before it is used;
a bad one gets an ``error`` reply naming it. A view counts its label, skip and undo events
until they are acknowledged: with no reply for 5 s, or once its kernel restarted, it says so,
refuses keys that need the kernel and shows which labels it cannot confirm (``js/src/link.js``).

A ``label`` message with several clips (a page, a selection) is ONE action: one store
transaction, one undo step (``undone`` then names every clip of it).

Label events update the counts at once; the quality estimate (cross-validated AP, ~0.1 s) is
refreshed on ``status``, which the front end sends once labelling pauses for 0.4 s, so a fast
annotator never waits for it.

Replies reach every view of the widget (the same ``ann`` shown twice, another browser tab): a
view ignores other views' replies except the ``ack`` of labels or a skip and the ``undone`` of
clips it shows, which it applies, so all views show the same decisions.

``meta`` is ``{clip_id, video, start_seconds, end_seconds, score, feed, n_frames, previous}``
(``previous``: the decision the clip had, "positive"/"negative", e.g. in the review feed, or the
one an ``undone`` reply undid, "positive"/"negative"/"skip"; None when there is none); the frames
(JPEG bytes) of all clips follow each other in the message's buffers. A feed change (the
``feed`` trait) empties the queue and increments ``_epoch``; replies of an older epoch are stale.
"""

from __future__ import annotations

import io
import sys
import traceback
import types
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import pandas as pd
import traitlets as t
from ipywidgets import CallbackDispatcher

from va_widgets import messages as msgs
from va_widgets import theme as theme_module
from va_widgets.concept import Concept, resolve_tasks, wide_labels
from va_widgets.errors import VaWidgetsError
from va_widgets.learner import FEEDS
from va_widgets.messages import MessageError
from va_widgets.previews import encode_clip_mp4, pack_clips
from va_widgets.theme import themed
from va_widgets.words import FEED_TEXT, auto_choice_text, quality_trend

if TYPE_CHECKING:
    import matplotlib.figure

    from va_widgets.library import ClipLibrary
    from va_widgets.task import Task

STATIC = Path(__file__).parent / "static"
BUILD_COMMAND = "cd js && npm ci && npm run build"

#: action -> keys (``KeyboardEvent.key`` values); override any of them with ``shortcuts={...}``
DEFAULT_KEYS: dict[str, list[str]] = {
    "positive": ["a"],
    "negative": ["x"],
    "positive_page": ["A"],
    "negative_page": ["X"],
    "skip": [" "],
    "undo": ["Backspace"],
    "next": ["ArrowRight", "ArrowDown", "j"],
    "prev": ["ArrowLeft", "ArrowUp", "k"],
    "play": ["p"],
    "open": ["f", "Enter"],
    "similar": ["s"],
    "help": ["?"],
}
#: deprecated action names (0.1) -> the action they now name; accepted with a DeprecationWarning
OLD_ACTIONS: dict[str, str] = {
    "accept": "positive",
    "reject": "negative",
    "accept_page": "positive_page",
    "reject_page": "negative_page",
}
_WIDGET_OPTIONS = ("feed", "shortcuts", "batch_size", "prefetch", "target", "layout")
_MAX_BATCH = 64
_MAX_HAVE = 4096  # clip ids a view may hold (pages kept for going back, prefetched clips)


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside va_widgets and the widget libraries, so
    that a warning raised in a trait validator names the user's line (and shows in a notebook)."""
    frame: types.FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] in _LIBRARIES:
        frame, level = frame.f_back, level + 1
    return level


_LIBRARIES = frozenset({"va_widgets", "traitlets", "ipywidgets", "anywidget"})


def _static_file(name: str) -> Path:
    path = STATIC / name
    if not path.is_file():
        raise VaWidgetsError(
            f"the Annotator's front end is not built: {path} is missing. In a source checkout, "
            f"run `{BUILD_COMMAND}` (needs Node.js), or install va_widgets from a wheel"
        )
    return path


class Annotator(anywidget.AnyWidget):
    """Label clips for one task: previews, keyboard shortcuts, live model status.

    Parameters
    ----------
    library : the :class:`~va_widgets.library.ClipLibrary`; omit it when ``task`` is a Task.
    task : a :class:`~va_widgets.task.Task`, or the name of one to open (or create) on ``library``.
    query, store, annotator : passed to :class:`~va_widgets.task.Task` when ``task`` is a name.
    feed, shortcuts, batch_size, prefetch, target : initial values of those traits (``target``:
        a label budget, drawn as a progress bar).

    Examples
    --------
    >>> ann = va.Annotator(lib, task="car-chase", query="a car chase at night")  # doctest: +SKIP
    >>> ann  # doctest: +SKIP
    """

    _esm = STATIC / "annotator.js"
    _css = STATIC / "annotator.css"

    task_name = t.Unicode("", help="The task (concept) shown; one of ``tasks``.").tag(sync=True)
    tasks = t.List(t.Unicode(), help="Every concept of this widget (number keys switch).").tag(
        sync=True
    )
    concept_counts = t.Dict(
        help="Concept -> its labels so far (several concepts only, for the tabs)."
    ).tag(sync=True)
    query = t.Unicode("", help="The zero-shot text query ('' when none).").tag(sync=True)
    text_search = t.Bool(
        False, help="Whether the embedder can embed text (query box enabled)."
    ).tag(sync=True)
    text_search_reason = t.Unicode("", help="Why text search is unavailable ('' when it is).").tag(
        sync=True
    )
    feed = t.Enum(FEEDS, default_value="auto", help="The feed that picks the next clips.").tag(
        sync=True
    )
    similar_to = t.Unicode(
        "", help="The example clip of the 'similar' feed ('' = last positive)."
    ).tag(sync=True)
    feed_source = t.Unicode("", help="What the last batch was ranked by (e.g. 'model v3').").tag(
        sync=True
    )
    auto_choice = t.Unicode("", help="The feed the auto feed would use now.").tag(sync=True)
    auto_reason = t.Unicode("", help="Why the auto feed chose it, in plain words.").tag(sync=True)
    feed_left = t.Int(0, help="Clips the current feed can still show (not yet decided).").tag(
        sync=True
    )
    counts = t.Dict(help="Positives, negatives and skipped clips of the task.").tag(sync=True)
    model_version = t.Int(0, help="Version of the current model (grows after each label).").tag(
        sync=True
    )
    quality = t.Dict(
        help="Estimated AP over all clips with its 90% interval (summary, advice: plain words)."
    ).tag(sync=True)
    quality_trend = t.Unicode(
        "", help="How the estimated quality moved lately, e.g. 'up 0.06 over the last 12 labels'."
    ).tag(sync=True)
    target = t.Int(
        0, min=0, help="A label budget drawn as a progress bar (0: none), e.g. target=200."
    ).tag(sync=True)
    last_saved = t.Unicode("", help="Clip id of the last label event committed to the store.").tag(
        sync=True
    )
    error = t.Unicode("", help="The last error, shown in the widget ('' when none).").tag(sync=True)
    # (not "keys": ipywidgets' Widget.keys is the list of synced trait names)
    shortcuts = t.Dict(
        help="Action -> keys (KeyboardEvent.key values); defaults in DEFAULT_KEYS."
    ).tag(sync=True)
    batch_size = t.Int(8, min=1, max=_MAX_BATCH, help="Clips shown at once (one batch).").tag(
        sync=True
    )
    prefetch = t.Int(
        16, min=1, max=4 * _MAX_BATCH, help="Clips kept loaded ahead of the batch."
    ).tag(sync=True)
    _feeds = t.List(t.Unicode(), list(FEEDS), help="The feeds offered.").tag(sync=True)
    _feed_text = t.Dict(dict(FEED_TEXT), help="Feed -> what it shows, in plain words.").tag(
        sync=True
    )
    _queue = t.List(t.Unicode(), help="Clip ids served and not yet decided, in order.").tag(
        sync=True
    )
    _epoch = t.Int(0, help="Increments when the queue is replaced (feed or query change).").tag(
        sync=True
    )
    theme = t.Unicode(
        "", help="The notebook's theme as a view of this widget saw it: 'light', 'dark' or ''."
    ).tag(sync=True)
    _focus_request = t.Int(
        0, help="Increments each time the widget is displayed (a cell ran)."
    ).tag(sync=True)
    _focus_done = t.Int(0, help="The display a view took the keyboard for (once per display).").tag(
        sync=True
    )

    def __init__(
        self,
        library: ClipLibrary | None = None,
        *,
        task: Task | str | None = None,
        tasks: Sequence[Task | str] | None = None,
        query: str | Mapping[str, str] | None = None,
        store: Any = None,
        annotator: str | None = None,
        **kwargs: Any,
    ) -> None:
        for name in kwargs:
            if name not in _WIDGET_OPTIONS:
                raise TypeError(
                    f"Annotator() got an unexpected keyword argument {name!r}; options are "
                    f"library, task, tasks, query, store, annotator, {', '.join(_WIDGET_OPTIONS)}"
                )
        type(self)._ensure_front_end()
        resolved = resolve_tasks(
            library, task, tasks, query=query, store=store, annotator=annotator
        )
        if "feed" in kwargs:  # a feed given here is chosen for every concept (and saved)
            for t_ in resolved:
                t_.feed = kwargs["feed"]
        # each concept continues with the feed saved with its task (a restarted kernel too)
        self._concepts = {t_.name: Concept(t_, feed=t_.feed) for t_ in resolved}
        self._concept = self._concepts[resolved[0].name]  # the one shown
        kwargs["feed"] = self._concept.feed
        self._switching = False  # a concept switch sets traits that must not restart queues
        self._label_callbacks = CallbackDispatcher()
        embedder = self._task.library.embedder
        kwargs.setdefault("shortcuts", {})
        super().__init__(
            task_name=self._task.name,
            tasks=list(self._concepts),
            query=self._task.query or "",
            text_search=bool(embedder.supports_text),
            text_search_reason=""
            if embedder.supports_text
            else f"text search needs a text encoder; {embedder.name} has none",
            **kwargs,
        )
        self._handlers: dict[str, Callable[[Any, dict[str, Any]], None]] = {
            "more": self._on_more,
            "previews": self._on_previews,
            "label": self._on_label,
            "skip": self._on_skip,
            "undo": self._on_undo,
            "play": self._on_play,
            "query": self._on_query,
            "similar": self._on_similar,
            "status": self._on_status,
            "decisions": self._on_decisions,
        }
        self.on_msg(self._on_msg)
        self._refresh_status()

    @classmethod
    def _ensure_front_end(cls) -> None:
        """Raise a clear error when the bundle is missing; pick it up if built after import."""
        for key, name in (("_esm", "annotator.js"), ("_css", "annotator.css")):
            path = _static_file(name)
            if isinstance(getattr(cls, key), Path):  # missing at import, built since
                setattr(cls, key, path.read_text(encoding="utf-8"))

    # -- user-facing API ------------------------------------------------------------------
    @property
    def _task(self) -> Task:
        return self._concept.task

    @property
    def task(self) -> Task:
        """The :class:`~va_widgets.task.Task` shown now (``task_name``)."""
        return self._concept.task

    @property
    def concepts(self) -> dict[str, Task]:
        """Every concept of this widget: name -> its :class:`~va_widgets.task.Task`."""
        return {name: c.task for name, c in self._concepts.items()}

    def labels_wide(self) -> pd.DataFrame:
        """The labels of every concept as one table: a row per clip, a column per concept
        (True, False, or <NA> where that concept has no label), for export."""
        return wide_labels(self._task.store, self._concepts)

    def on_label(self, callback: Callable[[str, bool | None], Any], remove: bool = False) -> None:
        """Call ``callback(clip_id, label)`` after each label saved from the widget (``label``
        is None for a skip); ``remove=True`` unregisters it. Errors it raises show in the widget."""
        self._label_callbacks.register_callback(callback, remove=remove)

    def plot(self) -> matplotlib.figure.Figure:
        """Learning curve (cross-validated AP vs labels), score distributions and feed usage,
        in the notebook's theme (dark under JupyterLab Dark)."""
        from va_widgets.plots import plot_task

        with themed():
            return plot_task(self._task)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        # Displayed by a cell that ran: its first view takes the keyboard (see js/annotator.js),
        # so that a key pressed right after Shift+Enter labels instead of editing the notebook.
        self._focus_request += 1
        return super()._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        if len(self._concepts) > 1:
            return f"Annotator(tasks={list(self._concepts)}, shown={self.task_name!r}, feed={self.feed!r})"
        return f"Annotator(task={self._task!r}, feed={self.feed!r})"

    # -- traits ---------------------------------------------------------------------------
    @t.validate("shortcuts")
    def _validate_shortcuts(self, proposal: Any) -> dict[str, list[str]]:
        value = dict(proposal["value"])
        for old, new in OLD_ACTIONS.items():
            if old not in value:
                continue
            warnings.warn(
                f"shortcuts[{old!r}] is deprecated; use shortcuts[{new!r}]",
                DeprecationWarning,
                stacklevel=_caller_level(),
            )
            if new in value:
                raise t.TraitError(
                    f"shortcuts has both {old!r} (deprecated) and {new!r}; keep {new!r} only"
                )
            value[new] = value.pop(old)
        unknown = sorted(set(value) - set(DEFAULT_KEYS))
        if unknown:
            raise t.TraitError(
                f"unknown key action(s) {unknown}; actions are {', '.join(DEFAULT_KEYS)}"
            )
        merged = dict(DEFAULT_KEYS)
        for action, keys in value.items():
            keys = [keys] if isinstance(keys, str) else list(keys)
            if not keys or not all(isinstance(k, str) and k for k in keys):
                raise t.TraitError(
                    f"shortcuts[{action!r}] must be a key name or a list of them "
                    f"(KeyboardEvent.key values such as 'a', ' ', 'ArrowLeft'); got {value[action]!r}"
                )
            merged[action] = keys
        return merged

    @t.validate("query")
    def _validate_query(self, proposal: Any) -> str:
        text = str(proposal["value"]).strip()
        if text and text != (self._task.query or ""):
            self._task.set_query(text)  # raises TextSearchUnavailable without a text encoder
        return text

    @t.observe("query")
    def _query_changed(self, change: Any) -> None:
        if self.feed in ("search", "auto") and not self._switching:
            self._restart_queue()

    @t.observe("theme")
    def _theme_changed(self, change: Any) -> None:
        theme_module.report(str(change["new"]))

    @t.observe("feed", "similar_to")
    def _feed_changed(self, change: Any) -> None:
        if self._switching:
            return
        self._concept.feed, self._concept.similar_to = self.feed, self.similar_to
        self._concept.task.feed = self.feed  # saved: a restarted kernel continues with it
        self._restart_queue()

    def _restart_queue(self) -> None:
        self._concept.restart()
        with self.hold_sync():
            self._queue = []
            self._epoch += 1
            self._refresh_counts()

    @t.validate("task_name")
    def _validate_task_name(self, proposal: Any) -> str:
        name = proposal["value"]
        if name not in getattr(self, "_concepts", {name: None}):
            raise t.TraitError(f"no concept {name!r} in this widget; it has {list(self._concepts)}")
        return str(name)

    @t.observe("task_name")
    def _task_name_changed(self, change: Any) -> None:
        """Show another concept: its feed, queue, counts and quality (the view keeps its page)."""
        concept = self._concepts[change["new"]]
        if concept is self._concept:
            return
        self._concept = concept
        self._switching = True
        try:
            with self.hold_sync():
                self.feed, self.similar_to = concept.feed, concept.similar_to
                self.query = concept.task.query or ""
                self._queue = list(concept.queue)
                self.feed_source = concept.feed_source
                self._refresh_status()
        finally:
            self._switching = False

    # -- messages -------------------------------------------------------------------------
    def _on_msg(self, _widget: Any, content: Any, buffers: list[Any]) -> None:
        if not isinstance(content, dict):
            content = {"kind": None, "content": content}
        kind, rid = content.get("kind"), content.get("id")
        if not (rid is None or (isinstance(rid, str) and len(rid) <= 100)):
            rid = None  # not echoed back: a reply must not carry what the view did not send
        try:
            handler = self._handlers.get(kind) if isinstance(kind, str) else None
            if handler is None:
                raise MessageError(
                    f"unknown message kind {kind!r}; known: {', '.join(self._handlers)}"
                )
            if rid is None:
                raise MessageError(f"a {kind!r} message needs an id (a string of ≤ 100 chars)")
            handler(rid, content)
        except Exception as exc:  # reported to the front end, never swallowed
            message = f"{type(exc).__name__}: {exc}"
            self.error = message
            self.send({"kind": "error", "id": rid, "request": kind, "error": message})

    def _reply(self, rid: Any, content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        self.send({"id": rid, **content}, buffers or None)

    def _concept_of(self, content: dict[str, Any]) -> Concept:
        """The concept a message is about (its ``task``; the one shown when it names none)."""
        if content.get("task") is None:
            return self._concept
        name = msgs.text(content, "task")
        if name not in self._concepts:
            raise MessageError(f"task must be one of {list(self._concepts)}, got {name!r}")
        return self._concepts[name]

    def _send_clips(
        self,
        rid: Any,
        kind: str,
        concept: Concept,
        clip_ids: list[str],
        previous: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Reply with the clips' metadata and frames; ``previous`` overrides the decision each
        clip is shown with (default: its current label in ``concept``, e.g. in review)."""
        task = concept.task
        scores = task.scores_of(clip_ids)
        origin = concept.origin
        feeds = [(origin[c].feed if c in origin else None) or "" for c in clip_ids]
        meta, buffers = pack_clips(task.library, clip_ids, scores, feeds)
        before = {**concept.labels_of(clip_ids), **(previous or {})}
        for m in meta:
            m["previous"] = before.get(m["clip_id"])
        reply = {"kind": kind, "task": concept.name, "epoch": self._epoch, "clips": meta}
        self._reply(rid, {**reply, **(extra or {})}, buffers)

    def _on_more(self, rid: Any, content: dict[str, Any]) -> None:
        concept = self._concept_of(content)
        n = msgs.integer(content, "n", low=1, high=_MAX_BATCH, default=self.batch_size)
        have = set(msgs.clip_ids(content, "have", max_n=_MAX_HAVE, required=False))
        out = concept.serve(n, have)
        if concept is self._concept:
            with self.hold_sync():
                self._queue = list(concept.queue)
                self.feed_source = concept.feed_source
                self._refresh_counts()
        self._send_clips(rid, "clips", concept, out)

    def _on_previews(self, rid: Any, content: dict[str, Any]) -> None:
        clip_ids = msgs.clip_ids(content, "clip_ids", max_n=_MAX_BATCH)
        self._send_clips(rid, "clips", self._concept_of(content), clip_ids)

    def _on_decisions(self, rid: Any, content: dict[str, Any]) -> None:
        """The decisions of a concept on the clips a view holds (it switched to that concept)."""
        concept = self._concept_of(content)
        clip_ids = msgs.clip_ids(content, "clip_ids", max_n=_MAX_HAVE)
        decisions = concept.decisions_of(clip_ids)
        self._reply(rid, {"kind": "decisions", "task": concept.name, "decisions": decisions})

    def _on_label(self, rid: Any, content: dict[str, Any]) -> None:
        """One clip, or several (a page, a selection) as ONE action: one transaction, one undo."""
        concept = self._concept_of(content)
        clip_ids = msgs.clip_ids(content, "clip_ids", max_n=_MAX_BATCH)
        label = msgs.boolean(content, "label")
        if not clip_ids or len(set(clip_ids)) != len(clip_ids):
            raise MessageError(
                f"clip_ids must name 1 to {_MAX_BATCH} different clips, got {clip_ids}"
            )
        concept.label(clip_ids, label)
        self._after_event(rid, concept, clip_ids, label)

    def _on_skip(self, rid: Any, content: dict[str, Any]) -> None:
        concept = self._concept_of(content)
        clip_id = msgs.clip_id(content)
        concept.skip(clip_id)
        self._after_event(rid, concept, [clip_id], None)

    def _after_event(
        self, rid: Any, concept: Concept, clip_ids: list[str], label: bool | None
    ) -> None:
        """Acknowledge a committed action, then refresh status and run the callbacks."""
        if concept is self._concept:
            with self.hold_sync():
                self._queue = list(concept.queue)
                self.last_saved = clip_ids[-1]
                self._refresh_counts()
        queue = concept.queue
        scores: list[float] = concept.task.scores_of(queue).tolist() if queue else []
        self._reply(
            rid,
            {
                "kind": "ack",
                "task": concept.name,
                "clip_ids": clip_ids,
                "label": label,
                "scores": {c: _score(s) for c, s in zip(queue, scores, strict=True)},
            },
        )
        for clip_id in clip_ids:
            self._fire_label(clip_id, label)

    def _on_undo(self, rid: Any, content: dict[str, Any]) -> None:
        concept = self._concept_of(content)
        undone, was = concept.undo()  # this task's last action: a label, a skip or a page
        if concept is self._concept:
            with self.hold_sync():
                self._queue = list(concept.queue)
                if undone:
                    self.last_saved = ""
                self._refresh_counts()
        self._send_clips(rid, "undone", concept, undone, previous=was, extra={"clip_ids": undone})

    def _on_play(self, rid: Any, content: dict[str, Any]) -> None:
        clip_id = msgs.clip_id(content)
        clips = self._task.library.clips
        row = int(self._task.library.rows(clip_id)[0])
        data = encode_clip_mp4(
            clips["video"].iat[row],
            float(clips["start_seconds"].iat[row]),
            float(clips["end_seconds"].iat[row]),
        )
        reply = {"kind": "video", "clip_id": clip_id, "mime": "video/mp4"}
        self._reply(rid, {**reply, "frame_times": _frame_times(data)}, [data])

    def _on_query(self, rid: Any, content: dict[str, Any]) -> None:
        self._shown(content)
        text = msgs.text(content, "text")
        if not text:
            raise ValueError("the query is empty; type what the clips should show")
        self.query = text
        self._reply(rid, {"kind": "ack"})

    def _on_similar(self, rid: Any, content: dict[str, Any]) -> None:
        self._shown(content)
        clip_id = msgs.clip_id(content)
        self._task.library.rows(clip_id)  # unknown ids fail here
        with self.hold_sync():
            if self.feed == "similar" and self.similar_to == clip_id:
                self._restart_queue()
            self.similar_to = clip_id
            self.feed = "similar"
        self._reply(rid, {"kind": "ack"})

    def _shown(self, content: dict[str, Any]) -> None:
        """Refuse a change of feed or query meant for a concept not shown any more."""
        if self._concept_of(content) is not self._concept:
            raise MessageError(
                f"the widget shows {self.task_name!r} now, not {content.get('task')!r}; try again"
            )

    def refresh(self) -> None:
        """Re-read the labels from the store (after labelling through ``ann.task``, or by
        another annotator or process), retrain, and refill the widget's queue and counters."""
        self._task.refresh()
        self._restart_queue()
        self._refresh_status()

    # -- status ---------------------------------------------------------------------------
    def _refresh_counts(self) -> None:
        """What changes with every label and is cheap to know: counts, model version, clips
        left, and the auto feed's choice (the quality estimate waits for a pause)."""
        self.counts = dict(self._task.counts())
        self.model_version = self._task.model_version
        self.feed_left = self._concept.left()
        stats = self._task.feed_stats()
        self.auto_choice = str(stats.attrs.get("choice", ""))
        self.auto_reason = auto_choice_text(stats)
        if len(self._concepts) > 1:
            self.concept_counts = {
                name: sum(c.task.counts()[k] for k in ("positives", "negatives"))
                for name, c in self._concepts.items()
            }

    def _on_status(self, rid: Any, content: dict[str, Any]) -> None:
        """The front end asks for the quality estimate once labelling pauses (see js)."""
        self._refresh_status()
        self._reply(rid, {"kind": "ack"})

    def _refresh_status(self) -> None:
        q = self._task.quality()
        with self.hold_sync():
            self._refresh_counts()
            self.quality = {
                "ap": q.ap,
                "ci_low": q.ci_low,
                "ci_high": q.ci_high,
                "n_pos": q.n_pos,
                "n_neg": q.n_neg,
                "model_version": q.model_version,
                "reason": q.reason,
                "n_sampled": q.n_sampled,
                "summary": q.summary,
                "advice": q.advice,
            }
            history = self._concept.ap_history
            if q.ap is not None:
                n = q.n_pos + q.n_neg
                if not history or history[-1] != (n, q.ap):
                    history.append((n, q.ap))
            self.quality_trend = quality_trend(history)

    def _fire_label(self, clip_id: str, label: bool | None) -> None:
        for callback in list(self._label_callbacks.callbacks):
            try:
                callback(clip_id, label)
            except Exception as exc:  # a user's callback: show it, keep labelling
                name = getattr(callback, "__qualname__", repr(callback))
                where = traceback.extract_tb(exc.__traceback__)[-1]
                self.error = (
                    f"on_label callback {name} raised {type(exc).__name__}: {exc} "
                    f"({Path(where.filename).name}, line {where.lineno})"
                )


def _frame_times(mp4: bytes) -> list[float]:
    """The presentation times (seconds from the clip's start) of every frame of an MP4, in
    order, read from its packets (no decoding): the player steps frame by frame with them."""
    import av

    with av.open(io.BytesIO(mp4), mode="r") as container:
        stream = container.streams.video[0]
        times = sorted(
            float(packet.pts * packet.time_base)
            for packet in container.demux(stream)
            if packet.pts is not None and packet.time_base is not None
        )
    return [round(t, 6) for t in times]


def _score(value: float) -> float | None:
    return None if value != value else round(float(value), 4)  # NaN -> None
