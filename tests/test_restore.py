"""The repair pipeline (models/restore/): LaMa's stand-in read back through spandrel's detection, and what
paintbot owns around the two networks: the dilated mask, padding to LaMa's multiple, the [0, 1] range, the
working size, the paste-back that leaves every undamaged pixel bit-identical, black-and-white photos staying
black-and-white, and the damage count. Stand-in weights (tests/standins.py); one engine per module.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from models import restore
from models.config import ModelConfig
from models.fetch import FetchError
from models.device import reduced_dtype
from models.restore import framing, lama, scratch
from models.restore.framing import Damage, Repaired
from models.restore import repair
from models.restore.repair import DETECTOR_FILE
from tests.conftest import SHARED


pytestmark = pytest.mark.usefixtures("two_threads")


def config_for(standin_weights, cache_dir, **changes) -> ModelConfig:
    return ModelConfig(device="cpu", cache_dir=cache_dir, weight_overrides={
        "FT_Epoch_latest.pt": standin_weights["scratch_detection"], "big-lama.pt": standin_weights["big_lama"]},
        **changes)


@pytest.fixture(scope="module")
def engine(standin_weights, tmp_path_factory):
    return restore.load(config=config_for(standin_weights, tmp_path_factory.mktemp("cache")))


@pytest.fixture
def lama_calls(engine, monkeypatch):
    """The (image, mask) tensors LaMa is given, recorded at spandrel's network."""
    seen = []
    net = engine.filler.model
    forward = net.forward

    def record(image, mask):
        seen.append((image.clone(), mask.clone()))
        return forward(image, mask)

    monkeypatch.setattr(net, "forward", record)
    return seen


def photo(w=150, h=100, mode="RGB") -> Image.Image:
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([80 + 60 * np.sin(x / 9), 90 + 50 * np.cos(y / 7), 70 + 40 * np.sin((x + y) / 11)], -1)
    return Image.fromarray(rgb.clip(0, 255).astype(np.uint8), "RGB").convert(mode)


def scratches(size, lines=((10, 5, 60, 90), (100, 10, 140, 12))) -> Damage:
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    for line in lines:
        draw.line(line, fill=255, width=2)
    return Damage(mask, framing.count_regions(np.asarray(mask) > 0))


def outside_identical(before: Image.Image, result: Repaired) -> bool:
    keep = np.asarray(result.mask) == 0
    return bool((np.asarray(before)[keep] == np.asarray(result.image)[keep]).all())


# --- LaMa through spandrel ---------------------------------------------------------------------------------


def test_lama_standin_is_a_torchscript_archive_spandrel_recognises(standin_weights):
    sd = lama.read(standin_weights["big_lama"])
    assert all(k.startswith("generator.model.") for k in sd)  # the published file's keys
    model = lama.detect(sd, standin_weights["big_lama"])
    assert model.architecture.id == "LaMa" and model.size_requirements.multiple_of == 8
    assert type(model.model).__module__.startswith("spandrel.")  # spandrel's network, not ours


def test_wrong_lama_files_are_one_line_errors(standin_weights, tmp_path):
    torch.save({"x": torch.zeros(1)}, tmp_path / "other.pth")
    (tmp_path / "cut.pt").write_bytes(standin_weights["big_lama"].read_bytes()[:4096])
    sd = lama.read(standin_weights["big_lama"])
    cases = {"other.pth": lambda p: lama.detect(lama.read(p), p),
             "cut.pt": lambda p: lama.detect(lama.read(p), p),
             "short.pt": lambda p: lama.detect({k: v for k, v in sd.items() if "bn_l.running_var" not in k}, p)}
    for name, load in cases.items():
        with pytest.raises(FetchError) as e:
            load(tmp_path / name)
        assert "\n" not in str(e.value) and name in str(e.value)


# --- what paintbot owns around the networks ----------------------------------------------------------------


