"""ChromaGAN (models/colorize/chromagan.py) against the authors' golden vectors, with the stand-in weights that
produced them (shared/weights/golden/CHROMAGAN.md): the .h5 read by the file's own order, strictly; the
network input, every stored intermediate and both heads in float32 within the document's tolerances; the
authors' uint8 post-processing bit for bit and the final RGB within one level; and each documented pitfall,
reintroduced, failing.

The full stand-in .h5 (685 MB) is written once for this module into a temporary folder and deleted after it.
Each pitfall runs only the stage it breaks, from the golden input of that stage, so the module costs two
full forward passes. Float32 on 2 threads.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import re
import sys

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from models import color, engines, fetch, weights
from models.colorize import chromagan as cg
from models.config import ModelConfig
from tests.conftest import SHARED

GOLDEN = SHARED / "weights" / "golden"
sys.path.insert(0, str(SHARED / "weights"))
sys.path.insert(0, str(GOLDEN))
import chromagan_standin_h5  # noqa: E402
from standin import fingerprint  # noqa: E402

DOC = json.loads((SHARED / "weights" / "chromagan.json").read_text())
MANIFEST = json.loads((GOLDEN / "chromagan_golden_manifest.json").read_text())["standin_fingerprints"]["generator"]

# CHROMAGAN.md's suggested acceptance for a float32 implementation (float32 noise there: ~2e-6).
AB_MAX, AB_REL = 2e-5, 2e-5
INTERMEDIATE_REL, INTERMEDIATE_MAX = 2e-5, 1e-4
PROBS_MAX, PROBS_REL = 1e-6, 2e-5


pytestmark = pytest.mark.usefixtures("two_threads")


@pytest.fixture(scope="module")
def standin_h5(tmp_path_factory):
    """The shared script's stand-in file (seed 2401), deleted when the module is done."""
    path = tmp_path_factory.mktemp("chromagan") / cg.WEIGHTS.filename
    chromagan_standin_h5.write(path, MANIFEST["seed"])
    yield path
    path.unlink()


@pytest.fixture(scope="module")
def arrays(standin_h5) -> list[tuple[str, np.ndarray]]:
    return cg.keras_arrays(standin_h5)


@pytest.fixture(scope="module")
def net(arrays) -> cg.ChromaGAN:
    """The whole generator, class head included, from the arrays read once (read_weights = keras_arrays then
    state_dict_from_keras; the engine below reads the file itself)."""
    net = cg.ChromaGAN()
    weights.load_into(net, cg.state_dict_from_keras(arrays, "stand-in"), "stand-in")
    return net.eval()


@pytest.fixture(scope="module")
def engine(standin_h5, tmp_path_factory):
    """Through the registry's own path: a weights file given by the operator -> WeightFile.read -> strict load ->
    class head freed. (The download, the offline folder and the pin on first strict load are the registry's
    path for every file: tests/test_registry.py runs it for this one too.)"""
    config = ModelConfig(device="cpu", reduced_precision=False, cache_dir=tmp_path_factory.mktemp("cache"),
                         weight_overrides={cg.WEIGHTS.filename: standin_h5})
    return engines.load("chromagan", "colorize", config=config)


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.open(GOLDEN / "zhang_coffee_gray_400x267.png")


def _golden(name: str) -> np.ndarray:
    return np.load(GOLDEN / f"chromagan_{name}.npy")


def _golden_nchw(name: str) -> torch.Tensor:
    g = torch.from_numpy(_golden(name))
    return g.permute(0, 3, 1, 2) if g.dim() == 4 else g


def _nhwc(t: torch.Tensor) -> np.ndarray:
    return (t.permute(0, 2, 3, 1) if t.dim() == 4 else t).numpy()


