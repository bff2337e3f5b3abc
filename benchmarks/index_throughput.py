"""Indexing throughput: the whole pipeline against its parts, on the same videos, in one run.

Measures on synthetic 720p H.264 videos (the target condition: libx264 yuv420p 1280x720, 30 fps,
2 s GOP, moving content) and, where present, the real videos in ../shared/videos:

- pipeline: ``index_videos`` (decode worker + ViT-B-32 + thumbnails + writes), fp32 and bf16;
- bare embedder: ``encode_clips`` on the already-decoded frames (same frame count);
- naive: ``to_ndarray`` on every decoded frame, PIL resize + centre crop, fp32, batch of 1;
- decoding alone (``iter_clips``), in seconds of video per second;
- a 2048x2048 matmul per precision, to express the encoder's speed as a fraction of peak;
- CPU seconds per sampled frame of decoding and of encoding, each stage alone (process CPU
  time: FFmpeg's and torch's threads run in this process), and from them the machine's bound
  ``cores / (decode + encode CPU s per frame)`` per precision and K, with the pipeline's
  fraction of it (encoding measured on torch's threads and on one thread, the cheaper taken:
  torch's threads spend CPU waiting on each other, and the pipeline encodes on one); decoding every frame (no non-reference frame skipped) for comparison;
- a ``frames_per_clip`` sweep (1, 2, 4, 8): time per clip, and on the real videos how close
  the K-frame clip vector is to the 16-frame one.

The machine is shared and noisy: every repeat runs all measurements in turn (the order rotates),
ratios are taken within a repeat and the median over repeats is printed.
``pretrained=None`` is a seeded random init with the real cost (no weights download here).

    python benchmarks/index_throughput.py           # 4 videos x 30 s, 2 repeats (~7 min)
    python benchmarks/index_throughput.py --quick   # 1 video x 10 s, 1 repeat
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from va_widgets import OpenClipEmbedder, index_videos, media
from va_widgets.media import ClipChunk, ClipRule, iter_clips

GFLOP_PER_IMAGE = 8.7  # one ViT-B/32 image forward: ~4.4 G multiply-adds
CLIP_SECONDS = 2.0
SIZE = 224
W, H, FPS = 1280, 720, 30
REAL_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "videos"


# --------------------------------------------------------------------------- videos


def make_video(path: Path, seconds: float, seed: int) -> None:
    """720p H.264: a panning blocky texture with grain and a moving inverted square."""
    import av

    rng = np.random.default_rng(seed)
    n = round(seconds * FPS)
    blocks = rng.integers(0, 256, (H // 16 + 1, (W + 5 * n) // 16 + 2), dtype=np.uint8)
    tex = np.kron(blocks, np.ones((16, 16), np.uint8)).astype(np.int16)
    tex = (tex + rng.integers(-20, 21, tex.shape, dtype=np.int16)).clip(16, 235).astype(np.uint8)
    chroma = rng.integers(64, 192, (2, H // 32 + 1, tex.shape[1] // 32 + 1), dtype=np.uint8)
    chroma = np.kron(chroma, np.ones((1, 16, 16), np.uint8))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23", "g": str(2 * FPS)}
        for i in range(n):
            x = 5 * i
            y = tex[:H, x : x + W].copy()
            cy, cx = int(H / 2 + H / 3 * np.sin(i / 20)), int(W / 2 + W / 3 * np.cos(i / 25))
            box = (slice(max(0, cy - 60), cy + 60), slice(max(0, cx - 60), cx + 60))
            y[box] = 255 - y[box]
            uv = chroma[:, : H // 2, x // 2 : x // 2 + W // 2].reshape(H // 2, W)
            frame = av.VideoFrame.from_ndarray(np.concatenate([y, uv]), format="yuv420p")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


# --------------------------------------------------------------------------- measurements


def chunks(paths: list[Path], k: int) -> Iterator[ClipChunk]:
    """The sampled clip chunks of ``paths`` (k frames per 2 s clip), decoded in this process."""
    rule = ClipRule(clip_seconds=CLIP_SECONDS, frames_per_clip=k)
    for path in paths:
        for item in iter_clips(path, rule, image_size=SIZE):
            if isinstance(item, ClipChunk):
                yield item


def decode(paths: list[Path], k: int) -> tuple[float, np.ndarray]:
    """Seconds, and the (n, k, S, S, 3) frames ``iter_clips`` sampled."""
    t0 = time.perf_counter()
    frames = [chunk.frames for chunk in chunks(paths, k)]
    return time.perf_counter() - t0, np.concatenate(frames)


def decode_cpu(paths: list[Path], k: int, *, skip: bool = True) -> tuple[float, int]:
    """Process CPU seconds and sampled frames of decoding alone (``skip=False``: every frame)."""
    media.SKIP_UNSAMPLED_NONREF = skip
    try:
        t0 = time.process_time()
        n = sum(chunk.frames.shape[0] * k for chunk in chunks(paths, k))
        return time.process_time() - t0, n
    finally:
        media.SKIP_UNSAMPLED_NONREF = True


def encode_cpu(
    embedder: OpenClipEmbedder, frames: np.ndarray, threads: int | None = None
) -> tuple[float, int]:
    """Process CPU seconds and frames of encoding alone (torch on ``threads``, default all)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        t0 = time.process_time()
        embedder.encode_clips(frames)
        return time.process_time() - t0, frames.shape[0] * frames.shape[1]
    finally:
        torch.set_num_threads(before)


