"""Repair: the damage the scratch detector finds, painted out by LaMa, at the photo's full resolution.

The detector (models/restore/scratch.py) always sees the photo at short side 256 and costs a fraction of
a second, so `damage` can run in every colourisation job. The fill (models/restore/lama.py) runs at a
working size: the photo's long side is brought down to `work_size` (512 on CPU: LaMa takes seconds there
per quarter megapixel and has no bfloat16 FFT; 1024 on CUDA), the mask grown by a few pixels and taken
to the same size (a working pixel is filled when any of its photo pixels is damaged), LaMa fills it, the
fill is resized back, and only the pixels under the full-resolution mask are pasted into the untouched
photo (LaMa sees only the damage's bounding box and CONTEXT pixels around it when the damage is local).
Thin scratches are what old photos have: at their scale the fill is smooth texture, so it loses
little by coming from a smaller picture, and the rest of the photo keeps every original pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from models.restore import lama, scratch
from models.restore.framing import (Damage, Repaired, RestoreEngine, count_regions, dilate, fill_radius,
                                    is_gray, paste)
from models.engine import Licence
from models.weights import WeightFile, remote

DETECTOR_ARCHIVE_URL = ("https://github.com/microsoft/Bringing-Old-Photos-Back-to-Life/releases/download/v1.0/"
                        "global_checkpoints.zip")
DETECTOR_FILE = WeightFile(remote(DETECTOR_ARCHIVE_URL, None, filename="FT_Epoch_latest.pt",
                                  archive="global_checkpoints.zip",
                                  member="checkpoints/detection/FT_Epoch_latest.pt"),
                           scratch.ScratchUNet, scratch.prepare_checkpoint,
                           override_env="PAINTBOT_SCRATCH_WEIGHTS")
LAMA_FILE = WeightFile(remote(lama.URL, None), None, override_env="PAINTBOT_LAMA_WEIGHTS",
                       read=lama.read, detect=lama.detect)


CONTEXT = 64  # working pixels of photo around the damage that LaMa sees when the damage is local


def context_box(mask: np.ndarray, margin: int) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the damage's bounding box grown by `margin`, within the picture: LaMa
    fills a photo with a few specks in one corner from that part alone (lama-cleaner's "crop" strategy),
    at a fraction of the cost; damage spread over the photo gives the whole photo."""
    rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    h, w = mask.shape
    if not len(rows):
        return 0, 0, h, w
    return (max(rows[0] - margin, 0), max(cols[0] - margin, 0), min(rows[-1] + 1 + margin, h),
            min(cols[-1] + 1 + margin, w))


@dataclass(frozen=True)
class RepairSettings:
    work_size: int = 0  # the fill's working long side (0: 512 on CPU, 1024 on CUDA); never above the photo's
    dilate: int = 3  # pixels the fill reaches beyond the detected damage (plus one detector cell, less one)

    def __post_init__(self):
        if self.work_size and self.work_size < 64 or not 0 <= self.dilate <= 32:
            raise ValueError("work_size must be 0 or at least 64, dilate between 0 and 32")


class RepairEngine(RestoreEngine):
    name = "repair"
    label = "Wan et al., CVPR 2020 + LaMa (Suvorov et al., WACV 2022)"
    files = (DETECTOR_FILE, LAMA_FILE)
    Settings = RepairSettings
    # Both networks' weights are published with their code; LaMa's are re-exported for lama-cleaner.
    licence = Licence(code="MIT (Wan et al.) + Apache-2.0 (LaMa) + MIT (spandrel)",
                      weights="MIT (Wan et al.'s release v1.0) + Apache-2.0 (LaMa, re-exported by lama-cleaner)",
                      commercial=True, source="LICENSE of microsoft/Bringing-Old-Photos-Back-to-Life, "
                                              "advimman/lama and chaiNNer-org/spandrel")

    def __init__(self, device, config):
        super().__init__(device, config)
        self.detector = self.half(self.load_file(DETECTOR_FILE))
        self.filler = self.load_file(LAMA_FILE)  # float32: no bfloat16 FFT on CPU
        self.work_size = self.settings.work_size or (1024 if device.type == "cuda" else 512)

    @torch.inference_mode()
    def damage(self, img: Image.Image) -> Damage:
        """The detector's mask at the photo's size (the authors' multiple-of-16 size mapped back, nearest)."""
        found = Image.fromarray(scratch.detect(self.detector, img, dtype=self.dtype))
        if found.size != img.size:
            found = found.resize(img.size, Image.NEAREST)
        mask = np.asarray(found) > 0
        return Damage(found, count_regions(dilate(mask, fill_radius(img.size, self.settings.dilate))))

    @torch.inference_mode()
    def __call__(self, img: Image.Image, *, damage: Damage | None = None) -> Repaired:
        """`img` with its damage filled: mode "L" stays "L", anything else is RGB (gray RGB stays gray)."""
        if img.mode not in ("L", "RGB"):
            img = img.convert("RGB")
        damage = damage or self.damage(img)
        if damage.regions == 0:
            return Repaired(img, Image.new("L", img.size, 0), 0)
        full = dilate(np.asarray(damage.mask) > 0, fill_radius(img.size, self.settings.dilate))
        mask = Image.fromarray(full.astype(np.uint8) * 255)
        gray = is_gray(img)
        work = img.convert("L") if gray else img
        filled = self.fill(work, full)
        if gray and img.mode == "RGB":
            return Repaired(Image.merge("RGB", [paste(work, filled, mask)] * 3), mask, damage.regions)
        return Repaired(paste(work, filled, mask), mask, damage.regions)

    def working_size(self, size: tuple[int, int]) -> tuple[int, int]:
        w, h = size
        scale = min(1.0, self.work_size / max(w, h))
        return max(1, round(w * scale)), max(1, round(h * scale))

    def fill(self, img: Image.Image, mask: np.ndarray) -> Image.Image:
        """LaMa's fill of `img` ("L" or "RGB") where `mask` is true, at the working size, resized back to
        the photo's size (only the masked pixels of it are used)."""
        size = self.working_size(img.size)
        small, m = img, Image.fromarray(mask.astype(np.uint8) * 255)
        if size != img.size:
            small = img.resize(size, Image.BICUBIC, reducing_gap=3.0)
            m = m.resize(size, Image.BOX)  # any damaged photo pixel marks its working pixel
        x = torch.from_numpy(np.array(small.convert("RGB"))).permute(2, 0, 1)[None].float().div_(255)
        mk = torch.from_numpy(np.array(m) > 0)[None, None].float()
        top, left, bottom, right = context_box(np.array(m) > 0, CONTEXT)
        out = x.clone()  # outside the box nothing is filled (and nothing of it is pasted)
        out[..., top:bottom, left:right] = lama.fill(self.filler, x[..., top:bottom, left:right].to(self.device),
                                                     mk[..., top:bottom, left:right].to(self.device)).cpu()
        rgb = Image.fromarray(out[0].mul(255).round_().byte().permute(1, 2, 0).numpy())
        result = rgb.convert("L") if img.mode == "L" else rgb  # a gray photo: the fill's lightness
        return result.resize(img.size, Image.BICUBIC) if result.size != img.size else result
