"""Which device the models run on, how many CPU threads they use and whether freed memory is kept (chosen once,
at start-up), and what a network kept in reduced precision runs as there: ReLUs as bit clamps (SignReLU),
convolutions packed for oneDNN."""

from __future__ import annotations

import ctypes
import platform
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


# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
KEPT_AT_MOST = 2**31 - 1  # bytes: more free at the heap's top than this is still given back


def keep_freed_memory(keep: bool = True) -> str:
    """Make the C allocator keep the memory torch frees for the next tensor, rather than give it back to the
    system (ModelConfig.keep_memory, PAINTBOT_KEEP_MEMORY); says what holds, for the start-up log line.

    Why: glibc serves every block over 32 MB (a feature map of a batch of crops: 8 x 128 x 256 x 256 in bf16
    is 134 MB) with a fresh mmap and unmaps it when freed, so each such tensor is new memory that the kernel
    hands over zeroed, a page fault per 4 KiB. The instance-aware colouriser's instance pass (8 crops) took
    82,000 page faults per run that way, about 0.1 s; kept in the heap (no mmap; trimmed only past 2 GiB free
    at its top), none, and bench/peers.py put it level with OpenVINO on the 2-core Zen 4, quiet and beside busy
    processes (README "Speed"). Inference runtimes keep such memory as a rule: torch's CUDA allocator on a GPU,
    OpenVINO and onnxruntime their arenas. The cost: a worker holds on to what its largest jobs needed, plus
    the heap's holes (glibc cannot always fit a freed block to the next aligned request of the same size):
    in 70 mixed instance and DDColor passes the process settled 0.4 GB above glibc's own peak after 35.
    Not glibc (musl, macOS): nothing changes."""
    if not keep:
        return "given back (PAINTBOT_KEEP_MEMORY=0)"
    if platform.libc_ver()[0] != "glibc":
        return "given back (not glibc)"
    mallopt = ctypes.CDLL(None).mallopt
    if mallopt(M_MMAP_MAX, 0) != 1 or mallopt(M_TRIM_THRESHOLD, KEPT_AT_MOST) != 1:
        return "given back (mallopt refused)"
    return "kept for the next tensor"


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


# oneDNN's convolutions as torch's inductor calls them with `freezing` (torch/_inductor/fx_passes/mkldnn_fusion.py):
# weights reordered once, an activation or an addition computed in the convolution's own kernel.
_MKLDNN = torch.ops.mkldnn


def _activation(module: nn.Module | None) -> tuple[str, list] | None:
    """oneDNN's name and scalars for an activation module it can compute after a convolution, else None."""
    if type(module) in (nn.ReLU, SignReLU):
        return "relu", []
    if type(module) is nn.LeakyReLU:
        return "leaky_relu", [module.negative_slope]
    return None


class PackedConv2d(nn.Module):
    """A Conv2d (and the activation after it, if any) on weights reordered once into oneDNN's own layout.

    Why: eager torch reorders a bf16 convolution's weights at every call and runs the ReLU after it as a
    pass of its own over memory; here both happen inside the convolution, as OpenVINO and inductor's freezing
    do. On the 2-core Xeon with AMX the instance-aware colouriser's instance generator took 0.87-0.97 of
    eager bf16's time (in-process runs, round by round; README "Speed"). The result is the same convolution's, rounded once: ReLU commutes with bf16 rounding,
    and an addition (`add_into`) is made before rounding rather than after. The weights live only in the
    reordered form (no `weight` in the state dict): build and load the network first, then pack it."""

    def __init__(self, conv: nn.Conv2d, activation: nn.Module | None = None):
        super().__init__()
        self.args = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
        self.register_buffer("packed", _MKLDNN._reorder_convolution_weight(conv.weight.detach(), *self.args),
                             persistent=False)
        self.bias = conv.bias
        self.attr, self.scalars = _activation(activation) or ("none", [])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _MKLDNN._convolution_pointwise(x, self.packed, self.bias, *self.args, self.attr, self.scalars, "")


class PackedConvTranspose2d(nn.Module):
    """A ConvTranspose2d on weights reordered once (see PackedConv2d)."""

    def __init__(self, conv: nn.ConvTranspose2d):
        super().__init__()
        self.args = (list(conv.padding), list(conv.output_padding), list(conv.stride), list(conv.dilation),
                     conv.groups)
        self.register_buffer("packed", _MKLDNN._reorder_convolution_transpose_weight(conv.weight.detach(), *self.args),
                             persistent=False)
        self.bias = conv.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _MKLDNN._convolution_transpose_pointwise(x, self.packed, self.bias, *self.args, "none", [], "")


def packed_convolutions(net: nn.Module) -> nn.Module:
    """`net` (loaded, on the CPU, in its dtype and channels-last) with each Conv2d and ConvTranspose2d a packed
    one, and each activation directly after a Conv2d in an nn.Sequential taken into it (an nn.Identity left
    in its place). Convolutions with a padding mode other than zeros stay as they are."""
    for module in list(net.modules()):
        children = list(module.named_children())
        for i, (name, child) in enumerate(children):
            if type(child) is nn.Conv2d and child.padding_mode == "zeros" and isinstance(child.padding, tuple):
                after = children[i + 1] if isinstance(module, nn.Sequential) and i + 1 < len(children) else None
                taken = after is not None and _activation(after[1]) is not None
                setattr(module, name, PackedConv2d(child, after[1] if taken else None))
                if taken:
                    setattr(module, after[0], nn.Identity())
            elif type(child) is nn.ConvTranspose2d and child.padding_mode == "zeros":
                setattr(module, name, PackedConvTranspose2d(child))
    return net


def add_into(out: torch.Tensor, conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`out += conv(x)`, in place: within the convolution's kernel where `conv` is a PackedConv2d without an
    activation (no pass over `out` of its own), else as the two operations."""
    if isinstance(conv, PackedConv2d) and conv.attr == "none":
        return _MKLDNN._convolution_pointwise_.binary(out, x, conv.packed, conv.bias, *conv.args, "add", None,
                                                      None, [], None)
    return out.add_(conv(x))
