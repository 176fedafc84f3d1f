"""The scratch detector (models/restore/scratch.py) against the golden vectors of the authors' code, run with
the stand-in weights that produced them (../shared/weights/golden/SCRATCH.md): layout, strict loading of the
`{"model_state": ...}` checkpoint, float32 parity of every stage in both modes, and every pitfall SCRATCH.md
lists, put back into our code or into the loaded network, seen to fail.

Float32 on 2 threads; the network is loaded once per module. Pre-processing pitfalls stop at the first stage
they break and post-processing ones run on the golden probabilities, so only the network pitfalls pay a
forward pass (about a second each).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from models.fetch import FetchError
from models.restore import scratch
from models.restore.repair import DETECTOR_FILE
from tests.conftest import SHARED
from tests.standins import write_scratch_standin

GOLDEN = SHARED / "weights" / "golden"
LAYOUT = json.loads((SHARED / "weights" / "scratch_detection.json").read_text())["checkpoints"]["detection"]

# SCRATCH.md's required tolerances (float32 noise there: logits 3.3e-6 vs float64, 4.4e-6 without oneDNN).
NET_IN_MAX = 1e-6
FEATURE_MAX = 1e-4  # enc4, dec1, logits, s256 logits
PROB_MAX = 2.5e-5
MARGIN = 1e-4  # mask pixels may differ only where the golden prob is this close to 0.4


pytestmark = pytest.mark.usefixtures("two_threads")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_scratch_standin(tmp_path_factory.mktemp("scratch") / "FT_Epoch_latest.pt")


@pytest.fixture(scope="module")
def net(checkpoint) -> scratch.ScratchUNet:
    """Loaded as the engine loads the real file: the dict under "model_state", strictly."""
    return DETECTOR_FILE.network(checkpoint).eval()


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.open(GOLDEN / "scratch_input_sepia_400x267.png").convert("RGB")


def golden(name: str) -> np.ndarray:
    return np.load(GOLDEN / f"scratch_{name}.npy")


def _near_threshold(prob: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pixels (at `size`) whose golden probability is within MARGIN of 0.4: the only ones allowed to flip."""
    near = torch.from_numpy((np.abs(prob - 0.4) < MARGIN).astype(np.float32))
    return F.interpolate(near, size=size, mode="nearest")[0, 0].numpy() > 0


def _mask_ok(mask: np.ndarray, expected: np.ndarray, prob: np.ndarray) -> bool:
    if mask.shape != expected.shape:
        return False
    return not ((mask != expected) & ~_near_threshold(prob, expected.shape)).any()


