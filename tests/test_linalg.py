"""The float16 scoring kernel: exact float32 products, in place on memory maps, thread-safe."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import torch

from va_widgets.linalg import project


def test_project_a_float16_memory_map_equals_the_float32_product(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50_001, 48)).astype(np.float16)  # not a multiple of the chunk
    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    weights_list = (rng.standard_normal(48), rng.standard_normal((48, 3)))
    for weights, chunk_rows in itertools.product(weights_list, (4096, None)):  # None: default
        got = project(mapped, weights, chunk_rows=chunk_rows)
        want = x.astype(np.float64) @ weights
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    assert project(mapped[:0], np.ones(48)).shape == (0,)


def test_concurrent_products_leave_torch_threads_as_they_were():
    x = np.random.default_rng(1).standard_normal((20_000, 32)).astype(np.float16)
    want = x.astype(np.float32) @ np.ones(32, np.float32)
    before = torch.get_num_threads()
    errors: list[float] = []

    def run() -> None:
        for _ in range(10):
            errors.append(float(np.abs(project(x, np.ones(32)) - want).max()))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 30 and max(errors) < 1e-4
    assert torch.get_num_threads() == before
