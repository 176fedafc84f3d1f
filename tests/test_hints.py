"""SIGGRAPH17's colour hints against the authors' own code (../shared/weights/golden/SIGGRAPH17_HINTS.md), with
the shared stand-in weights (seed 1701) in float32, and every documented encoding mistake put back into our
encoder, one at a time, shown to break the comparison.

The golden hint set is given on the 256 grid; the hints here are full-resolution clicks on the 400x267
photo that map onto those grid points, so the full-resolution mapping is part of what is compared. The
golden colours are given as ab, so the network is fed `ColourPoint`s (position + ab); turning a picked
sRGB colour into ab (snapping it into the gamut at the clicked pixel's L) is tested on its own below.
"""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage.color import lab2rgb, rgb2lab

from models import color
from models.colorize import hints as hinting
from models.colorize.framing import ColorizeEngine
from models.colorize.hints import MAX_HINTS, ColourPoint, Hint
from models.colorize.zhang import ECCV16Engine, SIGGRAPH17Engine
from models.config import ModelConfig
from models.engine import Engine
from tests.conftest import SHARED

GOLDEN = SHARED / "weights" / "golden"
sys.path.insert(0, str(SHARED / "weights"))
from standin import layout, make_standin  # noqa: E402

AB_TOL, RGB_TOL = 1e-3, 1e-4  # SIGGRAPH17_HINTS.md section 5


def _engine(cls, seed, tmp_path_factory, reduced_precision=False):
    path = tmp_path_factory.mktemp("golden") / cls.files[0].filename
    torch.save({k: torch.from_numpy(v) for k, v in make_standin(layout("official.json", cls.name), seed).items()},
               path)
    config = ModelConfig(device="cpu", reduced_precision=reduced_precision,
                         weight_overrides={cls.files[0].filename: path})
    return cls(torch.device("cpu"), config)


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> SIGGRAPH17Engine:
    """float32, for the goldens."""
    torch.set_num_threads(2)
    return _engine(SIGGRAPH17Engine, 1701, tmp_path_factory)


@pytest.fixture(scope="module")
def fast(tmp_path_factory) -> SIGGRAPH17Engine:
    """The worker's reduced precision where the CPU has it (bf16: several times faster), for what is no golden."""
    torch.set_num_threads(2)
    return _engine(SIGGRAPH17Engine, 1701, tmp_path_factory, reduced_precision=True)


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.open(GOLDEN / "zhang_coffee_gray_400x267.png")


