"""The upscale engines (Real-ESRGAN through spandrel): stand-in files in the published formats are recognised by
spandrel through paintbot's verify-and-pin path (downloaded from loopback, pinned, wrong files refused in one
line); what paintbot does around the network is held here: the [0, 1] range, the authors' denoise blend of
two networks' weights, 4x then Lanczos to 2x, the long-side limit, black-and-white kept so, and tiling.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from models import engines, fetch, weights
from models.config import ModelConfig
from models.restore import upscale
from tests.enhance_standins import compact_state_dict, rrdb_state_dict, write_compact, write_x4plus


def photo(w=40, h=28, gray=False) -> Image.Image:
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([(xx * 6) % 256, (yy * 9) % 256, ((xx + yy) * 4) % 256], -1).astype(np.uint8)
    img = Image.fromarray(rgb, "RGB")
    return img.convert("L") if gray else img


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("esrgan")
    return {"general": write_compact(d / "realesr-general-x4v3.pth", seed=1),
            "wdn": write_compact(d / "realesr-general-wdn-x4v3.pth", seed=2)}


def offline_config(tmp_path, folder, **settings) -> ModelConfig:
    return ModelConfig(device="cpu", cache_dir=tmp_path / "cache", weights_dir=folder, reduced_precision=False,
                       engine_settings={"upscale": upscale.UpscaleSettings(**settings)} if settings else {})


@pytest.fixture(scope="module")
def engine(files, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("up")
    return engines.load("upscale", "restore", config=offline_config(tmp, files["general"].parent))


def test_download_pins_and_loads_through_spandrel(files, file_server, tmp_path, monkeypatch):
    for p in files.values():
        (file_server.directory / p.name).write_bytes(p.read_bytes())
    served = tuple(dataclasses.replace(f, remote=dataclasses.replace(f.remote, url=file_server.url(f.filename)))
                   for f in upscale.UpscaleEngine.files)
    monkeypatch.setattr(upscale.UpscaleEngine, "files", served)
    config = ModelConfig(device="cpu", cache_dir=tmp_path / "cache", reduced_precision=False)
    loaded = engines.load("upscale", "restore", config=config)
    pins = (tmp_path / "cache" / "weights" / "pins.json").read_text()
    assert "realesr-general-x4v3.pth" in pins and "realesr-general-wdn-x4v3.pth" in pins
    # the file read back is what was saved: {"params": ...} unwrapped by spandrel, same keys and values
    saved = torch.load(files["wdn"], weights_only=True)["params"]
    got = weights.load(served[1], config).model.state_dict()
    assert got.keys() == saved.keys() and all(torch.equal(got[k], saved[k]) for k in saved)
    assert type(loaded) is upscale.UpscaleEngine


def test_wrong_files_are_one_clear_line(tmp_path):
    folder = tmp_path / "offline"
    write_x4plus(folder / "realesr-general-x4v3.pth", blocks=1)  # an RRDBNet where the compact one belongs
    torch.save({"params": {"conv.weight": torch.zeros(3, 3)}}, folder / "realesr-general-wdn-x4v3.pth")
    config = offline_config(tmp_path, folder)
    with pytest.raises(fetch.FetchError, match=r"holds a ESRGAN network, not Compact") as e:
        weights.path_of(upscale.GENERAL, config)
    assert "\n" not in str(e.value)
    with pytest.raises(fetch.FetchError, match="is not a network spandrel knows"):
        weights.path_of(upscale.WDN, config)
    assert not (tmp_path / "cache" / "weights" / "pins.json").exists()  # nothing wrong was ever pinned


def test_x4plus_in_basicsr_layout_is_recognised(tmp_path):
    sd = rrdb_state_dict(seed=3, blocks=2)
    path = write_x4plus(tmp_path / "RealESRGAN_x4plus.pth", seed=3, blocks=2)
    got = weights.load(upscale.X4PLUS, ModelConfig(cache_dir=tmp_path), path).model.state_dict()
    assert got.keys() == sd.keys() and all(torch.equal(got[k], sd[k]) for k in sd)


def test_denoise_blend_is_the_authors_weight_interpolation(files, engine, tmp_path):
    strong = torch.load(files["general"], weights_only=True)["params"]
    weak = torch.load(files["wdn"], weights_only=True)["params"]
    got = engine.net.state_dict()  # default denoise 0.5
    for k in strong:
        assert torch.allclose(got[k], 0.5 * strong[k] + 0.5 * weak[k], atol=1e-7), k
    full = engines.load("upscale", "restore", config=offline_config(tmp_path, files["general"].parent, denoise=1.0))
    assert all(torch.equal(full.net.state_dict()[k], strong[k]) for k in strong)


def residual_only(bias: float) -> dict:
    """A compact network whose learned part is a constant `bias` (its last convolution zero but for the bias):
    its 4x output is the nearest-upsampled input plus `bias`, in the network's own range."""
    sd = compact_state_dict(seed=5)
    last = max(int(k.split(".")[1]) for k in sd if k.startswith("body."))
    sd[f"body.{last}.weight"].zero_()
    sd[f"body.{last}.bias"].fill_(bias)
    return sd


