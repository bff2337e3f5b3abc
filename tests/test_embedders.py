"""Tests of va_widgets.embedders with a real (tiny, random) open_clip model: no mocks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tiny_clip import TINY_MODEL, make_tiny_clip
from va_widgets import embedders
from va_widgets.embedders import (
    Embedder,
    EmbedderFallbackWarning,
    OpenClipEmbedder,
    PixelStatsEmbedder,
    embedder_from_spec,
    load_default_embedder,
    resolve_precision,
    select_device,
)
from va_widgets.errors import EmbedderError, TextSearchUnavailable

TESTS_DIR = Path(__file__).resolve().parent
S = 64  # image size of the tiny model


@pytest.fixture(autouse=True)
def _fresh_hub_state():
    embedders.forget_hub_failure()
    yield
    embedders.forget_hub_failure()


@pytest.fixture(scope="module")
def imported() -> None:
    """Import torch and open_clip first, so that timed tests measure loading, not imports."""
    import open_clip  # noqa: F401


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    return make_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


@pytest.fixture(scope="module")
def clip_fp32(tiny) -> OpenClipEmbedder:
    config, weights = tiny
    return OpenClipEmbedder(TINY_MODEL, pretrained=weights, model_config=config, precision="fp32")


def _images(n: int, seed: int = 0, size: int = S) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two single L2-normalised vectors given as (1, d) arrays."""
    return float((a * b).sum())


def _solid(rgb: tuple[int, int, int], n: int = 1, size: int = 64) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (n, size, size, 3)).copy()


# ---------------------------------------------------------------------------------------------
# module
# ---------------------------------------------------------------------------------------------


def test_import_does_not_load_torch():
    code = "import sys, va_widgets.embedders; print('torch' in sys.modules, 'open_clip' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# ---------------------------------------------------------------------------------------------
# OpenClipEmbedder on the tiny model, loaded through the local-weights-file path
# ---------------------------------------------------------------------------------------------


def test_open_clip_attributes_and_protocol(clip_fp32):
    assert isinstance(clip_fp32, Embedder)
    assert clip_fp32.dim == 32
    assert clip_fp32.image_size == S
    assert clip_fp32.supports_text
    assert clip_fp32.device == "cpu" or clip_fp32.device.startswith(("cuda", "mps"))
    assert TINY_MODEL in clip_fp32.name


def test_encode_images_shape_dtype_norm(clip_fp32):
    vectors = clip_fp32.encode_images(_images(5))
    assert vectors.shape == (5, 32)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert clip_fp32.encode_images(_images(0)).shape == (0, 32)


def test_identical_images_identical_vectors(tiny):
    config, weights = tiny
    emb = OpenClipEmbedder(TINY_MODEL, pretrained=weights, model_config=config, batch_size=4)
    image = _images(1, seed=3)
    batch = np.concatenate([image, _images(2, seed=4), image, image])  # spans two batches
    vectors = emb.encode_images(batch)
    np.testing.assert_array_equal(vectors[0], vectors[3])
    np.testing.assert_allclose(vectors[0], vectors[4], atol=1e-6)
    np.testing.assert_array_equal(emb.encode_images(batch), vectors)  # repeatable
    assert not np.allclose(vectors[0], vectors[1])


def test_batching_does_not_change_vectors(tiny):
    config, weights = tiny
    images = _images(7, seed=5)
    small = OpenClipEmbedder(
        TINY_MODEL, pretrained=weights, model_config=config, precision="fp32", batch_size=2
    )
    large = OpenClipEmbedder(
        TINY_MODEL, pretrained=weights, model_config=config, precision="fp32", batch_size=64
    )
    done: list[int] = []
    a = small.encode_images(images, progress=done.append)
    assert done == [2, 2, 2, 1]
    np.testing.assert_allclose(a, large.encode_images(images), atol=1e-5)


