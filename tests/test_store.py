"""Tests of the SQLite label store, on real files in tmp_path."""

from __future__ import annotations

import itertools
import json
import math
import multiprocessing as mp
import os
import random
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from va_widgets.errors import VaWidgetsError
from va_widgets.store import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    Decision,
    LabelStore,
    StoreError,
    TaskMismatch,
)

LIB = {"library_id": "lib-1", "embedder_fingerprint": "clip-vit-b32:abc"}


@pytest.fixture
def store(tmp_path: Path):
    with LabelStore(tmp_path / "labels.sqlite") as s:
        s.open_task("cats", **LIB)
        yield s


def labels(frame: pd.DataFrame) -> dict[str, bool]:
    return dict(zip(frame["clip_id"], frame["label"], strict=True))


# ----------------------------------------------------------------------------- basics


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "labels.sqlite"
    before = datetime.now(timezone.utc)
    with LabelStore(path) as s:
        info = s.open_task("cats", query="a cat on a sofa", **LIB)
        assert (info.name, info.library_id, info.query) == ("cats", "lib-1", "a cat on a sofa")
        e1 = s.add_event("cats", "v1.mp4#0", "label", label=True, annotator="ann",
                         feed="search", model_version=3)  # fmt: skip
        e2 = s.add_event("cats", "v1.mp4#1", "label", label=False, annotator="ann")
        s.add_event("cats", "v1.mp4#2", "skip", annotator="ann", feed="uncertain")
        assert e2 > e1
    after = datetime.now(timezone.utc)

    with LabelStore(path) as s:
        cur = s.current("cats")
        assert list(cur.columns) == [
            "clip_id", "label", "annotator", "feed", "time", "model_version", "propensity",
            "event_id",
        ]  # fmt: skip
        assert cur["clip_id"].tolist() == ["v1.mp4#0", "v1.mp4#1"]
        assert cur["label"].tolist() == [True, False]
        assert cur["label"].dtype == bool
        assert cur["annotator"].tolist() == ["ann", "ann"]
        assert cur["feed"].tolist() == ["search", None]
        assert cur["model_version"].tolist() == [3, pd.NA]
        assert cur["event_id"].tolist() == [e1, e2]
        assert str(cur["time"].dt.tz) == "UTC"
        assert all(before <= t <= after for t in cur["time"])
        assert s.skipped("cats") == {"v1.mp4#2"}
        [info] = s.tasks()
        assert info.query == "a cat on a sofa"
        assert before - timedelta(seconds=1) <= info.created <= after
        # reopening a task with the same ids is fine and keeps the original query
        assert s.open_task("cats", query="other", **LIB).query == "a cat on a sofa"


def test_empty_store_frames_have_the_same_columns(store: LabelStore) -> None:
    assert store.current("cats").empty
    assert store.current("cats").dtypes.equals(store.current("cats", annotator="x").dtypes)
    assert store.history("cats").empty
    assert store.agreement("cats").empty
    assert store.skipped("cats") == set()
    store.add_event("cats", "c", "label", label=True, annotator="a")
    assert store.current("cats", annotator="nobody").dtypes.equals(store.current("cats").dtypes)


def test_write_is_visible_to_another_connection_at_once(store: LabelStore) -> None:
    with LabelStore(store.path) as other:
        store.add_event("cats", "c1", "label", label=True, annotator="a")
        assert labels(other.current("cats")) == {"c1": True}
        other.undo("cats", annotator="a")
        assert store.current("cats").empty


