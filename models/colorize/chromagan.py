"""ChromaGAN (Vitoria, Raad & Ballester, WACV 2020): the paper's Table 1 winner on PSNR/SSIM, by name only.

Why it is here: the seed paper compares four colourisers (ChromaGAN, instance-aware, CIC2, CIC); with this
engine `paintbot eval colorize` reproduces all four columns. It is never a default: older and slower than
DDColor, and its authors' code is AGPL-3.0, so this module re-implements the generator in PyTorch from the
documented architecture (shared/weights/golden/CHROMAGAN.md) and copies none of their code; only their
published weight file is loaded.

The file is a Keras 2.2.4 full-model save (.h5). It is read with h5py alone (no TensorFlow or Keras) by the
file's own order: `layer_names` of model_weights, then each layer's `weight_names`, matched one by one to
this network's parameters with every shape checked. Several convolutions share the shape (3,3,512,512), so a
loader that went by h5py's alphabetical group order, or by guessed layer numbers, could load silently wrong;
the file's order cannot. Optimizer state (optimizer_weights/) is ignored.

What moves the output, and what the golden vectors check (each pitfall, reintroduced, fails a test):
- Keras kernels are HWIO (conv) and (in, out) (dense): transposed, never reshaped; the dense layers after
  a Flatten read the 7x7x512 map in NHWC order, so the activation is flattened channels-last.
- Keras 'same' padding of the stride-2 convolutions is 0 before and 1 after (TensorFlow's rule), not 1/1.
- Each Conv2D carries its ReLU, so blocks are conv -> ReLU -> BatchNorm; BatchNorm eps is 1e-3.
- The dense layers are linear (only the class head's last one has a softmax); the fusion concatenates
  [mid-level, global] in that order; upsampling is nearest, the last x2 after the sigmoid.
- No ImageNet preprocessing: the VGG16 trunk sees L/255 on all three channels.
- The authors' pipeline is OpenCV on uint8, and its roundings show in the result: the photo is squashed to
  224x224 by OpenCV's fixed-point bilinear resize of the 8-bit RGB, its 8-bit Lab L is the input; the
  sigmoid ab is de-normalised by truncation (floor(255 s)), resized to the photo's size by the same
  fixed-point resize on uint8, and joined to the photo's own full-resolution 8-bit L. Both integer
  routines are reproduced here in torch (bit-exact on the goldens, and on 9.5 M random values against
  OpenCV 5.1.0); only the final Lab -> RGB is paintbot's exact conversion, with OpenCV's unclipped Z
  (within 1 level of OpenCV's 8-bit one on the goldens; on random 8-bit Lab, 0.0015 % of values by 2).

The class head (dense 25088 -> 4096 -> 4096 -> 1000, 123.6 M of the 171 M parameters) was trained to match
VGG16's ImageNet classes and colours nothing: it is loaded and checked with the rest, computed only when
asked (`forward(x, classes=True)`), and the engine frees it after loading (bench/chromagan.py measures it).

    net = weights.load(WEIGHTS, config)                  # strict, from the .h5
    ab01 = net(network_input(pil_image))                 # (1, 2, 224, 224) sigmoid ab
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from models.colorize.framing import ColorizeEngine
from models.engine import Licence
from models.fetch import FetchError
from models.weights import WeightFile, remote

INPUT_SIZE = 224  # fixed by the Flatten -> Dense and RepeatVector(28*28) of the authors' model
BN_EPS = 1e-3  # Keras' default, not PyTorch's 1e-5
VGG_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3))  # VGG16 up to block4_conv3 (no pool after block 4)
FLAT = 7 * 7 * 512

# The file's weighted layers in its own order (CHROMAGAN.md: model.layers, by depth), each as
# (our module, its Keras kind). model_2 is the nested VGG16 trunk: 10 convolutions in block order.
FILE_ORDER = (
    [(f"trunk.block{b + 1}_conv{c + 1}", "conv") for b, (_, n) in enumerate(VGG_BLOCKS) for c in range(n)]
    + [("global_convs.0.conv", "conv"), ("global_convs.0.bn", "bn"), ("global_convs.1.conv", "conv"),
       ("global_convs.1.bn", "bn"), ("global_convs.2.conv", "conv"), ("global_convs.2.bn", "bn"),
       ("global_convs.3.conv", "conv"), ("global_convs.3.bn", "bn"), ("global_dense.0", "dense"),
       ("mid_convs.0.conv", "conv"), ("global_dense.1", "dense"), ("mid_convs.0.bn", "bn"),
       ("global_dense.2", "dense"), ("mid_convs.1.conv", "conv"), ("mid_convs.1.bn", "bn"),
       ("fusion", "conv"), ("decoder.0", "conv"), ("decoder.1", "conv"), ("decoder.2", "conv"),
       ("decoder.3", "conv"), ("class_dense.0", "dense"), ("decoder.4", "conv"), ("class_dense.1", "dense"),
       ("class_dense.2", "dense")])
# Keras weight name (suffix) -> our parameter, per kind, in the order Keras writes them.
KERAS_WEIGHTS = {"conv": (("kernel:0", "weight"), ("bias:0", "bias")),
                 "dense": (("kernel:0", "weight"), ("bias:0", "bias")),
                 "bn": (("gamma:0", "weight"), ("beta:0", "bias"), ("moving_mean:0", "running_mean"),
                        ("moving_variance:0", "running_var"))}


def conv_kernel(kernel: np.ndarray) -> np.ndarray:
    """Keras HWIO (kh, kw, in, out) -> PyTorch OIHW."""
    return kernel.transpose(3, 2, 0, 1)


def dense_kernel(kernel: np.ndarray) -> np.ndarray:
    """Keras (in, out) -> nn.Linear (out, in)."""
    return kernel.T


def tf_same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow's 'same' padding: the odd pixel goes after (bottom/right), never before."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class ConvBN(nn.Module):
    """A Keras Conv2D with its ReLU inside, then BatchNormalization (eps 1e-3): conv -> ReLU -> BN."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(cin, cout, 3, stride, padding=1 if stride == 1 else 0)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = tf_same_pad(x, 3, self.stride)
        return self.bn(F.relu(self.conv(x)))


