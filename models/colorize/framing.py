"""The framing every colouriser shares: a network's chroma joined to the photo's own lightness.

Each colouriser (a module of this package, registered in models/engines.py) only predicts the
chroma: `predict_ab` gives a* and b* at the network's own resolution. This framing does the rest
the same way for all of them: it upsamples that ab to the photo's size and joins it to the
photo's OWN full-resolution lightness, so every detail of the photo is kept and only colour is
added; the colour intensity (a fraction of the predicted chroma) scales it before the join.

A module of its own rather than the package's __init__, so that the engines depend on the framing
alone: the __init__ holds only the front door (`models.colorize.load`), whose function-level
import of the registry (which imports every engine) is the one way back.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from models import color
from models.engine import Engine
from models.errors import InputError

MAX_INTENSITY = 2.0  # twice the predicted chroma; what leaves the sRGB gamut is clamped


class ColorizeEngine(Engine):
    """The shared framing; an engine implements `predict_ab`."""

    family = "colorize"
    ab_resize: ClassVar[str] = "bilinear"  # how the network's ab reaches full size (as its authors do)
    clip_z: ClassVar[bool] = True  # Lab -> RGB as scikit-image (False: as OpenCV, where its authors used it)

    def predict_ab(self, img: Image.Image, reference: Image.Image | None = None) -> torch.Tensor:
        """ab (CIE units) for an 8-bit L or RGB image: (1, 2, h, w) float32 on the engine's device,
        at the network's resolution."""
        raise NotImplementedError

    @torch.inference_mode()
    def __call__(self, img: Image.Image, *, intensity: float = 1.0,
                 reference: Image.Image | None = None) -> Image.Image:
        """`img` coloured, RGB at its own size. `intensity` is the fraction of the predicted chroma, 0..2
        (0: the lightness only, 1: as predicted, 2: doubled); `reference` a colour photo to take the
        colours from, for an engine that `needs_reference`."""
        if not 0.0 <= intensity <= MAX_INTENSITY:
            raise ValueError(f"colour intensity must be between 0 and {MAX_INTENSITY:g}, not {intensity}")
        if img.mode not in ("L", "RGB"):
            img = img.convert("RGB")
        if self.needs_reference and reference is None:
            raise InputError("reference.missing", f"the {self.name} model needs a colour reference photo")
        return self.join(img, self.predict_ab(img, reference), intensity)

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
