"""Resolution: Real-ESRGAN (Wang et al., ICCVW 2021; BSD-3-Clause) through spandrel, as its authors run it.

Old prints reach the bot small and soft, and Telegram recompresses them to 1280 px JPEG on top. Real-ESRGAN
was trained on exactly that kind of degradation (blur, noise, JPEG, resampling, twice over), so it sharpens
without inventing the ringing that a plain resampler shows.

Two engines, both chosen by name (the restore family's default is the repair engine):
- `upscale`, the compact `realesr-general-x4v3` (SRVGGNetCompact, 1.2 M parameters) for CPUs, with the
  authors' denoise strength: the network's weights are interpolated with those of `realesr-general-wdn-x4v3`
  (their "dni": `denoise * x4v3 + (1 - denoise) * wdn`, default 0.5 as in inference_realesrgan.py), so
  that film grain is not all taken for noise;
- `upscale-hq`, `RealESRGAN_x4plus` (RRDBNet, 16.7 M parameters), for CUDA (`engine_for(device)`).

Both networks take RGB in [0, 1] and upscale 4x; another scale (2x by default) is the 4x result resized
with Lanczos, as RealESRGANer does for its `outscale`. The result's long side never exceeds `max_side`
(4096 px by default: a 4096 x 3072 RGB result is 36 MiB as pixels and prints at 34 cm x 26 cm at 300 dpi);
a photo already that large comes back unchanged.

Memory is bounded by tiling: the photo is cut into `tile`-pixel squares, each run with `overlap` pixels of
real context around it, and only its own square of the result is kept. The compact network sees 34 pixels
around each output pixel (34 3x3 convolutions), so with the default overlap of 36 a tiled result equals the
untiled one to float rounding; RRDBNet sees much further, and the same overlap (the authors use 10) leaves
differences under a grey level away from the tiles' seams (tests/test_enhance_upscale.py states both).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from models.engine import Engine, Licence
from models.restore.enhance import as_rgb, detector, in_kind_of, read
from models.weights import WeightFile, remote

RELEASES = "https://github.com/xinntao/Real-ESRGAN/releases/download/"
GENERAL_URL = RELEASES + "v0.2.5.0/realesr-general-x4v3.pth"
WDN_URL = RELEASES + "v0.2.5.0/realesr-general-wdn-x4v3.pth"
X4PLUS_URL = RELEASES + "v0.1.0/RealESRGAN_x4plus.pth"
NETWORK_SCALE = 4


def _compact(model) -> str | None:
    if model.scale != NETWORK_SCALE or model.input_channels != 3:
        return f"a {model.scale}x network with {model.input_channels} input channels, not 4x RGB"
    return None


def _file(url: str, architecture: str, size: int) -> WeightFile:
    # No SHA-256 is published: each file is pinned on its first strict load (models/weights.py).
    return WeightFile(remote(url, None, size=size), build=None, read=read,
                      detect=detector(architecture, url, _compact))


GENERAL = _file(GENERAL_URL, "Compact", 4_900_000)  # {"params": ...}, as published
WDN = _file(WDN_URL, "Compact", 4_900_000)
X4PLUS = _file(X4PLUS_URL, "ESRGAN", 67_000_000)  # {"params_ema": ...}


@dataclass(frozen=True)
class UpscaleSettings:
    max_side: int = 4096  # the result's long side never exceeds this (px)
    tile: int = 256  # input pixels per tile side: bounds the memory of one network call
    overlap: int = 36  # context pixels around each tile, cut off from its result
    denoise: float = 0.5  # realesr-general-x4v3's denoise strength (0: keep grain .. 1: smooth); compact only

    def __post_init__(self):
        if self.max_side < 64 or self.tile < 32 or self.overlap < 0 or not 0 <= self.denoise <= 1:
            raise ValueError("max_side >= 64, tile >= 32, overlap >= 0 and 0 <= denoise <= 1, please")


def blend_weights(strong: dict, weak: dict, denoise: float) -> dict:
    """The authors' network interpolation: `denoise * strong + (1 - denoise) * weak`, key by key."""
    return {k: denoise * v + (1 - denoise) * weak[k] if v.is_floating_point() else v for k, v in strong.items()}


