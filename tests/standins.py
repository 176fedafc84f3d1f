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


SCRATCH_SEED = 2507  # ../shared/weights/golden/SCRATCH.md
SCRATCH_FINGERPRINT = "e219f833f757d8147a1a06da92abf4e887311fc06d01edbe256db674324b282d"


def write_scratch_standin(path: Path) -> Path:
    """The scratch detector's stand-in of SCRATCH.md (shared rule, seed 2507, fingerprint checked), saved as
    the authors' FT_Epoch_latest.pt is: a dict with the weights under "model_state"."""
    import sys

    import torch

    sys.path.insert(0, str(OFFICIAL.parent))
    from standin import fingerprint, layout, make_standin

    arrays = make_standin(layout("scratch_detection.json", "detection"), SCRATCH_SEED)
    assert fingerprint(arrays) == SCRATCH_FINGERPRINT, "the scratch stand-in differs from SCRATCH.md's"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model_state": {k: torch.from_numpy(v) for k, v in arrays.items()}, "epoch": 0}, path)
    return path


def write_lama_standin(path: Path, seed: int = 0) -> Path:
    """A big-lama.pt stand-in in the published file's format: a TorchScript archive whose state dict holds
    `generator.model.*` (what spandrel's LaMa detection keys on in the real file), made from spandrel's own
    LaMa architecture with seeded random weights and trained-looking BatchNorm statistics.

    Neither spandrel nor paintbot runs the archive's code (both rebuild LaMa from its state dict), so the
    archive records a trivial forward: tracing the real one costs ~11 s on 2 cores, per test session."""
    import torch
    from spandrel.architectures.LaMa import LaMa

    torch.manual_seed(seed)
    lama = LaMa(in_nc=4, out_nc=3).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, buf in lama.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(torch.randn(buf.shape, generator=g) * 0.1)
            elif name.endswith("running_var"):
                buf.copy_(1 + torch.rand(buf.shape, generator=g) * 0.1)

    class Exported(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.generator = lama.model  # FFCResNetGenerator: keys generator.model.*

        def forward(self, image, mask):
            return image * (1 - mask)

    x = torch.rand(1, 3, 16, 16)
    traced = torch.jit.trace(Exported().eval(), (x, (x[:, :1] > 0.5).float()), check_trace=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(traced, str(path))
    return path
