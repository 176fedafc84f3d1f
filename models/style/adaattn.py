"""AdaAttN style transfer (Liu et al., ICCV 2021; Huage001/AdaAttN): attention-weighted statistics per point.

AdaIN gives every content point the style's global mean and std. AdaAttN lets each content point
attend to the style points that resemble it (keys built from relu1_1 up to the level itself), and
gives it the attention-weighted mean and std of the style there, at relu3_1, relu4_1 and relu5_1.
The relu4_1/relu5_1 results are merged by the "transformer"; the relu3_1 result enters the
decoder through a skip connection.

The networks below hold exactly the published parameters (`latest_net_{decoder,transformer,
adaattn_3}.pth`; the encoder is AdaIN's `vgg_normalised.pth`, used through relu5_1) and load
strictly. As in pytorch-AdaIN, layers and maths are apart: the modules own the weights, the
functions (`mean_variance_norm`, `attention_key`, `attend`, ...) the arithmetic, which follows the
reference exactly where it matters (see ../../../shared/weights/golden/STYLE.md): nearest-resized
shallow features, unbiased variance, no 1/sqrt(d) in the logits, values from the raw style
features, the decoder's feature before the skip, style positions sampled with the fixed seed.

Two changes of form, none of result: the style side of each level (its projected keys and values)
is split off so that a preset's is computed once (`AdaAttN.remember`), and the attention runs over
chunks of queries so that memory stays bounded at any size (`attend`).

`AdaAttNEngine` puts it in paintbot's style framing: any photo size (reflected out to the multiple
of 16 the network takes, cropped back after), `strength` as a feature blend at each attended level,
the style side cached per preset. In reduced precision (bf16 on CPUs with AMX or AVX512-BF16, fp16 on
CUDA) everything runs in it, the attention's two matrix products included (on the Xeon with AMX they
are 4-5 times faster than in float32, and they were a third of the time), with two guards where bf16
would lose what matters: the style values are centred on their mean before they are stored (the std is
sqrt(E[v^2] - E[v]^2), a difference of two large numbers: uncentred, bf16 loses 2 dB of PSNR; centred, the
result is within 0.1 dB of the float32 attention's), and the attended mean and std are read back and
combined in float32. Features stay channels-last from the encoder to the decoder, where (b, c, h, w) is
already the (b, positions, c) the attention multiplies: no copies between the convolutions and the maths.
In float32 (the goldens' precision) the values are not centred, so the arithmetic is the reference's.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from models import weights as weight_files
from models.style import adain
from models.engine import Licence
from models.style.framing import StyleEngine, fit, to_tensor
from models.weights import WeightFile, remote

# The encoder, cut after relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1 (modules of vgg_normalised).
ENCODER_SLICES = ((0, 4), (4, 11), (11, 18), (18, 31), (31, 44))
ATTENDED_LEVELS = (2, 3, 4)  # relu3_1 (the skip connection), relu4_1 and relu5_1 (the transformer)
SKIP_MAX_SAMPLE = 64 * 64  # style positions kept at relu3_1; the model's max_sample
TRANSFORMER_MAX_SAMPLE = 256 * 256  # the transformer levels' default max_sample
SAMPLE_SEED = 6666  # the model's fixed seed at test time, reset before every sampling
SIZE_MULTIPLE = 16  # four poolings, then relu4_1 + upsampled relu5_1 must line up
MIN_CONTENT_SIDE = 32  # relu5_1 needs 2 pixels for its reflection padding
MIN_STYLE_SIDE = 17  # the same, for the style (ceil-mode pooling: 17 -> 9 -> 5 -> 3 -> 2)
CHUNK_ELEMENTS = 1 << 22  # attention weights held at once (16 MiB in float32)
# Attention weights (queries x style positions) of any one level that the whole-network pass in OpenVINO
# may hold at once (it takes each level in one piece: 256 MiB in bf16). A 512 px photo in a 512 px style
# needs 2**26 at relu3_1; anything larger runs in torch, chunked.
WHOLE_PASS_ELEMENTS = 1 << 27


# --- networks -------------------------------------------------------------------------------------


class StyleMemory(NamedTuple):
    """What one attention level keeps of a style: its projected keys and values at the kept positions."""

    keys: torch.Tensor  # (b, key channels, positions): g(style key)
    values: torch.Tensor  # (b, positions, 2 x channels): h(raw style feature) less `centre`, and its square
    centre: torch.Tensor  # (b, 1, channels), float32: the values' mean (0 when stored in full precision)


class AdaAttN(nn.Module):
    """One attention level: 1x1 convolutions f (content key -> queries), g (style key -> keys),
    h (raw style feature -> values). Keys `f.*`, `g.*`, `h.*` as published."""

    def __init__(self, channels: int, key_channels: int, max_sample: int):
        super().__init__()
        self.f = nn.Conv2d(key_channels, key_channels, 1)
        self.g = nn.Conv2d(key_channels, key_channels, 1)
        self.h = nn.Conv2d(channels, channels, 1)
        self.max_sample = max_sample

    def remember(self, style_feat: torch.Tensor, style_key: torch.Tensor) -> StyleMemory:
        """The style side, which depends on nothing else: computed once per preset."""
        keys = self.g(style_key).flatten(2)
        values = self.h(style_feat).flatten(2)
        kept = sample_positions(keys.shape[2], self.max_sample, keys.device)
        if kept is not None:
            keys, values = keys[:, :, kept], values[:, :, kept]
        values = wide(values.transpose(1, 2))
        centre = values.mean(dim=1, keepdim=True) if values.dtype != keys.dtype else values[:, :1].mul(0)
        values = values - centre
        return StyleMemory(keys.contiguous(), torch.cat((values, values.square()), dim=2).to(keys.dtype), centre)

    def forward(self, content_feat: torch.Tensor, content_key: torch.Tensor, memory: StyleMemory,
                chunk_elements: int = CHUNK_ELEMENTS) -> torch.Tensor:
        """The content feature with, at each point, the attended style mean and std (float32; channels-last
        when the features are)."""
        b, c, h, w = content_feat.shape
        queries = self.f(content_key).flatten(2).transpose(1, 2)
        normalised = normalised_rows(wide(content_feat))
        out = attend(queries, memory, normalised, chunk_rows(memory.keys.shape[2], chunk_elements))
        return out.reshape(b, h, w, c).permute(0, 3, 1, 2)  # the rows are a channels-last map: a view, no copy


def skip_attention() -> AdaAttN:
    """`latest_net_adaattn_3.pth`: the relu3_1 level, keys from relu1_1..relu3_1 (64+128+256)."""
    return AdaAttN(256, 64 + 128 + 256, SKIP_MAX_SAMPLE)


class Transformer(nn.Module):
    """`latest_net_transformer.pth`: the relu4_1 and relu5_1 attention levels and the 3x3 conv that
    merges them. The levels are applied by `attend_levels` (the strength and the style cache come
    between); `forward` is the merge."""

    def __init__(self):
        super().__init__()
        self.attn_adain_4_1 = AdaAttN(512, 64 + 128 + 256 + 512, TRANSFORMER_MAX_SAMPLE)
        self.attn_adain_5_1 = AdaAttN(512, 64 + 128 + 256 + 512 + 512, TRANSFORMER_MAX_SAMPLE)
        self.upsample5_1 = nn.Upsample(scale_factor=2, mode="nearest")
        self.merge_conv_pad = nn.ReflectionPad2d(1)
        self.merge_conv = nn.Conv2d(512, 512, 3)

    def forward(self, attended4_1: torch.Tensor, attended5_1: torch.Tensor) -> torch.Tensor:
        return self.merge_conv(self.merge_conv_pad(attended4_1 + self.upsample5_1(attended5_1)))


class Decoder(nn.Module):
    """`latest_net_decoder.pth`: AdaIN's decoder, split after its first upsampling to take the relu3_1
    attention output as a skip connection (concatenated after the decoder's own feature)."""

    def __init__(self):
        super().__init__()
        mirrored = list(adain.decoder())
        self.decoder_layer_1 = nn.Sequential(*mirrored[:4])
        self.decoder_layer_2 = nn.Sequential(*mirrored[4:])
        self.decoder_layer_2[1] = nn.Conv2d(256 + 256, 256, 3)

    def forward(self, merged: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.decoder_layer_2(torch.cat((self.decoder_layer_1(merged), skip), dim=1))


def _checkpoint(name: str, build) -> WeightFile:
    """One of the authors' files, in AdaAttN_model.zip on Google Drive (no hash published: pinned after
    its first strict load), at checkpoints/AdaAttN/latest_net_<name>.pth as the reference loads it."""
    return WeightFile(remote("https://docs.google.com/uc?export=download&id=1XvpD1eI4JeCBIaW5uwMT6ojF_qlzM_lo", None,
                             filename=f"adaattn_{name}.pth", archive="AdaAttN_model.zip",
                             member=f"AdaAttN/latest_net_{name}.pth"), build)


ATTENTION_FILE = _checkpoint("adaattn_3", skip_attention)
TRANSFORMER_FILE = _checkpoint("transformer", Transformer)
DECODER_FILE = _checkpoint("decoder", Decoder)
# Each published layout (shared/weights/adaattn.json) and its file. The encoder is AdaIN's vgg_normalised.pth:
# the same 53-module VGG, the same 34 keys, which the reference loads whole and strictly.
FILES = {"adaattn_vgg_normalised": adain.ENCODER_FILE, "adaattn_adaattn_3": ATTENTION_FILE,
         "adaattn_transformer": TRANSFORMER_FILE, "adaattn_decoder": DECODER_FILE}


class Networks(nn.Module):
    """The four networks of one AdaAttN model, the encoder already cut into its five levels."""

    def __init__(self, vgg: nn.Sequential, adaattn_3: AdaAttN, transformer: Transformer, decoder: Decoder):
        super().__init__()
        self.encoder = nn.ModuleList(vgg[a:b] for a, b in ENCODER_SLICES)
        self.adaattn_3 = adaattn_3
        self.transformer = transformer
        self.decoder = decoder

    def attention_levels(self) -> tuple[AdaAttN, AdaAttN, AdaAttN]:
        return self.adaattn_3, self.transformer.attn_adain_4_1, self.transformer.attn_adain_5_1


class ContentPass(nn.Module):
    """A photo to its painting once the style is remembered, as one network: the encoder, the three attention
    levels (each in one piece), the strength blend, the transformer and the decoder. So OpenVINO can take
    it whole (models/runtime.py) and fuse the attention's products and softmax. Inputs: the photo padded for
    the network, `strength` (a 0-d tensor) and the three levels' StyleMemory fields in order; output: the
    raw decoder output."""

    def __init__(self, nets: Networks):
        super().__init__()
        self.nets = nets

    def forward(self, image: torch.Tensor, strength: torch.Tensor, *memories: torch.Tensor) -> torch.Tensor:
        feats = encode_levels(self.nets.encoder, image)
        fields = len(StyleMemory._fields)
        levels = [StyleMemory(*memories[i:i + fields]) for i in range(0, len(memories), fields)]
        attended = attend_levels(self.nets, feats, levels, chunk_elements=1 << 62)  # one chunk a level
        skip, level4_1, level5_1 = (strength * a + (1 - strength) * f for a, f in zip(attended, feats[2:]))
        return self.nets.decoder(self.nets.transformer(level4_1, level5_1), skip)

    @staticmethod
    def example() -> tuple[tuple[torch.Tensor, ...], list[list[int]]]:
        """Inputs to trace it with (a 64 px photo, 16 style positions a level) and the shapes it takes
        (any photo side the network takes, any number of style positions)."""
        inputs, shapes = [torch.rand(1, 3, 64, 64), torch.tensor(1.0)], [[1, 3, -1, -1], []]
        for channels, key_channels in ((256, 448), (512, 960), (512, 1472)):
            inputs += [torch.rand(1, key_channels, 16), torch.rand(1, 16, 2 * channels), torch.rand(1, 1, channels)]
            shapes += [[1, key_channels, -1], [1, -1, 2 * channels], [1, 1, channels]]
        return tuple(inputs), shapes

    @staticmethod
    def fits(padded: torch.Tensor, memories: list[StyleMemory]) -> bool:
        """Whether every level's attention weights for this photo stay within WHOLE_PASS_ELEMENTS."""
        h, w = padded.shape[2:]
        return all((h // scale) * (w // scale) * m.keys.shape[2] <= WHOLE_PASS_ELEMENTS
                   for scale, m in zip((4, 8, 16), memories))


# --- functions ------------------------------------------------------------------------------------


def encode_levels(encoder: nn.ModuleList, image: torch.Tensor) -> list[torch.Tensor]:
    """relu1_1 .. relu5_1 of `image`."""
    feats = []
    for level in encoder:
        image = level(image)
        feats.append(image)
    return feats


def mean_variance_norm(feat: torch.Tensor) -> torch.Tensor:
    """Each channel to mean 0 and std 1 over its positions (unbiased variance, eps 1e-5 inside the sqrt), in
    `feat`'s dtype and channels-last (`normalised_rows` as a feature map)."""
    n, c, h, w = feat.shape
    return normalised_rows(feat).reshape(n, h, w, c).permute(0, 3, 1, 2)


def normalised_rows(feat: torch.Tensor) -> torch.Tensor:
    """`feat` (n, c, h, w) normalised as `mean_variance_norm` says, as the (n, positions, channels) rows the
    attention takes. The statistics are taken in float32 (two passes: the mean, then the squared deviations)
    down the rows of the (positions, channels) matrix that a channels-last feature already is: sums down rows
    run across all channels at once, 3 times faster than `var` over the spatial dimensions of a channels-last
    tensor."""
    n, c, h, w = feat.shape
    rows = wide(feat).permute(0, 2, 3, 1).reshape(n, h * w, c)
    centred = rows - rows.mean(dim=1, keepdim=True)
    std = (centred.square().sum(dim=1, keepdim=True) / (h * w - 1) + 1e-5).sqrt_()
    return centred.div_(std).to(feat.dtype)


def resize_nearest(feat: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """`F.interpolate(feat, size)` (mode "nearest", the reference's): pixel floor(i * in/out), the ratio
    in float32 as torch computes it; so pixel i * 2**k of a grid 2**k times larger, not an average.
    Picked by index because the interpolate kernel takes ~0.2 s on 2 CPU threads to shrink a
    full-size relu1_1 to 1/8 or less (the relu4_1 and relu5_1 keys), 10 times longer than to 1/4."""
    for dim, out in zip((2, 3), size):
        n = feat.shape[dim]
        if n != out and n % out == 0:  # an exact ratio r: pixel i * r, a strided view (no copy)
            feat = feat[:, :, ::n // out] if dim == 2 else feat[:, :, :, ::n // out]
        elif n != out:
            scale = torch.tensor(n, dtype=torch.float32) / out
            picked = (torch.arange(out, dtype=torch.float32) * scale).floor().long().clamp(max=n - 1)
            feat = feat.index_select(dim, picked.to(feat.device))
    return feat


def attention_key(feats: list[torch.Tensor], level: int) -> torch.Tensor:
    """The key of `level`: every level up to it, shallow ones resized to its grid, each normalised,
    relu1_1 first."""
    size = tuple(feats[level].shape[2:])
    pieces = [resize_nearest(f, size) for f in feats[:level]] + [feats[level]]
    return torch.cat([mean_variance_norm(p) for p in pieces], dim=1)


def sample_positions(positions: int, max_sample: int, device: torch.device) -> torch.Tensor | None:
    """The style positions kept when there are more than `max_sample`: the reference's
    `torch.manual_seed(6666); torch.randperm(n)[:max_sample]`, on a private generator (the same
    draw, without resetting the process's random state). None: all are kept."""
    if positions <= max_sample:
        return None
    generator = torch.Generator().manual_seed(SAMPLE_SEED)
    return torch.randperm(positions, generator=generator)[:max_sample].to(device)


def wide(t: torch.Tensor) -> torch.Tensor:
    """`t` in float32 if it is in a reduced type (bf16, fp16), else as it is: where sums and differences
    of the attention's maths are taken."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


def chunk_rows(style_positions: int, chunk_elements: int = CHUNK_ELEMENTS) -> int:
    """Queries per chunk so that one chunk's attention weights hold about `chunk_elements` numbers."""
    return max(1, chunk_elements // style_positions)


def attend(queries: torch.Tensor, memory: StyleMemory, normalised_content: torch.Tensor,
           rows: int) -> torch.Tensor:
    """`std * normalised_content + mean` with the attention-weighted style mean and std, `rows` queries
    at a time (each query's result depends only on itself, so chunking changes nothing).

    queries (b, n, key channels), normalised_content (b, n, channels) -> (b, n, channels), float32.
    The weights are the softmax of the raw dot products (no 1/sqrt(d)), in the memory's dtype; the
    attended moments come back in float32.
    """
    channels = normalised_content.shape[-1]
    # One chunk: no split and no concatenation, which in OpenVINO's graph of any photo shape kept the transposes
    # around the products standing as slow copies of their own (51 of 440 ms, 512 px, Xeon with AMX).
    pieces = [(queries, normalised_content)] if rows >= queries.shape[1] else \
        list(zip(queries.split(rows, dim=1), normalised_content.split(rows, dim=1)))
    out = []
    for q, content in pieces:
        weights = torch.softmax(q.to(memory.keys.dtype) @ memory.keys, dim=-1)
        moments = wide(weights @ memory.values)
        mean, squares = moments[..., :channels], moments[..., channels:]
        out.append(attended_std(mean, squares) * content + (mean + memory.centre))
    return out[0] if len(out) == 1 else torch.cat(out, dim=1)


def attended_std(mean: torch.Tensor, mean_of_squares: torch.Tensor) -> torch.Tensor:
    """sqrt(relu(E[v^2] - E[v]^2)), with no eps, as the reference (an eps 1e-5 moves the golden output
    by relL2 2.6e-4)."""
    return (mean_of_squares - mean.square()).relu_().sqrt_()


def remember_style(nets: Networks, style_feats: list[torch.Tensor]) -> list[StyleMemory]:
    """The style side of the three attention levels (relu3_1, relu4_1, relu5_1)."""
    return [attn.remember(style_feats[level], attention_key(style_feats, level))
            for attn, level in zip(nets.attention_levels(), ATTENDED_LEVELS)]


def attend_levels(nets: Networks, content_feats: list[torch.Tensor], memories: list[StyleMemory],
                  chunk_elements: int = CHUNK_ELEMENTS) -> list[torch.Tensor]:
    """The AdaAttN outputs at relu3_1, relu4_1 and relu5_1."""
    return [attn(content_feats[level], attention_key(content_feats, level), memory, chunk_elements)
            for attn, level, memory in zip(nets.attention_levels(), ATTENDED_LEVELS, memories)]


def network_size(side: int) -> int:
    """The smallest side the network takes that is at least `side`."""
    return max(MIN_CONTENT_SIDE, math.ceil(side / SIZE_MULTIPLE) * SIZE_MULTIPLE)


def pad_for_network(image: torch.Tensor) -> tuple[torch.Tensor, tuple[slice, slice]]:
    """`image` reflected out to a size the network takes, and where the image lies in it.
    The padding is split between both sides, so a 16 px side (the smallest) can reach 32."""
    h, w = image.shape[2:]
    top, left = (network_size(h) - h) // 2, (network_size(w) - w) // 2
    padding = (left, network_size(w) - w - left, top, network_size(h) - h - top)
    return F.pad(image, padding, mode="reflect"), (slice(top, top + h), slice(left, left + w))


# --- the engine -----------------------------------------------------------------------------------


class AdaAttNEngine(StyleEngine):
    """`strength` blends, at each level AdaAttN transforms (relu3_1, relu4_1, relu5_1), its output with the
    photo's own feature before decoding, as AdaIN blends its one level: 1 is the published model, 0 the
    decoder's rendering of the photo's features."""

    name = "adaattn"
    label = "AdaAttN (Liu et al., ICCV 2021)"
    files = tuple(FILES.values())  # in the order Networks takes them
    licence = Licence(code="Apache-2.0", commercial=True,
                      weights="Apache-2.0 (AdaAttN_model.zip, linked from the Apache-2.0 repository; "
                              "no separate terms) + MIT (AdaIN's encoder)",
                      source="github.com/Huage001/AdaAttN LICENSE; github.com/naoto0804/pytorch-AdaIN LICENSE")

    def __init__(self, device: torch.device, config):
        super().__init__(device, config)
        nets = Networks(*(weight_files.load(f, config) for f in self.files)).eval().to(device)
        example, shapes = ContentPass.example()
        # OpenVINO, where chosen. Its "snippets" would fuse each level's product-softmax-product into one kernel
        # that, with the style side an input, runs on AVX512 rather than AMX: 517 ms of a 512 px painting on the
        # Xeon against 358 ms for the three ops apart (product on AMX), so that fusion is turned off here.
        self.whole = self.converted(ContentPass(nets), *example, shapes=shapes,
                                    properties={"SNIPPETS_MODE": "DISABLE"})
        self.nets = self.half(nets)
        self.chunk_elements = CHUNK_ELEMENTS

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """relu1_1 .. relu5_1, in the engine's dtype, channels-last."""
        return encode_levels(self.nets.encoder, self.as_convs(x))

    def as_convs(self, t: torch.Tensor) -> torch.Tensor:
        return t.to(self.dtype).contiguous(memory_format=torch.channels_last)

    def decode(self, merged: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.nets.decoder(self.as_convs(merged), self.as_convs(skip)).float()

    def style_memory(self, style: Image.Image, long_side: int) -> list[StyleMemory]:
        """The style at the photo's long side (aspect kept), remembered at each attended level."""
        sw, sh = (max(MIN_STYLE_SIDE, side) for side in fit(style.size, long_side))
        memories = remember_style(self.nets, self.encode(to_tensor(style.resize((sw, sh), Image.LANCZOS), self.device)))
        if self.whole is None:
            return memories
        # Kept in float32 for OpenVINO, which reads float32 arrays in place (bf16 widens exactly; `transfer`
        # narrows them back for torch).
        return [StyleMemory(*(t.float().contiguous() for t in m)) for m in memories]

    def transfer(self, feats: list[torch.Tensor], memories: list[StyleMemory], strength: float) -> torch.Tensor:
        """The raw decoder output (not clamped) for encoded content and a remembered style."""
        memories = [m._replace(keys=m.keys.to(self.dtype), values=m.values.to(self.dtype)) for m in memories]
        attended = attend_levels(self.nets, feats, memories, self.chunk_elements)
        skip, level4_1, level5_1 = (self.as_convs(a if strength == 1 else strength * a + (1 - strength) * f)
                                    for a, f in zip(attended, feats[2:]))
        del feats, attended  # the decoder needs none of them (at 1024 px, relu1_1 alone is 220 MB)
        return self.decode(self.nets.transformer(level4_1, level5_1), skip)

    def paint(self, content, style, strength, style_key):
        long_side = max(content.shape[2:])
        memories = self.cached((style_key, long_side), lambda: self.style_memory(style, long_side))
        padded, (rows, cols) = pad_for_network(content)
        if self.whole is not None and ContentPass.fits(padded, memories):
            out = self.whole(padded, torch.tensor(float(strength)), *(t for m in memories for t in m))
        else:
            out = self.transfer(self.encode(padded), memories, strength)
        return out[:, :, rows, cols].clamp(0, 1)
