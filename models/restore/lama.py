"""Filling the damage: LaMa (Suvorov et al., WACV 2022, Apache-2.0) through spandrel, not re-implemented.

The published `big-lama.pt` (the release spandrel's README names: github.com/Sanster/models, tag
add_big_lama, made for lama-cleaner, which publishes its MD5 e3aa4aaa15225a33ec84f9f4bc47e500 and no
SHA-256) is a TorchScript archive whose state dict holds `generator.model.*`. spandrel (MIT; what chaiNNer,
ComfyUI and AUTOMATIC1111 load restoration networks with) reads such a file, recognises the architecture
from its keys and loads it strictly; paintbot only checks that what it recognised is LaMa.

What spandrel leaves to its caller is here and in the engine: the value range ([0, 1], RGB, mask 1 =
fill), padding to the multiple the network needs (reflected, so the border is real context, then cut off),
the working size, and pasting back (models/restore/framing.py). LaMa's Fourier convolutions have no
bfloat16 FFT on CPU in torch 2.14 ("Unsupported dtype BFloat16", measured), so it runs in float32 there.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from models.fetch import FetchError

URL = "https://github.com/Sanster/models/releases/download/add_big_lama/big-lama.pt"
ARCHITECTURE = "LaMa"


def _one_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def read(path: Path) -> dict:
    """The state dict of a LaMa file as spandrel reads it: a TorchScript archive (.pt, as published), or a
    pickled/safetensors state dict (for an operator's own export)."""
    import warnings

    from spandrel import ModelLoader

    try:
        with warnings.catch_warnings():  # torch.jit.load's deprecation notice: the published file is TorchScript
            warnings.simplefilter("ignore", FutureWarning)
            return ModelLoader().load_state_dict_from_file(path)
    except FileNotFoundError:
        raise FetchError(f"weights file not found: {path}") from None
    except Exception as exc:  # spandrel raises what torch.jit / torch.load / safetensors raise
        raise FetchError(f"cannot read {path} as a LaMa checkpoint: {_one_line(exc)}") from None


def detect(state_dict: dict, source: Path | str):
    """spandrel's descriptor of the network in `state_dict` (strict), which must be LaMa."""
    from spandrel import MaskedImageModelDescriptor, ModelLoader, UnsupportedModelError

    try:
        model = ModelLoader().load_from_state_dict(state_dict)
    except UnsupportedModelError:
        raise FetchError(f"{source} is not a network spandrel knows (expected LaMa, as {URL})") from None
    except Exception as exc:  # a LaMa whose keys or shapes differ: strict loading fails
        raise FetchError(f"{source} does not fit LaMa: {_one_line(exc)}") from None
    if model.architecture.id != ARCHITECTURE or not isinstance(model, MaskedImageModelDescriptor):
        raise FetchError(f"{source} holds a {model.architecture.name} network, not LaMa (as {URL})")
    return model


def pad_to(x: torch.Tensor, multiple: int, minimum: int = 0) -> torch.Tensor:
    """`x` (N, C, H, W) padded at the bottom and right to a multiple of `multiple` (at least `minimum`),
    reflected where the picture is large enough, else repeated."""
    h, w = x.shape[-2:]
    ph = max(-(-max(h, minimum) // multiple) * multiple - h, 0)
    pw = max(-(-max(w, minimum) // multiple) * multiple - w, 0)
    if not ph and not pw:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


@torch.inference_mode()
def fill(model, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """LaMa's fill of `image` (1, 3, h, w) float in [0, 1] where `mask` (1, 1, h, w) is 1; (1, 3, h, w) in
    [0, 1]. Padded here to the network's multiple, so spandrel's own padding never applies."""
    req = model.size_requirements
    h, w = image.shape[-2:]
    out = model(pad_to(image, req.multiple_of, req.minimum), pad_to(mask, req.multiple_of, req.minimum))
    return out[..., :h, :w]