def pipeline(folder: Path, embedder: OpenClipEmbedder, k: int) -> tuple[float, int]:
    """Seconds and clips of one fresh ``index_videos`` run."""
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        lib = index_videos(folder, cache=cache, embedder=embedder, clip_seconds=CLIP_SECONDS,
                           frames_per_clip=k, progress=False)  # fmt: skip
        return time.perf_counter() - t0, len(lib)


def serial(paths: list[Path], embedder: OpenClipEmbedder, k: int) -> tuple[float, int]:
    """Decode and encode in this process, one after the other: no worker, no writes."""
    n = 0
    t0 = time.perf_counter()
    for chunk in chunks(paths, k):
        embedder.encode_clips(chunk.frames)
        n += len(chunk)
    return time.perf_counter() - t0, n


def hash_all(paths: list[Path]) -> float:
    """Seconds to hash every video whole (the content id of a new or changed video)."""
    from va_widgets.indexing import content_hash

    start = time.perf_counter()
    for path in paths:
        content_hash(path)
    return time.perf_counter() - start


def bare(embedder: OpenClipEmbedder, frames: np.ndarray) -> tuple[float, np.ndarray]:
    t0 = time.perf_counter()
    vectors = embedder.encode_clips(frames)
    return time.perf_counter() - t0, vectors