def test_store_file_settings(store: LabelStore) -> None:
    conn = sqlite3.connect(store.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        assert meta["schema_version"] == str(SCHEMA_VERSION)
    finally:
        conn.close()
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


# ----------------------------------------------------------------------------- undo / skip


def test_undo_is_exact_and_history_keeps_everything(store: LabelStore) -> None:
    e1 = store.add_event("cats", "c1", "label", label=True, annotator="a")
    e2 = store.add_event("cats", "c1", "label", label=False, annotator="a")
    assert labels(store.current("cats")) == {"c1": False}

    [undone] = store.undo("cats", annotator="a")
    assert (undone.event_id, undone.clip_id, undone.label, undone.kind) == (
        e2,
        "c1",
        False,
        "label",
    )
    assert labels(store.current("cats")) == {"c1": True}
    assert store.current("cats")["event_id"].tolist() == [e1]

    assert store.undo("cats", annotator="a")[0].event_id == e1
    assert store.current("cats").empty
    assert store.undo("cats", annotator="a") == []  # nothing left

    e5 = store.add_event("cats", "c2", "skip", annotator="a")
    e6 = store.add_event("cats", "c1", "label", label=True, annotator="a")
    assert store.undo("cats", annotator="a")[0].event_id == e6
    assert store.skipped("cats") == {"c2"}
    assert store.undo("cats", annotator="a")[0].event_id == e5
    assert store.skipped("cats") == set()

    hist = store.history("cats")
    assert hist["kind"].tolist() == [
        "label", "label", "undo", "undo", "skip", "label", "undo", "undo",
    ]  # fmt: skip
    assert hist["undoes"].tolist() == [pd.NA] * 2 + [e2, e1] + [pd.NA] * 2 + [e6, e5]
    assert hist["clip_id"].tolist() == ["c1", "c1", "c1", "c1", "c2", "c1", "c1", "c2"]
    assert hist["undone"].tolist() == [True, True, False, False, True, True, False, False]
    assert hist["label"].tolist() == [True, False, pd.NA, pd.NA, pd.NA, True, pd.NA, pd.NA]
    assert hist["event_id"].is_monotonic_increasing


def test_undo_walks_back_across_clips_and_only_touches_that_annotator(store: LabelStore) -> None:
    store.add_event("cats", "c1", "label", label=True, annotator="a")
    store.add_event("cats", "c2", "label", label=True, annotator="b")
    store.add_event("cats", "c2", "label", label=False, annotator="a")
    store.add_event("cats", "c3", "skip", annotator="a")
    store.open_task("dogs", **LIB)
    store.add_event("dogs", "c9", "label", label=True, annotator="a")

    assert store.undo("cats", annotator="a")[0].clip_id == "c3"
    assert store.undo("cats", annotator="a")[0].clip_id == "c2"
    assert labels(store.current("cats", annotator="b")) == {"c2": True}
    assert labels(store.current("cats")) == {"c1": True, "c2": True}
    assert store.undo("cats", annotator="a")[0].clip_id == "c1"
    assert store.undo("cats", annotator="a") == []
    assert store.undo("cats", annotator="nobody") == []
    assert labels(store.current("cats")) == {"c2": True}
    assert labels(store.current("dogs")) == {"c9": True}


def test_skip(store: LabelStore) -> None:
    store.add_event("cats", "c1", "skip", annotator="a")
    store.add_event("cats", "c2", "skip", annotator="a")
    store.add_event("cats", "c2", "label", label=True, annotator="b")
    store.add_event("cats", "c3", "label", label=True, annotator="a")
    store.add_event("cats", "c3", "skip", annotator="a")  # changed their mind: now skipped
    assert labels(store.current("cats")) == {"c2": True}
    assert store.skipped("cats") == {"c1", "c3"}  # c2 has a label from b
    assert store.skipped("cats", annotator="a") == {"c1", "c2", "c3"}
    assert store.skipped("cats", annotator="b") == set()
    assert labels(store.current("cats", annotator="a")) == {}


# ----------------------------------------------------------------------------- tasks, annotators


def test_tasks_and_annotators_are_isolated(store: LabelStore) -> None:
    store.open_task("dogs", library_id="lib-2", embedder_fingerprint="fp-2")
    store.add_event("cats", "c1", "label", label=True, annotator="a")
    store.add_event("dogs", "c1", "label", label=False, annotator="a")
    store.add_event("cats", "c2", "label", label=True, annotator="b")
    store.add_event("dogs", "c2", "skip", annotator="b")
    assert labels(store.current("cats")) == {"c1": True, "c2": True}
    assert labels(store.current("dogs")) == {"c1": False}
    assert labels(store.current("cats", annotator="a")) == {"c1": True}
    assert labels(store.current("cats", annotator="b")) == {"c2": True}
    assert store.skipped("cats") == set()
    assert store.skipped("dogs") == {"c2"}
    assert len(store.history("cats")) == 2
    assert [t.name for t in store.tasks()] == ["cats", "dogs"]
    assert store.tasks()[1].library_id == "lib-2"


def test_task_label_is_latest_label_across_annotators(store: LabelStore) -> None:
    store.add_event("cats", "c1", "label", label=True, annotator="a")
    store.add_event("cats", "c1", "label", label=False, annotator="b")
    store.add_event("cats", "c2", "label", label=False, annotator="b")
    store.add_event("cats", "c2", "label", label=True, annotator="a")
    store.add_event("cats", "c2", "skip", annotator="c")  # a skip does not hide a label
    cur = store.current("cats")
    assert labels(cur) == {"c1": False, "c2": True}
    assert cur["annotator"].tolist() == ["b", "a"]
    per = store.labels_by_annotator("cats")
    assert sorted(zip(per["clip_id"], per["annotator"], per["label"], strict=True)) == [
        ("c1", "a", True), ("c1", "b", False), ("c2", "a", True), ("c2", "b", False),
    ]  # fmt: skip
    store.undo("cats", annotator="b")  # b's c2
    assert labels(store.current("cats")) == {"c1": False, "c2": True}
    store.undo("cats", annotator="b")  # b's c1: a's label is the task's label again
    assert labels(store.current("cats")) == {"c1": True, "c2": True}


def test_unknown_task_and_closed_store(store: LabelStore) -> None:
    with pytest.raises(StoreError, match=r"no task 'birds'.*open_task"):
        store.add_event("birds", "c", "label", label=True, annotator="a")
    with pytest.raises(StoreError, match="no task"):
        store.current("birds")
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        store.current("cats")


def test_mismatched_library_or_embedder(store: LabelStore) -> None:
    with pytest.raises(TaskMismatch) as info:
        store.open_task("cats", library_id="lib-OTHER", embedder_fingerprint="clip-vit-b32:abc")
    message = str(info.value)
    assert "lib-1" in message and "lib-OTHER" in message
    assert "new task name" in message and "label store that belongs" in message
    with pytest.raises(TaskMismatch, match="fp-OTHER"):
        store.open_task("cats", library_id="lib-1", embedder_fingerprint="fp-OTHER")
    assert isinstance(info.value, StoreError) and isinstance(info.value, VaWidgetsError)
    assert len(store.tasks()) == 1


# ----------------------------------------------------------------------------- agreement


def test_kappa_on_a_known_example(store: LabelStore) -> None:
    a = [True, True, False, False, True, False]
    b = [True, False, False, False, True, True]  # 4 of 6 agree, both 50 % positive
    for i, (la, lb) in enumerate(zip(a, b, strict=True)):
        store.add_event("cats", f"c{i}", "label", label=la, annotator="alice")
        store.add_event("cats", f"c{i}", "label", label=lb, annotator="bob")
    store.add_event("cats", "only-alice", "label", label=True, annotator="alice")
    store.add_event("cats", "c0", "skip", annotator="carol")  # skips are not labels
    store.add_event("cats", "c9", "label", label=True, annotator="carol")

    agree = store.agreement("cats")
    assert list(agree.columns) == ["annotator_a", "annotator_b", "n_shared", "n_agree", "kappa"]
    rows = {(r.annotator_a, r.annotator_b): r for r in agree.itertuples()}
    assert set(rows) == {("alice", "bob"), ("alice", "carol"), ("bob", "carol")}
    ab = rows["alice", "bob"]
    assert (ab.n_shared, ab.n_agree) == (6, 4)
    assert ab.kappa == pytest.approx(1 / 3)  # (4/6 - 1/2) / (1 - 1/2)
    assert rows["alice", "carol"].n_shared == 0 and math.isnan(rows["alice", "carol"].kappa)

    # an undone label leaves the comparison
    store.undo("cats", annotator="bob")
    store.add_event("cats", "c5", "label", label=False, annotator="bob")
    ab = store.agreement("cats").iloc[0]
    assert (ab.n_shared, ab.n_agree, ab.kappa) == (6, 5, pytest.approx(2 / 3))


# ----------------------------------------------------------------------------- derived data


def test_derived_labels_match_an_independent_replay_and_rebuild(store: LabelStore) -> None:
    """Random labels, skips, page actions and undos (of a session or of any session of an
    annotator) vs a model that keeps one list of actions per annotator."""
    rng = random.Random(7)
    annotators, clips = ["a", "b", "c"], [f"c{i}" for i in range(12)]
    sessions = ["s1", "s2"]
    # per annotator: actions in order, each (session, [(clip, value)]); value None = skip
    actions: dict[str, list[tuple[str, list[tuple[str, bool | None]]]]] = {
        a: [] for a in annotators
    }
    for _ in range(300):
        who, session = rng.choice(annotators), rng.choice(sessions)
        r = rng.random()
        if r < 0.25:
            scoped = rng.random() < 0.5
            undone = store.undo("cats", annotator=who, session=session if scoped else None)
            mine = [i for i, (s_, _) in enumerate(actions[who]) if not scoped or s_ == session]
            expected = actions[who].pop(mine[-1])[1] if mine else []
            assert [(e.clip_id, e.label) for e in undone] == expected
        elif r < 0.35:
            page = rng.sample(clips, rng.randint(2, 4))
            value = rng.random() < 0.5
            store.add_events(
                "cats", [Decision(c, "label", value) for c in page], annotator=who, session=session
            )
            actions[who].append((session, [(c, value) for c in page]))
        elif r < 0.45:
            clip = rng.choice(clips)
            store.add_event("cats", clip, "skip", annotator=who, session=session)
            actions[who].append((session, [(clip, None)]))
        else:
            clip, value = rng.choice(clips), rng.random() < 0.5
            store.add_event("cats", clip, "label", label=value, annotator=who, session=session)
            actions[who].append((session, [(clip, value)]))

    stacks = {who: [d for _, group in actions[who] for d in group] for who in annotators}

    def model_state(who: str) -> dict[str, bool | None]:
        state: dict[str, bool | None] = {}
        for clip, value in stacks[who]:
            state[clip] = value
        return state

    def check() -> None:
        for who in annotators:
            state = model_state(who)
            mine = {c: v for c, v in state.items() if v is not None}
            assert labels(store.current("cats", annotator=who)) == mine
            assert store.skipped("cats", annotator=who) == {
                c for c, v in state.items() if v is None
            }
        # the task label: the latest label event (across annotators) that is current
        hist = store.history("cats")
        live = hist[~hist["undone"] & (hist["kind"] != "undo")]
        latest = live.groupby(["clip_id", "annotator"]).tail(1)
        latest = latest[latest["kind"] == "label"].groupby("clip_id").tail(1)
        assert labels(store.current("cats")) == dict(
            zip(latest["clip_id"], latest["label"].astype(bool), strict=True)
        )

    check()
    table = "SELECT task_id, clip_id, annotator, event_id FROM current_labels ORDER BY 1, 2, 3"
    before = store._db.execute(table).fetchall()
    store._db.execute("DELETE FROM current_labels")  # lose the derived data...
    assert store.current("cats").empty
    store.rebuild_current()  # ...and rebuild it exactly from the event log
    assert store._db.execute(table).fetchall() == before
    check()


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize("bad", [1, 0, 1.0, "yes", "True", None, [True]])
def test_bad_label_values_are_rejected(store: LabelStore, bad: object) -> None:
    with pytest.raises(TypeError, match="label=True or label=False, got " + repr(bad).replace("[", r"\[").replace("]", r"\]")):  # fmt: skip
        store.add_event("cats", "c1", "label", label=bad, annotator="a")  # type: ignore[arg-type]
    assert store.history("cats").empty


def test_other_bad_arguments_are_rejected(store: LabelStore) -> None:
    import numpy as np

    with pytest.raises(ValueError, match="skip event takes no label, got label=True"):
        store.add_event("cats", "c1", "skip", label=True, annotator="a")
    with pytest.raises(ValueError, match="use undo"):
        store.add_event("cats", "c1", "undo", annotator="a")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="annotator"):
        store.add_event("cats", "c1", "label", label=True, annotator="")
    with pytest.raises(TypeError, match="model_version"):
        store.add_event("cats", "c1", "label", label=True, annotator="a", model_version="3")  # type: ignore[arg-type]
    assert store.history("cats").empty
    flag, version = np.bool_(True), np.int64(2)
    store.add_event("cats", "c1", "label", label=flag, annotator="a", model_version=version)  # type: ignore[arg-type]
    assert store.current("cats")["model_version"].tolist() == [2]


