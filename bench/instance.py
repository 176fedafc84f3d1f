"""Instance-aware colourisation speed, stage by stage, at 1 MP and 3 MP with 0, 4 and 8 instances.

    .venv/bin/python bench/instance.py [--repeat 2] [--device cpu]

Stages: detector (timed on the image alone, at its default settings and at a faster one),
crops (resizes and network inputs), instance pass (the instance generator on all crops in one
batch, with what the fusion takes from each), fusion pass (or the full-image generator with
no instance), join (ab upsampled to the photo's size, joined to its own lightness, 8-bit RGB).
The 4 and 8 instance cases use synthetic boxes. Stand-in weights (published keys and shapes,
seeded values): timing does not depend on the values. Each figure is the best of --repeat runs;
the load average is printed because the machine may be shared, and the colouriser's process CPU
time (all threads) beside its wall time: on a busy machine the wall time grows, the CPU time less.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(SHARED / "weights"))

from standin import layout, make_standin  # noqa: E402

from models import color  # noqa: E402
from models.colorize import instance  # noqa: E402
from models.device import reduced_dtype  # noqa: E402

PHOTO = SHARED / "styles" / "the_resevoir_at_poitiers.jpg"
SIZES = ((1152, 864), (2000, 1500))
DETECTOR_SETTINGS = {"default (800 px, 1000 proposals)": {},
                     "faster (512 px, 300 proposals)": dict(min_size=512, max_size=853, proposals=300)}


def tensors(sd: dict) -> dict:
    return {k: torch.from_numpy(v) for k, v in sd.items()}


def colorizer(device: torch.device, dtype) -> instance.InstanceColorizer:
    entries = (("instcolorization_GComp", 2001), ("instcolorization_G", 2002), ("instcolorization_GF", 2003))
    sds = [tensors(make_standin(layout("instcolorization.json", e), seed)) for e, seed in entries]
    return instance.InstanceColorizer.from_state_dicts(*sds, device=device, dtype=dtype)


def detector_state() -> dict:
    """Stand-in values; the box-regression layers scaled down so that proposals stay real boxes
    (untrained features are ~1e4: unscaled, every proposal is degenerate and the box head idles)."""
    shapes = {k: tuple(v.shape) for k, v in instance.build_detector().state_dict().items()}
    sd = tensors(make_standin(shapes, seed=2401))
    return {k: v * 1e-5 if ".bbox_pred." in k else v for k, v in sd.items()}


def synthetic_boxes(n: int, width: int, height: int) -> torch.Tensor:
    rng = np.random.default_rng(n)
    w = rng.uniform(0.15, 0.5, n) * width
    h = rng.uniform(0.15, 0.6, n) * height
    x1, y1 = rng.uniform(0, 1, n) * (width - w), rng.uniform(0, 1, n) * (height - h)
    return torch.from_numpy(np.stack([x1, y1, x1 + w, y1 + h], 1)).float()


def join(img: Image.Image, ab_small: torch.Tensor) -> Image.Image:
    """As models/colorize: bilinear upsampling of ab, the photo's own lightness, 8-bit sRGB."""
    lightness = color.lightness_from_gray_uint8(torch.from_numpy(np.array(img))).unsqueeze(0)
    ab = F.interpolate(ab_small, size=(img.height, img.width), mode="bilinear", align_corners=False)[0]
    planes = color.lab_to_rgb_uint8(lightness, ab).numpy()
    return Image.merge("RGB", [Image.fromarray(p) for p in planes])


@torch.inference_mode()
def colourise(c: instance.InstanceColorizer, img: Image.Image, boxes: torch.Tensor, times: dict) -> Image.Image:
    def stage(name, fn, *args):
        start = time.perf_counter()
        out = fn(*args)
        if c.device.type == "cuda":
            torch.cuda.synchronize()
        times[name] = time.perf_counter() - start
        return out

    inputs = stage("crops", c.prepare, img, boxes)
    if inputs.crops is None:
        times["instance pass"] = 0.0
        ab = stage("fusion pass", lambda: c.full(inputs.full).float() * instance.AB_NORM)
    else:
        parts = stage("instance pass", c.fusion.collect, c.instance, inputs.crops, inputs.cells)
        ab = stage("fusion pass", lambda: c.fusion(inputs.full, parts).float() * instance.AB_NORM)
    return stage("join", join, img, ab)


def fidelity(reduced: instance.InstanceColorizer, full: instance.InstanceColorizer, img: Image.Image,
             boxes: torch.Tensor) -> None:
    """What reduced precision costs: the same photo and boxes through both, PSNR of the 8-bit results."""
    a, b = (np.asarray(colourise(c, img, boxes, {}), dtype=np.float64) for c in (reduced, full))
    psnr = 10 * np.log10(255**2 / max(((a - b) ** 2).mean(), 1e-12))
    print(f"{reduced.dtype} against float32, {len(boxes)} instances, last size: PSNR {psnr:.1f} dB, "
          f"largest difference {np.abs(a - b).max():.0f} of 255\n")


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def best_of(repeat: int, fn) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--float32", action="store_true", help="no reduced precision, even where the device has it")
    args = p.parse_args()
    torch.set_num_threads(2)
    device = torch.device(args.device)
    dtype = None if args.float32 else reduced_dtype(device)
    print(f"device {device}, CPU threads {torch.get_num_threads()}, precision {dtype or torch.float32}, "
          f"best of {args.repeat}, load average {os.getloadavg()[0]:.1f} at start\n")
    c = colorizer(device, dtype)
    state = detector_state()
    detectors = {name: instance.Detector.from_state_dict(state, device, **s) for name, s in DETECTOR_SETTINGS.items()}
    stages = ("crops", "instance pass", "fusion pass", "join")
    print(f"peak resident memory after loading: {peak_mib():.0f} MiB\n")
    for width, height in SIZES:
        img = Image.open(PHOTO).convert("L").resize((width, height), Image.BICUBIC)
        print(f"{width}x{height} ({width * height / 1e6:.1f} MP)")
        detect_s = {name: best_of(args.repeat, lambda d=d: d(img)) for name, d in detectors.items()}
        for name, seconds in detect_s.items():
            print(f"  detector, {name}: {seconds:.2f} s")
        print(f"  {'instances':<10}" + "".join(f"{s:>15}" for s in stages)
              + f"{'colourise':>12}{'+ detector':>12}{'CPU time':>12}")
        for n in (0, 4, 8):
            boxes = synthetic_boxes(n, width, height)
            runs = []
            for _ in range(args.repeat):
                times: dict = {}
                cpu = time.process_time()
                colourise(c, img, boxes, times)
                runs.append((times, time.process_time() - cpu))
            best, cpu = min(runs, key=lambda run: sum(run[0].values()))
            total = sum(best.values())
            end_to_end = total + detect_s[next(iter(detect_s))]
            print(f"  {n:<10}" + "".join(f"{best[s]:>13.2f} s" for s in stages)
                  + f"{total:>10.2f} s{end_to_end:>10.2f} s{cpu:>10.1f} s")
        print(f"  peak resident memory so far: {peak_mib():.0f} MiB\n")
    if dtype is not None:
        fidelity(c, colorizer(device, None), img, synthetic_boxes(8, width, height))
    print("budget: 1 MP with 8 instances in at most 8 s end to end (detector at its default settings)")


if __name__ == "__main__":
    main()
