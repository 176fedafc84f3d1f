"""ChromaGAN speed and memory: the network at its 224x224 input, with and without the class head, and end to
end on a 1 MP photo, stage by stage, in float32 and in the worker's reduced precision.

    .venv/bin/python bench/chromagan.py [--repeat 3] [--megapixels 1.0] [--threads 2]

The weights are the shared stand-in (CHROMAGAN.md, seed 2401) written as the authors' .h5 into a temporary
folder and loaded through the engine's own path (h5py, strict), so the load time is the real file's; timing
does not depend on the values. End to end is what the worker runs: the photo squashed to 224 on uint8 and its
8-bit L (preprocess), the network without its class head, then the authors' uint8 ab resized to the photo's
size and joined to its own lightness (upsample+join). Best of --repeat runs; peak memory is the most the
process held during one run beyond what it held before (bench/ddcolor.py's PeakMemory). The budget is issue
26's: 1 MP end to end within 1.5 s on 2 CPU cores. Say which CPU, and how loaded it was, beside any figure.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(SHARED / "weights" / "golden"))

import chromagan_standin_h5  # noqa: E402

from bench.ddcolor import PeakMemory, photo, weights_mb  # noqa: E402
from bench.machine import cpu_name  # noqa: E402
from models import engines, weights  # noqa: E402
from models.colorize import chromagan as cg  # noqa: E402
from models.config import ModelConfig  # noqa: E402

BUDGET_S = 1.5


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def peak(fn) -> float:
    memory = PeakMemory(torch.device("cpu"))
    memory.reset()
    fn()
    return memory.peak_mb()


@torch.inference_mode()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--megapixels", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=2, help="CPU threads (the budget is for 2)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    img = photo(args.megapixels)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / cg.WEIGHTS.filename
        t = time.perf_counter()
        chromagan_standin_h5.write(path)
        print(f"stand-in .h5 written in {time.perf_counter() - t:.1f} s ({path.stat().st_size / 1e6:.0f} MB)")
        t = time.perf_counter()
        full = weights.load(cg.WEIGHTS, ModelConfig(), path=path).eval()
        load_s = time.perf_counter() - t
        runs = {}
        for reduced in (False, True):
            config = ModelConfig(device="cpu", cache_dir=Path(tmp), reduced_precision=reduced,
                                 weight_overrides={cg.WEIGHTS.filename: path})
            engine = engines.load("chromagan", "colorize", config=config)
            runs[str(engine.dtype).replace("torch.", "")] = engine

    print(f"CPU: {cpu_name()}, {torch.get_num_threads()} threads; photo {img.width}x{img.height} "
          f"({img.width * img.height / 1e6:.2f} MP, grayscale); best of {args.repeat}")
    print(f"load (h5py read + strict checks + copy, whole generator, float32): {load_s:.1f} s\n")

    x = cg.network_input(img)
    best(lambda: full(x, classes=True), 1)  # warm-up
    with_head = best(lambda: full(x, classes=True), args.repeat)
    without = best(lambda: full(x), args.repeat)
    head_mb = weights_mb(full.class_dense)
    print("network at 224x224, float32:")
    print(f"  with the class head    {with_head * 1000:6.0f} ms, peak {peak(lambda: full(x, classes=True)):5.0f} MB, "
          f"weights {weights_mb(full):5.0f} MB")
    print(f"  without (the engine)   {without * 1000:6.0f} ms, peak {peak(lambda: full(x)):5.0f} MB, "
          f"weights {weights_mb(full) - head_mb:5.0f} MB")
    # alone, many times: the difference of two whole-network timings drowns in a shared machine's noise
    global_map = full.global_convs(full.trunk(x))
    head = best(lambda: torch.softmax(full.class_logits(global_map), dim=1), 10 * args.repeat)
    head_peak = peak(lambda: torch.softmax(full.class_logits(global_map), dim=1))
    print(f"  the class head alone   {head * 1000:6.0f} ms, peak {head_peak:5.0f} MB, weights {head_mb:5.0f} MB "
          f"({sum(p.numel() for p in full.class_dense.parameters()) / 1e6:.1f} M parameters)\n")
    del full

    print(f"{'precision':<10}{'preprocess':>14}{'network':>12}{'upsample+join':>16}{'total':>10}{'peak MB':>10}"
          f"{'weights MB':>12}")
    totals = {}
    for dtype, engine in runs.items():
        stages = {}

        def run(engine=engine, stages=stages):
            t0 = time.perf_counter()
            small = cg.network_input(img).to(engine.dtype).contiguous(memory_format=torch.channels_last)
            t1 = time.perf_counter()
            ab = cg.ab_uint8(engine.net(small)).float() - 128
            t2 = time.perf_counter()
            engine.join(img, ab)
            t3 = time.perf_counter()
            return {"preprocess": t1 - t0, "network": t2 - t1, "upsample+join": t3 - t2, "total": t3 - t0}

        run()  # warm-up
        for _ in range(args.repeat):
            times = run()
            if not stages or times["total"] < stages["total"]:
                stages.update(times)
        totals[dtype] = stages["total"]
        print(f"{dtype:<10}" + "".join(f"{stages[s] * 1000:>{w - 3}.0f} ms" for s, w in
                                       (("preprocess", 14), ("network", 12), ("upsample+join", 16), ("total", 10)))
              + f"{peak(lambda engine=engine: engine(img)):>10.0f}{weights_mb(engine.net):>12.0f}")
    for dtype, total in totals.items():
        print(f"\nchromagan end to end at {img.width * img.height / 1e6:.2f} MP, {dtype}: {total:.2f} s (budget "
              f"{BUDGET_S} s on 2 CPU cores: {'within' if total <= BUDGET_S else 'OVER'})", end="")
    print()


if __name__ == "__main__":
    main()
