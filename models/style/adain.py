"""AdaIN style transfer (Huang & Belongie, ICCV 2017): one forward pass, any style image.

The encoder and decoder are `nn.Sequential`s whose state_dict keys and shapes equal the
published `vgg_normalised.pth` and `decoder.pth`, so the real files load strictly.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from models import weights as weight_files

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


def _load(build, name: str, env: str) -> nn.Sequential:
    """`env` names a file to load as given; otherwise the registry's file (its hash pinned on first use)."""
    net = build()
    explicit = os.environ.get(env)
    path = explicit or weight_files.weights_path(name, check=lambda p: _strict(build(), p))
    weight_files.load_into(net, weight_files.load_state_dict(path), path)
    return net


def _strict(net: nn.Module, path: Path) -> None:
    weight_files.load_into(net, weight_files.load_state_dict(path), path)


def check_encoder_file(path: Path) -> None:
    _strict(vgg_normalised(), path)


def check_decoder_file(path: Path) -> None:
    _strict(decoder(), path)


def load_networks() -> tuple[nn.Sequential, nn.Sequential]:
    """(encoder to relu4_1, decoder) with their weights."""
    enc = _load(vgg_normalised, "adain_vgg_normalised", "PAINTBOT_ADAIN_ENCODER_WEIGHTS")[:RELU4_1]
    dec = _load(decoder, "adain_decoder", "PAINTBOT_ADAIN_DECODER_WEIGHTS")
    return enc, dec


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