class VGGTrunk(nn.Module):
    """VGG16's convolutions up to block4_conv3 (ReLU each), max-pool 2x2 after blocks 1-3."""

    def __init__(self):
        super().__init__()
        cin = 3
        for b, (cout, n) in enumerate(VGG_BLOCKS):
            for c in range(n):
                self.add_module(f"block{b + 1}_conv{c + 1}", nn.Conv2d(cin, cout, 3, padding=1))
                cin = cout

    def block(self, x: torch.Tensor, b: int) -> torch.Tensor:
        """Block b (1-based) of the trunk, with its pool (blocks 1-3)."""
        for c in range(VGG_BLOCKS[b - 1][1]):
            x = F.relu(getattr(self, f"block{b}_conv{c + 1}")(x))
        return F.max_pool2d(x, 2) if b < len(VGG_BLOCKS) else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b in range(1, len(VGG_BLOCKS) + 1):
            x = self.block(x, b)
        return x


class ChromaGAN(nn.Module):
    """The generator: 224x224 L/255 (three equal channels) -> ab in (0, 1) (OpenCV 8-bit a, b / 255),
    and, when asked, the 1000-class distribution."""

    def __init__(self, device: torch.device | str = "cpu"):
        super().__init__()
        with torch.device("meta"):  # no random initialisation of 171 M parameters: the file fills them all
            self._build()
        self.to_empty(device=device)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()

    def _build(self) -> None:
        self.trunk = VGGTrunk()
        self.global_convs = nn.Sequential(ConvBN(512, 512, 2), ConvBN(512, 512), ConvBN(512, 512, 2),
                                          ConvBN(512, 512))
        self.global_dense = nn.Sequential(nn.Linear(FLAT, 1024), nn.Linear(1024, 512), nn.Linear(512, 256))
        self.mid_convs = nn.Sequential(ConvBN(512, 512), ConvBN(512, 256))
        self.fusion = nn.Conv2d(512, 256, 1)
        self.decoder = nn.Sequential(nn.Conv2d(256, 128, 3, padding=1), nn.Conv2d(128, 64, 3, padding=1),
                                     nn.Conv2d(64, 64, 3, padding=1), nn.Conv2d(64, 32, 3, padding=1),
                                     nn.Conv2d(32, 2, 3, padding=1))
        self.class_dense: nn.Sequential | None = nn.Sequential(nn.Linear(FLAT, 4096), nn.Linear(4096, 4096),
                                                               nn.Linear(4096, 1000))

    # The stages, each testable on its own against the golden intermediates.

    def global_vector(self, global_map: torch.Tensor) -> torch.Tensor:
        """dense_1..3 (linear) on the 7x7x512 map flattened channels-last, as Keras flattens NHWC."""
        return self.global_dense(global_map.permute(0, 2, 3, 1).flatten(1))

    def fuse(self, mid: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
        """[mid-level, global vector repeated at every position] -> 1x1 conv + ReLU."""
        spread = vector[:, :, None, None].expand(-1, -1, *mid.shape[-2:])
        return F.relu(self.fusion(torch.cat((mid, spread), dim=1)))

    def ab_logits(self, fused: torch.Tensor) -> torch.Tensor:
        """The decoder up to conv2d_17 before its sigmoid, at 112x112."""
        d = self.decoder
        x = F.interpolate(F.relu(d[0](fused)), scale_factor=2, mode="nearest")
        x = F.interpolate(F.relu(d[2](F.relu(d[1](x)))), scale_factor=2, mode="nearest")
        return d[4](F.relu(d[3](x)))

    def class_logits(self, global_map: torch.Tensor) -> torch.Tensor:
        """dense_4..6 (linear) on the same flattened map: the logits before the softmax."""
        if self.class_dense is None:
            raise RuntimeError("the class head was freed after loading (drop_class_head)")
        return self.class_dense(global_map.permute(0, 2, 3, 1).flatten(1))

    def forward(self, x: torch.Tensor, classes: bool = False):
        """ab (1, 2, 224, 224) in (0, 1); with `classes`, also the softmax over 1000 classes."""
        if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"ChromaGAN takes {INPUT_SIZE}x{INPUT_SIZE} input, not {tuple(x.shape[-2:])}")
        trunk = self.trunk(x)
        global_map = self.global_convs(trunk)
        fused = self.fuse(self.mid_convs(trunk), self.global_vector(global_map))
        ab = F.interpolate(torch.sigmoid(self.ab_logits(fused)), scale_factor=2, mode="nearest")
        return (ab, torch.softmax(self.class_logits(global_map), dim=1)) if classes else ab

    def drop_class_head(self) -> ChromaGAN:
        """Free the class head (494 MB in float32): colourisation never reads it."""
        self.class_dense = None
        return self


