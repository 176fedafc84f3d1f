"""Automatic colourisation: Zhang et al. ECCV 2016 ("eccv16") and SIGGRAPH 2017 ("siggraph17").

The networks' state_dict keys and shapes equal the published checkpoints', so the real files
load strictly. The pipeline is the published one, made fast for full-resolution photos:
the network sees L at 256x256; its ab prediction is upsampled to the original size and joined
to the ORIGINAL lightness, so every detail of the photo is kept and only colour is added.

    c = load("eccv16")          # once per process
    colour = c(pil_image)       # RGB, same size as the input
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from models import color
from models import weights as weight_files
from models.device import pick_device, reduced_dtype

log = logging.getLogger("paintbot.models")

NETWORK_SIZE = 256
MODELS = ("eccv16", "siggraph17")
DEFAULT_MODEL = "siggraph17"


from models.colorize.zhang import ECCV16, SIGGRAPH17  # noqa: E402

NETWORKS = {"eccv16": ECCV16, "siggraph17": SIGGRAPH17}


class Colorizer:
    """A loaded network plus the full-resolution pipeline around it. Build once, call per image."""

    def __init__(self, name: str, net: nn.Module, device: torch.device, dtype: torch.dtype | None):
        self.name, self.net, self.device, self.dtype = name, net, device, dtype

    @torch.inference_mode()
    def predict_ab(self, img: Image.Image) -> torch.Tensor:
        """ab at 256x256 for an 8-bit L or RGB image: (1, 2, 256, 256) float32."""
        small = img.resize((NETWORK_SIZE, NETWORK_SIZE), Image.BICUBIC)
        l_small = self._lightness(small)
        x = ((l_small - 50) / 100).unsqueeze(0)
        if self.dtype is not None:
            x = x.to(self.dtype)
        return self.net(x.contiguous(memory_format=torch.channels_last)).float()

    def _lightness(self, img: Image.Image) -> torch.Tensor:
        """L* (1, H, W) of an 8-bit image: table lookups only for grayscale."""
        arr = torch.from_numpy(np.array(img)).to(self.device)
        if img.mode == "L":
            return color.lightness_from_gray_uint8(arr).unsqueeze(0)
        return color.lightness(arr.permute(2, 0, 1))

    @torch.inference_mode()
    def join(self, img: Image.Image, ab_small: torch.Tensor) -> Image.Image:
        """Upsample ab to the image's size, join it to the image's own L, convert to RGB."""
        w, h = img.size
        lum = self._lightness(img)
        ab = F.interpolate(ab_small, size=(h, w), mode="bilinear", align_corners=False)[0]
        planes = color.lab_to_rgb_uint8(lum, ab).cpu().numpy()
        return Image.merge("RGB", [Image.fromarray(p) for p in planes])

    def __call__(self, img: Image.Image) -> Image.Image:
        if img.mode not in ("L", "RGB"):
            img = img.convert("RGB")
        return self.join(img, self.predict_ab(img))


def load(name: str | None = None, weights: str | Path | None = None, device=None,
         reduced_precision: bool | None = None) -> Colorizer:
    """Build the network `name` (default PAINTBOT_COLORIZE_MODEL or siggraph17) with its weights.

    `weights` (default PAINTBOT_COLORIZE_WEIGHTS) is a checkpoint path loaded as given, strictly;
    otherwise the registry's file is downloaded/verified. Reduced precision (bf16 on capable CPUs,
    fp16 on CUDA) is on by default where available (PAINTBOT_REDUCED_PRECISION=0 turns it off).
    """
    name = (name or os.environ.get("PAINTBOT_COLORIZE_MODEL") or DEFAULT_MODEL).lower()
    if name not in NETWORKS:
        raise ValueError(f"unknown colorization model {name!r}: choose one of {', '.join(MODELS)}")
    device = pick_device() if device is None else torch.device(device)
    path = weights or os.environ.get("PAINTBOT_COLORIZE_WEIGHTS") or weight_files.weights_path(name)
    net = NETWORKS[name]()
    weight_files.load_into(net, weight_files.load_state_dict(path), path)
    net.eval().to(device)
    if reduced_precision is None:
        reduced_precision = os.environ.get("PAINTBOT_REDUCED_PRECISION", "1") != "0"
    dtype = reduced_dtype(device) if reduced_precision else None
    # Weights stored in the reduced type (no per-call casts) and NHWC layout, which oneDNN/cuDNN prefer.
    net = net.to(dtype=dtype or torch.float32, memory_format=torch.channels_last)
    log.info("colorizer %s loaded from %s on %s (%s)", name, path, device, dtype or torch.float32)
    return Colorizer(name, net, device, dtype)
