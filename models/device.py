"""Which device the models run on, and how many CPU threads they use (chosen once, at start-up)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
from torch import nn


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


class SignReLU(nn.Module):
    """ReLU for bf16 and fp16 tensors as an integer clamp of their bits. A half-precision number is negative
    exactly when its bits, read as an int16, are: clamping that int16 view at 0 gives ReLU's result bit for
    bit, but for -0 (+0 here, an equal number) and a NaN with its sign bit set (0 here). Why: torch's bf16
    ReLU on a CPU widens every element to float32 and back; on the 2-core Xeon with AMX it took 34 ms for one 8 x 64 x 256 x 256 batch, the int16
    clamp 5 ms, and ReLU had been a fifth of the instance-aware colouriser's instance pass. Other dtypes
    take torch's own ReLU."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype not in (torch.bfloat16, torch.float16):
            return torch.relu_(x) if self.inplace else torch.relu(x)
        out = x if self.inplace else x.clone()
        out.view(torch.int16).clamp_(min=0)
        return out


def sign_relus(net: nn.Module) -> nn.Module:
    """`net` with each of its nn.ReLU modules replaced by a SignReLU (no weights change: the state dict's
    keys and values stay as they were). For networks kept in bf16 or fp16."""
    for module in list(net.modules()):
        for name, child in module.named_children():
            if type(child) is nn.ReLU:
                setattr(module, name, SignReLU(child.inplace))
    return net
