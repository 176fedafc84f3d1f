"""The adain engine reproduces pytorch-AdaIN's golden vectors (STYLE.md): relu4_1 features, the AdaIN
output t, and the decoded results at alpha 1 and 0.5, float32 and 2 threads, on the shared-rule
stand-ins loaded through the engine's own loader.

Not covered, because paintbot does not implement it: `adain_style_coral.npy` and
`adain_out_preserve_color.npy` (pytorch-AdaIN's --preserve_color, CORAL on the style image).
paintbot's keep-colours works differently (the photo's Lab chroma under the painted lightness).
"""

from __future__ import annotations

import pytest
import torch

from models import engines
from models.config import ModelConfig
from models.style import adain
from tests.style_golden import FEATURES, assert_matches, image, tensor, write_standin


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the goldens' setting
    d = tmp_path_factory.mktemp("adain-golden-standins")
    config = ModelConfig(device="cpu", cache_dir=d, reduced_precision=False, weight_overrides={
        adain.ENCODER_FILE.filename: write_standin("adain_vgg_normalised", d / "vgg.pth"),
        adain.DECODER_FILE.filename: write_standin("adain_decoder", d / "decoder.pth")})
    s = engines.load("adain", "style", config=config)
    assert s.name == "adain" and s.dtype == torch.float32
    yield s
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def features(engine):
    with torch.no_grad():
        return engine.encode(tensor("adain_content")), engine.encode(tensor("adain_style"))


def test_relu4_1_features(features):
    content, style_feats = features
    assert_matches(content, "adain_relu4_1_content", FEATURES)
    assert_matches(style_feats, "adain_relu4_1_style", FEATURES)


def test_adain_output(features):
    content, style_feats = features
    assert_matches(adain.adain(content, *adain.channel_stats(style_feats)), "adain_t_alpha1", FEATURES)


def test_decoded_at_full_strength(engine):
    with torch.no_grad():
        t = tensor("adain_t_alpha1")
        assert_matches(engine.dec(t.contiguous(memory_format=torch.channels_last)), "adain_out_alpha1", FEATURES)


@pytest.mark.parametrize("strength, name", [(1.0, "adain_out_alpha1"), (0.5, "adain_out_alpha0.5")])
def test_the_engine_paints_the_golden_output(engine, strength, name):
    """Through the engine's own steps (style statistics, blend in feature space, decoder); it clamps
    to [0, 1] where the golden is raw, so the comparison is with the clamped golden."""
    with torch.no_grad():
        out = engine.paint(tensor("adain_content"), image("adain_style.png"), strength, None)
    assert (out - tensor(name).clamp(0, 1)).abs().max() <= FEATURES.max_abs
    assert out.gt(0).float().mean() > 0.05  # enough of the golden is inside [0, 1] to compare
