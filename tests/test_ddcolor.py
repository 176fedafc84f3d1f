"""DDColor (models/colorize/ddcolor.py) against the authors' golden vectors, with the stand-in weights that
produced them (shared/weights/golden/DDCOLOR.md): layouts, strict loading, float32 parity of ab and of
three intermediates, our torch preprocessing and colour join against the authors' OpenCV ones, and the
mistakes the goldens must catch, each injected into a loaded network.

Float32 on 2 threads; each network is built once per module (the large one is ~0.9 GB).
"""

from __future__ import annotations

import copy
import json
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from models import color, fetch
from models import weights as weight_files
from models.colorize import ddcolor
from tests.conftest import SHARED

sys.path.insert(0, str(SHARED / "weights"))
from standin import fingerprint, layout, make_standin  # noqa: E402

GOLDEN = SHARED / "weights" / "golden"
LAYOUTS = json.loads((SHARED / "weights" / "ddcolor.json").read_text())["checkpoints"]
MANIFEST = json.loads((GOLDEN / "ddcolor_golden_manifest.json").read_text())["standin_fingerprints"]
CPU = torch.device("cpu")
GOLDENS = [("tiny", 256), ("tiny", 512), ("large", 256)]

# DDCOLOR.md's acceptance for a float32 implementation (float32 noise there: ~1e-4 max, ~3e-6 relL2).
AB_MAX, AB_REL = 5e-4, 1e-5
INTERMEDIATE_REL = 1e-5
# Our exact CIE Lab formulas vs the authors' OpenCV (a 33^3 lookup table for RGB->Lab). Measured here:
# network input max 1.96e-3 (256) / 1.99e-3 (512); the final RGB from the golden ab, relL2 2.3e-3 and
# max 6.7e-3 (tiny; 21.7% of 8-bit values off by 1-2, none by more) / 0.026 (large: its ab reaches
# 130, where the conversion is steeper; 0.12% of values off by 3-7); end to end (our input through the
# network) ab relL2 5.3e-3 (tiny 256), 5.7e-3 (tiny 512), 8.8e-3 (large), RGB relL2 2.6e-3 / 2.7e-3 /
# 5.9e-3 with 0.014% / 0.021% / 1.1% of 8-bit values off by more than 2 levels.
NET_IN_MAX = 2.5e-3
RGB_REL = 3e-3
RGB_MAX = {"tiny": 1e-2, "large": 0.03}
END_TO_END_AB_REL = {"tiny": 8e-3, "large": 1.3e-2}
END_TO_END_RGB_REL = {"tiny": 4e-3, "large": 8e-3}
END_TO_END_BEYOND_2_LEVELS = {"tiny": 1e-3, "large": 2e-2}


pytestmark = pytest.mark.usefixtures("two_threads")


def _standin(size: str) -> dict:
    """The stand-in checkpoint of DDCOLOR.md (bare state_dict of torch tensors), checked by fingerprint."""
    expected = MANIFEST[size]
    sd = make_standin(layout("ddcolor.json", size), seed=expected["seed"])
    assert fingerprint(sd) == expected["sha256_le_bytes_sorted_keys"]
    return {k: torch.from_numpy(v) for k, v in sd.items()}


@pytest.fixture(scope="module")
def tiny_checkpoint() -> dict:
    return _standin("tiny")


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint) -> ddcolor.DDColor:
    return ddcolor.load_network("tiny", tiny_checkpoint, "tiny stand-in", CPU)


@pytest.fixture(scope="module")
def large() -> ddcolor.DDColor:
    return ddcolor.load_network("large", _standin("large"), "large stand-in", CPU)


@pytest.fixture(scope="module")
def networks(tiny, large) -> dict:
    return {"tiny": tiny, "large": large}


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.open(GOLDEN / "ddcolor_input_gray_400x267.png").convert("RGB")


def _golden(name: str) -> np.ndarray:
    return np.load(GOLDEN / f"ddcolor_{name}.npy")


