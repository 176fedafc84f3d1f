"""Neural style transfer: the front door to the style engines, for Python callers.

    s = load("adain")            # once per process; default: the best this machine can run
    out = s(photo, painting, strength=0.6, keep_colors=False, size=512, style_key="vangogh")

The engines are modules of this package, registered in models/engines.py; the framing they share
(sizing, strength, keep-colours, the style cache) is models/style/framing.py. This __init__ keeps
only the front door, which imports the registry when called, so that importing an engine never
imports the registry back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PIL import Image

from bot.options import StyleOptions
from models.config import ModelConfig

if TYPE_CHECKING:
    from models.style.framing import StyleEngine


class Stylizer:
    """The earlier keyword API, kept as a thin front door: it builds StyleOptions and calls the engine."""

    def __init__(self, engine: StyleEngine):
        self.engine = engine

    def __call__(self, content: Image.Image, style: Image.Image, strength: float = 1.0, keep_colors: bool = False,
                 size: int | None = None, style_key: str | None = None) -> Image.Image:
        return self.engine(content, style, StyleOptions(style_key, strength, keep_colors), size=size)


def load(engine: str | None = None, device=None, config: ModelConfig | None = None) -> Stylizer:
    """The style engine `engine` (default: the best this machine can run) behind the keyword API."""
    from models import engines

    return Stylizer(engines.load(engine, "style", device, config or ModelConfig()))
