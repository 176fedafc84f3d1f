"""AdaIN engine: published layouts and strict loading, the AdaIN operation, and the shared framing
(strength, keep_colors, size, grayscale, style cache), on stand-in weights."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from models import color, engines, style
from models.config import ModelConfig
from models.fetch import FetchError
from models.style import adain, framing
from tests.conftest import SHARED
from tests.harness import model_config
from tests.standins import official, standin_state_dict

PHOTO = SHARED / "styles" / "the_resevoir_at_poitiers.jpg"
PAINTING = SHARED / "styles" / "starry_night.jpg"


@pytest.fixture(scope="module")
def engine(standin_weights, tmp_path_factory):
    """The AdaIN engine from the front door (`models.style.load`), on stand-in files."""
    s = style.load("adain", "cpu", model_config(standin_weights, tmp_path_factory.mktemp("cache"),
                                                 style_max_size=None))
    assert s.name == "adain"
    return s


@pytest.fixture(scope="module")
def photo():
    return Image.open(PHOTO).convert("RGB").resize((120, 99), Image.LANCZOS)


@pytest.fixture(scope="module")
def painting():
    return Image.open(PAINTING).convert("RGB").resize((128, 80), Image.LANCZOS)


def shapes(net: torch.nn.Module) -> dict:
    return {k: list(v.shape) for k, v in net.state_dict().items()}


def test_layouts_are_the_published_files():
    assert shapes(adain.vgg_normalised()) == official()["adain_vgg_normalised"]["state_dict"]
    assert shapes(adain.decoder()) == official()["adain_decoder"]["state_dict"]
    enc = adain.vgg_normalised()[:adain.RELU4_1]
    assert isinstance(enc[0], torch.nn.Conv2d) and enc[0].kernel_size == (1, 1)
    assert isinstance(enc[1], torch.nn.ReflectionPad2d) and isinstance(enc[-1], torch.nn.ReLU)
    assert enc(torch.rand(1, 3, 64, 48)).shape == (1, 512, 8, 6)  # relu4_1: 512 channels at 1/8


def test_standin_files_load_strictly(engine, standin_weights):
    sd = standin_state_dict("adain_decoder")
    got = engine.dec.state_dict()
    assert got.keys() == sd.keys()
    assert all(torch.allclose(got[k].float(), sd[k], rtol=1e-2, atol=1e-3) for k in sd)  # stored in bf16/fp16


def test_wrong_shapes_are_a_one_line_error(tmp_path, standin_weights):
    sd = standin_state_dict("adain_decoder")
    sd["1.weight"] = sd["1.weight"][:128]
    torch.save(sd, tmp_path / "decoder.pth")
    config = engines.config_from_env({"PAINTBOT_ADAIN_ENCODER_WEIGHTS": str(standin_weights["adain_vgg_normalised"]),
                                      "PAINTBOT_ADAIN_DECODER_WEIGHTS": str(tmp_path / "decoder.pth")})
    with pytest.raises(FetchError, match=r"decoder.pth does not fit .*1\.weight: file \[128, 512, 3, 3\]") as err:
        adain.AdaINEngine(torch.device("cpu"), config)
    assert "\n" not in str(err.value)


def test_registry_files_are_verified_and_pinned(tmp_path, standin_weights):
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "vgg_normalised.pth").write_bytes(standin_weights["adain_vgg_normalised"].read_bytes())
    (folder / "decoder.pth").write_bytes(standin_weights["adain_decoder"].read_bytes())
    config = ModelConfig(weights_dir=folder, cache_dir=tmp_path / "cache")
    adain.AdaINEngine(torch.device("cpu"), config)
    assert (tmp_path / "cache" / "weights" / "pins.json").is_file()  # hashes pinned on first use
    torch.save(standin_state_dict("adain_decoder", seed=1), folder / "decoder.pth")  # swapped afterwards
    with pytest.raises(FetchError, match="corrupt file .*decoder.pth"):
        adain.AdaINEngine(torch.device("cpu"), config)


def test_default_falls_back_to_gatys_without_adain_weights(tmp_path, caplog):
    config = ModelConfig(weights_dir=tmp_path, cache_dir=tmp_path / "cache")  # offline, the files are not there
    with caplog.at_level(logging.WARNING, logger="paintbot.models"):
        s = style.load(device="cpu", config=config)
    assert s.name == "gatys"
    assert "using the gatys engine" in caplog.text
    with pytest.raises(FetchError, match="missing file .*vgg_normalised.pth"):  # asked for by name: no fallback
        style.load("adain", device="cpu", config=config)


def test_unknown_engine():
    names = ", ".join(e.name for e in engines.of_family("style"))  # every style engine, in the registry's order
    with pytest.raises(ValueError, match=f"unknown model 'cyclegan': choose one of {names}$"):
        style.load("cyclegan")


def test_adain_gives_content_features_the_style_statistics():
    g = torch.Generator().manual_seed(0)
    content = torch.randn(1, 512, 12, 9, generator=g) * 3 + 1
    style_feats = torch.rand(1, 512, 16, 10, generator=g) * 5
    mean, std = adain.channel_stats(style_feats)
    out = adain.adain(content, mean, std)
    out_mean, out_std = adain.channel_stats(out)
    torch.testing.assert_close(out_mean, mean, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out_std, std, atol=1e-3, rtol=1e-3)
    # Per channel an affine map of the content: the spatial pattern is kept.
    corr = torch.corrcoef(torch.stack((content[0, 7].flatten(), out[0, 7].flatten())))[0, 1]
    assert corr > 0.999


def test_strength_zero_is_the_decoded_content(engine, photo, painting):
    out = engine(photo, painting, strength=0.0)
    with torch.no_grad():
        c = framing.to_tensor(photo, engine.device)
        expected = framing.to_image(engine.decode(engine.encode(c), *c.shape[2:]))
    assert np.array_equal(np.asarray(out), np.asarray(expected))
    full = np.asarray(engine(photo, painting, strength=1.0), dtype=float)
    half = np.asarray(engine(photo, painting, strength=0.5), dtype=float)
    zero = np.asarray(out, dtype=float)
    assert 0 < np.abs(half - zero).mean() < np.abs(full - zero).mean()
    with pytest.raises(ValueError, match="strength must be between 0 and 1"):
        engine(photo, painting, strength=1.5)


def chroma(img: Image.Image) -> torch.Tensor:
    return color.rgb_to_lab(torch.from_numpy(np.array(img)).permute(2, 0, 1))[1:]


def test_keep_colors_keeps_the_photos_chroma(engine, photo, painting):
    painted = engine(photo, painting)
    kept = engine(photo, painting, keep_colors=True)
    target = chroma(photo)
    err_painted = (chroma(painted) - target).abs().mean()
    err_kept = (chroma(kept) - target).abs().mean()
    assert err_kept < 0.5 * err_painted
    # ...and the painted lightness, i.e. the brushwork.
    lightness = lambda im: color.lightness(torch.from_numpy(np.array(im)).permute(2, 0, 1).float() / 255)  # noqa: E731
    assert (lightness(kept) - lightness(painted)).abs().mean() < 3


def test_result_size_keeps_aspect_and_never_upscales(engine, photo, painting):
    assert engine(photo, painting, size=64).size == (64, 53)
    tall = photo.transpose(Image.Transpose.ROTATE_90)
    assert engine(tall, painting, size=72).size == (59, 72)
    assert engine(photo, painting, size=4096).size == photo.size  # no larger than the photo
    odd = photo.resize((37, 23))
    assert engine(odd, painting).size == (37, 23)  # not a multiple of 8: cropped back exactly
    with pytest.raises(ValueError, match="at least 16 pixels"):
        engine(photo, painting, size=0)


def test_default_size():
    assert framing.default_size(torch.device("cpu")) == 512
    assert framing.default_size(torch.device("cuda")) == 1024
    assert framing.default_size(torch.device("cpu"), engines.config_from_env({"PAINTBOT_STYLE_MAX_SIZE": "800"})
                                .style_max_size) == 800
    with pytest.raises(ValueError, match="PAINTBOT_STYLE_MAX_SIZE must be a whole number"):
        engines.config_from_env({"PAINTBOT_STYLE_MAX_SIZE": "big"})


def test_grayscale_content_gets_the_styles_colour(engine, photo, painting):
    gray = photo.convert("L")
    out = engine(gray, painting)
    assert out.mode == "RGB" and out.size == gray.size
    assert chroma(out).abs().mean() > 2  # colour came from the style
    kept = engine(gray, painting, keep_colors=True)
    assert chroma(kept).abs().mean() < 1  # the photo's own colours: none


def test_style_statistics_are_cached_by_key(engine, photo, painting):
    other = Image.open(SHARED / "styles" / "wave.jpg").convert("RGB").resize((100, 60))
    first = np.asarray(engine(photo, painting, style_key="test-preset"))
    # The key names the style: a later call with the same key reuses the statistics, whatever image it passes.
    again = np.asarray(engine(photo, other, style_key="test-preset"))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, np.asarray(engine(photo, other)))  # no key: nothing cached
    assert np.array_equal(np.asarray(engine(photo, painting)), first)