def _foreign_sqlite(path: Path, *, wal: bool) -> None:
    conn = sqlite3.connect(path)
    if wal:
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, what TEXT)")
    conn.execute("INSERT INTO events(what) VALUES ('precious')")
    conn.commit()
    conn.close()


def _newer_store(path: Path) -> None:
    with LabelStore(path) as s:
        s.open_task("cats", **LIB)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.execute(
        "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),)
    )
    conn.commit()
    conn.execute("PRAGMA journal_mode = DELETE")  # fold the WAL into the file
    conn.close()


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("text", "not a SQLite file"),
        ("random", "not a SQLite file"),
        ("sqlite-foreign", "another application"),
        ("sqlite-foreign-wal", "another application"),
        ("sqlite-app-id", "another application"),
        ("sqlite-header-garbage", "not a readable SQLite database"),
        ("newer-store", "newer than this va_widgets"),
    ],
)
def test_foreign_files_are_refused_and_left_untouched(
    tmp_path: Path, kind: str, message: str
) -> None:
    path = tmp_path / "labels.sqlite"
    if kind == "text":
        path.write_text("clip_id,label\nv1.mp4,1\n")
    elif kind == "random":
        path.write_bytes(random.Random(0).randbytes(8192))
    elif kind == "sqlite-foreign":
        _foreign_sqlite(path, wal=False)
    elif kind == "sqlite-foreign-wal":
        _foreign_sqlite(path, wal=True)
    elif kind == "sqlite-app-id":  # no tables, but claimed by another application
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA application_id = 1234")
        conn.close()
    elif kind == "sqlite-header-garbage":
        path.write_bytes(b"SQLite format 3\x00" + random.Random(1).randbytes(4096))
    else:
        _newer_store(path)
    before = path.read_bytes()
    files_before = sorted(p.name for p in tmp_path.iterdir())

    with pytest.raises(StoreError, match=message) as info:
        LabelStore(path)
    assert str(path) in str(info.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == files_before


def test_missing_folder_and_directory_are_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        LabelStore(tmp_path / "nope" / "labels.sqlite")
    assert not (tmp_path / "nope").exists()
    with pytest.raises(StoreError, match="not a regular file"):
        LabelStore(tmp_path)


def test_empty_file_becomes_a_store(tmp_path: Path) -> None:
    path = tmp_path / "labels.sqlite"
    path.touch()
    with LabelStore(path) as s:
        s.open_task("cats", **LIB)
    with LabelStore(path) as s:
        assert [t.name for t in s.tasks()] == ["cats"]


# ----------------------------------------------------------------------------- migration


def _write_v1_store(path: Path) -> None:
    """The version-1 layout, written by hand (no va_widgets code)."""
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in [
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE tasks (task_id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
        "library_id TEXT NOT NULL, embedder_fingerprint TEXT NOT NULL, created_at TEXT NOT NULL)",
        "CREATE TABLE events (event_id INTEGER PRIMARY KEY, task_id INTEGER NOT NULL "
        "REFERENCES tasks(task_id), clip_id TEXT NOT NULL, kind TEXT NOT NULL "
        "CHECK (kind IN ('label', 'skip', 'undo')), label INTEGER CHECK (label IN (0, 1)), "
        "annotator TEXT NOT NULL, time TEXT NOT NULL, undoes INTEGER REFERENCES events(event_id), "
        "CHECK ((kind = 'label') = (label IS NOT NULL)), "
        "CHECK ((kind = 'undo') = (undoes IS NOT NULL)))",
        "CREATE INDEX events_by_annotator ON events(task_id, annotator, event_id)",
        "INSERT INTO meta VALUES ('application', 'va_widgets.label_store'), "
        "('schema_version', '1'), ('created_at', '2024-05-01T10:00:00+00:00')",
        "INSERT INTO tasks VALUES (1, 'cats', 'lib-1', 'clip-vit-b32:abc', "
        "'2024-05-01T10:00:00+00:00')",
        "INSERT INTO events VALUES (1, 1, 'c1', 'label', 1, 'a', '2024-05-01T10:01:00+00:00', NULL)",
        "INSERT INTO events VALUES (2, 1, 'c2', 'label', 0, 'a', '2024-05-01T10:02:00+00:00', NULL)",
        "INSERT INTO events VALUES (3, 1, 'c1', 'label', 0, 'a', '2024-05-01T10:03:00+00:00', NULL)",
        "INSERT INTO events VALUES (4, 1, 'c1', 'undo', NULL, 'a', '2024-05-01T10:04:00+00:00', 3)",
        "INSERT INTO events VALUES (5, 1, 'c3', 'skip', NULL, 'b', '2024-05-01T10:05:00+00:00', NULL)",
        "PRAGMA user_version = 1",
    ]:
        conn.execute(statement)
    conn.close()


def test_migration_from_version_1(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    _write_v1_store(path)
    with LabelStore(path) as s:
        cur = s.current("cats")
        assert labels(cur) == {"c1": True, "c2": False}
        assert cur["time"].tolist() == [
            pd.Timestamp("2024-05-01T10:01:00Z"), pd.Timestamp("2024-05-01T10:02:00Z"),
        ]  # fmt: skip
        assert cur["feed"].isna().all() and cur["model_version"].isna().all()
        assert s.skipped("cats") == {"c3"}
        assert len(s.history("cats")) == 5
        [info] = s.tasks()
        assert info.query is None and info.created == datetime(2024, 5, 1, 10, tzinfo=timezone.utc)
        # the migrated store is fully usable
        assert s.undo("cats", annotator="a")[0].event_id == 2
        s.add_event("cats", "c4", "label", label=True, annotator="a", feed="search")
        assert labels(s.current("cats")) == {"c1": True, "c4": True}
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        assert meta["schema_version"] == str(SCHEMA_VERSION)
        assert f"migrated_1_to_{SCHEMA_VERSION}" in meta
    finally:
        conn.close()


def test_migration_from_version_2_keeps_labels_as_single_actions(
    tmp_path: Path, monkeypatch
) -> None:
    import va_widgets.store as store_module

    path = tmp_path / "v2.sqlite"
    monkeypatch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:2])
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 2)
    with LabelStore(path) as s:
        s.open_task("cats", **LIB)
    conn = sqlite3.connect(path)
    for event_id, clip, value in [(1, "c1", 1), (2, "c2", 0)]:  # written as version 2 did
        conn.execute(
            "INSERT INTO events(event_id, task_id, clip_id, kind, label, annotator, time) "
            "VALUES (?, 1, ?, 'label', ?, 'a', '2025-01-01T00:00:00+00:00')",
            (event_id, clip, value),
        )
        conn.execute("INSERT INTO current_labels VALUES (1, ?, 'a', ?)", (clip, event_id))
    conn.commit()
    conn.close()
    monkeypatch.undo()
    with LabelStore(path) as s:
        cur = s.current("cats")
        assert labels(cur) == {"c1": True, "c2": False}
        assert cur["propensity"].isna().all()  # old events: not random draws
        hist = s.history("cats")
        assert hist["session"].isna().all() and hist["action"].isna().all()
        # an old event is its own action; a session-scoped undo does not reach it
        assert s.undo("cats", annotator="a", session="new") == []
        assert [e.clip_id for e in s.undo("cats", annotator="a")] == ["c2"]


