"""Fast float32 products over float16 feature matrices (NumPy arithmetic on float16 is slow)."""

from __future__ import annotations

import numpy as np

CHUNK_ROWS = 8192


def project(
    features: np.ndarray, weights: np.ndarray, *, chunk_rows: int = CHUNK_ROWS
) -> np.ndarray:
    """Return ``features @ weights`` in float32, converting ``features`` chunk by chunk.

    Parameters
    ----------
    features : (n, d) float16 or float32 array, possibly memory-mapped.
    weights : (d,) or (d, m) array.

    Returns
    -------
    (n,) or (n, m) float32 array.
    """
    weights = np.asarray(weights, dtype=np.float32)
    n = features.shape[0]
    out_shape = (n,) if weights.ndim == 1 else (n, weights.shape[1])
    out = np.empty(out_shape, dtype=np.float32)
    if features.dtype == np.float32 and not isinstance(features, np.memmap):
        np.matmul(features, weights, out=out)
        return out
    import torch  # lazy: torch converts float16 to float32 several times faster than NumPy

    w = torch.from_numpy(np.ascontiguousarray(weights))
    for start in range(0, n, chunk_rows):
        block = np.array(features[start : start + chunk_rows])  # a writable copy, as torch wants
        t = torch.from_numpy(block).to(torch.float32)
        out[start : start + len(block)] = (t @ w).numpy()
    return out


def logistic(
    features: np.ndarray, weights: np.ndarray, intercept: float, *, chunk_rows: int = CHUNK_ROWS
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