def naive(paths: list[Path], embedder: OpenClipEmbedder, k: int) -> tuple[float, float]:
    """Every frame to RGB with ``to_ndarray``, PIL resize + crop of the sampled ones, batch 1.
    Seconds and clips."""
    import av
    from PIL import Image

    n_frames = 0
    t0 = time.perf_counter()
    for path in paths:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate)
            n = stream.frames or round(float(stream.duration * stream.time_base) * fps)
            clips = int(n / fps // CLIP_SECONDS)
            offsets = (np.arange(k) + 0.5) / k * CLIP_SECONDS
            times = (np.arange(clips)[:, None] * CLIP_SECONDS + offsets).ravel()
            wanted = set(np.floor(times * fps + 1e-6).astype(int).tolist())
            vectors = []
            for index, frame in enumerate(container.decode(stream)):
                rgb = frame.to_ndarray(format="rgb24")
                if index not in wanted:
                    continue
                img = Image.fromarray(rgb)
                scale = SIZE / min(img.size)
                img = img.resize((round(img.width * scale), round(img.height * scale)),
                                 Image.Resampling.BICUBIC)  # fmt: skip
                left, top = (img.width - SIZE) // 2, (img.height - SIZE) // 2
                crop = np.asarray(img.crop((left, top, left + SIZE, top + SIZE)))
                vectors.append(embedder.encode_images(crop[None]))
            n_frames += len(vectors)
    return time.perf_counter() - t0, n_frames / k


def matmul_gflops(dtype_name: str, n: int = 2048, reps: int = 6) -> float:
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.matmul(a, b)
    t0 = time.perf_counter()
    for _ in range(reps):
        torch.matmul(a, b)
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return (a * b).sum(-1)


def frames_vs_16(paths: list[Path], embedder: OpenClipEmbedder) -> dict[int, tuple[float, float]]:
    """K -> (mean, min) cosine of the K-frame mean-pooled clip vector to the 16-frame one, K
    frames being an evenly spaced subset of the 16 sampled; K=0 holds the mean cosine between
    different clips (the floor against which those figures mean something)."""
    _, frames = decode(paths, 16)
    n = len(frames)
    per_frame = embedder.encode_images(frames.reshape(-1, SIZE, SIZE, 3)).reshape(n, 16, -1)
    full = per_frame.mean(1)
    out = {}
    for k in (1, 2, 4, 8):
        subset = ((np.arange(k) + 0.5) * 16 / k).astype(int)
        c = cosine(per_frame[:, subset].mean(1), full)
        out[k] = (float(c.mean()), float(c.min()))
    unit = full / np.linalg.norm(full, axis=1, keepdims=True)
    between = (unit @ unit.T)[~np.eye(n, dtype=bool)]
    out[0] = (float(between.mean()), float(between.min()))
    return out


# --------------------------------------------------------------------------- report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 video x 10 s, 1 repeat")
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--real", type=Path, default=REAL_VIDEOS, help="real videos folder")
    args = parser.parse_args()
    if args.quick:
        args.videos, args.seconds, args.repeats = 1, 10.0, 1

    import logging
    import warnings

    import torch

    logging.disable(logging.WARNING)  # open_clip: "No pretrained weights loaded"
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
    tmp = tempfile.TemporaryDirectory()
    folder = Path(tmp.name) / "videos"
    folder.mkdir()
    t0 = time.perf_counter()
    paths = []
    for v in range(args.videos):
        paths.append(folder / f"synthetic_{v}.mp4")
        make_video(paths[-1], args.seconds, seed=v)
    video_seconds = args.videos * args.seconds
    print(f"{args.videos} synthetic videos x {args.seconds:g} s, 1280x720 H.264 30 fps, "
          f"made in {time.perf_counter() - t0:.0f} s; torch threads: {torch.get_num_threads()}")  # fmt: skip

    emb = {p: OpenClipEmbedder("ViT-B-32", pretrained=None, precision=p) for p in ("fp32", "bf16")}
    emb_naive = OpenClipEmbedder("ViT-B-32", pretrained=None, precision="fp32", batch_size=1)
    for e in (*emb.values(), emb_naive):  # warm-up: oneDNN kernels, allocator
        e.encode_images(np.zeros((2, SIZE, SIZE, 3), np.uint8))
    _, frames8 = decode(paths, 8)
    n_clips = len(frames8)
    naive_paths = paths[:1]  # one video is enough for a rate; this path is slow

    # name -> callable returning (seconds, clips); matmuls return (1, GFLOP/s)
    tasks: dict[str, Callable[[], tuple[float, float]]] = {
        "matmul fp32": lambda: (1.0, matmul_gflops("float32")),
        "matmul bf16": lambda: (1.0, matmul_gflops("bfloat16")),
        "decode K=8": lambda: (decode(paths, 8)[0], n_clips),
        "decode K=1": lambda: (decode(paths, 1)[0], n_clips),
        "naive fp32 b=1": lambda: naive(naive_paths, emb_naive, 8),
        "content hash": lambda: (hash_all(paths), n_clips),
    }
    vectors: dict[str, np.ndarray] = {}
    for p, e in emb.items():

        def run_bare(p: str = p, e: OpenClipEmbedder = e) -> tuple[float, float]:
            seconds, vectors[p] = bare(e, frames8)
            return seconds, n_clips

        tasks[f"bare {p}"] = run_bare
        tasks[f"pipeline {p} K=8"] = lambda e=e: pipeline(folder, e, 8)
    for k in (8, 4, 2, 1):
        tasks[f"cpu decode K={k}"] = lambda k=k: decode_cpu(paths, k)
    tasks["cpu decode all K=8"] = lambda: decode_cpu(paths, 8, skip=False)
    for p, e in emb.items():
        tasks[f"cpu encode {p}"] = lambda e=e: encode_cpu(e, frames8)
        tasks[f"cpu encode {p} 1 thread"] = lambda e=e: encode_cpu(e, frames8, 1)
    tasks["serial bf16 K=8"] = lambda: serial(paths, emb["bf16"], 8)
    for k in (4, 2, 1):
        tasks[f"pipeline bf16 K={k}"] = lambda k=k: pipeline(folder, emb["bf16"], k)

    results: dict[str, list[tuple[float, float]]] = defaultdict(list)
    names = list(tasks)
    for r in range(args.repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            results[name].append(tasks[name]())
            print(f"  repeat {r + 1}: {name:<20} {results[name][-1][0]:7.2f} s", flush=True)

    def med(name: str, f: Callable[[float, float], float]) -> float:
        return statistics.median(f(s, n) for s, n in results[name])

    def ratio(a: str, b: str, f: Callable[[float, float], float]) -> float:
        return statistics.median(f(*x) / f(*y) for x, y in zip(results[a], results[b], strict=True))

    def k_of(name: str) -> int:
        return 8 if "naive" in name else int(name.rsplit("K=", 1)[1]) if "K=" in name else 8

    def fps(s: float, n: float, k: int = 8) -> float:
        return n * k / s

    peak = {p: med(f"matmul {p}", lambda s, n: n) for p in ("fp32", "bf16")}
    print(f"\nmatmul 2048^3 peak: fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s")
    print(f"\n{'measurement':<20} {'s':>7} {'clips/s':>8} {'frames/s':>9} {'video s/s':>10} "
          f"{'GFLOP/s':>8} {'% peak':>7}")  # fmt: skip
    for name in names:
        if name.startswith(("matmul", "cpu ")):
            continue
        k = k_of(name)
        s = med(name, lambda s, n: s)
        cps = med(name, lambda s, n: n / s)
        frame_rate = med(name, lambda s, n, k=k: fps(s, n, k))
        line = f"{name:<20} {s:7.2f} {cps:8.2f} {frame_rate:9.1f}"
        if name.startswith(("decode", "pipeline", "serial")):
            line += f" {med(name, lambda s, n: video_seconds / s):10.1f}"
        else:
            line += f" {'':>10}"
        if not name.startswith("decode"):
            p = "bf16" if "bf16" in name else "fp32"
            gflops = frame_rate * GFLOP_PER_IMAGE
            line += f" {gflops:8.0f} {100 * gflops / peak[p]:6.0f}%"
        print(line)

    print("\nratios (median over repeats, each within one repeat)")
    print(f"  frames/s  pipeline fp32 / bare fp32   {ratio('pipeline fp32 K=8', 'bare fp32', fps):.2f}"
          "   (target >= 0.7)")  # fmt: skip
    print(f"  frames/s  pipeline bf16 / bare bf16   {ratio('pipeline bf16 K=8', 'bare bf16', fps):.2f}"
          "   (target >= 0.7)")  # fmt: skip
    for p in ("fp32", "bf16"):
        beyond = 1 - ratio(f"pipeline {p} K=8", f"bare {p}", fps)
        print(f"  share of the pipeline's wall time beyond the encoder, {p}: {beyond:.0%}"
              "   (target <= 25%)")  # fmt: skip
    print(
        f"  frames/s  pipeline fp32 / naive       {ratio('pipeline fp32 K=8', 'naive fp32 b=1', fps):.2f}x"
    )
    print(f"  frames/s  pipeline bf16 / naive       {ratio('pipeline bf16 K=8', 'naive fp32 b=1', fps):.2f}x"
          "  (target >= 3x)")  # fmt: skip
    print(f"  frames/s  pipeline bf16 / serial bf16 {ratio('pipeline bf16 K=8', 'serial bf16 K=8', fps):.2f}"
          "   (in-process decode then encode, no worker or writes)")  # fmt: skip
    print(f"  frames/s  bare bf16 / bare fp32       {ratio('bare bf16', 'bare fp32', fps):.2f}x")
    megabytes = sum(p.stat().st_size for p in paths) / 1e6
    print(f"  whole-file content hash (BLAKE3): {med('content hash', lambda s, n: megabytes / s):.0f} MB/s, "
          f"{ratio('content hash', 'pipeline bf16 K=8', lambda s, n: s):.2%} of the bf16 pipeline's wall time")  # fmt: skip
    c = cosine(vectors["bf16"], vectors["fp32"])
    print(f"  clip-vector cosine bf16 vs fp32: mean {c.mean():.5f}, min {c.min():.5f}")

    print("\nframes_per_clip sweep (pipeline, bf16)")
    print(f"  {'K':>2} {'clips/s':>8} {'ms/clip':>8} {'vs K=8':>7} {'decode s':>9}")
    for k in (1, 2, 4, 8):
        name = f"pipeline bf16 K={k}"
        speedup = ratio(name, "pipeline bf16 K=8", lambda s, n: n / s)
        dec = f"{med(f'decode K={k}', lambda s, n: s):9.2f}" if f"decode K={k}" in tasks else ""
        print(f"  {k:>2} {med(name, lambda s, n: n / s):8.2f} {med(name, lambda s, n: 1000 * s / n):8.0f}"
              f" {speedup:6.2f}x {dec}")  # fmt: skip

    print_bound(med, fps, set(results))

    real = sorted(p for p in args.real.glob("*") if p.suffix.lower() in {".mp4", ".mkv", ".gif"})
    if not real or args.quick:
        print(f"\nreal videos: skipped ({'--quick' if real else f'none in {args.real}'})")
        return
    seconds, clips = pipeline(args.real, emb["bf16"], 8)
    print(f"\nreal videos ({len(real)} in {args.real}): pipeline bf16 K=8: {seconds:.1f} s, "
          f"{clips / seconds:.2f} clips/s, {8 * clips / seconds:.1f} frames/s")  # fmt: skip
    agreement = frames_vs_16(real, emb["bf16"])
    floor = agreement.pop(0)
    print(
        f"  cosine of the K-frame clip vector to the 16-frame one ({clips} clips, random init; "
        f"between different clips: mean {floor[0]:.4f}, min {floor[1]:.4f})"
    )
    print(f"  {'K':>2} {'mean':>7} {'min':>7} {'(1-cos)/(1-between)':>20}")
    for k, (mean, low) in agreement.items():
        # 1 - cos as a share of the typical distance between two different clips
        print(f"  {k:>2} {mean:7.4f} {low:7.4f} {(1 - mean) / (1 - floor[0]):20.1%}")


def print_bound(
    med: Callable[[str, Callable[[float, float], float]], float],
    fps: Callable[..., float],
    measured: set[str],
) -> None:
    """CPU seconds per frame of each stage alone, the bound they set, the pipeline's share."""
    import torch

    cores = len(os.sched_getaffinity(0))
    torch_threads = torch.get_num_threads()
    per_frame = {name: med(f"cpu {name}", lambda c, n: c / n) for name in
                 ("decode K=8", "decode K=4", "decode K=2", "decode K=1", "decode all K=8",
                  "encode fp32", "encode bf16", "encode fp32 1 thread",
                  "encode bf16 1 thread")}  # fmt: skip
    before, after = per_frame["decode all K=8"], per_frame["decode K=8"]
    print(f"\nCPU seconds per sampled frame, each stage alone ({cores} cores)")
    print(f"  decode K=8 {1000 * after:.1f} ms; decoding every frame {1000 * before:.1f} ms: "
          f"{before / after:.2f}x less   (target >= 1.3x)")  # fmt: skip
    # the bound takes the encoder's cheaper way: torch's threads spend CPU waiting on each other
    encode = {}
    for p in ("fp32", "bf16"):
        every, one = per_frame[f"encode {p}"], per_frame[f"encode {p} 1 thread"]
        encode[p] = min(every, one)
        print(f"  encode {p} {1000 * every:.1f} ms on torch's {torch_threads} threads, "
              f"{1000 * one:.1f} ms on one")  # fmt: skip
    print(
        f"  {'precision':<9} {'K':>2} {'decode ms':>9} {'CPU bound':>22} {'pipeline':>9} {'fraction':>9}"
    )
    for p in ("fp32", "bf16"):
        for k in (8, 4, 2, 1):
            decode = per_frame[f"decode K={k}"]
            bound = cores / (decode + encode[p])
            line = f"  {p:<9} {k:>2} {1000 * decode:9.1f} CPU bound: {bound:5.1f} frames/s"
            name = f"pipeline {p} K={k}"
            if name in measured:
                rate = med(name, lambda s, n, k=k: fps(s, n, k))
                line += f" {rate:9.1f} {rate / bound:8.0%}"
            print(line + ("   (target >= 95%)" if k == 8 and name in measured else ""))


if __name__ == "__main__":
    main()
