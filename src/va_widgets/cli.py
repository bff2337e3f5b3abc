"""Command line: ``va-widgets index|search|export|score|info`` for batch work outside a notebook."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from va_widgets.errors import VaWidgetsError

if TYPE_CHECKING:
    import pandas as pd

    from va_widgets.embedders import Embedder


def _embedder(args: argparse.Namespace) -> Embedder | None:
    from va_widgets.embedders import OpenClipEmbedder, PixelStatsEmbedder

    if args.offline:
        return PixelStatsEmbedder()
    if args.model is None and args.pretrained is None and args.model_config is None:
        return None  # the cache's own embedder, or the default for a new cache
    return OpenClipEmbedder(
        args.model or "ViT-B-32",
        "laion2b_s34b_b79k" if args.pretrained is None else args.pretrained,
        model_config=args.model_config,
        device=args.device,
    )


def _index(args: argparse.Namespace) -> int:
    from va_widgets.indexing import index_videos

    lib = index_videos(
        args.sources,
        args.cache,
        embedder=_embedder(args),
        clips="shots" if args.shots else ("fixed" if args.clip_seconds else None),
        clip_seconds=args.clip_seconds,
        frames_per_clip=args.frames_per_clip,
        workers=args.workers,
        executor=args.dask,
        progress=not args.quiet,
    )
    errors = lib.errors
    failed = errors[errors["severity"] == "error"]
    print(f"{len(lib)} clips from {lib.clips['video_id'].nunique()} video(s) in {args.cache}")
    for row in errors.itertuples():
        print(f"  {row.severity}: {row.video}: {row.message}", file=sys.stderr)
    if len(failed):
        print(f"{len(failed)} file(s) could not be indexed", file=sys.stderr)
        return 1
    return 0


def _search(args: argparse.Namespace) -> int:
    from va_widgets.library import ClipLibrary

    lib = ClipLibrary.open(args.cache)
    hits = lib.similar(args.text, k=args.k) if args.like else lib.search(args.text, k=args.k)
    for row in hits.itertuples():
        print(
            f"{row.score:7.4f}  {row.clip_id}  {row.video}  [{row.start_seconds:.2f}, {row.end_seconds:.2f})"
        )
    return 0


def _info(args: argparse.Namespace) -> int:
    from va_widgets.library import ClipLibrary

    lib = ClipLibrary.open(args.cache)
    print(lib)
    print(f"clip rule: {lib.rule}")
    for row in lib.errors.itertuples():
        print(f"  {row.severity}: {row.video}: {row.message}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from va_widgets.library import ClipLibrary
    from va_widgets.store import LabelStore
    from va_widgets.task import Task, export_paths

    export_paths(args.out, args.task)  # a bad path fails before anything is opened
    lib = ClipLibrary.open(args.cache)
    store_path = Path(args.store) if args.store else lib.cache / "labels.sqlite"
    if not store_path.is_file():
        raise VaWidgetsError(f"no label store at {str(store_path)!r}; label with a Task first")
    store = LabelStore(store_path)
    names = [t.name for t in store.tasks()]
    if args.task not in names:  # never create a task only to export nothing
        raise VaWidgetsError(
            f"no task {args.task!r} in {str(store_path)!r}; tasks there: "
            f"{', '.join(map(repr, names)) or 'none'}"
        )
    task = Task(lib, args.task, store=store, annotator="cli")
    for kind, path in task.export(args.out).items():
        print(f"{kind}: {path}")
    return 0


def _score(args: argparse.Namespace) -> int:
    from va_widgets.classifier import load_classifier
    from va_widgets.segments import segments as find_segments

    clf = load_classifier(args.classifier)
    threshold = clf.threshold if args.threshold is None else args.threshold
    # bad values fail before any video is indexed
    find_segments(
        _empty_scores(), threshold=threshold, min_gap=args.min_gap, min_length=args.min_length
    )
    if args.segments is not None:  # said now, not after every video is scored
        from va_widgets.indexing import discover_videos
        from va_widgets.segments import check_segments_output

        one_file = args.segments.strip().lower().endswith(".vtt")  # only then the count matters
        check_segments_output(
            args.segments, len(discover_videos(args.videos)[0]) if one_file else 1
        )
    scores = clf.score_videos(args.videos, cache=args.cache, progress=not args.quiet)
    if args.out:
        if args.out.endswith(".parquet"):
            scores.to_parquet(args.out, index=False)
        else:
            scores.to_csv(args.out, index=False)
        print(f"{len(scores)} clip scores written to {args.out}")
    elif args.segments is None:
        print(scores.to_string(index=False))
    if args.segments is not None:
        from va_widgets.segments import write_segments

        found = find_segments(
            scores, threshold=threshold, min_gap=args.min_gap, min_length=args.min_length
        )
        written = write_segments(
            found, args.segments, label=clf.task or "concept", videos=scores["video"]
        )
        print(
            f"{len(found)} segment(s) (score >= {threshold:g}) in "
            f"{found['video'].nunique()} of {scores['video'].nunique()} video(s) written to "
            + (str(written[0]) if len(written) == 1 else f"{len(written)} files in {args.segments}")
        )
    return 0


def _empty_scores() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(columns=["video", "start_seconds", "end_seconds", "score"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="va-widgets",
        description=__doc__,
        epilog="exit codes: 0 done; 1 done, but some files could not be indexed (listed on "
        "stderr); 2 the command could not run (the message names the input)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="index videos into a library folder (incremental)")
    p.add_argument("sources", nargs="+", help="video files or folders (searched recursively)")
    p.add_argument("--cache", required=True, help="the library folder")
    p.add_argument("--clip-seconds", type=float, help="fixed clip length in seconds (default 2)")
    p.add_argument("--shots", action="store_true", help="cut clips at shot boundaries instead")
    p.add_argument("--frames-per-clip", type=int, help="frames sampled per clip (default 4)")
    p.add_argument("--model", help="open_clip model name or hf-hub:org/repo (default ViT-B-32)")
    p.add_argument("--pretrained", help="open_clip weights tag or a local weights file")
    p.add_argument("--model-config", help="a custom open_clip model config (JSON)")
    p.add_argument("--device", help="cuda, mps or cpu (default: the fastest present)")
    p.add_argument(
        "--offline",
        action="store_true",
        help="use the pixel-statistics embedder (no weights, no text search)",
    )
    p.add_argument("--workers", type=int, help="decoding processes")
    p.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="spread the videos over a Dask cluster (e.g. tcp://scheduler:8786; needs "
        "va_widgets[dask] and the cache, videos and weights on a shared filesystem)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=_index)

    p = sub.add_parser("search", help="rank clips by a text prompt (or --like CLIP_ID)")
    p.add_argument("text", help="the text prompt, or a clip id with --like")
    p.add_argument("--cache", required=True)
    p.add_argument("-k", type=int, default=10, help="how many clips (default 10)")
    p.add_argument("--like", action="store_true", help="search by example: TEXT is a clip id")
    p.set_defaults(run=_search)

    p = sub.add_parser(
        "export", help="write a task's labels (CSV, Parquet) and classifier (.skops)"
    )
    p.add_argument(
        "out", help="output path prefix (e.g. exports/car-chase) or folder (e.g. exports/)"
    )
    p.add_argument("--cache", required=True, help="the library folder")
    p.add_argument("--task", required=True, help="the task name")
    p.add_argument("--store", help="the label store (default <cache>/labels.sqlite)")
    p.set_defaults(run=_export)

    p = sub.add_parser("score", help="score new videos with an exported classifier")
    p.add_argument("classifier", help="a .skops file written by export")
    p.add_argument("videos", nargs="+", help="video files or folders")
    p.add_argument("--out", help="write the scores to this .csv or .parquet file")
    p.add_argument("--cache", help="keep the index of the videos here (default: temporary)")
    p.add_argument(
        "--segments",
        metavar="OUT",
        help="also write where the concept occurs: OUT ending in .csv or .parquet gets a table "
        "of segments; a folder (ending in /) gets one WebVTT track <video stem>.vtt per video; "
        "OUT ending in .vtt gets the track of a single video",
    )
    p.add_argument(
        "--threshold",
        type=float,
        help="segment clips scoring at least this (default: the classifier's own, chosen at "
        "export as the F1-optimal score on the labels' out-of-fold scores; 0.5 for older files)",
    )
    p.add_argument(
        "--min-gap", type=float, default=0.0, help="bridge gaps up to this many seconds (default 0)"
    )
    p.add_argument(
        "--min-length",
        type=float,
        default=0.0,
        help="drop segments shorter than this many seconds (default 0)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=_score)

    p = sub.add_parser("info", help="describe a library folder")
    p.add_argument("--cache", required=True)
    p.set_defaults(run=_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``va-widgets`` command.

    Exit codes: 0 done; 1 done, but some files could not be indexed (listed on stderr);
    2 the command could not run (bad argument, missing or damaged cache, unknown task), with
    a message naming the input; argparse's own usage errors also exit 2.
    """
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (VaWidgetsError, ImportError, OSError, KeyError, ValueError) as exc:
        print(f"va-widgets: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
