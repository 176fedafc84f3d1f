"""Instance-aware colourisation against the golden vectors of the authors' own code (float32).

The goldens (shared/weights/golden/inst_*, README_colorization.md) are InstColorization's
test_fusion.py path run on fixed boxes with seeded stand-in weights. Each of the reference's
easily-missed rules is then replaced by its plausible mistake, and a golden comparison must fail.
The instance generator's feature maps are recorded once, in the golden run, and replayed to the
fusion generator, which keeps the many mutation runs cheap.
"""

import math
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from models import fetch
from models.colorize import instance
from tests.conftest import SHARED

sys.path.insert(0, str(SHARED / "weights"))
from standin import layout, make_standin  # noqa: E402

GOLDEN = SHARED / "weights" / "golden"
TOL = 1e-4  # README_colorization.md: ab / 110 tensors in float32
SEEDS = {"instcolorization_GComp": 2001, "instcolorization_G": 2002, "instcolorization_GF": 2003}


def golden(name: str) -> np.ndarray:
    return np.load(GOLDEN / f"{name}.npy")


def deviation(ab: torch.Tensor, name: str) -> float:
    return float(np.abs(ab.numpy() - golden(name)).max())


def standin(entry: str) -> dict:
    values = make_standin(layout("instcolorization.json", entry), SEEDS[entry])
    return {k: torch.from_numpy(v) for k, v in values.items()}


pytestmark = pytest.mark.usefixtures("two_threads")  # the goldens were made with 2 threads


@pytest.fixture(scope="module")
def colorizer() -> instance.InstanceColorizer:
    """Strict loads of the three stand-ins as published (GF's keys carry `module.`)."""
    return instance.InstanceColorizer.from_state_dicts(*(standin(e) for e in SEEDS), device="cpu")


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.open(GOLDEN / "inst_coffee_gray_600x400.png")


@pytest.fixture(scope="module")
def boxes() -> torch.Tensor:
    return torch.from_numpy(golden("inst_boxes_xyxy"))


class Recording:
    """Wraps the instance generator: keeps its output and the feature maps it hands to the fusion."""

    def __init__(self, net):
        self.net, self.features, self.out = net, {}, None

    def unet(self, x, tap):
        def record(name, feature):
            self.features[name] = feature.clone()  # the next block's in-place ReLU would change it
            return tap(name, feature)

        self.out = self.net.unet(x, tap=record)
        return self.out


class Replay:
    """Stands in for the instance generator: hands recorded feature maps to the fusion again."""

    def __init__(self, features: dict):
        self.features = features

    def unet(self, x, tap):
        for name, feature in self.features.items():
            tap(name, feature)


@pytest.fixture(scope="module")
def fused_run(colorizer, photo, boxes):
    """predict_ab on the golden photo and boxes, recording the instance generator on the way."""
    recording = Recording(colorizer.instance)
    colorizer.instance = recording
    try:
        ab = colorizer.predict_ab(photo, boxes)
    finally:
        colorizer.instance = recording.net
    return ab, recording


def fused_deviation(colorizer, photo, boxes, fused_run) -> float:
    """Max |fused ab / 110 - golden| with the recorded instance features; inf if the run fails."""
    with torch.inference_mode():
        inputs = colorizer.prepare(photo, boxes)
        try:
            parts = colorizer.fusion.collect(Replay(fused_run[1].features), inputs.crops, inputs.cells)
            return deviation(colorizer.fusion(inputs.full, parts), "inst_fused_ab")
        except RuntimeError:  # e.g. a box region that does not fit its feature map
            return math.inf


# ---------------------------------------------------------------------------------------------
# Inputs: exact


def test_box_cells_equal_golden_box_info(photo, boxes):
    ints = instance.integer_boxes(boxes, photo.size)
    for grid in (256, 128, 64, 32):
        cells = np.array([instance.box_cells(b, photo.size, grid) for b in ints])
        np.testing.assert_array_equal(cells, golden(f"inst_box_info_{grid}"))