def test_a_page_action_is_atomic_and_undone_whole(store: LabelStore) -> None:
    store.add_event("cats", "c0", "label", label=False, annotator="a", session="s")
    page = [Decision(f"c{i}", "label", True, feed="top", propensity=0.25) for i in (1, 2, 3)]
    ids = store.add_events("cats", page, annotator="a", session="s")
    assert ids == sorted(ids) and len(ids) == 3
    hist = store.history("cats")
    assert hist["action"].tolist() == [pd.NA, ids[0], ids[0], ids[0]]
    assert hist["propensity"].tolist()[1:] == [0.25] * 3
    assert store.current("cats")["propensity"].tolist()[1:] == [0.25] * 3
    # one bad decision: nothing of the action is written
    bad = [Decision("c7", "label", True), Decision("c8", "label", "yes")]  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="label=True or label=False"):
        store.add_events("cats", bad, annotator="a", session="s")
    with pytest.raises(ValueError, match=r"propensity must lie in \(0, 1\]"):
        store.add_events("cats", [Decision("c7", "label", True, propensity=0.0)], annotator="a")
    assert len(store.history("cats")) == 4
    undone = store.undo("cats", annotator="a", session="s")
    assert [(e.clip_id, e.action) for e in undone] == [(f"c{i}", ids[0]) for i in (1, 2, 3)]
    assert labels(store.current("cats")) == {"c0": False}
    assert [e.clip_id for e in store.undo("cats", annotator="a", session="s")] == ["c0"]


