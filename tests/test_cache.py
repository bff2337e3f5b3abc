"""The cache folder is input: tampered, foreign or damaged caches give a CacheError naming the
file and never make the library read, write or delete anything outside the folder."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import va_widgets as va
from synth import make_video
from va_widgets import cache as layout
from va_widgets.errors import CacheError

RED, GREEN, BLUE, WHITE = (220, 20, 20), (20, 200, 20), (20, 20, 220), (230, 230, 230)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, pixel_embedder) -> Path:
    """A small real library (two videos), built once; tests work on copies of it."""
    root = tmp_path_factory.mktemp("built")
    (root / "videos").mkdir()
    make_video(root / "videos" / "a.mp4", [(RED, 2), (GREEN, 2)])
    make_video(root / "videos" / "b.mp4", [(BLUE, 2), (WHITE, 2)])
    va.index_videos(root / "videos", root / "cache", embedder=pixel_embedder, progress=False)
    return root


@pytest.fixture
def lib_copy(built: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(videos, cache) copies in a fresh folder with a sentinel folder beside them."""
    shutil.copytree(built / "videos", tmp_path / "videos")
    shutil.copytree(built / "cache", tmp_path / "cache")
    sentinel = tmp_path / "outside" / "precious"
    sentinel.mkdir(parents=True)
    (sentinel / "keep.txt").write_text("mine")
    return tmp_path / "videos", tmp_path / "cache"


def _edit_manifest(cache: Path, edit) -> None:  # type: ignore[no-untyped-def]
    manifest = json.loads((cache / "manifest.json").read_text())
    edit(manifest)
    (cache / "manifest.json").write_text(json.dumps(manifest))


def _outside_intact(tmp_path: Path) -> None:
    assert (tmp_path / "outside" / "precious" / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in (tmp_path / "outside").rglob("*")) == ["keep.txt", "precious"]


def test_a_video_id_that_climbs_out_of_the_cache_is_refused(lib_copy, pixel_embedder):
    videos, cache = lib_copy
    tmp_path = cache.parent

    def climb(m):  # type: ignore[no-untyped-def]
        m["videos"][0]["video_id"] = "../../outside/precious"

    _edit_manifest(cache, climb)
    with pytest.raises(CacheError, match=r"manifest\.json.*video_id.*not a video id"):
        va.ClipLibrary.open(cache)
    with pytest.raises(CacheError, match="not a video id"):
        va.index_videos(videos, cache, embedder=pixel_embedder, progress=False)
    _outside_intact(tmp_path)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("generation", "../../outside/x", "generation must be an integer"),
        ("generation", 0, r"generation = 0 is outside"),
        ("generation", True, "generation must be an integer, not a boolean"),
        ("library_id", "../x", "library_id"),
        ("videos", {"a": 1}, "videos must be a list"),
        ("clip_rule", {"frames_per_clip": 10**9}, "clip_rule is invalid.*frames_per_clip"),
        ("clip_rule", {"clip_seconds": "2"}, "clip_rule is invalid.*clip_seconds"),
        ("embedder", {"kind": "pixel_stats", "dim": 10**9, "image_size": 64}, "embedder.dim"),
        ("errors", [{"video": "x", "severity": "fatal", "message": "m"}], "severity"),
    ],
)
def test_a_mistyped_or_out_of_bounds_manifest_is_a_clear_error(lib_copy, field, value, message):
    _, cache = lib_copy

    def set_field(m):  # type: ignore[no-untyped-def]
        m[field] = value

    _edit_manifest(cache, set_field)
    with pytest.raises(CacheError, match=message) as info:
        va.ClipLibrary.open(cache)
    assert "manifest.json" in str(info.value)


def test_a_deeply_nested_manifest_is_a_clear_error(lib_copy):
    _, cache = lib_copy
    text = (cache / "manifest.json").read_text()
    deep = "[" * 100_000 + "]" * 100_000
    (cache / "manifest.json").write_text(text[:-1] + f', "extra": {deep}}}')
    with pytest.raises(CacheError, match=r"manifest\.json"):
        va.ClipLibrary.open(cache)


def test_a_shard_linked_outside_is_unlinked_never_followed(lib_copy, pixel_embedder):
    """A link in videos/ to a folder outside: dropping the video removes the link only."""
    videos, cache = lib_copy
    tmp_path = cache.parent
    stray = cache / "videos" / "0123456789abcdef"
    stray.symlink_to(tmp_path / "outside" / "precious", target_is_directory=True)
    (videos / "b.mp4").unlink()  # one video dropped: garbage collection runs
    lib = va.index_videos(videos, cache, embedder=pixel_embedder, progress=False)
    assert lib.clips["video"].map(lambda p: Path(p).name).unique().tolist() == ["a.mp4"]
    assert not stray.exists() and not stray.is_symlink()
    _outside_intact(tmp_path)


