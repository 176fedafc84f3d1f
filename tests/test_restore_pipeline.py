"""/restore's order in one function (models/restore/pipeline.py) and `paintbot restore --faces --upscale`.

The order is checked with recording fakes (no network runs); the CLI runs the real engines from stand-in files
(GFPGAN at strength 0, so no GFPGAN forward runs; the compact Real-ESRGAN on a tiny photo)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from models.restore.framing import Repaired
from models.restore.pipeline import Steps, restore
from tests.enhance_standins import gfpgan_state_dict, retinaface_state_dict, write_compact, write_gfpgan, \
    write_retinaface


def gray(w=24, h=16) -> Image.Image:
    return Image.fromarray((np.arange(w * h) % 251).reshape(h, w).astype(np.uint8), "L")


class Calls:
    """Fake engines that record the order they ran in and the photo each was given."""

    def __init__(self, regions=2, faces=1):
        self.order, self.regions, self.found = [], regions, faces

    def repairer(self, img):
        self.order.append(("repair", img.size))
        return Repaired(image=img.copy(), mask=Image.new("L", img.size), regions=self.regions)

    def faces(self, img, *, strength=None):
        self.order.append(("faces", strength))
        return img, self.found

    def upscaler(self, img, *, scale=2):
        self.order.append(("upscale", scale))
        return img.resize((img.width * scale, img.height * scale))

    def colorizer(self, img):
        self.order.append(("colorize", img.size))
        return Image.merge("RGB", (img.convert("L"), Image.new("L", img.size, 9), img.convert("L")))


def test_the_order_is_repair_faces_upscale_colourise_and_steps_say_what_was_done():
    c = Calls()
    out, steps = restore(gray(), repairer=c.repairer, faces=c.faces, faces_strength=40, upscaler=c.upscaler,
                         scale=4, colorizer=c.colorizer)
    assert [name for name, _ in c.order] == ["repair", "faces", "upscale", "colorize"]
    assert c.order[1] == ("faces", 40) and c.order[3] == ("colorize", (96, 64))  # coloured at the new size
    assert steps == Steps(regions=2, faces=1, upscaled=4, colourised=True) and out.size == (96, 64)


def test_left_out_engines_are_skipped_and_colour_photos_are_not_colourised():
    c = Calls(regions=0, faces=0)
    colour = gray().convert("RGB")
    colour.putpixel((0, 0), (255, 0, 0))
    out, steps = restore(colour, repairer=c.repairer, colorizer=c.colorizer)
    assert [name for name, _ in c.order] == ["repair"]
    assert steps == Steps() and out.size == colour.size
    c.order.clear()
    _, steps = restore(gray(), repairer=c.repairer, faces=c.faces)  # no colouriser: --no-color
    assert c.order[1] == ("faces", None) and steps == Steps(regions=0, faces=0, upscaled=None, colourised=False)


def test_an_upscaler_that_leaves_the_size_reports_no_upscale():
    c = Calls()
    _, steps = restore(gray(), repairer=c.repairer, upscaler=lambda img, scale: img)  # already at max_side
    assert steps.upscaled is None


@pytest.fixture
def cli_env(standin_weights, tmp_path_factory, tmp_path, monkeypatch):
    d = tmp_path_factory.mktemp("enhance-weights")
    write_compact(d / "realesr-general-x4v3.pth", seed=1)
    write_compact(d / "realesr-general-wdn-x4v3.pth", seed=2)
    write_gfpgan(d / "GFPGANv1.4.pth", gfpgan_state_dict(seed=0))
    write_retinaface(d / "detection_Resnet50_Final.pth", retinaface_state_dict(seed=0))
    for var, key in (("PAINTBOT_SCRATCH_WEIGHTS", "scratch_detection"), ("PAINTBOT_LAMA_WEIGHTS", "big_lama"),
                     ("PAINTBOT_COLORIZE_WEIGHTS", "eccv16")):
        monkeypatch.setenv(var, str(standin_weights[key]))
    monkeypatch.setenv("PAINTBOT_WEIGHTS_DIR", str(d))
    monkeypatch.setenv("PAINTBOT_COLORIZE_MODEL", "eccv16")
    monkeypatch.setenv("PAINTBOT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PAINTBOT_DEVICE", "cpu")


def test_cli_faces_and_upscale_run_in_the_pipelines_order(cli_env, tmp_path, capsys, monkeypatch):
    from models.cli import main
    from models.restore import pipeline

    seen = {}
    real = pipeline.restore

    def spy(img, **engines):
        seen.update(engines)
        out, steps = real(img, **engines)
        seen["steps"] = steps
        return out, steps

    monkeypatch.setattr(pipeline, "restore", spy)
    src = tmp_path / "old.png"
    gray(40, 28).save(src)
    assert main(["restore", str(src), "--faces", "0", "--upscale", "2", "-o", str(tmp_path / "new.png")]) == 0
    out = Image.open(tmp_path / "new.png")
    assert out.size == (80, 56) and out.mode == "RGB"
    r, g, b = out.split()
    assert r.tobytes() != b.tobytes()  # colourised after upscaling
    assert seen["faces_strength"] == 0 and seen["scale"] == 2 and type(seen["faces"]).__name__ == "FacesEngine"
    assert seen["steps"].upscaled == 2 and seen["steps"].colourised
    assert main(["restore", str(src), "--faces", "-f", "--no-color", "-o", str(tmp_path / "new.png")]) == 0
    assert seen["faces_strength"] is None and seen["upscaler"] is None and seen["colorizer"] is None
    assert Image.open(tmp_path / "new.png").size == (40, 28)
    capsys.readouterr()
    for bad in (["--faces", "101"], ["--faces", "soft"], ["--upscale", "3"]):
        assert main(["restore", str(src), *bad]) == 2  # refused before any model loads
    assert "STRENGTH is 0-100" in capsys.readouterr().err