def test_undo_of_a_session_leaves_another_sessions_later_labels(store: LabelStore) -> None:
    """Two notebooks with the same annotator name: each undoes only its own work."""
    store.add_event("cats", "c1", "label", label=True, annotator="me", session="nb1")
    store.add_event("cats", "c2", "label", label=True, annotator="me", session="nb2")
    assert [e.clip_id for e in store.undo("cats", annotator="me", session="nb1")] == ["c1"]
    assert labels(store.current("cats")) == {"c2": True}
    assert store.undo("cats", annotator="me", session="nb1") == []
    # undoing another session's work is explicit: no session given
    assert [e.clip_id for e in store.undo("cats", annotator="me")] == ["c2"]


def test_failed_migration_leaves_the_old_file_usable(tmp_path: Path, monkeypatch) -> None:
    import va_widgets.store as store_module

    path = tmp_path / "old.sqlite"
    _write_v1_store(path)

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE tasks ADD COLUMN query TEXT")
        raise RuntimeError("boom")

    monkeypatch.setattr(store_module, "MIGRATIONS", [store_module.MIGRATIONS[0], broken])
    with pytest.raises(RuntimeError, match="boom"):
        LabelStore(path)
    monkeypatch.undo()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert "query" not in {r[1] for r in conn.execute("PRAGMA table_info(tasks)")}
    conn.close()
    with LabelStore(path) as s:  # the real migration still works
        assert labels(s.current("cats")) == {"c1": True, "c2": False}