def test_crops_and_network_inputs_equal_golden(colorizer, photo, boxes):
    ints = instance.integer_boxes(boxes, photo.size)
    for pixels, name in ((instance.resized_pixels(photo, ints), "crops"), (instance.resized_pixels(photo), "full")):
        reference = golden(f"inst_{name}_img")
        assert pixels.shape[0] == reference.shape[0] and pixels.dtype == torch.uint8
        np.testing.assert_allclose(np.broadcast_to(pixels.numpy() / 255, reference.shape), reference, atol=1e-5)
        x = instance.network_input(pixels).numpy()
        np.testing.assert_allclose(x[:, :1], golden(f"inst_{name}_A"), atol=1e-5)
        assert (x[:, 1:3] == 0).all() and (x[:, 3] == -0.5).all()
    inputs = colorizer.prepare(photo, boxes)
    assert inputs.crops.shape == (3, 4, 256, 256) and inputs.full.shape == (1, 4, 256, 256)


def test_colour_input_gives_the_same_network_input(photo, boxes):
    ints = instance.integer_boxes(boxes, photo.size)
    gray = instance.network_input(instance.resized_pixels(photo, ints))
    rgb = instance.network_input(instance.resized_pixels(photo.convert("RGB"), ints))
    np.testing.assert_allclose(rgb.numpy(), gray.numpy(), atol=1e-5)


def test_boxes_are_truncated_clipped_and_empty_ones_dropped():
    boxes = torch.tensor([[10.9, 5.2, 50.99, 40.5], [-3.0, -1.0, 700.0, 20.0], [30.2, 8.0, 30.9, 30.0]])
    assert instance.integer_boxes(boxes, (600, 400)) == [(10, 5, 50, 40), (0, 0, 600, 20)]


# ---------------------------------------------------------------------------------------------
# Networks: within the float32 tolerance


def test_instance_generator_matches_golden(fused_run):
    assert deviation(fused_run[1].out, "inst_G_out_reg") < TOL


def test_fused_ab_matches_golden(fused_run):
    ab = fused_run[0]
    assert ab.shape == (1, 2, 256, 256) and ab.dtype == torch.float32
    assert deviation(ab / 110, "inst_fused_ab") < TOL


def test_replayed_features_reproduce_the_golden(colorizer, photo, boxes, fused_run):
    assert fused_deviation(colorizer, photo, boxes, fused_run) < TOL  # the mutation tests' baseline


# ---------------------------------------------------------------------------------------------
# Each pitfall of the reference, injected, fails a golden comparison


def test_mutation_mask_zero_fails(colorizer, photo, monkeypatch):
    monkeypatch.setattr(instance, "MASK_VALUE", 0.0)
    with torch.inference_mode():
        ab = colorizer.full(instance.network_input(instance.resized_pixels(photo)))
    assert deviation(ab, "inst_nobox_ab") > TOL


def test_mutation_no_thin_box_fix_up_fails(photo, boxes, monkeypatch):
    monkeypatch.setattr(instance, "_at_least_one_cell", lambda start, end, grid: (start, end))
    ints = instance.integer_boxes(boxes, photo.size)
    cells = np.array([instance.box_cells(b, photo.size, 32) for b in ints])
    assert not np.array_equal(cells, golden("inst_box_info_32"))


def _swap_width_height(box_cells):
    def swapped(*args):
        cells = box_cells(*args)
        return cells._replace(width=cells.height, height=cells.width)
    return swapped


def _deeper_maps_halving(points):
    """conv4_3 .. conv7_3 as if each block halved the scale again, like an encoder: 32, 16, 8, 4."""
    grids = {"conv5_3": 16, "conv6_3": 8, "conv7_3": 4}
    return {name: p._replace(grid=grids.get(name, p.grid)) for name, p in points.items()}


def _up_maps_not_rectified(points):
    return {name: p._replace(instance_relu=False) for name, p in points.items()}


