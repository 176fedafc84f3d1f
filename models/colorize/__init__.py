"""Automatic colourisation: the front door to the colourisers, for Python callers.

    c = load("eccv16")                          # once per process
    colour = c(pil_image)                       # RGB, same size as the input
    colour = c(pil_image, intensity=1.5)        # 150 % of the predicted chroma (0..2)
    colour = load("exemplar")(pil_image, reference=colour_photo)   # coloured like another photo
    s17 = load("siggraph17")                    # the one that takes a person's colour hints (hints.py):
    colour = s17.colorize_hints(pil_image, [Hint(x=120, y=80, rgb=(192, 128, 64))])
    small = s17.preview(pil_image, hints)       # the same result, long side 256 px, cheap enough to be live
    swatches = s17.suggest(pil_image, x, y)     # up to 6 sRGB colours to offer where the person taps

The colourisers are modules of this package, registered in models/engines.py; the framing they
share (the chroma joined to the photo's own lightness) is models/colorize/framing.py. This
__init__ keeps only `load`, which imports the registry when called, so that importing an engine
never imports the registry back.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from models.config import ModelConfig

if TYPE_CHECKING:
    from models.colorize.framing import ColorizeEngine


def load(name: str | None = None, weights: str | Path | None = None, device=None,
         config: ModelConfig | None = None) -> ColorizeEngine:
    """The colouriser `name` (default: the configured one, else the best this machine can run), `weights`
    a checkpoint to load instead of the registry's file (strictly), ready to call:
    `c(img, *, intensity=1.0, reference=None, hints=())`. A front door to models.engines."""
    from models import engines

    config = config or ModelConfig()
    if weights is not None:
        config = engines.with_weights(config, name or config.colorize_engine, Path(weights))
    return engines.load(name, "colorize", device, config)
