"""Which device the models run on, and how many CPU threads they use (chosen once, at start-up)."""

from __future__ import annotations

import os

import torch


def pick_device(name: str | None = None) -> torch.device:
    """`name` or PAINTBOT_DEVICE: `auto` (CUDA when available, else CPU), `cpu` or `cuda[:N]`."""
    name = (name or os.environ.get("PAINTBOT_DEVICE") or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"PAINTBOT_DEVICE={name} but no CUDA device is available (driver or container toolkit?)")
    if name != "cpu" and not name.startswith("cuda"):
        raise RuntimeError(f"PAINTBOT_DEVICE must be auto, cpu or cuda, not {name!r}")
    return torch.device(name)


def set_threads() -> int:
    """CPU threads for torch: PAINTBOT_TORCH_THREADS, else OMP_NUM_THREADS, else torch's default."""
    raw = os.environ.get("PAINTBOT_TORCH_THREADS") or os.environ.get("OMP_NUM_THREADS")
    if raw:
        torch.set_num_threads(max(1, int(raw)))
    return torch.get_num_threads()