# ---------------------------------------------------------------------------------------------------
# The Keras .h5


def _text(value) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)  # h5py 2 gives bytes, 3 str


def _names(attrs, key: str) -> list[str]:
    """A Keras name list: fixed-length bytes, or an empty float64 array for a weightless layer."""
    values = attrs.get(key)
    return [] if values is None or len(values) == 0 else [_text(v) for v in values]


def keras_arrays(path: str | Path) -> list[tuple[str, np.ndarray]]:
    """Every weight under model_weights as (layer/weight name, float32 array), in the file's own order:
    layer_names, then each layer's weight_names. optimizer_weights/ is never read."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f  # a save_weights file has no wrapper
            out = []
            for layer in _names(group.attrs, "layer_names"):
                for name in _names(group[layer].attrs, "weight_names"):
                    out.append((f"{layer}/{name}", np.asarray(group[layer][name], dtype=np.float32)))
    except FileNotFoundError:
        raise FetchError(f"weights file not found: {path}") from None
    except (OSError, KeyError) as exc:
        raise FetchError(f"cannot read weights file {path} (not the Keras .h5 of {WEIGHTS.remote.describe()}): "
                         f"{_text(exc)}") from None
    return out


def expected_keras_shapes(net: nn.Module | None = None) -> list[tuple[str, str, tuple[int, ...]]]:
    """(our parameter, Keras weight suffix, the shape Keras stores it in), in the file's order."""
    params = (net or ChromaGAN("meta")).state_dict()
    out = []
    for module, kind in FILE_ORDER:
        for suffix, ours in KERAS_WEIGHTS[kind]:
            shape = tuple(params[f"{module}.{ours}"].shape)
            if suffix == "kernel:0":
                shape = shape[2:] + shape[1::-1] if kind == "conv" else shape[::-1]  # HWIO / (in, out)
            out.append((f"{module}.{ours}", suffix, shape))
    return out


def state_dict_from_keras(arrays: list[tuple[str, np.ndarray]], source: str | Path) -> dict[str, torch.Tensor]:
    """Match the file's weights one by one, in its order, to this network's: every weight used, every shape
    and kind checked (one-line FetchError naming the first difference), kernels transposed."""
    expected = expected_keras_shapes()
    where = f"{source} is not ChromaGAN's generator ({WEIGHTS.remote.describe()})"
    if len(arrays) != len(expected):
        raise FetchError(f"{where}: it holds {len(arrays)} weights, the generator has {len(expected)}")
    out = {}
    for i, ((name, value), (ours, suffix, shape)) in enumerate(zip(arrays, expected)):
        if not name.endswith("/" + suffix) or value.shape != shape:
            raise FetchError(f"{where}: weight {i + 1} is {name} {list(value.shape)}, expected a {suffix} "
                             f"{list(shape)} (for {ours})")
        if suffix == "kernel:0":
            value = conv_kernel(value) if value.ndim == 4 else dense_kernel(value)
        out[ours] = torch.from_numpy(value)  # a transposed view: loading copies it once, into place
    return out


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The .h5 at `path` as this network's state_dict (WeightFile.read)."""
    return state_dict_from_keras(keras_arrays(path), path)


