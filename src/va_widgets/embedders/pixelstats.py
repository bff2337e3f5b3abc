"""An offline fallback embedder from pixel statistics: colour, layout, texture, motion."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from va_widgets.embedders.base import Progress, _check_images, _normalise_rows
from va_widgets.errors import EmbedderError, TextSearchUnavailable

_PIXEL_STATS_VERSION = 1
_H_BINS, _S_BINS, _V_BINS = 8, 3, 3
_GRID = 4
_ORI_BINS = 8
_MAG_EDGES = np.array([0.01, 0.03, 0.06, 0.1, 0.16, 0.25, 0.4], dtype=np.float32)  # 8 bins
_DIFF_EDGES = np.array([0.01, 0.03, 0.06, 0.1, 0.16, 0.25, 0.4], dtype=np.float32)  # 8 bins
_LUT_STEPS = 1024  # values in [0, 1] are binned through a lookup table (faster than searchsorted)
_MAG_LUT = np.searchsorted(_MAG_EDGES, np.arange(_LUT_STEPS + 1, dtype=np.float32) / _LUT_STEPS)
_DIFF_LUT = np.searchsorted(_DIFF_EDGES, np.arange(_LUT_STEPS + 1, dtype=np.float32) / _LUT_STEPS)
_EDGE_THRESHOLD = 0.08
# block name -> (size, weight)
_BLOCKS = {
    "colour": (_H_BINS * _S_BINS * _V_BINS, 1.0),
    "layout": (_GRID * _GRID * 3, 1.0),
    "orientation": (_ORI_BINS, 0.5),
    "gradient": (len(_MAG_EDGES) + 1, 0.5),
    "edges": (_GRID * _GRID, 0.5),
    "motion_grid": (_GRID * _GRID, 1.0),
    "motion_hist": (len(_DIFF_EDGES) + 1, 0.5),
}


def _grid_means(x: np.ndarray, grid: int) -> np.ndarray:
    """(N, H, W[, C]) -> (N, grid*grid[*C]) means over a grid x grid partition."""
    n, h, w = x.shape[:3]
    hs, ws = h // grid, w // grid
    x = x[:, : hs * grid, : ws * grid]
    x = x.reshape(n, grid, hs, grid, ws, *x.shape[3:])
    # float64 accumulation: exact sums, so results do not depend on batch composition
    return x.mean(axis=(2, 4), dtype=np.float64).astype(np.float32).reshape(n, -1)


def _lut_bins(x: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Bin indices of values in [0, 1] (larger values clip) through a lookup table."""
    steps = len(lut) - 1
    index = np.minimum(x * np.float32(steps), np.float32(steps)).astype(np.intp)
    return lut[index]


