"""DDColor (Kang et al., ICCV 2023, piddnad/DDColor): the colouriser open tools ship today, tiny and large.

Why a module of its own: DDColor is a different kind of network from Zhang et al.'s. A ConvNeXt encoder
feeds two decoders: a pixel decoder (a spectral-normalised U-Net that upsamples back to the input size)
and a colour decoder (100 learned queries that attend to three scales of the pixel decoder by
transformer layers). Each query becomes a 256-vector; its dot product with every pixel's 256 features
gives 100 colour maps, and a 1x1 convolution turns them (with the input) into CIE ab at S x S.

What makes this implementation trustworthy is what the golden vectors check (shared/weights/golden/
DDCOLOR.md); the points below are the ones that move the output and that the authors' code hides:
- Spectral norm: the published files hold `weight_orig`, `weight_u`, `weight_v` and no `weight`. The
  weight in use is weight_orig / (u . W v) with the STORED vectors, computed once at load and then held
  as a plain tensor: no SVD, no power iteration (torch's spectral_norm runs one per forward in train
  mode, overwriting u and v), so nothing changes between calls.
- ConvNeXt's norm0..norm3 only produce the features the decoders read; the encoder's own path goes on
  un-normalised, and its final `norm` is never applied (its weights are in the files, so it is kept).
  LayerNorm eps is 1e-6 in the encoder, torch's default 1e-5 in the colour decoder.
- Pixel decoder blocks: conv -> ReLU -> BatchNorm (BN after the activation); the skip is batch-normed
  before the concatenation; upsampling is conv1x1 -> PixelShuffle (torch's channel order) -> a blur
  that pads by replication on the left and top only.
- Colour decoder layers run cross-attention first, then self-attention, then the FFN, all post-norm;
  positions are added to the keys, never to the values.
- The network normalises its input with the checkpoint's ImageNet mean/std, and it is the NORMALISED
  input that joins the colour maps before the last convolution.
- Output ab is in Lab units; the framing must upsample it with NEAREST (floor, F.interpolate's default),
  not bilinear, as the authors do (AB_UPSAMPLING), and join it to the photo's own full-size lightness.

One rearrangement, exact in arithmetic, keeps CPU time and memory down: the last 1x1 convolution is
linear, so its 100-query half is multiplied into the query vectors first (2 x 256 numbers), and that
2 x 256 mixing is applied to the pixel features before the pixel shuffle and blur (both act on each
channel alike, so they commute with it). The 256 x S x S pixel embedding and the 100 x S x S colour
maps are never formed: at S = 512 that saves about 370 MB and a fifth of the arithmetic.

Preprocessing follows the authors' pipeline in torch (no OpenCV): the photo is squashed to S x S by
bilinear interpolation on floats without antialiasing (cv2.resize), its CIE lightness is taken and
turned back into gray RGB through Lab. The authors' OpenCV Lab conversion uses lookup tables; the exact
formulas here (models.color) differ from it by a little (measured in tests/test_ddcolor.py).

    net = load_network("tiny", state_dict, source=path, device=torch.device("cpu"))
    ab = DDColorColorizer(net, torch.device("cpu")).predict_ab(pil_image)   # (1, 2, 512, 512)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from models import color
from models import weights as weight_files
from models.colorize.framing import ColorizeEngine
from models.engine import Licence
from models.weights import WeightFile, remote

INPUT_SIZE = 512  # the authors' inference size (training used 256); any multiple of 32 works
AB_UPSAMPLING = "nearest"  # F.interpolate mode for the ab the network returns (floor convention)

# ConvNeXt stage depths and widths of the two published encoders (ddcolor.json "constructor").
ENCODERS = {
    "tiny": ((3, 3, 9, 3), (96, 192, 384, 768)),  # ConvNeXt-T: ddcolor_paper_tiny
    "large": ((3, 3, 27, 3), (192, 384, 768, 1536)),  # ConvNeXt-L: ddcolor_paper, _modelscope, _artistic
}
DECODER_WIDTH = 512  # nf
QUERIES = 100
QUERY_DIM = 256
DECODER_LAYERS = 9
HEADS = 8
FFN_WIDTH = 2048
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MIX_CHUNK_PIXELS = 512  # pixels per block in the last upsampling (4096 channels: 8 MB in float32)

# A classification head the training code had until 2023-08; the .pth files very probably still
# carry it. It feeds nothing, and these are the only keys a checkpoint may hold beyond the network's.
UNUSED_KEYS = ("encoder.arch.head_cls.weight", "encoder.arch.head_cls.bias")


# ---------------------------------------------------------------------------------------------------
# Spectral-normalised convolution with the stored power-iteration state


def spectral_sigma(weight_matrix: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The spectral norm estimate torch's spectral_norm divides by in eval mode: u . (W v)."""
    return torch.dot(u, torch.mv(weight_matrix, v))