def test_a_videos_folder_that_is_a_link_is_refused(lib_copy, pixel_embedder):
    videos, cache = lib_copy
    tmp_path = cache.parent
    shutil.move(cache / "videos", tmp_path / "outside" / "videos")
    (cache / "videos").symlink_to(tmp_path / "outside" / "videos", target_is_directory=True)
    with pytest.raises(CacheError, match=r"videos.*must be a folder inside the cache"):
        va.index_videos(videos, cache, embedder=pixel_embedder, progress=False)
    with pytest.raises(CacheError, match="outside the cache"):
        lib = va.ClipLibrary.open(cache)
        lib.thumbnails(lib.clips["clip_id"].iat[0])


def test_a_features_file_with_fewer_rows_than_the_table_is_refused(lib_copy):
    _, cache = lib_copy
    gen = json.loads((cache / "manifest.json").read_text())["generation"]
    path = cache / f"features-{gen}.npy"
    full = np.load(path)
    np.save(path, full[:-1])
    with pytest.raises(CacheError, match=r"features of shape \(\d+, \d+\).*manifest lists \d+"):
        va.ClipLibrary.open(cache)


def test_non_finite_features_are_an_error_naming_the_clips(lib_copy):
    _, cache = lib_copy
    gen = json.loads((cache / "manifest.json").read_text())["generation"]
    path = cache / f"features-{gen}.npy"
    full = np.load(path)
    full[3, 5] = np.nan
    np.save(path, full)
    lib = va.ClipLibrary.open(cache)  # opening reads no vector
    bad = lib.clips["clip_id"].iat[3]
    with pytest.raises(CacheError, match=f"not finite.*{bad}"):
        lib.similar(lib.clips["clip_id"].iat[0])
    with pytest.raises(CacheError, match=bad):
        va.Task(lib, "t")


def test_a_damaged_shard_is_indexed_again(lib_copy, pixel_embedder):
    videos, cache = lib_copy
    before = va.ClipLibrary.open(cache)
    video_id = before.clips["video_id"].iat[0]
    features = cache / "videos" / video_id / "features.npy"
    block = np.load(features)
    block[0, 0] = np.inf
    np.save(features, block)
    with pytest.warns(UserWarning, match="1 of 2 file"):
        lib = va.index_videos(videos, cache, embedder=pixel_embedder, progress=False)
    assert len(lib) < len(before)  # the damaged video is left out and named...
    bad = lib.errors[lib.errors["severity"] == "error"]
    assert bad["message"].str.contains(f"{video_id}.*non-finite features.*index again").all()
    assert len(bad) == 1
    again = va.index_videos(videos, cache, embedder=pixel_embedder, progress=False)
    assert len(again) == len(before) and (again.errors["severity"] != "error").all()  # ...rebuilt
    np.testing.assert_array_equal(np.asarray(again.features), np.asarray(before.features))


_fields = st.sampled_from(
    ["format", "version", "library_id", "generation", "embedder", "clip_rule", "videos",
     "errors", "embedder_name"]
)  # fmt: skip
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(field=_fields, value=_json, entry_field=st.sampled_from(
    ["path", "size", "mtime_ns", "video_id", "n_clips", "duration_seconds", "width", "warnings"]),
    in_entry=st.booleans())  # fmt: skip
def test_fuzzed_manifests_give_a_library_or_a_cache_error(
    built, field, value, entry_field, in_entry
):
    """Any value in any field: either a valid library or CacheError, nothing else, and the
    library never reads outside its folder (it is opened from a copy with nothing else around)."""
    manifest = json.loads((built / "cache" / "manifest.json").read_text())
    if in_entry:
        manifest["videos"][0][entry_field] = value
    else:
        manifest[field] = value
    try:
        checked = layout.validate_manifest(manifest, "fuzzed")
    except CacheError as exc:
        assert "fuzzed" in str(exc)
        return
    for entry in checked["videos"]:
        assert layout.VIDEO_ID.match(entry["video_id"])
    assert isinstance(checked["generation"], int) and checked["generation"] >= 1


def test_garbage_collection_touches_only_names_the_cache_writes(lib_copy, pixel_embedder):
    videos, cache = lib_copy
    mine = {cache / "notes.txt": "x", cache / "videos" / "README": "y"}
    for path, text in mine.items():
        path.write_text(text)
    (cache / "videos" / "my-folder").mkdir()
    (videos / "b.mp4").unlink()
    va.index_videos(videos, cache, embedder=pixel_embedder, progress=False)
    for path, text in mine.items():
        assert path.read_text() == text
    assert (cache / "videos" / "my-folder").is_dir()
    assert os.path.exists(cache / "labels.sqlite") is False  # nothing created either
