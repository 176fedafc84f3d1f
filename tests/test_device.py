"""models/device.py's numerics for reduced precision: SignReLU is ReLU, bit for bit (-0 comes out as +0)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models.device import SignReLU, sign_relus


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
