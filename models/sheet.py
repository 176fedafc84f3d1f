"""Labelled picture grids for people to look at: the /styles catalogue and `paintbot eval`'s contact sheets.

One layout for both, so every sheet paintbot makes reads the same way: each cell is a picture fitted
into a square with a 4-pixel margin, and under it a label band a quarter of the cell high holding a
title and, smaller and gray, a subtitle, each centred and shrunk until it fits the cell's width.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

MARGIN = 4
MIN_FONT = 8


@dataclass(frozen=True)
class Cell:
    image: Image.Image
    title: str
    subtitle: str = ""


def fit(img: Image.Image, side: int) -> Image.Image:
    """`img` scaled (up or down, aspect kept) so that its long side is `side`."""
    scale = side / max(img.size)
    size = max(1, round(img.width * scale)), max(1, round(img.height * scale))
    return img if img.size == size else img.resize(size, Image.LANCZOS)


def _label(draw: ImageDraw.ImageDraw, text: str, centre_x: int, top: int, size: int, width: int, fill) -> None:
    font = ImageFont.load_default(size=size)
    while draw.textlength(text, font=font) > width and size > MIN_FONT:  # shrink long lines to fit
        size -= 1
        font = ImageFont.load_default(size=size)
    draw.text((centre_x, top), text, fill=fill, font=font, anchor="ma")


def grid(rows: Sequence[Sequence[Cell]], cell: int = 256) -> Image.Image:
    """A white sheet with one row of cells per entry of `rows`, as wide as the longest row."""
    label_h = cell // 4
    inner = cell - 2 * MARGIN
    sheet = Image.new("RGB", (max(map(len, rows)) * cell, len(rows) * (cell + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, row in enumerate(rows):
        y = r * (cell + label_h)
        for c, item in enumerate(row):
            x = c * cell
            thumb = fit(item.image.convert("RGB"), inner)
            sheet.paste(thumb, (x + MARGIN + (inner - thumb.width) // 2, y + MARGIN + (inner - thumb.height) // 2))
            _label(draw, item.title, x + cell // 2, y + cell + 2, cell // 9, inner, "black")
            _label(draw, item.subtitle, x + cell // 2, y + cell + cell // 8, cell // 14, inner, (90, 90, 90))
    return sheet


BEFORE_AFTER_MAX = 2560  # longest side of a before/after picture: Telegram shows photos up to about this
_FONT_FILES = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",)  # Cyrillic and accents; else Pillow's own


def _font(size: int):
    for path in _FONT_FILES:
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def before_after(before: Image.Image, after: Image.Image, before_label: str, after_label: str) -> Image.Image:
    """The original and the result in one picture, each under a label band: side by side, or one above the
    other for a wide photo (so both stay large on a phone). Both panels at the original's size (the result
    scaled to it), the whole at most BEFORE_AFTER_MAX on its longest side."""
    before = before.convert("RGB")
    after = after.convert("RGB").resize(before.size, Image.LANCZOS) if after.size != before.size \
        else after.convert("RGB")
    w, h = before.size
    stacked = w > h
    band = max(24, min(w, h) // 10)
    cols, rows = (1, 2) if stacked else (2, 1)
    sheet = Image.new("RGB", (cols * w + (cols - 1) * MARGIN, rows * (h + band) + (rows - 1) * MARGIN), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (img, label) in enumerate(((before, before_label), (after, after_label))):
        x, y = (0, i * (h + band + MARGIN)) if stacked else (i * (w + MARGIN), 0)
        draw.rectangle((x, y, x + w - 1, y + band - 1), fill=(32, 32, 32))
        size = int(band * 0.6)
        font = _font(size)
        while draw.textlength(label, font=font) > w - 8 and size > MIN_FONT:
            size -= 1
            font = _font(size)
        draw.text((x + w // 2, y + band // 2), label, fill="white", font=font, anchor="mm")
        sheet.paste(img, (x, y + band))
    return fit(sheet, BEFORE_AFTER_MAX) if max(sheet.size) > BEFORE_AFTER_MAX else sheet
