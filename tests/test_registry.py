"""The engine registry: every registered engine is built from stand-ins of its published layout and
runs through its family's one call shape; `paintbot models download` fetches every registered file
from loopback servers (plain HTTP and a Google Drive imitation); defaults and names come from it.

Adding an engine adds its files' published layouts to LAYOUTS below, and nothing else here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import shutil
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models import engines, fetch
from models.config import ModelConfig
from tests.conftest import SHARED
from tests.harness import write_chromagan_standin
from tests.standins import write_lama_standin, write_scratch_standin

sys.path.insert(0, str(SHARED / "weights"))
from standin import layout, make_standin  # noqa: E402

def _torchvision_detector() -> dict:
    """torchvision publishes no key listing: its own builder is the layout its file was saved from."""
    from models.colorize.instance import build_detector

    return {k: tuple(v.shape) for k, v in build_detector().state_dict().items()}


def _shapes(sd: dict) -> dict:
    return {k: tuple(v.shape) for k, v in sd.items()}


def _spandrel(which: str):
    """The enhancers' files were saved from the architectures spandrel carries (basicsr's RRDBNet key names for
    x4plus, DataParallel's "module." for RetinaFace): those are their published layouts."""
    from tests import enhance_standins as e

    return {"compact": lambda: _shapes(e.compact_state_dict()),
            "x4plus": lambda: _shapes(e.to_basicsr(e.rrdb_state_dict())),
            "gfpgan": lambda: _shapes(e.gfpgan_state_dict()),
            "retinaface": lambda: {f"module.{k}": v for k, v in _shapes(e.retinaface_state_dict()).items()}}[which]


# Every registered weight file -> (layout file in ../shared/weights, entry), the published keys and shapes,
# or a function giving them.
LAYOUTS = {
    "ddcolor_modelscope.pth": ("ddcolor.json", "large"),
    "ddcolor_paper_tiny.pth": ("ddcolor.json", "tiny"),
    "ddcolor_artistic.pth": ("ddcolor.json", "large"),
    "instcolorization_GComp.pth": ("instcolorization.json", "instcolorization_GComp"),
    "instcolorization_G.pth": ("instcolorization.json", "instcolorization_G"),
    "instcolorization_GF.pth": ("instcolorization.json", "instcolorization_GF"),
    "fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth": _torchvision_detector,
    "siggraph17-df00044c.pth": ("official.json", "siggraph17"),
    "colorization_release_v2-9b330a0b.pth": ("official.json", "eccv16"),
    "vgg_normalised.pth": ("official.json", "adain_vgg_normalised"),
    "adaattn_adaattn_3.pth": ("adaattn.json", "adaattn_adaattn_3"),
    "adaattn_transformer.pth": ("adaattn.json", "adaattn_transformer"),
    "adaattn_decoder.pth": ("adaattn.json", "adaattn_decoder"),
    "decoder.pth": ("official.json", "adain_decoder"),
    "my_model_colorization.h5": ("chromagan.json", "generator"),  # Keras: written by write_chromagan_standin
    "FT_Epoch_latest.pt": ("scratch_detection.json", "detection"),
    "big-lama.pt": "spandrel",  # no published listing: spandrel's LaMa architecture is the layout
    "GFPGANv1.4.pth": _spandrel("gfpgan"),
    "detection_Resnet50_Final.pth": _spandrel("retinaface"),
    "realesr-general-x4v3.pth": _spandrel("compact"),
    "realesr-general-wdn-x4v3.pth": _spandrel("compact"),
    "RealESRGAN_x4plus.pth": _spandrel("x4plus"),
}
# Files not saved as a bare state dict: written in their published format instead.
WRITERS = {"FT_Epoch_latest.pt": lambda path, seed: write_scratch_standin(path),
           "big-lama.pt": write_lama_standin}


def registered_files():
    return list({f.filename: f for e in engines.ENGINES for f in e.files}.values())


