"""AdaIN style transfer (Huang & Belongie, ICCV 2017): one forward pass, any style image.

The encoder and decoder are `nn.Sequential`s whose state_dict keys and shapes equal the
published `vgg_normalised.pth` and `decoder.pth`, so the real files load strictly. As in
pytorch-AdaIN, the layers are kept apart from the maths (`channel_stats`, `adain`).
No SHA-256 is published for either file: they are pinned on first strict load.
"""

from __future__ import annotations

import torch
from PIL import Image
from torch import nn

from models.engine import Licence
from models.style.framing import StyleEngine, fit, to_tensor
from models.weights import WeightFile, remote

RELU4_1 = 31  # the encoder is used up to relu4_1: its first 31 modules


def _conv(cin: int, cout: int, relu: bool = True) -> list[nn.Module]:
    """Reflection-padded 3x3 convolution (two Sequential slots), then ReLU (a third)."""
    return [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)] + ([nn.ReLU(inplace=True)] if relu else [])


def vgg_normalised() -> nn.Sequential:
    """The whole published encoder (to relu5_4), so that every key of the file has its place."""
    layers: list[nn.Module] = [nn.Conv2d(3, 3, 1)]  # colour order and mean: folded into the weights
    cin = 3
    for block, (cout, n) in enumerate(((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))):
        for _ in range(n):
            layers += _conv(cin, cout)
            cin = cout
        if block < 4:
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
    return nn.Sequential(*layers)


def decoder() -> nn.Sequential:
    """The encoder mirrored from relu4_1, nearest-neighbour x2 upsampling in place of pooling."""
    up = nn.Upsample(scale_factor=2, mode="nearest")
    return nn.Sequential(
        *_conv(512, 256), up,
        *_conv(256, 256), *_conv(256, 256), *_conv(256, 256), *_conv(256, 128), up,
        *_conv(128, 128), *_conv(128, 64), up,
        *_conv(64, 64), *_conv(64, 3, relu=False),
    )


def channel_stats(feat: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std over spatial positions, (N, C, 1, 1) each (eps inside the variance)."""
    n, c = feat.shape[:2]
    flat = feat.reshape(n, c, -1)
    var = flat.var(dim=2) + eps  # unbiased, as in the reference implementation
    return flat.mean(dim=2).reshape(n, c, 1, 1), var.sqrt().reshape(n, c, 1, 1)


def adain(content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor) -> torch.Tensor:
    """Content features renormalised to the style's per-channel mean and std."""
    mean, std = channel_stats(content)
    return (content - mean) / std * style_std + style_mean


RELEASE = "https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/"
ENCODER_FILE = WeightFile(remote(RELEASE + "vgg_normalised.pth", None), vgg_normalised,
                          override_env="PAINTBOT_ADAIN_ENCODER_WEIGHTS")
DECODER_FILE = WeightFile(remote(RELEASE + "decoder.pth", None), decoder, override_env="PAINTBOT_ADAIN_DECODER_WEIGHTS")


class AdaINEngine(StyleEngine):
    """`strength` blends the renormalised features with the content's own before decoding."""

    name = "adain"
    label = "AdaIN (Huang & Belongie, ICCV 2017)"
    aliases = ("fast",)
    files = (ENCODER_FILE, DECODER_FILE)
    licence = Licence(code="MIT", weights="MIT (released with the code; converted from Huang's, MIT)", commercial=True,
                      source="github.com/naoto0804/pytorch-AdaIN LICENSE; github.com/xunhuang1995/AdaIN-style LICENSE")

    def __init__(self, device, config):
        super().__init__(device, config)
        self.enc = self.half(self.load_file(ENCODER_FILE)[:RELU4_1])
        self.dec = self.half(self.load_file(DECODER_FILE))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.enc(x.to(self.dtype).contiguous(memory_format=torch.channels_last)).float()

    def decode(self, t: torch.Tensor, h: int, w: int) -> torch.Tensor:
        out = self.dec(t.to(self.dtype).contiguous(memory_format=torch.channels_last)).float()
        return out[:, :, :h, :w].clamp(0, 1)  # the encoder rounds up to a multiple of 8

    def paint(self, content, style, strength, style_key):
        h, w = content.shape[2:]
        long_side = max(h, w)

        def style_stats():
            sw, sh = fit(style.size, long_side)
            return channel_stats(self.encode(to_tensor(style.resize((sw, sh), Image.LANCZOS), self.device)))

        mean, std = self.cached((style_key, long_side), style_stats)
        fc = self.encode(content)
        t = adain(fc, mean, std)
        return self.decode(strength * t + (1 - strength) * fc, h, w)
