"""Durable label store: an append-only event log of labels in one SQLite file.

The store behind a labelling task. Every label, skip and undo is appended to an event
log; the current labels are *derived* from that log, so undo and history are exact.
One file holds several tasks, each with several annotators.

Durability
----------
The file is in WAL mode with ``synchronous=FULL``: every write is one ``BEGIN IMMEDIATE``
transaction that is committed *and fsynced* when the call returns. A label the UI shows as
saved therefore survives a crash of the Python process (``NORMAL`` would too) and also an
OS crash or power loss (``NORMAL`` may lose the last commits there). The price is one
fsync of the WAL per label: measured 0.2-4 ms per label event on a VM disk (about 4 ms while
the WAL file grows, 0.2 ms once it is reused), against 0.03 ms with ``NORMAL`` - invisible at
human labelling speed. Writers from several processes are serialised by SQLite's write lock; a busy
timeout plus retries make them wait rather than fail.

Schema (version 4)
------------------
``PRAGMA user_version`` and ``meta.schema_version`` hold the schema version;
``meta.application`` identifies the file as a va_widgets label store, and
``PRAGMA application_id`` is set to :data:`APPLICATION_ID`.

- ``meta(key TEXT PRIMARY KEY, value TEXT)``.
- ``tasks(task_id, name UNIQUE, library_id, embedder_fingerprint, query, created_at)``.
- ``events(event_id, task_id, clip_id, kind, label, annotator, feed, model_version, time,
  undoes, session, action, propensity)``: the append-only log. ``kind`` is ``label``, ``skip``
  or ``undo``; ``label`` is 0/1 for label events and NULL otherwise; an undo event names the
  event it undoes in ``undoes`` (each event can be undone at most once) and copies its
  ``clip_id``. ``time`` is ISO-8601 UTC; the order of events is ``event_id``, not ``time``.
  ``session`` identifies the writer (one :class:`~va_widgets.task.Task` object), so that undo
  never reaches into another notebook's work. Events written together as one user action (a
  page labelled with one key) share ``action`` (the first event's id; NULL for a single
  event) and are undone together. ``propensity`` is the probability with which the clip was
  drawn at random by the feed that showed it (NULL: chosen by hand or by rank, not a random
  draw); the quality estimate weighs random draws by it.
- ``current_labels(task_id, clip_id, annotator, event_id)``: derived data, updated in the
  same transaction as each event: for each clip and annotator, the latest label or skip
  event of that annotator that has not been undone. :meth:`LabelStore.rebuild_current`
  recomputes it from the log.
- ``task_state(task_id PRIMARY KEY, state, updated_at)``: a task's serving state as a JSON
  object (the feed chosen, the model version, the auto feed's learned rewards), replaced
  after each change so a restarted kernel continues where the last one stopped. Not part of
  the labels: losing it loses no label.

Schema history: version 1 (first development layout) had no ``feed``/``model_version``
columns, no ``tasks.query`` and no ``current_labels`` table; version 2 had no ``session``,
``action`` and ``propensity`` (its events migrate as single actions of no session, not random
draws); version 3 had no ``task_state``. :data:`MIGRATIONS` upgrades any
older file in one transaction when it is opened. A new file is version 0 and goes through
the same migrations.
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import combinations
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import pandas as pd

from va_widgets.errors import StoreError, TaskMismatch

__all__ = [
    "APPLICATION_ID",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Decision",
    "Event",
    "LabelStore",
    "StoreError",
    "TaskInfo",
    "TaskMismatch",
]

APPLICATION = "va_widgets.label_store"
#: ``PRAGMA application_id`` of a label store (ASCII "VAWL").
APPLICATION_ID = 0x5641574C
_SQLITE_MAGIC = b"SQLite format 3\x00"

T = TypeVar("T")


@dataclass(frozen=True)
class TaskInfo:
    """A labelling task recorded in the store."""

    name: str
    library_id: str
    embedder_fingerprint: str
    query: str | None
    created: datetime


@dataclass(frozen=True)
class Event:
    """One event of the log (``kind`` is ``"label"``, ``"skip"`` or ``"undo"``)."""

    event_id: int
    task: str
    clip_id: str
    kind: str
    label: bool | None
    annotator: str
    feed: str | None
    model_version: int | None
    time: datetime
    undoes: int | None
    session: str | None = None
    action: int | None = None
    propensity: float | None = None


@dataclass(frozen=True)
class Decision:
    """One label or skip to write with :meth:`LabelStore.add_events` (see :meth:`~LabelStore.add_event`)."""

    clip_id: str
    kind: Literal["label", "skip"] = "label"
    label: bool | None = None
    feed: str | None = None
    model_version: int | None = None
    propensity: float | None = None


def _validated(d: Decision) -> tuple[str, str, int | None, str | None, int | None, float | None]:
    """The columns of a decision's event row; TypeError/ValueError naming a bad field."""
    if not isinstance(d, Decision):
        raise TypeError(f"expected a Decision, got {type(d).__name__}")
    _check_name("clip_id", d.clip_id)
    value: int | None
    if d.kind == "label":
        if not isinstance(d.label, (bool, np.bool_)):
            raise TypeError(
                f"a label event needs label=True or label=False, got {d.label!r} "
                f"({type(d.label).__name__})"
            )
        value = int(bool(d.label))
    elif d.kind == "skip":
        if d.label is not None:
            raise ValueError(f"a skip event takes no label, got label={d.label!r}")
        value = None
    else:
        hint = "; use undo() to undo" if d.kind == "undo" else ""
        raise ValueError(f"kind must be 'label' or 'skip', got {d.kind!r}{hint}")
    if d.feed is not None and not isinstance(d.feed, str):
        raise TypeError(f"feed must be a string or None, got {d.feed!r}")
    mv = d.model_version
    if mv is not None and (
        isinstance(mv, (bool, np.bool_)) or not isinstance(mv, (int, np.integer))
    ):
        raise TypeError(f"model_version must be an int or None, got {mv!r}")
    p = d.propensity
    if p is not None:
        if isinstance(p, (bool, np.bool_)) or not isinstance(
            p, (int, float, np.floating, np.integer)
        ):
            raise TypeError(f"propensity must be a number in (0, 1] or None, got {p!r}")
        if not 0.0 < float(p) <= 1.0:
            raise ValueError(f"propensity must lie in (0, 1], got {p!r}")
        p = float(p)
    return d.clip_id, d.kind, value, d.feed, None if mv is None else int(mv), p


