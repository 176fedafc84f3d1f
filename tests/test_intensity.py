"""Colour intensity (`/colorize 150`, `--intensity`, the More/Less colour buttons) through the shared Lab
framing of every colouriser: 0 % leaves the lightness alone, 200 % gives more chroma than 100 %, and what
is pushed out of the sRGB gamut is clamped (each pixel as scikit-image's lab2rgb clips it).

eccv16, siggraph17 and ddcolor-tiny run for real on stand-in weights; every other registered colouriser is
held to the same framing by checking it neither replaces the shared call nor the join."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import lab2rgb, rgb2lab

from models import colorize, engines
from models.colorize import ddcolor
from models.colorize.framing import ColorizeEngine
from models.config import ModelConfig
from tests.conftest import SHARED
from tests.harness import chroma, gray_photo, lightness, write_shared_standin

sys.path.insert(0, str(SHARED / "weights"))
from standin import layout  # noqa: E402


def _photo(w=96, h=72) -> Image.Image:
    return Image.open(io.BytesIO(gray_photo(w, h))).convert("L")


@pytest.fixture(scope="module", params=["eccv16", "siggraph17", "ddcolor-tiny"])
def colorizer(request, standin_weights, tmp_path_factory):
    if request.param == "ddcolor-tiny":
        folder = tmp_path_factory.mktemp("ddcolor-intensity")
        wf = ddcolor.DDColorTinyEngine.files[0]
        path = write_shared_standin(folder / wf.filename, layout("ddcolor.json", "tiny"), 2301)
        config = ModelConfig(device="cpu", cache_dir=folder, weight_overrides={wf.filename: path},
                             engine_settings={"ddcolor-tiny": ddcolor.DDColorSettings(input_size=64)})
        return engines.load("ddcolor-tiny", "colorize", "cpu", config)
    return colorize.load(request.param, weights=standin_weights[request.param], device="cpu")


def test_zero_gives_the_lightness_only(colorizer):
    img = _photo()
    out = colorizer(img, intensity=0)
    lab = rgb2lab(np.asarray(out))
    assert np.abs(lab[..., 1:]).max() < 1.0, "a* and b* stay (within 8-bit rounding) at zero"
    assert np.abs(lab[..., 0] - lightness(img)).mean() < 0.5


def test_double_gives_more_chroma_than_full_clamped_to_the_gamut(colorizer):
    img = _photo()
    full, double = colorizer(img, intensity=1.0), colorizer(img, intensity=2.0)
    assert chroma(double).mean() > chroma(full).mean() * 1.3
    # What 200 % asks for is the predicted colour doubled; where that leaves the gamut it is clamped, never
    # wrapped round or overflowed: each pixel as lab2rgb clips it, within a level or two of 8-bit rounding.
    with torch.inference_mode():
        ab, lum = colorizer.predict_ab(img).float(), colorizer.lightness(img)
    joined = colorizer.join(img, ab, 2.0)
    with torch.inference_mode():
        wanted = np.concatenate([lum.numpy(), 2 * _upsampled(colorizer, ab, img.size)], axis=0).transpose(1, 2, 0)
    expected = np.round(lab2rgb(wanted) * 255)
    assert np.abs(np.asarray(joined, dtype=float) - expected).max() <= 2
    assert np.asarray(double).dtype == np.uint8 and np.asarray(double).max() <= 255


def test_colour_pushed_out_of_the_gamut_is_clamped(colorizer):
    """Strong predicted colour (a saturated red and blue, as a trained network gives on a flower) doubled
    lies far outside sRGB: the join clamps it like lab2rgb, every value a valid 8-bit level."""
    img = _photo(64, 48)
    ab = torch.zeros(1, 2, 12, 16)
    ab[:, 0, :, :8], ab[:, 1, :, :8] = 70.0, 50.0  # red
    ab[:, 0, :, 8:], ab[:, 1, :, 8:] = 20.0, -90.0  # blue
    with torch.inference_mode():
        lum = colorizer.lightness(img)
        wanted = np.concatenate([lum.numpy(), 2 * _upsampled(colorizer, ab, img.size)], axis=0).transpose(1, 2, 0)
    out = np.asarray(colorizer.join(img, ab, 2.0), dtype=float)
    assert np.abs(out - np.round(lab2rgb(wanted) * 255)).max() <= 2
    assert out.min() >= 0 and out.max() <= 255 and (out == 255).any() and (out == 0).any(), "clamped at both ends"
    assert chroma(Image.fromarray(out.astype(np.uint8))).mean() > chroma(colorizer.join(img, ab, 1.0)).mean()


def _upsampled(engine, ab, size):
    import torch.nn.functional as F

    w, h = size
    if engine.ab_resize == "nearest":
        return F.interpolate(ab, size=(h, w), mode="nearest")[0].numpy()
    return F.interpolate(ab, size=(h, w), mode=engine.ab_resize, align_corners=False)[0].numpy()


def test_intensity_is_monotonic(colorizer):
    img = _photo()
    means = [chroma(colorizer(img, intensity=i)).mean() for i in (0, 0.5, 1.0, 1.5)]
    assert means == sorted(means) and means[0] < 0.5


@pytest.mark.parametrize("engine", [e for e in engines.of_family("colorize")], ids=lambda e: e.name)
def test_every_colouriser_goes_through_the_shared_framing(engine):
    """Intensity is applied in ColorizeEngine.__call__/join: an engine that replaced either would skip it."""
    assert issubclass(engine, ColorizeEngine)
    assert engine.__call__ is ColorizeEngine.__call__ and engine.join is ColorizeEngine.join


def test_cli_intensity_zero(standin_weights, tmp_path, monkeypatch):
    from models import cli

    config = ModelConfig(device="cpu", cache_dir=tmp_path / "cache", colorize_engine="eccv16",
                         weight_overrides={"colorization_release_v2-9b330a0b.pth": standin_weights["eccv16"]})
    monkeypatch.setattr(cli, "_config", lambda: config)
    src, out = tmp_path / "old.png", tmp_path / "new.png"
    src.write_bytes(gray_photo(80, 60, fmt="PNG"))
    assert cli.main(["colorize", str(src), "--model", "eccv16", "--intensity", "0", "-o", str(out)]) == 0
    assert chroma(Image.open(out)).max() < 1.5
