"""The framing every restorer shares: what it found (Damage), what it did (Repaired), and the rule that
only damaged pixels may change.

A restorer works in two steps so that the cheap one can run alone: `damage(img)` finds what is wrong
(inside every colourisation job, for the honest "Repair" offer), `__call__(img, damage=...)` mends it.
Whatever a network computes at its own working size, the result is the untouched full-resolution photo
with only the pixels under the mask replaced (`paste`): outside the mask it is bit-identical.

The photo's kind is kept: a black-and-white photo (mode "L", or RGB with R = G = B everywhere) is mended on
its lightness and stays black-and-white, in its own mode, until it is colourised; a colour photo keeps its
colours. A module of its own rather than the package's __init__, so that the engines depend on the framing
alone (the __init__ holds the front door, which imports the registry).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from models.engine import Engine


@dataclass(frozen=True)
class Damage:
    """What the detector found: `mask` "L" 0/255 at the photo's size, `regions` its connected damaged areas
    (8-connected, after the fill's dilation, so a scratch the detector broke into nearby pieces counts once)."""

    mask: Image.Image
    regions: int


@dataclass(frozen=True)
class Repaired:
    """The mended photo at its own size and kind, the (dilated) mask that was actually filled, and the
    number of damaged areas (0: `image` is the input, untouched)."""

    image: Image.Image
    mask: Image.Image
    regions: int


class RestoreEngine(Engine):
    family = "restore"

    def damage(self, img: Image.Image) -> Damage:
        raise NotImplementedError

    def __call__(self, img: Image.Image, *, damage: Damage | None = None) -> Repaired:
        raise NotImplementedError


def is_gray(img: Image.Image) -> bool:
    """Black-and-white: mode "L", or RGB whose three channels are equal everywhere (a scan saved as colour)."""
    if img.mode == "L":
        return True
    if img.mode != "RGB":
        return False
    r, g, b = img.split()
    return r.tobytes() == g.tobytes() == b.tobytes()


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """`mask` (bool h x w) grown by `radius` pixels (a square), so the fill also covers a damaged edge the
    detector's coarse grid missed and the halo around a scratch."""
    if radius <= 0 or not mask.any():
        return mask
    k = 2 * radius + 1
    t = torch.from_numpy(mask).to(torch.float32)[None, None]
    t = F.max_pool2d(t, (1, k), stride=1, padding=(0, radius))  # separable: rows, then columns
    t = F.max_pool2d(t, (k, 1), stride=1, padding=(radius, 0))
    return t[0, 0].numpy() > 0


def fill_radius(size: tuple[int, int], pixels: int, grid: int = 256) -> int:
    """How far the fill reaches beyond the detected mask: `pixels`, plus one detector cell less one (the
    detector sees the photo at short side `grid`, so its mask edges are that coarse)."""
    return pixels + max(0, math.ceil(min(size) / grid) - 1)


def count_regions(mask: np.ndarray) -> int:
    from scipy import ndimage

    return int(ndimage.label(mask, structure=np.ones((3, 3), bool))[1]) if mask.any() else 0


def paste(photo: Image.Image, filled: Image.Image, mask: Image.Image) -> Image.Image:
    """`photo` with the pixels under `mask` (0/255) taken from `filled` (same size and mode); every other
    pixel is the photo's own, bit for bit."""
    return Image.composite(filled, photo, mask)
