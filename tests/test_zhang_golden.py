"""ECCV16 and SIGGRAPH17 against the authors' own code (richzhang/colorization), run on fixed inputs with
the shared deterministic stand-in weights (../shared/weights/golden/README_colorization.md).

Network level: our networks take L normalised as (L - 50) / 100 and return ab in CIE units, as the
reference's forward does internally. Pipeline level: the photo's own full-resolution lightness joined
with the upsampled ab, which the reference computes with scikit-image in float64 and we with tables
straight to 8 bits (so within one level).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image

from models.colorize.zhang import ECCV16Engine, SIGGRAPH17Engine
from models.config import ModelConfig
from models.weights import load_into
from tests.conftest import SHARED

GOLDEN = SHARED / "weights" / "golden"
sys.path.insert(0, str(SHARED / "weights"))
from standin import layout, make_standin  # noqa: E402

CASES = {  # engine, stand-in seed, ab tolerance (CIE units) from the golden README
    "eccv16": (ECCV16Engine, 1601, 1e-4),
    "siggraph17": (SIGGRAPH17Engine, 1701, 1e-3),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def engine(request, tmp_path_factory):
    cls, seed, atol = CASES[request.param]
    torch.set_num_threads(2)
    path = tmp_path_factory.mktemp("golden") / cls.files[0].filename
    torch.save({k: torch.from_numpy(v) for k, v in make_standin(layout("official.json", cls.name), seed).items()},
               path)
    config = ModelConfig(device="cpu", reduced_precision=False, weight_overrides={cls.files[0].filename: path})
    e = cls(torch.device("cpu"), config)
    e.atol = atol
    return e


def test_network_output(engine):
    l_in = torch.from_numpy(np.load(GOLDEN / "zhang_net_input_L.npy"))
    with torch.inference_mode():
        ab = engine.net((l_in - 50) / 100).numpy()
    golden = np.load(GOLDEN / f"{engine.name}_net_out_ab.npy")
    assert np.abs(ab - golden).max() <= engine.atol


def test_pipeline_input_and_output(engine):
    img = Image.open(GOLDEN / "zhang_coffee_gray_400x267.png")
    assert img.mode == "L"
    small = img.resize((256, 256), Image.BICUBIC)  # as predict_ab does
    l_rs = engine.lightness(small).numpy()
    assert np.abs(l_rs - np.load(GOLDEN / "zhang_pipe_L_rs.npy")[0]).max() < 1e-4
    assert np.abs(engine.lightness(img).numpy() - np.load(GOLDEN / "zhang_pipe_L_orig.npy")[0]).max() < 1e-4
    with torch.inference_mode():
        ab = engine.predict_ab(img)
    assert np.abs(ab.numpy() - np.load(GOLDEN / f"{engine.name}_pipe_out_ab.npy")).max() <= engine.atol
    rgb = np.asarray(engine(img), dtype=np.float64)
    golden = np.load(GOLDEN / f"{engine.name}_pipe_rgb.npy").astype(np.float64) * 255
    assert rgb.shape == golden.shape and np.abs(rgb - golden).max() <= 1.0  # 8-bit output: within a level


def test_a_changed_layer_is_caught(engine):
    """The golden catches what the README lists: a BatchNorm eps of 1e-3 instead of 1e-5 moves ab past it."""
    net = type(engine.net)()
    load_into(net, engine.net.state_dict(), "golden")
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eps = 1e-3
    l_in = torch.from_numpy(np.load(GOLDEN / "zhang_net_input_L.npy"))
    with torch.inference_mode():
        ab = net.eval()((l_in - 50) / 100).numpy()
    assert np.abs(ab - np.load(GOLDEN / f"{engine.name}_net_out_ab.npy")).max() > engine.atol
