"""Stand-in weight files: the exact keys and shapes of the official checkpoints, seeded random values.

The real files cannot be downloaded here; these let the real download, SHA-256 and strict
loading code run. Values are scaled like a trained network (He init for convolutions,
identity BatchNorm) so activations stay finite and outputs are non-trivial.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

OFFICIAL = Path(__file__).resolve().parent.parent.parent / "shared" / "weights" / "official.json"


def official() -> dict:
    return json.loads(OFFICIAL.read_text())


def standin_state_dict(name: str, seed: int = 0) -> dict:
    import torch

    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in official()[name]["state_dict"].items():
        if key.endswith("running_var") or (len(shape) == 1 and key.endswith(".weight")):
            t = torch.ones(shape)  # BatchNorm scale / variance
        elif len(shape) == 1:
            t = torch.zeros(shape)  # biases, BatchNorm shift / mean
        else:
            fan_in = shape[1] * math.prod(shape[2:])
            if ".ConvTranspose" in key or (name.startswith("eccv16") and key.startswith("model8.0")):
                fan_in = shape[0] * math.prod(shape[2:])
            t = torch.randn(shape, generator=g) * math.sqrt(2.0 / fan_in)
        out[key] = t
    if name == "eccv16":  # model_out holds the ab bin centres: spread them over the gamut
        out["model_out.weight"] = (torch.rand(2, 313, 1, 1, generator=g) * 2 - 1) * 0.8
    return out


def write_standin(name: str, path: Path, seed: int = 0) -> Path:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(standin_state_dict(name, seed), path)
    return path
