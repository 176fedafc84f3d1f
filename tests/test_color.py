"""sRGB <-> Lab in torch agrees with scikit-image."""

import numpy as np
import pytest
import torch
from skimage.color import lab2rgb, rgb2lab

from models import color


def _de76(a, b):
    return np.sqrt(((a - b) ** 2).sum(-1))


def test_rgb_to_lab_matches_skimage_uint8_and_float():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (50, 60, 3), dtype=np.uint8)
    ref = rgb2lab(rgb)
    t = torch.from_numpy(rgb).permute(2, 0, 1)
    assert _de76(color.rgb_to_lab(t).permute(1, 2, 0).numpy(), ref).mean() < 0.5
    f = t.float() / 255
    assert _de76(color.rgb_to_lab(f).permute(1, 2, 0).numpy(), ref).max() < 0.01
    assert np.abs(color.lightness(t)[0].numpy() - ref[..., 0]).max() < 0.01


@pytest.mark.filterwarnings("ignore:Conversion from CIE-LAB")  # skimage clipping negative Z, as we do
def test_lab_to_rgb_matches_skimage_including_out_of_gamut():
    rng = np.random.default_rng(1)
    lab = np.stack([rng.uniform(0, 100, (40, 40)), rng.uniform(-110, 110, (40, 40)),
                    rng.uniform(-110, 110, (40, 40))], -1)
    ref = lab2rgb(lab)
    ours = color.lab_to_rgb(torch.from_numpy(lab).permute(2, 0, 1).float()).permute(1, 2, 0).numpy()
    assert _de76(rgb2lab(ours), rgb2lab(ref)).mean() < 0.5
    # The 8-bit fast path is within one level of the exact result.
    lt = torch.from_numpy(lab).permute(2, 0, 1).float()
    fast = color.lab_to_rgb_uint8(lt[:1], lt[1:], rows=7).permute(1, 2, 0).numpy().astype(int)
    assert np.abs(fast - np.round(ref * 255)).max() <= 1


def test_batched_shapes_and_gray_lut():
    x = torch.rand(2, 3, 8, 9)
    assert color.rgb_to_lab(x).shape == (2, 3, 8, 9)
    assert torch.allclose(color.lab_to_rgb(color.rgb_to_lab(x)), x, atol=1e-4)
    g = torch.arange(256, dtype=torch.uint8)
    ref = rgb2lab(np.stack([g.numpy()] * 3, -1)[None].astype(np.uint8))[0, :, 0]
    assert np.abs(color.lightness_from_gray_uint8(g).numpy() - ref).max() < 1e-3
