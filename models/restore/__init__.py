"""Restoration of damaged old photos: the front door to the restorers, for Python callers.

    r = load()                                  # once per process: the default restorer ("repair")
    found = r.damage(pil_image)                 # Damage(mask, regions): the detector alone, cheap
    fixed = r(pil_image, damage=found)          # Repaired(image, mask, regions), at full resolution

The restorers are modules of this package, registered in models/engines.py; what they share (Damage,
Repaired, the paste-back that leaves undamaged pixels untouched) is models/restore/framing.py. This
__init__ keeps only `load`, which imports the registry when called, so that importing an engine never
imports the registry back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from models.config import ModelConfig

if TYPE_CHECKING:
    from models.restore.framing import RestoreEngine


def load(name: str | None = None, device=None, config: ModelConfig | None = None) -> RestoreEngine:
    """The restorer `name` (default: the family's first that this machine can run), ready to call."""
    from models import engines

    return engines.load(name, "restore", device, config or ModelConfig())
