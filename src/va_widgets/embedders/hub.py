"""Hugging Face Hub access and weights handling: cache look-ups, offline mode, remembered
failures, custom model configs, weights files."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
import threading
import urllib.error
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from va_widgets.errors import EmbedderError

_WEIGHTS_SUFFIXES = (".bin", ".pt", ".pth", ".safetensors", ".npz", ".npy", ".ckpt")
_HELP_LOCAL = (
    "To use CLIP without network access, download the weights once elsewhere (e.g. "
    "open_clip_pytorch_model.bin from https://huggingface.co/laion/CLIP-ViT-B-32-laion2B-s34B-b79K) "
    "and pass the file: OpenClipEmbedder('ViT-B-32', pretrained='/path/to/open_clip_pytorch_model.bin'); "
    "or copy a Hugging Face cache that holds them into HF_HOME. Without CLIP weights, use "
    "PixelStatsEmbedder() (no text search)."
)


_HUB_FAILURE: str | None = None  # why the hub was unreachable, remembered for this process
_CONFIG_LOCK = threading.Lock()
_CONFIG_DIR: tempfile.TemporaryDirectory[str] | None = None


def forget_hub_failure() -> None:
    """Forget a remembered hub failure, so that the next load tries the network again."""
    global _HUB_FAILURE
    _HUB_FAILURE = None


def remember_hub_failure(reason: str, *, keep_first: bool = False) -> None:
    """Remember why the hub failed, so that later loads in this process do not retry."""
    global _HUB_FAILURE
    if keep_first and _HUB_FAILURE is not None:
        return
    _HUB_FAILURE = reason


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


def _sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