@pytest.fixture(scope="module")
def standin_files(tmp_path_factory) -> Iterator[dict[str, Path]]:
    """A stand-in checkpoint of each registered file, built from its PUBLISHED layout (not our builder): 3.7 GB,
    removed after this module (a session-long folder held it beside the download test's copies: CI's disk ran out)."""
    folder = tmp_path_factory.mktemp("standins")
    out = {}
    for i, wf in enumerate(registered_files()):
        if wf.filename.endswith(".h5"):
            out[wf.filename] = write_chromagan_standin(folder / wf.filename, seed=100 + i)
            continue
        if wf.filename in WRITERS:
            out[wf.filename] = WRITERS[wf.filename](folder / wf.filename, 100 + i)
            continue
        source = LAYOUTS[wf.filename]
        shapes = source() if callable(source) else layout(*source)
        sd = {k: torch.from_numpy(v) for k, v in make_standin(shapes, seed=100 + i).items()}
        torch.save(sd, folder / wf.filename)
        out[wf.filename] = folder / wf.filename
    yield out
    shutil.rmtree(folder)


def test_names_are_unique_and_every_file_has_a_published_layout():
    names = [n for e in engines.ENGINES for n in (e.name, *e.aliases)]
    assert len(names) == len(set(names)), "engine names and aliases must be unique"
    # FAMILIES lists the families with a default engine; "restore" joins them with its default (repair, issue 23)
    assert set(engines.FAMILIES) <= {e.family for e in engines.ENGINES} <= {*engines.FAMILIES, "restore"}
    assert sorted(f.filename for f in registered_files()) == sorted(LAYOUTS), "add the layout of each new file"
    for e in engines.ENGINES:
        assert e.name and e.label and e.name == e.name.lower()


@pytest.mark.parametrize("name", engines.names())
def test_every_engine_runs_from_standins_through_its_call_shape(name, standin_files, tmp_path):
    cls = engines.get(name)
    config = ModelConfig(device="cpu", cache_dir=tmp_path, style_max_size=48, reduced_precision=False,
                         weight_overrides=standin_files)
    engine = engines.load(name, cls.family, config=config)
    assert type(engine) is cls and engine.device.type == "cpu"
    photo = Image.fromarray((np.indices((40, 56)).sum(0) * 3 % 256).astype(np.uint8), "L")
    if cls.family == "colorize":
        reference = Image.new("RGB", (32, 32), (200, 40, 40)) if cls.needs_reference else None
        out = engine(photo, reference=reference)
        assert out.mode == "RGB" and out.size == photo.size
    elif cls.name == "repair":
        out = engine(photo)
        assert out.image.mode == "L" and out.image.size == photo.size and out.mask.size == photo.size
        outside = np.asarray(out.mask) == 0
        assert (np.asarray(out.image)[outside] == np.asarray(photo)[outside]).all()
    elif cls.name == "faces":  # strength 0: detection only (GFPGAN's forward, 15 s, is tested in test_enhance_faces)
        out, found = engine(photo, strength=0)
        assert out is photo and found >= 0
    elif cls.family == "restore":
        out = engine(photo, scale=2)
        assert out.mode == "L" and out.size == (112, 80)
    else:
        painting = Image.open(SHARED / "styles" / "starry_night.jpg")
        out = engine(photo, painting, style_key="vangogh", strength=0.5)
        assert out.mode == "RGB" and max(out.size) == 48


def _served(file_server, drive, standin_files) -> dict[str, fetch.RemoteFile]:
    """Each registered file served from loopback, its hash taken from the stand-in as the real one is published."""
    archives: dict[str, dict[str, bytes]] = {}
    served = {}
    for wf in registered_files():
        data = standin_files[wf.filename].read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        sha = None if wf.remote.sha256 is None else digest[:len(wf.remote.sha256)]
        if wf.remote.archive:
            archives.setdefault(wf.remote.archive, {})[wf.remote.member] = data
            url = drive.url(wf.remote.archive)
        else:
            os.link(standin_files[wf.filename], file_server.directory / wf.filename)  # served as is, not copied
            url = file_server.url(wf.filename)
        served[wf.filename] = dataclasses.replace(wf.remote, url=url, sha256=sha)
    for name, members in archives.items():
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for member, data in members.items():
                z.writestr(member, data)
        drive.files[name] = buf.getvalue()
    return served