# --------------------------------------------------------------------------- migrations


def _script(conn: sqlite3.Connection, script: str) -> None:
    """Run ``;``-separated DDL in the open transaction (``executescript`` would commit it)."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _migrate_0_to_1(conn: sqlite3.Connection) -> None:
    _script(
        conn,
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE tasks (
            task_id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            library_id TEXT NOT NULL,
            embedder_fingerprint TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE TABLE events (
            event_id INTEGER PRIMARY KEY,
            task_id INTEGER NOT NULL REFERENCES tasks(task_id),
            clip_id TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('label', 'skip', 'undo')),
            label INTEGER CHECK (label IN (0, 1)),
            annotator TEXT NOT NULL,
            time TEXT NOT NULL,
            undoes INTEGER REFERENCES events(event_id),
            CHECK ((kind = 'label') = (label IS NOT NULL)),
            CHECK ((kind = 'undo') = (undoes IS NOT NULL))
        );
        CREATE INDEX events_by_annotator ON events(task_id, annotator, event_id);
        """,
    )
    conn.executemany(
        "INSERT INTO meta(key, value) VALUES (?, ?)",
        [("application", APPLICATION), ("created_at", _now())],
    )


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    _script(
        conn,
        """
        ALTER TABLE tasks ADD COLUMN query TEXT;
        ALTER TABLE events ADD COLUMN feed TEXT;
        ALTER TABLE events ADD COLUMN model_version INTEGER;
        CREATE UNIQUE INDEX IF NOT EXISTS events_undoes ON events(undoes)
            WHERE undoes IS NOT NULL;
        CREATE INDEX IF NOT EXISTS events_by_clip
            ON events(task_id, clip_id, annotator, event_id);
        CREATE TABLE current_labels (
            task_id INTEGER NOT NULL,
            clip_id TEXT NOT NULL,
            annotator TEXT NOT NULL,
            event_id INTEGER NOT NULL REFERENCES events(event_id),
            PRIMARY KEY (task_id, clip_id, annotator)
        ) WITHOUT ROWID;
        """,
    )
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    _rebuild_current(conn)


def _migrate_2_to_3(conn: sqlite3.Connection) -> None:
    _script(
        conn,
        """
        ALTER TABLE events ADD COLUMN session TEXT;
        ALTER TABLE events ADD COLUMN action INTEGER;
        ALTER TABLE events ADD COLUMN propensity REAL
            CHECK (propensity IS NULL OR (propensity > 0 AND propensity <= 1));
        CREATE INDEX IF NOT EXISTS events_by_session ON events(task_id, session, event_id);
        CREATE INDEX IF NOT EXISTS events_by_action ON events(action) WHERE action IS NOT NULL;
        """,
    )