def test_encode_clips_is_normalised_mean_of_frame_vectors(clip_fp32):
    frames = _images(3 * 4, seed=6).reshape(3, 4, S, S, 3)
    clips = clip_fp32.encode_clips(frames)
    assert clips.shape == (3, 32) and clips.dtype == np.float32
    per_frame = clip_fp32.encode_images(frames.reshape(12, S, S, 3)).reshape(3, 4, 32)
    mean = per_frame.mean(axis=1)
    expected = mean / np.linalg.norm(mean, axis=1, keepdims=True)
    np.testing.assert_allclose(clips, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(clips, axis=1), 1.0, atol=1e-5)


def test_wrong_input_is_rejected_clearly(clip_fp32):
    with pytest.raises(ValueError, match="64x64"):
        clip_fp32.encode_images(_images(2, size=32))
    with pytest.raises(ValueError, match="uint8"):
        clip_fp32.encode_images(_images(2).astype(np.float32))
    with pytest.raises(ValueError, match=r"\(n, K, S, S, 3\)"):
        clip_fp32.encode_clips(_images(2))


def test_encode_text_with_real_tokenizer(clip_fp32):
    texts = ["a car chase at night", "a close-up of a face", "a car chase at night"]
    vectors = clip_fp32.encode_text(texts)
    assert vectors.shape == (3, 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(vectors[0], vectors[2])
    assert not np.allclose(vectors[0], vectors[1])
    np.testing.assert_allclose(
        clip_fp32.encode_text("a close-up of a face")[0], vectors[1], atol=1e-6
    )


def test_text_search_runs_torch_on_one_thread_and_restores_the_count(clip_fp32):
    """One query must not wait on torch's thread pool (stalls under a competing process)."""
    import torch

    seen: list[int] = []
    hook = clip_fp32._model.token_embedding.register_forward_hook(
        lambda *_: seen.append(torch.get_num_threads())
    )
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        clip_fp32.encode_text(["a red car"])
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        hook.remove()
        torch.set_num_threads(before)


def test_bf16_close_to_fp32(tiny, clip_fp32):
    config, weights = tiny
    bf16 = OpenClipEmbedder(TINY_MODEL, pretrained=weights, model_config=config, precision="bf16")
    assert bf16.precision == "bf16"
    images = _images(16, seed=7)
    cosine = (bf16.encode_images(images) * clip_fp32.encode_images(images)).sum(axis=1)
    assert cosine.min() >= 0.999
    text = ["a dog on a beach", "smoking"]
    cosine_text = (bf16.encode_text(text) * clip_fp32.encode_text(text)).sum(axis=1)
    assert cosine_text.min() >= 0.999
    assert bf16.spec() == clip_fp32.spec()  # precision is not part of the vector space


def test_spec_is_json_and_identifies_the_weights(tiny, clip_fp32, tmp_path):
    config, weights = tiny
    spec = clip_fp32.spec()
    assert json.loads(json.dumps(spec)) == spec
    assert spec["kind"] == "open_clip" and spec["model"] == TINY_MODEL
    assert spec["weights"] == "file" and spec["fingerprint"].startswith("sha256:")
    assert spec["dim"] == 32 and spec["image_size"] == S
    again = OpenClipEmbedder(TINY_MODEL, pretrained=weights, model_config=config, batch_size=3)
    assert again.spec() == spec

    _, other_weights = make_tiny_clip(tmp_path, seed=1)
    other = OpenClipEmbedder(TINY_MODEL, pretrained=other_weights, model_config=config)
    assert other.spec()["fingerprint"] != spec["fingerprint"]

    random_init = OpenClipEmbedder(TINY_MODEL, pretrained=None, model_config=config, seed=5)
    assert random_init.spec()["fingerprint"] == "random-init:seed=5"
    assert (
        random_init.spec() != OpenClipEmbedder(TINY_MODEL, None, model_config=config, seed=6).spec()
    )


def test_spec_stable_across_processes(tiny, clip_fp32):
    config, weights = tiny
    code = (
        "import json, sys\n"
        "from va_widgets.embedders import OpenClipEmbedder\n"
        f"e = OpenClipEmbedder({TINY_MODEL!r}, pretrained={str(weights)!r}, model_config={str(config)!r})\n"
        "print(json.dumps(e.spec()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == clip_fp32.spec()


def test_random_init_is_seeded(tiny):
    config, _ = tiny
    images = _images(2, seed=8)
    a = OpenClipEmbedder(TINY_MODEL, None, model_config=config, precision="fp32", seed=1)
    b = OpenClipEmbedder(TINY_MODEL, None, model_config=config, precision="fp32", seed=1)
    c = OpenClipEmbedder(TINY_MODEL, None, model_config=config, precision="fp32", seed=2)
    np.testing.assert_array_equal(a.encode_images(images), b.encode_images(images))
    assert not np.allclose(a.encode_images(images), c.encode_images(images))


def test_embedder_from_spec_round_trip(tiny, clip_fp32, tmp_path):
    images = _images(3, seed=9)
    rebuilt = embedder_from_spec(clip_fp32.spec(), precision="fp32")
    assert rebuilt.spec() == clip_fp32.spec()
    np.testing.assert_allclose(
        rebuilt.encode_images(images), clip_fp32.encode_images(images), atol=1e-6
    )

    config, _ = tiny
    random_init = OpenClipEmbedder(TINY_MODEL, None, model_config=config, precision="fp32", seed=4)
    again = embedder_from_spec(json.loads(json.dumps(random_init.spec())), precision="fp32")
    np.testing.assert_array_equal(again.encode_images(images), random_init.encode_images(images))

    pixels = PixelStatsEmbedder()
    assert embedder_from_spec(pixels.spec()).spec() == pixels.spec()


def test_embedder_from_spec_checks_the_weights_fingerprint(tiny, clip_fp32, tmp_path):
    _, other_weights = make_tiny_clip(tmp_path, seed=2)
    with pytest.raises(EmbedderError, match="fingerprint"):
        embedder_from_spec(clip_fp32.spec(), pretrained=other_weights)
    with pytest.raises(EmbedderError, match="unknown embedder kind"):
        embedder_from_spec({"kind": "nope"})


def test_missing_weights_file_raises_clearly(tiny, tmp_path):
    config, _ = tiny
    missing = tmp_path / "nowhere" / "open_clip_pytorch_model.bin"
    with pytest.raises(EmbedderError, match="not found") as info:
        OpenClipEmbedder(TINY_MODEL, pretrained=missing, model_config=config)
    assert str(missing) in str(info.value)
    with pytest.raises(EmbedderError, match="neither a pretrained tag"):
        OpenClipEmbedder("ViT-B-32", pretrained="no_such_tag")


def test_weights_of_another_architecture_raise(tiny, tmp_path):
    _, weights = tiny
    config = json.loads(Path(tiny[0]).read_text())
    config["embed_dim"] = 16
    other = tmp_path / "va-tiny-16.json"
    other.write_text(json.dumps(config))
    with pytest.raises(EmbedderError, match="Could not load CLIP weights file"):
        OpenClipEmbedder("va-tiny-16", pretrained=weights, model_config=other)


def test_bad_model_config_raises(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"embed_dim": 8}))
    with pytest.raises(EmbedderError, match="not an open_clip model config"):
        OpenClipEmbedder("bad", pretrained=None, model_config=bad)
    with pytest.raises(EmbedderError, match="not an open_clip model"):
        OpenClipEmbedder("no-such-architecture", pretrained=None)


