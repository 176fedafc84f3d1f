"""sRGB <-> CIE Lab (D65, 2° observer) in torch: vectorised, any device, the same numbers as scikit-image.

Images are float tensors shaped (..., 3, H, W): RGB in 0..1, Lab with L in 0..100.
For 8-bit input the sRGB decoding is a 256-entry table lookup instead of a power per pixel.
"""

from __future__ import annotations

import torch

# scikit-image's matrices and white point (skimage.color.colorconv), so results agree with rgb2lab/lab2rgb.
_XYZ_FROM_RGB = torch.tensor([[0.412453, 0.357580, 0.180423],
                              [0.212671, 0.715160, 0.072169],
                              [0.019334, 0.119193, 0.950227]], dtype=torch.float64)
_RGB_FROM_XYZ = torch.linalg.inv(_XYZ_FROM_RGB)
_WHITE = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64)
# The same, folded with the white point: linear RGB <-> XYZ relative to white (X/Xn, Y/Yn, Z/Zn).
_XYZN_FROM_RGB = (_XYZ_FROM_RGB / _WHITE[:, None]).float()
_RGB_FROM_XYZN = (_RGB_FROM_XYZ * _WHITE[None, :]).float()
_EPS = 0.008856  # (6/29)^3 as skimage writes it
_KAPPA = 7.787


def srgb_to_linear(c: torch.Tensor) -> torch.Tensor:
    return torch.where(c > 0.04045, ((c + 0.055) / 1.055).pow(2.4), c / 12.92)


def linear_to_srgb(c: torch.Tensor) -> torch.Tensor:
    return torch.where(c > 0.0031308, 1.055 * c.clamp_min(0.0031308).pow(1 / 2.4) - 0.055, 12.92 * c)


