"""A person's colour hints for SIGGRAPH17 (Zhang et al., "Real-Time User-Guided Image Colorization"):
from a tap on the photo to the network's hint channels, and the colours offered where they tap.

Why each step is as it is (../shared/weights/golden/SIGGRAPH17_HINTS.md has the evidence, file and line):
- A hint is what the authors' GUI makes of a click: the picked colour snapped into the sRGB gamut at
  the lightness the network sees at the click (the photo at 256x256, at the click's grid cell: a colour
  that cannot exist at that L would ask the network for the impossible), its CIE ab, painted uniformly over a 5x5 patch centred on the click on the 256x256
  network grid. The click maps to the grid by nearest index, x256 = x * 256 // W (rows from y and H
  alike): the hints are drawn on the grid itself, never drawn at full size and resampled (that moves
  and smears the patches, SIGGRAPH17_HINTS.md section 6).
- The released weights (siggraph17-df00044c.pth, the Caffe model converted) take ab / 110 and an
  UN-centred 0/1 mask, as richzhang/colorization's forward feeds them; the -0.5 centring belongs to the
  colorization-pytorch retrained model only. The mask is an input to every pixel, so centring it
  wrongly moves the whole picture, hints or none.
- The encoding is split into small module-level steps (`grid_point`, `hint_maps`, `ab_input`,
  `mask_input`, `PATCH`, `AB_NORM`, `MASK_OFFSET`) that the network looks up when it runs, so that the
  golden tests can put each documented mistake back, one at a time, and see the comparison fail.
- Suggestions: the released checkpoint's class head (`model_class`, 529 ab classes) is not a trained
  distribution head. The Caffe model it was converted from predicts its colour distribution with a
  separate hypercolumn layer (pred_313 in the authors' deploy_nopred.prototxt), not with a 1x1
  convolution of conv8_3, and richzhang/colorization's forward never evaluates model_class. So the
  suggestions are made from what the network does predict: the colour it gives that pixel, the same
  lightness and chroma at evenly spaced other hues, and a neutral, each snapped into the gamut.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from models import color

MAX_HINTS = 64  # more than a person places by hand; more is refused (ValueError)
GRID = 256  # the grid hints are placed on: SIGGRAPH17's input, the authors' GUI's load_size
PATCH = 5  # pixels of the square each hint covers on the network grid (the GUI's default brush), odd
AB_NORM = 110.0  # hint ab are fed as ab / AB_NORM
MASK_OFFSET = 0.0  # fed as mask - MASK_OFFSET: 0 for the released weights (0.5 only for the retrained ones)
SNAP_STEPS = 20  # the authors' GUI: at most 20 round trips Lab -> clipped sRGB -> Lab ...
SNAP_CONVERGED = 1.0  # ... until the Lab moves by less than this (sum of |dL|, |da|, |db|)
SUGGESTION_MIN_CHROMA = 30.0  # the other hues are offered at least this colourful (CIE C*ab)
SUGGESTION_MIN_DIFFERENCE = 6.0  # suggestions closer than this (CIE76 dE) to an earlier one are left out
MAX_SUGGESTIONS = 12


@dataclass(frozen=True)
class Hint:
    """A colour a person asks for at a pixel of the photo: x the column, y the row (pixels of the image it
    is given with, full resolution), rgb the sRGB colour as picked (0..255 each)."""

    x: int
    y: int
    rgb: tuple[int, int, int]

    def __post_init__(self):
        for name in ("x", "y"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"a hint's {name} must be a pixel index (a whole number >= 0), not {value!r}")
        rgb = tuple(self.rgb)
        if len(rgb) != 3 or any(isinstance(c, bool) or not isinstance(c, int) or not 0 <= c <= 255 for c in rgb):
            raise ValueError(f"a hint's colour must be three whole numbers 0..255 (sRGB), not {self.rgb!r}")
        object.__setattr__(self, "rgb", rgb)


class ColourPoint(NamedTuple):
    """A hint as the network gets it: its pixel (full resolution) and the ab it asks for (CIE units)."""

    x: int
    y: int
    a: float
    b: float


def lab_of(rgb: Sequence[int]) -> tuple[float, float, float]:
    """CIE Lab of an 8-bit sRGB colour (float64, as scikit-image)."""
    lab = color.rgb_to_lab(torch.tensor(rgb, dtype=torch.float64).view(3, 1, 1) / 255)
    return tuple(float(v) for v in lab.flatten())


def rgb_of(lab: Sequence[float]) -> tuple[int, int, int]:
    """The 8-bit sRGB colour of a Lab one, clipped to the gamut and rounded."""
    rgb = color.lab_to_rgb(torch.tensor(lab, dtype=torch.float64).view(3, 1, 1))
    return tuple(int(v) for v in torch.round(rgb.flatten() * 255))


def snap_lab(lightness: float, a: float, b: float) -> tuple[int, int, int]:
    """The 8-bit sRGB colour nearest (a, b) that exists at `lightness`, as the authors' GUI snaps a picked
    colour (lab_gamut.snap_ab): set L, clip to sRGB, back to Lab, until it settles."""
    lab = torch.tensor([lightness, a, b], dtype=torch.float64).view(3, 1, 1)
    for _ in range(SNAP_STEPS):
        wanted = lab.clone()
        wanted[0] = lightness
        lab = color.rgb_to_lab(color.lab_to_rgb(wanted))  # lab_to_rgb clips to the gamut
        if float((lab - wanted).abs().sum()) < SNAP_CONVERGED:
            break
    return rgb_of(lab.flatten().tolist())


def snap(lightness: float, rgb: Sequence[int]) -> tuple[int, int, int]:
    """A picked sRGB colour moved into the gamut at `lightness` (its hue and chroma kept as far as they can)."""
    _, a, b = lab_of(rgb)
    return snap_lab(lightness, a, b)


def tap_lightness(grid_lightness: torch.Tensor, x: int, y: int, width: int, height: int) -> float:
    """L* where pixel (x, y) of a width x height image falls on the network grid (`grid_lightness`, (S, S):
    the photo resized to S x S, as the network sees it). The authors' GUI snaps at this L, of the 256 image
    at the click's grid cell: the lightness the hint's patch has there, not one noisy full-size pixel's."""
    row, col = grid_point(x, y, width, height, grid_lightness.shape[-1])
    return float(grid_lightness[row, col])


