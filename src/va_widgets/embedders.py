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
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
import threading
import urllib.error
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from va_widgets.errors import EmbedderError, TextSearchUnavailable
from va_widgets.linalg import one_torch_thread

if TYPE_CHECKING:
    import torch

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_PRETRAINED",
    "Embedder",
    "EmbedderFallbackWarning",
    "OpenClipEmbedder",
    "PixelStatsEmbedder",
    "cpu_has_native_bf16",
    "embedder_from_spec",
    "forget_hub_failure",
    "load_default_embedder",
    "resolve_precision",
    "select_device",
]

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"

Precision = Literal["auto", "fp32", "bf16", "fp16"]
Progress = Callable[[int], Any]
"""Progress callback: called with the number of items finished since the last call
(``tqdm(...).update`` fits)."""

# Images per forward pass when batch_size is None. CPU: ViT-B-32 on 2 (shared, loaded) cores
# showed no batch size among 16/32/64 winning consistently; 32 keeps memory and the progress
# step small.
DEFAULT_BATCH_SIZE = {"cuda": 256, "mps": 64, "cpu": 32}

_WEIGHTS_SUFFIXES = (".bin", ".pt", ".pth", ".safetensors", ".npz", ".npy", ".ckpt")
_HELP_LOCAL = (
    "To use CLIP without network access, download the weights once elsewhere (e.g. "
    "open_clip_pytorch_model.bin from https://huggingface.co/laion/CLIP-ViT-B-32-laion2B-s34B-b79K) "
    "and pass the file: OpenClipEmbedder('ViT-B-32', pretrained='/path/to/open_clip_pytorch_model.bin'); "
    "or copy a Hugging Face cache that holds them into HF_HOME. Without CLIP weights, use "
    "PixelStatsEmbedder() (no text search)."
)


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


def _sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Device and precision
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Hub access: cache look-ups, offline mode, remembered failures
# --------------------------------------------------------------------------------------------

_HUB_FAILURE: str | None = None  # why the hub was unreachable, remembered for this process
_CONFIG_LOCK = threading.Lock()
_CONFIG_DIR: tempfile.TemporaryDirectory[str] | None = None


def forget_hub_failure() -> None:
    """Forget a remembered hub failure, so that the next load tries the network again."""
    global _HUB_FAILURE
    _HUB_FAILURE = None


def _env_offline() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in {"1", "ON", "YES", "TRUE"}


def _offline_reason() -> str | None:
    """Why the network must not be used now, or None."""
    if _env_offline():
        return "HF_HUB_OFFLINE is set"
    if _HUB_FAILURE is not None:
        return f"fetching CLIP weights failed earlier in this process ({_HUB_FAILURE})"
    try:
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            return "HF_HUB_OFFLINE was set when huggingface_hub was imported"
    except ImportError:
        pass
    return None


def _hub_unreachable(timeout_seconds: float = 3.0) -> str | None:
    """Why the Hugging Face Hub cannot be reached (DNS or TCP within a few seconds), or None.

    huggingface_hub retries a failed download for about 47 s before giving up; this probe
    tells a machine without network access at once.
    """
    from urllib.parse import urlparse

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    url = urlparse(endpoint)
    host, port = (
        url.hostname or "huggingface.co",
        url.port or (443 if url.scheme == "https" else 80),
    )
    try:
        with socket.create_connection((host, port), timeout=timeout_seconds):
            return None
    except OSError as exc:
        return f"the Hugging Face Hub ({host}) cannot be reached: {exc}"


@contextmanager
def _hub_offline(active: bool) -> Iterator[None]:
    """Make huggingface_hub serve from its cache only (as HF_HUB_OFFLINE=1 would) while active.

    huggingface_hub reads HF_HUB_OFFLINE once at import, so setting the variable later has no
    effect on it; its module constant is switched instead, and restored afterwards.
    """
    if not active:
        yield
        return
    try:
        from huggingface_hub import constants
    except ImportError:
        yield
        return
    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved


def _is_network_failure(error: BaseException) -> bool:
    names = {
        "LocalEntryNotFoundError",
        "OfflineModeIsEnabled",
        "ConnectError",
        "ConnectTimeout",
        "ReadTimeout",
        "TimeoutException",
        "ProxyError",
    }
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__name__ in names or isinstance(
            current, ConnectionError | TimeoutError | socket.gaierror | urllib.error.URLError
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def _hf_cached(repo_id: str, filenames: Sequence[str], cache_dir: str | None) -> str | None:
    """Path of the first of ``filenames`` in the local Hugging Face cache, or None."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for filename in filenames:
        found = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir)
        if isinstance(found, str) and os.path.isfile(found):
            return found
    return None


def _weight_filenames(filename: str) -> list[str]:
    """open_clip's preference order: a .safetensors twin first, then the named file."""
    names = []
    if filename.endswith((".bin", ".pth")):
        names.append(filename[:-4] + ".safetensors")
    names.append(filename)
    return names


def _tag_is_cached(tag_cfg: dict[str, Any], cache_dir: str | None) -> bool:
    """Whether open_clip would find the weights of a pretrained tag without the network."""
    if tag_cfg.get("file"):
        return os.path.isfile(tag_cfg["file"])
    hub = tag_cfg.get("hf_hub") or ""
    if hub:
        repo_id, filename = os.path.split(hub)
        return (
            _hf_cached(
                repo_id, _weight_filenames(filename or "open_clip_pytorch_model.bin"), cache_dir
            )
            is not None
        )
    url = tag_cfg.get("url") or ""
    if url:
        folder = cache_dir or os.path.expanduser("~/.cache/clip")
        return os.path.isfile(os.path.join(folder, os.path.basename(url)))
    return False


def _hf_hub_model_is_cached(repo_id: str, cache_dir: str | None) -> bool:
    config = _hf_cached(repo_id, ["open_clip_config.json"], cache_dir)
    weights = _hf_cached(repo_id, _weight_filenames("open_clip_pytorch_model.bin"), cache_dir)
    return config is not None and weights is not None


def _register_config(model: str, model_config: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Register a custom open_clip config JSON under ``model``; return (model_cfg, preprocess_cfg).

    Accepts a plain model config (``embed_dim``, ``vision_cfg``, ``text_cfg``) or the hub format
    ``{"model_cfg": ..., "preprocess_cfg": ...}``.
    """
    global _CONFIG_DIR
    import open_clip

    path = Path(model_config)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EmbedderError(f"model_config {str(path)!r} does not exist") from None
    except (OSError, ValueError) as e:
        raise EmbedderError(f"model_config {str(path)!r} is not readable JSON: {e}") from e
    preprocess = {}
    if isinstance(data, dict) and "model_cfg" in data:
        preprocess = dict(data.get("preprocess_cfg") or {})
        data = data["model_cfg"]
    if not isinstance(data, dict) or not all(
        k in data for k in ("embed_dim", "vision_cfg", "text_cfg")
    ):
        raise EmbedderError(
            f"model_config {str(path)!r} is not an open_clip model config "
            "(it needs 'embed_dim', 'vision_cfg' and 'text_cfg')"
        )
    _check_config_sizes(data, str(path))
    with _CONFIG_LOCK:
        builtin = open_clip.get_model_config(model)
        if builtin is not None and builtin != data and _is_builtin_model(model):
            raise EmbedderError(
                f"model={model!r} is a built-in open_clip model with a different config; "
                f"give the custom config in {str(path)!r} another name"
            )
        if _CONFIG_DIR is None:
            _CONFIG_DIR = tempfile.TemporaryDirectory(prefix="va_widgets_clip_configs_")
        # A fresh folder per registration: open_clip lets the config registered last win.
        folder = Path(tempfile.mkdtemp(dir=_CONFIG_DIR.name))
        copy = folder / f"{model}.json"
        copy.write_text(json.dumps(data), encoding="utf-8")
        open_clip.add_model_config(copy)
    return data, preprocess


#: Bounds of a model config read from a file (a cache, a classifier, the user): the largest
#: open_clip models have about 2.5e9 parameters and 1024-px inputs.
MAX_MODEL_PARAMETERS = 2e10
MAX_CONFIG_NUMBER = 1 << 24


def _check_config_sizes(data: dict[str, Any], where: str) -> None:
    """EmbedderError when a model config asks for absurd sizes, before anything is allocated."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > 16:
            raise EmbedderError(f"model_config {where!r} is nested deeper than 16 levels")
        if isinstance(value, dict):
            stack += [(v, depth + 1) for v in value.values()]
        elif isinstance(value, list):
            stack += [(v, depth + 1) for v in value]
        elif (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and not -MAX_CONFIG_NUMBER <= value <= MAX_CONFIG_NUMBER
        ):
            raise EmbedderError(f"model_config {where!r} holds an absurd number: {value!r}")
    parameters = 0.0
    for tower in ("vision_cfg", "text_cfg"):
        cfg = data.get(tower)
        if not isinstance(cfg, dict):
            continue
        width, layers = cfg.get("width", 0), cfg.get("layers", 0)
        layers = sum(layers) if isinstance(layers, list) else layers
        if isinstance(width, (int, float)) and isinstance(layers, (int, float)):
            parameters += 12.0 * float(width) ** 2 * float(layers)
        size = cfg.get("image_size", 0)
        if any(
            isinstance(v, (int, float)) and v > 4096
            for v in (size if isinstance(size, list) else [size])
        ):
            raise EmbedderError(f"model_config {where!r}: image_size {size!r} is above 4096")
    if parameters > MAX_MODEL_PARAMETERS:
        raise EmbedderError(
            f"model_config {where!r} describes a model of about {parameters:.1e} parameters "
            f"(more than {MAX_MODEL_PARAMETERS:.0e}); is the file damaged?"
        )


def _is_builtin_model(model: str) -> bool:
    import open_clip

    builtin_dir = Path(open_clip.__file__).parent / "model_configs"
    return (builtin_dir / f"{model}.json").is_file()


def _parse_model_name(model: str) -> tuple[str | None, str]:
    """Split open_clip's schema prefix: 'hf-hub:org/repo' -> ('hf-hub', 'org/repo')."""
    for schema in ("hf-hub", "local-dir"):
        if model.startswith(schema + ":"):
            identifier = model[len(schema) + 1 :]
            if not identifier:
                raise EmbedderError(f"model={model!r}: nothing after {schema + ':'!r}")
            return schema, identifier
    return None, model


def _looks_like_path(value: str) -> bool:
    return os.sep in value or "/" in value or value.lower().endswith(_WEIGHTS_SUFFIXES)


# --------------------------------------------------------------------------------------------
# open_clip
# --------------------------------------------------------------------------------------------


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
        global _HUB_FAILURE
        if offline is None and not cached:
            offline = _hub_unreachable()
        if offline is not None and not cached:
            if _HUB_FAILURE is None:
                _HUB_FAILURE = offline
            raise EmbedderError(
                f"CLIP weights for {self.model_name} {what} are not in the local cache and "
                f"cannot be downloaded: {offline}. {_HELP_LOCAL}"
            )

    def _raise_load_error(self, error: Exception, cached: bool) -> None:
        global _HUB_FAILURE
        reason = f"{type(error).__name__}: {error}"
        if len(reason) > 400:
            reason = reason[:400] + "..."
        if self.weights_kind in ("tag", "hf-hub") and not cached:
            if _is_network_failure(error):
                _HUB_FAILURE = "the Hugging Face Hub could not be reached"
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
                features = self._model.encode_text(tokens).float()
                features = torch.nn.functional.normalize(features, dim=-1)
                out[start : start + len(tokens)] = features.cpu().numpy()
        return out

    @property
    def torch_model(self) -> torch.nn.Module:
        """The underlying open_clip model (eval mode, on ``device``, in ``precision``)."""
        return self._model


# --------------------------------------------------------------------------------------------
# Pixel statistics
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Factories
# --------------------------------------------------------------------------------------------


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
