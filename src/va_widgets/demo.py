"""The demo: make sample videos, index them, and search the library.

Run with ``python -m va_widgets.demo [folder]``. Uses the default CLIP model when its weights
can be loaded, else the offline pixel-statistics embedder (then it searches by example).
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Run the demo in ``argv[0]`` (default ``./va_demo``)."""
    import va_widgets as va
    from va_widgets.samples import clip_truth

    root = Path((argv or sys.argv[1:] or ["va_demo"])[0])
    print(f"1. making sample videos in {root / 'videos'} ...")
    truth = va.make_sample_videos(root / "videos")
    embedder = va.load_default_embedder(fallback=True)
    print(f"2. indexing with {embedder.name} ...")
    lib = va.index_videos(root / "videos", cache=root / "cache", embedder=embedder)
    print(f"   {lib}")
    is_ball = clip_truth(lib.clips, truth, "red ball")
    if embedder.supports_text:
        print('3. text search "a red ball":')
        hits = lib.search("a red ball", k=8)
    else:
        example = lib.clips.loc[is_ball.idxmax(), "clip_id"]
        print(f"3. no text encoder offline: clips most similar to {example} (a red-ball clip):")
        hits = lib.similar(example, k=8)
    hits["red_ball"] = is_ball.to_numpy()[lib.rows(hits["clip_id"])]
    print(
        hits[["score", "clip_id", "start_seconds", "end_seconds", "red_ball"]].to_string(
            index=False
        )
    )
    print(
        f"   {int(hits['red_ball'].sum())} of {len(hits)} hits show a red ball "
        f"({is_ball.mean():.0%} of all clips do)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
