"""Stand-in weight files of the enhancers (Real-ESRGAN, GFPGAN, RetinaFace), in each published file's format.

The networks are spandrel's own architectures (facexlib's for RetinaFace) with seeded random weights; each
file is saved as its authors saved it, so that loading it back goes through spandrel's detection exactly as
the real file would:
- realesr-general-x4v3.pth / -wdn-: SRVGGNetCompact (64 features, 32 convolutions, 4x), {"params": ...};
- RealESRGAN_x4plus.pth: basicsr's RRDBNet key names (conv_first, body.N.rdbM.convK, conv_body, conv_up1,
  conv_up2, conv_hr, conv_last), {"params_ema": ...}; spandrel converts them to its own layout on loading;
- GFPGANv1.4.pth: GFPGANv1Clean (512, channel multiplier 2, SFT half), {"params_ema": ...};
- detection_Resnet50_Final.pth: RetinaFace-ResNet50, a plain state dict with DataParallel's "module." prefix.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch


def _seeded(module: torch.nn.Module, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, v in module.state_dict().items():
        if v.is_floating_point() and v.dim() > 1:
            fan_in = max(1, v[0].numel())
            sd[k] = torch.randn(v.shape, generator=g) * (1.0 / fan_in) ** 0.5
        elif v.is_floating_point():
            sd[k] = torch.randn(v.shape, generator=g) * 0.01 + (1 if k.endswith(("running_var", "bn1.weight")) else 0)
        else:
            sd[k] = v.clone()
    return sd


def compact_state_dict(seed: int = 0) -> dict:
    from spandrel.architectures.Compact import Compact

    return _seeded(Compact(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=32, upscale=4, act_type="prelu"), seed)


def write_compact(path: Path, seed: int = 0, state_dict: dict | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"params": state_dict if state_dict is not None else compact_state_dict(seed)}, path)
    return path


def rrdb_state_dict(seed: int = 0, blocks: int = 23) -> dict:
    """spandrel's RRDBNet (its own "model.N" layout) with seeded weights."""
    from spandrel.architectures.ESRGAN import ESRGAN

    return _seeded(ESRGAN(in_nc=3, out_nc=3, num_filters=64, num_blocks=blocks, scale=4), seed)


def to_basicsr(sd: dict) -> dict:
    """spandrel's RRDBNet keys renamed to basicsr's, as RealESRGAN_x4plus.pth has them."""
    blocks = max(int(m.group(1)) for k in sd if (m := re.match(r"model\.1\.sub\.(\d+)\.RDB", k))) + 1
    fixed = {"model.0": "conv_first", f"model.1.sub.{blocks}": "conv_body", "model.3": "conv_up1",
             "model.6": "conv_up2", "model.8": "conv_hr", "model.10": "conv_last"}
    out = {}
    for k, v in sd.items():
        if m := re.fullmatch(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)", k):
            out[f"body.{m[1]}.rdb{m[2]}.conv{m[3]}.{m[4]}"] = v
        else:
            stem, kind = k.rsplit(".", 1)
            out[f"{fixed[stem]}.{kind}"] = v
    return out


def write_x4plus(path: Path, seed: int = 0, blocks: int = 23) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"params_ema": to_basicsr(rrdb_state_dict(seed, blocks))}, path)
    return path


def gfpgan_state_dict(seed: int = 0) -> dict:
    from spandrel.architectures.GFPGAN import GFPGAN

    torch.manual_seed(seed)
    net = GFPGAN(out_size=512, num_style_feat=512, channel_multiplier=2, decoder_load_path=None, fix_decoder=False,
                 num_mlp=8, input_is_latent=True, different_w=True, narrow=1, sft_half=True)
    return dict(net.state_dict())  # its own (seeded) initialisation: StyleGAN2's scaled weights stay finite


def write_gfpgan(path: Path, state_dict: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"params_ema": state_dict}, path)
    return path


def retinaface_state_dict(seed: int = 0) -> dict:
    from models.restore.faces import build_detector

    return _seeded(build_detector(), seed)


def write_retinaface(path: Path, state_dict: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({f"module.{k}": v for k, v in state_dict.items()}, path)
    return path


CONSTANT = -0.6  # the stand-in GFPGAN's output everywhere, in its [-1, 1]: (1 - 0.6) * 127.5 = 51 grey levels


def constant_gfpgan() -> dict:
    """A GFPGANv1Clean whose image is a constant: every ToRGB's convolution zero, its bias adding up to CONSTANT."""
    sd = gfpgan_state_dict(seed=7)
    to_rgb = [k for k in sd if "to_rgb" in k and k.endswith("modulated_conv.weight")]
    for k in to_rgb:
        sd[k].zero_()
    biases = [k for k in sd if "to_rgb" in k and k.endswith(".bias") and "modulation" not in k]
    for k in biases:
        sd[k].fill_(CONSTANT / len(biases))
    return sd


def firing_retinaface() -> dict:
    """A RetinaFace that scores every anchor a face (class heads: zero weights, bias 8 in favour of "face"),
    with random boxes and landmarks near the FFHQ template's layout in each anchor (landmark heads: the
    template as bias, small random weights): many detections for NMS and the eye-distance rule to sort out."""
    from models.restore.faces import FFHQ_TEMPLATE

    sd = retinaface_state_dict(seed=3)
    layout = torch.from_numpy((FFHQ_TEMPLATE.reshape(-1) - 256) / 512 / 0.1)  # decode_landm's variance
    for k in sd:
        if k.startswith("ClassHead.") and k.endswith("weight"):
            sd[k].zero_()
        elif k.startswith("ClassHead.") and k.endswith("bias"):
            sd[k].copy_(torch.tensor([-4.0, 4.0]).repeat(sd[k].numel() // 2))
        elif k.startswith("LandmarkHead.") and k.endswith("weight"):
            sd[k].mul_(0.1)
        elif k.startswith("LandmarkHead.") and k.endswith("bias"):
            sd[k].copy_(layout.repeat(sd[k].numel() // 10))
    return sd



def one_face_retinaface() -> dict:
    """A RetinaFace that finds exactly one face in any photo: only the 64 px anchors score as faces, and every
    box is decoded to the same huge size, so NMS keeps one of them (its landmarks: the template's layout at
    that anchor, a face about 64 px wide at the detection size). For end-to-end tests, where each face found
    costs a GFPGAN forward."""
    import math

    sd = firing_retinaface()
    sizes = ((16, 32), (64, 128), (256, 512))  # RetinaFace-ResNet50's anchors (facexlib cfg_re50 min_sizes)
    for level, anchors in enumerate(sizes):
        sd[f"ClassHead.{level}.conv1x1.bias"].copy_(torch.tensor(
            [x for s in anchors for x in ((-4.0, 4.0) if s == 64 else (4.0, -4.0))]))
        sd[f"BboxHead.{level}.conv1x1.weight"].zero_()
        sd[f"BboxHead.{level}.conv1x1.bias"].copy_(torch.tensor(
            [x for s in anchors for x in (0.0, 0.0, math.log(1e5 / s) / 0.2, math.log(1e5 / s) / 0.2)]))
    return sd


def blind_retinaface() -> dict:
    """A RetinaFace that finds no face anywhere (every anchor scores as background)."""
    sd = retinaface_state_dict(seed=4)
    for k in sd:
        if k.startswith("ClassHead.") and k.endswith("weight"):
            sd[k].zero_()
        elif k.startswith("ClassHead.") and k.endswith("bias"):
            sd[k].copy_(torch.tensor([4.0, -4.0]).repeat(sd[k].numel() // 2))
    return sd