@pytest.mark.parametrize("mutate", [
    pytest.param(lambda m: m.setattr(instance, "box_cells", _swap_width_height(instance.box_cells)),
                 id="element 4 read as the height"),
    pytest.param(lambda m: m.setattr(instance, "FUSION_POINTS", _deeper_maps_halving(instance.FUSION_POINTS)),
                 id="conv5-7 on grids 16, 8, 4 instead of 32"),
    pytest.param(lambda m: m.setattr(instance, "OUTSIDE_BOX_LOGIT", -math.inf),
                 id="other instances masked with -inf"),
    pytest.param(lambda m: m.setattr(instance, "BACKGROUND_BIAS", 0.0), id="no background bias"),
    pytest.param(lambda m: m.setattr(instance, "FUSION_POINTS", _up_maps_not_rectified(instance.FUSION_POINTS)),
                 id="instance *_up maps before the in-place ReLU"),
])
def test_fusion_mutation_fails(colorizer, photo, boxes, fused_run, monkeypatch, mutate):
    mutate(monkeypatch)
    assert fused_deviation(colorizer, photo, boxes, fused_run) > TOL


def test_mutation_logits_without_relu_fails(colorizer, photo, boxes, fused_run):
    # Put back by hand: monkeypatch's undo deleted each Sequential's "5" (its getattr finds the module, its
    # restore does not), leaving the module's colorizer without its logits' ReLUs for every later test.
    convs = [seq for m in colorizer.fusion.modules() if isinstance(m, instance.WeightGenerator)
             for seq in (m.simple_instance_conv, m.simple_bg_conv)]
    relus = [seq[5] for seq in convs]
    try:
        for seq in convs:
            seq[5] = nn.Identity()
        assert fused_deviation(colorizer, photo, boxes, fused_run) > TOL
    finally:
        for seq, relu in zip(convs, relus):
            seq[5] = relu
    assert fused_deviation(colorizer, photo, boxes, fused_run) < TOL


# ---------------------------------------------------------------------------------------------
# Loading


def test_fusion_loads_strictly_with_and_without_module_prefix():
    from models.weights import load_into

    sd = standin("instcolorization_GF")
    assert all(k.startswith("module.") for k in sd)
    plain = instance.strip_module_prefix(sd)
    assert instance.strip_module_prefix(plain) is plain
    for given in (sd, plain):
        net = instance.build_fusion()
        load_into(net, instance.strip_module_prefix(given), "GF")
        unused = plain["weight_layerout.simple_bg_conv.4.weight"]  # in the file, never used: loaded all the same
        assert torch.equal(net.weight_layerout.simple_bg_conv[4].weight, unused)


def test_wrong_file_gives_one_line_error():
    sd = standin("instcolorization_G")
    sd["model4.0.weight"] = sd["model4.0.weight"][:, :128]
    with pytest.raises(fetch.FetchError) as err:
        instance.InstanceColorizer.from_state_dicts(sd, sd, {}, device="cpu", sources=("a.pth", "G.pth", "GF.pth"))
    message = str(err.value)
    assert "\n" not in message and "a.pth" in message and "model4.0.weight" in message


# ---------------------------------------------------------------------------------------------
# Reduced precision: the 1e5 bias must not overflow the softmax


def test_blend_in_float16_stays_finite_and_close():
    torch.manual_seed(0)
    layer = instance.WeightGenerator(8).eval()
    cells = [instance.BoxCells(4, 20, 2, 10, 8, 20), instance.BoxCells(0, 16, 0, 16, 16, 16)]
    background, crops = torch.randn(1, 8, 32, 32), torch.randn(2, 8, 32, 32)
    with torch.inference_mode():
        exact = layer.blend(background, layer.instance_parts(crops, cells))
        half = layer.half()
        reduced = half.blend(background.half(), half.instance_parts(crops.half(), cells)).float()
    assert torch.isfinite(reduced).all()
    assert (reduced - exact).abs().max() < 0.05 * exact.abs().max()


