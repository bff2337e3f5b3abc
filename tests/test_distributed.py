"""Indexing on an executor: a real Dask LocalCluster, lost workers, failed tasks, re-runs."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import va_widgets as va
from synth import make_video

pytestmark = pytest.mark.slow

COLOURS = [(220, 30, 30), (30, 200, 40), (30, 40, 220), (235, 235, 235), (240, 200, 30)]


@pytest.fixture
def videos(tmp_path: Path) -> Path:
    """Six short videos, each with its own colours (so each clip vector is distinct)."""
    folder = tmp_path / "videos"
    folder.mkdir()
    for i in range(6):
        a, b = COLOURS[i % 5], COLOURS[(i // 5 + i + 1) % 5]
        make_video(folder / f"v{i}.mp4", [(a, 2.0), (b, 2.0)], seed=i)
    (folder / "broken.mp4").write_bytes(b"not a video at all")
    return folder


def index(videos: Path, cache: Path, embedder, **kwargs):  # type: ignore[no-untyped-def]
    return va.index_videos(videos, cache, embedder=embedder, progress=False, **kwargs)


def assert_same_library(a: va.ClipLibrary, b: va.ClipLibrary) -> None:
    assert a.clips["video"].nunique() == 6
    columns = ["clip_id", "video", "start_seconds", "end_seconds"]
    assert a.clips[columns].equals(b.clips[columns])
    np.testing.assert_allclose(
        np.asarray(a.features, np.float32), np.asarray(b.features, np.float32), atol=2e-3
    )


@pytest.fixture
def reference(videos, tmp_path, tiny_clip):  # type: ignore[no-untyped-def]
    with pytest.warns(UserWarning, match="1 of 7 file"):
        return index(videos, tmp_path / "local", tiny_clip)


def test_dask_local_cluster_indexes_the_same_library_as_one_process(
    videos, tmp_path, tiny_clip, reference
):
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster,
        distributed.Client(cluster) as client,
    ):
        with pytest.warns(UserWarning, match="1 of 7 file"):
            lib = index(videos, tmp_path / "dask", tiny_clip, executor=client)
        worker_pids = set(client.run(os.getpid).values())
        command = [sys.executable, "-m", "va_widgets.cli", "index", str(videos)]
        command += ["--cache", str(tmp_path / "cli"), "--offline", "--quiet"]
        cli = subprocess.run(
            [*command, "--dask", cluster.scheduler_address],
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert cli.returncode == 1  # broken.mp4 failed; the other six are indexed
    assert "clips from 6 video(s)" in cli.stdout and "broken.mp4" in cli.stderr
    assert_same_library(lib, reference)
    assert len(worker_pids) == 2 and os.getpid() not in worker_pids
    (error,) = lib.errors[lib.errors["severity"] == "error"].itertuples()
    assert error.video.endswith("broken.mp4") and "video" in error.message
    reopened = va.ClipLibrary.open(tmp_path / "dask")
    assert len(reopened) == len(reference)


def test_a_dask_worker_killed_mid_run_costs_only_its_unfinished_video(
    videos, tmp_path, tiny_clip, reference
):
    distributed = pytest.importorskip("distributed")
    cache = tmp_path / "dask"
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster,
        distributed.Client(cluster) as client,
    ):
        pids = list(client.run(os.getpid).values())
        killed = threading.Event()

        def kill_a_worker_after_the_first_shard() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if any((cache / "videos").glob("*/meta.json")):
                    os.kill(pids[0], signal.SIGKILL)
                    killed.set()
                    return
                time.sleep(0.01)

        killer = threading.Thread(target=kill_a_worker_after_the_first_shard)
        killer.start()
        with pytest.warns(UserWarning):
            lib = index(videos, cache, tiny_clip, executor=client)
        killer.join()
    assert killed.is_set()
    # The scheduler reran the lost worker's task elsewhere, or the video failed with a message
    # saying to index again; either way nothing finished is lost and a re-run completes.
    lost = lib.errors[lib.errors["message"].str.contains("index again to retry")]
    assert len(lib.clips["video"].unique()) + len(lost) == 6
    shards = {p.parent.name: p.stat().st_mtime_ns for p in (cache / "videos").glob("*/meta.json")}
    with pytest.warns(UserWarning, match="1 of 7 file"):
        again = index(videos, cache, tiny_clip)
    assert_same_library(again, reference)
    for name, mtime in shards.items():  # finished shards were reused, not rewritten
        assert (cache / "videos" / name / "meta.json").stat().st_mtime_ns == mtime


class FailingFor(concurrent.futures.ThreadPoolExecutor):
    """A thread pool whose tasks for one video fail, as a task on a lost machine would."""

    def __init__(self, video_name: str) -> None:
        super().__init__(max_workers=2)
        self.video_name = video_name
        self.submitted: list[str] = []

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def,override]
        path = args[3]
        self.submitted.append(Path(path).name)
        if Path(path).name == self.video_name:
            future: concurrent.futures.Future = concurrent.futures.Future()
            future.set_exception(ConnectionResetError("worker tcp://10.0.0.7:4242 lost"))
            return future
        return super().submit(fn, *args, **kwargs)


def test_a_failed_task_loses_only_its_video_and_the_next_run_completes_the_job(
    videos, tmp_path, tiny_clip, reference
):
    cache = tmp_path / "cache"
    with FailingFor("v3.mp4") as pool, pytest.warns(UserWarning, match="2 of 7 file"):
        lib = index(videos, cache, tiny_clip, executor=pool)
    assert sorted(Path(v).name for v in lib.clips["video"].unique()) == [
        "v0.mp4", "v1.mp4", "v2.mp4", "v4.mp4", "v5.mp4",
    ]  # fmt: skip
    failure = lib.errors[lib.errors["video"].str.endswith("v3.mp4")]["message"].item()
    assert "ConnectionResetError" in failure and "index again to retry" in failure
    with FailingFor("none") as pool, pytest.warns(UserWarning, match="1 of 7 file"):
        again = index(videos, cache, tiny_clip, executor=pool)
    assert sorted(pool.submitted) == ["broken.mp4", "v3.mp4"]  # the rest was reused
    assert_same_library(again, reference)


def test_a_process_pool_is_an_executor_too(videos, tmp_path, pixel_embedder):
    with pytest.warns(UserWarning, match="1 of 7 file"):
        local = index(videos, tmp_path / "local", pixel_embedder)
    with (
        concurrent.futures.ProcessPoolExecutor(2) as pool,
        pytest.warns(UserWarning, match="1 of 7 file"),
    ):
        pooled = index(videos, tmp_path / "pooled", pixel_embedder, executor=pool)
    assert_same_library(pooled, local)


def test_a_bad_executor_is_a_clear_error_and_touches_nothing(videos, tmp_path, tiny_clip):
    with pytest.raises(TypeError, match=r"executor must be a concurrent\.futures\.Executor"):
        index(videos, tmp_path / "cache", tiny_clip, executor=4)
    assert not (tmp_path / "cache").exists()


def test_a_dask_address_without_dask_installed_names_the_extra(videos, tmp_path):
    code = (
        "import sys; sys.modules['distributed'] = None\n"  # as if the extra were not installed
        "import va_widgets as va\n"
        "from va_widgets.embedders import PixelStatsEmbedder\n"
        f"va.index_videos({str(videos)!r}, {str(tmp_path / 'c')!r}, "
        "embedder=PixelStatsEmbedder(), executor='tcp://127.0.0.1:8786')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert 'pip install "va_widgets[dask]"' in done.stderr.strip().splitlines()[-1]