def test_only_masked_pixels_change_and_colours_are_kept(engine, lama_calls):
    img = photo()
    damage = scratches(img.size)
    out = engine(img, damage=damage)
    assert out.image.mode == "RGB" and out.image.size == img.size and out.regions == damage.regions == 2
    assert outside_identical(img, out)
    changed = (np.asarray(out.image) != np.asarray(img)).any(-1)
    assert changed.any() and not (changed & (np.asarray(out.mask) == 0)).any()
    (x, m), = lama_calls  # one LaMa call: RGB in [0, 1], mask 0/1, padded to a multiple of 8
    assert x.shape[1] == 3 and 0 <= float(x.min()) and float(x.max()) <= 1 and set(m.unique().tolist()) == {0, 1}
    assert x.shape[-2:] == m.shape[-2:] == (104, 152)
    assert not (x[0, 0] == x[0, 1]).all()  # the photo's colours went in
    # the filled mask is the damage grown by a few pixels: 3 at this size (one detector cell)
    found, filled = np.asarray(damage.mask) > 0, np.asarray(out.mask) > 0
    assert out.mask.mode == "L" and set(np.unique(out.mask)) == {0, 255}
    assert (filled >= found).all() and (framing.dilate(found, 3) == filled).all()
    assert framing.fill_radius((4000, 3000), 3) == 3 + 11  # a 12 MP photo: the detector's cell is 12 px


@pytest.mark.parametrize("mode", ["L", "gray RGB"])
def test_black_and_white_stays_black_and_white(engine, mode, lama_calls):
    gray = photo(mode="L")
    img = gray if mode == "L" else gray.convert("RGB")
    out = engine(img, damage=scratches(img.size))
    assert out.image.mode == img.mode and outside_identical(img, out)
    assert (np.asarray(out.image) != np.asarray(img)).any()
    if mode == "gray RGB":
        r, g, b = out.image.split()
        assert r.tobytes() == g.tobytes() == b.tobytes()
    (x, _), = lama_calls
    assert (x[0, 0] == x[0, 1]).all() and (x[0, 1] == x[0, 2]).all()  # LaMa saw the lightness only


def test_a_clean_photo_comes_back_unchanged(engine, lama_calls):
    img = photo()
    out = engine(img, damage=Damage(Image.new("L", img.size, 0), 0))
    assert out.image is img and out.regions == 0 and not np.asarray(out.mask).any() and not lama_calls


def test_large_photos_are_filled_at_the_working_size_and_pasted_at_full_size(engine, lama_calls, monkeypatch):
    monkeypatch.setattr(engine, "work_size", 128)  # 512 on CPU: the same code, a quarter of the side
    img = photo(1300, 700)
    damage = scratches(img.size, ((100, 100, 900, 600), (1000, 50, 1250, 60)))
    out = engine(img, damage=damage)
    (x, m), = lama_calls
    assert x.shape[-2:] == (72, 128)  # 1300 x 700 -> 128 x 69, padded to 8
    assert out.image.size == img.size and outside_identical(img, out)
    assert ((np.asarray(out.image) != np.asarray(img)).any(-1) == (np.asarray(out.mask) > 0)).mean() > 0.99


def test_local_damage_is_filled_from_its_surroundings_only(engine, lama_calls):
    img = photo(400, 300)
    damage = scratches(img.size, ((330, 250, 360, 260),))
    out = engine(img, damage=damage)
    (x, m), = lama_calls  # the damage's box grown by 64 px, cut at the photo's edge, padded to 8
    assert x.shape[-2:] == (120, 144) and outside_identical(img, out)  # 119 x 139 of 300 x 400
    assert ((np.asarray(out.image) != np.asarray(img)).any(-1) <= (np.asarray(out.mask) > 0)).all()
    assert repair.context_box(np.zeros((5, 7), bool), 64) == (0, 0, 5, 7)


def test_odd_and_tiny_sizes_are_padded_for_lama(engine, lama_calls):
    for w, h in ((101, 37), (9, 7)):
        img = photo(w, h)
        out = engine(img, damage=Damage(Image.new("L", img.size, 255), 1))
        assert out.image.size == (w, h)
    assert [tuple(x.shape[-2:]) for x, _ in lama_calls] == [(40, 104), (16, 16)]  # LaMa's minimum is 16


def test_pad_to_reflects_and_cuts_back():
    x = torch.arange(2 * 3 * 5 * 9, dtype=torch.float32).reshape(2, 3, 5, 9)
    padded = lama.pad_to(x, 8)
    assert padded.shape[-2:] == (8, 16) and torch.equal(padded[..., :5, :9], x)
    assert torch.equal(padded[..., 5, :9], x[..., 3, :])  # reflected, not zeros
    assert lama.pad_to(x[..., :8, :8], 8) is not None


# --- detection: the mask at the photo's size, the damage count -------------------------------------------


def test_damage_is_a_0_255_mask_at_the_photo_size_with_its_regions(engine):
    img = photo(150, 100)  # the detector works at 160 x 96, mapped back to 150 x 100
    damage = engine.damage(img)
    assert damage.mask.mode == "L" and damage.mask.size == img.size
    assert set(np.unique(damage.mask)) <= {0, 255}
    grown = framing.dilate(np.asarray(damage.mask) > 0, 3)
    assert damage.regions == framing.count_regions(grown) > 0