def _max(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return math.inf if a.shape != b.shape else float(np.abs(a - b).max())


@torch.inference_mode()
def failures(net, photo, mode: str = "full_size") -> list[str]:
    """The stages of `detect` that miss SCRATCH.md's tolerances, in order; the first miss ends the run."""
    s256 = mode == "scale_256"
    gray = scratch.gray_u8(photo, mode)
    expected_gray = golden("s256_gray_u8" if s256 else "gray_u8")
    if gray.shape != expected_gray.shape or gray.dtype != np.uint8 or (gray != expected_gray).any():
        return ["gray"]
    x = scratch.network_input(gray)
    if not s256 and _max(x, golden("net_in")) > NET_IN_MAX:
        return ["net_in"]
    if s256 and _max(x[0, 0], expected_gray / 127.5 - 1) > NET_IN_MAX:  # scale_256: an exact identity
        return ["net_in"]
    taps = {}
    hooks = [net.down_path[3].register_forward_hook(lambda m, i, o: taps.__setitem__("enc4", o)),
             net.up_path[0].register_forward_hook(lambda m, i, o: taps.__setitem__("dec1", o[:, :128]))]
    try:
        logits = net(x)
    finally:
        for h in hooks:
            h.remove()
    prob = torch.sigmoid(logits)
    out = []
    if s256:
        if _max(logits, golden("s256_logits")) > FEATURE_MAX:
            out.append("logits")
        golden_prob = torch.sigmoid(torch.from_numpy(golden("s256_logits"))).numpy()
        if not _mask_ok(scratch.mask_u8(scratch.mask_at(prob, gray.shape)), golden("s256_mask_u8"), golden_prob):
            out.append("mask")
        return out
    for name, value in (("enc4", taps["enc4"]), ("dec1", taps["dec1"]), ("logits", logits)):
        if _max(value, golden(name)) > FEATURE_MAX:
            out.append(name)
    if _max(prob, golden("prob")) > PROB_MAX:
        out.append("prob")
    net_mask = scratch.mask_at(prob, prob.shape[-2:]).to(torch.uint8).numpy()
    if not _mask_ok(net_mask, golden("mask_net_u8"), golden("prob")):
        out.append("mask_net")
    if not _mask_ok(scratch.mask_u8(scratch.mask_at(prob, gray.shape)), golden("mask_u8"), golden("prob")):
        out.append("mask")
    return out


def post_failures() -> list[str]:
    """The post-processing alone, on the golden probabilities: the network-size and the final mask."""
    prob = torch.from_numpy(golden("prob"))
    out = []
    if not np.array_equal(scratch.mask_at(prob, prob.shape[-2:]).to(torch.uint8).numpy(), golden("mask_net_u8")):
        out.append("mask_net")
    final = scratch.mask_u8(scratch.mask_at(prob, golden("gray_u8").shape))
    if final.shape != golden("mask_u8").shape or (final != golden("mask_u8")).any():
        out.append("mask")
    return out


# --- layout and loading --------------------------------------------------------------------------------


def test_layout_is_the_published_one(net):
    assert [(k, list(v.shape)) for k, v in net.state_dict().items()] == list(LAYOUT["state_dict"].items())
    assert sum(p.numel() for p in net.parameters()) == LAYOUT["parameters_trainable"]
    assert not net.training


def test_checkpoint_shapes_are_one_line_errors(checkpoint, tmp_path):
    state = torch.load(checkpoint, weights_only=True)["model_state"]
    bad = {"bare.pt": {"last.1.bias": state["last.1.bias"]},  # weights not under "model_state"
           "missing.pt": {"model_state": {k: v for k, v in state.items() if k != "last.1.bias"}}}
    for name, content in bad.items():
        torch.save(content, tmp_path / name)
        with pytest.raises(FetchError) as e:
            DETECTOR_FILE.network(tmp_path / name)
        assert "\n" not in str(e.value)
    with pytest.raises(FetchError, match="last.1.bias"):
        DETECTOR_FILE.network(tmp_path / "missing.pt")
    old = {"model_state": {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}}
    torch.save(old, tmp_path / "old.pt")  # as PyTorch < 0.4.1 saved it: loads
    DETECTOR_FILE.network(tmp_path / "old.pt")


# --- float32 parity ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", scratch.MODES)
def test_golden_parity(net, photo, mode):
    assert failures(net, photo, mode) == []


def test_post_processing_on_golden_prob():
    assert post_failures() == []


def test_detect_end_to_end_keeps_the_multiple_of_16_size(net, photo):
    mask = scratch.detect(net, photo)
    assert mask.shape == (272, 400) and mask.dtype == np.uint8  # not the photo's 267 rows
    assert _mask_ok(mask, golden("mask_u8"), golden("prob"))


def test_the_network_sees_short_side_256_up_to_8_to_1_and_a_strip_at_most_2048_long(net):
    """The authors' scaling up to 8:1; beyond, paintbot's cap (a 4000 x 40 strip was 25,600 x 256: 48 s)."""
    shape = lambda h, w: tuple(scratch.network_input(np.zeros((h, w), np.uint8)).shape[2:])  # noqa: E731
    assert shape(272, 400) == (256, 384) and shape(400, 272) == (384, 256) and shape(256, 2048) == (256, 2048)
    assert shape(96, 1024) == (192, 2048) and shape(1024, 96) == (2048, 192)  # 10.7:1
    assert shape(48, 4000) == (32, 2048) and shape(4000, 48) == (2048, 32)  # 83:1, 32 at the least
    strip = Image.new("L", (4000, 40), 128)
    assert scratch.detect(net, strip).shape == (32, 4000)  # the multiple-of-16 size (40 -> 32), as for any photo


def test_sizes_round_half_to_even_and_resize_256_does_not_exist():
    assert scratch.rounded_size(400, 264) == (400, 256)  # 16.5 -> 16: floor(x + 0.5) would give 272
    assert scratch.rounded_size(400, 280) == (400, 288)
    assert scratch.rounded_size(400, 267, "scale_256") == (384, 256)
    with pytest.raises(ValueError, match="resize_256"):
        scratch.rounded_size(400, 267, "resize_256")


def test_threshold_is_at_or_above_0_4():
    prob = torch.tensor([0.4, 0.39999, 1.0]).reshape(1, 1, 1, 3)
    assert scratch.mask_at(prob, (1, 3)).tolist() == [[True, False, True]]


def test_an_all_damaged_photo_is_all_255():
    assert (scratch.mask_u8(torch.ones(4, 5, dtype=torch.bool)) == 255).all()  # save_image would write it black


# --- the pitfalls of SCRATCH.md, put back ------------------------------------------------------------------


def _bn(net):
    return [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]


def _float_luma(weights):
    def luma(rgb):
        return Image.fromarray((np.asarray(rgb, np.float32) @ np.asarray(weights, np.float32)), "F")
    return luma


def _gray_first(img, mode="full_size"):
    return np.asarray(img.convert("L").resize(scratch.rounded_size(*img.size, mode), Image.BICUBIC))


def _one_resize(img, mode="full_size"):
    return np.asarray(img.convert("RGB").resize((384, 256), Image.BICUBIC).convert("L"))


def _bn_train(monkeypatch, net):
    for m in _bn(net):
        monkeypatch.setattr(m, "training", True)
        monkeypatch.setattr(m, "momentum", 0.0)  # batch statistics used, the shared network's kept


def _blur(forward):
    return lambda mp, net: mp.setattr(scratch.BlurPool, "forward", forward)


PRE_PITFALLS = {
    "bilinear_resize": lambda mp, net: mp.setattr(scratch, "RESIZE_FILTER", Image.BILINEAR),
    "lanczos_resize": lambda mp, net: mp.setattr(scratch, "RESIZE_FILTER", Image.LANCZOS),
    "gray_before_resize": lambda mp, net: mp.setattr(scratch, "gray_u8", _gray_first),
    "float_luma_601": lambda mp, net: mp.setattr(scratch, "luma", _float_luma([0.299, 0.587, 0.114])),
    "skimage_rgb2gray": lambda mp, net: mp.setattr(scratch, "luma", _float_luma([0.2125, 0.7154, 0.0721])),
    "channel_mean": lambda mp, net: mp.setattr(scratch, "luma", _float_luma([1 / 3] * 3)),
    "no_normalize": lambda mp, net: (mp.setattr(scratch, "NORM_MEAN", 0.0), mp.setattr(scratch, "NORM_STD", 1.0)),
    "scale_align_corners": lambda mp, net: mp.setitem(scratch.SCALE_INTERP, "align_corners", True),
    "scale_antialias": lambda mp, net: mp.setitem(scratch.SCALE_INTERP, "antialias", True),
    "scale_bicubic": lambda mp, net: mp.setitem(scratch.SCALE_INTERP, "mode", "bicubic"),
    "one_resize_to_256": lambda mp, net: mp.setattr(scratch, "gray_u8", _one_resize),
    "no_full_size_rounding": lambda mp, net: mp.setattr(scratch, "rounded_size", lambda w, h, mode="full_size": (w, h)),
}

NETWORK_PITFALLS = {
    "decoder_align_corners": lambda mp, net: [mp.setattr(u.up[0], "align_corners", True) for u in net.up_path],
    "decoder_nearest": lambda mp, net: [(mp.setattr(u.up[0], "mode", "nearest"), mp.setattr(u.up[0], "align_corners",
                                                                                          None)) for u in net.up_path],
    "blur_dropped_even": _blur(lambda self, x: x[:, :, ::2, ::2]),
    "blur_dropped_odd": _blur(lambda self, x: x[:, :, 1::2, 1::2]),
    "blur_as_avg_pool": _blur(lambda self, x: F.avg_pool2d(x, 2)),
    "blur_zero_padding": _blur(lambda self, x: F.conv2d(F.pad(x, (1, 1, 1, 1)), self.filt, stride=2,
                                                        groups=x.shape[1])),
    "zero_padding_everywhere": lambda mp, net: mp.setattr(nn.ReflectionPad2d, "forward",
                                                          lambda self, x: F.pad(x, self.padding)),
    "batchnorm_train_mode": _bn_train,
    "relu_not_leaky": lambda mp, net: [mp.setattr(m, "negative_slope", 0.0) for m in net.modules()
                                       if isinstance(m, nn.LeakyReLU)],
    "batchnorm_eps_1e-3": lambda mp, net: [mp.setattr(m, "eps", 1e-3) for m in _bn(net)],
}

POST_PITFALLS = {
    "threshold_0.5": lambda mp: mp.setattr(scratch, "THRESHOLD", 0.5),
    "final_bilinear": lambda mp: mp.setattr(scratch, "FINAL_INTERP", {"mode": "bilinear", "align_corners": False}),
    "final_nearest_exact": lambda mp: mp.setattr(scratch, "FINAL_INTERP", {"mode": "nearest-exact"}),
    "final_mask_at_photo_size": lambda mp: mp.setattr(scratch, "mask_at", (lambda at: lambda prob, size: at(
        prob, (267, 400) if size == (272, 400) else size))(scratch.mask_at)),
}


@pytest.mark.parametrize("pitfall", sorted(PRE_PITFALLS))
def test_pre_processing_pitfall_fails(net, photo, monkeypatch, pitfall):
    PRE_PITFALLS[pitfall](monkeypatch, net)
    assert failures(net, photo)[:1] in (["gray"], ["net_in"])


@pytest.mark.parametrize("pitfall", sorted(NETWORK_PITFALLS))
def test_network_pitfall_fails(net, photo, monkeypatch, pitfall):
    NETWORK_PITFALLS[pitfall](monkeypatch, net)
    found = failures(net, photo)
    assert "logits" in found and "mask" in found


@pytest.mark.parametrize("pitfall", sorted(POST_PITFALLS))
def test_post_processing_pitfall_fails(monkeypatch, pitfall):
    POST_PITFALLS[pitfall](monkeypatch)
    assert post_failures() != []


def test_threshold_above_not_at_fails(monkeypatch):
    monkeypatch.setattr(scratch, "AT_OR_ABOVE", torch.gt)  # 0 flips on the goldens: caught at exactly 0.4
    with pytest.raises(AssertionError):
        test_threshold_is_at_or_above_0_4()


def test_round_half_up_fails(monkeypatch):
    monkeypatch.setattr(scratch, "round", lambda v: math.floor(v + 0.5), raising=False)  # builtin round shadowed
    with pytest.raises(AssertionError):
        test_sizes_round_half_to_even_and_resize_256_does_not_exist()


def test_min_max_stretch_of_the_mask_fails(monkeypatch):
    def stretched(mask):  # torchvision's save_image(normalize=True): min-max, so all-ones becomes all-zeros
        m = mask.float()
        return ((m - m.min()) / (m.max() - m.min()).clamp(min=1e-5) * 255).byte().numpy()

    monkeypatch.setattr(scratch, "mask_u8", stretched)
    with pytest.raises(AssertionError):
        test_an_all_damaged_photo_is_all_255()
