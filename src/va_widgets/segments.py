"""Where in a video: per-clip scores merged into segments, written as tables or WebVTT.

:func:`segments` turns the per-clip scores of ``VideoClassifier.score_videos`` into time
intervals where the concept occurs; :func:`segments_to_webvtt` and :func:`write_segments`
deliver them as WebVTT tracks (one per video, for a ``<track>`` element or a video player) or
as CSV / Parquet tables.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

#: columns of the table :func:`segments` returns
COLUMNS = ["video", "start_seconds", "end_seconds", "peak_score", "mean_score", "clips"]
REQUIRED = ("video", "start_seconds", "end_seconds", "score")
#: the threshold used when neither the caller nor the scores name one
DEFAULT_THRESHOLD = 0.5
# clip times are float seconds: gaps smaller than this are rounding, not gaps
_EPS = 1e-6


def segments(
    scores: pd.DataFrame,
    *,
    threshold: float | None = None,
    min_gap: float = 0.0,
    min_length: float = 0.0,
) -> pd.DataFrame:
    """Intervals of each video where the clip scores are at least ``threshold``.

    ``scores`` has one row per clip with ``video``, ``start_seconds``, ``end_seconds`` and
    ``score`` (as returned by ``VideoClassifier.score_videos``). Per video, clips sorted by
    start whose score is at least ``threshold`` are merged into one segment when they touch
    or overlap, or when the gap between them is at most ``min_gap`` seconds (the clips in the
    gap are bridged over, not counted); segments shorter than ``min_length`` seconds are
    dropped. Clips without a score (NaN) never start or extend a segment.

    ``threshold`` defaults to ``scores.attrs["threshold"]`` when present (``score_videos``
    and ``score_library`` put the classifier's own threshold there), else 0.5.

    Returns one row per segment, ordered by video (in order of first appearance) and start:
    ``video``, ``start_seconds``, ``end_seconds``, ``peak_score`` and ``mean_score`` (the
    highest and the mean score of its clips at or above the threshold) and ``clips`` (how
    many such clips). The table's ``attrs["threshold"]`` records the threshold used.
    """
    if not isinstance(scores, pd.DataFrame):
        raise ValueError(f"scores must be a pandas DataFrame, got {type(scores).__name__}")
    missing = [c for c in REQUIRED if c not in scores.columns]
    if missing:
        raise ValueError(
            f"scores has no column(s) {missing}; it needs {list(REQUIRED)} "
            "(the output of VideoClassifier.score_videos)"
        )
    if threshold is None:
        threshold = scores.attrs.get("threshold", DEFAULT_THRESHOLD)
    threshold = _number("threshold", threshold)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1] (a probability), got {threshold!r}")
    min_gap = _number("min_gap", min_gap)
    min_length = _number("min_length", min_length)
    for name, value in (("min_gap", min_gap), ("min_length", min_length)):
        if value < 0:
            raise ValueError(f"{name} must be 0 or more seconds, got {value!r}")

    frame = _checked_table(scores)
    frame["order"] = pd.factorize(frame["video"])[0]
    frame = frame[frame["score"].to_numpy(dtype=float) >= threshold]
    frame = frame.sort_values(["order", "start_seconds", "end_seconds"], kind="stable")
    if frame.empty:
        out = pd.DataFrame({c: pd.Series(dtype=t) for c, t in _DTYPES.items()})
        out.attrs["threshold"] = threshold
        return out
    order = frame["order"].to_numpy()
    start = frame["start_seconds"].to_numpy(dtype=float)

    # the furthest end reached so far within the same video, before each clip
    reach = frame.groupby("order", sort=False)["end_seconds"].cummax().to_numpy(dtype=float)
    previous = np.r_[-np.inf, reach[:-1]]
    new = np.r_[True, order[1:] != order[:-1]] | (start - previous > min_gap + _EPS)
    frame["segment"] = np.cumsum(new)
    grouped = frame.groupby("segment", sort=True)
    out = pd.DataFrame(
        {
            "video": grouped["video"].first(),
            "start_seconds": grouped["start_seconds"].min().astype(float),
            "end_seconds": grouped["end_seconds"].max().astype(float),
            "peak_score": grouped["score"].max().astype(float),
            "mean_score": grouped["score"].mean().astype(float),
            "clips": grouped["score"].size().astype(np.int64),
        }
    ).reset_index(drop=True)
    length = out["end_seconds"] - out["start_seconds"]
    out = out[length >= min_length - _EPS].reset_index(drop=True)
    out.attrs["threshold"] = threshold
    return out


def _checked_table(scores: pd.DataFrame) -> pd.DataFrame:
    """The required columns, each checked (a clip without a time would vanish silently or
    stretch a segment to infinity); ValueError naming the column and the first bad row."""
    frame = scores[list(REQUIRED)].copy()

    def refuse(column: str, what: str, bad: np.ndarray) -> None:
        if bad.any():
            first = frame.index[int(np.flatnonzero(bad)[0])]
            raise ValueError(
                f"scores: {column} must {what} ({int(bad.sum())} row(s) do not, the first at "
                f"index {first!r}); fix or drop those rows"
            )

    refuse("video", "name a video in every row", frame["video"].isna().to_numpy())
    for column in ("start_seconds", "end_seconds", "score"):
        try:
            frame[column] = frame[column].to_numpy(dtype=float)
        except (TypeError, ValueError):
            raise ValueError(
                f"scores: {column} must be numeric, got {frame[column].dtype} values such as "
                f"{frame[column].iloc[0]!r}"
            ) from None
    start, end = frame["start_seconds"].to_numpy(), frame["end_seconds"].to_numpy()
    refuse("start_seconds", "be finite (seconds)", ~np.isfinite(start))
    refuse("end_seconds", "be finite (seconds)", ~np.isfinite(end))
    refuse("end_seconds", "not be before start_seconds", end < start)
    return frame


_DTYPES = {
    "video": object,
    "start_seconds": float,
    "end_seconds": float,
    "peak_score": float,
    "mean_score": float,
    "clips": np.int64,
}


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return number


def f1_threshold(y: Iterable[int], p: Iterable[float]) -> float | None:
    """The score threshold maximising F1 when clips with ``p >= threshold`` are called positive.

    ``y`` are 0/1 labels and ``p`` the (out-of-fold) scores of the same clips; the threshold
    is one of the scores in ``p`` (the highest among equally good ones). None without at
    least one positive and one negative label.
    """
    from sklearn.metrics import precision_recall_curve

    y_arr = np.asarray(list(y), dtype=int)
    p_arr = np.asarray(list(p), dtype=float)
    if len(y_arr) == 0 or y_arr.min() == y_arr.max():
        return None
    precision, recall, thresholds = precision_recall_curve(y_arr, p_arr)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0)
    best = np.flatnonzero(f1 == f1.max())
    return float(thresholds[best[-1]])


# ------------------------------------------------------------------------------- WebVTT
def _timestamp(seconds: float) -> str:
    ms = max(0, round(float(seconds) * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{ms:03d}"


def _cue_text(text: str) -> str:
    text = " ".join(str(text).split())  # no line breaks: a blank line would end the cue
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def segments_to_webvtt(
    segments: pd.DataFrame, video: object = None, *, label: str = "concept"
) -> str:
    """The WebVTT text of the segments of one video: one cue per segment.

    Each cue spans the segment (``HH:MM:SS.mmm --> HH:MM:SS.mmm``) and reads
    ``"<label> (peak 0.93)"``. ``video`` selects the rows of that video; it may be omitted
    when ``segments`` holds one video only. A video without segments gives a valid file
    without cues.
    """
    missing = [
        c for c in ("video", "start_seconds", "end_seconds", "peak_score") if c not in segments
    ]
    if missing:
        raise ValueError(f"segments has no column(s) {missing}; pass the output of segments()")
    if video is None:
        videos = list(dict.fromkeys(segments["video"]))
        if len(videos) > 1:
            raise ValueError(
                f"segments holds {len(videos)} videos; name one with video=... "
                "(or write them all with write_segments)"
            )
        rows = segments
    else:
        rows = segments[segments["video"] == video]
    rows = rows.sort_values("start_seconds", kind="stable")
    lines = ["WEBVTT", ""]
    for i, row in enumerate(rows.itertuples(index=False), start=1):
        lines += [
            str(i),
            f"{_timestamp(row.start_seconds)} --> {_timestamp(row.end_seconds)}",
            _cue_text(f"{label} (peak {row.peak_score:.2f})"),
            "",
        ]
    return "\n".join(lines)


def check_segments_output(out: str | os.PathLike[str], n_videos: int) -> Path:
    """The path :func:`write_segments` writes ``n_videos`` videos' segments to, checked before
    any work: an empty path, a single ``.vtt`` for several videos, or a file of another kind
    is a ValueError naming it."""
    text = os.fspath(out)
    if not isinstance(text, str) or not text.strip():
        raise ValueError("segments output path is empty; give a .csv, .parquet, .vtt or folder")
    path = Path(text).expanduser()
    suffix = path.suffix.lower()
    if suffix == ".vtt" and n_videos > 1:
        raise ValueError(
            f"segments output {text!r} is one .vtt file, but there are {n_videos} videos; "
            "give a folder (ending in '/') to get one .vtt per video"
        )
    if (
        suffix not in (".csv", ".parquet", ".vtt")
        and suffix
        and not (text.endswith(("/", os.sep)) or path.is_dir())
    ):
        raise ValueError(
            f"segments output {text!r}: give a .csv, .parquet or .vtt file, or a folder"
        )
    return path


def write_segments(
    segments: pd.DataFrame,
    out: str | os.PathLike[str],
    *,
    label: str = "concept",
    videos: Iterable[object] | None = None,
) -> list[Path]:
    """Write ``segments`` to ``out``; return the files written.

    ``out`` ending in ``.csv`` or ``.parquet`` writes the table. A folder (an existing one,
    or a path ending in ``/``) gets one ``<video stem>.vtt`` per video; ``videos`` lists the
    videos to write tracks for (default: those in ``segments``), so that videos without
    segments get a track without cues. ``out`` ending in ``.vtt`` writes the track of the
    only video.
    """
    names = list(dict.fromkeys([*(() if videos is None else videos), *segments["video"]]))
    path = check_segments_output(out, len(names))
    if path.suffix.lower() == ".csv":
        path.parent.mkdir(parents=True, exist_ok=True)
        segments.to_csv(path, index=False)
        return [path]
    if path.suffix.lower() == ".parquet":
        path.parent.mkdir(parents=True, exist_ok=True)
        segments.to_parquet(path, index=False)
        return [path]
    if path.suffix.lower() == ".vtt":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(segments_to_webvtt(segments, label=label), encoding="utf-8")
        return [path]
    path.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    used: set[str] = set()
    for video in names:
        stem = re.sub(r"[^\w.-]+", "_", Path(str(video)).stem).strip("._") or "video"
        name, k = stem, 1
        while name.lower() in used:  # two videos with the same stem in different folders
            k += 1
            name = f"{stem}-{k}"
        used.add(name.lower())
        target = path / f"{name}.vtt"
        target.write_text(segments_to_webvtt(segments, video, label=label), encoding="utf-8")
        written.append(target)
    return written
