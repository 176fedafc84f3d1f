"""What every engine declares, beside its network: the shape of a registered model.

Modelled on rembg's sessions: an engine class names itself, its family, the weight files it needs
(each with the network builder that checks it strictly) and its settings; constructing it with a
device and a ModelConfig loads it. models/engines.py lists every engine explicitly; everything
else (CLI, worker, downloads, bench, eval) takes the list from there.

The families add their call shape and shared framing: `models.colorize.framing.ColorizeEngine`
(image, *, intensity, reference, hints -> image: Lab in and out at full resolution; also a
small `preview` and the colours to `suggest` at a tap) and
`models.style.framing.StyleEngine` (content, style, *, strength, keep_colors, style_key, size ->
image: sizing, keep-colours, cached style statistics). They take plain values, never the bot's
option objects: models/ imports nothing of the app.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from models import runtime, weights
from models.config import ModelConfig
from models.device import reduced_dtype, sign_relus


@dataclass(frozen=True)
class Licence:
    """What the authors allow for an engine's code and for its weights, as they published it.

    Why both: paintbot reimplements each network (so the authors' code licence governs the method as
    published), but runs the authors' weights, which may carry terms of their own (a model card, a
    README line). `commercial` is False when either one forbids commercial use; PAINTBOT_COMMERCIAL=1
    keeps such engines out of the defaults (models/engines.py). `source` says where each was read, so
    an operator can check it."""

    code: str  # SPDX identifier, or a few words where there is none
    weights: str
    commercial: bool
    source: str


class Engine:
    name: ClassVar[str]  # what users type: /colorize NAME, --model NAME
    family: ClassVar[str]  # "colorize" or "style"
    label: ClassVar[str]  # how a caption names it, in every language: proper names and a citation only
    files: ClassVar[tuple[weights.WeightFile, ...]] = ()
    # Device types on which this engine may be chosen as the family's default (in registry order,
    # the first whose files are present wins); empty: only when asked for by name.
    default_on: ClassVar[frozenset[str]] = frozenset({"cpu", "cuda"})
    aliases: ClassVar[tuple[str, ...]] = ()  # other words for it in commands ("hq", "fast")
    needs_reference: ClassVar[bool] = False  # takes a second image (a colour reference)
    takes_hints: ClassVar[bool] = False  # takes colours a person asks for at pixels (models/colorize/hints.py)
    Settings: ClassVar[type | None] = None  # a frozen dataclass of its own settings, or None
    licence: ClassVar[Licence | None] = None  # every registered engine declares one (tests/test_cli.py)
    runs_in = "torch"  # "OpenVINO" once a network of it is converted (`converted`, models/runtime.py), or raced

    def __init__(self, device: torch.device, config: ModelConfig):
        self.device = device
        self.config = config
        self.settings = config.settings_for(type(self))
        # The networks' dtype: bf16 on capable CPUs / fp16 on CUDA, unless the operator asked for float32.
        self.dtype = (reduced_dtype(device) if config.reduced_precision else None) or torch.float32

    def load_file(self, wf: weights.WeightFile):
        """`wf`'s network with its weights (strictly), in eval mode on this engine's device."""
        return weights.load(wf, self.config).eval().to(self.device)

    def half(self, net: torch.nn.Module) -> torch.nn.Module:
        """Weights stored in the reduced type (no per-call casts) and NHWC, which oneDNN/cuDNN prefer; in a
        reduced type, its ReLUs clamp the bits (models/device.py SignReLU: the same result, 7x faster on CPU)."""
        net = net.to(dtype=self.dtype, memory_format=torch.channels_last)
        return sign_relus(net) if self.dtype != torch.float32 else net

    def runnable(self, net: torch.nn.Module, *example: torch.Tensor, shapes=None, name: str | None = None,
                 race: bool = False):
        """`net` (loaded, float32) as this engine runs it: in OpenVINO where models/runtime.py chooses it
        (traced with the float32 `example` inputs; `shapes`: each input's shape, -1 where a dimension varies),
        else in torch in the engine's dtype and layout (`half`). `race` (a network of one input shape): where
        OpenVINO runs it, the runtime is `auto` and the process serves (ModelConfig.serving), also compiled by
        torch in the background, each call run in whichever has been faster lately (runtime.Fastest). Any of
        them is called with torch tensors and returns torch tensors; an engine asks for this only for networks
        that bench/peers.py shows faster so."""
        converted = self.converted(net, *example, shapes=shapes, name=name)
        if converted is None:
            return self.half(net)
        if race and self.config.runtime == "auto" and self.config.serving:
            name = name or self.name
            self.runs_in = "OpenVINO, raced against torch.compile"
            fastest = runtime.Fastest(name, {"OpenVINO": converted}, example)
            fastest.join_later("torch.compile",
                               lambda: runtime.compile_torch(net, example, name=name, dtype=self.dtype))
            return fastest
        return converted

    def converted(self, net: torch.nn.Module, *example: torch.Tensor, shapes=None, name: str | None = None,
                  properties: dict[str, str] | None = None) -> runtime.Converted | None:
        """`net` (loaded, float32) in OpenVINO where models/runtime.py chooses it for this engine, else None."""
        if not runtime.wanted(self.config, self.device):
            return None
        converted = runtime.convert(net, example, name=name or self.name, config=self.config, dtype=self.dtype,
                                    shapes=shapes, properties=properties)
        if converted is not None:
            self.runs_in = "OpenVINO"
        return converted

    @classmethod
    def files_present(cls, config: ModelConfig) -> bool:
        return all(weights.is_present(f, config) for f in cls.files)

    def __repr__(self) -> str:
        return f"<{self.family} engine {self.name} on {self.device} ({self.dtype}, {self.runs_in})>"