def _rel(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@torch.inference_mode()
def _ab(net: ddcolor.DDColor, size: int) -> np.ndarray:
    x = torch.from_numpy(_golden(f"tiny_{size}_net_in"))  # the large golden ran on the same input
    return net(x.contiguous(memory_format=torch.channels_last)).numpy()


def _ab_matches(ab: np.ndarray, golden: np.ndarray) -> bool:
    return np.abs(ab - golden).max() <= AB_MAX and _rel(ab, golden) <= AB_REL


def _join(photo: Image.Image, ab: torch.Tensor, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """The colour join as the shared framing does it: ab upsampled with `mode` onto the photo's own
    lightness; (RGB float in 0..1, 8-bit RGB), both H x W x 3."""
    lightness = color.lightness(torch.from_numpy(np.array(photo)).permute(2, 0, 1))
    ab_full = F.interpolate(ab, size=lightness.shape[-2:], mode=mode)[0]
    rgb = color.lab_to_rgb(torch.cat((lightness, ab_full)))
    rgb8 = color.lab_to_rgb_uint8(lightness, ab_full)
    return rgb.permute(1, 2, 0).numpy(), rgb8.permute(1, 2, 0).numpy()


def _levels_off(rgb8: np.ndarray, golden_rgb: np.ndarray) -> np.ndarray:
    """|8-bit ours - the 8-bit image the reference writes, (x * 255).round()|."""
    return np.abs(rgb8.astype(int) - (golden_rgb * 255).round().astype(int))


# --- layouts and loading -------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["tiny", "large"])
def test_layout_is_the_published_one(networks, size):
    net, doc = networks[size], LAYOUTS[size]
    assert [(k, list(v.shape)) for k, v in net.state_dict().items()] == list(doc["state_dict"].items())
    assert sum(p.numel() for p in net.parameters()) == doc["param_count"]
    assert not net.training


def test_wrapped_or_bare_with_or_without_head_cls_all_load(tiny, tiny_checkpoint, tmp_path):
    head_cls = {"encoder.arch.head_cls.weight": torch.ones(4, 768), "encoder.arch.head_cls.bias": torch.ones(4)}
    for checkpoint in ({"params": tiny_checkpoint}, {**tiny_checkpoint, **head_cls}, tiny_checkpoint):
        assert ddcolor.prepare_state_dict(checkpoint).keys() == tiny_checkpoint.keys()
    path = tmp_path / "ddcolor_paper_tiny.pth"
    torch.save({"params": {**tiny_checkpoint, **head_cls}}, path)  # as DDColor-models/*.pth very probably are
    net = ddcolor.load_network("tiny", weight_files.load_state_dict(path), path, CPU)
    expected = tiny.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in net.state_dict().items())
    assert torch.equal(net.refine_net[0][0].weight, tiny.refine_net[0][0].weight)  # recomputed on load


def _load_error(checkpoint: dict) -> str:
    with pytest.raises(fetch.FetchError) as e:
        ddcolor.load_network("tiny", checkpoint, "bad.pth", CPU)
    assert "\n" not in str(e.value) and "bad.pth" in str(e.value)
    return str(e.value)


def test_wrong_layouts_are_one_line_errors(tiny_checkpoint):
    key = "decoder.color_decoder.query_feat.weight"
    assert key in _load_error({**tiny_checkpoint, key: torch.zeros(99, 256)})
    missing = dict(tiny_checkpoint)
    del missing["decoder.last_shuf.conv.0.weight_u"]
    assert "decoder.last_shuf.conv.0.weight_u" in _load_error(missing)
    # only the documented extras are dropped: any other key is an error
    assert "encoder.arch.head_det.weight" in _load_error({**tiny_checkpoint, "encoder.arch.head_det.weight":
                                                          torch.zeros(4)})
    # a plain `weight` where the file should hold the spectral-norm triple
    sn = "refine_net.0.0"
    plain = {k: v for k, v in tiny_checkpoint.items() if not k.startswith(f"{sn}.weight_")}
    assert f"{sn}.weight" in _load_error({**plain, f"{sn}.weight": tiny_checkpoint[f"{sn}.weight_orig"]})


def test_large_checkpoint_does_not_load_as_tiny(large):
    with pytest.raises(fetch.FetchError, match="shape"):
        ddcolor.load_network("tiny", large.state_dict(), "large.pth", CPU)


# --- float32 parity ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_256_run(tiny) -> dict:
    """The tiny network on the golden 256 input: ab and the three intermediates DDCOLOR.md stores."""
    captured = {}
    watch = {"enc_norm3": tiny.encoder.arch.norm3, "dec_out0": tiny.decoder.layers[0],
             "color_embed": tiny.decoder.color_decoder}
    hooks = [module.register_forward_hook(lambda m, i, out, name=name: captured.__setitem__(name, out.numpy()))
             for name, module in watch.items()]
    try:
        captured["ab"] = _ab(tiny, 256)
    finally:
        for h in hooks:
            h.remove()
    return captured


@pytest.mark.parametrize("size,input_size", GOLDENS)
def test_ab_matches_golden(networks, tiny_256_run, size, input_size):
    ab = tiny_256_run["ab"] if (size, input_size) == ("tiny", 256) else _ab(networks[size], input_size)
    golden = _golden(f"{size}_{input_size}_ab")
    assert ab.shape == golden.shape == (1, 2, input_size, input_size)
    assert np.abs(ab - golden).max() <= AB_MAX
    assert _rel(ab, golden) <= AB_REL


@pytest.mark.parametrize("name", ["enc_norm3", "dec_out0", "color_embed"])
def test_intermediates_match_golden(tiny_256_run, name):
    golden = _golden(f"tiny_256_{name}")
    assert tiny_256_run[name].shape == golden.shape
    assert _rel(tiny_256_run[name], golden) <= INTERMEDIATE_REL


def test_spectral_weights_come_from_the_stored_vectors(tiny, tiny_checkpoint):
    for name, module in tiny.named_modules():
        if isinstance(module, ddcolor.SpectralConv2d):
            w, u, v = (tiny_checkpoint[f"{name}.weight_{part}"].double() for part in ("orig", "u", "v"))
            sigma = u @ w.flatten(1) @ v
            torch.testing.assert_close(module.weight.double(), w / sigma, rtol=1e-5, atol=1e-7)


# --- preprocessing and the colour join -----------------------------------------------------------


@pytest.mark.parametrize("input_size", [256, 512])
def test_network_input_matches_reference_within_the_lab_difference(photo, input_size):
    x = ddcolor.network_input(photo, input_size, CPU)
    golden = _golden(f"tiny_{input_size}_net_in")
    assert x.shape == golden.shape and x.dtype == torch.float32
    assert np.abs(x.numpy() - golden).max() <= NET_IN_MAX
    assert torch.equal(ddcolor.network_input(photo.convert("L"), input_size, CPU), x)


def test_input_size_must_be_a_multiple_of_32(photo, tiny):
    with pytest.raises(ValueError, match="multiple of 32"):
        ddcolor.network_input(photo, 500, CPU)
    with pytest.raises(ValueError, match="multiples of 32"):
        tiny(torch.zeros(1, 3, 100, 64))


@pytest.mark.parametrize("size,input_size", GOLDENS)
def test_golden_ab_joined_gives_the_reference_rgb(photo, size, input_size):
    ab = torch.from_numpy(_golden(f"{size}_{input_size}_ab"))
    golden_rgb = _golden(f"{size}_{input_size}_rgb")
    rgb, rgb8 = _join(photo, ab, ddcolor.AB_UPSAMPLING)
    assert rgb.shape == golden_rgb.shape
    assert _rel(rgb, golden_rgb) <= RGB_REL
    assert np.abs(rgb - golden_rgb).max() <= RGB_MAX[size]
    if size == "tiny":
        assert _levels_off(rgb8, golden_rgb).max() <= 2
    # mistake: ab upsampled bilinearly (what Zhang et al.'s framing does) moves the result ~20x further
    assert _rel(_join(photo, ab, "bilinear")[0], golden_rgb) > 10 * RGB_REL


@pytest.mark.parametrize("size,input_size", [("tiny", 256), ("large", 256)])
def test_end_to_end_from_the_photo(networks, photo, size, input_size):
    colorizer = ddcolor.DDColorColorizer(networks[size], CPU, input_size=input_size)
    ab = colorizer.predict_ab(photo)
    assert ab.shape == (1, 2, input_size, input_size) and ab.dtype == torch.float32
    assert _rel(ab.numpy(), _golden(f"{size}_{input_size}_ab")) <= END_TO_END_AB_REL[size]
    golden_rgb = _golden(f"{size}_{input_size}_rgb")
    rgb, rgb8 = _join(photo, ab, ddcolor.AB_UPSAMPLING)
    assert _rel(rgb, golden_rgb) <= END_TO_END_RGB_REL[size]
    assert (_levels_off(rgb8, golden_rgb) > 2).mean() <= END_TO_END_BEYOND_2_LEVELS[size]


def test_reduced_precision_is_close(tiny, tiny_checkpoint, photo):
    """bfloat16 (float16 on CUDA is the same code): a smoke test at 32 x 32, where bfloat16 without native
    CPU support (slow convolutions) is affordable; DDCOLOR.md measured relL2 1.3-2% under autocast."""
    net = ddcolor.load_network("tiny", tiny_checkpoint, "tiny stand-in", CPU, dtype=torch.bfloat16)
    reduced = ddcolor.DDColorColorizer(net, CPU, dtype=torch.bfloat16, input_size=32).predict_ab(photo)
    full = ddcolor.DDColorColorizer(tiny, CPU, input_size=32).predict_ab(photo)
    assert reduced.dtype == torch.float32
    assert 0 < _rel(reduced.numpy(), full.numpy()) <= 0.06  # measured 0.038


# --- mistakes the goldens catch ------------------------------------------------------------------
# Each is injected into a copy of the loaded network (or, for the layer order, the class method).


@pytest.fixture
def mutant(tiny) -> ddcolor.DDColor:
    return copy.deepcopy(tiny)


def _power_iteration_sigma(w, u, v):
    v = F.normalize(w.t() @ u, dim=0, eps=1e-12)
    u = F.normalize(w @ v, dim=0, eps=1e-12)
    return u @ w @ v


def _svd_sigma(w, u, v):
    """The largest singular value (what an SVD gives), from the eigenvalues of the smaller Gram matrix:
    LAPACK's SVD of the 512 x 8064 matrices takes seconds."""
    gram = w @ w.t() if w.shape[0] <= w.shape[1] else w.t() @ w
    return torch.linalg.eigvalsh(gram)[-1].sqrt()


@pytest.mark.parametrize("sigma", [_power_iteration_sigma, _svd_sigma], ids=["power_iteration", "svd"])
def test_spectral_norm_not_from_the_stored_vectors_is_caught(mutant, monkeypatch, sigma):
    monkeypatch.setattr(ddcolor, "spectral_sigma", sigma)
    mutant.load_state_dict(mutant.state_dict())  # loading is what computes the weights
    assert not _ab_matches(_ab(mutant, 256), _golden("tiny_256_ab"))


def test_train_mode_is_caught_and_changes_no_spectral_state(tiny, mutant):
    spectral = {k: v.clone() for k, v in mutant.state_dict().items() if ".weight_" in k}
    assert not _ab_matches(_ab(mutant.train(), 256), _golden("tiny_256_ab"))  # BatchNorm on batch statistics
    # unlike torch's spectral_norm, which runs a power iteration in train mode and overwrites u and v
    assert all(torch.equal(mutant.state_dict()[k], v) for k, v in spectral.items())
    assert all(torch.equal(m.weight, o.weight) for m, o in zip(mutant.modules(), tiny.modules())
               if isinstance(m, ddcolor.SpectralConv2d))


def test_batch_norm_before_relu_in_the_decoder_is_caught(mutant):
    for block in mutant.decoder.layers:
        conv, relu, bn = block.conv
        block.conv = nn.Sequential(conv, bn, relu)
    assert not _ab_matches(_ab(mutant, 256), _golden("tiny_256_ab"))


def _self_attention_first(self, i, queries, memory, memory_with_pos, query_pos):
    queries = self.transformer_self_attention_layers[i](queries, query_pos)
    queries = self.transformer_cross_attention_layers[i](queries, memory, memory_with_pos, query_pos)
    return self.transformer_ffn_layers[i](queries)


def test_self_attention_before_cross_attention_is_caught(tiny, monkeypatch):
    monkeypatch.setattr(ddcolor.ColorDecoder, "decoder_layer", _self_attention_first)
    assert not _ab_matches(_ab(tiny, 256), _golden("tiny_256_ab"))


class _RowMajorPixelShuffle(nn.Module):
    """Pixel shuffle reading input channels in (r, r, c) order instead of torch's (c, r, r)."""

    def __init__(self, scale: int):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        b, c, h, w = x.shape
        r = self.scale
        return x.reshape(b, r, r, c // (r * r), h, w).permute(0, 3, 4, 1, 5, 2).reshape(b, -1, h * r, w * r)


def test_pixel_shuffle_channel_order_is_caught(mutant):
    for block in mutant.decoder.layers:
        block.shuf.shuffle = _RowMajorPixelShuffle(2)
    assert not _ab_matches(_ab(mutant, 256), _golden("tiny_256_ab"))


def test_layer_norm_eps(tiny):
    """eps 1e-6 in the encoder (1e-5 moves ab by only relL2 6e-6, below the tolerance), torch's 1e-5
    in the colour decoder: checked by what each LayerNorm computes on features whose variance is ~eps."""
    x = torch.randn(1, 5, 5, 768, dtype=torch.float64) * 1e-3
    layer_norms = (nn.LayerNorm, ddcolor.ChannelsFirstLayerNorm)
    norms = [(m, 1e-6) for m in tiny.encoder.modules() if isinstance(m, layer_norms)]
    norms += [(m, 1e-5) for m in tiny.decoder.color_decoder.modules() if isinstance(m, nn.LayerNorm)]
    blocks = sum(ddcolor.ENCODERS["tiny"][0])
    assert len(norms) == (4 + 4 + 1 + blocks) + (3 * ddcolor.DECODER_LAYERS + 1)
    for module, eps in norms:
        ln = copy.deepcopy(module).double()
        with torch.no_grad():
            ln.weight.fill_(1)
            ln.bias.zero_()
            features = x[..., :ln.weight.shape[0]]
            if isinstance(ln, ddcolor.ChannelsFirstLayerNorm):
                out = ln(features.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
            else:
                out = ln(features)
        centred = features - features.mean(-1, keepdim=True)
        expected = centred / torch.sqrt((centred**2).mean(-1, keepdim=True) + eps)
        torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-9)
