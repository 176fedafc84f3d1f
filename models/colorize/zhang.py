"""Zhang et al.'s colourisers: ECCV 2016 ("eccv16", CIC) and SIGGRAPH 2017 ("siggraph17", CIC2).

The networks' state_dict keys and shapes equal the published checkpoints', so the real files
load strictly. Both see L at 256x256, as their authors' demo feeds them (the RGB image resized
bicubically, then its lightness); their ab prediction is joined to the photo's own lightness by
the shared colourisation framing. SIGGRAPH17's U-Net (`SIGGRAPHUNet`) is also the layout of
the instance-aware colouriser's three networks (instance.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from models.colorize import hints as hinting
from models.colorize.framing import ColorizeEngine
from models.colorize.hints import Hint
from models.device import add_into
from models.engine import Licence
from models.weights import WeightFile, remote

NETWORK_SIZE = 256


def _convs(cin: int, cout: int, n: int, last_stride: int = 1, dilation: int = 1) -> list[nn.Module]:
    """n conv+ReLU pairs (3x3); the last one may stride. Module indices match the published files."""
    layers: list[nn.Module] = []
    for i in range(n):
        stride = last_stride if i == n - 1 else 1
        layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, stride, dilation, dilation=dilation), nn.ReLU(True)]
    return layers


class ECCV16(nn.Module):
    """Colorful Image Colorization (CIC): L (normalised) -> distribution over 313 ab bins -> expected ab."""

    def __init__(self):
        super().__init__()
        self.model1 = nn.Sequential(*_convs(1, 64, 2, last_stride=2), nn.BatchNorm2d(64))
        self.model2 = nn.Sequential(*_convs(64, 128, 2, last_stride=2), nn.BatchNorm2d(128))
        self.model3 = nn.Sequential(*_convs(128, 256, 3, last_stride=2), nn.BatchNorm2d(256))
        self.model4 = nn.Sequential(*_convs(256, 512, 3), nn.BatchNorm2d(512))
        self.model5 = nn.Sequential(*_convs(512, 512, 3, dilation=2), nn.BatchNorm2d(512))
        self.model6 = nn.Sequential(*_convs(512, 512, 3, dilation=2), nn.BatchNorm2d(512))
        self.model7 = nn.Sequential(*_convs(512, 512, 3), nn.BatchNorm2d(512))
        self.model8 = nn.Sequential(nn.ConvTranspose2d(512, 256, 4, 2, 1), nn.ReLU(True),
                                    *_convs(256, 256, 2), nn.Conv2d(256, 313, 1))
        self.model_out = nn.Conv2d(313, 2, 1, bias=False)  # weights: the 313 bin centres (ab / 110)

    def forward(self, l_norm: torch.Tensor) -> torch.Tensor:
        x = l_norm
        for block in (self.model1, self.model2, self.model3, self.model4, self.model5, self.model6,
                      self.model7, self.model8):
            x = block(x)
        ab = self.model_out(torch.softmax(x, dim=1))
        return F.interpolate(ab, scale_factor=4, mode="bilinear", align_corners=False) * 110


def _keep(name: str, feature: torch.Tensor) -> torch.Tensor:
    return feature


class SIGGRAPHUNet(nn.Module):
    """The SIGGRAPH 2017 U-Net (layers and their published key names) without a choice of inputs.

    Zhang et al.'s release and InstColorization's three networks (Su et al., CVPR 2020) share
    this layout; they differ in what they feed it and what they do at its named feature maps.
    """

    def __init__(self):
        super().__init__()
        self.model1 = nn.Sequential(*_convs(4, 64, 2), nn.BatchNorm2d(64))
        self.model2 = nn.Sequential(*_convs(64, 128, 2), nn.BatchNorm2d(128))
        self.model3 = nn.Sequential(*_convs(128, 256, 3), nn.BatchNorm2d(256))
        self.model4 = nn.Sequential(*_convs(256, 512, 3), nn.BatchNorm2d(512))
        self.model5 = nn.Sequential(*_convs(512, 512, 3, dilation=2), nn.BatchNorm2d(512))
        self.model6 = nn.Sequential(*_convs(512, 512, 3, dilation=2), nn.BatchNorm2d(512))
        self.model7 = nn.Sequential(*_convs(512, 512, 3), nn.BatchNorm2d(512))
        self.model8up = nn.Sequential(nn.ConvTranspose2d(512, 256, 4, 2, 1))
        self.model3short8 = nn.Sequential(nn.Conv2d(256, 256, 3, 1, 1))
        self.model8 = nn.Sequential(nn.ReLU(True), *_convs(256, 256, 2), nn.BatchNorm2d(256))
        self.model9up = nn.Sequential(nn.ConvTranspose2d(256, 128, 4, 2, 1))
        self.model2short9 = nn.Sequential(nn.Conv2d(128, 128, 3, 1, 1))
        self.model9 = nn.Sequential(nn.ReLU(True), nn.Conv2d(128, 128, 3, 1, 1), nn.ReLU(True), nn.BatchNorm2d(128))
        self.model10up = nn.Sequential(nn.ConvTranspose2d(128, 128, 4, 2, 1))
        self.model1short10 = nn.Sequential(nn.Conv2d(64, 128, 3, 1, 1))
        self.model10 = nn.Sequential(nn.ReLU(True), nn.Conv2d(128, 128, 3, 1, 1), nn.LeakyReLU(0.2, True))
        self.model_class = nn.Sequential(nn.Conv2d(256, 529, 1))  # classification head: not used here
        self.model_out = nn.Sequential(nn.Conv2d(128, 2, 1), nn.Tanh())

    def unet(self, x: torch.Tensor, tap=_keep) -> torch.Tensor:
        """4-channel input (L, ab hint, mask) -> tanh output (ab / 110).

        `tap(name, feature)` sees each feature map InstColorization names (conv1_2 ... conv10_2)
        and returns the map the network goes on with: the feature itself, or a fused one.
        """
        c1 = tap("conv1_2", self.model1(x))
        c2 = tap("conv2_2", self.model2(c1[:, :, ::2, ::2]))
        c3 = tap("conv3_3", self.model3(c2[:, :, ::2, ::2]))
        x = tap("conv4_3", self.model4(c3[:, :, ::2, ::2]))
        x = tap("conv5_3", self.model5(x))
        x = tap("conv6_3", self.model6(x))
        x = tap("conv7_3", self.model7(x))
        x = tap("conv8_up", add_into(self.model8up(x), self.model3short8[0], c3))
        x = tap("conv8_3", self.model8(x))
        x = tap("conv9_up", add_into(self.model9up(x), self.model2short9[0], c2))
        x = tap("conv9_3", self.model9(x))
        x = add_into(self.model10up(x), self.model1short10[0], c1)
        del c1, c2, c3  # before the largest maps (in-place adds and activations: the same values, less memory)
        x = tap("conv10_up", x)
        x = tap("conv10_2", self.model10(x))
        return self.model_out(x)


class SIGGRAPH17(SIGGRAPHUNet):
    """Real-Time User-Guided Colorization: a U-Net regressing ab directly from L and the user's hints.

    `ab` are the hint colours in CIE units (0 where none) and `mask` is 1 where a hint is, 0 elsewhere;
    they enter as models/colorize/hints.py prescribes for the released weights (ab / 110, the mask as it
    is). Without them the network runs automatically: no hints, mask 0 everywhere.
    """

    def forward(self, l_norm: torch.Tensor, ab: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        if ab is None or mask is None:
            ab, mask = torch.zeros_like(l_norm).expand(-1, 2, -1, -1), torch.zeros_like(l_norm)
        x = torch.cat((l_norm, hinting.ab_input(ab), hinting.mask_input(mask)), dim=1)
        return self.unet(x) * 110


class ZhangEngine(ColorizeEngine):
    """Both networks take normalised L at 256x256 and return ab in CIE units."""

    channels = (1,)  # the network's inputs' channels: L (SIGGRAPH17 also takes the hints' ab and mask)

    # The weights are published beside the code, under the repository's licence.
    licence = Licence(code="BSD-2-Clause", weights="BSD-2-Clause", commercial=True,
                      source="github.com/richzhang/colorization LICENSE")

    def __init__(self, device, config):
        super().__init__(device, config)
        example = (torch.zeros(1, c, NETWORK_SIZE, NETWORK_SIZE) for c in self.channels)
        # Raced (models/runtime.py): beside busy processes compiled torch beat OpenVINO on the Zen 5, not on the Xeon.
        self.net = self.runnable(self.load_file(self.files[0]), *example, race=True)

    def predict_ab(self, img: Image.Image, reference: Image.Image | None = None) -> torch.Tensor:
        return self.net(self.network_input(self.grid_lightness(img))).float()

    def grid_lightness(self, img: Image.Image) -> torch.Tensor:
        """L* (1, 256, 256) float32 of the RGB (or L) image resized bicubically, as the authors' demo."""
        return self.lightness(img.resize((NETWORK_SIZE, NETWORK_SIZE), Image.BICUBIC))

    def network_input(self, lightness: torch.Tensor) -> torch.Tensor:
        """(L - 50) / 100 as the network takes it: (1, 1, 256, 256) in its dtype and memory format."""
        x = ((lightness - 50) / 100).unsqueeze(0).to(self.dtype)
        return x.contiguous(memory_format=torch.channels_last)


