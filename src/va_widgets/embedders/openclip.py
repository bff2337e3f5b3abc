"""CLIP image and text embeddings through open_clip."""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from va_widgets.embedders.base import (
    DEFAULT_BATCH_SIZE,
    Precision,
    Progress,
    _check_images,
    _normalise_rows,
    resolve_precision,
    select_device,
)
from va_widgets.embedders.hub import (
    _HELP_LOCAL,
    _hf_hub_model_is_cached,
    _hub_offline,
    _hub_unreachable,
    _is_network_failure,
    _looks_like_path,
    _offline_reason,
    _parse_model_name,
    _register_config,
    _sha256_file,
    _tag_is_cached,
    remember_hub_failure,
)
from va_widgets.errors import EmbedderError
from va_widgets.linalg import one_torch_thread

if TYPE_CHECKING:
    import torch

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"


class OpenClipEmbedder:
    """CLIP image and text embeddings through open_clip.

    Parameters
    ----------
    model : open_clip model name (``"ViT-B-32"``), or ``"hf-hub:org/repo"`` (then
        ``pretrained`` is ignored).
    pretrained : an open_clip pretrained tag (``"laion2b_s34b_b79k"``), a path to a local
        weights file (``.../open_clip_pytorch_model.bin``, ``.safetensors``...), or None for
        seeded random initialisation. Random init has the real architecture and cost but
        meaningless vectors: it is for tests and benchmarks only.
    model_config : a custom open_clip model config JSON, registered under the name ``model``.
    device : ``None`` picks cuda, else mps, else cpu.
    precision : ``"auto"`` is fp16 on CUDA, bf16 on a CPU with native bf16 units, else fp32.
        Reduced precision converts the weights (``model.to(dtype)``); autocast is not used.
    batch_size : images per forward pass; None chooses per device.
    cache_dir : where open_clip/huggingface_hub keep downloaded weights.
    seed : seed of the random initialisation (only used when ``pretrained`` is None).

    The model is loaded here, so that missing weights are reported at once (EmbedderError,
    saying why and what to do). Weights already in the local cache are loaded without the
    network when ``HF_HUB_OFFLINE`` is set or the hub has failed before in this process.
    """

    supports_text = True

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        pretrained: str | Path | None = DEFAULT_PRETRAINED,
        *,
        model_config: str | Path | None = None,
        device: str | None = None,
        precision: Precision = "auto",
        batch_size: int | None = None,
        cache_dir: str | None = None,
        seed: int = 0,
    ) -> None:
        import open_clip
        import torch

        self.model_name = str(model)
        self.device = select_device(device)
        self.precision = resolve_precision(precision, self.device)
        if batch_size is not None and int(batch_size) < 1:
            raise EmbedderError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = (
            int(batch_size) if batch_size else DEFAULT_BATCH_SIZE.get(self.device.split(":")[0], 32)
        )
        self.cache_dir = cache_dir
        self.seed = int(seed)
        self._model_cfg: dict[str, Any] | None = None
        self._sha256: str | None = None

        force_preprocess: dict[str, Any] = {}
        if model_config is not None:
            self._model_cfg, force_preprocess = _register_config(self.model_name, model_config)

        schema, identifier = _parse_model_name(self.model_name)
        offline = _offline_reason()
        create_kwargs: dict[str, Any] = {}
        if schema == "hf-hub":
            self.weights_kind = "hf-hub"
            self.pretrained: str | None = None
            self.weights_file: str | None = None
            self.fingerprint = f"hf-hub:{identifier}"
            label = f"open_clip {self.model_name}"
            cached = _hf_hub_model_is_cached(identifier, cache_dir)
            self._fail_fast_if_offline(offline, cached, f"{self.model_name!r}")
        elif schema is not None:
            raise EmbedderError(
                f"model={self.model_name!r}: the {schema!r} schema is not supported; pass the "
                "config with model_config= and the weights file with pretrained="
            )
        else:
            cached = True
            self.weights_file = None
            if open_clip.get_model_config(self.model_name) is None:
                raise EmbedderError(
                    f"model={self.model_name!r} is not an open_clip model (see "
                    "open_clip.list_models()), nor registered with model_config=..."
                )
            if pretrained is None:
                self.weights_kind = "random"
                self.pretrained = None
                self.fingerprint = f"random-init:seed={self.seed}"
                label = f"open_clip {self.model_name} (random init, seed {self.seed})"
            else:
                pretrained = str(pretrained)
                tag_cfg = open_clip.get_pretrained_cfg(self.model_name, pretrained)
                if tag_cfg:
                    self.weights_kind = "tag"
                    pretrained = pretrained.lower().replace("-", "_")  # open_clip's spelling
                    self.pretrained = pretrained
                    self.fingerprint = f"open_clip-tag:{self.model_name}/{pretrained}"
                    label = f"open_clip {self.model_name} ({pretrained})"
                    cached = _tag_is_cached(tag_cfg, cache_dir)
                    self._fail_fast_if_offline(offline, cached, f"tag {pretrained!r}")
                elif os.path.isfile(pretrained):
                    self.weights_kind = "file"
                    self.pretrained = self.weights_file = str(Path(pretrained).resolve())
                    self.fingerprint = ""  # sha256, computed on first spec()
                    label = f"open_clip {self.model_name} ({Path(pretrained).name})"
                elif _looks_like_path(pretrained):
                    raise EmbedderError(
                        f"CLIP weights file not found: {pretrained!r}. Pass the path of an "
                        "existing open_clip weights file (e.g. open_clip_pytorch_model.bin), a "
                        f"pretrained tag, or use PixelStatsEmbedder(). {_HELP_LOCAL}"
                    )
                else:
                    tags = open_clip.list_pretrained_tags_by_model(self.model_name)
                    raise EmbedderError(
                        f"pretrained={pretrained!r} is neither a pretrained tag of "
                        f"{self.model_name!r} (known: {', '.join(tags) or 'none'}) nor an "
                        "existing weights file"
                    )
            create_kwargs["pretrained"] = self.pretrained
        if force_preprocess:
            create_kwargs["force_preprocess_cfg"] = force_preprocess

        try:
            with torch.random.fork_rng(devices=[]), _hub_offline(offline is not None and cached):
                torch.manual_seed(self.seed)
                net = open_clip.create_model(
                    self.model_name, device="cpu", cache_dir=cache_dir, **create_kwargs
                )
                tokenizer = open_clip.get_tokenizer(self.model_name, cache_dir=cache_dir)
        except EmbedderError:
            raise
        except Exception as e:
            self._raise_load_error(e, cached)

        net.eval().requires_grad_(False)
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[
            self.precision
        ]
        net = net.to(device=self.device, dtype=dtype)
        self._model = net
        self._tokenizer = tokenizer
        self._dtype = dtype

        cfg = net.visual.preprocess_cfg
        size = cfg.get("size", getattr(net.visual, "image_size", None))
        if isinstance(size, list | tuple):
            if len(set(size)) != 1:
                raise EmbedderError(
                    f"{self.model_name}: non-square input size {size} is not supported"
                )
            size = size[0]
        self.image_size = int(size)
        mean = torch.tensor(cfg["mean"], dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(cfg["std"], dtype=torch.float32).view(1, 3, 1, 1)
        # x_norm = (x / 255 - mean) / std = x * scale + shift
        self._scale = (1.0 / (255.0 * std)).to(self.device)
        self._shift = (-mean / std).to(self.device)
        self.preprocess = {"mean": tuple(cfg["mean"]), "std": tuple(cfg["std"])}
        out_dim = getattr(net.visual, "output_dim", None)
        if out_dim is None:
            probe = np.zeros((1, self.image_size, self.image_size, 3), np.uint8)
            out_dim = self._encode_batch(probe).shape[1]
        self.dim = int(out_dim)
        self.name = label

    # -- loading -----------------------------------------------------------------------------

    def _fail_fast_if_offline(self, offline: str | None, cached: bool, what: str) -> None:
        if offline is None and not cached:
            offline = _hub_unreachable()
        if offline is not None and not cached:
            remember_hub_failure(offline, keep_first=True)
            raise EmbedderError(
                f"CLIP weights for {self.model_name} {what} are not in the local cache and "
                f"cannot be downloaded: {offline}. {_HELP_LOCAL}"
            )

    def _raise_load_error(self, error: Exception, cached: bool) -> None:
        reason = f"{type(error).__name__}: {error}"
        if len(reason) > 400:
            reason = reason[:400] + "..."
        if self.weights_kind in ("tag", "hf-hub") and not cached:
            if _is_network_failure(error):
                remember_hub_failure("the Hugging Face Hub could not be reached")
                raise EmbedderError(
                    f"Could not download CLIP weights for {self._name_hint()}: the Hugging Face "
                    f"Hub could not be reached ({reason}). Later loads in this process will "
                    f"not retry (va_widgets.embedders.forget_hub_failure() resets this). "
                    f"{_HELP_LOCAL}"
                ) from error
            raise EmbedderError(
                f"Could not download CLIP weights for {self._name_hint()}: {reason}. {_HELP_LOCAL}"
            ) from error
        if self.weights_kind == "file":
            raise EmbedderError(
                f"Could not load CLIP weights file {self.weights_file!r} into {self.model_name} "
                f"({reason}). Is it an open_clip checkpoint of this architecture?"
            ) from error
        raise EmbedderError(f"Could not create {self._name_hint()}: {reason}") from error

    def _name_hint(self) -> str:
        if self.weights_kind == "tag":
            return f"{self.model_name} ({self.pretrained})"
        return self.model_name

    # -- spec ----------------------------------------------------------------------------------

    def spec(self) -> dict[str, Any]:
        """Identify the vector space: model, weights source and fingerprint, dim, image size.

        For a local weights file the fingerprint is its sha256 (computed once, ~1 s per GB).
        """
        if self.weights_kind == "file" and not self.fingerprint:
            assert self.weights_file is not None
            self._sha256 = _sha256_file(self.weights_file)
            self.fingerprint = f"sha256:{self._sha256}"
        spec: dict[str, Any] = {
            "kind": "open_clip",
            "model": self.model_name,
            "weights": self.weights_kind,
            "pretrained": self.pretrained,
            "fingerprint": self.fingerprint,
            "dim": self.dim,
            "image_size": self.image_size,
        }
        if self.weights_kind == "random":
            spec["seed"] = self.seed
        if self._model_cfg is not None:
            spec["model_config"] = self._model_cfg
        return spec

    def __repr__(self) -> str:
        return (
            f"OpenClipEmbedder({self.name!r}, dim={self.dim}, device={self.device!r}, "
            f"precision={self.precision!r}, batch_size={self.batch_size})"
        )

    # -- encoding ------------------------------------------------------------------------------

    def _encode_batch(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
            x = x.permute(0, 3, 1, 2).float()
            x = (x * self._scale + self._shift).to(self._dtype)
            features = self._model.encode_image(x).float()
            features = torch.nn.functional.normalize(features, dim=-1)
            return features.cpu().numpy()

    def encode_images(self, images: np.ndarray, *, progress: Progress | None = None) -> np.ndarray:
        """(N, S, S, 3) uint8 RGB -> (N, dim) float32, L2-normalised; batched."""
        images = _check_images(images, self.image_size, ndim=4, what="images")
        out = np.empty((len(images), self.dim), dtype=np.float32)
        for start in range(0, len(images), self.batch_size):
            batch = images[start : start + self.batch_size]
            out[start : start + len(batch)] = self._encode_batch(batch)
            if progress is not None:
                progress(len(batch))
        return out

    def encode_clips(self, frames: np.ndarray, *, progress: Progress | None = None) -> np.ndarray:
        """(n, K, S, S, 3) uint8 -> (n, dim): normalised mean of normalised frame vectors.

        ``progress`` counts frames.
        """
        frames = _check_images(frames, self.image_size, ndim=5, what="frames")
        n, k = frames.shape[:2]
        if n == 0 or k == 0:
            return np.zeros((n, self.dim), dtype=np.float32)
        flat = frames.reshape(n * k, *frames.shape[2:])
        per_frame = self.encode_images(flat, progress=progress).reshape(n, k, self.dim)
        return _normalise_rows(per_frame.mean(axis=1))

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, L2-normalised CLIP text embeddings."""
        import torch

        if isinstance(texts, str):
            texts = [texts]
        texts = [str(t) for t in texts]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        step = max(1, self.batch_size)
        # interactive: one thread, steady under a competing process (see one_torch_thread)
        threads = one_torch_thread() if self.device == "cpu" else nullcontext()
        with threads, torch.inference_mode():
            for start in range(0, len(texts), step):
                tokens = self._tokenizer(texts[start : start + step]).to(self.device)
                features = encode_text_prefix(self._model, tokens)
                if features is None:
                    features = self._model.encode_text(tokens)
                features = torch.nn.functional.normalize(features.float(), dim=-1)
                out[start : start + len(tokens)] = features.cpu().numpy()
        return out

    @property
    def torch_model(self) -> torch.nn.Module:
        """The underlying open_clip model (eval mode, on ``device``, in ``precision``)."""
        return self._model


def encode_text_prefix(model: Any, tokens: torch.Tensor) -> torch.Tensor | None:
    """CLIP's text embedding computed on the tokens up to the last end-of-text token only;
    None where ``model`` is not of the kind this holds for (then encode the whole context).

    In CLIP's text tower (open_clip's ``CLIP`` with a causal attention mask and the embedding
    read at the end-of-text token, ``text_pool_type="argmax"``) a token attends only to the
    tokens before it, so the padding after the end token cannot change the result; it is most
    of the work for a short prompt (77 positions, against 5-15 for a typical query). The
    steps are those of ``CLIP.encode_text`` on a shorter sequence.
    """
    import open_clip
    import torch

    mask = getattr(model, "attn_mask", None)
    if not (
        type(model) is open_clip.CLIP
        and getattr(model, "text_pool_type", None) == "argmax"
        and mask is not None
        and mask.ndim == 2
        and tokens.ndim == 2
    ):
        return None
    end = tokens.argmax(dim=-1)  # the end-of-text token has the highest id
    n = int(end.max()) + 1
    cast = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens[:, :n]).to(cast) + model.positional_embedding[:n].to(cast)
    x = model.ln_final(model.transformer(x, attn_mask=mask[:n, :n]))
    pooled = x[torch.arange(x.shape[0], device=x.device), end]
    projection = model.text_projection
    if projection is None:
        return pooled
    return projection(pooled) if isinstance(projection, torch.nn.Linear) else pooled @ projection