# ----------------------------------------------------------------------------- processes

N_EVENTS = 150


def _worker(path: str, task: str, annotator: str, barrier, seed: int) -> None:
    rng, pause = random.Random(seed), random.Random(-seed)
    with LabelStore(path, timeout=120) as s:
        s.open_task(task, **LIB)
        barrier.wait()
        for i in range(N_EVENTS):
            time.sleep(pause.random() * 0.002)  # SQLite's lock is not fair: let others in
            if i % 10 == 9:
                s.undo(task, annotator=annotator)
            elif i % 7 == 3:
                s.add_event(task, f"clip{rng.randrange(40)}", "skip", annotator=annotator)
            else:
                s.add_event(task, f"clip{rng.randrange(40)}", "label",
                            label=rng.random() < 0.5, annotator=annotator)  # fmt: skip


def _expected(task: str, annotator: str, seed: int) -> tuple[list[tuple], dict[str, bool]]:
    """The events a worker writes and its final labels, replayed without a store."""
    rng = random.Random(seed)
    events: list[tuple] = []
    stack: list[tuple[str, bool | None]] = []
    for i in range(N_EVENTS):
        if i % 10 == 9:
            clip, _ = stack.pop()
            events.append((clip, "undo"))
        elif i % 7 == 3:
            clip = f"clip{rng.randrange(40)}"
            stack.append((clip, None))
            events.append((clip, "skip"))
        else:
            clip = f"clip{rng.randrange(40)}"
            stack.append((clip, rng.random() < 0.5))
            events.append((clip, "label"))
    state: dict[str, bool | None] = {}
    for clip, value in stack:
        state[clip] = value
    return events, {c: v for c, v in state.items() if v is not None}