def _migrate_3_to_4(conn: sqlite3.Connection) -> None:
    _script(
        conn,
        """
        CREATE TABLE task_state (
            task_id INTEGER PRIMARY KEY REFERENCES tasks(task_id),
            state TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        """,
    )


#: ``MIGRATIONS[v]`` upgrades a schema-``v`` file to ``v + 1`` inside an open transaction.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _migrate_0_to_1,
    _migrate_1_to_2,
    _migrate_2_to_3,
    _migrate_3_to_4,
]
SCHEMA_VERSION = len(MIGRATIONS)
#: A task's saved serving state larger than this is refused (written) or ignored (read).
MAX_STATE_BYTES = 1 << 20


def _rebuild_current(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM current_labels")
    conn.execute(
        """
        INSERT INTO current_labels(task_id, clip_id, annotator, event_id)
        SELECT task_id, clip_id, annotator, MAX(event_id) FROM events AS e
        WHERE kind IN ('label', 'skip')
          AND NOT EXISTS (SELECT 1 FROM events AS u WHERE u.undoes = e.event_id)
        GROUP BY task_id, clip_id, annotator
        """
    )


# --------------------------------------------------------------------------- helpers


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _check_name(what: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"{what} must be a non-empty string, got {value!r}")
    return value


def _identify(conn: sqlite3.Connection, path: Path) -> int:
    """Schema version of the store open on ``conn`` (0: empty database); StoreError if foreign."""
    try:
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        meta: dict[str, str] = {}
        if "meta" in tables:
            meta = dict(conn.execute("SELECT key, value FROM meta"))
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"{path}: not a readable SQLite database ({exc}); "
            "it was left untouched - choose another path for the label store"
        ) from exc
    foreign = (
        f"{path}: is a SQLite database of another application, not a va_widgets label store; "
        "it was left untouched - choose another path for the label store"
    )
    if not tables:
        if app_id not in (0, APPLICATION_ID) or version != 0:
            raise StoreError(foreign)
        return 0
    if meta.get("application") != APPLICATION:
        raise StoreError(foreign)
    if str(version) != meta.get("schema_version"):
        raise StoreError(
            f"{path}: inconsistent label store (PRAGMA user_version={version}, "
            f"meta.schema_version={meta.get('schema_version')!r}); restore it from a backup"
        )
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path}: label store schema version {version} is newer than this va_widgets "
            f"supports ({SCHEMA_VERSION}); upgrade va_widgets to open it"
        )
    return version


def _validate_existing(path: Path) -> None:
    """Raise StoreError unless ``path`` is absent, empty, or a (possibly older) label store.

    Reads only: the file is not modified whatever it holds.
    """
    if not path.exists():
        if not path.parent.is_dir():
            raise StoreError(f"{path}: folder {path.parent} does not exist; create it first")
        return
    if not path.is_file():
        raise StoreError(f"{path}: is not a regular file; choose a file path for the label store")
    with path.open("rb") as fh:
        header = fh.read(100)
    if not header:
        return  # empty file: SQLite treats it as a new database
    if not header.startswith(_SQLITE_MAGIC):
        raise StoreError(
            f"{path}: is not a SQLite file, so not a va_widgets label store; "
            "it was left untouched - choose another path for the label store"
        )
    sidecars = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]
    # A WAL-mode file with no -wal/-shm is closed and complete: read it as immutable, so
    # SQLite creates no side files next to it. Otherwise a read-only connection.
    closed_wal = len(header) == 100 and header[18] == 2 and not any(p.exists() for p in sidecars)
    mode = "immutable=1" if closed_wal else "mode=ro"
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?{mode}", uri=True)
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot open ({exc})") from exc
    try:
        _identify(conn, path)
    finally:
        conn.close()


# files (device, inode) this process holds open as label stores, with their connection counts
_open_files: dict[tuple[int, int], int] = {}
_open_files_lock = threading.Lock()


