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


def colour_photo(w=48, h=32) -> Image.Image:
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([128 + 100 * np.sin(x / 5.0), 128 + 100 * np.cos(y / 4.0), 128 + 90 * np.sin((x + y) / 7.0)], -1)
    return Image.fromarray(rgb.clip(0, 255).astype(np.uint8))


def test_scans_saved_as_colour_and_sepia_prints_are_colourised():
    """Black and white as people mean it: JPEG noise in a gray scan's channels, or a sepia tone, is no colour."""
    import io

    buf = io.BytesIO()
    gray(96, 64).convert("RGB").save(buf, "JPEG", quality=80)
    scan = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    sepia = Image.merge("RGB", [gray(96, 64).point(lambda v, k=k: int(v * k)) for k in (1.0, 0.85, 0.65)])
    for photo in (scan, sepia):
        c = Calls()
        _, steps = restore(photo, repairer=c.repairer, colorizer=c.colorizer)
        assert steps.colourised and c.order[-1][0] == "colorize"


def test_left_out_engines_are_skipped_and_colour_photos_are_not_colourised():
    c = Calls(regions=0, faces=0)
    colour = colour_photo()
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


@pytest.fixture(scope="module")
def enhance_weights(tmp_path_factory):
    d = tmp_path_factory.mktemp("enhance-weights")
    write_compact(d / "realesr-general-x4v3.pth", seed=1)
    write_compact(d / "realesr-general-wdn-x4v3.pth", seed=2)
    write_gfpgan(d / "GFPGANv1.4.pth", gfpgan_state_dict(seed=0))
    write_retinaface(d / "detection_Resnet50_Final.pth", retinaface_state_dict(seed=0))
    return d


@pytest.fixture
def cli_env(standin_weights, enhance_weights, tmp_path, monkeypatch):
    d = enhance_weights
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


# --- `paintbot eval restore --protocol upscale|faces` ---------------------------------------------------------


def scene(w=96, h=72, mode="RGB") -> Image.Image:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack([128 + 90 * np.sin(xx / 7) * np.cos(yy / 9), 60 + xx, 200 - yy], -1)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB").convert(mode)


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    scene().save(folder / "a.png")
    scene(72, 96, "L").save(folder / "b.png")
    (folder / "broken.jpg").write_bytes(b"not a photo")
    return folder


def test_upscale_protocol_scores_against_the_original_beside_bicubic(photos, tmp_path, tmp_path_factory):
    from models import engines
    from models.config import ModelConfig
    from models.evaluate_restore import evaluate_upscale

    d = tmp_path_factory.mktemp("compact")
    files = [("realesr-general-x4v3.pth", write_compact(d / "realesr-general-x4v3.pth", seed=1)),
             ("realesr-general-wdn-x4v3.pth", write_compact(d / "realesr-general-wdn-x4v3.pth", seed=2))]
    engine = engines.load("upscale", "restore", config=ModelConfig(device="cpu", cache_dir=tmp_path / "c",
                                                                   weights_dir=d, reduced_precision=False))
    report = evaluate_upscale(photos, engine, files, scale=2, size=64, out_dir=tmp_path / "ev")
    assert [r["file"] for r in report.rows] == ["a.png", "b.png"] and report.skipped[0][0] == "broken.jpg"
    a = report.rows[0]
    assert (a["width"], a["height"]) == (64, 48) and 15 < a["psnr_bicubic"] < 60  # a real, imperfect baseline
    assert "bicubic upscaling (baseline)" in report.markdown and "realesr-general-x4v3.pth" in report.markdown
    assert "no hash is published" in report.markdown  # a stand-in is never passed off as the authors' file
    assert {p.name for p in (tmp_path / "ev").iterdir()} == {"report.md", "results.csv", "sheet.jpg"}
    # the protocol itself: an upscaler that only enlarges (Lanczos) lands near the bicubic baseline
    plain = evaluate_upscale(photos, lambda small, scale: small.resize((small.width * scale, small.height * scale),
                             Image.Resampling.LANCZOS), files, size=64, out_dir=tmp_path / "ev2")
    assert abs(plain.rows[0]["psnr_upscaled"] - plain.rows[0]["psnr_bicubic"]) < 3


class FakeFaces:
    """FacesEngine's surface the protocol uses: `landmarks`, `restore` (identity: no GFPGAN runs), `settings`."""

    def __init__(self, found=()):
        from models.restore.faces import FacesSettings

        self.found, self.settings, self.faces_seen = list(found), FacesSettings(), 0

    def landmarks(self, img):
        return list(self.found)

    def restore(self, face):
        self.faces_seen += 1
        return face


def test_faces_protocol_blurs_only_the_faces_seeded_and_labels_drawn_faces(photos, tmp_path):
    from models.evaluate_restore import evaluate_faces, face_region, synthetic_face

    engine = FakeFaces()
    report = evaluate_faces(photos, engine, [], size=96, out_dir=tmp_path / "ev")
    assert len(report.rows) == 2 and all(r["synthetic"] for r in report.rows) and engine.faces_seen == 2
    again = evaluate_faces(photos, FakeFaces(), [], size=96, out_dir=tmp_path / "ev2")
    assert [r["blur_sigma"] for r in again.rows] == [r["blur_sigma"] for r in report.rows]  # seeded
    for r in report.rows:  # an identity restorer gives the blurred faces back (resampled twice): never better
        assert r["psnr_blurred"] < 60 and 30 < r["psnr_restored"] <= r["psnr_blurred"] + 0.1
    assert "blurred input (baseline)" in report.markdown and "drawn face at known landmarks" in report.markdown
    drawn, points = synthetic_face(scene(96, 72))
    region = face_region(drawn.size, [points])
    assert 0.05 < region.mean() < 0.6 and region[36, 48]  # the face's square, around the centre
    found = evaluate_faces(photos, FakeFaces([points]), [], size=96, limit=1, out_dir=tmp_path / "ev3")
    assert found.rows[0]["synthetic"] is False and found.rows[0]["faces"] == 1


def test_eval_restore_protocols_from_the_cli(cli_env, photos, tmp_path, capsys):
    from models.cli import main

    assert main(["eval", "restore", str(photos), "--protocol", "upscale", "--size", "64",
                 "--out", str(tmp_path / "up")]) == 0
    assert "Upscale 2x after a 2x bicubic downscale" in capsys.readouterr().out
    assert main(["eval", "restore", str(photos), "--protocol", "sharpen"]) == 2
