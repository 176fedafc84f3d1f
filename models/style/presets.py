"""The preset styles: a catalogue of paintings (catalog.json), fetched on first use and verified.

The images are not part of the project: each is downloaded from its pinned URL into the cache
and checked against its SHA-256, or read from PAINTBOT_STYLES_DIR (offline).
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from models import fetch, imageio, sheet
from models.config import ModelConfig
from models.errors import InputError

CATALOG_FILE = Path(__file__).with_name("catalog.json")
OFFLINE_ENV = "PAINTBOT_STYLES_DIR"
CATALOG: list[dict] = json.loads(CATALOG_FILE.read_text())
_BY_NAME = {entry["name"]: entry for entry in CATALOG}


class UnknownStyle(InputError):
    def __init__(self, name: str):
        super().__init__("style.unknown", f"unknown style {name!r}: choose one of {', '.join(names())}",
                         name=name, choices=", ".join(names()))


def names() -> list[str]:
    return [entry["name"] for entry in CATALOG]


def entry(name: str) -> dict:
    try:
        return _BY_NAME[name.lower()]
    except KeyError:
        raise UnknownStyle(name) from None


def _remote(e: dict) -> fetch.RemoteFile:
    return fetch.RemoteFile(filename=e["file"], url=e["url"], sha256=e["sha256"], offline_env=OFFLINE_ENV)


def preset_path(name: str, config: ModelConfig) -> Path:
    return fetch.ensure(_remote(entry(name)), config.cache_dir / "styles", config.styles_dir)


def open_preset(name: str, config: ModelConfig) -> Image.Image:
    return imageio.open_path(preset_path(name, config))


def download_all(config: ModelConfig) -> list[Path]:
    return [preset_path(n, config) for n in names()]


def contact_sheet(config: ModelConfig, cell: int = 256, columns: int = 4) -> Image.Image:
    """One picture of every preset (for the bot's /styles): a grid of square thumbnails, each labelled
    with the name to type and, smaller, the painter (the title for unattributed works).

    The default is 1024 pixels wide with 28-pixel names: readable when a phone shows it full width.
    """
    cells = [sheet.Cell(_square(open_preset(e["name"], config)), e["name"], e["artist"] if e["year"] else e["title"])
             for e in CATALOG]
    return sheet.grid([cells[i:i + columns] for i in range(0, len(cells), columns)], cell)


def _square(img: Image.Image) -> Image.Image:
    """The centred square crop."""
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    return img.crop((left, top, left + side, top + side))