def test_models_download_fetches_every_registered_file(file_server, drive, standin_files, tmp_path, monkeypatch,
                                                       capsys):
    from models.cli import main

    served = _served(file_server, drive, standin_files)
    for e in engines.ENGINES:
        monkeypatch.setattr(e, "files", tuple(dataclasses.replace(f, remote=served[f.filename]) for f in e.files))
    monkeypatch.setenv("PAINTBOT_CACHE_DIR", str(tmp_path / "cache"))  # the CLI reads its environment
    monkeypatch.setenv("PAINTBOT_STYLES_DIR", str(SHARED / "styles"))
    assert main(["models", "download"]) == 0
    printed = capsys.readouterr().out.split()
    cache = tmp_path / "cache" / "weights"
    for name in served:
        assert (cache / name).read_bytes() == standin_files[name].read_bytes()
        assert str(cache / name) in printed
    pins = (cache / "pins.json").read_text()  # files without a full published hash: pinned after a strict check
    assert all(name in pins for name, rf in served.items() if rf.sha256 is None or len(rf.sha256) < 64)


def test_default_is_the_first_loadable_candidate(standin_files, tmp_path, caplog, monkeypatch):
    """Offline with only the eccv16 file: the colouriser default falls through to it, saying why."""
    (eccv16,) = engines.get("eccv16").files  # the stand-in is not the published file: pin it instead
    monkeypatch.setattr(engines.get("eccv16"), "files",
                        (dataclasses.replace(eccv16, remote=dataclasses.replace(eccv16.remote, sha256=None)),))
    offline = tmp_path / "offline"
    offline.mkdir()
    (offline / "colorization_release_v2-9b330a0b.pth").write_bytes(
        standin_files["colorization_release_v2-9b330a0b.pth"].read_bytes())
    config = ModelConfig(device="cpu", cache_dir=tmp_path / "cache", weights_dir=offline)
    with caplog.at_level("WARNING", logger="paintbot.models"):
        engine = engines.load(None, "colorize", config=config)
    assert engine.name == "eccv16" and "using the eccv16 engine instead" in caplog.text
    with pytest.raises(fetch.FetchError, match="missing file .*siggraph17"):
        engines.load("siggraph17", "colorize", config=config)  # by name: no fallback
    assert engines.load(None, "colorize", config=config.replace(colorize_engine="eccv16")).name == "eccv16"


def test_aliases_and_unknown_names():
    assert engines.get("hq", "style").name == "gatys" and engines.get("FAST").name == "adain"
    with pytest.raises(ValueError) as err:
        engines.get("adain", "colorize")
    assert err.value.code == "engine.unknown" and "adain" not in err.value.params["choices"]


def test_engine_settings_come_from_variables_named_after_the_engine():
    from models.config import parse_settings, settings_variable

    @dataclasses.dataclass(frozen=True)
    class Settings:
        score_threshold: float = 0.7
        max_boxes: int = 8
        tiled: bool = False

    assert settings_variable("ddcolor-tiny", "input_size") == "PAINTBOT_DDCOLOR_TINY_INPUT_SIZE"
    env = {"PAINTBOT_X_SCORE_THRESHOLD": "0.5", "PAINTBOT_X_TILED": "yes"}
    assert parse_settings("x", Settings, env) == Settings(0.5, 8, True)
    with pytest.raises(ValueError, match="PAINTBOT_X_MAX_BOXES must be a int"):
        parse_settings("x", Settings, {"PAINTBOT_X_MAX_BOXES": "many"})


def test_nothing_under_models_reads_the_environment_but_the_cli():
    import ast

    def reads_environment(path: Path) -> bool:
        return any(isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv")
                   for node in ast.walk(ast.parse(path.read_text())))

    root = Path(__file__).resolve().parent.parent / "models"
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if reads_environment(p)) == ["cli.py"]
