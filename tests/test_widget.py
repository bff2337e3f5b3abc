"""The Annotator's message protocol, driven in-process through ``_handle_custom_msg``.

A real library (synthetic sample videos, offline embedder), a real Task and SQLite store;
messages the widget sends are captured by replacing ``send`` on the instance. Needs the built
front end (``cd js && npm ci && npm run build``), as any use of the widget does.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import av
import numpy as np
import pandas as pd
import pytest
import traitlets

import va_widgets as va
from synth import make_video
from va_widgets import widget as widget_module
from va_widgets.errors import VaWidgetsError
from va_widgets.widget import DEFAULT_KEYS, Annotator

JPEG_START = b"\xff\xd8"


@pytest.fixture(scope="module")
def lib(tmp_path_factory, pixel_embedder):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("widget")
    va.make_sample_videos(root / "videos", n_videos=2, seconds_per_video=24)
    return va.index_videos(root / "videos", root / "cache", embedder=pixel_embedder, progress=False)


class Recorder:
    """Collects what the widget sends and answers requests with fresh ids."""

    def __init__(self, widget: Annotator) -> None:
        self.widget = widget
        self.sent: list[tuple[dict[str, Any], list[bytes]]] = []
        self.count = 0
        widget.send = lambda content, buffers=None: self.sent.append((content, list(buffers or [])))  # type: ignore[method-assign]

    def request(self, kind: str, **content: Any) -> tuple[dict[str, Any], list[bytes]]:
        """Send one front-end message; return the reply that carries its id."""
        self.count += 1
        rid = f"r{self.count}"
        self.widget._handle_custom_msg({"kind": kind, "id": rid, **content}, [])
        replies = [(c, b) for c, b in self.sent if c.get("id") == rid]
        assert len(replies) == 1, f"expected one reply to {kind}, got {replies}"
        return replies[0]


def make_annotator(lib, tmp_path: Path, **kwargs: Any) -> tuple[Annotator, Recorder]:  # type: ignore[no-untyped-def]
    ann = Annotator(lib, task="ball", store=tmp_path / "labels.sqlite", annotator="ana", **kwargs)
    return ann, Recorder(ann)


def test_more_streams_previews_as_binary_buffers(lib, tmp_path):
    ann, rec = make_annotator(lib, tmp_path)
    reply, buffers = rec.request("more", n=6, have=[])
    assert reply["kind"] == "clips" and reply["epoch"] == ann._epoch
    clips = reply["clips"]
    ids = [c["clip_id"] for c in clips]
    assert len(ids) == 6 == len(set(ids))
    assert set(clips[0]) == {
        "clip_id",
        "video",
        "start_seconds",
        "end_seconds",
        "score",
        "feed",
        "n_frames",
        "previous",
    }
    assert len(buffers) == sum(c["n_frames"] for c in clips) > 6
    assert all(isinstance(b, bytes) and b.startswith(JPEG_START) for b in buffers)
    first = clips[0]
    assert buffers[: first["n_frames"]] == lib.thumbnails(first["clip_id"])
    assert ann._queue == ids
    # the next request gets new clips; a re-rendered view (have=[]) gets the queue back first
    more, _ = rec.request("more", n=4, have=ids)
    assert not set(c["clip_id"] for c in more["clips"]) & set(ids)
    again, _ = rec.request("more", n=3, have=[])
    assert [c["clip_id"] for c in again["clips"]] == ids[:3]


def test_more_draws_around_the_queue_and_stores_true_propensities(lib, tmp_path):
    ann, rec = make_annotator(lib, tmp_path, feed="random")
    first, _ = rec.request("more", n=4, have=[])
    queued = [c["clip_id"] for c in first["clips"]]
    more, _ = rec.request("more", n=4, have=queued)
    fresh = [c["clip_id"] for c in more["clips"]]
    assert len(fresh) == 4 and not set(fresh) & set(queued)
    rec.request("label", clip_ids=[fresh[0]], label=True)
    stored = ann.task.store.current("ball").set_index("clip_id")["propensity"]
    # drawn uniformly from the clips not queued, not from a larger draw with the queue dropped
    assert stored[fresh[0]] == pytest.approx(1 / (len(lib) - len(queued)))


def test_label_is_acknowledged_after_commit_and_updates_status(lib, tmp_path):
    ann, rec = make_annotator(lib, tmp_path)
    reply, _ = rec.request("more", n=8, have=[])
    ids = [c["clip_id"] for c in reply["clips"]]
    ack, _ = rec.request("label", clip_ids=[ids[0]], label=True)
    assert ack == {
        "id": ack["id"],
        "kind": "ack",
        "task": "ball",
        "clip_ids": [ids[0]],
        "label": True,
        "scores": ack["scores"],
    }
    # committed: a second store connection (another process, a restarted kernel) sees it
    other = va.Task(lib, "ball", store=tmp_path / "labels.sqlite", annotator="ana")
    assert other.counts()["positives"] == 1
    assert ann.last_saved == ids[0] and ids[0] not in ann._queue
    assert ann.counts == {"positives": 1, "negatives": 0, "skipped": 0}
    ack, _ = rec.request("label", clip_ids=[ids[1]], label=False)
    assert ann.model_version == ann.task.model_version >= 1
    assert set(ack["scores"]) == set(ann._queue) == set(ids[2:])
    assert all(0.0 <= s <= 1.0 for s in ack["scores"].values())
    for clip_id, label in zip(ids[2:4], (True, False), strict=True):
        rec.request("label", clip_ids=[clip_id], label=label)
    assert ann.counts == {"positives": 2, "negatives": 2, "skipped": 0}
    stale = ann.quality["n_pos"]  # quality waits for the front end's "status" request
    assert stale < 2
    rec.request("status")
    assert ann.quality["n_pos"] == 2 and ann.quality["n_neg"] == 2
    # 4 labels: fewer random checks than the honest estimate needs, said in plain words
    assert ann.quality["ap"] is None and ann.quality["advice"] == ""
    assert ann.quality["summary"].startswith("no estimate yet: needs")
    assert ann.auto_choice in ann._feeds and ann.auto_reason


def test_skip_and_undo_round_trip(lib, tmp_path):
    ann, rec = make_annotator(lib, tmp_path)
    reply, _ = rec.request("more", n=4, have=[])
    ids = [c["clip_id"] for c in reply["clips"]]
    ack, _ = rec.request("skip", clip_id=ids[0])
    assert ack["kind"] == "ack" and ack["label"] is None
    assert ann.counts["skipped"] == 1 and ids[0] not in ann._queue
    undone, buffers = rec.request("undo")
    assert undone["kind"] == "undone" and undone["clip_ids"] == [ids[0]]
    assert [c["clip_id"] for c in undone["clips"]] == [ids[0]]
    assert buffers == lib.thumbnails(ids[0])
    assert ann._queue[0] == ids[0] and ann.counts["skipped"] == 0
    nothing, buffers = rec.request("undo")
    assert nothing["clip_ids"] == [] and nothing["clips"] == [] and buffers == []


def test_a_page_is_one_action_one_transaction_one_undo(lib, tmp_path):
    ann, rec = make_annotator(lib, tmp_path)
    reply, _ = rec.request("more", n=8, have=[])
    ids = [c["clip_id"] for c in reply["clips"]]
    rec.request("label", clip_ids=ids[:1], label=False)
    seen: list[tuple[str, bool | None]] = []
    ann.on_label(lambda clip_id, label: seen.append((clip_id, label)))
    ack, _ = rec.request("label", clip_ids=ids[1:], label=True)  # Shift+A on the rest
    assert ack["kind"] == "ack" and ack["clip_ids"] == ids[1:] and ack["label"] is True
    assert seen == [(c, True) for c in ids[1:]] and ann.last_saved == ids[-1]
    assert ann.counts == {"positives": 7, "negatives": 1, "skipped": 0}
    history = ann.task.store.history("ball")
    page = history[history["clip_id"].isin(ids[1:])]
    assert page["action"].nunique() == 1 and page["action"].notna().all()  # one action
    served = {c["clip_id"]: c["feed"] for c in reply["clips"]}
    assert dict(zip(page["clip_id"], page["feed"], strict=True)) == {c: served[c] for c in ids[1:]}
    undone, buffers = rec.request("undo")  # one step undoes the whole page
    assert undone["clip_ids"] == ids[1:]
    assert [c["clip_id"] for c in undone["clips"]] == ids[1:]
    assert [c["previous"] for c in undone["clips"]] == ["positive"] * 7
    assert len(buffers) == sum(c["n_frames"] for c in undone["clips"])
    assert ann.counts == {"positives": 0, "negatives": 1, "skipped": 0}
    assert ann._queue[:7] == ids[1:]
    again, _ = rec.request("undo")
    assert again["clip_ids"] == ids[:1] and ann.task.counts()["negatives"] == 0


def test_review_and_undo_clips_carry_the_decision_given_before(lib, tmp_path):
    ann, rec = make_annotator(lib, tmp_path)
    reply, _ = rec.request("more", n=4, have=[])
    assert [c["previous"] for c in reply["clips"]] == [None] * 4
    ids = [c["clip_id"] for c in reply["clips"]]
    given = dict(zip(ids, [True, False, True, False], strict=True))
    for clip_id, label in given.items():
        rec.request("label", clip_ids=[clip_id], label=label)
    ann.feed = "review"  # the view still holds these clips, decided
    reply, _ = rec.request("more", n=8, have=ids)
    assert {c["clip_id"]: c["previous"] for c in reply["clips"]} == {
        c: "positive" if label else "negative" for c, label in given.items()
    }
    rec.request("label", clip_ids=[ids[0]], label=False)  # a mistake corrected in review
    other = next(c for c in lib.clips["clip_id"] if c not in given)
    rec.request("skip", clip_id=other)
    for undone, was in [(other, "skip"), (ids[0], "negative")]:
        reply, _ = rec.request("undo")
        assert reply["clip_ids"] == [undone] and [c["previous"] for c in reply["clips"]] == [was]
    assert ann.task.labels().set_index("clip_id")["label"].to_dict() == given


def test_errors_are_sent_back_with_the_request_id_and_shown(lib, tmp_path):
    ann, rec = make_annotator(lib, tmp_path)
    reply, _ = rec.request("label", clip_ids=["no-such-clip"], label=True)
    assert reply["kind"] == "error" and reply["request"] == "label"
    assert "unknown clip id" in reply["error"] and ann.error == reply["error"]
    clip_id = lib.clips["clip_id"].iat[0]
    reply, _ = rec.request("label", clip_ids=[clip_id], label="yes")
    assert reply["kind"] == "error" and "must be true or false" in reply["error"]
    assert ann.task.counts()["positives"] == 0  # nothing was written
    reply, _ = rec.request("frobnicate")
    assert reply["kind"] == "error" and "unknown message kind 'frobnicate'" in reply["error"]


@pytest.mark.parametrize(
    ("kind", "fields", "expected"),
    [
        ("more", {"n": "8"}, "n must be an integer from 1 to 64, got '8'"),
        ("more", {"n": True}, "n must be an integer from 1 to 64, got True"),
        ("more", {"n": 10**9}, "n must be an integer from 1 to 64"),
        ("more", {"have": "abc"}, "have must be a list of at most 4096 clip ids, got 'abc'"),
        ("more", {"have": [None]}, "have must be a clip id"),
        ("previews", {"clip_ids": ["x" * 300]}, "clip_ids must be a clip id"),
        ("previews", {}, "clip_ids must be a list"),
        ("label", {"label": True}, "clip_ids must be a list of at most 64 clip ids, got None"),
        ("label", {"clip_ids": [3], "label": True}, "clip_ids must be a clip id (a non-empty"),
        ("label", {"clip_ids": ["c"], "label": 1}, "label must be true or false, got 1"),
        ("label", {"clip_ids": [], "label": True}, "clip_ids must name 1 to 64 different clips"),
        ("label", {"clip_ids": ["c", "c"], "label": True}, "must name 1 to 64 different clips"),
        ("label", {"clip_ids": ["c"] * 65, "label": True}, "at most 64 clip ids"),
        ("skip", {"clip_id": ["a"]}, "clip_id must be a clip id"),
        ("skip", {"clip_ids": ["a"]}, "clip_id must be a clip id"),
        ("play", {"clip_id": {"a": 1}}, "clip_id must be a clip id"),
        ("query", {"text": 5}, "text must be a string"),
        ("query", {"text": "x" * 5000}, "text must be a string of at most 2000 characters"),
        ("similar", {}, "clip_id must be a clip id"),
    ],
)
def test_hostile_messages_get_clear_errors_and_change_nothing(
    lib, tmp_path, kind, fields, expected
):
    ann, rec = make_annotator(lib, tmp_path)
    before = (ann.task.counts(), ann.feed, ann._queue, ann.query)
    reply, _ = rec.request(kind, **fields)
    assert reply["kind"] == "error" and reply["request"] == kind
    assert reply["error"].startswith("MessageError: ") and expected in reply["error"]
    assert (ann.task.counts(), ann.feed, ann._queue, ann.query) == before


def test_a_message_without_a_usable_id_or_kind_is_an_error_not_a_crash(lib, tmp_path):
    ann, rec = make_annotator(lib, tmp_path)
    for content in [
        {"kind": "status"},
        {"kind": "status", "id": 7},
        {"kind": "status", "id": "x" * 200},
    ]:
        ann._handle_custom_msg(content, [])
        content_sent, _ = rec.sent[-1]
        assert content_sent["kind"] == "error" and content_sent["id"] is None
        assert "needs an id" in content_sent["error"]
    for content in [["not", "a", "dict"], {"kind": 3, "id": "r"}, "text"]:
        ann._handle_custom_msg(content, [])
        content_sent, _ = rec.sent[-1]
        assert content_sent["kind"] == "error" and "unknown message kind" in content_sent["error"]


def test_feed_change_replaces_the_queue(lib, tmp_path):
    ann, rec = make_annotator(lib, tmp_path)
    rec.request("more", n=4, have=[])
    epoch = ann._epoch
    ann.feed = "random"  # what the feed selector does
    assert ann._epoch == epoch + 1 and ann._queue == []
    reply, _ = rec.request("more", n=4, have=[])
    assert reply["epoch"] == epoch + 1
    assert {c["feed"] for c in reply["clips"]} == {"random"} and ann.feed_source
    with pytest.raises(traitlets.TraitError):
        ann.feed = "newest"


def test_similar_feed_from_a_clip(lib, tmp_path):
    ann, rec = make_annotator(lib, tmp_path)
    clip_id = lib.clips["clip_id"].iat[3]
    ack, _ = rec.request("similar", clip_id=clip_id)
    assert ack["kind"] == "ack" and ann.feed == "similar" and ann.similar_to == clip_id
    reply, _ = rec.request("more", n=5, have=[])
    got = [c["clip_id"] for c in reply["clips"]]
    assert len(got) == 5 and clip_id not in got
    nearest = lib.similar(clip_id, k=8)["clip_id"].tolist()  # ties may order differently
    assert got[0] == nearest[0] and set(got) <= set(nearest)


def test_play_sends_the_clip_as_an_h264_mp4(lib, tmp_path):
    _, rec = make_annotator(lib, tmp_path)
    row = lib.clips.iloc[5]
    reply, buffers = rec.request("play", clip_id=row["clip_id"])
    assert reply == {
        "id": reply["id"],
        "kind": "video",
        "clip_id": row["clip_id"],
        "mime": "video/mp4",
        "frame_times": reply["frame_times"],
    }
    with av.open(io.BytesIO(buffers[0])) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.width == 320 and stream.codec_context.height % 2 == 0
        times = [f.time for f in container.decode(stream)]
    assert reply["frame_times"] == pytest.approx(times, abs=1e-5)  # every frame, in order
    clip_seconds = row["end_seconds"] - row["start_seconds"]
    assert times[0] == pytest.approx(0.0, abs=1e-3)
    assert times[-1] == pytest.approx(clip_seconds, abs=0.2) and times[-1] < clip_seconds


def test_query_needs_a_text_encoder(lib, tmp_path):
    ann, rec = make_annotator(lib, tmp_path)
    assert ann.text_search is False and "no text search" in ann.text_search_reason
    reply, _ = rec.request("query", text="a red ball")
    assert reply["kind"] == "error" and reply["error"].startswith("TextSearchUnavailable")
    assert ann.query == ""


def test_query_with_open_clip_restarts_the_search_feed(tmp_path, tiny_clip):
    (tmp_path / "v").mkdir()
    make_video(
        tmp_path / "v" / "a.mp4", [((200, 30, 30), 2.0), ((30, 30, 200), 2.0)], size=(64, 48)
    )
    lib = va.index_videos(tmp_path / "v", tmp_path / "cache", embedder=tiny_clip, progress=False)
    ann, rec = make_annotator(lib, tmp_path, feed="search")
    assert ann.text_search and ann.text_search_reason == ""
    epoch = ann._epoch
    ack, _ = rec.request("query", text="a red screen")
    assert ack["kind"] == "ack" and ann.query == ann.task.query == "a red screen"
    assert ann._epoch == epoch + 1
    reply, _ = rec.request("more", n=2, have=[])
    ranked = lib.search("a red screen", k=2)["clip_id"].tolist()
    assert [c["clip_id"] for c in reply["clips"]] == ranked


def test_on_label_callbacks_and_their_errors(lib, tmp_path):
    ann, rec = make_annotator(lib, tmp_path)
    seen: list[tuple[str, bool | None]] = []

    def record(clip_id: str, label: bool | None) -> None:
        seen.append((clip_id, label))

    def broken(clip_id: str, label: bool | None) -> None:
        raise RuntimeError("my callback broke")

    ann.on_label(record)
    ann.on_label(broken)
    ids = lib.clips["clip_id"].tolist()
    ack, _ = rec.request("label", clip_ids=[ids[0]], label=True)
    assert ack["kind"] == "ack"  # the label was saved even though a callback failed
    assert seen == [(ids[0], True)]
    assert "broken" in ann.error and "RuntimeError: my callback broke" in ann.error
    ann.on_label(broken, remove=True)
    ann.error = ""
    rec.request("skip", clip_id=ids[1])
    assert seen[-1] == (ids[1], None) and ann.error == ""


def test_a_new_widget_resumes_from_the_store(lib, tmp_path):
    first, rec = make_annotator(lib, tmp_path)
    ids = lib.clips["clip_id"].tolist()
    rec.request("label", clip_ids=[ids[0]], label=True)
    rec.request("label", clip_ids=[ids[1]], label=False)
    rec.request("skip", clip_id=ids[2])
    first.feed = "borderline"  # chosen in the view's selector
    version = first.model_version
    del first
    again, rec2 = make_annotator(lib, tmp_path)  # re-running the cell after a kernel restart
    assert again.counts == {"positives": 1, "negatives": 1, "skipped": 1}
    assert again.model_version == version and again.feed == "borderline"
    reply, _ = rec2.request("more", n=8, have=[])
    assert not {c["clip_id"] for c in reply["clips"]} & set(ids[:3])


def test_constructor_checks_its_arguments(lib, tmp_path):
    with pytest.raises(TypeError, match="'colour'"):
        Annotator(lib, task="ball", store=tmp_path / "l.sqlite", colour="red")
    task = va.Task(lib, "ball", store=tmp_path / "l.sqlite")
    ann = Annotator(task=task)
    assert ann.task is task and ann.task_name == "ball"
    with pytest.raises(TypeError, match="query"):
        Annotator(task=task, query="x")
    with pytest.raises(TypeError, match="needs the library"):
        Annotator(task="ball")


def test_shortcuts_are_configurable_and_checked(lib, tmp_path):
    ann, _ = make_annotator(lib, tmp_path, shortcuts={"positive": "y", "negative": ["n", "x"]})
    assert ann.shortcuts["positive"] == ["y"] and ann.shortcuts["negative"] == ["n", "x"]
    assert ann.shortcuts["undo"] == DEFAULT_KEYS["undo"]
    assert set(DEFAULT_KEYS) >= {"positive", "negative", "positive_page", "negative_page"}
    assert not {"accept", "reject", "accept_page", "reject_page"} & set(ann.shortcuts)
    with pytest.raises(traitlets.TraitError, match="unknown key action"):
        ann.shortcuts = {"launch": ["l"]}
    with pytest.raises(traitlets.TraitError, match="must be a key name"):
        ann.shortcuts = {"positive": []}


def test_old_shortcut_names_still_work_with_a_deprecation_warning(lib, tmp_path):
    with pytest.warns(
        DeprecationWarning,
        match=r"shortcuts\['accept'\] is deprecated; use shortcuts\['positive'\]",
    ) as seen:
        ann, _ = make_annotator(lib, tmp_path, shortcuts={"accept": "y"})
    assert seen[0].filename == __file__  # names the caller's line: shown in a notebook
    assert ann.shortcuts["positive"] == ["y"] and "accept" not in ann.shortcuts
    with pytest.warns(DeprecationWarning) as seen:
        ann.shortcuts = {"reject": ["n"], "reject_page": ["N"], "accept_page": ["Y"]}
    assert sorted(str(w.message) for w in seen) == [
        "shortcuts['accept_page'] is deprecated; use shortcuts['positive_page']",
        "shortcuts['reject'] is deprecated; use shortcuts['negative']",
        "shortcuts['reject_page'] is deprecated; use shortcuts['negative_page']",
    ]
    assert seen[0].filename == __file__
    assert (ann.shortcuts["negative"], ann.shortcuts["negative_page"]) == (["n"], ["N"])
    assert ann.shortcuts["positive_page"] == ["Y"] and ann.shortcuts["positive"] == ["a"]
    with pytest.warns(DeprecationWarning), pytest.raises(traitlets.TraitError, match="both"):
        ann.shortcuts = {"accept": ["y"], "positive": ["p"]}


def test_every_synced_trait_is_documented():
    own = {
        name: trait
        for name, trait in Annotator.class_traits(sync=True).items()
        if name in Annotator.__dict__
    }
    assert {
        "task_name",
        "query",
        "feed",
        "counts",
        "quality",
        "last_saved",
        "error",
        "_queue",
    } <= set(own)
    assert [name for name, trait in own.items() if not trait.help] == []


def test_a_missing_front_end_build_names_the_command(lib, tmp_path, monkeypatch):
    monkeypatch.setattr(widget_module, "STATIC", tmp_path / "static")
    with pytest.raises(VaWidgetsError, match="npm run build"):
        Annotator(lib, task="ball", store=tmp_path / "l.sqlite")


def test_plot_shows_learning_curve_scores_and_feeds(lib, tmp_path):
    ann, rec = make_annotator(lib, tmp_path)
    reply, _ = rec.request("more", n=8, have=[])
    truth = np.arange(len(reply["clips"])) % 2 == 0
    for clip, label in zip(reply["clips"], truth, strict=True):
        rec.request("label", clip_ids=[clip["clip_id"]], label=bool(label))
    curve = ann.task.learning_curve(points=4)
    assert curve["n_labels"].tolist()[-1] == 8
    assert curve["n_pos"].tolist()[-1] == 4  # positives among the first n labels
    assert curve["estimate"].notna().iloc[-1] and curve["estimate"].isna().iloc[0]
    fig = ann.plot()
    assert [ax.get_title() for ax in fig.axes] == [
        "Learning curve",
        f"Scores (model v{ann.task.model_version})",
        "Labels per feed",
    ]
    # estimates from under 6 positive labels are drawn as rough, as the status line says
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "rough: under 6 positive labels" in legend


def test_progress_in_plain_words(lib, tmp_path):
    ann, rec = make_annotator(lib, tmp_path, target=12)
    assert ann.target == 12 and ann.feed_left == len(lib)
    assert set(ann._feed_text) == set(ann._feeds) and all(ann._feed_text.values())
    reply, _ = rec.request("more", n=8, have=[])
    ids = [c["clip_id"] for c in reply["clips"]]
    for i, clip_id in enumerate(ids):
        rec.request("label", clip_ids=[clip_id], label=i % 2 == 0)
    rec.request("skip", clip_id=next(c for c in lib.clips["clip_id"] if c not in ids))
    assert ann.feed_left == len(lib) - 9  # every clip not yet labelled or skipped
    rec.request("status")
    assert "UCB" not in ann.auto_reason and ann.auto_reason
    first = ann.quality_trend
    reply, _ = rec.request("more", n=8, have=ids)
    for i, clip in enumerate(reply["clips"][:6]):
        rec.request("label", clip_ids=[clip["clip_id"]], label=i % 3 == 0)
    rec.request("status")
    assert first == "" and re.fullmatch(
        r"(up|down) \d\.\d\d|steady", ann.quality_trend.split(" over")[0]
    )
    assert ann.quality_trend.endswith("over the last 6 labels")
    ann.feed = "review"
    assert ann.feed_left == 14  # the labelled clips, none reviewed yet
    rec.request("more", n=4, have=[])
    assert ann.feed_left == 14  # served, not yet decided: still left
    with pytest.raises(traitlets.TraitError):
        ann.target = -1


def test_auto_choice_and_trend_words():
    import pandas as pd

    from va_widgets.words import auto_choice_text, quality_trend

    stats = pd.DataFrame(
        {
            "pulls": [4, 0, 1],
            "mean_reward": [0.012, np.nan, -0.01],
            "probability": [0.94, 0.02, 0.02],
        },
        index=pd.Index(["borderline", "random", "top"], name="feed"),
    )
    stats.attrs.update(choice="borderline", reason="borderline: highest UCB +0.112 (...)")
    assert auto_choice_text(stats) == (
        "mostly borderline clips (94% of the draws, each other feed 2%): no feed has raised "
        "the estimated quality more (+0.012 on average over the 4 batches it led)"
    )
    stats.attrs.update(choice="random")
    assert auto_choice_text(stats) == (
        "mostly random clips (2% of the draws, each other feed 94%): first in line, not credited yet"
    )
    stats.attrs.update(
        choice="search", reason="no model yet: zero-shot search to find a first positive"
    )
    assert auto_choice_text(stats) == "no model yet: zero-shot search to find a first positive"
    assert quality_trend([]) == "" and quality_trend([(4, 0.5)]) == ""
    assert quality_trend([(4, 0.5), (6, 0.6)]) == ""  # too close to compare
    assert quality_trend([(4, 0.5), (10, 0.56), (12, 0.61)]) == "up 0.11 over the last 8 labels"
    assert quality_trend([(4, 0.7), (12, 0.6)]) == "down 0.10 over the last 8 labels"
    assert quality_trend([(4, 0.7), (12, 0.702)]) == "steady over the last 8 labels"


def test_figures_follow_the_theme_a_view_reports(lib, tmp_path, monkeypatch):
    from matplotlib.colors import to_hex

    from va_widgets import theme

    monkeypatch.delenv("VA_WIDGETS_THEME", raising=False)
    ann, rec = make_annotator(lib, tmp_path)
    reply, _ = rec.request("more", n=4, have=[])
    for i, clip in enumerate(reply["clips"]):
        rec.request("label", clip_ids=[clip["clip_id"]], label=i % 2 == 0)
    try:
        ann.theme = "dark"  # what a view under JupyterLab Dark sends
        fig = ann.plot()
        assert to_hex(fig.get_facecolor()) == "#111111"
        assert to_hex(fig.axes[0].xaxis.label.get_color()) == "#e0e0e0"
        ann.theme = "light"
        assert to_hex(ann.plot().get_facecolor()) == "#ffffff"
        monkeypatch.setenv("VA_WIDGETS_THEME", "dark")  # an explicit choice wins
        assert theme.current() == "dark"
        theme.set_theme("light")
        assert theme.current() == "light" and theme.rc_params() == {}
        with pytest.raises(ValueError, match="'light', 'dark' or None"):
            theme.set_theme("blue")  # type: ignore[arg-type]
    finally:
        theme.set_theme(None)
        theme.report("")


def test_several_concepts_each_its_own_task_feed_and_queue(lib, tmp_path):
    store = tmp_path / "labels.sqlite"
    ann = Annotator(lib, tasks=["car", "night"], store=store, annotator="ana")
    rec = Recorder(ann)
    assert ann.tasks == ["car", "night"] and ann.task_name == "car" and ann.task.name == "car"
    assert set(ann.concepts) == {"car", "night"} and ann.concept_counts == {"car": 0, "night": 0}
    ann.feed = "random"  # car's feed
    reply, _ = rec.request("more", n=4, have=[])
    assert reply["task"] == "car" and {c["feed"] for c in reply["clips"]} == {"random"}
    page = [c["clip_id"] for c in reply["clips"]]
    rec.request("label", task="car", clip_ids=page[:2], label=True)
    rec.request("label", task="car", clip_ids=page[2:], label=False)

    ann.task_name = "night"  # what the number key 2 (or the tab) does
    assert ann.task.name == "night" and ann.feed == "auto" and ann._queue == []
    assert ann.counts == {"positives": 0, "negatives": 0, "skipped": 0}
    decided, _ = rec.request("decisions", task="night", clip_ids=page)
    assert decided["decisions"] == {}  # the same clips, not labelled for night yet
    ack, _ = rec.request("label", task="night", clip_ids=page[:1], label=True)  # same page
    assert ack["task"] == "night" and ann.counts["positives"] == 1
    assert ann.concept_counts == {"car": 4, "night": 1}
    decided, _ = rec.request("decisions", task="car", clip_ids=page)
    assert decided["decisions"] == dict(zip(page, ["positive"] * 2 + ["negative"] * 2, strict=True))

    undone, _ = rec.request("undo", task="car")  # car's last action, not night's
    assert undone["task"] == "car" and undone["clip_ids"] == page[2:]
    ann.task_name = "car"
    assert ann.feed == "random" and ann.counts["negatives"] == 0  # car's own feed, back
    wide = ann.labels_wide()
    assert list(wide.columns) == ["car", "night"] and set(wide.index) == set(page[:2])
    assert wide.loc[page[0]].tolist() == [True, True]
    assert wide.loc[page[1], "car"] and pd.isna(wide.loc[page[1], "night"])
    reply, _ = rec.request("more", task="rain", n=2, have=[])
    assert reply["kind"] == "error" and "task must be one of ['car', 'night']" in reply["error"]
    with pytest.raises(traitlets.TraitError, match="no concept 'rain'"):
        ann.task_name = "rain"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"task": "a", "tasks": ["b"]}, TypeError, "not both"),
        ({}, TypeError, "not neither"),
        ({"tasks": "car"}, TypeError, "non-empty list"),
        ({"tasks": []}, TypeError, "non-empty list"),
        ({"tasks": ["a", "a"]}, ValueError, "different names"),
        ({"tasks": [str(i) for i in range(10)]}, ValueError, "at most 9 concepts"),
        ({"tasks": ["a", "b"], "query": "x"}, TypeError, "as a dict"),
        ({"tasks": ["a"], "query": {"z": "x"}}, ValueError, r"task\(s\) \['z'\] not in"),
        ({"task": "a", "query": {"a": "x"}}, TypeError, "goes with tasks="),
    ],
)
def test_concepts_are_checked(lib, tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        Annotator(lib, store=tmp_path / "l.sqlite", **kwargs)


def test_two_tasks_on_one_library_start_with_different_random_clips(lib, tmp_path):
    store = tmp_path / "labels.sqlite"
    firsts = {}
    for name in ("car", "night", "car"):
        ann = Annotator(lib, task=name, store=store, annotator="ana", feed="random")
        reply, _ = Recorder(ann).request("more", n=6, have=[])
        clips = [c["clip_id"] for c in reply["clips"]]
        assert firsts.setdefault(name, clips) == clips  # the same task: the same draw
    assert firsts["car"] != firsts["night"]


def test_an_auto_batch_records_the_feed_that_chose_each_clip(lib, tmp_path):
    ann, rec = make_annotator(lib, tmp_path)
    reply, _ = rec.request("more", n=4, have=[])
    for i, clip in enumerate(reply["clips"]):  # a first model: the bandit takes over
        rec.request("label", clip_ids=[clip["clip_id"]], label=i % 2 == 0)
    reply, _ = rec.request("more", n=12, have=[c["clip_id"] for c in reply["clips"]])
    feeds = [c["feed"] for c in reply["clips"]]
    assert "auto" not in feeds and set(feeds) <= set(ann._feeds) - {"auto"}
    rows = lib.rows([c["clip_id"] for c in reply["clips"]]).tolist()
    arms = ann.task.engine.auto_arms
    assert feeds == [arms[r] for r in rows]  # the arm of the bandit that picked each clip
    rec.request("label", clip_ids=[reply["clips"][0]["clip_id"]], label=True)
    history = ann.task.store.history("ball")
    assert history["feed"].iloc[-1] == feeds[0]
