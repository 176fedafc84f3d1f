"""Exemplar colourisation on synthetic photos whose true colours are known.

The scenes are coloured shapes on a textured neutral ground; the target is the same shapes moved
elsewhere, made gray. Colours are given in CIE Lab so the expected ab is exact.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage.color import lab2rgb, rgb2lab

from models import color
from models.colorize import exemplar

# name: (L, a, b) and radius in pixels; each has a lightness of its own, as real objects mostly do.
SHAPES = {"red": ((52, 62, 42), 22), "blue": ((38, 18, -58), 20), "green": ((72, -52, 48), 18),
          "yellow": ((88, -4, 80), 6)}  # yellow: a small object, 12 px across
GROUND_L = 62


@pytest.fixture(scope="module")
def colorizer():
    return exemplar.load("cpu")


def scene(size, centres, gray=False):
    """An 8-bit photo (w, h = size) of SHAPES (discs) at `centres` on a lightly textured gray ground."""
    w, h = size
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:h, 0:w]
    lab = np.zeros((h, w, 3))
    lab[..., 0] = GROUND_L + 6 * np.sin(x / 9) * np.cos(y / 13) + rng.normal(0, 1.5, (h, w))
    for name, (cx, cy) in centres.items():
        (lum, a, b), r = SHAPES[name]
        disc = (x - cx) ** 2 + (y - cy) ** 2 <= r * r
        lab[disc] = (lum, a, b)
    rgb = (lab2rgb(lab) * 255 + 0.5).astype(np.uint8)
    img = Image.fromarray(rgb)
    return img.convert("L") if gray else img


REF_CENTRES = {"red": (50, 50), "blue": (170, 60), "green": (70, 150), "yellow": (180, 160)}
TARGET_CENTRES = {"red": (175, 140), "blue": (60, 45), "green": (150, 50), "yellow": (40, 150)}


def join(img, ab):
    """The colourisation framing's join: ab upsampled to the photo's size, with the photo's own lightness."""
    lum = color.lightness(torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1))
    ab = F.interpolate(ab, size=lum.shape[1:], mode="bilinear", align_corners=False)[0]
    return Image.merge("RGB", [Image.fromarray(p) for p in color.lab_to_rgb_uint8(lum, ab).numpy()])


def inner_error(ab, name, centre):
    """Median error (ab units) over the inner half (in radius) of the shape `name` at `centre`."""
    (_, a, b), radius = SHAPES[name]
    h, w = ab.shape[-2:]
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    inner = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 <= (radius / 2) ** 2
    return torch.hypot(ab[0, 0] - a, ab[0, 1] - b)[inner].median().item()


def test_shapes_take_their_colours_from_the_reference(colorizer):
    reference = scene((240, 200), REF_CENTRES)
    target = scene((230, 190), TARGET_CENTRES, gray=True)
    ab = colorizer.predict_ab(target, reference)
    for name, centre in TARGET_CENTRES.items():
        # a wrong shape's colour would be 60 to 140 units away, gray 70 to 80
        assert inner_error(ab, name, centre) < 3, name
    ground = ab[0, :, 100:104, 100:104]  # between the shapes: the reference's ground is gray
    assert torch.hypot(*ground).max() < 8


