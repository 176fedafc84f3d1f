"""Preset styles: the catalogue, offline folder, verified download, errors, and the /styles contact sheet."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from models.config import ModelConfig
from models.fetch import FetchError
from models.style import presets
from tests.conftest import SHARED

STYLES = SHARED / "styles"


@pytest.fixture
def offline(tmp_path) -> ModelConfig:
    return ModelConfig(styles_dir=STYLES, cache_dir=tmp_path / "cache")


@pytest.fixture
def online(tmp_path) -> ModelConfig:
    return ModelConfig(cache_dir=tmp_path / "cache")


def serve(monkeypatch, file_server, name: str, source=None) -> dict:
    """Serve preset `name` (or the file `source` in its place) and point the catalogue entry at it."""
    e = presets.entry(name)
    shutil.copy(source or STYLES / e["file"], file_server.directory / e["file"])
    served = {**e, "url": file_server.url(e["file"])}
    monkeypatch.setitem(presets._BY_NAME, name, served)
    return served


def test_catalogue_is_the_shared_one_without_images():
    assert presets.CATALOG == json.loads((STYLES / "catalog.json").read_text())
    assert presets.names() == [e["name"] for e in presets.CATALOG] and len(set(presets.names())) == 11
    for e in presets.CATALOG:
        assert {"name", "title", "artist", "year", "licence", "url", "sha256", "file", "bytes", "size"} <= e.keys()
        assert e["url"].startswith("https://") and len(e["sha256"]) == 64
    assert not list(presets.CATALOG_FILE.parent.glob("*.jpg")) and not list(presets.CATALOG_FILE.parent.glob("*.png"))


def test_offline_folder(offline):
    assert presets.preset_path("vangogh", offline) == STYLES / "starry_night.jpg"
    img = presets.open_preset("Hokusai", offline)  # names are case-insensitive
    assert list(img.size) == presets.entry("hokusai")["size"] and img.mode == "RGB"
    assert presets.download_all(offline) == [STYLES / e["file"] for e in presets.CATALOG]


def test_download_from_loopback_is_verified_and_kept(monkeypatch, file_server, online):
    e = serve(monkeypatch, file_server, "munch")
    path = presets.preset_path("munch", online)
    assert path == online.cache_dir / "styles" / e["file"]
    assert path.read_bytes() == (STYLES / e["file"]).read_bytes()
    (file_server.directory / e["file"]).unlink()  # the second use must not need the server
    assert presets.preset_path("munch", online) == path
    assert presets.open_preset("munch", online).size == tuple(e["size"])


def test_download_with_wrong_sha256_is_refused(monkeypatch, file_server, online):
    serve(monkeypatch, file_server, "munch", source=STYLES / "wave.jpg")  # the wrong picture under that name
    with pytest.raises(FetchError, match="wrong SHA-256") as err:
        presets.preset_path("munch", online)
    assert "\n" not in str(err.value)
    cached = online.cache_dir / "styles"
    assert not cached.exists() or not any(cached.iterdir())  # nothing half-verified left in the cache


def test_corrupt_offline_file_is_one_line_error(tmp_path):
    shutil.copytree(STYLES, tmp_path / "styles")
    (tmp_path / "styles" / "wave.jpg").write_bytes((STYLES / "wave.jpg").read_bytes()[:5000])  # truncated
    config = ModelConfig(styles_dir=tmp_path / "styles", cache_dir=tmp_path / "cache")
    with pytest.raises(FetchError, match="corrupt file .*wave.jpg") as err:
        presets.open_preset("hokusai", config)
    assert "\n" not in str(err.value)
    (tmp_path / "styles" / "udnie.jpg").unlink()
    with pytest.raises(FetchError, match="missing file .*udnie.jpg.*PAINTBOT_STYLES_DIR"):
        presets.preset_path("picabia", config)


def test_unknown_style_lists_the_names():
    with pytest.raises(presets.UnknownStyle) as err:
        presets.preset_path("rembrandt", ModelConfig())
    msg = str(err.value)
    assert isinstance(err.value, ValueError) and "rembrandt" in msg and "\n" not in msg
    assert err.value.code == "style.unknown" and err.value.params["name"] == "rembrandt"
    assert all(name in msg for name in presets.names())


def test_contact_sheet_has_one_labelled_cell_per_preset(offline):
    cell, columns = 128, 4
    sheet = np.asarray(presets.contact_sheet(offline, cell=cell, columns=columns).convert("L")).astype(int)
    label_h = cell // 4
    rows = -(-len(presets.CATALOG) // columns)
    assert sheet.shape == (rows * (cell + label_h), columns * cell)
    for i in range(rows * columns):
        x, y = (i % columns) * cell, (i // columns) * (cell + label_h)
        thumb = sheet[y + 4:y + cell - 4, x + 4:x + cell - 4]
        label = sheet[y + cell:y + cell + label_h, x:x + cell]
        if i < len(presets.CATALOG):
            assert thumb.std() > 10, f"cell {i} has no picture"
            assert (label < 128).sum() > 30, f"cell {i} has no label"  # dark text on white
            ink = np.nonzero((label < 200).any(axis=0))[0]
            assert abs((ink.min() + ink.max()) / 2 - cell / 2) < cell / 8  # centred under its picture
        else:
            assert thumb.min() == 255 and label.min() == 255  # unused cells stay blank
