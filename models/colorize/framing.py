"""The framing every colouriser shares: a network's chroma joined to the photo's own lightness.

Each colouriser (a module of this package, registered in models/engines.py) only predicts the
chroma: `predict_ab` gives a* and b* at the network's own resolution. This framing does the rest
the same way for all of them: it upsamples that ab to the photo's size and joins it to the
photo's OWN full-resolution lightness, so every detail of the photo is kept and only colour is
added; the colour intensity (a fraction of the predicted chroma) scales it before the join.

Colour hints (a person's taps, models/colorize/hints.py) ride on the same framing: an engine that
`takes_hints` gets them in `predict_ab`, and the result, a preview at a small size and the colours
offered at a tap are all joined the one way below, so a preview is the final result, only smaller.

A module of its own rather than the package's __init__, so that the engines depend on the framing
alone: the __init__ holds only the front door (`models.colorize.load`), whose function-level
import of the registry (which imports every engine) is the one way back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from models import color
from models.colorize import hints as hinting
from models.colorize.hints import Hint
from models.engine import Engine
from models.errors import InputError

MAX_INTENSITY = 2.0  # twice the predicted chroma; what leaves the sRGB gamut is clamped
PREVIEW_SIZE = 256  # long side of a preview: the network's own grid, so a preview costs one network run


class ColorizeEngine(Engine):
    """The shared framing; an engine implements `predict_ab`."""

    family = "colorize"
    ab_resize: ClassVar[str] = "bilinear"  # how the network's ab reaches full size (as its authors do)
    clip_z: ClassVar[bool] = True  # Lab -> RGB as scikit-image (False: as OpenCV, where its authors used it)

    def predict_ab(self, img: Image.Image, reference: Image.Image | None = None,
                   hints: Sequence[Hint] = ()) -> torch.Tensor:
        """ab (CIE units) for an 8-bit L or RGB image: (1, 2, h, w) float32 on the engine's device,
        at the network's resolution. `hints` (pixels of `img`) reach only an engine that `takes_hints`."""
        raise NotImplementedError

    @torch.inference_mode()
    def __call__(self, img: Image.Image, *, intensity: float = 1.0, reference: Image.Image | None = None,
                 hints: Sequence[Hint] = ()) -> Image.Image:
        """`img` coloured, RGB at its own size. `intensity` is the fraction of the predicted chroma, 0..2
        (0: the lightness only, 1: as predicted, 2: doubled); `reference` a colour photo to take the
        colours from, for an engine that `needs_reference`; `hints` colours a person asks for at pixels of
        `img`, for an engine that `takes_hints` (at most hints.MAX_HINTS; none: the automatic result)."""
        img = self.checked(img, intensity)
        if self.needs_reference and reference is None:
            raise InputError("reference.missing", f"the {self.name} model needs a colour reference photo")
        return self.join(img, self.hinted_ab(img, reference, hints), intensity)

    def colorize_hints(self, img: Image.Image, hints: Sequence[Hint], *, intensity: float = 1.0) -> Image.Image:
        """`img` coloured as the person's `hints` ask, full resolution: `self(img, intensity=..., hints=...)`.
        `intensity` scales the whole result's chroma, the hinted colours' too."""
        return self(img, intensity=intensity, hints=hints)

    @torch.inference_mode()
    def preview(self, img: Image.Image, hints: Sequence[Hint] = (), size: int = PREVIEW_SIZE, *,
                intensity: float = 1.0) -> Image.Image:
        """The result of `colorize_hints(img, hints)` at a long side of `size` px (never enlarged): the same
        network run, joined with the lightness of `img` made smaller, so it costs one network run and a
        small join. Hints are pixels of `img`."""
        if size < 1:
            raise ValueError(f"a preview's size must be at least 1 pixel, not {size}")
        img = self.checked(img, intensity)
        ab = self.hinted_ab(img, None, hints)
        w, h = img.size
        if max(w, h) > size:
            scale = size / max(w, h)
            img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC, reducing_gap=2.0)
        return self.join(img, ab, intensity)

    @torch.inference_mode()
    def suggest(self, img: Image.Image, x: int, y: int, k: int = 6, *,
                hints: Sequence[Hint] = ()) -> list[tuple[int, int, int]]:
        """Up to `k` distinct sRGB colours to offer where a person taps pixel (x = column, y = row) of `img`:
        the colour the result has there (with `hints` already placed, if any) first, then other hues at the
        same lightness and a neutral, all in the gamut at the lightness a hint there is snapped at
        (tap_lightness; hints.suggestions)."""
        img = self.checked(img, 1.0)
        w, h = img.size
        if not (0 <= x < w and 0 <= y < h):
            raise ValueError(f"x={x}, y={y} is outside the {w}x{h} photo")
        if not 1 <= k <= hinting.MAX_SUGGESTIONS:  # before the network runs
            raise ValueError(f"ask for 1..{hinting.MAX_SUGGESTIONS} suggested colours, not {k}")
        a, b = self.ab_at(self.hinted_ab(img, None, hints), x, y, w, h)
        return hinting.suggestions(self.tap_lightness(img, x, y), a, b, k)

    def tap_lightness(self, img: Image.Image, x: int, y: int) -> float:
        """The L* a colour picked at pixel (x, y) is snapped at: the photo's on the hint grid (hints.tap_lightness),
        so that a suggested colour, once picked, reaches the network as it was shown."""
        grid = self.lightness(img.resize((hinting.GRID, hinting.GRID), Image.BICUBIC))[0]
        return hinting.tap_lightness(grid, x, y, img.width, img.height)

    def checked(self, img: Image.Image, intensity: float) -> Image.Image:
        """`img` as the engines take it (8-bit L or RGB), once `intensity` is known to be in range."""
        if not 0.0 <= intensity <= MAX_INTENSITY:
            raise ValueError(f"colour intensity must be between 0 and {MAX_INTENSITY:g}, not {intensity}")
        return img if img.mode in ("L", "RGB") else img.convert("RGB")

    def hinted_ab(self, img: Image.Image, reference: Image.Image | None, hints: Sequence[Hint]) -> torch.Tensor:
        """predict_ab, with the hints passed on only to an engine that takes them (and refused by others)."""
        if not self.takes_hints:
            if hints:
                raise ValueError(f"the {self.name} model takes no colour hints")
            return self.predict_ab(img, reference)
        return self.predict_ab(img, reference, hints)

    def ab_at(self, ab_small: torch.Tensor, x: int, y: int, w: int, h: int) -> tuple[float, float]:
        """The ab the join gives pixel (x, y) of a w x h image, without upsampling the whole image."""
        if self.ab_resize != "bilinear":
            return tuple(float(v) for v in self.upsample_ab(ab_small, h, w)[:, y, x])
        hs, ws = ab_small.shape[-2:]

        def source(d: int, n_in: int, n_out: int) -> tuple[int, int, float]:  # F.interpolate's, align_corners=False
            s = max((d + 0.5) * n_in / n_out - 0.5, 0.0)
            i = min(int(s), n_in - 1)
            return i, min(i + 1, n_in - 1), s - i

        y0, y1, ty = source(y, hs, h)
        x0, x1, tx = source(x, ws, w)
        v = ab_small[0, :, [y0, y0, y1, y1], [x0, x1, x0, x1]].double().cpu()
        weights = torch.tensor([(1 - ty) * (1 - tx), (1 - ty) * tx, ty * (1 - tx), ty * tx], dtype=torch.float64)
        return tuple(float(c) for c in v @ weights)

    def lightness(self, img: Image.Image) -> torch.Tensor:
        """L* (1, H, W) of an 8-bit image: table lookups only for grayscale."""
        arr = torch.from_numpy(np.array(img)).to(self.device)
        if img.mode == "L":
            return color.lightness_from_gray_uint8(arr).unsqueeze(0)
        return color.lightness(arr.permute(2, 0, 1))

    def upsample_ab(self, ab_small: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """(1, 2, h', w') ab at the network's resolution -> (2, h, w), by `ab_resize`."""
        if ab_small.shape[-2:] == (h, w):
            return ab_small[0]
        if self.ab_resize == "nearest":
            return F.interpolate(ab_small, size=(h, w), mode="nearest")[0]
        return F.interpolate(ab_small, size=(h, w), mode=self.ab_resize, align_corners=False)[0]

    @torch.inference_mode()
    def join(self, img: Image.Image, ab_small: torch.Tensor, intensity: float = 1.0) -> Image.Image:
        """Upsample ab to the image's size, scale it by `intensity`, join it to the image's own L, to RGB."""
        w, h = img.size
        lum = self.lightness(img)
        ab = self.upsample_ab(ab_small, h, w)
        if intensity != 1.0:
            ab = ab * intensity
        planes = color.lab_to_rgb_uint8(lum, ab, clip_z=self.clip_z).cpu().numpy()
        return Image.merge("RGB", [Image.fromarray(p) for p in planes])