def test_photos_larger_than_the_filter_size_keep_their_size_and_colours(colorizer, monkeypatch):
    """Above FILTER_SIZE the guided filter runs reduced and its coefficients are applied at full size:
    with its radius reduced alike, the colours are those of the filter run at full size."""
    reference = scene((240, 200), REF_CENTRES)
    target = scene((230, 190), TARGET_CENTRES, gray=True)
    full = colorizer.predict_ab(target, reference)
    monkeypatch.setattr(exemplar, "FILTER_SIZE", 115)  # half size: the 230x190 scene is a large photo
    monkeypatch.setattr(exemplar, "GUIDE_RADIUS", exemplar.GUIDE_RADIUS // 2)
    ab = colorizer.predict_ab(target, reference)
    assert ab.shape == full.shape == (1, 2, 190, 230)
    for name, centre in TARGET_CENTRES.items():
        assert inner_error(ab, name, centre) < 6, name  # the 12 px yellow is 6 px where it is filtered
    assert (ab - full).abs().mean() < 0.5  # ab units


def test_uniform_reference_gives_its_colour_everywhere(colorizer):
    rgb = (205, 120, 60)
    reference = Image.new("RGB", (120, 90), rgb)
    target = scene((200, 150), TARGET_CENTRES, gray=True)
    ab = colorizer.predict_ab(target, reference)[0].numpy()
    want = rgb2lab(np.array([[rgb]], dtype=np.uint8))[0, 0, 1:]
    assert np.abs(ab - want[:, None, None]).max() < 0.5  # ab units: float32 rounding only


@pytest.mark.parametrize("size,mode", [((333, 217), "L"), ((97, 401), "RGB")])
def test_joined_result_keeps_size_and_lightness(colorizer, size, mode):
    target = scene(size, {"red": (40, 40)}).convert(mode)
    ab = colorizer.predict_ab(target, scene((160, 120), REF_CENTRES))
    assert ab.shape == (1, 2, size[1], size[0]) and ab.dtype == torch.float32  # full size: no upsampling needed
    out = join(target, ab)
    assert out.size == size
    l_in = rgb2lab(np.array(target.convert("RGB")))[..., 0]
    lab_out = rgb2lab(np.array(out))
    assert np.abs(lab_out[..., 0] - l_in).mean() < 0.5  # only 8-bit rounding and gamut clipping
    assert np.hypot(lab_out[..., 1], lab_out[..., 2]).max() > 20  # colour was added


@pytest.mark.parametrize("reference", [
    scene((120, 90), REF_CENTRES, gray=True),
    scene((120, 90), REF_CENTRES, gray=True).convert("RGB"),
    # a gray photo with JPEG-like colour noise is still gray
    Image.fromarray(np.clip(np.array(scene((120, 90), REF_CENTRES, gray=True).convert("RGB"), dtype=int)
                            + np.random.default_rng(0).integers(-2, 3, (90, 120, 3)), 0, 255).astype(np.uint8)),
], ids=["L", "RGB", "noisy"])
def test_gray_reference_is_refused(colorizer, reference):
    with pytest.raises(exemplar.ReferenceNotColour, match="black and white") as err:
        colorizer.predict_ab(scene((100, 80), TARGET_CENTRES, gray=True), reference)
    assert isinstance(err.value, ValueError) and err.value.code == "reference.gray"


def test_chunked_similarity_equals_unchunked(colorizer):
    reference = scene((240, 200), REF_CENTRES)
    target = scene((230, 190), TARGET_CENTRES, gray=True)
    cells = (exemplar.WORK_SIZE // exemplar.CELL) ** 2
    whole = exemplar.ExemplarColorizer(colorizer.vgg, colorizer.device, chunk=cells)
    blocks = exemplar.ExemplarColorizer(colorizer.vgg, colorizer.device, chunk=37)  # many blocks, a ragged last one
    # Equal up to float32 rounding: the matrix product's kernel (and so its order of summation) depends on the
    # block's shape on some CPUs (AVX512), and the softmax's low temperature and the local model magnify the
    # last bits: measured up to 3e-3 there (0 on an AVX2 CPU). In CIE ab units, 1e-2 is far below an 8-bit level.
    torch.testing.assert_close(blocks.predict_ab(target, reference), whole.predict_ab(target, reference),
                               rtol=0, atol=1e-2)


def test_guided_filter_matches_the_definition():
    """Against He et al.'s formulas written out window by window (windows clipped at the borders)."""
    rng = np.random.default_rng(3)
    guide, src, r, eps = rng.random((13, 17)), rng.random((2, 13, 17)) * 50, 3, 1e-2

    def box(x):
        out = np.empty_like(x)
        for i in range(x.shape[-2]):
            for j in range(x.shape[-1]):
                out[..., i, j] = x[..., max(0, i - r):i + r + 1, max(0, j - r):j + r + 1].mean(axis=(-2, -1))
        return out

    mean_g, mean_s = box(guide), box(src)
    a = (box(guide * src) - mean_g * mean_s) / (box(guide * guide) - mean_g**2 + eps)
    want = box(a) * guide + box(mean_s - a * mean_g)
    guide_t = torch.tensor(guide, dtype=torch.float32)[None, None]
    slope, intercept = exemplar.guided_filter(guide_t, torch.tensor(src, dtype=torch.float32)[None], r, eps)
    got = (slope * guide_t + intercept)[0].numpy()
    np.testing.assert_allclose(got, want, atol=1e-3)


def test_soft_match_is_the_softmax_of_cosine_less_lightness_penalty():
    """Written out plainly in float64: the folded penalty and the blocks change nothing."""
    g = torch.Generator().manual_seed(0)
    target = F.normalize(torch.randn(16, 50, generator=g, dtype=torch.float64), dim=0)
    ref = F.normalize(torch.randn(16, 70, generator=g, dtype=torch.float64), dim=0)
    target_l = torch.rand(1, 50, generator=g, dtype=torch.float64)
    ref_l = torch.rand(1, 70, generator=g, dtype=torch.float64)
    values = torch.randn(3, 70, generator=g, dtype=torch.float64)
    got, best = exemplar.soft_match(*(x.float() for x in (target, target_l, ref, ref_l, values)), chunk=16)
    score = target.t() @ ref - exemplar.LIGHTNESS_PENALTY * (target_l.t() - ref_l) ** 2
    want = values @ torch.softmax(score / exemplar.TEMPERATURE, dim=1).t()
    torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-3)
    torch.testing.assert_close(best.double(), score.max(dim=1).values[None], rtol=0, atol=1e-5)