def test_offline_tag_fails_fast_with_help(imported, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EmbedderError) as info:
        OpenClipEmbedder("ViT-B-32", "laion2b_s34b_b79k", cache_dir=str(tmp_path))
    message = str(info.value)
    assert "HF_HUB_OFFLINE" in message
    assert "pretrained='/path/to/open_clip_pytorch_model.bin'" in message
    assert "PixelStatsEmbedder" in message


def test_offline_hf_hub_model_fails_fast(imported, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EmbedderError, match="not in the local cache"):
        OpenClipEmbedder("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", cache_dir=str(tmp_path))


def test_device_selection():
    import torch

    auto = select_device(None)
    if torch.cuda.is_available():
        assert auto == "cuda"
    elif auto != "mps":
        assert auto == "cpu"
        with pytest.raises(EmbedderError, match="CUDA is not available"):
            select_device("cuda")
    assert select_device("cpu") == "cpu"
    with pytest.raises(EmbedderError, match="not a valid torch device"):
        select_device("abacus")


def test_precision_resolution():
    assert resolve_precision("auto", "cuda") == "fp16"
    assert resolve_precision("auto", "cuda:1") == "fp16"
    assert resolve_precision("auto", "cpu", native_bf16=True) == "bf16"
    assert resolve_precision("auto", "cpu", native_bf16=False) == "fp32"
    assert resolve_precision("auto", "mps") == "fp32"
    assert resolve_precision("fp32", "cuda") == "fp32"
    assert resolve_precision("bf16", "cpu", native_bf16=False) == "bf16"
    with pytest.raises(EmbedderError, match="precision"):
        resolve_precision("int8", "cpu")  # type: ignore[arg-type]
    expected = "bf16" if embedders.cpu_has_native_bf16() else "fp32"
    assert resolve_precision("auto", "cpu") == expected


