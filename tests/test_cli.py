"""`paintbot` speaks to a terminal: one plain line per error, the format the output's name asks for,
the presets it promises to list, and no silent change of engine or device."""

from __future__ import annotations

import io
import os

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
                                  "no_style", "output_folder"])
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
            }.get(case, ["colorize", photo])
    assert main(argv) == (2 if case in ("intensity", "no_style") else 1)  # 2: a wrong command line
    err = _one_line_error(capsys)
    if case in ("missing", "not_an_image", "empty", "tiny", "output_folder"):
        assert os.path.basename(argv[-1]) in err, "the file is named"
    assert not any(word in err for word in ("Please", "Reply /", "Send ", "I don't", "/style NAME")), err
    assert err.removeprefix("paintbot: ").strip() not in TEXTS["en"].values()
