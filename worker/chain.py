"""The paper's chain, colourise then paint: `/style NAME keep-colors` on a black-and-white photo.

Keeping the photo's colours keeps none when it has none: the result stayed gray. So a black-and-white
content photo (mean chroma below models.color.BLACK_AND_WHITE_CHROMA, measured on a small copy) is first
colourised by the worker's default colouriser, then painted keeping those colours; the caption says so.
A worker that offers no colouriser (its files are missing) paints the photo as it is, and logs why.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from PIL import Image

from models import color

log = logging.getLogger("paintbot.worker")

SAMPLE_SIDE = 256  # the chroma is measured on a copy this size: the mean hardly moves, the cost does


def is_black_and_white(img: Image.Image) -> bool:
    if img.mode in ("L", "LA", "I", "I;16", "1"):
        return True
    small = img.convert("RGB")
    small.thumbnail((SAMPLE_SIDE, SAMPLE_SIDE))
    rgb = torch.from_numpy(np.array(small)).permute(2, 0, 1)
    return color.mean_chroma(rgb) < color.BLACK_AND_WHITE_CHROMA


def colour_first(engines, img: Image.Image, keep_colors: bool) -> tuple[Image.Image, bool]:
    """The content to paint, and whether it was colourised first (only with keep-colors, only gray photos)."""
    if not keep_colors or not is_black_and_white(img):
        return img, False
    colorizer = engines.defaults.get("colorize")
    if colorizer is None:
        log.warning("keep-colors on a black-and-white photo: not colourised first (this worker has no colouriser)")
        return img, False
    return colorizer(img), True