def test_range_is_0_to_1(tmp_path):
    """+0.2 in [0, 1] is +51 grey levels; were the photo fed as 0..255 it would be +0.2, as [-1, 1] +25.5."""
    folder = tmp_path / "offline"
    write_compact(folder / "realesr-general-x4v3.pth", state_dict=residual_only(0.2))
    write_compact(folder / "realesr-general-wdn-x4v3.pth", state_dict=residual_only(0.2))
    e = engines.load("upscale", "restore", config=offline_config(tmp_path, folder))
    img = Image.fromarray(np.full((16, 20, 3), 100, np.uint8), "RGB")
    out = np.asarray(e(img, scale=4)).astype(int)
    assert out.shape == (64, 80, 3) and np.all(out == 151)
    ramp = photo(20, 16)
    out = np.asarray(e(ramp, scale=4)).astype(int)
    expect = np.minimum(np.asarray(ramp).astype(int).repeat(4, 0).repeat(4, 1) + 51, 255)
    assert np.abs(out - expect).max() <= 1


def test_2x_is_4x_resized_with_lanczos(engine):
    img = photo()
    four = engine(img, scale=4)
    two = engine(img, scale=2)
    assert four.size == (160, 112) and two.size == (80, 56) and two.mode == "RGB"
    assert np.array_equal(np.asarray(two), np.asarray(four.resize((80, 56), Image.Resampling.LANCZOS)))


def test_never_past_the_long_side(engine, monkeypatch):
    monkeypatch.setattr(engine, "settings", upscale.UpscaleSettings(max_side=100))
    e = engine
    assert e(photo(40, 28), scale=4).size == (100, 70)
    big = photo(100, 50)
    assert e(big, scale=2) is big  # already as large as allowed: unchanged
    assert upscale.output_size((1280, 960), 4, 4096) == (4096, 3072)
    assert upscale.output_size((500, 400), 2, 4096) == (1000, 800)


def test_gray_stays_gray_colour_keeps_colour(engine):
    gray = photo(gray=True)
    out = engine(gray)
    assert out.mode == "L" and out.size == (80, 56)
    rgb_gray = gray.convert("RGB")
    out2 = engine(rgb_gray)
    r, g, b = out2.split()
    assert out2.mode == "RGB" and r.tobytes() == g.tobytes() == b.tobytes()
    assert np.array_equal(np.asarray(out2)[..., 0], np.asarray(out))
    colour = engine(photo())
    assert not upscale.in_kind_of(photo(), np.asarray(colour)).mode == "L"
    assert np.asarray(colour).std(axis=2).mean() > 5  # its channels differ: colours kept


def test_tiled_equals_untiled_compact(engine):
    """The compact network sees 34 px around an output pixel: with 36 px of overlap the tiles' seams vanish
    (float rounding only, < 1e-5 of the range), borders included. 100 px wide: the middle tiles' context
    (16 + 2 x 36 px) is not the whole photo."""
    x = torch.from_numpy(np.array(photo(100, 8))).permute(2, 0, 1)[None].float() / 255
    whole = upscale.run_tiled(engine.net, x, 4, tile=512, overlap=0)
    tiled = upscale.run_tiled(engine.net, x, 4, tile=16, overlap=36)
    assert np.abs(whole - tiled).max() < 1e-5
    seams = upscale.run_tiled(engine.net, x, 4, tile=16, overlap=0)
    assert np.abs(whole - seams).max() > 1e-3  # without overlap the seams show: the test can fail


def test_tiled_close_to_untiled_rrdb(tmp_path):
    """RRDBNet sees further than the overlap: with 16 px, what is left is under one grey level (1/255)."""
    path = write_x4plus(tmp_path / "RealESRGAN_x4plus.pth", seed=4, blocks=1)
    net = weights.load(upscale.X4PLUS, ModelConfig(cache_dir=tmp_path), path).model.eval()
    x = torch.from_numpy(np.array(photo(48, 40))).permute(2, 0, 1)[None].float() / 255
    whole = upscale.run_tiled(net, x, 4, tile=512, overlap=0)
    tiled = upscale.run_tiled(net, x, 4, tile=24, overlap=16)
    assert np.abs(whole - tiled).max() < 1 / 255


def test_cuda_gets_the_large_network():
    assert upscale.engine_for("cuda") == "upscale-hq" and upscale.engine_for("cpu") == "upscale"
    assert engines.get("upscale-hq").files == (upscale.X4PLUS,)
    assert not engines.get("upscale").default_on and not engines.get("upscale-hq").default_on


def test_settings_from_the_environment():
    from models.config import ConfigError

    config = engines.config_from_env({"PAINTBOT_FACES_STRENGTH": "50", "PAINTBOT_UPSCALE_MAX_SIDE": "2048",
                                      "PAINTBOT_UPSCALE_DENOISE": "0.2"})
    assert config.settings_for(engines.get("faces")).strength == 50
    assert config.settings_for(engines.get("upscale")) == upscale.UpscaleSettings(max_side=2048, denoise=0.2)
    assert config.settings_for(engines.get("upscale-hq")) == upscale.UpscaleSettings()
    for bad in ({"PAINTBOT_FACES_STRENGTH": "150"}, {"PAINTBOT_UPSCALE_DENOISE": "2"}):
        with pytest.raises(ConfigError):
            engines.config_from_env(bad)