class ECCV16Engine(ZhangEngine):
    name = "eccv16"
    label = "Zhang et al., ECCV 2016"
    files = (WeightFile(remote("https://colorizers.s3.us-east-2.amazonaws.com/colorization_release_v2-9b330a0b.pth",
                               "9b330a0bae53f4ded77b1e23defbf78beaa09c10ebc4c4999e8e4f4a160b93f9"), ECCV16),)


class SIGGRAPH17Engine(ZhangEngine):
    name = "siggraph17"
    label = "Zhang et al., SIGGRAPH 2017"
    takes_hints = True
    channels = (1, 2, 1)  # L, the hints' ab and mask (zeros for none: automatic)
    files = (WeightFile(remote("https://colorizers.s3.us-east-2.amazonaws.com/siggraph17-df00044c.pth",
                               "df00044c0a4d7c3edcecf6f75437ce346a66e7a42612d9b968e1a7e17dbc6f66"), SIGGRAPH17),)

    def predict_ab(self, img: Image.Image, reference: Image.Image | None = None,
                   hints: Sequence[Hint] = ()) -> torch.Tensor:
        """ab at 256x256; `hints` (pixels of `img`) snapped into the gamut at the L the network sees there."""
        lightness = self.grid_lightness(img)
        return self.predict_ab_at(img, hinting.colour_points(hints, img.width, img.height, lightness[0]), lightness)

    def predict_ab_at(self, img: Image.Image, points: Sequence[hinting.ColourPoint],
                      lightness: torch.Tensor | None = None) -> torch.Tensor:
        """ab at 256x256 for hints already turned into colours (ab) at pixels of `img` (none: automatic);
        `lightness` its grid_lightness, if already made."""
        x = self.network_input(self.grid_lightness(img) if lightness is None else lightness)
        ab, mask = hinting.hint_maps(points, img.width, img.height, NETWORK_SIZE)  # none: zeros, automatic
        hint_args = (t.to(self.device, self.dtype).contiguous(memory_format=torch.channels_last) for t in (ab, mask))
        return self.net(x, *hint_args).float()
