"""The colourisation pipeline at full resolution, with stand-in weights of the official layout."""

import io

import numpy as np
import pytest
from PIL import Image
from skimage.color import rgb2lab

from models import colorize, engines
from models.config import ModelConfig
from models.imageio import decode


@pytest.fixture(scope="module", params=["eccv16", "siggraph17"])
def colorizer(request, standin_weights):
    return colorize.load(request.param, weights=standin_weights[request.param], device="cpu")


def _photo(w, h, mode="L"):
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:h, 0:w]
    g = (127 + 100 * np.sin(x / 13) * np.cos(y / 7) + rng.normal(0, 5, (h, w))).clip(0, 255).astype(np.uint8)
    return Image.fromarray(g, "L").convert(mode)


@pytest.mark.parametrize("w,h", [(333, 517), (1024, 64), (256, 256)])
def test_full_resolution_same_size_same_lightness(colorizer, w, h):
    img = _photo(w, h)
    out = colorizer(img)
    assert out.mode == "RGB" and out.size == (w, h)
    l_in = rgb2lab(np.asarray(img.convert("RGB")))[..., 0]
    lab_out = rgb2lab(np.asarray(out))
    assert np.abs(lab_out[..., 0] - l_in).mean() < 0.5  # only 8-bit rounding and gamut clipping
    assert np.hypot(lab_out[..., 1], lab_out[..., 2]).mean() > 1.0  # colour was added


def test_colour_input_keeps_its_lightness(colorizer):
    img = _photo(120, 90, "RGB")
    out = colorizer(img)
    assert np.abs(rgb2lab(np.asarray(out))[..., 0] - rgb2lab(np.asarray(img))[..., 0]).mean() < 0.5


def test_reduced_precision_close_to_float32(standin_weights):
    img = _photo(300, 200)
    a = np.asarray(colorize.load("eccv16", weights=standin_weights["eccv16"], device="cpu",
                                 config=ModelConfig(reduced_precision=False))(img), dtype=float)
    b = np.asarray(colorize.load("eccv16", weights=standin_weights["eccv16"], device="cpu")(img), dtype=float)
    mse = ((a - b) ** 2).mean()
    assert mse == 0 or 10 * np.log10(255**2 / mse) >= 35


def test_unknown_model_and_configured_default(standin_weights):
    with pytest.raises(ValueError, match="unknown model 'pix2pix': choose one of .*eccv16") as err:
        colorize.load("pix2pix")
    assert err.value.code == "engine.unknown" and "siggraph17" in err.value.params["choices"]
    config = engines.config_from_env({"PAINTBOT_COLORIZE_MODEL": "eccv16",
                                      "PAINTBOT_COLORIZE_WEIGHTS": str(standin_weights["eccv16"])})
    assert colorize.load(device="cpu", config=config).name == "eccv16"
    with pytest.raises(ValueError, match="needs the model it is for"):
        engines.config_from_env({"PAINTBOT_COLORIZE_WEIGHTS": str(standin_weights["eccv16"])})


def test_any_decoded_input_works(colorizer):
    for img in (_photo(64, 48).convert("RGBA"), _photo(64, 48).convert("P")):
        buf = io.BytesIO()
        img.save(buf, "PNG")
        assert colorizer(decode(buf.getvalue())).size == (64, 48)


def test_cli(standin_weights, tmp_path):
    from models.cli import main

    src = tmp_path / "old.png"
    _photo(90, 60).save(src)
    out = tmp_path / "new.jpg"
    assert main(["colorize", str(src), "-o", str(out), "--model", "eccv16",
                 "--weights", str(standin_weights["eccv16"])]) == 0
    assert Image.open(out).size == (90, 60)
    assert main(["colorize", str(tmp_path / "missing.png")]) == 1
