"""Where a photo is damaged: the scratch-detection U-Net of "Bringing Old Photos Back to Life".

Wan et al., CVPR 2020 (microsoft/Bringing-Old-Photos-Back-to-Life, MIT), stage 1 `--with_scratch`:
`Global/detection.py` and `Global/detection_models/networks.py`. The module below has the state_dict
keys and shapes of the published `FT_Epoch_latest.pt` (../shared/weights/scratch_detection.json), so the
real file loads strictly, and it is proven against golden vectors of the authors' code
(../shared/weights/golden/SCRATCH.md; tests/test_restore_scratch.py).

Every step is the authors', because the network was trained on exactly that input and its 0.4
threshold means something only after it: the photo resized BICUBICALLY in RGB to a multiple of 16
(Python's half-to-even `round`), PIL's integer luma, [-1, 1], a bilinear (no antialias) resize to short
side 256, sigmoid, a NEAREST resize of the probabilities back to the multiple-of-16 size, then `>= 0.4`.
The settings that the golden tests prove are module constants, so that each documented pitfall can be
put back by a test and seen to fail. The network runs at short side 256 whatever the photo's size, so
detection is cheap enough to run inside every colourisation job; paintbot's one departure keeps it so for
strips: the long side stops at MAX_LONG (8:1 at short side 256), beyond which the short side shrinks
(to 32 at the least). The authors' scaling would give a 4000 x 40 strip 25,600 x 256 pixels, 48 s on a
2-core CPU, for a strip too thin to show a scratch anyway.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

SLOPE = 0.2  # every LeakyReLU
RESIZE_FILTER = Image.BICUBIC  # data_transforms, on the RGB photo
NORM_MEAN, NORM_STD = 0.5, 0.5  # Normalize([0.5], [0.5]): [0, 1] -> [-1, 1]
NETWORK_SHORT = 256  # scale_tensor: the short side the network sees
MAX_LONG, MIN_SHORT = 2048, 32  # paintbot's: see the module's docstring (32: 2 pixels after four halvings)
SCALE_INTERP = {"mode": "bilinear", "align_corners": False, "antialias": False}  # scale_tensor
FINAL_INTERP = {"mode": "nearest"}  # probabilities back to the multiple-of-16 size (legacy nearest)
THRESHOLD = 0.4
AT_OR_ABOVE = torch.ge  # the authors' `P >= 0.4`
MODES = ("full_size", "scale_256")  # run.py uses full_size; detection.py alone defaults to scale_256


# --- the network ---------------------------------------------------------------------------------------


def _conv(cin: int, cout: int, k: int, pad: int) -> list[nn.Module]:
    """Reflection padding then an unpadded convolution (the authors never let a convolution pad)."""
    return [nn.ReflectionPad2d(pad), nn.Conv2d(cin, cout, k)]


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [*_conv(cin, cout, 3, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(SLOPE, True)]


class BlurPool(nn.Module):
    """Anti-aliased stride 2 (the authors' `Downsample`): reflect pad 1, the binomial 3x3 per channel.

    `filt` is a buffer the checkpoint carries ([1,2,1]^T[1,2,1]/16 in the authors' __init__); the file's
    copy is the one used, as strict loading overwrites it."""

    def __init__(self, channels: int):
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("filt", (k[:, None] * k[None, :] / 16).expand(channels, 1, 3, 3).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.filt, stride=2, groups=x.shape[1])


class ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.block = nn.Sequential(*_conv_bn(cin, cout), *_conv_bn(cout, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class UpBlock(nn.Module):
    """Bilinear x2, reflect-padded 3x3 conv (no norm, no activation), concatenated before the skip."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                *_conv(cin, cout, 3, 1))
        self.conv_block = ConvBlock(cin, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv_block(torch.cat((self.up(x), skip), dim=1))


class ScratchUNet(nn.Module):
    """networks.UNet(in_channels=1, out_channels=1, depth=4, conv_num=2, wf=6, padding=True, batch_norm=True,
    up_mode="upsample", with_tanh=False, antialiasing=True): gray in [-1, 1] -> damage logits, same size
    (H and W multiples of 16)."""

    def __init__(self, depth: int = 4, wf: int = 6):
        super().__init__()
        c = 2 ** wf
        self.first = nn.Sequential(*_conv(1, c, 7, 3), nn.LeakyReLU(SLOPE, True))
        self.down_path = nn.ModuleList()
        self.down_sample = nn.ModuleList()
        for i in range(depth):
            ch = c * 2 ** i
            self.down_sample.append(nn.Sequential(*_conv_bn(ch, ch), BlurPool(ch)))
            self.down_path.append(ConvBlock(ch, 2 * ch))
        self.up_path = nn.ModuleList(UpBlock(c * 2 ** (i + 1), c * 2 ** i) for i in reversed(range(depth)))
        self.last = nn.Sequential(*_conv(c, 1, 3, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first(x)
        skips = []
        for down_sample, down in zip(self.down_sample, self.down_path):
            skips.append(x)
            x = down(down_sample(x))
        for up in self.up_path:
            x = up(x, skips.pop())
        return self.last(x)


def prepare_checkpoint(checkpoint: dict) -> dict:
    """The weights of an `FT_Epoch_latest.pt`: the dict under its "model_state" key (other keys: never read)."""
    state = checkpoint.get("model_state")
    if not isinstance(state, dict):
        from models.fetch import FetchError

        raise FetchError(f"not a scratch-detection checkpoint: no 'model_state' dict among its keys "
                         f"({', '.join(map(str, list(checkpoint)[:4]))})")
    return state


# --- pre- and post-processing (detection.py) -------------------------------------------------------------


def rounded_size(w: int, h: int, mode: str = "full_size") -> tuple[int, int]:
    """data_transforms' size (w, h): each side to a multiple of 16 (full_size), or short side 256 first
    (scale_256); Python's round, half to even (264 rows -> 256, 280 -> 288)."""
    if mode == "scale_256":
        if w < h:
            w, h = 256, h / w * 256
        else:
            w, h = w / h * 256, 256
    elif mode != "full_size":
        raise ValueError(f"detection mode must be one of {', '.join(MODES)}, not {mode!r}")
    return int(round(w / 16) * 16), int(round(h / 16) * 16)


def luma(rgb: Image.Image) -> Image.Image:
    """PIL's integer ITU-R 601-2 luma, (19595 R + 38470 G + 7471 B + 32768) >> 16."""
    return rgb.convert("L")


def gray_u8(img: Image.Image, mode: str = "full_size") -> np.ndarray:
    """What the network is given before scaling: the photo resized (RGB, bicubic) to `rounded_size`, then
    its luma; h x w uint8. A gray photo is resized as is: for R = G = B the RGB route gives the same bytes."""
    size = rounded_size(*img.size, mode)
    if img.mode != "L":
        img = img.convert("RGB")
    if size != img.size:
        img = img.resize(size, RESIZE_FILTER)
    return np.asarray(img if img.mode == "L" else luma(img))


def network_input(gray: np.ndarray) -> torch.Tensor:
    """1 x 1 x 256 x (16k) float32 in [-1, 1] (ToTensor, Normalize, scale_tensor); beyond 8:1, MAX_LONG long."""
    x = (torch.from_numpy(np.array(gray)).float().div_(255) - NORM_MEAN) / NORM_STD
    x = x[None, None]
    short, long = sorted(gray.shape)
    size = (NETWORK_SHORT, int(round(long / short * NETWORK_SHORT / 16) * 16))
    if size[1] > MAX_LONG:
        size = (max(MIN_SHORT, int(round(short / long * MAX_LONG / 16) * 16)), MAX_LONG)
    return F.interpolate(x, size=size if gray.shape[0] <= gray.shape[1] else size[::-1], **SCALE_INTERP)


def mask_at(prob: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The damage mask (h x w bool) at `size` (rows, cols): nearest resize of the probabilities, then >= 0.4."""
    return AT_OR_ABOVE(F.interpolate(prob.float(), size=size, **FINAL_INTERP)[0, 0], THRESHOLD)


def mask_u8(mask: torch.Tensor) -> np.ndarray:
    """0/255 uint8, as the authors' PNG, except that an all-damaged photo is all 255 (save_image's
    min-max stretch would write it all black)."""
    return mask.to(torch.uint8).mul_(255).cpu().numpy()


@torch.inference_mode()
def detect(net: nn.Module, img: Image.Image, mode: str = "full_size",
           dtype: torch.dtype = torch.float32) -> np.ndarray:
    """The authors' mask of `img`: h x w uint8 0/255 at the multiple-of-16 size of `rounded_size`."""
    gray = gray_u8(img, mode)
    device = next(net.parameters()).device
    x = network_input(gray).to(device=device, dtype=dtype)
    prob = torch.sigmoid(net(x).float())
    return mask_u8(mask_at(prob, gray.shape))
