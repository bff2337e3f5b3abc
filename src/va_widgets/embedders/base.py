"""The embedder protocol, shared checks, and the choice of device and precision."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from va_widgets.errors import EmbedderError

Precision = Literal["auto", "fp32", "bf16", "fp16"]
Progress = Callable[[int], Any]
"""Progress callback: called with the number of items finished since the last call
(``tqdm(...).update`` fits)."""

# Images per forward pass when batch_size is None. CPU: ViT-B-32 on 2 (shared, loaded) cores
# showed no batch size among 16/32/64 winning consistently; 32 keeps memory and the progress
# step small.
DEFAULT_BATCH_SIZE = {"cuda": 256, "mps": 64, "cpu": 32}


@runtime_checkable
class Embedder(Protocol):
    """What the rest of va_widgets needs from an embedder."""

    name: str
    dim: int
    image_size: int
    supports_text: bool

    def spec(self) -> dict[str, Any]:
        """JSON-serialisable description of the vector space (not of precision/device/batch)."""
        ...

    def encode_images(self, images: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 -> (N, dim) float32, L2-normalised."""
        ...

    def encode_clips(self, frames: np.ndarray) -> np.ndarray:
        """(n, K, S, S, 3) uint8 -> (n, dim) float32, L2-normalised."""
        ...

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, L2-normalised; raises TextSearchUnavailable if unsupported."""
        ...


class EmbedderFallbackWarning(UserWarning):
    """CLIP could not be loaded, so the pixel-statistics embedder is used (no text search)."""


# --------------------------------------------------------------------------------------------
# Helpers shared by the embedders
# --------------------------------------------------------------------------------------------


def _normalise_rows(x: np.ndarray) -> np.ndarray:
    """L2-normalise rows in float32; all-zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, np.float32(1e-12))


def _check_images(images: np.ndarray, size: int, *, ndim: int, what: str) -> np.ndarray:
    images = np.asarray(images)
    shape = "(n, K, S, S, 3)" if ndim == 5 else "(N, S, S, 3)"
    if images.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8 RGB, got dtype {images.dtype}")
    if images.ndim != ndim or images.shape[-1] != 3:
        raise ValueError(f"{what} must have shape {shape} with S={size}, got {images.shape}")
    if images.shape[-3:-1] != (size, size):
        raise ValueError(
            f"{what} must be {size}x{size} pixels (resize the shortest side to {size} and "
            f"centre-crop), got {images.shape[-3]}x{images.shape[-2]}"
        )
    return images


def select_device(device: str | None = None) -> str:
    """Return the device to run on: ``device`` if usable, else cuda, then mps, then cpu.

    Raises EmbedderError when an explicitly requested accelerator is not available.
    """
    import torch

    if device is None:
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    kind = str(device).split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise EmbedderError(
            f"device={device!r} requested but CUDA is not available to this torch "
            f"({torch.__version__}); use device=None (auto) or 'cpu'"
        )
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise EmbedderError(
                f"device={device!r} requested but MPS is not available; use device=None or 'cpu'"
            )
    try:
        torch.device(device)
    except (RuntimeError, ValueError) as e:
        raise EmbedderError(f"device={device!r} is not a valid torch device: {e}") from e
    return str(device)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic units (AVX512-BF16/AMX on x86, BF16 on ARM)."""
    flags: set[str] = set()
    try:
        import torch

        caps = torch.cpu.get_capabilities()  # torch >= 2.10
        flags = {k for k, v in caps.items() if v is True}
    except (AttributeError, ImportError, RuntimeError):
        try:
            text = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
        for line in text.splitlines():
            if line.startswith(("flags", "Features")):
                flags.update(line.split(":", 1)[1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16", "sve_bf16"})


def resolve_precision(
    precision: Precision, device: str, *, native_bf16: bool | None = None
) -> Literal["fp32", "bf16", "fp16"]:
    """Resolve ``"auto"``: fp16 on CUDA, bf16 on a CPU with native bf16, else fp32."""
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise EmbedderError(f"precision={precision!r} is not one of 'auto', 'fp32', 'bf16', 'fp16'")
    if precision != "auto":
        return precision
    kind = device.split(":")[0]
    if kind == "cuda":
        return "fp16"
    if kind == "cpu":
        if native_bf16 is None:
            native_bf16 = cpu_has_native_bf16()
        return "bf16" if native_bf16 else "fp32"
    return "fp32"