def _refresh_after_load(module: SpectralConv2d, _incompatible_keys) -> None:
    module.refresh_weight()


class SpectralConv2d(nn.Module):
    """A Conv2d stored as torch.nn.utils.spectral_norm stores it (weight_orig, weight_u, weight_v and
    an optional bias, in that file order), running with the weight weight_orig / sigma.

    The effective weight is a non-persistent buffer recomputed whenever a state_dict is loaded, so
    the forward pass is a plain convolution and nothing is updated by running it.
    """

    def __init__(self, cin: int, cout: int, kernel_size: int, bias: bool):
        super().__init__()
        if bias:
            self.bias = nn.Parameter(torch.zeros(cout))  # registered first, as spectral_norm leaves it
        else:
            self.register_parameter("bias", None)
        self.weight_orig = nn.Parameter(torch.zeros(cout, cin, kernel_size, kernel_size))
        self.register_buffer("weight_u", torch.zeros(cout))
        self.register_buffer("weight_v", torch.zeros(cin * kernel_size * kernel_size))
        self.register_buffer("weight", torch.zeros(cout, cin, kernel_size, kernel_size), persistent=False)
        self.padding = kernel_size // 2
        self.register_load_state_dict_post_hook(_refresh_after_load)

    @torch.no_grad()
    def refresh_weight(self) -> None:
        w = self.weight_orig.float()
        sigma = spectral_sigma(w.reshape(w.shape[0], -1), self.weight_u.float(), self.weight_v.float())
        self.weight.copy_(w / sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, padding=self.padding)


# ---------------------------------------------------------------------------------------------------
# Encoder: ConvNeXt, returning the four normalised stage outputs


class ChannelsFirstLayerNorm(nn.Module):
    """LayerNorm over the channels of an NCHW tensor (ConvNeXt's 'channels_first' LayerNorm)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nhwc = F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias, self.eps)
        return nhwc.permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """dwconv7x7 -> LayerNorm -> Linear 4C -> GELU (erf) -> Linear C -> x gamma, plus the input."""

    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.dwconv(x).permute(0, 2, 3, 1))
        y = self.pwconv2(F.gelu(self.pwconv1(y))) * self.gamma
        return x + y.permute(0, 3, 1, 2)


class ConvNeXt(nn.Module):
    """The encoder: four stages at strides 4, 8, 16, 32; returns norm_i of each stage's output."""

    def __init__(self, depths: Sequence[int], dims: Sequence[int]):
        super().__init__()
        stem = nn.Sequential(nn.Conv2d(3, dims[0], kernel_size=4, stride=4), ChannelsFirstLayerNorm(dims[0]))
        self.downsample_layers = nn.ModuleList([stem] + [
            nn.Sequential(ChannelsFirstLayerNorm(dims[i]), nn.Conv2d(dims[i], dims[i + 1], kernel_size=2, stride=2))
            for i in range(3)])
        self.stages = nn.ModuleList(nn.Sequential(*(ConvNeXtBlock(dim) for _ in range(depth)))
                                    for depth, dim in zip(depths, dims))
        for i, dim in enumerate(dims):
            self.add_module(f"norm{i}", ChannelsFirstLayerNorm(dim))
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)  # in the files, never applied (pooled-feature norm)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for i, (downsample, stage) in enumerate(zip(self.downsample_layers, self.stages)):
            x = stage(downsample(x))
            features.append(getattr(self, f"norm{i}")(x))  # for the decoders only: x goes on un-normalised
        return features


class Encoder(nn.Module):
    """Holds the ConvNeXt under the name `arch`, as the published key names have it."""

    def __init__(self, depths: Sequence[int], dims: Sequence[int]):
        super().__init__()
        self.arch = ConvNeXt(depths, dims)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.arch(x)


# ---------------------------------------------------------------------------------------------------
# Pixel decoder


