"""The framing every style engine shares: sizing, strength, keep-colours and the style cache.

An engine (a module of this package, registered in models/engines.py) implements `paint` on a
content tensor already at its working size. The framing around it is the same for all: the
result's long side is `size` (default ModelConfig.style_max_size, else 1024 on CUDA and 512 on
CPU), never larger than the photo, aspect ratio kept; `strength` 0..1 goes from the photo (0) to
the full style (1) (each engine says how); `keep_colors` keeps the photo's own colours (its Lab
chroma) and takes only the lightness of the painted result, i.e. the brushwork.

Whatever depends only on the style image and the working size (statistics, Gram matrices,
attention keys) is cached per preset, under the `style_key` the caller names. A custom style
photo (no key) is used once and never cached.

A module of its own rather than the package's __init__, so that the engines depend on the framing
alone: the __init__ holds only the front door (`models.style.load`), whose function-level import
of the registry (which imports every engine) is the one way back.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from PIL import Image

from models import color
from models.config import ModelConfig
from models.engine import Engine

CACHE_ENTRIES = 32
MIN_SIDE = 16


def default_size(device: torch.device, configured: int | None = None) -> int:
    return configured or (1024 if device.type == "cuda" else 512)


def to_tensor(img: Image.Image, device: torch.device) -> torch.Tensor:
    arr = torch.from_numpy(np.array(img.convert("RGB")))
    return arr.to(device).permute(2, 0, 1).unsqueeze(0).float() / 255


def to_image(t: torch.Tensor) -> Image.Image:
    arr = (t[0].clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, "RGB")


def fit(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """(w, h) scaled so the long side is at most `long_side`, aspect kept, never enlarged; but each side
    at least 16 pixels, which VGG's four poolings need (only a panorama thinner than 1:32 is stretched)."""
    w, h = size
    scale = min(1.0, long_side / max(w, h))
    return max(MIN_SIDE, round(w * scale)), max(MIN_SIDE, round(h * scale))


def keep_content_colors(stylised: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The stylised lightness with the content's chroma (a*, b*)."""
    lab_s = color.rgb_to_lab(stylised.clamp(0, 1))
    lab_c = color.rgb_to_lab(content)
    return color.lab_to_rgb(torch.cat((lab_s[:, :1], lab_c[:, 1:]), dim=1))


class StyleEngine(Engine):
    """The shared framing; an engine implements `paint`."""

    family = "style"

    def __init__(self, device: torch.device, config: ModelConfig):
        super().__init__(device, config)
        self.max_size = default_size(device, config.style_max_size)
        self._cache: OrderedDict = OrderedDict()

    def cached(self, key: tuple, compute):
        """compute() once per key; a key whose first element (the style's name) is None is never cached."""
        if key[0] is None:
            return compute()
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        value = self._cache[key] = compute()
        if len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return value

    @torch.no_grad()
    def __call__(self, content: Image.Image, style: Image.Image, *, strength: float = 1.0, keep_colors: bool = False,
                 style_key: str | None = None, size: int | None = None) -> Image.Image:
        """`content` painted like `style`, RGB. `strength` 0..1 (the photo .. the full style); `keep_colors`
        keeps the photo's own colours; `style_key` names a preset (its style side is cached under that
        name; None: a custom style, never cached); `size` the result's long side (default `max_size`)."""
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"style strength must be between 0 and 1, not {strength}")
        if size is not None and size < MIN_SIDE:
            raise ValueError(f"result size must be at least {MIN_SIDE} pixels, not {size}")
        w, h = fit(content.size, size or self.max_size)
        c = to_tensor(content.resize((w, h), Image.LANCZOS), self.device)
        out = self.paint(c, style, strength, style_key)
        if keep_colors:
            out = keep_content_colors(out, c)
        return to_image(out)

    def paint(self, content: torch.Tensor, style: Image.Image, strength: float, style_key: str | None):
        """The painted content (1, 3, h, w) in 0..1; `style_key` names a preset (cache key) or is None."""
        raise NotImplementedError