def _file_key(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _open_here(path: Path) -> tuple[int, int] | None:
    """The file's key when this process already has a label store open on it."""
    key = _file_key(path)
    with _open_files_lock:
        return key if key is not None and _open_files.get(key) else None


def _register(path: Path) -> tuple[int, int] | None:
    key = _file_key(path)
    if key is not None:
        with _open_files_lock:
            _open_files[key] = _open_files.get(key, 0) + 1
    return key


def _unregister(key: tuple[int, int] | None) -> None:
    if key is None:
        return
    with _open_files_lock:
        left = _open_files.get(key, 0) - 1
        if left > 0:
            _open_files[key] = left
        else:
            _open_files.pop(key, None)


def _check_writable(path: Path) -> None:
    """StoreError naming the folder when the store cannot be written there (SQLite itself
    would say only "unable to open database file" or "attempt to write a readonly database")."""
    import os

    folder = path.parent
    # WAL mode writes <name>-wal and <name>-shm beside the file, so the folder must be writable
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise StoreError(
            f"{path}: cannot write the label store there: {'the file' if path.exists() else 'the folder'} "
            f"{path if path.exists() else folder} is read-only for this user; pass a writable "
            "store= (e.g. va.Task(lib, name, store='labels.sqlite')) or make the folder writable"
        )


_EVENT_COLUMNS = (
    "e.event_id, t.name, e.clip_id, e.kind, e.label, e.annotator, e.feed, e.model_version, "
    "e.time, e.undoes, e.session, e.action, e.propensity"
)


def _event(row: tuple[Any, ...]) -> Event:
    return Event(
        event_id=row[0],
        task=row[1],
        clip_id=row[2],
        kind=row[3],
        label=None if row[4] is None else bool(row[4]),
        annotator=row[5],
        feed=row[6],
        model_version=row[7],
        time=datetime.fromisoformat(row[8]),
        undoes=row[9],
        session=row[10],
        action=row[11],
        propensity=row[12],
    )


def _times(values: tuple[str, ...]) -> pd.Series:
    times = pd.to_datetime(pd.Series(values, dtype="str"), utc=True, format="ISO8601")
    return times.astype("datetime64[us, UTC]")


_LABEL_COLUMNS = [
    "clip_id",
    "label",
    "annotator",
    "feed",
    "time",
    "model_version",
    "propensity",
    "event_id",
]


def _label_frame(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    """DataFrame of label rows ``(event_id, clip_id, label, annotator, feed, time,
    model_version, propensity)``."""
    cols = list(zip(*rows, strict=True)) if rows else [()] * 8
    return pd.DataFrame(
        {
            "clip_id": pd.Series(cols[1], dtype="str"),
            "label": pd.Series(cols[2], dtype="bool"),
            "annotator": pd.Series(cols[3], dtype="str"),
            "feed": pd.Series(cols[4], dtype="object"),
            "time": _times(cols[5]),
            "model_version": pd.Series(cols[6], dtype="Int64"),
            "propensity": pd.Series([np.nan if v is None else v for v in cols[7]], dtype="float64"),
            "event_id": pd.Series(cols[0], dtype="int64"),
        },
        columns=_LABEL_COLUMNS,
    )


# --------------------------------------------------------------------------- the store


class LabelStore:
    """An append-only log of label events for several tasks and annotators in one SQLite file.

    Parameters
    ----------
    path : str or Path
        The SQLite file. Created if missing (its folder must exist); an older store is
        migrated. A file that is not a va_widgets label store raises :class:`StoreError`
        and is left byte-for-byte unchanged.
    timeout : float
        Seconds a write waits for another process holding the write lock before
        :class:`StoreError` is raised.

    Notes
    -----
    Every write method runs one transaction that has committed (and been fsynced) when it
    returns. The store can be shared by several processes. Use as a context manager or call
    :meth:`close`.
    """

    def __init__(self, path: str | Path, *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self._timeout = float(timeout)
        self._lock = threading.RLock()
        self._task_ids: dict[str, int] = {}
        self._conn: sqlite3.Connection | None = None
        if _open_here(self.path) is None:
            # Reads the file's header with a plain open() and close(): never while this
            # process has a connection to it, because closing any descriptor of a file drops
            # every POSIX lock the process holds on it, SQLite's included; another process
            # could then checkpoint and delete the WAL under our connection (labels lost).
            _validate_existing(self.path)
        _check_writable(self.path)
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=min(self._timeout, 5.0),
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open ({exc})") from exc
        self._conn = conn
        try:
            self._retry(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone())
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            if self._retry(lambda: _identify(conn, self.path)) < SCHEMA_VERSION:
                self._write(self._migrate)  # checks again under the write lock
            # unregistered by close(), or when the store is garbage-collected unclosed
            self._release = weakref.finalize(self, _unregister, _register(self.path))
        except BaseException:
            self._conn = None
            conn.close()
            raise

    # ---------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Close the file (idempotent); later calls raise :class:`StoreError`."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
                self._release()

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else "open"
        return f"LabelStore({str(self.path)!r}, {state})"

    # ---------------------------------------------------------------- transactions

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self.path}: the label store is closed; open a new LabelStore")
        return self._conn

    def _retry(self, fn: Callable[[], T]) -> T:
        """Run ``fn``, retrying with backoff while the database is busy, up to the timeout."""
        deadline = time.monotonic() + self._timeout
        delay = 0.005
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise StoreError(f"{self.path}: {exc}") from exc
                if time.monotonic() >= deadline:
                    raise StoreError(
                        f"{self.path}: still locked by another process after "
                        f"{self._timeout:g} s; close other programs writing to it or retry"
                    ) from exc
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.25)

    def _write(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``body`` in one ``BEGIN IMMEDIATE`` transaction, committed on return."""

        def attempt() -> T:
            conn = self._db
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = body(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result

        with self._lock:
            return self._retry(attempt)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = _identify(conn, self.path)  # again, now that we hold the write lock
        if version == SCHEMA_VERSION:
            return
        for migrate in MIGRATIONS[version:]:
            migrate(conn)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute(
            "INSERT INTO meta(key, value) VALUES ('schema_version', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (str(SCHEMA_VERSION),),
        )
        if version:
            conn.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?)",
                (f"migrated_{version}_to_{SCHEMA_VERSION}", _now()),
            )

    def _task_id(self, conn: sqlite3.Connection, task: str) -> int:
        task_id = self._task_ids.get(task)
        if task_id is None:
            row = conn.execute("SELECT task_id FROM tasks WHERE name = ?", (task,)).fetchone()
            if row is None:
                raise StoreError(
                    f"{self.path}: no task {task!r} in this store; create it with open_task()"
                )
            task_id = self._task_ids[task] = row[0]
        return task_id

    # ---------------------------------------------------------------- tasks

    def open_task(
        self,
        task: str,
        *,
        library_id: str,
        embedder_fingerprint: str,
        query: str | None = None,
    ) -> TaskInfo:
        """Create ``task`` or reopen it, checking it belongs to the same library and embedder.

        Parameters
        ----------
        task : str
            Task name, unique in the store.
        library_id, embedder_fingerprint : str
            Identify the clip library and the embedder the labels refer to.
        query : str, optional
            Recorded when the task is created; ignored when it is reopened.

        Raises
        ------
        TaskMismatch
            The task exists with another library id or embedder fingerprint.
        """
        _check_name("task", task)
        _check_name("library_id", library_id)
        _check_name("embedder_fingerprint", embedder_fingerprint)
        if query is not None and not isinstance(query, str):
            raise TypeError(f"query must be a string or None, got {query!r}")

        def body(conn: sqlite3.Connection) -> TaskInfo:
            row = conn.execute(
                "SELECT library_id, embedder_fingerprint, query, created_at FROM tasks "
                "WHERE name = ?",
                (task,),
            ).fetchone()
            if row is None:
                row = (library_id, embedder_fingerprint, query, _now())
                conn.execute(
                    "INSERT INTO tasks(name, library_id, embedder_fingerprint, query, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (task, *row),
                )
            elif (row[0], row[1]) != (library_id, embedder_fingerprint):
                raise TaskMismatch(
                    f"{self.path}: task {task!r} was created for library {row[0]!r} with "
                    f"embedder {row[1]!r}, but was opened for library {library_id!r} with "
                    f"embedder {embedder_fingerprint!r}; open the label store that belongs "
                    "to this library, or use a new task name"
                )
            return TaskInfo(task, row[0], row[1], row[2], datetime.fromisoformat(row[3]))

        return self._write(body)

    def tasks(self) -> list[TaskInfo]:
        """All tasks in the store, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT name, library_id, embedder_fingerprint, query, created_at FROM tasks "
                "ORDER BY task_id"
            ).fetchall()
        return [
            TaskInfo(name, library, fingerprint, query, datetime.fromisoformat(created))
            for name, library, fingerprint, query, created in rows
        ]

    def task_state(self, task: str) -> dict[str, Any]:
        """What ``task`` saved with :meth:`save_task_state` (``{}`` when nothing or unreadable).

        The state is input like any file: a value that is not a JSON object, or larger than
        :data:`MAX_STATE_BYTES`, is ignored with a warning; its fields are checked by its reader.
        """

        def read() -> Any:
            return self._db.execute(
                "SELECT s.state FROM task_state s JOIN tasks t USING (task_id) WHERE t.name = ?",
                (task,),
            ).fetchone()

        with self._lock:
            row = self._retry(read)
        if row is None:
            return {}
        try:
            if len(row[0]) > MAX_STATE_BYTES:
                raise ValueError(f"larger than {MAX_STATE_BYTES} bytes")
            state = json.loads(row[0])
            if not isinstance(state, dict):
                raise ValueError("not a JSON object")
        except (TypeError, ValueError, RecursionError) as exc:
            warnings.warn(
                f"{self.path}: the saved state of task {task!r} is unreadable ({exc}); it starts "
                "afresh (labels are not affected)",
                RuntimeWarning,
                stacklevel=2,
            )
            return {}
        return state

    def save_task_state(self, task: str, state: dict[str, Any]) -> None:
        """Replace the serving state of ``task`` (its feed, model version, the auto feed's
        learned rewards): what lets a restarted kernel continue where the last one stopped."""
        text = json.dumps(state, allow_nan=False, separators=(",", ":"))
        if len(text) > MAX_STATE_BYTES:
            raise ValueError(f"task state of {len(text)} bytes exceeds {MAX_STATE_BYTES}")

        def body(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO task_state(task_id, state, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(task_id) DO UPDATE SET state = excluded.state, "
                "updated_at = excluded.updated_at",
                (self._task_id(conn, task), text, _now()),
            )

        self._write(body)

    # ---------------------------------------------------------------- writes

    def add_event(
        self,
        task: str,
        clip_id: str,
        kind: Literal["label", "skip"],
        *,
        label: bool | None = None,
        annotator: str,
        feed: str | None = None,
        model_version: int | None = None,
        session: str | None = None,
        propensity: float | None = None,
    ) -> int:
        """Append a label or skip event; committed to disk when this returns.

        Parameters
        ----------
        task, clip_id : str
            The task (created with :meth:`open_task`) and the clip.
        kind : {"label", "skip"}
            A skip means the annotator passed on the clip; it is not a label.
        label : bool
            ``True`` or ``False`` for a label event (not 1/0 or strings); None for a skip.
        annotator : str
            Who made the decision.
        feed : str, optional
            Where the clip was shown (e.g. ``"borderline"``, ``"search"``).
        model_version : int, optional
            Version of the model whose suggestion was on screen.
        session : str, optional
            The writer (one Task object); :meth:`undo` can be limited to it.
        propensity : float, optional
            The probability, in (0, 1], with which the feed drew this clip at random; None
            when it was not a random draw (chosen by hand or by rank).

        Returns
        -------
        int
            The event id.
        """
        item = Decision(clip_id, kind, label, feed, model_version, propensity)
        return self.add_events(task, [item], annotator=annotator, session=session)[0]

    def add_events(
        self,
        task: str,
        decisions: Sequence[Decision],
        *,
        annotator: str,
        session: str | None = None,
    ) -> list[int]:
        """Append several label or skip events as ONE action, in one transaction.

        All or none are written; :meth:`undo` undoes them together. Returns their event ids.
        """
        _check_name("annotator", annotator)
        if session is not None:
            _check_name("session", session)
        rows = [_validated(d) for d in decisions]
        if not rows:
            raise ValueError("add_events needs at least one decision")

        def body(conn: sqlite3.Connection) -> list[int]:
            task_id = self._task_id(conn, task)
            ids: list[int] = []
            for clip_id, kind, value, feed, mv, propensity in rows:
                cur = conn.execute(
                    "INSERT INTO events(task_id, clip_id, kind, label, annotator, feed, "
                    "model_version, time, session, action, propensity) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        task_id, clip_id, kind, value, annotator, feed, mv, _now(), session,
                        ids[0] if ids else None, propensity,
                    ),
                )  # fmt: skip
                event_id = cur.lastrowid
                assert event_id is not None
                ids.append(event_id)
                conn.execute(
                    "INSERT INTO current_labels(task_id, clip_id, annotator, event_id) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT(task_id, clip_id, annotator) "
                    "DO UPDATE SET event_id = excluded.event_id",
                    (task_id, clip_id, annotator, event_id),
                )
            if len(ids) > 1:
                conn.execute("UPDATE events SET action = ? WHERE event_id = ?", (ids[0], ids[0]))
            return ids

        return self._write(body)

    def undo(self, task: str, *, annotator: str, session: str | None = None) -> list[Event]:
        """Undo ``annotator``'s most recent action in ``task`` that is not yet undone.

        An action is one label or skip, or several written together by :meth:`add_events`;
        each of its events gets an undo event referencing it. With ``session``, only that
        writer's actions are considered (another notebook's later labels are left alone).
        Repeated calls walk back further.

        Returns
        -------
        list of Event
            The events undone, in the order they were written (their ``clip_id`` are the clips
            to show again); empty when there was nothing to undo.
        """
        _check_name("annotator", annotator)
        if session is not None:
            _check_name("session", session)
        live = "NOT EXISTS (SELECT 1 FROM events AS u WHERE u.undoes = e.event_id)"

        def body(conn: sqlite3.Connection) -> list[Event]:
            task_id = self._task_id(conn, task)
            where = "e.task_id = ? AND e.annotator = ? AND e.kind IN ('label', 'skip')"
            params: tuple[Any, ...] = (task_id, annotator)
            if session is not None:
                where += " AND e.session = ?"
                params += (session,)
            last = conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events AS e JOIN tasks AS t USING (task_id) "
                f"WHERE {where} AND {live} ORDER BY e.event_id DESC LIMIT 1",
                params,
            ).fetchone()
            if last is None:
                return []
            action = _event(last).action
            if action is None:
                undone = [_event(last)]
            else:
                undone = [
                    _event(row)
                    for row in conn.execute(
                        f"SELECT {_EVENT_COLUMNS} FROM events AS e JOIN tasks AS t "
                        f"USING (task_id) WHERE e.action = ? AND {live} ORDER BY e.event_id",
                        (action,),
                    )
                ]
            for event in undone:
                conn.execute(
                    "INSERT INTO events(task_id, clip_id, kind, annotator, time, undoes, session) "
                    "VALUES (?, ?, 'undo', ?, ?, ?, ?)",
                    (task_id, event.clip_id, annotator, _now(), event.event_id, session),
                )
                self._restore_current(conn, task_id, event.clip_id, annotator)
            return undone

        return self._write(body)

    @staticmethod
    def _restore_current(
        conn: sqlite3.Connection, task_id: int, clip_id: str, annotator: str
    ) -> None:
        """Point ``current_labels`` at the annotator's latest live event of a clip (after undo)."""
        latest = conn.execute(
            "SELECT MAX(event_id) FROM events AS e WHERE task_id = ? AND clip_id = ? "
            "AND annotator = ? AND kind IN ('label', 'skip') "
            "AND NOT EXISTS (SELECT 1 FROM events AS u WHERE u.undoes = e.event_id)",
            (task_id, clip_id, annotator),
        ).fetchone()[0]
        if latest is None:
            conn.execute(
                "DELETE FROM current_labels WHERE task_id = ? AND clip_id = ? AND annotator = ?",
                (task_id, clip_id, annotator),
            )
        else:
            conn.execute(
                "UPDATE current_labels SET event_id = ? WHERE task_id = ? AND clip_id = ? "
                "AND annotator = ?",
                (latest, task_id, clip_id, annotator),
            )

    def rebuild_current(self) -> None:
        """Recompute the derived current-labels table of every task from the event log."""
        self._write(_rebuild_current)

    # ---------------------------------------------------------------- reads

    def current(self, task: str, *, annotator: str | None = None) -> pd.DataFrame:
        """Current labels of ``task``, in the order they were given; skipped clips excluded.

        Parameters
        ----------
        annotator : str, optional
            Only this annotator's labels: per clip, their latest event not undone, if it
            is a label. By default, the task's label of each clip: the latest such label
            across annotators (what a model trains on). A later skip by another annotator
            does not remove a label.

        Returns
        -------
        DataFrame
            Columns ``clip_id``, ``label`` (bool), ``annotator``, ``feed``, ``time`` (UTC),
            ``model_version`` (Int64), ``event_id``; one row per clip.
        """
        rows = self._current_label_rows(task, annotator)
        if annotator is None:
            latest: dict[str, tuple[Any, ...]] = {}
            for row in rows:  # ascending event_id: later rows win
                latest[row[1]] = row
            rows = sorted(latest.values())
        return _label_frame(rows)

    def labels_by_annotator(self, task: str) -> pd.DataFrame:
        """Every annotator's current labels: one row per (clip, annotator), columns as :meth:`current`."""
        return _label_frame(self._current_label_rows(task, None))

    def _current_label_rows(self, task: str, annotator: str | None) -> list[tuple[Any, ...]]:
        """Current label events of ``task`` (of one annotator, or all), by event id."""
        with self._lock:
            conn = self._db
            sql = (
                "SELECT e.event_id, e.clip_id, e.label, e.annotator, e.feed, e.time, "
                "e.model_version, e.propensity FROM current_labels AS c "
                "JOIN events AS e ON e.event_id = c.event_id "
                "WHERE c.task_id = ? AND e.kind = 'label'"
            )
            params: tuple[Any, ...] = (self._task_id(conn, task),)
            if annotator is not None:
                sql += " AND c.annotator = ?"
                params += (annotator,)
            return conn.execute(sql + " ORDER BY e.event_id", params).fetchall()

    def skipped(self, task: str, *, annotator: str | None = None) -> set[str]:
        """Clips whose current event is a skip.

        With ``annotator``, the clips that annotator currently skips. By default, clips
        some annotator skips and no annotator labels (so disjoint from :meth:`current`).
        """
        with self._lock:
            conn = self._db
            task_id = self._task_id(conn, task)
            sql = (
                "SELECT c.clip_id, c.annotator, e.kind FROM current_labels AS c "
                "JOIN events AS e ON e.event_id = c.event_id WHERE c.task_id = ?"
            )
            rows = conn.execute(sql, (task_id,)).fetchall()
        if annotator is not None:
            return {clip for clip, who, kind in rows if who == annotator and kind == "skip"}
        labelled = {clip for clip, _, kind in rows if kind == "label"}
        return {clip for clip, _, kind in rows if kind == "skip"} - labelled

    def history(self, task: str) -> pd.DataFrame:
        """Every event of ``task`` including undos, in order.

        Returns
        -------
        DataFrame
            Columns ``event_id``, ``clip_id``, ``kind``, ``label`` (nullable boolean),
            ``annotator``, ``feed``, ``time`` (UTC), ``model_version`` (Int64), ``undoes``
            (Int64: the event an undo undoes), ``undone`` (bool: undone later), ``session``,
            ``action`` (Int64: shared by the events of one action) and ``propensity``
            (float, NaN when not a random draw).
        """
        with self._lock:
            conn = self._db
            rows = conn.execute(
                "SELECT e.event_id, e.clip_id, e.kind, e.label, e.annotator, e.feed, e.time, "
                "e.model_version, e.undoes, "
                "EXISTS (SELECT 1 FROM events AS u WHERE u.undoes = e.event_id), "
                "e.session, e.action, e.propensity "
                "FROM events AS e WHERE e.task_id = ? ORDER BY e.event_id",
                (self._task_id(conn, task),),
            ).fetchall()
        cols = list(zip(*rows, strict=True)) if rows else [()] * 13
        return pd.DataFrame(
            {
                "event_id": pd.Series(cols[0], dtype="int64"),
                "clip_id": pd.Series(cols[1], dtype="str"),
                "kind": pd.Series(cols[2], dtype="str"),
                "label": pd.Series(
                    [None if v is None else bool(v) for v in cols[3]], dtype="boolean"
                ),
                "annotator": pd.Series(cols[4], dtype="str"),
                "feed": pd.Series(cols[5], dtype="object"),
                "time": _times(cols[6]),
                "model_version": pd.Series(cols[7], dtype="Int64"),
                "undoes": pd.Series(cols[8], dtype="Int64"),
                "undone": pd.Series(cols[9], dtype="bool"),
                "session": pd.Series(cols[10], dtype="object"),
                "action": pd.Series(cols[11], dtype="Int64"),
                "propensity": pd.Series(
                    [np.nan if v is None else v for v in cols[12]], dtype="float64"
                ),
            }
        )

    def agreement(self, task: str) -> pd.DataFrame:
        """Cohen's kappa between each pair of annotators on the clips both currently label.

        Returns
        -------
        DataFrame
            Columns ``annotator_a``, ``annotator_b`` (a < b), ``n_shared`` (clips both
            labelled; skips do not count), ``n_agree`` and ``kappa`` (NaN when undefined:
            no shared clips, or both annotators gave one same label to every shared clip).
        """
        from sklearn.metrics import cohen_kappa_score

        frame = self.labels_by_annotator(task)
        by_annotator = {
            name: dict(zip(group["clip_id"], group["label"], strict=True))
            for name, group in frame.groupby("annotator", sort=True)
        }
        records = []
        for a, b in combinations(sorted(by_annotator), 2):
            la, lb = by_annotator[a], by_annotator[b]
            shared = sorted(la.keys() & lb.keys())
            ya = [bool(la[c]) for c in shared]
            yb = [bool(lb[c]) for c in shared]
            kappa = float("nan")
            if shared:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    kappa = float(cohen_kappa_score(ya, yb, labels=[False, True]))
            n_agree = sum(x == y for x, y in zip(ya, yb, strict=True))
            records.append((a, b, len(shared), n_agree, kappa))
        return pd.DataFrame(
            records, columns=["annotator_a", "annotator_b", "n_shared", "n_agree", "kappa"]
        ).astype({"n_shared": "int64", "n_agree": "int64", "kappa": "float64"})
