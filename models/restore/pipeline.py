"""/restore's order, in one place: repair -> faces -> upscale -> colourise (black-and-white photos only).

The order is part of the result, not a detail: faces are restored on the repaired photo (a scratch across a
face would otherwise be "reconstructed" by GFPGAN), the upscaler enlarges the restored faces, and the
colouriser comes last so that it colours the enhanced lightness at its final size (models/restore/enhance.py:
the enhancers keep a black-and-white photo black-and-white). The CLI (`paintbot restore`) and the worker call
this one function with the engines they have loaded, so both always do the same steps in the same order;
it loads nothing itself (engines are passed in), and an engine left out is a step skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from models.color import is_colour_photo


@dataclass(frozen=True)
class Steps:
    """What was done to one photo, for a caption or a log line."""

    regions: int = 0  # damaged regions repaired (0: none found, the photo was left as it was)
    faces: int = 0  # faces found (restored when faces_strength is not 0)
    upscaled: int | None = None  # the scale asked for, when the photo was made larger; None: not upscaled
    colourised: bool = False


def restore(img: Image.Image, *, repairer: Callable | None, faces: Callable | None = None,
            faces_strength: int | None = None, upscaler: Callable | None = None, scale: int = 2,
            colorizer: Callable[[Image.Image], Image.Image] | None = None) -> tuple[Image.Image, Steps]:
    """`img` repaired by `repairer` (RepairEngine: -> Repaired), then its faces restored by `faces` (FacesEngine,
    at `faces_strength`, None: the engine's default), upscaled `scale` times by `upscaler` (UpscaleEngine) and,
    when it is black-and-white (toned or not), colourised by `colorizer`. Engines left out (None) are steps not taken."""
    repaired = repairer(img) if repairer is not None else None  # None: enhance only (faces, resolution)
    out = repaired.image if repaired is not None else img
    found = 0
    if faces is not None:
        out, found = faces(out, strength=faces_strength)
    upscaled = None
    if upscaler is not None:
        before = out.size
        out = upscaler(out, scale=scale)
        upscaled = scale if out.size != before else None
    # Black and white as people mean it: a scan saved as colour (JPEG noise in the channels) and a sepia print
    # are colourised; a photo in colour is not (models/color.py, the bot's own colour check).
    colourised = colorizer is not None and not is_colour_photo(out)
    if colourised:
        out = colorizer(out)
    return out, Steps(regions=repaired.regions if repaired is not None else 0, faces=found, upscaled=upscaled, colourised=colourised)
