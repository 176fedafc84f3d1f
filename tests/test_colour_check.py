"""Whether a photo is already in colour (models/color.py `is_colour_photo`, asked by the worker before it colourises
a photo sent without a command): black-and-white photos, toned ones included (sepia, cyanotype), are not; colour
photos and paintings are."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.color import is_colour_photo
from tests.harness import SHARED_STYLES, gray_photo


def _gray() -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(gray_photo(320, 240))).convert("L")).astype(float) / 255


def _toned(tint_dark, tint_light, quality: int = 80) -> Image.Image:
    """The gray photo printed in a tone: each gray level one colour, from `tint_dark` to `tint_light`, as JPEG."""
    g = _gray()[..., None]
    rgb = (np.array(tint_dark) * (1 - g) + np.array(tint_light) * g).clip(0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue()))


def test_black_and_white_photos_toned_or_not_are_not_in_colour():
    assert not is_colour_photo(Image.open(io.BytesIO(gray_photo())))
    assert not is_colour_photo(Image.open(io.BytesIO(gray_photo())).convert("RGB"))
    assert not is_colour_photo(_toned((15, 10, 0), (255, 210, 145)))  # sepia
    assert not is_colour_photo(_toned((0, 40, 20), (120, 220, 250)))  # cyanotype


@pytest.mark.parametrize("painting", ["starry_night.jpg", "the_scream.jpg", "wave.jpg", "udnie.jpg"])
def test_colour_pictures_are_in_colour(painting):
    assert is_colour_photo(Image.open(Path(SHARED_STYLES) / painting))


def test_a_black_and_white_photo_with_a_colour_stamp_is_still_black_and_white():
    """A small coloured mark (a photographer's stamp, a red date) does not make a photo a colour one."""
    rgb = np.repeat((_gray() * 255).astype(np.uint8)[..., None], 3, axis=2)
    rgb[5:20, 5:40] = (220, 30, 30)
    assert not is_colour_photo(Image.fromarray(rgb))
