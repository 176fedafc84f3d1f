"""`paintbot` speaks to a terminal: one plain line per error, the format the output's name asks for,
the presets it promises to list, and no silent change of engine or device."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bot.contract.texts import TEXTS
from models.cli import main
from models.imageio import AI_SOURCE_TYPE
from models.style import presets
from tests.harness import SHARED_STYLES, gray_photo


@pytest.fixture
def env(monkeypatch, tmp_path, standin_weights):
    """The CLI's environment: nothing of the caller's, stand-in colouriser weights, the shared presets."""
    for name in [n for n in os.environ if n.startswith("PAINTBOT_")]:
        monkeypatch.delenv(name)
    settings = {"PAINTBOT_DEVICE": "cpu", "PAINTBOT_CACHE_DIR": str(tmp_path / "cache"),
                "PAINTBOT_STYLES_DIR": os.path.abspath(SHARED_STYLES), "PAINTBOT_COLORIZE_MODEL": "eccv16",
                "PAINTBOT_COLORIZE_WEIGHTS": str(standin_weights["eccv16"])}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    from models import cli

    monkeypatch.setattr(cli, "SHOW_AFTER", 3600.0)  # stderr holds only the error, however busy the machine
    return monkeypatch


@pytest.fixture
def photo(tmp_path) -> str:
    path = tmp_path / "old.jpg"
    path.write_bytes(gray_photo(96, 64))
    return str(path)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("paintbot: ")
    return err


@pytest.mark.parametrize("suffix,fmt", [(".webp", "WEBP"), (".png", "PNG"), (".jpeg", "JPEG")])
def test_the_output_name_picks_the_format(env, photo, tmp_path, capsys, suffix, fmt):
    out = tmp_path / f"colour{suffix}"
    assert main(["colorize", photo, "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    result = Image.open(out)
    assert result.format == fmt and result.size == (96, 64)
    assert result.getxmp()["xmpmeta"]["RDF"]["Description"]["DigitalSourceType"] == AI_SOURCE_TYPE


def test_an_output_format_it_cannot_write_is_refused_before_any_work(env, photo, tmp_path, capsys):
    out = tmp_path / "colour.gif"
    assert main(["colorize", photo, "-o", str(out)]) == 1
    err = _one_line_error(capsys)
    assert ".gif" in err and ".png" in err and not out.exists()


def test_style_list_shows_every_preset(env, capsys):
    assert main(["style", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == presets.names()
    assert "The Starry Night (Vincent van Gogh, 1889)" in lines[presets.names().index("vangogh")]


def test_a_named_engine_without_its_weights_fails_instead_of_switching(env, photo, tmp_path, capsys):
    empty = tmp_path / "offline"
    empty.mkdir()
    env.setenv("PAINTBOT_WEIGHTS_DIR", str(empty))
    out = tmp_path / "painted.jpg"
    assert main(["style", photo, "--style", "vangogh", "--engine", "adain", "-o", str(out)]) == 1
    err = _one_line_error(capsys)
    from models.style.adain import AdaINEngine

    assert any(f.filename in err and f.remote.url in err for f in AdaINEngine.files), err
    assert "PAINTBOT_WEIGHTS_DIR" in err and not out.exists()


def test_cuda_asked_for_without_a_gpu_is_one_line(env, photo, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # this machine's case, on any machine
    env.setenv("PAINTBOT_DEVICE", "cuda")
    assert main(["colorize", photo]) == 1
    assert "PAINTBOT_DEVICE=cuda" in _one_line_error(capsys)


@pytest.mark.parametrize("case", ["missing", "not_an_image", "empty", "tiny", "intensity", "unknown_style",
                                  "no_style", "output_folder", "output_no_suffix", "several_into_a_file"])
def test_errors_are_one_line_in_terminal_words(env, photo, tmp_path, capsys, case):
    files = {"not_an_image": b"just some text", "empty": b""}
    if case in files:
        bad = tmp_path / "input.jpg"
        bad.write_bytes(files[case])
        photo = str(bad)
    if case == "tiny":
        tiny = io.BytesIO()
        Image.new("L", (4, 4)).save(tiny, "PNG")
        photo = str(tmp_path / "tiny.png")
        open(photo, "wb").write(tiny.getvalue())
    argv = {"missing": ["colorize", str(tmp_path / "nowhere.jpg")],
            "intensity": ["colorize", photo, "--intensity", "300"],
            "unknown_style": ["style", photo, "--style", "picasso"],
            "no_style": ["style", photo],
            "output_folder": ["colorize", photo, "-o", str(tmp_path / "no" / "such" / "folder.png")],
            "output_no_suffix": ["colorize", photo, "-o", str(tmp_path / "result")],
            "several_into_a_file": ["colorize", photo, photo, "-o", str(tmp_path / "both.jpg")],
            }.get(case, ["colorize", photo])
    assert main(argv) == (2 if case in ("intensity", "no_style") else 1)  # 2: a wrong command line
    err = _one_line_error(capsys)
    if case in ("missing", "not_an_image", "empty", "tiny", "output_folder", "output_no_suffix", "several_into_a_file"):
        assert os.path.basename(argv[-1]) in err, "the file is named"
    assert not any(word in err for word in ("Please", "Reply /", "Send ", "I don't", "/style NAME")), err
    assert err.removeprefix("paintbot: ").strip() not in TEXTS["en"].values()


# --- the real console script, in a subprocess (issue 25, points 16, 17, 19) -----------------------------

PAINTBOT = Path(sys.executable).with_name("paintbot")


@pytest.fixture(scope="module")
def no_torch(tmp_path_factory) -> Path:
    """A folder that, first on PYTHONPATH, makes `import torch` fail loudly: what must not import torch
    cannot, whatever the clock says."""
    d = tmp_path_factory.mktemp("no-torch")
    (d / "torch").mkdir()
    (d / "torch" / "__init__.py").write_text("raise ImportError('SENTINEL: torch was imported')\n")
    return d


def cli_env(tmp_path: Path, standin_weights, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAINTBOT_")}
    env |= {"PAINTBOT_DEVICE": "cpu", "PAINTBOT_CACHE_DIR": str(tmp_path / "cache"),
            "PAINTBOT_STYLES_DIR": os.path.abspath(SHARED_STYLES), "PAINTBOT_COLORIZE_MODEL": "eccv16",
            "PAINTBOT_COLORIZE_WEIGHTS": str(standin_weights["eccv16"]), "COLUMNS": "120"}
    return env | extra


def paintbot(*argv, env: dict, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(PAINTBOT), *map(str, argv)], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_help_version_and_wrong_command_lines_never_import_torch(no_torch, tmp_path, standin_weights):
    """`paintbot`, --help, --version, `style --list` and argument errors: answered with torch unimportable."""
    from importlib.metadata import version

    env = cli_env(tmp_path, standin_weights, PYTHONPATH=str(no_torch))
    photo = tmp_path / "old.jpg"
    photo.write_bytes(gray_photo(96, 64))
    alone, helped = paintbot(env=env), paintbot("--help", env=env)
    assert alone.returncode == helped.returncode == 0 and alone.stdout == helped.stdout
    assert all(c in alone.stdout for c in ("colorize", "style", "models", "eval")) and not alone.stderr
    assert paintbot("--version", env=env).stdout.strip() == f"paintbot {version('paintbot')}"
    assert paintbot("colorize", "--help", env=env).returncode == 0
    listed = paintbot("style", "--list", env=env)
    assert listed.returncode == 0
    rows = listed.stdout.splitlines()
    starts = {len(r) - len(r.split("  ", 1)[1].lstrip()) for r in rows}
    assert len(rows) == len(presets.names()) and len(starts) == 1, "the titles start in one column"
    for argv, words in [(["colorize", photo, "--intensity", "300"], "0..200"),
                        (["colorize"], "PHOTO|FOLDER"),
                        (["colorize", photo, "--intensity", "lots"], "not a whole number"),
                        (["style", photo], "--style"),
                        (["style", photo, "--style", "vangogh", "--strength", "2"], "0..1"),
                        (["paint", photo], "invalid choice")]:
        done = paintbot(*argv, env=env)
        assert done.returncode == 2 and done.stdout == "", argv
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("paintbot: "), done.stderr
        assert words in done.stderr, done.stderr
        assert "SENTINEL" not in done.stderr and "usage:" not in done.stderr
    assert not list(tmp_path.glob("old_*")), "nothing written"


def test_folders_keep_formats_never_overwrite_and_end_with_a_summary(env, tmp_path, standin_weights, capsys):
    """`paintbot colorize DIR -o OUT` (an existing folder: results go inside it): every photo, subfolders
    kept, in its own format, a bar over the photos, a damaged one reported and skipped, a summary. Then
    (in this process: the same code, without a second torch start) the same again is refused without
    --force before any work, --force replaces, and no -o writes beside the photo."""
    src, out = tmp_path / "scans", tmp_path / "coloured"
    (src / "box").mkdir(parents=True)
    out.mkdir()
    gray = Image.open(io.BytesIO(gray_photo(48, 32)))
    gray.save(src / "a.jpg")
    gray.save(src / "b.png")
    gray.save(src / "box" / "c.tif")
    gray.save(src / "d.webp")
    (src / "damaged.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a photo")
    done = paintbot("colorize", src, "-o", out, env=cli_env(tmp_path, standin_weights))
    assert done.returncode == 1, done.stderr  # one photo failed
    formats = {p.relative_to(out).as_posix(): Image.open(p).format for p in out.rglob("*.*")}
    assert formats == {"a_color.jpg": "JPEG", "b_color.png": "PNG", "box/c_color.png": "PNG",
                       "d_color.webp": "WEBP"}
    assert sorted(done.stdout.split()) == sorted(str(out / name) for name in formats)
    assert "colourising" in done.stderr and "photo" in done.stderr  # the bar over the photos
    summary = done.stderr.strip().splitlines()[-1]
    assert summary.startswith("paintbot: 4 of 5 photos done, 1 failed: damaged.jpg"), summary
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.*")}

    assert main(["colorize", str(src / "a.jpg"), str(src / "b.png"), "-o", str(out)]) == 1
    err = _one_line_error(capsys)
    assert "2 of the 2 results already exist" in err and "--force" in err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.*")} == before
    assert main(["colorize", str(src / "b.png"), "-o", str(out), "--force"]) == 0
    assert capsys.readouterr().out.strip() == str(out / "b_color.png")
    assert (out / "b_color.png").stat().st_mtime_ns != before[out / "b_color.png"]
    assert main(["colorize", str(src / "d.webp")]) == 0 and Image.open(src / "d_color.webp").format == "WEBP"
    assert main(["colorize", str(src / "d.webp")]) == 1 and "already exists" in _one_line_error(capsys)


def test_wrong_model_names_and_references_are_refused_before_any_model_loads(env, photo, capsys):
    """(In this process: torch is already in, and the parsing is the console script's.) A wrong name is
    one line with the choices and the closest one; a reference goes with the model that takes one."""
    from models import engines

    assert main(["colorize", photo, "--model", "ddcolr"]) == 2
    err = _one_line_error(capsys)
    assert "--model: unknown model 'ddcolr' (did you mean ddcolor?)" in err and "eccv16" in err
    assert main(["style", photo, "--style", "munch", "--engine", "adaln"]) == 2
    assert "(did you mean adain?)" in _one_line_error(capsys)

    exemplar = engines.reference_engine("colorize")
    assert main(["colorize", photo, "--model", exemplar]) == 2
    assert "add --like REF.jpg" in _one_line_error(capsys)
    assert main(["colorize", photo, "--model", "eccv16", "--like", photo]) == 2
    err = _one_line_error(capsys)
    assert "--like" in err and "eccv16" in err and "no reference" in err
    assert main(["colorize", photo, "--like", photo]) == 1  # a black-and-white reference: terminal words
    err = _one_line_error(capsys)
    assert f"--like {photo}: the photo is black and white; give a colour one" in err and "send" not in err.lower()


def test_a_long_step_draws_a_bar_from_the_engines_reports(monkeypatch, capsys):
    """What Gatys reports (models.progress) fills the bar of a step that outlasts SHOW_AFTER."""
    import time

    from models import cli, progress

    monkeypatch.setattr(cli, "SHOW_AFTER", 0.0)
    seen = ""
    with cli.Step("painting") as step:
        progress.report(0.5)
        deadline = time.monotonic() + 10
        while "50%" not in seen and time.monotonic() < deadline:  # the bar is drawn by its own thread
            step.stop.wait(0.05)
            seen += capsys.readouterr().err
    assert "painting: " in seen and "50%" in seen, seen
    monkeypatch.setattr(cli, "SHOW_AFTER", 3600.0)
    with cli.Step("quick"):
        progress.report(1.0)
    assert "quick" not in capsys.readouterr().err, "a quick step draws nothing"


def test_models_list_shows_licences_sizes_and_the_defaults_here(tmp_path, standin_weights):
    from models import engines

    done = paintbot("models", "list", env=cli_env(tmp_path, standin_weights, PAINTBOT_COLORIZE_MODEL="",
                                                  PAINTBOT_COLORIZE_WEIGHTS=""))
    assert done.returncode == 0, done.stderr
    blocks = {b.split()[0]: b for b in done.stdout.split("\n\n")[1:]}
    assert list(blocks) == engines.names()
    for e in engines.ENGINES:
        assert e.licence is not None and e.licence.source, f"{e.name} declares no licence and its source"
        block = blocks[e.name]
        assert f"code {e.licence.code}; weights {e.licence.weights}" in block
        assert ("commercial use allowed" if e.licence.commercial else "NOT for commercial use") in block
        assert ("none to download" in block) == (not e.files)
    defaults = [name for name, b in blocks.items() if "default here" in b]
    assert defaults == [engines.default_here(f, "cpu", engines.config_from_env({}))[0] for f in engines.FAMILIES]
    assert "912 MB" in blocks["ddcolor"] and "by name only on cpu" in blocks["ddcolor"]


def test_commercial_operators_get_only_commercially_usable_defaults(monkeypatch, standin_weights, tmp_path):
    """PAINTBOT_COMMERCIAL=1: an engine whose licence forbids commercial use is never a default (it
    stays usable by name), and `models list` says why; the worker's load(None) follows the same rule."""
    import dataclasses

    from models import engines
    from models.fetch import FetchError
    from tests.harness import model_config

    (tmp_path / "offline").mkdir()  # only eccv16's stand-in can be had: the default falls through to it
    offline = model_config(standin_weights, tmp_path / "cache", colorize_engine=None, weights_dir=tmp_path / "offline")
    eccv16 = engines.get("eccv16")
    assert engines.load(None, "colorize", "cpu", offline).name == "eccv16"
    monkeypatch.setattr(eccv16, "licence", dataclasses.replace(eccv16.licence, commercial=False))
    with pytest.raises(FetchError):
        engines.load(None, "colorize", "cpu", offline.replace(commercial_only=True))
    assert engines.load("eccv16", "colorize", "cpu", offline.replace(commercial_only=True)).name == "eccv16"
    monkeypatch.undo()

    config = engines.config_from_env({"PAINTBOT_COMMERCIAL": "1"})
    assert config.commercial_only and not engines.config_from_env({}).commercial_only
    first = engines.candidates("colorize", "cpu", config)[0]
    assert engines.default_here("colorize", "cpu", config)[0] == first.name
    monkeypatch.setattr(first, "licence", dataclasses.replace(first.licence, commercial=False))
    name, why = engines.default_here("colorize", "cpu", config)
    assert name != first.name and name == engines.candidates("colorize", "cpu", config)[0].name
    assert "PAINTBOT_COMMERCIAL=1" in why[first.name]
    assert engines.default_here("colorize", "cpu", engines.config_from_env({}))[0] == first.name
    assert engines.get(first.name) is first  # by name it is still there


def test_hints_steer_one_photo_as_the_api_does_and_wrong_ones_are_one_line(env, photo, tmp_path, capsys,
                                                                            standin_weights):
    """`--hint X,Y,#RRGGBB` (repeatable) gives the model that takes hints the person's colours: the result is
    the engine's colorize_hints on the same photo, pixel for pixel; a malformed hint, a model without hints,
    several photos and a pixel outside the photo are refused in one line."""
    from models import colorize, engines, imageio
    from models.colorize.hints import Hint

    env.setenv("PAINTBOT_COLORIZE_MODEL", "siggraph17")
    env.setenv("PAINTBOT_COLORIZE_WEIGHTS", str(standin_weights["siggraph17"]))
    out, plain = tmp_path / "hinted.png", tmp_path / "plain.png"
    assert main(["colorize", photo, "--hint", "10,20,#ff0000", "--hint", "80,50,0000FF", "-o", str(out)]) == 0
    assert main(["colorize", photo, "-o", str(plain)]) == 0
    capsys.readouterr()
    engine = colorize.load("siggraph17", config=engines.config_from_env(os.environ))
    expected = engine.colorize_hints(imageio.open_path(photo), [Hint(10, 20, (255, 0, 0)), Hint(80, 50, (0, 0, 255))])
    hinted = np.asarray(Image.open(out).convert("RGB"))
    assert np.array_equal(hinted, np.asarray(expected))
    assert not np.array_equal(hinted, np.asarray(Image.open(plain).convert("RGB")))

    for argv, status, words in [
            (["--hint", "10,20"], 2, "is not X,Y,#RRGGBB"),
            (["--hint", "10,20,#ff00zz"], 2, "is not X,Y,#RRGGBB"),
            (["--hint=-1,20,#ff0000"], 2, "count pixels from 0"),
            (["--hint", "10,20,#ff0000", "--model", "eccv16"], 2, "the eccv16 model takes no colour hints"),
            (["--hint", "10,20,#ff0000", "--like", photo], 2, "--hint and --like"),
            ([photo, "--hint", "10,20,#ff0000"], 2, "give one photo"),
            (["--hint", "96,20,#ff0000", "--force"], 1, "the hint at x=96, y=20 is outside the 96x64 photo")]:
        assert main(["colorize", photo, *argv, "-o", str(tmp_path / "x.png" if status == 1 else out)]) == status
        assert words in _one_line_error(capsys), argv