def test_batch_size_default_and_validation(tiny):
    config, weights = tiny
    emb = OpenClipEmbedder(TINY_MODEL, pretrained=weights, model_config=config, device="cpu")
    assert emb.batch_size == embedders.DEFAULT_BATCH_SIZE["cpu"]
    with pytest.raises(EmbedderError, match="batch_size"):
        OpenClipEmbedder(TINY_MODEL, pretrained=weights, model_config=config, batch_size=0)


# ---------------------------------------------------------------------------------------------
# load_default_embedder
# ---------------------------------------------------------------------------------------------


def test_load_default_falls_back_offline_and_remembers(imported, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.warns(EmbedderFallbackWarning, match="TEXT SEARCH IS OFF"):
        first = load_default_embedder(cache_dir=str(tmp_path))
    assert isinstance(first, PixelStatsEmbedder)
    # Even with the variable gone, the failure is remembered: no 47 s of hub retries.
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    with pytest.warns(EmbedderFallbackWarning, match="earlier in this process"):
        second = load_default_embedder(cache_dir=str(tmp_path))
    assert isinstance(second, PixelStatsEmbedder)


def test_load_default_without_fallback_raises(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EmbedderError, match="PixelStatsEmbedder"):
        load_default_embedder(fallback=False, cache_dir=str(tmp_path))


# ---------------------------------------------------------------------------------------------
# PixelStatsEmbedder
# ---------------------------------------------------------------------------------------------


def test_pixel_stats_shapes_and_determinism():
    emb = PixelStatsEmbedder()
    assert isinstance(emb, Embedder)
    assert not emb.supports_text
    images = _images(6, seed=10)
    a = emb.encode_images(images)
    assert a.shape == (6, emb.dim) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(a, PixelStatsEmbedder().encode_images(images.copy()))
    np.testing.assert_array_equal(a[2:3], emb.encode_images(images[2:3]))  # batch-independent
    assert json.loads(json.dumps(emb.spec())) == emb.spec()


def test_pixel_stats_distinguishes_colours():
    emb = PixelStatsEmbedder()
    red, green, blue = (
        emb.encode_images(_solid(c)) for c in [(220, 30, 30), (30, 200, 40), (30, 40, 210)]
    )
    dark_red = emb.encode_images(_solid((200, 40, 35)))
    assert _cos(red, dark_red) > _cos(red, green) + 0.2
    assert _cos(red, dark_red) > _cos(red, blue) + 0.2
    assert _cos(green, blue) < 0.9


def test_pixel_stats_texture_differs_from_flat():
    emb = PixelStatsEmbedder()
    flat = _solid((128, 128, 128))
    stripes = flat.copy()
    stripes[:, :, ::4] = 255
    vertical, horizontal = (
        emb.encode_images(stripes),
        emb.encode_images(stripes.transpose(0, 2, 1, 3)),
    )
    assert _cos(emb.encode_images(flat), vertical) < 0.95
    assert _cos(vertical, horizontal) < 0.99  # orientation histogram sees the difference


def test_pixel_stats_motion_responds_to_frame_changes():
    emb = PixelStatsEmbedder()
    still = np.repeat(_images(1, seed=11)[:, None], 4, axis=1)  # (1, 4, S, S, 3)
    moving = np.stack([np.roll(still[0, 0], shift, axis=1) for shift in (0, 8, 16, 24)])[None]
    v_still, v_moving = emb.encode_clips(still), emb.encode_clips(moving)
    assert v_still.shape == (1, emb.dim)
    np.testing.assert_allclose(np.linalg.norm(v_moving, axis=1), 1.0, atol=1e-5)
    # A still clip equals its frame as an image; motion moves the vector away from it.
    np.testing.assert_allclose(v_still, emb.encode_images(still[:, 0]), atol=1e-6)
    assert _cos(v_still, v_moving) < 0.95
    flicker = still.copy()
    flicker[0, 1::2] = 255 - flicker[0, 1::2]
    assert _cos(emb.encode_clips(flicker), v_still) < _cos(v_moving, v_still)


def test_pixel_stats_has_no_text_search():
    with pytest.raises(TextSearchUnavailable, match="no text encoder") as info:
        PixelStatsEmbedder().encode_text(["a car chase"])
    assert "OpenClipEmbedder" in str(info.value)


def _fake_hub_cache(cache: Path, repo_id: str, files: dict[str, Path]) -> None:
    """Lay files out as huggingface_hub's cache does (refs/main -> snapshots/<commit>/)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, source in files.items():
        (snapshot / name).write_bytes(source.read_bytes())


def test_hf_hub_model_loads_offline_from_the_cache(
    imported, tiny, clip_fp32, tmp_path, monkeypatch
):
    config, weights = tiny
    hub_config = tmp_path / "open_clip_config.json"
    hub_config.write_text(json.dumps({"model_cfg": json.loads(config.read_text())}))
    cache = tmp_path / "hub"
    _fake_hub_cache(
        cache,
        "va-test/tiny-clip",
        {"open_clip_config.json": hub_config, "open_clip_pytorch_model.bin": weights},
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    emb = OpenClipEmbedder("hf-hub:va-test/tiny-clip", cache_dir=str(cache), precision="fp32")
    assert emb.spec()["fingerprint"] == "hf-hub:va-test/tiny-clip"
    images = _images(3, seed=13)
    np.testing.assert_allclose(
        emb.encode_images(images), clip_fp32.encode_images(images), atol=1e-6
    )
    np.testing.assert_allclose(
        emb.encode_text(["a cat"]), clip_fp32.encode_text(["a cat"]), atol=1e-6
    )
    rebuilt = embedder_from_spec(emb.spec(), cache_dir=str(cache))
    assert rebuilt.spec() == emb.spec()


def test_an_unreachable_hub_is_detected_without_download_retries(monkeypatch, tmp_path):
    import socket

    from va_widgets.embedders import forget_hub_failure

    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # as if imported without it
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    forget_hub_failure()
    try:
        with pytest.warns(EmbedderFallbackWarning, match=r"cannot be reached"):
            embedder = load_default_embedder(cache_dir=str(tmp_path))
        assert isinstance(embedder, PixelStatsEmbedder)
    finally:
        forget_hub_failure()


def test_text_is_encoded_on_its_tokens_only_with_the_same_result(tiny_clip):
    """CLIP's causal text tower gives the same embedding on the prompt's tokens alone as on
    the whole padded context; the shorter path is the one used."""
    import torch

    from va_widgets.embedders.openclip import encode_text_prefix

    prompts = ["a red ball", "a dog running on a long sandy beach at sunset", "x", "night " * 100]
    model = tiny_clip.torch_model
    tokens = tiny_clip._tokenizer(prompts)
    with torch.inference_mode():
        full = torch.nn.functional.normalize(model.encode_text(tokens).float(), dim=-1)
        short = encode_text_prefix(model, tokens)
    assert short is not None
    short = torch.nn.functional.normalize(short.float(), dim=-1)
    np.testing.assert_allclose(short.numpy(), full.numpy(), atol=1e-5)
    np.testing.assert_allclose(tiny_clip.encode_text(prompts), full.numpy(), atol=1e-5)
    assert encode_text_prefix(torch.nn.Linear(2, 2), tokens) is None  # other models: full path