# The authors publish the file in two places (chromagan.json): the Google Drive file their Dockerfiles fetch, over
# HTTPS, first; their university's web server (plain HTTP, as their README gives it) when Drive refuses (its
# daily quota). No hash is published: the file is pinned on its first strict load.
WEIGHTS = WeightFile(remote("https://docs.google.com/uc?export=download&id=12hyrk6A3bcpAFIBNW0sfeEevJ9daUTGr",
                            None, filename="my_model_colorization.h5",
                            mirrors=("http://gpi.upf.edu/chromagan/my_model_colorization.h5",)),
                     ChromaGAN, read=read_weights)


# ---------------------------------------------------------------------------------------------------
# The authors' OpenCV uint8 steps, bit for bit, in torch


def _linear_coefficients(src: int, dst: int, clamp_fraction: bool) -> tuple[np.ndarray, ...]:
    """OpenCV's INTER_LINEAR taps for one axis: source indices i0, i1 and 11-bit weights w0, w1.
    Columns move an out-of-range position onto the edge pixel; rows keep the fraction and clamp only
    the row indices (as OpenCV does), which rounds differently at the first and last rows."""
    f = ((np.arange(dst) + 0.5) * (1.0 / (dst / src)) - 0.5).astype(np.float32)
    i0 = np.floor(f).astype(np.int64)
    f = (f - i0.astype(np.float32)).astype(np.float32)
    if clamp_fraction:
        f[i0 < 0] = 0
        i0 = np.maximum(i0, 0)
        f[i0 >= src - 1] = 0
        i0 = np.minimum(i0, src - 1)
    w0 = np.rint((np.float32(1) - f) * np.float32(2048)).astype(np.int32)
    w1 = np.rint(f * np.float32(2048)).astype(np.int32)
    return np.clip(i0, 0, src - 1), np.clip(i0 + 1, 0, src - 1), w0, w1


def resize_uint8(planes: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """cv2.resize(..., INTER_LINEAR) of 8-bit planes (C, H, W) -> (C, h, w), bit-exact: 11-bit fixed-point
    taps, the horizontal pass exact in integers, the vertical one as OpenCV's SIMD code rounds it
    (each row's sum >> 4, times its weight >> 16, then (sum + 2) >> 2)."""
    _, src_h, src_w = planes.shape
    dev = planes.device
    x0, x1, a0, a1 = (torch.from_numpy(t).to(dev) for t in _linear_coefficients(src_w, w, True))
    y0, y1, b0, b1 = (torch.from_numpy(t).to(dev) for t in _linear_coefficients(src_h, h, False))
    p = planes.to(torch.int32)
    # the horizontal pass, already >> 4 (a shift commutes with picking rows), on the source rows only
    horizontal = (p.index_select(2, x0) * a0).add_(p.index_select(2, x1) * a1).bitwise_right_shift_(4)
    top = (horizontal.index_select(1, y0) * b0[:, None]).bitwise_right_shift_(16)
    bottom = (horizontal.index_select(1, y1) * b1[:, None]).bitwise_right_shift_(16)
    return top.add_(bottom).add_(2).bitwise_right_shift_(2).clamp_(0, 255).to(torch.uint8)


def _lightness_tables() -> tuple[torch.Tensor, torch.Tensor]:
    """OpenCV's 8-bit RGB -> Lab L in integers: sRGB decoding to 0..2040 (3 fraction bits), then from
    Y (0..2040) to L = round(L* x 255/100) through its 15-bit cube-root table."""
    c = np.arange(256) / 255.0
    decoded = np.rint(2040 * np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)).astype(np.int64)
    y = np.arange(2041) / 2040.0
    cube_root = np.rint(32768 * np.where(y < 0.008856, 7.787 * y + 16 / 116, np.cbrt(y))).astype(np.int64)
    lightness = (296 * cube_root - 1336934 + (1 << 14)) >> 15
    return torch.from_numpy(decoded.astype(np.int32)), torch.from_numpy(lightness.astype(np.uint8))


