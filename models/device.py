"""Which device the models run on, and how many CPU threads they use (chosen once, at start-up)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch


class DeviceError(RuntimeError):
    """The configured device cannot be used; the message is one line saying why."""


def pick_device(name: str | torch.device = "auto") -> torch.device:
    """`auto` (CUDA when available, else CPU), `cpu` or `cuda[:N]` (ModelConfig.device, PAINTBOT_DEVICE)."""
    if isinstance(name, torch.device):
        return name
    name = name.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(f"PAINTBOT_DEVICE={name} but no CUDA device is available (driver or container toolkit?)")
    if name != "cpu" and not name.startswith("cuda"):
        raise DeviceError(f"PAINTBOT_DEVICE must be auto, cpu or cuda, not {name!r}")
    return torch.device(name)


def set_threads(threads: int | None) -> int:
    """CPU threads for torch (ModelConfig.torch_threads; None keeps torch's default)."""
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def reduced_dtype(device: torch.device) -> torch.dtype | None:
    """The reduced precision worth using on `device`: fp16 on CUDA, bf16 on CPUs with native bf16
    instructions (AVX512-BF16 or AMX), else None (float32)."""
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and torch.backends.mkldnn.is_available() and _cpu_has_bf16():
        return torch.bfloat16
    return None


@lru_cache(maxsize=1)
def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