class Blur(nn.Module):
    """The mean of each 2x2 neighbourhood ending at a pixel, the first row and column replicated:
    removes the checkerboard of pixel shuffling without moving the image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.pad(x, (1, 0, 1, 0), mode="replicate"), 2, stride=1)


class ShuffleUp(nn.Module):
    """conv1x1 (spectral norm) [-> BatchNorm] -> ReLU -> PixelShuffle -> blur: `scale` times larger."""

    def __init__(self, cin: int, cout: int, scale: int, batch_norm: bool):
        super().__init__()
        conv = SpectralConv2d(cin, cout * scale * scale, 1, bias=not batch_norm)
        self.conv = nn.Sequential(conv, nn.BatchNorm2d(cout * scale * scale)) if batch_norm else nn.Sequential(conv)
        self.shuffle = nn.PixelShuffle(scale)
        self.blur = Blur()

    def forward(self, x: torch.Tensor, mix: torch.Tensor | None = None) -> torch.Tensor:
        """Upsampled features; with `mix` (B, K, C), the K per-pixel mixtures sum_c mix[k, c] * feature_c
        instead, computed before the shuffle and blur, which treat every channel alike."""
        if mix is None:
            return self.blur(self.shuffle(F.relu(self.conv(x))))
        # Everything before the shuffle acts on each pixel alone, so it runs a few rows at a time: the
        # scale^2-times-wider convolution output then stays in cache and is never allocated whole.
        rows = max(1, MIX_CHUNK_PIXELS // x.shape[-1])
        mixed = [self._mixed(x[:, :, top:top + rows], mix) for top in range(0, x.shape[-2], rows)]
        return self.blur(self.shuffle(torch.cat(mixed, dim=2)))

    def _mixed(self, x: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.conv(x))
        b, _, h, w = y.shape
        # per pixel, channel c * scale^2 + s (PixelShuffle's order) -> a (C, scale^2) matrix;
        # a view, not a copy, in channels-last memory
        per_pixel = y.permute(0, 2, 3, 1).reshape(b, h * w, mix.shape[2], -1)
        return torch.matmul(mix[:, None], per_pixel).view(b, h, w, -1).permute(0, 3, 1, 2)


class UnetBlock(nn.Module):
    """One pixel-decoder step: upsample x2, join the encoder's skip feature (batch-normed), conv3x3 ->
    ReLU -> BatchNorm (the authors' UnetBlockWide, BatchNorm after the activation)."""

    def __init__(self, cin: int, skip_channels: int, cout: int):
        super().__init__()
        self.shuf = ShuffleUp(cin, cout, scale=2, batch_norm=True)
        self.bn = nn.BatchNorm2d(skip_channels)
        self.conv = nn.Sequential(SpectralConv2d(cout + skip_channels, cout, 3, bias=False), nn.ReLU(),
                                  nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(F.relu(torch.cat((self.shuf(x), self.bn(skip)), dim=1)))


# ---------------------------------------------------------------------------------------------------
# Colour decoder


def sine_positions(h: int, w: int, device: torch.device, dtype: torch.dtype, features: int = QUERY_DIM // 2
                   ) -> torch.Tensor:
    """DETR's normalised sine position embedding of an h x w grid, (h*w, 2*features): y features first,
    each as sin, cos pairs over 10000^(2i/features), positions scaled to (0, 2 pi]."""
    scale, eps = 2 * math.pi, 1e-6
    y = torch.arange(1, h + 1, dtype=torch.float32, device=device)
    x = torch.arange(1, w + 1, dtype=torch.float32, device=device)
    y = y / (y[-1:] + eps) * scale
    x = x / (x[-1:] + eps) * scale
    dim_t = torch.arange(features, dtype=torch.float32, device=device)
    dim_t = 10000 ** (2 * (dim_t // 2) / features)

    def embed(p: torch.Tensor) -> torch.Tensor:  # (n,) -> (n, features): sin of even, cos of odd, interleaved
        a = p[:, None] / dim_t
        return torch.stack((a[:, 0::2].sin(), a[:, 1::2].cos()), dim=2).flatten(1)

    pos_y = embed(y)[:, None, :].expand(h, w, features)
    pos_x = embed(x)[None, :, :].expand(h, w, features)
    return torch.cat((pos_y, pos_x), dim=2).reshape(h * w, 2 * features).to(dtype)


class CrossAttentionLayer(nn.Module):
    """queries attend to one scale's pixels; positions on queries and keys (`memory_with_pos` = memory +
    its positions), not on the values (`memory`); post-norm."""

    def __init__(self):
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(QUERY_DIM, HEADS, batch_first=True)
        self.norm = nn.LayerNorm(QUERY_DIM)

    def forward(self, queries, memory, memory_with_pos, query_pos):
        attended = self.multihead_attn(queries + query_pos, memory_with_pos, memory, need_weights=False)[0]
        return self.norm(queries + attended)


class SelfAttentionLayer(nn.Module):
    """queries attend to each other; positions on queries and keys, not values; post-norm."""

    def __init__(self):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(QUERY_DIM, HEADS, batch_first=True)
        self.norm = nn.LayerNorm(QUERY_DIM)

    def forward(self, queries, query_pos):
        q = queries + query_pos
        return self.norm(queries + self.self_attn(q, q, queries, need_weights=False)[0])


class FFNLayer(nn.Module):
    """Linear -> ReLU -> Linear, residual, post-norm."""

    def __init__(self):
        super().__init__()
        self.linear1 = nn.Linear(QUERY_DIM, FFN_WIDTH)
        self.linear2 = nn.Linear(FFN_WIDTH, QUERY_DIM)
        self.norm = nn.LayerNorm(QUERY_DIM)

    def forward(self, queries):
        return self.norm(queries + self.linear2(F.relu(self.linear1(queries))))


class MLP(nn.Module):
    """Linear layers with ReLU between them (none after the last)."""

    def __init__(self, depth: int):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(QUERY_DIM, QUERY_DIM) for _ in range(depth))

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = F.relu(layer(x))
        return self.layers[-1](x)


class ColorDecoder(nn.Module):
    """The multi-scale colour decoder: learned queries refined against the pixel decoder's three scales
    (S/16, S/8, S/4, in turn) by DECODER_LAYERS transformer layers; returns the colour embeddings
    (B, QUERIES, QUERY_DIM), one 256-vector per query."""

    def __init__(self, in_channels: Sequence[int]):
        super().__init__()
        self.query_feat = nn.Embedding(QUERIES, QUERY_DIM)
        self.query_embed = nn.Embedding(QUERIES, QUERY_DIM)
        self.level_embed = nn.Embedding(len(in_channels), QUERY_DIM)
        self.input_proj = nn.ModuleList(nn.Conv2d(c, QUERY_DIM, kernel_size=1) for c in in_channels)
        self.transformer_self_attention_layers = nn.ModuleList(SelfAttentionLayer() for _ in range(DECODER_LAYERS))
        self.transformer_cross_attention_layers = nn.ModuleList(CrossAttentionLayer()
                                                                for _ in range(DECODER_LAYERS))
        self.transformer_ffn_layers = nn.ModuleList(FFNLayer() for _ in range(DECODER_LAYERS))
        self.decoder_norm = nn.LayerNorm(QUERY_DIM)
        self.color_embed = MLP(3)

    def forward(self, scales: Sequence[torch.Tensor]) -> torch.Tensor:
        memories = []  # per scale: (pixels, pixels + positions), each (B, h*w, QUERY_DIM)
        for level, (feature, proj) in enumerate(zip(scales, self.input_proj)):
            h, w = feature.shape[-2:]
            pixels = (proj(feature).flatten(2) + self.level_embed.weight[level][None, :, None]).transpose(1, 2)
            memories.append((pixels, pixels + sine_positions(h, w, feature.device, feature.dtype)))
        batch = scales[0].shape[0]
        query_pos = self.query_embed.weight.expand(batch, -1, -1)
        queries = self.query_feat.weight.expand(batch, -1, -1)
        for i in range(len(self.transformer_ffn_layers)):
            queries = self.decoder_layer(i, queries, *memories[i % len(memories)], query_pos)
        return self.color_embed(self.decoder_norm(queries))

    def decoder_layer(self, i: int, queries, memory, memory_with_pos, query_pos) -> torch.Tensor:
        """Layer i: cross-attention to the pixels first, then self-attention, then the FFN."""
        queries = self.transformer_cross_attention_layers[i](queries, memory, memory_with_pos, query_pos)
        queries = self.transformer_self_attention_layers[i](queries, query_pos)
        return self.transformer_ffn_layers[i](queries)


# ---------------------------------------------------------------------------------------------------
# The whole network


class DualDecoder(nn.Module):
    """The pixel decoder (layers, last_shuf) and the colour decoder, under the published key names.
    forward: the encoder's four features -> the pixel decoder's scales S/16, S/8, S/4."""

    def __init__(self, encoder_dims: Sequence[int]):
        super().__init__()
        widths = (DECODER_WIDTH, DECODER_WIDTH, DECODER_WIDTH // 2)
        inputs = (encoder_dims[3], *widths[:2])
        self.layers = nn.Sequential(*(UnetBlock(cin, skip, cout)
                                      for cin, skip, cout in zip(inputs, encoder_dims[2::-1], widths)))
        self.last_shuf = ShuffleUp(widths[-1], widths[-1], scale=4, batch_norm=False)
        self.color_decoder = ColorDecoder(widths)

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        x, scales = features[-1], []
        for block, skip in zip(self.layers, features[-2::-1]):
            x = block(x, skip)
            scales.append(x)
        return scales


class DDColor(nn.Module):
    """gray RGB in 0..1 (B, 3, S, S), S a multiple of 32 -> CIE ab (B, 2, S, S)."""

    def __init__(self, depths: Sequence[int], dims: Sequence[int]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.encoder = Encoder(depths, dims)
        self.decoder = DualDecoder(dims)
        self.refine_net = nn.Sequential(nn.Sequential(SpectralConv2d(QUERIES + 3, 2, 1, bias=True)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            raise ValueError(f"DDColor needs sides that are multiples of 32, not {tuple(x.shape[-2:])}")
        x = (x - self.mean) / self.std
        scales = self.decoder(self.encoder(x))
        color_embeddings = self.decoder.color_decoder(scales)
        # refine_net = conv1x1 over [colour maps (einsum of embeddings and pixel embedding), x]:
        # its colour-map half is folded into the embeddings, then mixed into the pixel features.
        refine = self.refine_net[0][0]
        weight = refine.weight.flatten(1)  # (2, QUERIES + 3)
        mix = weight[:, :QUERIES] @ color_embeddings  # (B, 2, QUERY_DIM)
        ab = self.decoder.last_shuf(scales[-1], mix)
        return ab + F.conv2d(x, weight[:, QUERIES:, None, None], refine.bias)


def build(size: str) -> DDColor:
    """The network for `size` ("tiny" or "large"), in eval mode, its weights not loaded yet."""
    if size not in ENCODERS:
        raise ValueError(f"unknown DDColor size {size!r}: choose one of {', '.join(ENCODERS)}")
    return DDColor(*ENCODERS[size]).eval().requires_grad_(False)


def prepare_state_dict(checkpoint: Mapping) -> dict:
    """The network's state_dict from a checkpoint as published: `{'params': sd}` (DDColor-models .pth,
    ModelScope) is unwrapped, the mixin .bin files are bare; the unused `encoder.arch.head_cls.*`
    keys are dropped if present. Anything else is left for the strict load to judge."""
    sd = checkpoint["params"] if "params" in checkpoint else checkpoint
    return {k: v for k, v in sd.items() if k not in UNUSED_KEYS}


def load_network(size: str, checkpoint: Mapping, source: str | Path, device: torch.device,
                 dtype: torch.dtype | None = None) -> DDColor:
    """`build(size)` loaded strictly from a checkpoint (wrapped or bare), on `device`, in float32 or
    `dtype`, channels-last (what oneDNN and cuDNN prefer). A layout that differs raises one line naming it."""
    net = build(size)
    weight_files.load_into(net, prepare_state_dict(checkpoint), source)
    return net.to(device=device, dtype=dtype or torch.float32, memory_format=torch.channels_last)


# ---------------------------------------------------------------------------------------------------
# Preprocessing and prediction


def network_input(img: Image.Image, size: int, device: torch.device) -> torch.Tensor:
    """The authors' network input for an 8-bit L or RGB image: the photo squashed to size x size
    (bilinear on floats, no antialiasing, like cv2.resize), its CIE lightness, back to gray RGB through
    Lab. (1, 3, size, size) float32 in 0..1."""
    if size % 32 or size <= 0:
        raise ValueError(f"DDColor's input size must be a positive multiple of 32, not {size}")
    pixels = torch.from_numpy(np.array(img)).to(device)
    planes = pixels[None, None] if img.mode == "L" else pixels.permute(2, 0, 1)[None]
    small = F.interpolate(planes.float() / 255, size=(size, size), mode="bilinear", align_corners=False)
    lightness = color.lightness(small.expand(-1, 3, -1, -1))
    return color.lab_to_rgb(torch.cat((lightness, torch.zeros_like(lightness).expand(-1, 2, -1, -1)), dim=1))


class DDColorColorizer:
    """A loaded DDColor network on a device: an image's ab at the network's resolution, for the shared
    colourisation framing, which upsamples it with AB_UPSAMPLING and joins it to the photo's own L."""

    def __init__(self, net: DDColor, device: torch.device, dtype: torch.dtype | None = None,
                 input_size: int = INPUT_SIZE):
        self.net, self.device, self.dtype, self.input_size = net, device, dtype, input_size

    @torch.inference_mode()
    def predict_ab(self, img: Image.Image) -> torch.Tensor:
        """ab (1, 2, S, S) float32 in Lab units for an 8-bit L or RGB image, S = input_size."""
        x = network_input(img, self.input_size, self.device)
        x = x.to(self.dtype or torch.float32).contiguous(memory_format=torch.channels_last)
        return self.net(x).float()


# ---------------------------------------------------------------------------------------------------
# The engines: three published checkpoints (Apache-2.0) on Hugging Face, hashes from their LFS ids

HUGGING_FACE = "https://huggingface.co/piddnad/DDColor-models/resolve/main/"


def _checkpoint(filename: str, sha256: str, size: str, approx_bytes: int) -> WeightFile:
    """A DDColor-models .pth ({'params': ...}, probably with the unused head_cls keys)."""
    return WeightFile(remote(HUGGING_FACE + filename, sha256, size=approx_bytes), partial(build, size),
                      prepare_state_dict)


@dataclass(frozen=True)
class DDColorSettings:
    input_size: int = INPUT_SIZE  # the square the photo is squashed to; the authors note results depend on it

    def __post_init__(self):
        if self.input_size % 32 or self.input_size < 64:
            raise ValueError(f"input_size must be a multiple of 32, at least 64, not {self.input_size}")


# The code's LICENSE (Apache-2.0) arrived in the authors' repository on 2024-01-13 (commit d695d09); from the
# code release (May 2023) until then it had none, which is why some loaders (spandrel) still file DDColor
# among restrictively licensed architectures. The weights' model card says apache-2.0 too.
LICENCE = Licence(code="Apache-2.0", weights="Apache-2.0", commercial=True,
                  source="github.com/piddnad/DDColor LICENSE; huggingface.co/piddnad/DDColor-models model card")


class _DDColorEngine(ColorizeEngine):
    """ab at input_size x input_size, upsampled as the authors do (nearest) and joined to the photo's L."""

    ab_resize = AB_UPSAMPLING
    Settings = DDColorSettings
    licence = LICENCE

    def __init__(self, device, config):
        super().__init__(device, config)
        net = self.half(self.load_file(self.files[0]))
        reduced = None if self.dtype == torch.float32 else self.dtype
        self.colorizer = DDColorColorizer(net, device, reduced, self.settings.input_size)

    def predict_ab(self, img: Image.Image, reference: Image.Image | None = None) -> torch.Tensor:
        return self.colorizer.predict_ab(img)


class DDColorEngine(_DDColorEngine):
    name = "ddcolor"
    label = "DDColor (Kang et al., ICCV 2023)"
    files = (_checkpoint("ddcolor_modelscope.pth", "17c460d7e55b32a598370621d77173be59e03c24b0823f06821db23a50c263ce",
                         "large", 912_000_000),)
    default_on = frozenset({"cuda"})  # about 5 s a photo on a 2-core CPU: ddcolor-tiny is the CPU default


class DDColorTinyEngine(_DDColorEngine):
    name = "ddcolor-tiny"
    label = "DDColor tiny (Kang et al., ICCV 2023)"
    files = (_checkpoint("ddcolor_paper_tiny.pth", "81dd643904f4664c3718513e3320ae3db0c567f0d3e18398606659adee7bfc17",
                         "tiny", 220_393_145),)


class DDColorArtisticEngine(_DDColorEngine):
    name = "ddcolor-artistic"
    label = "DDColor artistic (Kang et al., ICCV 2023)"
    files = (_checkpoint("ddcolor_artistic.pth", "a591ee5beedad36de703d8977e92d0c30c1eedc6453fd1b300f3b460842a23a9",
                         "large", 911_950_059),)
    default_on = frozenset()  # more vivid, less faithful: chosen by name
