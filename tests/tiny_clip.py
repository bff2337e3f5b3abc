"""A tiny, randomly initialised open_clip model for tests and benchmarks.

No CLIP weights can be downloaded on the test machines, so tests build a real open_clip
architecture (real tokenizer, real layers) that is small enough to run in milliseconds, save
its seeded random weights to a file, and load that file through the same code path as
downloaded weights (``OpenClipEmbedder(TINY_MODEL, pretrained=weights, model_config=config)``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TINY_MODEL = "va-tiny"

TINY_CONFIG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def make_tiny_clip(
    folder: str | Path, *, seed: int = 0, name: str = TINY_MODEL
) -> tuple[Path, Path]:
    """Write ``<name>.json`` (open_clip model config) and seeded random weights into ``folder``.

    Returns ``(config_json_path, weights_path)``. The same seed gives byte-identical weights.
    """
    import open_clip
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / f"{name}.json"
    config_path.write_text(json.dumps(TINY_CONFIG, indent=2))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.CLIP(**json.loads(json.dumps(TINY_CONFIG)))
    weights_path = folder / f"{name}-seed{seed}.pt"
    torch.save(model.state_dict(), weights_path)
    return config_path, weights_path