def _lookup(table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """table[idx] for a 1-D table; index_select is several times faster than indexing or torch.take."""
    return table.to(idx.device).index_select(0, idx.reshape(-1).to(torch.int32)).view(idx.shape)


_LINEAR_LUT = srgb_to_linear(torch.arange(256, dtype=torch.float64) / 255).float()


def linear_from_uint8(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 sRGB (any shape) -> linear float32 of the same shape, by table lookup."""
    return _lookup(_LINEAR_LUT, rgb)


def _f(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t > _EPS, t.clamp_min(_EPS).pow(1 / 3), _KAPPA * t + 16 / 116)


_DELTA = 6 / 29


def _f_inv(t: torch.Tensor) -> torch.Tensor:
    """t^3 above 6/29, below it the cubic's tangent there (the standard linear piece), without a mask."""
    u = t.clamp_min(_DELTA)
    return (u * u * u).add_(t - u, alpha=3 * _DELTA**2)


def _mix(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Apply a 3x3 colour matrix to the channel axis (-3) of x (one matrix product, no copies of x)."""
    *lead, c, h, w = x.shape
    out = torch.matmul(m.to(x.device, x.dtype), x.reshape(*lead, c, h * w))  # .to: no-op when it matches
    return out.reshape(*lead, m.shape[0], h, w)


def linear_rgb_to_lab(lin: torch.Tensor) -> torch.Tensor:
    xyz = _mix(_XYZN_FROM_RGB, lin)
    fx, fy, fz = _f(xyz).unbind(-3)
    return torch.stack((116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)), dim=-3)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in 0..1 (float) or 0..255 (uint8), shape (..., 3, H, W) -> Lab."""
    lin = linear_from_uint8(rgb) if rgb.dtype == torch.uint8 else srgb_to_linear(rgb)
    return linear_rgb_to_lab(lin)


def lightness_from_linear_y(y: torch.Tensor) -> torch.Tensor:
    """CIE L* (0..100) from relative luminance Y (white = 1)."""
    return 116 * _f(y) - 16


def lightness(rgb: torch.Tensor) -> torch.Tensor:
    """L* of sRGB (..., 3, H, W) -> (..., 1, H, W); only luminance is computed, no a*/b*."""
    lin = linear_from_uint8(rgb) if rgb.dtype == torch.uint8 else srgb_to_linear(rgb)
    y = _mix(_XYZN_FROM_RGB[1:2], lin)
    return lightness_from_linear_y(y)


_GRAY_L_LUT = lightness_from_linear_y(_LINEAR_LUT.double()).float()


def lightness_from_gray_uint8(gray: torch.Tensor) -> torch.Tensor:
    """L* of an 8-bit grayscale image (R = G = B): one table lookup per pixel."""
    return _lookup(_GRAY_L_LUT, gray)


def lab_to_linear_rgb(lab: torch.Tensor) -> torch.Tensor:
    return _mix(_RGB_FROM_XYZN, _lab_to_xyzn(*lab.unbind(-3)))


def _lab_to_xyzn(L: torch.Tensor, a: torch.Tensor, b: torch.Tensor, clip_z: bool = True) -> torch.Tensor:
    """L, a, b (each ..., H, W) -> XYZ relative to the white point, stacked on axis -3. `clip_z`: f(Z) >= 0, as
    scikit-image; OpenCV lets Z go below zero for strong yellows beyond the gamut (they differ only there)."""
    fy = (L + 16) / 116
    fz = fy - b / 200
    return _f_inv(torch.stack((a / 500 + fy, fy, fz.clamp_min(0) if clip_z else fz), dim=-3))


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Lab (..., 3, H, W) -> sRGB in 0..1, clipped to the gamut as skimage.color.lab2rgb does."""
    return linear_to_srgb(lab_to_linear_rgb(lab)).clamp(0, 1)


# sRGB encoding straight to 8 bits by table: 2^16 steps over linear 0..1 keep every output within
# half a level of the exact curve (its steepest slope is 12.92), and avoid a power per pixel.
_ENCODE_STEPS = 65535
_ENCODE_LUT = (linear_to_srgb(torch.linspace(0, 1, _ENCODE_STEPS + 1, dtype=torch.float64)) * 255
               + 0.5).clamp(0, 255).to(torch.uint8)


def lab_to_rgb_uint8(lightness: torch.Tensor, ab: torch.Tensor, rows: int = 32, clip_z: bool = True) -> torch.Tensor:
    """L (1, H, W) and ab (2, H, W) -> 8-bit sRGB planes (3, H, W), gamut-clipped: the fast path for photos.

    Works through `rows` image rows at a time so the intermediates stay in the CPU cache
    (several times faster than whole-image tensors on a 3 MP photo). Planar output goes to PIL
    with Image.merge, which interleaves faster than any strided copy here. `clip_z=False` follows
    OpenCV's 8-bit Lab -> RGB (within one level of it) where scikit-image clips f(Z) at zero.
    """
    _, h, w = lightness.shape
    lut = _ENCODE_LUT.to(ab.device)
    m = (_RGB_FROM_XYZN * _ENCODE_STEPS).to(ab.device, ab.dtype)  # straight to table steps
    out = torch.empty((3, h, w), dtype=torch.uint8, device=ab.device)
    for top in range(0, h, rows):
        rs = slice(top, top + rows)
        steps = _mix(m, _lab_to_xyzn(lightness[0, rs], ab[0, rs], ab[1, rs], clip_z))
        out[:, rs] = _lookup(lut, steps.clamp_(0, _ENCODE_STEPS).add_(0.5))
    return out


# Below this mean chroma (C*ab, CIE units) a photo counts as black and white: a scan of a gray print carries
# a little noise and tint (about 1-3); a sepia or faded colour photo has more (8 and up) and keeps its colour.
BLACK_AND_WHITE_CHROMA = 5.0


def mean_chroma(rgb: torch.Tensor) -> float:
    """Mean C*ab = sqrt(a*² + b*²) of sRGB (3, H, W), uint8 or float 0..1."""
    lab = rgb_to_lab(rgb)
    return float(torch.hypot(lab[1], lab[2]).mean())


# A photo is in colour when, once any toning that follows its lightness is taken away (sepia, cyanotype,
# selenium: each gray level one tint), the chroma left over (CIE ab length) exceeds this at its 90th
# percentile. Toned and gray photos leave under 3, colour photos and paintings over 10 (tests/test_colour_check.py).
COLOUR_RESIDUAL_CHROMA = 6.0
COLOUR_CHECK_SIDE = 256  # pixels of the long side the check looks at


def is_colour_photo(img) -> bool:
    """Whether a PIL image is already in colour: its chroma cannot be explained by a tint per lightness
    (a quadratic in L fitted to a and b). A black-and-white photo, toned or not, is not."""
    import numpy as np

    if img.mode in ("1", "L", "LA", "I", "I;16", "F"):
        return False
    small = img.convert("RGB")
    small.thumbnail((COLOUR_CHECK_SIDE, COLOUR_CHECK_SIDE))
    lab = rgb_to_lab(torch.from_numpy(np.asarray(small).copy()).permute(2, 0, 1)).reshape(3, -1).double()
    lightness, ab = lab[0] / 100, lab[1:].T
    basis = torch.stack([torch.ones_like(lightness), lightness, lightness * lightness], 1)
    tint = basis @ torch.linalg.lstsq(basis, ab).solution
    left = torch.linalg.vector_norm(ab - tint, dim=1)
    return float(torch.quantile(left, 0.9)) > COLOUR_RESIDUAL_CHROMA
