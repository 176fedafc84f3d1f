"""The preset styles: a catalogue of paintings (catalog.json), fetched on first use and verified.

The images are not part of the project: each is downloaded from its pinned URL into the cache
and checked against its SHA-256, or read from PAINTBOT_STYLES_DIR (offline).
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from models import fetch, imageio
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
    label_h = cell // 4
    rows = -(-len(CATALOG) // columns)
    sheet = Image.new("RGB", (columns * cell, rows * (cell + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, e in enumerate(CATALOG):
        x, y = (i % columns) * cell, (i // columns) * (cell + label_h)
        thumb = open_preset(e["name"], config).convert("RGB")
        side = min(thumb.size)  # centre square crop
        left, top = (thumb.width - side) // 2, (thumb.height - side) // 2
        thumb = thumb.crop((left, top, left + side, top + side)).resize((cell - 8, cell - 8), Image.LANCZOS)
        sheet.paste(thumb, (x + 4, y + 4))
        below = e["artist"] if e["year"] else e["title"]
        for text, size, top, fill in ((e["name"], cell // 9, 2, "black"), (below, cell // 14, cell // 8, (90, 90, 90))):
            font = ImageFont.load_default(size=size)
            while draw.textlength(text, font=font) > cell - 8 and size > 8:  # shrink long lines to fit
                size -= 1
                font = ImageFont.load_default(size=size)
            draw.text((x + cell // 2, y + cell + top), text, fill=fill, font=font, anchor="ma")
    return sheet