def test_regions_count_pieces_closer_than_the_dilation_once():
    mask = np.zeros((40, 40), bool)
    mask[10, 5:15] = mask[10, 18:30] = True  # one scratch the detector broke in two (3 px apart)
    mask[30, 5:30] = True  # another
    assert framing.count_regions(mask) == 3 and framing.count_regions(framing.dilate(mask, 3)) == 2
    assert framing.count_regions(np.zeros((5, 5), bool)) == 0


def test_reduced_precision_detector_agrees_with_float32(engine):
    img = Image.open(SHARED / "weights" / "golden" / "scratch_input_sepia_400x267.png")
    assert engine.dtype == reduced_dtype(engine.device) or engine.dtype == torch.float32
    exact = DETECTOR_FILE.network(engine.config.weight_overrides["FT_Epoch_latest.pt"]).eval()
    a, b = scratch.detect(exact, img), scratch.detect(engine.detector, img, dtype=engine.dtype)
    assert (a != b).mean() < 0.01  # 0.47 % measured; the stand-in's prob sits near 0.4, real weights are firmer


# --- the CLI and the evaluation -----------------------------------------------------------------------------


@pytest.fixture
def restore_env(standin_weights, tmp_path, monkeypatch):
    for var, key in (("PAINTBOT_SCRATCH_WEIGHTS", "scratch_detection"), ("PAINTBOT_LAMA_WEIGHTS", "big_lama"),
                     ("PAINTBOT_COLORIZE_WEIGHTS", "eccv16")):
        monkeypatch.setenv(var, str(standin_weights[key]))
    monkeypatch.setenv("PAINTBOT_COLORIZE_MODEL", "eccv16")
    monkeypatch.setenv("PAINTBOT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PAINTBOT_DEVICE", "cpu")


def test_cli_repairs_colourises_a_gray_photo_and_writes_the_mask(restore_env, tmp_path, capsys):
    from models.cli import main

    src = tmp_path / "old.png"
    photo(120, 80, "L").save(src)
    assert main(["restore", str(src), "-o", str(tmp_path / "new.png"), "--mask-out", str(tmp_path / "m.png")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "new.png")
    out, mask = Image.open(tmp_path / "new.png"), Image.open(tmp_path / "m.png")
    assert out.mode == "RGB" and out.size == (120, 80) and mask.size == (120, 80)
    r, g, b = out.split()
    assert r.tobytes() != b.tobytes()  # colourised
    assert main(["restore", str(src), "--mask-out", str(tmp_path / "m.bmp")]) == 1  # checked before any model
    photo(60, 40, "L").save(tmp_path / "other.png")
    assert main(["restore", str(src), str(tmp_path / "other.png"), "-o", f"{tmp_path}/out/", "--mask-out", "x.png"]) == 2


def test_eval_restore_writes_a_report_that_names_its_weights(engine, standin_weights, tmp_path):
    from models.evaluate_restore import draw_damage, evaluate_restore

    folder = tmp_path / "photos"
    folder.mkdir()
    photo(96, 64).save(folder / "a.png")
    photo(64, 96, "L").save(folder / "b.png")
    (folder / "c.jpg").write_bytes(b"not a photo")
    a1, m1 = draw_damage(photo(96, 64), 7, "a.png")
    a2, m2 = draw_damage(photo(96, 64), 7, "a.png")
    assert np.array_equal(np.asarray(a1), np.asarray(a2)) and m1.any()  # seeded: the same damage every run
    assert not np.array_equal(m1, draw_damage(photo(96, 64), 8, "a.png")[1])
    files = [("FT_Epoch_latest.pt", standin_weights["scratch_detection"]), ("big-lama.pt", standin_weights["big_lama"])]
    report = evaluate_restore(folder, engine, files, size=96, out_dir=tmp_path / "ev")
    assert len(report.rows) == 2 and all(r["untouched_outside_fill"] for r in report.rows)
    assert [name for name, _ in report.skipped] == ["c.jpg"] and "`c.jpg`" in report.markdown
    assert "NOT the published big-lama.pt" in report.markdown and "damaged input (baseline)" in report.markdown
    assert {p.name for p in (tmp_path / "ev").iterdir()} == {"report.md", "results.csv", "sheet.jpg"}
