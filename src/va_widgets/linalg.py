"""Fast float32 products over float16 feature matrices (NumPy arithmetic on float16 is slow)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import itertools
import os
import threading
import warnings
from collections.abc import Iterator

import numpy as np

#: float32 bytes of the rows converted at a time: a buffer that stays in cache while it is
#: multiplied (8192 rows of 512, 16 MB, ran 2-2.7x slower at 100k and 1M clips than 2 MB)
CHUNK_BYTES = 2 << 20


def project(
    features: np.ndarray, weights: np.ndarray, *, chunk_rows: int | None = None
) -> np.ndarray:
    """Return ``features @ weights`` in float32, converting ``features`` chunk by chunk.

    Parameters
    ----------
    features : (n, d) float16 or float32 array, possibly memory-mapped.
    weights : (d,) or (d, m) array.

    Returns
    -------
    (n,) or (n, m) float32 array.

    A float16 matrix is converted by torch into a reused float32 buffer of ``chunk_rows``
    rows (default: ``CHUNK_BYTES`` of them, small enough to stay in cache) and multiplied
    there: several times faster than NumPy, whose float16 arithmetic and conversion are slow.
    The rows are split into a few parts per core, each run by a Python thread with torch on
    one thread (torch releases the GIL): the work is bound by memory bandwidth, and torch's
    own thread pool waits for all its threads after every small operation, which on a busy
    machine costs more than the work (1M x 512 on the 2-core machine under load: 0.27-0.45 s
    on one thread, 0.6-3.4 s on torch's two).
    """
    weights = np.asarray(weights, dtype=np.float32)
    if features.dtype != np.float16:
        return np.matmul(np.asarray(features, dtype=np.float32), weights)
    import torch  # lazy

    n = features.shape[0]
    if chunk_rows is None:
        chunk_rows = max(1, CHUNK_BYTES // (4 * features.shape[1]))
    out_shape = (n,) if weights.ndim == 1 else (n, weights.shape[1])
    out = torch.empty(out_shape, dtype=torch.float32)
    w = torch.from_numpy(weights)
    with warnings.catch_warnings():  # a read-only memory map: torch warns, we only read
        warnings.simplefilter("ignore", UserWarning)
        whole = torch.from_numpy(np.asarray(features))

    def part(bounds: tuple[int, int]) -> None:
        buffer = torch.empty((min(chunk_rows, n), features.shape[1]), dtype=torch.float32)
        for start in range(bounds[0], bounds[1], chunk_rows):
            stop = min(start + chunk_rows, bounds[1])
            rows = buffer[: stop - start]
            rows.copy_(whole[start:stop])
            torch.matmul(rows, w, out=out[start:stop])

    cores = os.cpu_count() or 1
    edges = np.linspace(0, n, min(4 * cores, -(-n // chunk_rows)) + 1).astype(int)
    with one_torch_thread():
        list(_pool(cores).map(part, itertools.pairwise(edges.tolist())))
    return out.numpy()


_ONE_TORCH_THREAD = threading.Lock()


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch's CPU work in the block on the calling thread only.

    Small interactive work (a product over the features, one text query) must not stall when
    another process keeps the cores busy: torch's own pool waits for all of its threads after
    every operation, and one descheduled thread stalls the rest (text search under a
    competing process: 0.5-1.5 s in 10-20 % of calls, against 15-40 ms). Process-wide, so one
    block at a time sets and restores the thread count.
    """
    import torch

    with _ONE_TORCH_THREAD:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


@functools.cache
def _pool(workers: int) -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="va-project")


def logistic(
    features: np.ndarray, weights: np.ndarray, intercept: float, *, chunk_rows: int | None = None
) -> np.ndarray:
    """P(positive) of a linear model, ``sigmoid(features @ weights + intercept)``, float32 (n,)."""
    from scipy.special import expit

    z = project(features, weights, chunk_rows=chunk_rows)
    z += np.float32(intercept)
    return expit(z, out=z)


def top_k(scores: np.ndarray, k: int, *, exclude: np.ndarray | None = None) -> np.ndarray:
    """Indices of the ``k`` highest scores, best first; ``exclude`` is a boolean mask to skip."""
    if exclude is not None:
        scores = np.where(exclude, -np.inf, scores)
        k = min(k, int((~exclude).sum()))
    k = max(0, min(k, scores.shape[0]))
    if k == 0:
        return np.empty(0, dtype=np.int64)
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part], kind="stable")].astype(np.int64)
