"""Embedders: turn uint8 RGB frames (and text) into L2-normalised float32 vectors.

Two implementations of the :class:`Embedder` protocol:

- :class:`OpenClipEmbedder`: a CLIP model through open_clip (tag, ``hf-hub:`` id, local weights
  file or seeded random init), on CUDA, MPS or CPU, batched, with reduced precision where the
  hardware supports it natively (fp16 on CUDA, bf16 weights on CPUs with bf16 units).
- :class:`PixelStatsEmbedder`: an offline fallback from pixel statistics (colour, layout,
  texture, motion). No weights, no text search.

Callers deliver frames already resized (shortest side) and centre-cropped to
``image_size x image_size``; embedders only normalise and run the model.

Hub failures are remembered for the rest of the process: once a download failed because the
Hugging Face Hub could not be reached (about 47 s of retries), or was refused because
``HF_HUB_OFFLINE`` is set, later requests for weights that are not in the local cache fail at
once instead of retrying. The environment is not modified (other libraries keep their own
behaviour); call :func:`forget_hub_failure` to try the network again.

torch and open_clip are imported lazily, inside the functions that need them.

Modules: :mod:`.base` (protocol, device and precision), :mod:`.hub` (hub and weights
handling), :mod:`.openclip`, :mod:`.pixelstats`.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

from va_widgets.embedders.base import (
    DEFAULT_BATCH_SIZE,
    Embedder,
    EmbedderFallbackWarning,
    Precision,
    Progress,
    cpu_has_native_bf16,
    resolve_precision,
    select_device,
)
from va_widgets.embedders.hub import forget_hub_failure
from va_widgets.embedders.openclip import DEFAULT_MODEL, DEFAULT_PRETRAINED, OpenClipEmbedder
from va_widgets.embedders.pixelstats import _PIXEL_STATS_VERSION, PixelStatsEmbedder
from va_widgets.errors import EmbedderError

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MODEL",
    "DEFAULT_PRETRAINED",
    "Embedder",
    "EmbedderFallbackWarning",
    "OpenClipEmbedder",
    "PixelStatsEmbedder",
    "Precision",
    "Progress",
    "cpu_has_native_bf16",
    "embedder_from_spec",
    "forget_hub_failure",
    "load_default_embedder",
    "resolve_precision",
    "select_device",
]


def embedder_from_spec(spec: dict[str, Any], **kwargs: Any) -> Embedder:
    """Rebuild the embedder that produced ``spec`` (from :meth:`Embedder.spec`).

    ``kwargs`` go to the constructor (device, precision, batch_size, cache_dir...). For a
    local weights file, ``pretrained=`` may point to a moved copy; its sha256 must match.
    Raises EmbedderError when the spec cannot be honoured.
    """
    kind = spec.get("kind")
    if kind == "pixel_stats":
        if spec.get("version") != _PIXEL_STATS_VERSION:
            raise EmbedderError(
                f"pixel-statistics features of version {spec.get('version')} cannot be "
                f"reproduced by this va_widgets (version {_PIXEL_STATS_VERSION}); re-index"
            )
        options = {k: v for k, v in kwargs.items() if k in ("batch_size",)}
        embedder: Embedder = PixelStatsEmbedder(image_size=int(spec["image_size"]), **options)
    elif kind == "open_clip":
        model = spec["model"]
        weights = spec.get("weights")
        options = dict(kwargs)
        config_file = None
        if spec.get("model_config") is not None and "model_config" not in options:
            folder = Path(tempfile.mkdtemp(prefix="va_widgets_spec_"))
            config_file = folder / f"{model}.json"
            config_file.write_text(json.dumps(spec["model_config"]), encoding="utf-8")
            options["model_config"] = config_file
        if weights == "hf-hub":
            options["pretrained"] = None
        elif weights == "random":
            options.setdefault("seed", int(spec.get("seed", 0)))
            options["pretrained"] = None
        elif weights in ("tag", "file"):
            options.setdefault("pretrained", spec["pretrained"])
        else:
            raise EmbedderError(f"unknown open_clip weights kind {weights!r} in spec")
        embedder = OpenClipEmbedder(model, **options)
        if config_file is not None:
            config_file.unlink(missing_ok=True)
            config_file.parent.rmdir()
    else:
        raise EmbedderError(f"unknown embedder kind {kind!r} in spec")
    rebuilt = embedder.spec()
    for key in ("kind", "model", "fingerprint", "dim", "image_size"):
        if key in spec and rebuilt.get(key) != spec[key]:
            raise EmbedderError(
                f"the rebuilt embedder differs from the spec in {key!r}: "
                f"{rebuilt.get(key)!r} != {spec[key]!r}"
            )
    return embedder


def load_default_embedder(*, fallback: bool = True, **options: Any) -> Embedder:
    """OpenClipEmbedder(ViT-B-32, laion2b_s34b_b79k); without weights, PixelStatsEmbedder.

    ``options`` go to OpenClipEmbedder (device, precision, batch_size, cache_dir). When the
    weights cannot be loaded and ``fallback`` is True, warn (EmbedderFallbackWarning: text
    search is off, and why) and return a PixelStatsEmbedder; otherwise raise EmbedderError.
    A hub failure is remembered, so later calls in this process fall back at once.
    """
    try:
        return OpenClipEmbedder(DEFAULT_MODEL, DEFAULT_PRETRAINED, **options)
    except EmbedderError as e:
        if not fallback:
            raise
        warnings.warn(
            f"CLIP is unavailable, so clips are embedded from pixel statistics (colour, texture, "
            f"motion) and TEXT SEARCH IS OFF. Why: {e}",
            EmbedderFallbackWarning,
            stacklevel=2,
        )
        return PixelStatsEmbedder()
