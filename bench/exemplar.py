"""Exemplar colourisation, measured: the same-scene protocol on public photos, then speed and memory.

    .venv/bin/python bench/exemplar.py [--photos astronaut,coffee] [--no-speed]

Same scene: each photo's left 60 % is the target (made gray: an 8-bit gray image with the photo's own
CIE lightness) and its right 60 % the colour reference; the two overlap by 20 % of the width. Every
method's ab is joined with the gray target's lightness, then compared with the photo's left 60 %:
- `exemplar`: models.colorize.exemplar;
- `gray`: ab = 0;
- `global`: a global colour transfer, the reference's mean and standard deviation of ab given to the
  target; a gray target has no ab spread to scale, so this is the reference's mean ab everywhere.
Figures: PSNR (RGB, 8 bits, MAX 255); SSIM (skimage.metrics.structural_similarity over RGB,
channel_axis=2, data_range=255, its defaults: 7x7 uniform window, K1 0.01, K2 0.03, no Gaussian
weighting); colourfulness (Hasler & Susstrunk 2003) beside the original's; seconds of predict_ab
(its second call on that pair, 2 threads).

Photos: scikit-image's bundled colour photos (no download). astronaut and coffee are the tuning set,
looked at while choosing the method's settings (with five of the preset paintings in shared/styles,
which are not photos, so no test set); the others are reported apart, untuned.
Each untuned photo also gets its PSNR split between the target's right third, which the reference
holds (an exact copy), and the rest, which it does not; and the ceiling that follows: the PSNR over
gray if the overlapping third came out perfect and the rest as it does now.
Speed: a 512x512 gray target and a 512x512 reference, the most cells at that size (2 threads).
Memory: the peak resident size of a fresh process colouring a 2048x2048 target with a 2048x2048
reference and joining the result (Python, torch and the VGG19 included).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data
from skimage.metrics import structural_similarity

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models import color  # noqa: E402
from models.colorize import exemplar  # noqa: E402

TUNING = ("astronaut", "coffee")
UNTUNED = ("chelsea", "rocket", "motorcycle_left", "hubble_deep_field", "immunohistochemistry", "retina")
LOADERS = {"motorcycle_left": lambda: data.stereo_motorcycle()[0]}
TARGETS = "PSNR >= gray + 9 dB, SSIM > gray, |colourfulness - original| <= 10"


def photo(name: str) -> np.ndarray:
    return LOADERS[name]() if name in LOADERS else getattr(data, name)()


def same_scene(rgb: np.ndarray) -> tuple[np.ndarray, Image.Image, Image.Image]:
    """(the target's true colours, the gray target, the colour reference)."""
    w = rgb.shape[1]
    truth, ref = rgb[:, : round(0.6 * w)], rgb[:, w - round(0.6 * w):]
    return truth, gray_of(truth), Image.fromarray(np.ascontiguousarray(ref))


def gray_of(rgb: np.ndarray) -> Image.Image:
    """The 8-bit gray image with the photo's own lightness (sRGB-encoded luminance)."""
    lum = color.lightness(torch.from_numpy(rgb).permute(2, 0, 1))
    gray = color.lab_to_rgb_uint8(lum, torch.zeros((2, *lum.shape[1:])))[0]
    return Image.fromarray(gray.numpy())


def join(gray: Image.Image, ab: torch.Tensor) -> np.ndarray:
    lum = color.lightness_from_gray_uint8(torch.from_numpy(np.array(gray)))[None]
    ab = torch.nn.functional.interpolate(ab, size=lum.shape[1:], mode="bilinear", align_corners=False)[0]
    return color.lab_to_rgb_uint8(lum, ab).permute(1, 2, 0).numpy()


def global_transfer(gray: Image.Image, ref: Image.Image) -> torch.Tensor:
    ref_ab = color.rgb_to_lab(torch.from_numpy(np.array(ref)).permute(2, 0, 1))[1:]
    return ref_ab.mean(dim=(1, 2)).view(1, 2, 1, 1).expand(1, 2, gray.height, gray.width)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean()
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    return float(structural_similarity(a, b, channel_axis=2, data_range=255))


def colourfulness(rgb: np.ndarray) -> float:
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def evaluate(c: exemplar.ExemplarColorizer, name: str) -> dict:
    truth, gray, ref = same_scene(photo(name))
    c.predict_ab(gray, ref)  # warm-up: oneDNN prepares its kernels once per image size
    t = time.perf_counter()
    ab = c.predict_ab(gray, ref)
    seconds = time.perf_counter() - t
    zero = torch.zeros((1, 2, 1, 1))
    rows = {"exemplar": join(gray, ab), "gray": join(gray, zero), "global": join(gray, global_transfer(gray, ref))}
    out = {"original_colourfulness": colourfulness(truth), "seconds": seconds, "size": gray.size}
    for method, rgb in rows.items():
        out[method] = {"psnr": psnr(rgb, truth), "ssim": ssim(rgb, truth), "colourfulness": colourfulness(rgb)}
    overlap = slice(photo(name).shape[1] - truth.shape[1], truth.shape[1])  # target columns the reference holds
    rest = slice(0, overlap.start)
    for method in ("exemplar", "gray"):
        out[method]["overlap"] = psnr(rows[method][:, overlap], truth[:, overlap])
        out[method]["rest"] = psnr(rows[method][:, rest], truth[:, rest])
    perfect_overlap = rows["exemplar"].copy()
    perfect_overlap[:, overlap] = truth[:, overlap]
    out["ceiling"] = psnr(perfect_overlap, truth) - out["gray"]["psnr"]
    return out


def report(c: exemplar.ExemplarColorizer, names: tuple[str, ...], title: str, split: bool = False) -> None:
    print(f"\n{title}")
    print(f"{'photo':21s} {'size':>8s} {'method':8s} {'PSNR':>6s} {'SSIM':>6s} {'colourf.':>8s} {'orig.':>6s} "
          f"{'s':>5s}  targets")
    for name in names:
        r = evaluate(c, name)
        e, g = r["exemplar"], r["gray"]
        held = [e["psnr"] >= g["psnr"] + 9, e["ssim"] > g["ssim"],
                abs(e["colourfulness"] - r["original_colourfulness"]) <= 10]
        first = (f"{name:21s} {'%dx%d' % r['size']:>8s}", f"{r['original_colourfulness']:6.1f} {r['seconds']:5.2f}  "
                 + " ".join("yes" if h else "NO" for h in held))
        for i, method in enumerate(("exemplar", "global", "gray")):
            m = r[method]
            print(f"{first[0] if i == 0 else ' ' * 30} {method:8s} {m['psnr']:6.2f} {m['ssim']:6.3f} "
                  f"{m['colourfulness']:8.1f} {first[1] if i == 0 else ''}")
        if split:
            print(f"{' ' * 31}overlapping third {e['overlap']:.1f} dB (gray {g['overlap']:.1f}), the rest "
                  f"{e['rest']:.1f} dB (gray {g['rest']:.1f}); with the third perfect: {r['ceiling']:+.1f} dB over gray")


def square_pair(side: int) -> tuple[Image.Image, Image.Image]:
    """The largest case at a size: a side x side gray target (astronaut) and colour reference (another photo)."""
    def square(name: str) -> np.ndarray:
        return np.array(Image.fromarray(photo(name)).resize((side, side), Image.BICUBIC))

    return gray_of(square("astronaut")), Image.fromarray(square("immunohistochemistry"))


def speed(c: exemplar.ExemplarColorizer, side: int, repeat: int) -> tuple[float, float]:
    """Best wall-clock seconds of `repeat` calls, and the CPU seconds of that call (all threads):
    wall time swings with other processes on the machine, CPU time much less."""
    gray, ref = square_pair(side)
    c.predict_ab(gray, ref)  # warm-up
    runs = []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        c.predict_ab(gray, ref)
        runs.append((time.perf_counter() - wall, time.process_time() - cpu))
    return min(runs)


def peak_memory_child(side: int) -> None:
    """Print this process's peak resident size (MB) after colouring and joining a side x side pair."""
    torch.set_num_threads(2)
    gray, ref = square_pair(side)
    join(gray, exemplar.load("cpu").predict_ab(gray, ref))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--photos", help="comma-separated names instead of both sets")
    p.add_argument("--no-speed", action="store_true")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.memory_child:
        return peak_memory_child(args.memory_child)
    torch.set_num_threads(2)
    c = exemplar.load("cpu")
    print(f"targets: {TARGETS}  (the last column: yes/NO for each, in that order)")
    if args.photos:
        report(c, tuple(args.photos.split(",")), "chosen photos")
    else:
        report(c, TUNING, "tuning set (settings chosen on these)")
        report(c, UNTUNED, "untuned set", split=True)
    if not args.no_speed:
        wall, cpu = speed(c, 512, args.repeat)
        print(f"\nseconds at 512 px (512x512 target and reference, best of {args.repeat}): {wall:.2f}  (goal <= 2); "
              f"CPU seconds of that call: {cpu:.2f} on {torch.get_num_threads()} threads")
        out = subprocess.run([sys.executable, __file__, "--memory-child", "2048"], capture_output=True, text=True,
                             check=True)
        print(f"peak resident memory of a fresh process colouring and joining a 2048x2048 target with a "
              f"2048x2048 reference: {float(out.stdout):.0f} MB  (goal <= 1536)")


if __name__ == "__main__":
    main()
