"""models/device.py's numerics for reduced precision: SignReLU is ReLU, bit for bit (-0 comes out as +0); packed
convolutions compute what the modules they replace compute, with the activation and an addition inside. And the
start-up choice of keeping freed memory: a large tensor freed serves the next one without a page fault."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from models.device import PackedConv2d, PackedConvTranspose2d, SignReLU, add_into, packed_convolutions, sign_relus


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("inplace", [True, False])
def test_sign_relu_is_relu_bit_for_bit(dtype, inplace):
    x = torch.randn(2, 8, 17, 19) * 100
    x[0, 0, 0, :6] = torch.tensor([0.0, -0.0, float("inf"), -float("inf"), 1e-30, -1e-30])
    x = x.to(dtype).contiguous(memory_format=torch.channels_last)
    want = torch.relu(x)
    got = SignReLU(inplace)(x.clone())
    assert got.dtype == dtype and torch.equal(got, want)
    negative_zero = want.view(torch.int16) == -32768
    assert negative_zero.any() and torch.equal(got.view(torch.int16)[~negative_zero],
                                                    want.view(torch.int16)[~negative_zero]), "bits differ"
    kept = x.clone()
    SignReLU(inplace)(kept)
    assert torch.equal(kept, want) if inplace else torch.equal(kept, x), "in place only when asked"


def test_float32_takes_torchs_relu_and_the_swap_keeps_the_weights():
    x = torch.randn(3, 5)
    assert torch.equal(SignReLU()(x), torch.relu(x))
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(True), nn.Sequential(nn.ReLU(), nn.LeakyReLU(0.2)))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    sign_relus(net)
    assert [type(m).__name__ for m in net.modules()][1:] == ["Conv2d", "SignReLU", "Sequential", "SignReLU",
                                                            "LeakyReLU"]
    assert net[1].inplace and not net[2][0].inplace
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def _convs() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(4, 8, 3, 1, 1), nn.ReLU(True), nn.Conv2d(8, 8, 3, 1, 2, dilation=2),
                         nn.LeakyReLU(0.2, True), nn.Conv2d(8, 8, 3, 2, 1), nn.BatchNorm2d(8),
                         nn.ConvTranspose2d(8, 4, 4, 2, 1), nn.Tanh()).eval()


def test_packing_takes_each_activation_into_its_convolution_and_computes_the_same():
    net, x = _convs(), torch.randn(2, 4, 20, 20).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        want = net(x)
        packed = packed_convolutions(sign_relus(net.to(memory_format=torch.channels_last)))
        got = packed(x)
    assert [type(m).__name__ for m in packed] == ["PackedConv2d", "Identity", "PackedConv2d", "Identity",
                                                  "PackedConv2d", "BatchNorm2d", "PackedConvTranspose2d", "Tanh"]
    assert [(m.attr, m.scalars) for m in packed if isinstance(m, PackedConv2d)] == [
        ("relu", []), ("leaky_relu", [0.2]), ("none", [])]  # batch norm is no activation: it stays after
    assert isinstance(packed[6], PackedConvTranspose2d)
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5, rtol=1e-4)


def test_add_into_adds_a_convolution_in_place():
    torch.manual_seed(1)
    conv = nn.Conv2d(8, 8, 3, 1, 1).eval()
    x, out = (torch.randn(2, 8, 16, 16).contiguous(memory_format=torch.channels_last) for _ in range(2))
    with torch.inference_mode():
        want = out + conv(x)
        for module in (conv, PackedConv2d(conv)):
            into = out.clone()
            got = add_into(into, module, x)
            assert got.data_ptr() == into.data_ptr() and torch.allclose(got, want, atol=1e-5, rtol=1e-4)


FAULTS = r"""
import resource, sys, torch
from models.device import keep_freed_memory
said = keep_freed_memory(sys.argv[1] == "keep")
faults = []
for _ in range(16):  # a 64 MiB tensor, freed, and another: each time
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(64 << 20, dtype=torch.uint8)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(max(faults[-4:]), said, sep="|")
"""


@pytest.mark.parametrize("keep", [True, False])
def test_kept_memory_serves_the_next_large_tensor_without_page_faults(keep):
    """64 MiB tensors one after another: glibc's default maps fresh memory for each (16,384 faults of 4 KiB, or
    32 of 2 MiB where transparent huge pages are always on); kept, freed blocks serve the next ones once the
    heap has settled (glibc's aligned allocations leave a few holes first). A fresh process each."""
    run = subprocess.run([sys.executable, "-c", FAULTS, "keep" if keep else "give back"], capture_output=True,
                         text=True, cwd=Path(__file__).resolve().parent.parent, timeout=120)
    faults, said = run.stdout.strip().split("|")
    if keep:
        assert said == "kept for the next tensor" and int(faults) < 16, (faults, said)
    else:
        assert said == "given back (PAINTBOT_KEEP_MEMORY=0)" and int(faults) >= 32, (faults, said)


def test_freed_memory_is_kept_unless_the_operator_says_0():
    from models import engines

    assert engines.config_from_env({}).keep_memory and engines.config_from_env({"PAINTBOT_KEEP_MEMORY": "1"}).keep_memory
    assert not engines.config_from_env({"PAINTBOT_KEEP_MEMORY": " 0 "}).keep_memory