def test_concurrent_processes_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "labels.sqlite"
    LabelStore(path).close()
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(method)
    jobs = [("cats", "a", 1), ("cats", "b", 2), ("dogs", "a", 3), ("dogs", "c", 4)]
    barrier = ctx.Barrier(len(jobs))
    procs = [
        ctx.Process(target=_worker, args=(str(path), *job[:2], barrier, job[2])) for job in jobs
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * len(jobs)

    with LabelStore(path) as s:
        total = 0
        for task, annotator, seed in jobs:
            hist = s.history(task)
            mine = hist[hist["annotator"] == annotator]
            events, final = _expected(task, annotator, seed)
            assert list(zip(mine["clip_id"], mine["kind"], strict=True)) == events
            assert labels(s.current(task, annotator=annotator)) == final
            total += len(mine)
        assert total == N_EVENTS * len(jobs)
        # the writers really interleaved
        who = s.history("cats")["annotator"].tolist()
        assert sum(x != y for x, y in itertools.pairwise(who)) > 10
        before = s.current("cats")
        s.rebuild_current()
        pd.testing.assert_frame_equal(s.current("cats"), before)


def test_reopening_in_a_new_process_sees_everything(store: LabelStore) -> None:
    store.add_event("cats", "c1", "label", label=True, annotator="a", model_version=1)
    store.add_event("cats", "c2", "label", label=False, annotator="b")
    store.add_event("cats", "c3", "skip", annotator="a")
    store.add_event("cats", "c4", "label", label=True, annotator="a")
    store.undo("cats", annotator="a")
    code = (
        "import json, sys\n"
        "from va_widgets.store import LabelStore\n"
        "with LabelStore(sys.argv[1]) as s:\n"
        "    cur = s.current('cats')\n"
        "    print(json.dumps({'labels': dict(zip(cur.clip_id, map(bool, cur.label))),\n"
        "                      'skipped': sorted(s.skipped('cats')),\n"
        "                      'events': len(s.history('cats')),\n"
        "                      'tasks': [t.name for t in s.tasks()]}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    out = subprocess.run(
        [sys.executable, "-c", code, str(store.path)],
        capture_output=True, text=True, check=True, env=env, timeout=60,
    )  # fmt: skip
    assert json.loads(out.stdout) == {
        "labels": {"c1": True, "c2": False},
        "skipped": ["c3"],
        "events": 5,
        "tasks": ["cats"],
    }


def test_a_write_waits_for_the_lock_then_fails_clearly(store: LabelStore) -> None:
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    try:
        slow = LabelStore(store.path, timeout=0.3)
        start = time.monotonic()
        with pytest.raises(StoreError, match="locked by another process"):
            slow.add_event("cats", "c1", "label", label=True, annotator="a")
        assert time.monotonic() - start >= 0.3
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    slow.add_event("cats", "c1", "label", label=False, annotator="a")  # lock free again
    assert labels(store.current("cats")) == {"c1": False}
    assert len(store.history("cats")) == 1
    slow.close()