def _histograms(index: np.ndarray, bins: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Per-row histograms of integer bin indices (N, P) -> (N, bins), float32, sum-normalised."""
    n = index.shape[0]
    index = index.reshape(n, -1)
    offset = (np.arange(n, dtype=np.int64) * bins)[:, None]
    flat = (index.astype(np.int64) + offset).ravel()
    w = None if weights is None else weights.ravel().astype(np.float64)
    counts = np.bincount(flat, weights=w, minlength=n * bins).reshape(n, bins)
    total = counts.sum(axis=1, keepdims=True)
    return (counts / np.maximum(total, 1e-12)).astype(np.float32)


class PixelStatsEmbedder:
    """Offline fallback embedder from pixel statistics; needs no weights, has no text search.

    Per frame: a joint HSV colour histogram (square-rooted, so cosine compares like the
    Hellinger distance), a coarse 4x4 colour layout, and texture (gradient orientation and
    magnitude histograms, edge density per cell). Per clip: the frame statistics are averaged,
    and motion is measured from consecutive sampled frames (mean absolute difference per cell,
    and a histogram of per-pixel differences). A single image counts as a still clip, so
    ``encode_images(x)`` equals ``encode_clips`` of a clip repeating ``x``.

    Deterministic and fast (NumPy, thousands of 64x64 frames per second). Vectors are
    L2-normalised float32 of ``dim`` entries.
    """

    supports_text = False

    def __init__(self, *, image_size: int = 64, batch_size: int = 1024) -> None:
        if image_size < 2 * _GRID:
            raise EmbedderError(f"image_size must be at least {2 * _GRID}, got {image_size}")
        self.image_size = int(image_size)
        self.batch_size = int(batch_size)
        self.dim = sum(size for size, _ in _BLOCKS.values())
        self.name = "pixel statistics (colour, texture, motion; no text search)"

    def spec(self) -> dict[str, Any]:
        return {
            "kind": "pixel_stats",
            "version": _PIXEL_STATS_VERSION,
            "dim": self.dim,
            "image_size": self.image_size,
        }

    def __repr__(self) -> str:
        return f"PixelStatsEmbedder(dim={self.dim}, image_size={self.image_size})"

    # -- per-frame statistics -------------------------------------------------------------------

    def _frame_stats(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """(N, S, S, 3) uint8 -> dict of per-frame blocks (not yet weighted)."""
        n = len(images)
        # Planar float32 in [0, 1]: per-channel arithmetic on contiguous planes is fast.
        planes = images.transpose(0, 3, 1, 2).astype(np.float32)
        planes *= np.float32(1 / 255)
        r, g, b = planes[:, 0], planes[:, 1], planes[:, 2]
        v = np.maximum(np.maximum(r, g), b)
        c = v - np.minimum(np.minimum(r, g), b)
        s = c / np.maximum(v, np.float32(1e-6))
        safe_c = np.maximum(c, np.float32(1e-6))
        h = np.where(
            v == r,
            ((g - b) / safe_c) % np.float32(6.0),
            np.where(
                v == g, (b - r) / safe_c + np.float32(2.0), (r - g) / safe_c + np.float32(4.0)
            ),
        )
        h[c <= 0] = 0.0
        hb = np.minimum((h * np.float32(_H_BINS / 6.0)).astype(np.int64), _H_BINS - 1)
        sb = np.minimum((s * _S_BINS).astype(np.int64), _S_BINS - 1)
        vb = np.minimum((v * _V_BINS).astype(np.int64), _V_BINS - 1)
        colour = _histograms((hb * _S_BINS + sb) * _V_BINS + vb, _H_BINS * _S_BINS * _V_BINS)

        size = planes.shape[-1]
        layout = _grid_means(planes.reshape(n * 3, size, size), _GRID).reshape(n, -1) - np.float32(
            0.5
        )

        gray = np.float32(0.299) * r + np.float32(0.587) * g + np.float32(0.114) * b
        gx = (gray[:, 1:-1, 2:] - gray[:, 1:-1, :-2]) * np.float32(0.5)
        gy = (gray[:, 2:, 1:-1] - gray[:, :-2, 1:-1]) * np.float32(0.5)
        mag = np.hypot(gx, gy)
        angle = np.arctan2(gy, gx) % np.pi
        ob = np.minimum((angle * (_ORI_BINS / np.pi)).astype(np.int64), _ORI_BINS - 1)
        orientation = _histograms(ob.reshape(n, -1), _ORI_BINS, weights=mag.reshape(n, -1))
        gradient = _histograms(_lut_bins(mag.reshape(n, -1), _MAG_LUT), len(_MAG_EDGES) + 1)
        edges = _grid_means((mag > _EDGE_THRESHOLD).astype(np.float32), _GRID)
        return {
            "colour": colour,
            "layout": layout,
            "orientation": orientation,
            "gradient": gradient,
            "edges": edges,
            "gray": gray,
        }

    def _assemble(self, blocks: dict[str, np.ndarray]) -> np.ndarray:
        parts = []
        for key, (size, weight) in _BLOCKS.items():
            block = blocks[key]
            if key in ("colour", "orientation", "gradient", "motion_hist"):
                block = np.sqrt(block)  # unit-norm distributions (Hellinger)
            else:
                block = block / np.float32(np.sqrt(size))  # entries in [-1, 1] -> norm <= 1
            parts.append(block * np.float32(weight))
        return _normalise_rows(np.concatenate(parts, axis=1))

    def _still_motion(self, n: int) -> dict[str, np.ndarray]:
        hist = np.zeros((n, len(_DIFF_EDGES) + 1), dtype=np.float32)
        hist[:, 0] = 1.0
        return {"motion_grid": np.zeros((n, _GRID * _GRID), np.float32), "motion_hist": hist}

    # -- public ---------------------------------------------------------------------------------

    def encode_images(self, images: np.ndarray, *, progress: Progress | None = None) -> np.ndarray:
        """(N, S, S, 3) uint8 -> (N, dim) float32, L2-normalised (no motion: a still clip)."""
        images = _check_images(images, self.image_size, ndim=4, what="images")
        out = np.empty((len(images), self.dim), dtype=np.float32)
        for start in range(0, len(images), self.batch_size):
            batch = images[start : start + self.batch_size]
            blocks = self._frame_stats(batch)
            blocks.update(self._still_motion(len(batch)))
            out[start : start + len(batch)] = self._assemble(blocks)
            if progress is not None:
                progress(len(batch))
        return out

    def encode_clips(self, frames: np.ndarray, *, progress: Progress | None = None) -> np.ndarray:
        """(n, K, S, S, 3) uint8 -> (n, dim): mean frame statistics plus motion between frames."""
        frames = _check_images(frames, self.image_size, ndim=5, what="frames")
        n, k = frames.shape[:2]
        out = np.zeros((n, self.dim), dtype=np.float32)
        if n == 0 or k == 0:
            return out
        per_chunk = max(1, self.batch_size // k)
        for start in range(0, n, per_chunk):
            chunk = frames[start : start + per_chunk]
            m = len(chunk)
            stats = self._frame_stats(chunk.reshape(m * k, *chunk.shape[2:]))
            blocks = {
                key: value.reshape(m, k, *value.shape[1:]).mean(axis=1, dtype=np.float32)
                for key, value in stats.items()
                if key != "gray"
            }
            if k < 2:
                blocks.update(self._still_motion(m))
            else:
                gray = stats["gray"].reshape(m, k, *stats["gray"].shape[1:])
                diff = np.abs(np.diff(gray, axis=1))  # (m, k-1, S, S)
                flat = diff.reshape(m * (k - 1), *diff.shape[2:])
                grid = _grid_means(flat, _GRID).reshape(m, k - 1, -1).mean(axis=1)
                blocks["motion_grid"] = np.sqrt(grid)
                hist = _histograms(_lut_bins(diff.reshape(m, -1), _DIFF_LUT), len(_DIFF_EDGES) + 1)
                blocks["motion_hist"] = hist
            out[start : start + m] = self._assemble(blocks)
            if progress is not None:
                progress(m * k)
        return out

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        raise TextSearchUnavailable(
            "Text search is unavailable: PixelStatsEmbedder describes clips by colour, texture "
            "and motion only and has no text encoder (CLIP weights could not be loaded). Find "
            "clips with similar clips and the active-learning feeds instead, or index with "
            "OpenClipEmbedder and local CLIP weights, e.g. "
            "OpenClipEmbedder('ViT-B-32', pretrained='/path/to/open_clip_pytorch_model.bin')."
        )