def _rel(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _matches(ours: torch.Tensor, name: str) -> bool:
    """Within CHROMAGAN.md's tolerance for that kind of array."""
    a, g = _nhwc(ours), _golden(name)
    if a.shape != g.shape:
        return False
    worst, rel = float(np.abs(a - g).max()), _rel(a, g)
    if name == "ab":
        return worst <= AB_MAX and rel <= AB_REL
    if name == "class_probs":
        return worst <= PROBS_MAX and rel <= PROBS_REL
    return worst <= INTERMEDIATE_MAX and rel <= INTERMEDIATE_REL


# --- the file and its loading ----------------------------------------------------------------------


def _fingerprint(arrays) -> str:
    """standin.fingerprint without its two copies of every array (these are already little-endian float32)."""
    h = hashlib.sha256()
    for _, a in sorted(arrays, key=lambda item: item[0]):
        assert a.dtype == np.dtype("<f4")
        h.update(memoryview(np.ascontiguousarray(a)).cast("B"))
    return h.hexdigest()


def test_fingerprint_shortcut_is_the_shared_one():
    sample = [("b", np.arange(6, dtype=np.float32).reshape(2, 3).T), ("a", np.ones(2, np.float32))]
    assert _fingerprint(sample) == fingerprint(dict(sample))


def test_standin_file_read_back_has_the_published_fingerprint_layout_and_order(arrays):
    assert _fingerprint(arrays) == MANIFEST["same_hash_over_the_h5_datasets_read_back"]
    published = DOC["checkpoints"]["generator"]["state_dict"]
    assert [(k, list(a.shape)) for k, a in arrays] == [(k, published[k]) for k, _ in arrays]
    assert len(arrays) == len(published) == MANIFEST["keys"]
    # the file's order (layer_names) is not alphabetical: conv2d_10, the mid-level branch, follows dense_1
    names = [k.split("/")[0] for k, _ in arrays]
    assert names.index("conv2d_10") == names.index("dense_1") + 2
    assert [shape for _, _, shape in cg.expected_keras_shapes()] == [a.shape for _, a in arrays]
    assert sum(a.size for _, a in arrays) == MANIFEST["parameters"] == 171_171_722


def test_optimizer_state_and_bytes_attributes_are_ignored_alike(arrays, tmp_path):
    """A trained file's optimizer_weights/ group is never read (a small file in the same structure)."""
    path = tmp_path / "small.h5"
    with h5py.File(path, "w") as f:
        mw = f.create_group("model_weights")
        mw.attrs["layer_names"] = np.array([b"input_1", b"conv2d_6"])
        mw.create_group("input_1").attrs["weight_names"] = np.array([])  # weightless: an empty float64 array
        conv = mw.create_group("conv2d_6")
        conv.attrs["weight_names"] = np.array([b"conv2d_6/kernel:0", b"conv2d_6/bias:0"])
        conv.create_dataset("conv2d_6/kernel:0", data=np.ones((3, 3, 2, 4), np.float32))
        conv.create_dataset("conv2d_6/bias:0", data=np.zeros(4, np.float32))
        opt = f.create_group("optimizer_weights")
        opt.attrs["weight_names"] = np.array([b"Adam/iterations:0"])
        opt.create_dataset("Adam/iterations:0", data=np.int64(7))
    assert [(k, a.shape) for k, a in cg.keras_arrays(path)] == [("conv2d_6/conv2d_6/kernel:0", (3, 3, 2, 4)),
                                                                ("conv2d_6/conv2d_6/bias:0", (4,))]


def _load_error(arrays) -> str:
    with pytest.raises(fetch.FetchError) as e:
        cg.state_dict_from_keras(arrays, "bad.h5")
    message = str(e.value)
    assert "\n" not in message and "bad.h5" in message
    assert cg.WEIGHTS.remote.url in message and weights.OFFLINE_ENV in message
    return message


def test_every_weight_is_used_and_every_shape_checked_in_one_line_errors(arrays):
    assert "holds 79 weights, the generator has 80" in _load_error(arrays[:-1])
    extra = ("dense_7/dense_7/bias:0", np.zeros(3, np.float32))
    assert "holds 81 weights" in _load_error(arrays + [extra])
    wrong = list(arrays)
    wrong[40] = (wrong[40][0], wrong[40][1][:-1])
    assert f"weight 41 is {arrays[40][0]}" in _load_error(wrong)
    # pitfall 2: h5py's alphabetical group order instead of the file's layer_names
    assert "weight 1 is batch_normalization_1/batch_normalization_1/beta:0" in _load_error(sorted(arrays))


def test_a_file_that_is_not_keras_h5_is_a_one_line_error(tmp_path):
    bad = tmp_path / cg.WEIGHTS.filename
    bad.write_bytes(b"<html>quota exceeded</html>")
    with pytest.raises(fetch.FetchError) as e:
        cg.read_weights(bad)
    assert "\n" not in str(e.value) and str(bad) in str(e.value) and cg.WEIGHTS.remote.url in str(e.value)


def test_offline_folder_errors_name_the_file_its_url_and_the_variable(tmp_path):
    config = ModelConfig(cache_dir=tmp_path / "cache", weights_dir=tmp_path / "offline")
    with pytest.raises(fetch.FetchError) as e:
        weights.path_of(cg.WEIGHTS, config)
    message = str(e.value)
    assert "\n" not in message and f"missing file {tmp_path / 'offline' / cg.WEIGHTS.filename}" in message
    assert cg.WEIGHTS.remote.url in message and weights.OFFLINE_ENV in message
    (tmp_path / "offline").mkdir()
    (tmp_path / "offline" / cg.WEIGHTS.filename).write_bytes(b"not the file pinned before")
    (tmp_path / "cache" / "weights").mkdir(parents=True)
    (tmp_path / "cache" / "weights" / "pins.json").write_text(json.dumps({cg.WEIGHTS.filename: "0" * 64}))
    with pytest.raises(fetch.FetchError, match=f"differs from the one pinned.*{re.escape(cg.WEIGHTS.remote.url)}"):
        weights.path_of(cg.WEIGHTS, config)


def test_download_falls_back_to_the_authors_second_place(drive, file_server, tmp_path):
    """Google Drive over its quota (a loopback imitation): the university server's copy is fetched instead."""
    drive.variant = "quota"
    drive.files["chromagan"] = b"from drive"
    (file_server.directory / cg.WEIGHTS.filename).write_bytes(b"the authors' file")
    rf = dataclasses.replace(cg.WEIGHTS.remote, url=drive.url("chromagan"),
                             mirrors=(file_server.url(cg.WEIGHTS.filename),))
    assert fetch.ensure(rf, tmp_path / "cache", None).read_bytes() == b"the authors' file"
    assert any("id=chromagan" in r for r in drive.requests)
    nowhere = dataclasses.replace(rf, mirrors=(file_server.url("gone.h5"),))
    with pytest.raises(fetch.FetchError) as e:
        fetch.ensure(nowhere, tmp_path / "other", None)
    message = str(e.value)
    assert "\n" not in message and "quota" in message and "404" in message and weights.OFFLINE_ENV in message
    assert drive.url("chromagan") in message and file_server.url("gone.h5") in message


def test_conv_kernels_sharing_a_shape_swapped_load_silently_and_the_goldens_catch_it(arrays, net):
    """Pitfall 2: conv2d_7 and conv2d_10 (both 3x3x512x512) in each other's place: no error, wrong output."""
    names = [k for k, _ in arrays]
    swapped = list(arrays)
    for part in ("kernel:0", "bias:0"):
        i, j = names.index(f"conv2d_7/conv2d_7/{part}"), names.index(f"conv2d_10/conv2d_10/{part}")
        swapped[i], swapped[j] = (names[i], arrays[j][1]), (names[j], arrays[i][1])
    sd = cg.state_dict_from_keras(swapped, "swapped.h5")
    global_convs, mid_convs = copy.deepcopy(net.global_convs), copy.deepcopy(net.mid_convs)
    global_convs.load_state_dict({k[13:]: v for k, v in sd.items() if k.startswith("global_convs.")})
    mid_convs.load_state_dict({k[10:]: v for k, v in sd.items() if k.startswith("mid_convs.")})
    trunk = _golden_nchw("vgg_trunk_block4_conv3")
    with torch.inference_mode():
        assert not _matches(global_convs(trunk), "global_bn4")
        assert not _matches(mid_convs(trunk), "mid_bn6")


# --- float32 parity --------------------------------------------------------------------------------


def test_network_input_and_lightness_are_the_authors_bit_for_bit(photo):
    x = cg.network_input(photo)
    assert x.dtype == torch.float32 and torch.equal(x, _golden_nchw("net_in"))
    small = cg.resize_uint8(torch.from_numpy(np.array(photo))[None], 224, 224)[0]
    assert np.array_equal(cg.lightness_uint8(small).numpy(), _golden("L224_u8"))
    assert np.array_equal(cg.lightness_uint8(torch.from_numpy(np.array(photo))).numpy(), _golden("Lorig_u8"))
    assert torch.equal(cg.network_input(photo.convert("RGB")), x)  # the RGB path agrees on gray pixels


@pytest.fixture(scope="module")
def stages(net) -> dict[str, torch.Tensor]:
    """Each stage from the golden input of that stage, and both heads from the whole network."""
    x = _golden_nchw("net_in")
    bn4 = _golden_nchw("global_bn4")
    with torch.inference_mode():
        ab, probs = net(x, classes=True)
        return {
            "vgg_block1_pool": net.trunk.block(x, 1),
            "vgg_trunk_block4_conv3": net.trunk(x),
            "global_bn4": net.global_convs(_golden_nchw("vgg_trunk_block4_conv3")),
            "global_dense3": net.global_vector(bn4),
            "mid_bn6": net.mid_convs(_golden_nchw("vgg_trunk_block4_conv3")),
            "fusion_conv1x1": net.fuse(_golden_nchw("mid_bn6"), _golden_nchw("global_dense3")),
            "ab_logits_112": net.ab_logits(_golden_nchw("fusion_conv1x1")),
            "class_dense5": net.class_dense[1](net.class_dense[0](bn4.permute(0, 2, 3, 1).flatten(1))),
            "class_logits": net.class_logits(bn4),
            "ab": ab,
            "class_probs": probs,
        }


@pytest.mark.parametrize("name", ["vgg_block1_pool", "vgg_trunk_block4_conv3", "global_bn4", "global_dense3",
                                  "mid_bn6", "fusion_conv1x1", "ab_logits_112", "class_dense5", "class_logits",
                                  "ab", "class_probs"])
def test_intermediates_and_both_heads_match_the_goldens(stages, name):
    assert _matches(stages[name], name), (name, float(np.abs(_nhwc(stages[name]) - _golden(name)).max()))


def test_authors_post_processing_from_the_golden_ab_and_rgb_within_one_level(engine, photo):
    ab_u8 = cg.ab_uint8(_golden_nchw("ab"))[0]
    assert np.array_equal(ab_u8.permute(1, 2, 0).numpy(), _golden("ab_u8_224"))
    full = cg.resize_uint8(ab_u8, photo.height, photo.width)
    assert np.array_equal(full.permute(1, 2, 0).numpy(), _golden("ab_u8_full"))
    rgb = np.asarray(engine.join(photo, ab_u8[None].float() - 128), dtype=int)
    off = np.abs(rgb - _golden("rgb_u8"))
    assert off.max() <= 1  # paintbot's exact Lab -> RGB beside OpenCV's 8-bit one: measured 7,864 values +-1


def test_end_to_end_from_the_photo(engine, photo, monkeypatch):
    predicted = []
    monkeypatch.setattr(engine, "predict_ab", lambda img, reference=None, original=engine.predict_ab:
                        predicted.append(original(img, reference)) or predicted[-1])
    out = engine(photo)  # one forward pass: the ab it predicted is kept for the checks below
    (ab,) = predicted
    assert ab.shape == (1, 2, 224, 224) and ab.dtype == torch.float32
    ab_u8 = (ab[0] + 128).to(torch.uint8).permute(1, 2, 0).numpy()
    assert (ab_u8 != _golden("ab_u8_224")).mean() <= 1e-3 and np.abs(ab_u8.astype(int) - _golden("ab_u8_224")).max() <= 1
    assert out.mode == "RGB" and out.size == photo.size
    off = np.abs(np.asarray(out, dtype=int) - _golden("rgb_u8"))
    assert off.max() <= 1, int(off.max())
    # the class head is freed at inference
    assert engine.net.class_dense is None


def test_intensity_scales_the_chroma_on_the_same_lightness(engine, photo):
    ab = _golden_nchw("ab")
    ab = cg.ab_uint8(ab).float() - 128
    gray = np.asarray(engine.join(photo, ab, intensity=0.0), dtype=int)
    assert (gray.max(axis=2) - gray.min(axis=2)).max() <= 1  # no chroma left
    half = color.rgb_to_lab(torch.from_numpy(np.array(engine.join(photo, ab, intensity=0.5))).permute(2, 0, 1))
    full = color.rgb_to_lab(torch.from_numpy(np.array(engine.join(photo, ab))).permute(2, 0, 1))
    assert torch.hypot(half[1], half[2]).mean() < torch.hypot(full[1], full[2]).mean()


def test_the_network_takes_only_224(net):
    with pytest.raises(ValueError, match="224x224"):
        net(torch.zeros(1, 3, 256, 256))


# --- pitfalls, reintroduced ------------------------------------------------------------------------


def _block1(arrays, kernel=cg.conv_kernel, x=None) -> torch.Tensor:
    """VGG block 1 (conv, conv, pool) from the file's first four arrays, converted by `kernel`."""
    (_, k1), (_, b1), (_, k2), (_, b2) = arrays[:4]
    x = _golden_nchw("net_in") if x is None else x
    w1, w2 = (torch.from_numpy(np.ascontiguousarray(kernel(k))) for k in (k1, k2))
    y = F.relu(F.conv2d(x, w1, torch.from_numpy(b1), padding=1))
    return F.max_pool2d(F.relu(F.conv2d(y, w2, torch.from_numpy(b2), padding=1)), 2)


def test_block1_from_the_file_matches(arrays):
    assert _matches(_block1(arrays), "vgg_block1_pool")


@pytest.mark.parametrize("kernel", [lambda k: k.transpose(3, 2, 1, 0),  # kh and kw swapped
                                    lambda k: k.reshape(k.shape[3], k.shape[2], k.shape[0], k.shape[1]),
                                    lambda k: k.transpose(3, 2, 0, 1)[:, :, ::-1, ::-1]],  # a true convolution
                         ids=["permute_3210", "reshape", "flipped"])
def test_conv_kernel_layout_mistakes_are_caught(arrays, kernel):
    assert not _matches(_block1(arrays, kernel), "vgg_block1_pool")


@pytest.mark.parametrize("prepare", [lambda x: x[:, [2, 1, 0]] * 255 - torch.tensor([103.939, 116.779, 123.68])
                                     [None, :, None, None],  # keras vgg16.preprocess_input
                                     lambda x: (x * 100 - 50) / 100],  # Zhang et al.'s (L - 50) / 100
                         ids=["imagenet_preprocessing", "zhang_normalisation"])
def test_input_normalisation_mistakes_are_caught(arrays, prepare):
    assert not _matches(_block1(arrays, x=prepare(_golden_nchw("net_in"))), "vgg_block1_pool")


def test_dense_kernel_not_transposed_is_caught(arrays, net):
    """Pitfall 4: dense_5 is square, so a missing transpose loads without error."""
    kernel = dict(arrays)["dense_5/dense_5/kernel:0"]
    head = copy.deepcopy(net.class_dense)
    with torch.no_grad():
        head[1].weight.copy_(torch.from_numpy(kernel))
    bn4 = _golden_nchw("global_bn4").permute(0, 2, 3, 1).flatten(1)
    with torch.inference_mode():
        assert not _matches(head[1](head[0](bn4)), "class_dense5")


def test_channels_first_flatten_is_caught(net):
    bn4 = _golden_nchw("global_bn4")
    with torch.inference_mode():
        assert not _matches(net.global_dense(bn4.flatten(1)), "global_dense3")
        assert not _matches(net.class_dense(bn4.flatten(1)), "class_logits")


def test_symmetric_padding_of_the_stride_2_convs_is_caught(net, monkeypatch):
    monkeypatch.setattr(cg, "tf_same_pad", lambda x, kernel, stride: F.pad(x, (1, 1, 1, 1))[..., :-1, :-1])
    with torch.inference_mode():
        assert not _matches(net.global_convs(_golden_nchw("vgg_trunk_block4_conv3")), "global_bn4")


@pytest.mark.parametrize("mistake", ["eps_1e-5", "train_mode", "bn_before_relu"])
def test_batch_norm_mistakes_are_caught(net, monkeypatch, mistake):
    convs = copy.deepcopy(net.global_convs)
    if mistake == "eps_1e-5":
        for block in convs:
            block.bn.eps = 1e-5
    elif mistake == "train_mode":
        convs.train()
    else:
        monkeypatch.setattr(cg.ConvBN, "forward", lambda self, x: F.relu(self.bn(self.conv(
            x if self.stride == 1 else cg.tf_same_pad(x, 3, self.stride)))))
    with torch.no_grad():
        assert not _matches(convs(_golden_nchw("vgg_trunk_block4_conv3")), "global_bn4")


def test_relu_after_the_dense_layers_is_caught(net):
    x = _golden_nchw("global_bn4").permute(0, 2, 3, 1).flatten(1)
    with torch.inference_mode():
        for layer in net.global_dense:
            x = F.relu(layer(x))
        assert not _matches(x, "global_dense3")


def test_fusion_order_is_caught(net):
    mid, vector = _golden_nchw("mid_bn6"), _golden_nchw("global_dense3")
    spread = vector[:, :, None, None].expand(-1, -1, 28, 28)
    with torch.inference_mode():
        assert not _matches(F.relu(net.fusion(torch.cat((spread, mid), dim=1))), "fusion_conv1x1")


def test_bilinear_upsampling_is_caught(net, monkeypatch):
    logits = _golden_nchw("ab_logits_112")
    bilinear = F.interpolate(torch.sigmoid(logits), scale_factor=2, mode="bilinear", align_corners=False)
    assert not _matches(bilinear, "ab")
    nearest = F.interpolate(torch.sigmoid(logits), scale_factor=2, mode="nearest")
    assert _matches(nearest, "ab")
    original = F.interpolate
    monkeypatch.setattr(F, "interpolate", lambda x, scale_factor, mode: original(x, scale_factor=scale_factor,
                                                                                   mode="bilinear"))
    with torch.inference_mode():
        assert not _matches(net.ab_logits(_golden_nchw("fusion_conv1x1")), "ab_logits_112")


# input pipeline: the L the network sees (levels of 1/255)


def _exact_l_u8(pixels: np.ndarray) -> np.ndarray:
    """round(L* x 255/100) from exact formulas (what skimage would give), not OpenCV's integer tables."""
    lightness = color.lightness_from_gray_uint8(torch.from_numpy(pixels)).numpy()
    return np.rint(lightness * 255 / 100).astype(np.uint8)


def test_input_pipeline_mistakes_are_caught(photo):
    gray = np.array(photo)
    golden = _golden("L224_u8")
    opencv_small = cg.resize_uint8(torch.from_numpy(gray)[None], 224, 224)[0].numpy()
    assert not np.array_equal(_exact_l_u8(opencv_small), golden)  # exact formulas instead of OpenCV's 8-bit L
    pil_small = np.array(photo.resize((224, 224), Image.BILINEAR))  # antialiased
    assert not np.array_equal(cg.lightness_uint8(torch.from_numpy(pil_small)).numpy(), golden)
    l_full = cg.lightness_uint8(torch.from_numpy(gray))  # the L channel resized instead of the image
    assert not np.array_equal(cg.resize_uint8(l_full[None], 224, 224)[0].numpy(), golden)


# output pipeline: from the golden ab


def test_output_pipeline_mistakes_are_caught(engine, photo):
    ab01 = _golden_nchw("ab")
    rounded = (ab01 * 255).round().clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()
    assert not np.array_equal(rounded, _golden("ab_u8_224"))  # rounding, not truncation
    ab_u8 = cg.ab_uint8(ab01)
    floats = F.interpolate(ab_u8.float(), size=(photo.height, photo.width), mode="bilinear", align_corners=False)
    assert not np.array_equal(floats.to(torch.uint8)[0].permute(1, 2, 0).numpy(), _golden("ab_u8_full"))
    golden_rgb = _golden("rgb_u8")
    ab = ab_u8.float() - 128

    def levels_off(rgb: Image.Image) -> int:
        return int(np.abs(np.asarray(rgb, dtype=int) - golden_rgb).max())

    assert levels_off(engine.join(photo, ab)) <= 1
    assert levels_off(engine.join(photo, ab[:, [1, 0]])) > 1  # a and b swapped
    assert levels_off(engine.join(photo, (ab + 128) / 255 * 220 - 110)) > 1  # read as Zhang et al.'s ab/110
    small_l = Image.fromarray(np.array(photo.resize((224, 224), Image.BILINEAR).resize(photo.size, Image.BILINEAR)))
    resized_back = engine.join(small_l, ab)  # the 224 L resized back instead of the photo's own
    assert levels_off(resized_back) > 1


def test_reduced_precision_is_close(net):
    """bfloat16, the worker's default on CPUs with native bf16 (float16 on CUDA is the same code): the
    engine's network without its class head, as the engine holds it."""
    head, net.class_dense = net.class_dense, None
    try:
        reduced = copy.deepcopy(net).to(dtype=torch.bfloat16, memory_format=torch.channels_last)
    finally:
        net.class_dense = head
    x = _golden_nchw("net_in")
    with torch.inference_mode():
        ab = reduced(x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)).float()
    golden = _golden("ab")
    # measured: relL2 9.5e-3, max 0.0104 (2.7 levels of the 8-bit a, b; about half of them move by 1-2)
    assert 0 < _rel(_nhwc(ab), golden) <= 0.02 and np.abs(_nhwc(ab) - golden).max() <= 0.02


