"""The Python API's call shapes, as README shows them: `models.colorize.load` and `models.style.load` give
engines that take an image (and a style) plus keyword-only plain values, checked for range, so no caller
needs the bot's option objects; on stand-in weights."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from PIL import Image

from models import colorize, style
from tests.conftest import SHARED
from tests.harness import model_config

PHOTO = Image.open(SHARED / "styles" / "the_resevoir_at_poitiers.jpg").convert("L").resize((90, 60))
PAINTING = Image.open(SHARED / "styles" / "starry_night.jpg").convert("RGB").resize((64, 48))


@pytest.fixture(scope="module")
def colorizer(standin_weights):
    return colorize.load("eccv16", weights=standin_weights["eccv16"], device="cpu")


@pytest.fixture(scope="module")
def stylizer(standin_weights, tmp_path_factory):
    return style.load("adain", "cpu", model_config(standin_weights, tmp_path_factory.mktemp("cache")))


def test_colorize_load_gives_a_callable_engine(colorizer):
    assert colorizer(PHOTO).size == PHOTO.size
    out = colorizer(PHOTO, intensity=1.5, reference=None)
    assert out.mode == "RGB" and out.size == PHOTO.size


def test_style_load_gives_a_callable_engine(stylizer):
    out = stylizer(PHOTO, PAINTING, strength=0.5, keep_colors=True, style_key="vangogh", size=48)
    assert out.mode == "RGB" and out.size == (48, 32)
    assert stylizer(PHOTO, PAINTING).size == PHOTO.size  # the photo is smaller than the default size


def test_the_values_are_keyword_only(colorizer, stylizer):
    options = SimpleNamespace(intensity=150, style="vangogh", strength=0.5, keep_colors=False)  # the bot's shape
    with pytest.raises(TypeError):
        colorizer(PHOTO, options)
    with pytest.raises(TypeError):
        colorizer(PHOTO, 1.5)
    with pytest.raises(TypeError):
        stylizer(PHOTO, PAINTING, options)
    with pytest.raises(TypeError):
        stylizer(PHOTO, PAINTING, 0.5)


@pytest.mark.parametrize("intensity", [-0.1, 2.01, 150, float("nan")])
def test_intensity_is_a_fraction_from_0_to_2(colorizer, intensity):
    with pytest.raises(ValueError, match="intensity must be between 0 and 2"):
        colorizer(PHOTO, intensity=intensity)


@pytest.mark.parametrize("strength", [-0.1, 1.01, 60, float("nan")])
def test_strength_is_from_0_to_1(stylizer, strength):
    with pytest.raises(ValueError, match="strength must be between 0 and 1"):
        stylizer(PHOTO, PAINTING, strength=strength)