def test_bf16_colours_within_its_stated_psnr_of_float32(colorizer, photo, boxes):
    """The README's figure for bf16 (49.9 dB on a photo's 8-bit result) holds for the fused ab too: 48.4 dB on
    the golden photo, peak 110 (torch's unpacked bf16: 48.2). Where bf16 is native the convolutions are oneDNN's
    packed ones with their activations inside (models/device.py); a LeakyReLU taken as a ReLU gave 27 dB."""
    from models.device import PackedConv2d, reduced_dtype

    reduced = instance.InstanceColorizer.from_state_dicts(*(standin(e) for e in SEEDS), device="cpu",
                                                          dtype=torch.bfloat16)
    native = reduced_dtype(torch.device("cpu")) == torch.bfloat16
    assert any(isinstance(m, PackedConv2d) for m in reduced.instance.modules()) == native
    # Without native bf16 (AVX2 only) torch emulates it some 25 times slower than float32: 200 s of the suite for
    # the three boxes, on a CPU where no worker computes in bf16 (models/device.py). There one box: the same
    # path through the instance generator and the fusion, at half the cost (45.2 dB on a Zen 3).
    boxes = boxes if native else boxes[:1]
    exact, ab = colorizer.predict_ab(photo, boxes), reduced.predict_ab(photo, boxes)
    psnr = 10 * math.log10(110**2 / float(((ab - exact) ** 2).mean()))
    assert psnr > 44, f"bf16 {psnr:.1f} dB from float32"


# ---------------------------------------------------------------------------------------------
# Detector (torchvision Faster R-CNN R50-FPN v2, stand-in weights of its builder's layout)


FAST = dict(min_size=160, max_size=240, proposals=50)  # small input, few proposals: a quick test


@pytest.fixture(scope="module")
def detector_state() -> dict:
    """Seeded stand-in values (the shared rule) for the builder's keys and shapes. The untrained
    backbone's features reach ~1e4, so the two box-regression layers are scaled down to keep
    the boxes near their anchors: well-formed boxes to check."""
    shapes = {k: tuple(v.shape) for k, v in instance.build_detector().state_dict().items()}
    sd = {k: torch.from_numpy(v) for k, v in make_standin(shapes, seed=2401).items()}
    for key in sd:
        if ".bbox_pred." in key:
            sd[key] = sd[key] * 1e-5
    return sd


def test_detector_returns_well_formed_boxes(detector_state, photo):
    detector = instance.Detector.from_state_dict(detector_state, "cpu", score_threshold=0.0, **FAST)
    found = detector(photo)
    assert found.dtype == torch.float32 and found.shape == (instance.MAX_BOXES, 4)
    assert torch.isfinite(found).all()
    assert (found[:, 0] <= found[:, 2]).all() and (found[:, 1] <= found[:, 3]).all()
    assert found.min() >= 0 and (found[:, 2] <= photo.width).all() and (found[:, 3] <= photo.height).all()


def test_no_detection_falls_back_to_the_full_image_generator(detector_state, colorizer, photo):
    detector = instance.Detector.from_state_dict(detector_state, "cpu", score_threshold=1.01, **FAST)
    found = detector(photo)
    assert found.shape == (0, 4)
    ab = colorizer.predict_ab(photo, found)
    assert ab.shape == (1, 2, 256, 256) and deviation(ab / 110, "inst_nobox_ab") < TOL


def test_detector_input_is_opencv_lightness_stacked():
    img = Image.fromarray(np.array([[0, 128, 255]], dtype=np.uint8))
    x = instance.detector_input(img)
    assert x.shape == (3, 1, 3) and torch.equal(x[0], x[2])
    assert (x[0, 0] * 255).round().tolist() == [0, 137, 255]  # L* of sRGB 128 is 53.585; x 2.55 = 136.6


def test_box_selection_keeps_the_best_in_ascending_score_order():
    boxes = torch.arange(40, dtype=torch.float32).reshape(10, 4)
    scores = torch.tensor([0.9, 0.75, 0.99, 0.8, 0.71, 0.95, 0.85, 0.72, 0.93, 0.88])
    kept = instance.select_boxes(boxes, scores, 8)
    assert kept[:, 0].div(4).long().tolist() == [1, 3, 6, 9, 0, 8, 5, 2]  # scores 0.75 ... 0.99
    assert torch.equal(instance.select_boxes(boxes[:5], scores[:5], 8), boxes[:5])
    assert torch.equal(instance.select_boxes(boxes, scores, -1), boxes)


def test_detector_weights_url_and_hash_prefix():
    url, prefix = instance.detector_weights()
    assert url.startswith("https://download.pytorch.org/models/fasterrcnn_resnet50_fpn_v2_coco-")
    assert url.endswith(f"-{prefix}.pth") and len(prefix) == 8 and int(prefix, 16) >= 0
