"""The style golden vectors (../shared/weights/golden, STYLE.md): stand-ins, inputs and acceptance criteria.

The goldens are the authors' code run on stand-in weights; the stand-ins are rebuilt here from the
shared rule with the seeds STYLE.md lists, and checked against its fingerprints before use.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tests.conftest import SHARED

GOLDEN = SHARED / "weights" / "golden"
sys.path.insert(0, str(SHARED / "weights"))
from standin import fingerprint, layout, make_standin  # noqa: E402

# STYLE.md's table: | `name` (layout.json...) | seed | keys | `sha256` | ...
_ROW = re.compile(r"^\| `(\w+)` \((\w+\.json)[^)]*\) \| (\d+) \| \d+ \| `([0-9a-f]{64})`", re.M)
STANDINS = {name: (layout_file, int(seed), digest)
            for name, layout_file, seed, digest in _ROW.findall((GOLDEN / "STYLE.md").read_text())}


def standin_state_dict(name: str) -> dict[str, torch.Tensor]:
    """The stand-in of checkpoint `name` (STYLE.md's table), verified against its fingerprint."""
    layout_file, seed, digest = STANDINS[name]
    arrays = make_standin(layout(layout_file, name), seed)
    assert fingerprint(arrays) == digest, f"stand-in {name} differs from STYLE.md's"
    return {k: torch.from_numpy(v) for k, v in arrays.items()}


def write_standin(name: str, path: Path) -> Path:
    torch.save(standin_state_dict(name), path)
    return path


def tensor(name: str) -> torch.Tensor:
    return torch.from_numpy(np.load(GOLDEN / f"{name}.npy"))


def image(name: str) -> Image.Image:
    return Image.open(GOLDEN / name).convert("RGB")


def image_tensor(name: str) -> torch.Tensor:
    """torchvision's ToTensor() of a golden PNG: uint8 / 255, NCHW."""
    return torch.from_numpy(np.array(image(name))).permute(2, 0, 1).unsqueeze(0).float() / 255


@dataclass(frozen=True)
class Diff:
    max_abs: float
    mean_abs: float
    rel_l2: float

    def __str__(self):
        return f"max {self.max_abs:.2e}, mean {self.mean_abs:.2e}, relL2 {self.rel_l2:.2e}"


def diff(got: torch.Tensor, name: str) -> Diff:
    want = np.load(GOLDEN / f"{name}.npy").astype(np.float64)
    got = got.detach().cpu().double().numpy()
    assert got.shape == want.shape, f"{name}: shape {got.shape}, golden {want.shape}"
    err = np.abs(got - want)
    return Diff(float(err.max()), float(err.mean()), float(np.linalg.norm(got - want) / np.linalg.norm(want)))


@dataclass(frozen=True)
class Criteria:
    """STYLE.md's suggested acceptance for a float32 implementation."""

    max_abs: float
    mean_abs: float = float("inf")
    rel_l2: float = float("inf")

    def met_by(self, d: Diff) -> bool:
        return d.max_abs <= self.max_abs and d.mean_abs <= self.mean_abs and d.rel_l2 <= self.rel_l2


FEATURES = Criteria(max_abs=1e-4)  # AdaIN files and the AdaAttN encoder features
ATTENTION = Criteria(max_abs=1e-2, mean_abs=1e-4, rel_l2=1e-4)  # attention levels, transformer output
OUTPUT = Criteria(max_abs=1e-3, mean_abs=1e-4, rel_l2=1e-4)  # adaattn_out, adaattn_sampled_out


def assert_matches(got: torch.Tensor, name: str, criteria: Criteria) -> Diff:
    d = diff(got, name)
    assert criteria.met_by(d), f"{name}: {d} exceeds {criteria}"
    return d
