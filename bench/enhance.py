"""Faces and upscale speed, stage by stage (issue 24's goals: faces <= 1.5 s a face at 512 px, upscale 2x of a
0.5 MP photo <= 6 s with the compact model, on a 2-core CPU).

    .venv/bin/python bench/enhance.py [--megapixels 1.0] [--upscale-megapixels 0.5] [--precision both]

Stand-in weights (each network's exact architecture from spandrel / facexlib, seeded random values, in the
published files' formats) are written to a temporary folder: timing does not depend on the values, and
nothing here needs the real files. Stages: detection (RetinaFace-ResNet50 on the whole photo), alignment
(per face), GFPGAN (per face), paste-back (per face), and the upscale network (tiled) with its Lanczos to 2x.
Wall time and the process's CPU time are both printed: on a shared machine wall time overstates, and CPU
time / threads is what an idle machine would take at best. Faces are placed at known landmarks (the random detector's finds are not faces). Reduced precision (bf16 on
a CPU with AVX512-BF16) is timed beside float32, with its PSNR against float32 (on stand-ins). Prints the CPU.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import cpu_name  # noqa: E402
from models import engines  # noqa: E402
from models.config import ModelConfig  # noqa: E402
from models.restore import faces as faces_mod  # noqa: E402
from tests.enhance_standins import (gfpgan_state_dict, retinaface_state_dict, write_compact,  # noqa: E402
                                    write_gfpgan, write_retinaface)

PHOTO = ROOT.parent / "shared" / "styles" / "the_resevoir_at_poitiers.jpg"


def photo(megapixels: float) -> Image.Image:
    src = Image.open(PHOTO).convert("L")
    w = round((megapixels * 1e6 * 4 / 3) ** 0.5)
    return src.resize((w, round(w * 3 / 4)), Image.BICUBIC)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean()
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


CPU_SECONDS = {}  # the last timed call's process CPU time: the machine is shared, so wall time overstates


def timed(fn, *args, **kw):
    t, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kw)
    CPU_SECONDS["last"] = time.process_time() - c
    return out, time.perf_counter() - t


def cpu() -> str:
    return f"(CPU {CPU_SECONDS['last']:.2f} s)"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--megapixels", type=float, default=1.0, help="the photo the faces are restored in")
    p.add_argument("--upscale-megapixels", type=float, default=0.5, help="the photo upscaled 2x")
    p.add_argument("--faces", type=int, default=2)
    p.add_argument("--precision", choices=["float32", "reduced", "both"], default="both")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--scale", type=int, default=2, help="upscale factor (4 with --upscale-megapixels 0.79: a "
                   "1024x768 photo to the 4096 px limit, for peak memory)")
    p.add_argument("--only", choices=["faces", "upscale"], help="one engine (peak memory of that one alone)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_name()}, {args.threads} threads (torch {torch.__version__}); machine shared with other "
          f"jobs, so figures are upper bounds")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "weights"
        if args.only != "upscale":
            write_gfpgan(folder / "GFPGANv1.4.pth", gfpgan_state_dict(seed=1))
            write_retinaface(folder / "detection_Resnet50_Final.pth", retinaface_state_dict(seed=2))
        write_compact(folder / "realesr-general-x4v3.pth", seed=3)
        write_compact(folder / "realesr-general-wdn-x4v3.pth", seed=4)
        img = photo(args.megapixels)
        rgb = faces_mod.as_rgb(img)
        w, h = img.size  # faces ~ 180 px wide across the photo's middle
        spots = [(faces_mod.FFHQ_TEMPLATE - 256) * 0.35 + [w * (i + 1) / (args.faces + 1), h / 2]
                 for i in range(args.faces)]
        precisions = {"float32": [False], "reduced": [True], "both": [False, True]}[args.precision]
        results = {}
        for reduced in precisions:
            config = ModelConfig(device="cpu", cache_dir=Path(tmp) / "cache", weights_dir=folder,
                                 reduced_precision=reduced)
            tag = "float32" if not reduced else "reduced"
            print(f"\n[{tag} precision]")
            if args.only != "upscale":
                faces_stage(args, config, img, rgb, spots, results, tag)
            if args.only != "faces":
                upscale_stage(args, config, results, tag)
        if len(precisions) == 2:
            for stage, by in results.items():
                a, b = by.values()
                print(f"  {stage}: reduced vs float32 PSNR {psnr(a, b):.1f} dB (stand-in weights)")
    print(f"\npeak memory (max RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return 0


def faces_stage(args, config, img, rgb, spots, results, tag):
    w, h = img.size
    fe, t_load = timed(engines.load, "faces", "restore", None, config)
    print(f"  faces engine ({fe.dtype}) loaded in {t_load:.1f} s")
    _, t_det = timed(fe.landmarks, img)
    print(f"  detection (RetinaFace-R50, {w}x{h} at {fe.settings.detect_side} px): {t_det:6.2f} s {cpu()}")
    out = rgb.astype(np.float32)
    for i, points in enumerate(spots):
        matrix = faces_mod.align_matrix(points)
        crop, t_align = timed(faces_mod.crop, rgb, matrix)
        restored, t_net = timed(fe.restore, crop)
        c_net = cpu()
        out, t_paste = timed(faces_mod.paste, out, restored, matrix, 0.7)
        results.setdefault(f"face{i}", {})[tag] = restored
        print(f"  face {i}: align {t_align:5.3f} s, GFPGAN {t_net:6.2f} s {c_net}, paste {t_paste:5.3f} s")


def upscale_stage(args, config, results, tag):
    ue, t_load = timed(engines.load, "upscale", "restore", None, config)
    small = photo(args.upscale_megapixels)
    up, t_up = timed(ue, small, scale=args.scale)
    results.setdefault("upscale", {})[tag] = np.asarray(up)
    print(f"  upscale {args.scale}x ({ue.dtype}, compact, {small.size[0]}x{small.size[1]} -> "
          f"{up.size[0]}x{up.size[1]}): {t_up:6.2f} s {cpu()} (load {t_load:.1f} s)")


if __name__ == "__main__":
    raise SystemExit(main())