def output_size(size: tuple[int, int], scale: float, max_side: int) -> tuple[int, int]:
    """(w, h) of the result: `scale` times `size`, shrunk to keep the long side within `max_side`."""
    w, h = size
    factor = min(scale, max_side / max(w, h))
    return max(1, round(w * factor)), max(1, round(h * factor))


@torch.inference_mode()
def run_tiled(net, x: torch.Tensor, scale: int, tile: int, overlap: int) -> np.ndarray:
    """`net` (RGB [0, 1] -> `scale`x RGB [0, 1]) over `x` (1, 3, h, w) tile by tile: each `tile` square is run
    with `overlap` pixels of context (where the photo has them) and only its own part of the result kept.
    Returns the (h*scale, w*scale, 3) result as float32 in [0, 1]."""
    h, w = x.shape[-2:]
    out = np.empty((h * scale, w * scale, 3), np.float32)
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            cy0, cx0 = max(y0 - overlap, 0), max(x0 - overlap, 0)
            cy1, cx1 = min(y1 + overlap, h), min(x1 + overlap, w)
            y = net(x[..., cy0:cy1, cx0:cx1].contiguous(memory_format=torch.channels_last))
            keep = y[0, :, (y0 - cy0) * scale:(y1 - cy0) * scale, (x0 - cx0) * scale:(x1 - cx0) * scale]
            out[y0 * scale:y1 * scale, x0 * scale:x1 * scale] = keep.float().clamp_(0, 1).permute(1, 2, 0).cpu().numpy()
    return out


class _UpscaleEngine(Engine):
    family = "restore"
    licence = Licence(code="BSD-3-Clause", weights="BSD-3-Clause (the authors' releases, no separate terms)",
                      commercial=True, source="github.com/xinntao/Real-ESRGAN LICENSE")
    default_on = frozenset()  # chosen by name (engine_for): the family's default is the repair engine
    Settings = UpscaleSettings

    def network(self) -> torch.nn.Module:
        raise NotImplementedError

    def __init__(self, device, config):
        super().__init__(device, config)
        self.net = self.half(self.network().to(self.device))

    def __call__(self, img: Image.Image, *, scale: float = 2) -> Image.Image:
        """`img` upscaled `scale` times (2 or 4; never past max_side on the long side), in its own kind: a
        black-and-white photo stays black-and-white (its lightness enhanced), a colour one keeps its colours."""
        if scale <= 1:
            raise ValueError(f"scale must be above 1, not {scale}")
        size = output_size(img.size, scale, self.settings.max_side)
        if max(size) <= max(img.size):
            return img  # already as large as allowed
        x = torch.from_numpy(as_rgb(img).copy()).permute(2, 0, 1)[None].to(self.device, self.dtype).div_(255)
        y = run_tiled(self.net, x, NETWORK_SCALE, self.settings.tile, self.settings.overlap)
        out = Image.fromarray((y * 255).round().astype(np.uint8), "RGB")
        if out.size != size:
            out = out.resize(size, Image.Resampling.LANCZOS)
        return in_kind_of(img, np.asarray(out))


class UpscaleEngine(_UpscaleEngine):
    name = "upscale"
    label = "Real-ESRGAN (Wang et al., ICCVW 2021)"
    files = (GENERAL, WDN)

    def network(self):
        strong, weak = (self.load_file(f) for f in self.files)
        if self.settings.denoise < 1:
            strong.model.load_state_dict(blend_weights(strong.model.state_dict(), weak.model.state_dict(),
                                                       self.settings.denoise))
        return strong.model


class UpscaleHQEngine(_UpscaleEngine):
    name = "upscale-hq"
    label = "Real-ESRGAN x4plus (Wang et al., ICCVW 2021)"
    files = (X4PLUS,)

    def network(self):
        return self.load_file(self.files[0]).model


def engine_for(device: torch.device | str) -> str:
    """The upscaler to use on `device`: the large RRDBNet on CUDA, the compact network elsewhere."""
    return UpscaleHQEngine.name if torch.device(device).type == "cuda" else UpscaleEngine.name