# 8-bit Lab -> cv2.cvtColor(..., COLOR_Lab2RGB), measured with OpenCV 5.1.0 (opencv-python-headless, not a
# dependency): strong yellows beyond the gamut, where OpenCV lets Z go negative and scikit-image clips it.
OPENCV_LAB2RGB = [((20, 89, 225), (28, 33, 0)), ((32, 106, 240), (52, 36, 0)), ((25, 103, 228), (44, 32, 0)),
                  ((12, 122, 227), (52, 12, 0)), ((8, 118, 251), (55, 8, 0))]


def test_lab_to_rgb_follows_opencv_where_it_differs_from_scikit_image():
    lab = torch.tensor([lab for lab, _ in OPENCV_LAB2RGB], dtype=torch.float32).T[:, None, :]  # (3, 1, 5)
    lightness, ab = lab[:1] * 100 / 255, lab[1:] - 128
    expected = np.array([rgb for _, rgb in OPENCV_LAB2RGB])

    def rgb(clip_z: bool) -> np.ndarray:
        return color.lab_to_rgb_uint8(lightness, ab, clip_z=clip_z)[:, 0].T.numpy().astype(int)

    assert cg.ChromaGANEngine.clip_z is False
    assert np.abs(rgb(clip_z=False) - expected).max() <= 1
    assert np.abs(rgb(clip_z=True) - expected).max() > 20  # scikit-image's clip, the other engines' default