_DECODE, _L_OF_Y = _lightness_tables()
_L_OF_GRAY = _L_OF_Y[_DECODE.long()]  # R = G = B: Y is the decoded value itself
_Y_WEIGHTS = (871, 2929, 296)  # round(4096 x sRGB->Y coefficients), summing to 4096


def _lookup(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """table[index] for a 1-D table (index_select: several times faster than indexing)."""
    flat = index.reshape(-1).to(torch.int32)
    return table.to(index.device).index_select(0, flat).view(index.shape)


def lightness_uint8(pixels: torch.Tensor) -> torch.Tensor:
    """OpenCV's 8-bit L (0..255) of 8-bit gray (H, W) or RGB (3, H, W) pixels, bit-exact."""
    if pixels.dim() == 2:
        return _lookup(_L_OF_GRAY, pixels)
    r, g, b = _lookup(_DECODE, pixels).unbind(0)
    y = (r * _Y_WEIGHTS[0] + g * _Y_WEIGHTS[1] + b * _Y_WEIGHTS[2] + 2048) >> 12
    return _lookup(_L_OF_Y, y)


def _pixels(img: Image.Image, device: torch.device) -> torch.Tensor:
    """(H, W) for a gray image, (3, H, W) for RGB, uint8."""
    arr = torch.from_numpy(np.array(img)).to(device)
    return arr if img.mode == "L" else arr.permute(2, 0, 1)


def network_input(img: Image.Image, device: torch.device = torch.device("cpu")) -> torch.Tensor:
    """The authors' input: the 8-bit image squashed to 224x224 (OpenCV bilinear on uint8, aspect not kept),
    its OpenCV 8-bit L / 255 on three channels: (1, 3, 224, 224) float32."""
    pixels = _pixels(img, device)
    small = resize_uint8(pixels[None] if pixels.dim() == 2 else pixels, INPUT_SIZE, INPUT_SIZE)
    lightness = lightness_uint8(small[0] if pixels.dim() == 2 else small)
    return (lightness.float() / 255)[None, None].expand(1, 3, -1, -1)


def ab_uint8(ab01: torch.Tensor) -> torch.Tensor:
    """The authors' de-normalisation: x 255 in float32, clip, TRUNCATE to uint8 (OpenCV's 8-bit a, b)."""
    return (ab01.float() * 255).clamp_(0, 255).to(torch.uint8)


class ChromaGANEngine(ColorizeEngine):
    """The authors' pipeline at full resolution: ab from the 224x224 network, resized on uint8 to the
    photo's size as they do, joined to the photo's own 8-bit lightness."""

    name = "chromagan"
    label = "ChromaGAN (Vitoria et al., WACV 2020)"
    # The authors' code is AGPL-3.0 (re-implemented here, none copied); their weights carry no licence
    # statement, so no commercial permission can be assumed (PAINTBOT_COMMERCIAL keeps it out; it is no default).
    licence = Licence(code="AGPL-3.0 upstream (pvitoria/ChromaGAN), re-implemented here",
                      weights="no licence stated by the authors", commercial=False,
                      source="LICENCE and README of pvitoria/ChromaGAN (../shared/weights/chromagan.json)")
    files = (WEIGHTS,)
    default_on = frozenset()  # by name only: older and slower than DDColor
    clip_z = False  # the authors' cv2 Lab -> BGR lets Z go negative for strong yellows beyond the gamut

    def __init__(self, device, config):
        super().__init__(device, config)
        self.net = self.half(self.load_file(self.files[0]).drop_class_head())

    def lightness(self, img: Image.Image) -> torch.Tensor:
        """L* (1, H, W) as the authors' output has it: OpenCV's 8-bit L x 100 / 255."""
        return (lightness_uint8(_pixels(img, self.device)).float() * (100 / 255))[None]

    def predict_ab(self, img: Image.Image, reference: Image.Image | None = None) -> torch.Tensor:
        """ab (1, 2, 224, 224) in CIE units, on the authors' 8-bit grid: floor(255 s) - 128."""
        x = network_input(img, self.device).to(self.dtype).contiguous(memory_format=torch.channels_last)
        return ab_uint8(self.net(x)).float() - 128

    def upsample_ab(self, ab_small: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """As the authors: the 8-bit ab resized by OpenCV's bilinear on uint8."""
        planes = (ab_small[0] + 128).clamp_(0, 255).to(torch.uint8)
        return resize_uint8(planes, h, w).float() - 128