def golden_points(width: int, height: int) -> list[ColourPoint]:
    """The golden hints (top-left corners h, w of 5x5 patches on the 256 grid) as full-resolution clicks: the
    smallest pixel whose nearest grid point is the patch centre (h + 2, w + 2)."""
    points = []
    for h, w, p, a, b in np.load(GOLDEN / "siggraph17_hints_points.npy"):
        assert p == 5
        row, col = int(h) + 2, int(w) + 2
        points.append(ColourPoint(-(-col * width // 256), -(-row * height // 256), float(a), float(b)))
    return points


def hinted_ab(engine, photo) -> np.ndarray:
    with torch.inference_mode():
        return engine.predict_ab_at(photo, golden_points(*photo.size)).numpy()


def float_rgb(engine, photo, ab_small: np.ndarray) -> np.ndarray:
    """Our framing in float (the photo's own L, ab upsampled as the join does), to RGB in float64."""
    w, h = photo.size
    ab = engine.upsample_ab(torch.from_numpy(ab_small), h, w)
    lab = torch.cat((engine.lightness(photo), ab)).double()
    return color.lab_to_rgb(lab).permute(1, 2, 0).numpy()


def postprocess_tens(ab_small: np.ndarray) -> np.ndarray:
    """The reference's join (richzhang/colorization util.postprocess_tens) of the golden L with `ab_small`."""
    l_orig = torch.from_numpy(np.load(GOLDEN / "zhang_pipe_L_orig.npy"))
    ab = F.interpolate(torch.from_numpy(ab_small), size=l_orig.shape[2:], mode="bilinear")
    lab = torch.cat((l_orig, ab), dim=1)[0].permute(1, 2, 0).numpy().astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skimage clipping negative Z, as the reference run did
        return lab2rgb(lab)


# --- golden parity ----------------------------------------------------------------------------------

def test_full_resolution_clicks_become_the_golden_hint_maps(photo):
    points = golden_points(*photo.size)
    for p, (h, w, *_ ) in zip(points, np.load(GOLDEN / "siggraph17_hints_points.npy")):
        assert hinting.grid_point(p.x, p.y, *photo.size, 256) == (h + 2, w + 2)
        assert int(p.x * 256 / photo.width) == w + 2 and int(p.y * 256 / photo.height) == h + 2  # the GUI's rule
    ab, mask = hinting.hint_maps(points, *photo.size, 256)
    assert np.array_equal(ab.numpy(), np.load(GOLDEN / "siggraph17_hints_ab_cie.npy"))
    assert np.array_equal(mask.numpy(), np.load(GOLDEN / "siggraph17_hints_mask01.npy"))


def test_hint_mode_matches_the_released_weights_convention(engine, photo):
    """Convention (a), richzhang/colorization: ab / 110 and an uncentred 0/1 mask."""
    ab = hinted_ab(engine, photo)
    golden = np.load(GOLDEN / "siggraph17_hints_a_out_ab.npy")
    assert np.abs(ab - golden).max() <= AB_TOL
    rgb = float_rgb(engine, photo, ab)
    assert np.abs(rgb - postprocess_tens(golden)).max() <= RGB_TOL
    with torch.inference_mode():  # the 8-bit result the person gets: within a level
        result = np.asarray(engine.join(photo, torch.from_numpy(ab)), dtype=np.float64)
    assert np.abs(result - postprocess_tens(golden) * 255).max() <= 1.0


def test_the_retrained_convention_is_reproduced_by_centring_the_mask_alone(engine, photo, monkeypatch):
    """Convention (b), colorization-pytorch (mask - 0.5): the first convolution sees exactly b_net_in and the
    output is b_out_ab / b_rgb; so the two golden sets differ in the mask's centring and nothing else."""
    monkeypatch.setattr(hinting, "MASK_OFFSET", 0.5)
    seen = []
    handle = engine.net.model1.register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))
    try:
        ab = hinted_ab(engine, photo)
    finally:
        handle.remove()
    assert np.abs(seen[0].numpy() - np.load(GOLDEN / "siggraph17_hints_b_net_in.npy")).max() <= 1e-6
    assert np.abs(ab - np.load(GOLDEN / "siggraph17_hints_b_out_ab.npy")).max() <= AB_TOL
    assert np.abs(float_rgb(engine, photo, ab) - np.load(GOLDEN / "siggraph17_hints_b_rgb.npy")).max() <= RGB_TOL


def test_no_hints_is_todays_automatic_result_exactly(fast, photo):
    """(tests/test_zhang_golden.py holds the automatic result to its goldens.)"""
    assert np.array_equal(np.asarray(fast.colorize_hints(photo, [], intensity=1.5)),
                          np.asarray(fast(photo, intensity=1.5)))


# --- each documented pitfall, put back, fails the golden comparison -----------------------------------

def _paint_full_resolution(mode: str):
    """The mistake of drawing hints on the full-size image (patch scaled up) and resizing the maps to 256."""
    def hint_maps(points, width, height, size):
        ab, mask = torch.zeros((1, 2, height, width)), torch.zeros((1, 1, height, width))
        rx, ry = hinting.PATCH * width // size // 2, hinting.PATCH * height // size // 2
        for p in points:
            rows, cols = slice(max(p.y - ry, 0), p.y + ry + 1), slice(max(p.x - rx, 0), p.x + rx + 1)
            ab[0, 0, rows, cols], ab[0, 1, rows, cols], mask[0, 0, rows, cols] = p.a, p.b, 1
        kw = {"align_corners": False} if mode == "bilinear" else {}
        return (F.interpolate(ab, size=(size, size), mode=mode, **kw),
                F.interpolate(mask, size=(size, size), mode=mode, **kw))
    return hint_maps


def _transposed(x, y, width, height, size):
    return x * size // width, y * size // height  # (x, y) where (row, column) belongs


PITFALLS = {  # SIGGRAPH17_HINTS.md section 6: (what is put back, the golden it must fail)
    "mask centred (-0.5) with hints": ({"MASK_OFFSET": 0.5}, "a"),
    "mask centred (-0.5) in automatic mode": ({"MASK_OFFSET": 0.5}, "auto"),
    "ab not divided by 110": ({"AB_NORM": 1.0}, "a"),
    "ab mapped to 0..1 as (ab + 110) / 220": ({"ab_input": lambda ab: torch.where(ab != 0, (ab + 110) / 220, 0)}, "a"),
    "ab / 128": ({"AB_NORM": 128.0}, "a"),
    "one pixel instead of the 5x5 patch": ({"PATCH": 1}, "a"),
    "positions swapped (x, y) <-> (y, x)": ({"grid_point": _transposed}, "a"),
    "drawn at full resolution, resized nearest": ({"hint_maps": _paint_full_resolution("nearest")}, "a"),
    "drawn at full resolution, resized bilinear": ({"hint_maps": _paint_full_resolution("bilinear")}, "a"),
}


@pytest.mark.parametrize("pitfall", list(PITFALLS))
def test_each_documented_pitfall_fails_the_golden(engine, photo, monkeypatch, pitfall):
    changes, golden = PITFALLS[pitfall]
    for name, value in changes.items():
        monkeypatch.setattr(hinting, name, value)
    if golden == "auto":
        with torch.inference_mode():
            ab = engine.predict_ab(photo).numpy()
        expected = np.load(GOLDEN / "siggraph17_pipe_out_ab.npy")
    else:
        ab = hinted_ab(engine, photo)
        expected = np.load(GOLDEN / "siggraph17_hints_a_out_ab.npy")
    assert np.abs(ab - expected).max() > 100 * AB_TOL  # the smallest documented one (ab / 128) is 9.85
    assert np.abs(float_rgb(engine, photo, ab) - postprocess_tens(expected)).max() > RGB_TOL


# --- from a tap to the network's input ----------------------------------------------------------------

def _authors_snap(lightness: float, rgb) -> tuple[int, int, int]:
    """The authors' GUI snap (lab_gamut.snap_ab) restated with scikit-image, to check ours against."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lab = rgb2lab(np.array(rgb, np.uint8)[None, None]).ravel()
        for _ in range(20):
            lab[0] = lightness
            old = lab
            lab = rgb2lab(np.clip(lab2rgb(lab[None, None]), 0, 1)).ravel()
            if np.abs(lab - old).sum() < 1:
                break
        return tuple(int(v) for v in np.round(np.clip(lab2rgb(lab[None, None]).ravel(), 0, 1) * 255))


@pytest.mark.parametrize("lightness", [8.0, 35.0, 52.5, 78.0, 96.0])
@pytest.mark.parametrize("rgb", [(255, 0, 0), (0, 0, 255), (40, 200, 60), (250, 240, 30), (128, 128, 128),
                                 (192, 128, 64)])
def test_a_picked_colour_is_snapped_into_the_gamut_at_the_pixels_lightness(lightness, rgb):
    snapped = hinting.snap(lightness, rgb)
    ours, authors = np.array(snapped), np.array(_authors_snap(lightness, rgb))
    assert np.abs(ours - authors).max() <= 1  # float rounding at a .5 may differ by one level
    assert abs(hinting.lab_of(snapped)[0] - lightness) < 1.5  # it exists at (about) that lightness


def test_a_colour_already_in_the_gamut_at_its_own_lightness_stays(photo):
    for rgb in [(192, 128, 64), (90, 120, 160), (128, 128, 128)]:
        assert hinting.snap(hinting.lab_of(rgb)[0], rgb) == rgb


def test_a_hint_becomes_the_snapped_colours_ab_at_the_lightness_the_network_sees_there(engine, photo):
    """The GUI snaps at the L of the 256 image at the click's grid cell: the network's own input L."""
    hint = Hint(x=150, y=40, rgb=(0, 60, 255))
    row, col = hinting.grid_point(150, 40, *photo.size, 256)
    for img in (photo, photo.convert("RGB")):
        grid = engine.grid_lightness(img)[0]
        (point,) = hinting.colour_points([hint], *img.size, grid)
        lightness = hinting.tap_lightness(grid, 150, 40, *img.size)
        assert abs(lightness - float(np.load(GOLDEN / "zhang_pipe_L_rs.npy")[0, 0, row, col])) < 1e-3
        assert lightness == engine.tap_lightness(img, 150, 40)
        _, a, b = hinting.lab_of(hinting.snap(lightness, hint.rgb))
        assert (point.x, point.y) == (150, 40) and math.isclose(point.a, a) and math.isclose(point.b, b)


def test_patches_are_cut_at_the_borders_and_later_hints_paint_over_earlier_ones():
    w, h = 400, 267
    points = [ColourPoint(0, 0, 10, 20), ColourPoint(w - 1, h - 1, -5, 5), ColourPoint(2, 2, 30, -30)]
    assert [hinting.grid_point(p.x, p.y, w, h, 256) for p in points] == [(0, 0), (255, 255), (1, 1)]
    ab, mask = hinting.hint_maps(points, w, h, 256)
    assert mask[0, 0, :3, :3].sum() == 9 and mask[0, 0, 253:, 253:].sum() == 9 and mask.sum() == 16 + 9
    assert ab[0, 0, 0, 0] == 30 and ab[0, 1, 3, 3] == -30 and ab[0, 0, 255, 255] == -5
    assert mask[0, 0, 255, 0] == 0 and mask[0, 0, 0, 255] == 0  # nothing wraps round


def test_hints_are_checked(fast, photo, tmp_path_factory):
    for bad in [dict(x=-1, y=0, rgb=(0, 0, 0)), dict(x=0, y=1.5, rgb=(0, 0, 0)), dict(x=0, y=0, rgb=(0, 0, 256)),
                dict(x=0, y=0, rgb=(0, 0)), dict(x=True, y=0, rgb=(0, 0, 0))]:
        with pytest.raises(ValueError):
            Hint(**bad)
    assert Hint(1, 2, [3, 4, 5]).rgb == (3, 4, 5)  # a list (as JSON gives it) is kept as a tuple
    with pytest.raises(ValueError, match="outside the 400x267 photo"):
        fast.colorize_hints(photo, [Hint(400, 10, (255, 0, 0))])
    with pytest.raises(ValueError, match=f"at most {MAX_HINTS}"):
        fast.preview(photo, [Hint(i % 400, i // 400, (255, 0, 0)) for i in range(MAX_HINTS + 1)])
    assert SIGGRAPH17Engine.takes_hints and not ECCV16Engine.takes_hints
    assert not Engine.takes_hints and not ColorizeEngine.takes_hints
    eccv16 = _engine(ECCV16Engine, 1601, tmp_path_factory)
    with pytest.raises(ValueError, match="takes no colour hints"):
        eccv16.colorize_hints(photo, [Hint(10, 10, (255, 0, 0))])
    for wrong in (dict(x=400, y=10), dict(x=10, y=10, k=0), dict(x=10, y=10, k=hinting.MAX_SUGGESTIONS + 1)):
        with pytest.raises(ValueError):
            fast.suggest(photo, **wrong)
    with pytest.raises(ValueError):
        fast.preview(photo, [], size=0)


# --- preview and suggestions --------------------------------------------------------------------------

HINTS = [Hint(200, 100, (200, 40, 30)), Hint(60, 220, (30, 90, 200)), Hint(330, 40, (60, 170, 60))]


def test_a_preview_is_the_result_made_small(fast, photo):
    """The same network run as the full result (the photo's own 256 grid), joined with the photo made small."""
    small = fast.preview(photo, HINTS)
    assert small.size == (256, 171) and small.mode == "RGB"
    with torch.inference_mode():
        ab = fast.predict_ab(photo, hints=HINTS)
        same = fast.join(photo.resize(small.size, Image.BICUBIC, reducing_gap=2.0), ab)
    assert np.array_equal(np.asarray(small), np.asarray(same))
    assert not np.array_equal(np.asarray(small), np.asarray(fast.preview(photo, [])))
    assert fast.preview(photo, HINTS, size=512).size == photo.size  # never enlarged
    assert fast.preview(photo, HINTS, size=100).size == (100, 67)


def _delta_e(rgb1, rgb2) -> float:
    return math.dist(hinting.lab_of(rgb1), hinting.lab_of(rgb2))


PIXELS = [(200, 100), (60, 220), (10, 260), (399, 0), (123, 45)]


@pytest.mark.parametrize("hints", [[], HINTS], ids=["automatic", "hinted"])
def test_suggestions_start_with_the_results_colour_and_are_distinct_and_in_gamut(fast, photo, hints):
    with torch.inference_mode():  # the colours the result has: the whole image upsampled, as the join does
        ab_small = fast.predict_ab(photo, hints=hints)
        ab = fast.upsample_ab(ab_small, photo.height, photo.width)
    for x, y in PIXELS:
        assert np.allclose(fast.ab_at(ab_small, x, y, *photo.size), ab[:, y, x], atol=1e-3)
        lightness = fast.tap_lightness(photo, x, y)
        swatches = hinting.suggestions(lightness, float(ab[0, y, x]), float(ab[1, y, x]), k=6)
        assert 1 <= len(swatches) <= 6 and all(len(s) == 3 and all(0 <= c <= 255 for c in s) for s in swatches)
        result = hinting.snap_lab(lightness, float(ab[0, y, x]), float(ab[1, y, x]))
        assert _delta_e(swatches[0], result) < 1.0  # settled (below): moved less than a visible difference
        assert all(_delta_e(s, t) >= hinting.SUGGESTION_MIN_DIFFERENCE
                   for i, s in enumerate(swatches) for t in swatches[:i])
        assert all(abs(hinting.lab_of(s)[0] - lightness) < 1.5 for s in swatches)  # in gamut at that L
        assert all(hinting.snap(lightness, s) == s for s in swatches)  # picked,
        # a suggestion reaches the network as it was shown
        if 30 < lightness < 80:  # mid-tones have room for every hue
            assert len(swatches) == 6 and max(abs(v) for v in hinting.lab_of(swatches[-1])[1:]) < 1.5  # neutral last
    x, y = PIXELS[0]
    assert fast.suggest(photo, x, y, k=4, hints=hints) == hinting.suggestions(
        fast.tap_lightness(photo, x, y), *fast.ab_at(ab_small, x, y, *photo.size), k=4)
    assert len(hinting.suggestions(50.0, 10.0, 10.0, k=3)) == 3 and len(hinting.suggestions(50.0, 10.0, 10.0, k=1)) == 1


def test_suggestions_near_white_are_fewer_but_still_distinct():
    swatches = hinting.suggestions(99.0, 20.0, 30.0, k=6)
    assert 1 <= len(swatches) < 6
    assert all(_delta_e(s, t) >= hinting.SUGGESTION_MIN_DIFFERENCE for i, s in enumerate(swatches)
               for t in swatches[:i])
    with pytest.raises(ValueError):
        hinting.suggestions(50.0, 0.0, 0.0, k=0)
