"""The Annotator: label the clips of a :class:`~va_widgets.task.Task` in a notebook, keyboard first.

Python owns the state (traits below) and every decision; the front end (``js/annotator.js``,
bundled into ``static/``) renders, captures keys and clicks, and keeps a queue of upcoming
clips so that a label never waits on the kernel.

Message protocol (custom messages; every request carries an ``id`` that its reply repeats):

=============================================  ====================================================
front end -> Python                            Python -> front end
=============================================  ====================================================
``{kind: "more", id, n, have: [clip ids]}``    ``{kind: "clips", id, epoch, clips: [meta]}`` + frames
``{kind: "previews", id, clip_ids}``           ``{kind: "clips", id, epoch, clips: [meta]}`` + frames
``{kind: "label", id, clip_id, label: bool}``  ``{kind: "ack", id, clip_id, label, scores}`` (after commit)
``{kind: "skip", id, clip_id}``                ``{kind: "ack", id, clip_id, label: null, scores}``
``{kind: "undo", id}``                         ``{kind: "undone", id, clip_id, clips: [meta]}`` + frames
``{kind: "play", id, clip_id}``                ``{kind: "video", id, clip_id, mime}`` + [MP4 bytes]
``{kind: "query", id, text}``                  ``{kind: "ack", id}``
``{kind: "similar", id, clip_id}``             ``{kind: "ack", id}``
``{kind: "status", id}``                       ``{kind: "ack", id}`` (quality traits refreshed)
any failed request                             ``{kind: "error", id, request, error}``
=============================================  ====================================================

Label events update the counts at once; the quality estimate (cross-validated AP, ~0.1 s) is
refreshed on ``status``, which the front end sends once labelling pauses for 0.4 s, so a fast
annotator never waits for it.

Replies reach every view of the widget (the same ``ann`` shown twice, another browser tab): a
view ignores other views' replies except the ``ack`` of a label or skip and the ``undone`` of a
clip it shows, which it applies, so all views show the same decisions.

``meta`` is ``{clip_id, video, start_seconds, end_seconds, score, feed, n_frames}``; the frames
(JPEG bytes) of all clips follow each other in the message's buffers. A feed change (the
``feed`` trait) empties the queue and increments ``_epoch``; replies of an older epoch are stale.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets as t
from ipywidgets import CallbackDispatcher

from va_widgets.errors import VaWidgetsError
from va_widgets.learner import FEEDS
from va_widgets.previews import encode_clip_mp4, pack_clips

if TYPE_CHECKING:
    import matplotlib.figure

    from va_widgets.library import ClipLibrary
    from va_widgets.task import Task

STATIC = Path(__file__).parent / "static"
BUILD_COMMAND = "cd js && npm ci && npm run build"

#: action -> keys (``KeyboardEvent.key`` values); override any of them with ``shortcuts={...}``
DEFAULT_KEYS: dict[str, list[str]] = {
    "accept": ["a"],
    "reject": ["x"],
    "skip": [" "],
    "undo": ["Backspace"],
    "next": ["ArrowRight", "ArrowDown", "j"],
    "prev": ["ArrowLeft", "ArrowUp", "k"],
    "play": ["p"],
    "similar": ["s"],
    "help": ["?"],
}
_WIDGET_OPTIONS = ("feed", "shortcuts", "batch_size", "prefetch", "layout")
_MAX_BATCH = 64


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
    feed, shortcuts, batch_size, prefetch : initial values of those traits.

    Examples
    --------
    >>> ann = va.Annotator(lib, task="car-chase", query="a car chase at night")  # doctest: +SKIP
    >>> ann  # doctest: +SKIP
    """

    _esm = STATIC / "annotator.js"
    _css = STATIC / "annotator.css"

    task_name = t.Unicode("", help="The task (concept) being labelled.").tag(sync=True)
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
    auto_reason = t.Unicode("", help="Why the auto feed chose it.").tag(sync=True)
    counts = t.Dict(help="Positives, negatives and skipped clips of the task.").tag(sync=True)
    model_version = t.Int(0, help="Version of the current model (grows after each label).").tag(
        sync=True
    )
    quality = t.Dict(
        help="Estimated AP over all clips with its 90% interval (summary, advice: plain words)."
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
    _queue = t.List(t.Unicode(), help="Clip ids served and not yet decided, in order.").tag(
        sync=True
    )
    _epoch = t.Int(0, help="Increments when the queue is replaced (feed or query change).").tag(
        sync=True
    )

    def __init__(
        self,
        library: ClipLibrary | None = None,
        *,
        task: Task | str,
        query: str | None = None,
        store: Any = None,
        annotator: str | None = None,
        **kwargs: Any,
    ) -> None:
        for name in kwargs:
            if name not in _WIDGET_OPTIONS:
                raise TypeError(
                    f"Annotator() got an unexpected keyword argument {name!r}; "
                    f"options are library, task, query, store, annotator, {', '.join(_WIDGET_OPTIONS)}"
                )
        type(self)._ensure_front_end()
        self._task = _resolve_task(library, task, query=query, store=store, annotator=annotator)
        self._label_callbacks = CallbackDispatcher()
        self._served_feed: dict[str, str] = {}  # clip id -> the feed that served it
        self._served: set[str] = set()  # clip ids served in this epoch
        embedder = self._task.library.embedder
        kwargs.setdefault("shortcuts", {})
        super().__init__(
            task_name=self._task.name,
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
    def task(self) -> Task:
        """The :class:`~va_widgets.task.Task` being labelled."""
        return self._task

    def on_label(self, callback: Callable[[str, bool | None], Any], remove: bool = False) -> None:
        """Call ``callback(clip_id, label)`` after each label saved from the widget (``label``
        is None for a skip); ``remove=True`` unregisters it. Errors it raises show in the widget."""
        self._label_callbacks.register_callback(callback, remove=remove)

    def plot(self) -> matplotlib.figure.Figure:
        """Learning curve (cross-validated AP vs labels), score distributions and feed usage."""
        from va_widgets.plots import plot_task

        return plot_task(self._task)

    def __repr__(self) -> str:
        return f"Annotator(task={self._task!r}, feed={self.feed!r})"

    # -- traits ---------------------------------------------------------------------------
    @t.validate("shortcuts")
    def _validate_shortcuts(self, proposal: Any) -> dict[str, list[str]]:
        value = proposal["value"]
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
        if self.feed in ("search", "auto"):
            self._restart_queue()

    @t.observe("feed", "similar_to")
    def _feed_changed(self, change: Any) -> None:
        self._restart_queue()

    def _restart_queue(self) -> None:
        self._served.clear()
        with self.hold_sync():
            self._queue = []
            self._epoch += 1

    # -- messages -------------------------------------------------------------------------
    def _on_msg(self, _widget: Any, content: Any, buffers: list[Any]) -> None:
        if not isinstance(content, dict):
            return
        kind, rid = content.get("kind"), content.get("id")
        try:
            handler = self._handlers.get(str(kind))
            if handler is None:
                raise ValueError(
                    f"unknown message kind {kind!r}; known: {', '.join(self._handlers)}"
                )
            handler(rid, content)
        except Exception as exc:  # reported to the front end, never swallowed
            message = f"{type(exc).__name__}: {exc}"
            self.error = message
            self.send({"kind": "error", "id": rid, "request": kind, "error": message})

    def _reply(self, rid: Any, content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        self.send({"id": rid, **content}, buffers or None)

    def _send_clips(self, rid: Any, kind: str, clip_ids: list[str], **extra: Any) -> None:
        scores = self._task.scores_of(clip_ids)
        feeds = [self._served_feed.get(c, "") for c in clip_ids]
        meta, buffers = pack_clips(self._task.library, clip_ids, scores, feeds)
        self._reply(rid, {"kind": kind, "epoch": self._epoch, "clips": meta, **extra}, buffers)

    def _on_more(self, rid: Any, content: dict[str, Any]) -> None:
        n = max(1, min(int(content.get("n", self.batch_size)), _MAX_BATCH))
        have = set(content.get("have") or ())
        out = [c for c in self._queue if c not in have][:n]
        missing = n - len(out)
        if missing > 0:
            similar = (self.similar_to or None) if self.feed == "similar" else None
            # the served clips are left out of the draw (not drawn and dropped), so the
            # probabilities the task records for the sampled feeds hold
            fresh = self._task.next(self.feed, missing, similar_to=similar, exclude=self._served)
            feed = self._task.last_feed or self.feed
            for c in fresh:
                self._served_feed[c] = feed
            self._served.update(fresh)
            out += fresh
            with self.hold_sync():
                self._queue = self._queue + fresh
                self.feed_source = self._task.last_source
        self._send_clips(rid, "clips", out)

    def _on_previews(self, rid: Any, content: dict[str, Any]) -> None:
        self._send_clips(rid, "clips", [str(c) for c in content.get("clip_ids") or ()])

    def _on_label(self, rid: Any, content: dict[str, Any]) -> None:
        clip_id, label = str(content.get("clip_id")), content.get("label")
        if not isinstance(label, bool):
            raise TypeError(f"label of {clip_id!r} must be true or false, got {label!r}")
        self._task.label(clip_id, label, feed=self._served_feed.get(clip_id))
        self._after_event(rid, clip_id, label)

    def _on_skip(self, rid: Any, content: dict[str, Any]) -> None:
        clip_id = str(content.get("clip_id"))
        self._task.skip(clip_id, feed=self._served_feed.get(clip_id))
        self._after_event(rid, clip_id, None)

    def _after_event(self, rid: Any, clip_id: str, label: bool | None) -> None:
        """Acknowledge a committed label event, then refresh status and run the callbacks."""
        with self.hold_sync():
            self._queue = [c for c in self._queue if c != clip_id]
            self.last_saved = clip_id
            self._refresh_counts()
        scores: list[float] = self._task.scores_of(self._queue).tolist() if self._queue else []
        self._reply(
            rid,
            {
                "kind": "ack",
                "clip_id": clip_id,
                "label": label,
                "scores": {c: _score(s) for c, s in zip(self._queue, scores, strict=True)},
            },
        )
        self._fire_label(clip_id, label)

    def _on_undo(self, rid: Any, content: dict[str, Any]) -> None:
        undone = self._task.undo()  # the widget's actions are single labels or skips
        clip_id = undone[0] if undone else None
        if clip_id is not None:
            self._served_feed.setdefault(clip_id, "undo")
            with self.hold_sync():
                self._queue = [clip_id, *(c for c in self._queue if c != clip_id)]
                self.last_saved = ""
        self._refresh_counts()
        self._send_clips(rid, "undone", [] if clip_id is None else [clip_id], clip_id=clip_id)

    def _on_play(self, rid: Any, content: dict[str, Any]) -> None:
        clip_id = str(content.get("clip_id"))
        clips = self._task.library.clips
        row = int(self._task.library.rows(clip_id)[0])
        data = encode_clip_mp4(
            clips["video"].iat[row],
            float(clips["start_seconds"].iat[row]),
            float(clips["end_seconds"].iat[row]),
        )
        self._reply(rid, {"kind": "video", "clip_id": clip_id, "mime": "video/mp4"}, [data])

    def _on_query(self, rid: Any, content: dict[str, Any]) -> None:
        text = str(content.get("text", "")).strip()
        if not text:
            raise ValueError("the query is empty; type what the clips should show")
        self.query = text
        self._reply(rid, {"kind": "ack"})

    def _on_similar(self, rid: Any, content: dict[str, Any]) -> None:
        clip_id = str(content.get("clip_id"))
        self._task.library.rows(clip_id)  # unknown ids fail here
        with self.hold_sync():
            if self.feed == "similar" and self.similar_to == clip_id:
                self._restart_queue()
            self.similar_to = clip_id
            self.feed = "similar"
        self._reply(rid, {"kind": "ack"})

    def refresh(self) -> None:
        """Re-read the labels from the store (after labelling through ``ann.task``, or by
        another annotator or process), retrain, and refill the widget's queue and counters."""
        self._task.refresh()
        self._restart_queue()
        self._refresh_status()

    # -- status ---------------------------------------------------------------------------
    def _refresh_counts(self) -> None:
        self.counts = dict(self._task.counts())
        self.model_version = self._task.model_version

    def _on_status(self, rid: Any, content: dict[str, Any]) -> None:
        """The front end asks for the quality estimate once labelling pauses (see js)."""
        self._refresh_status()
        self._reply(rid, {"kind": "ack"})

    def _refresh_status(self) -> None:
        q = self._task.quality()
        stats = self._task.feed_stats()
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
            self.auto_choice = str(stats.attrs.get("choice", ""))
            choice, reason = self.auto_choice, str(stats.attrs.get("reason", ""))
            self.auto_reason = reason.removeprefix(f"{choice}: ")  # shown after the choice

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


def _score(value: float) -> float | None:
    return None if value != value else round(float(value), 4)  # NaN -> None


def _resolve_task(
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
