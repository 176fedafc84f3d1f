"""What the two enhancers (faces.py: GFPGAN, upscale.py: Real-ESRGAN) share: their files are read and
recognised by spandrel, and a black-and-white photo is enhanced on its lightness only.

spandrel (MIT) carries the architectures and recognises a network from its state dict's keys and shapes,
loading it strictly; paintbot checks that what it recognised is the architecture the engine declared, so
that a wrong file is a one-line FetchError at the verify-and-pin step (models/weights.py), never a network
that runs with the wrong weights. spandrel's descriptor call is not used: it assumes a [0, 1] range and
clamps its output to it, which is wrong for GFPGAN ([-1, 1]); each engine calls `descriptor.model` with the
range its authors feed it.

A photo is black-and-white when it is mode "L" or RGB with R = G = B everywhere (a scan saved as colour).
Such a photo goes through a network as three equal channels, and only the result's lightness is kept, in
the photo's own mode, so that a colouriser can colour it afterwards at its new size (the colourisers join
their chroma to the photo's lightness: models/colorize/framing.py). A colour photo keeps the network's colours.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from models.fetch import FetchError
from models.restore.framing import is_gray


def one_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def read(path: Path) -> dict:
    """The state dict in a weight file as spandrel reads it (a pickled .pth, weights only, or safetensors)."""
    from spandrel import ModelLoader

    try:
        return ModelLoader().load_state_dict_from_file(path)
    except FileNotFoundError:
        raise FetchError(f"weights file not found: {path}") from None
    except Exception as exc:  # what torch.load / safetensors raise
        raise FetchError(f"cannot read weights file {path}: {one_line(exc)}") from None


def detector(architecture: str, url: str, check: Callable[[object], str | None] | None = None):
    """A WeightFile.detect: spandrel's descriptor of the network in a state dict (loaded strictly), which
    must be `architecture` (a spandrel architecture id) and pass `check` (None, or what is wrong)."""

    def detect(state_dict: dict, source: Path | str):
        from spandrel import ModelLoader, UnsupportedModelError

        try:
            model = ModelLoader().load_from_state_dict(state_dict)
        except UnsupportedModelError:
            raise FetchError(f"{source} is not a network spandrel knows (expected {architecture}, as {url})") from None
        except Exception as exc:  # the architecture's keys are there but a shape or key differs
            raise FetchError(f"{source} does not fit {architecture}: {one_line(exc)}") from None
        if model.architecture.id != architecture:
            raise FetchError(f"{source} holds a {model.architecture.name} network, not {architecture} (as {url})")
        wrong = check(model) if check else None
        if wrong:
            raise FetchError(f"{source} is not the expected {architecture} ({url}): {wrong}")
        return model.eval()

    return detect


def as_rgb(img: Image.Image) -> np.ndarray:
    """The photo as an (h, w, 3) uint8 RGB array (gray as three equal channels)."""
    return np.asarray(img.convert("RGB"))


def in_kind_of(original: Image.Image, rgb: np.ndarray) -> Image.Image:
    """`rgb` (h, w, 3 uint8) as a photo of `original`'s kind: a black-and-white one keeps only the
    lightness (ITU-R 601 luma, as PIL converts), in its own mode (L, or RGB with equal channels)."""
    out = Image.fromarray(rgb, "RGB")
    if not is_gray(original):
        return out
    gray = out.convert("L")
    return gray if original.mode == "L" else Image.merge("RGB", (gray, gray, gray))