def colour_points(hints: Sequence[Hint], width: int, height: int,
                  grid_lightness: torch.Tensor) -> list[ColourPoint]:
    """Each hint's colour snapped into the gamut at its lightness on the network grid (`tap_lightness`), as
    ab, at its pixel of the width x height image; the hints checked against the image."""
    if len(hints) > MAX_HINTS:
        raise ValueError(f"at most {MAX_HINTS} colour hints, not {len(hints)}")
    points = []
    for hint in hints:
        if not isinstance(hint, Hint):
            raise ValueError(f"a colour hint must be a Hint, not {hint!r}")
        if hint.x >= width or hint.y >= height:
            raise ValueError(f"the hint at x={hint.x}, y={hint.y} is outside the {width}x{height} photo")
        lightness = tap_lightness(grid_lightness, hint.x, hint.y, width, height)
        _, a, b = lab_of(snap(lightness, hint.rgb))
        points.append(ColourPoint(hint.x, hint.y, a, b))
    return points


def grid_point(x: int, y: int, width: int, height: int, size: int) -> tuple[int, int]:
    """(row, column) on the size x size network grid of pixel (x, y) of a width x height image: nearest,
    as the GUI's scale_point (int(x * size / width))."""
    return y * size // height, x * size // width


def hint_maps(points: Sequence[ColourPoint], width: int, height: int,
              size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The network's hint inputs on its grid: ab (1, 2, size, size) in CIE units and the mask (1, 1, size,
    size), 1 inside each hint's PATCH x PATCH square (cut at the borders; a later hint paints over an
    earlier one), 0 elsewhere."""
    ab = torch.zeros((1, 2, size, size))
    mask = torch.zeros((1, 1, size, size))
    r = PATCH // 2
    for p in points:
        row, col = grid_point(p.x, p.y, width, height, size)
        rows, cols = slice(max(row - r, 0), row + r + 1), slice(max(col - r, 0), col + r + 1)
        ab[0, 0, rows, cols] = p.a
        ab[0, 1, rows, cols] = p.b
        mask[0, 0, rows, cols] = 1
    return ab, mask


def ab_input(ab: torch.Tensor) -> torch.Tensor:
    """Hint ab (CIE units) as the network's channels 1-2 take them."""
    return ab / AB_NORM


def mask_input(mask: torch.Tensor) -> torch.Tensor:
    """The 0/1 hint mask as the network's channel 3 takes it."""
    return mask - MASK_OFFSET


def settled(lightness: float, rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """`rgb` snapped again until picking it changes nothing. Rounding to 8 bits moves a colour's L a little, so
    one at the gamut's edge can snap a level or two further when it is picked; a suggestion must reach the
    network as it was shown."""
    for _ in range(SNAP_STEPS):
        again = snap(lightness, rgb)
        if again == rgb:
            break
        rgb = again
    return rgb


def suggestions(lightness: float, a: float, b: float, k: int = 6) -> list[tuple[int, int, int]]:
    """Up to `k` distinct sRGB colours to offer at a pixel of lightness `lightness` whose predicted colour is
    (a, b): that colour first (`settled`), then the same chroma (at least SUGGESTION_MIN_CHROMA) at k - 2 other hues
    evenly around the circle from it, then a neutral; each snapped into the gamut at that lightness, and
    one too close to an earlier one left out (near black or white, few colours exist)."""
    if not 1 <= k <= MAX_SUGGESTIONS:
        raise ValueError(f"ask for 1..{MAX_SUGGESTIONS} suggested colours, not {k}")
    chroma, hue = max(math.hypot(a, b), SUGGESTION_MIN_CHROMA), math.atan2(b, a)
    wanted = [(a, b)]
    wanted += [(chroma * math.cos(hue + 2 * math.pi * j / (k - 1)), chroma * math.sin(hue + 2 * math.pi * j / (k - 1)))
               for j in range(1, k - 1)]
    wanted += [(0.0, 0.0)] if k > 1 else []
    chosen: list[tuple[int, int, int]] = []
    labs: list[tuple[float, float, float]] = []
    for wa, wb in wanted:
        rgb = settled(lightness, snap_lab(lightness, wa, wb))
        lab = lab_of(rgb)
        if all(math.dist(lab, other) >= SUGGESTION_MIN_DIFFERENCE for other in labs):
            chosen.append(rgb)
            labs.append(lab)
    return chosen
