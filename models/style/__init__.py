"""Neural style transfer: the front door to the style engines, for Python callers.

    s = load("adain")            # once per process; default: the best this machine can run
    out = s(photo, painting, strength=0.6, keep_colors=False, style_key="vangogh", size=512)

The engines are modules of this package, registered in models/engines.py; the framing they share
(sizing, strength, keep-colours, the style cache) is models/style/framing.py. This __init__ keeps
only the front door, which imports the registry when called, so that importing an engine never
imports the registry back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models.config import ModelConfig
    from models.style.framing import StyleEngine


def load(engine: str | None = None, device=None, config: ModelConfig | None = None) -> StyleEngine:
    """The style engine `engine` (default: the configured one, else the best this machine can run),
    ready to call: `s(content, style, *, strength=1.0, keep_colors=False, style_key=None, size=None)`.
    A front door to models.engines."""
    from models import engines

    return engines.load(engine, "style", device, config)
