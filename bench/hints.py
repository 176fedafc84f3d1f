"""Colour hints (SIGGRAPH17, issue 27), the model part: how long a live preview and the full result take.

    .venv/bin/python bench/hints.py [--runs 30] [--megapixels 1.0 12.0] [--threads 1] [--float32]

A person taps, picks a colour, and waits for the preview: each preview run here adds one hint to the
ones before (a fresh position and colour, like a person going on tapping), through the engine's own
`preview(img, hints)`: the photo to the 256x256 network grid and its lightness, the hints snapped and
drawn, one network run, the join with the photo made small. The full result is `colorize_hints` at full
size with all the hints; `suggest` is the colours offered at a tap. Goals (issue 27): preview p95 <= 1.0 s
end to end including the queue (model part ~0.1-0.2 s in bf16 on the 2-core CPU), full result at 1 MP
<= 2 s. Stand-in weights (official keys and shapes; timing does not depend on the values). Threads: the
worker's default (PAINTBOT_TORCH_THREADS=1) unless --threads says otherwise. Each row gives wall-clock
p50/p95 and the median CPU time of the process (all threads): on a machine shared with other work the
wall clock swings with the load, the CPU time much less.

The end-to-end part (tap -> web server -> queue -> worker -> preview back) belongs beside this one: it
can reuse `percentiles`, `report`, `tapping` and `load_engine`, and print its rows after `model_part`'s.
Say which CPU, and how loaded it was, beside any figure: both are printed.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import cpu_name  # noqa: E402
from bench.ddcolor import photo  # noqa: E402
from models import engines  # noqa: E402
from models.colorize.hints import Hint  # noqa: E402
from models.config import ModelConfig  # noqa: E402
from tests.standins import write_standin  # noqa: E402

PREVIEW_P95_GOAL_S = 1.0  # end to end, queue included; the model part should be a small share of it
FULL_1MP_GOAL_S = 2.0


def percentiles(xs: list[float]) -> tuple[float, float]:
    """(median, 95th percentile) as bench/latency.py takes them."""
    xs = sorted(xs)
    return statistics.median(xs), xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]


def report(label: str, times: list[tuple[float, float]], goal: float | None = None) -> None:
    """One row: wall-clock p50 and p95, median CPU time, of (wall, cpu) pairs; against a goal for the p95."""
    p50, p95 = percentiles([wall for wall, _ in times])
    cpu = statistics.median(c for _, c in times)
    verdict = "" if goal is None else f"  (goal p95 <= {goal:g} s: {'within' if p95 <= goal else 'OVER'})"
    print(f"  {label:<44} p50 {p50 * 1000:6.0f} ms  p95 {p95 * 1000:6.0f} ms  CPU {cpu * 1000:6.0f} ms  "
          f"(n={len(times)}){verdict}")


def tapping(img: Image.Image, n: int, seed: int = 27) -> list[Hint]:
    """`n` taps a person might make: anywhere on the photo, any colour."""
    rng = random.Random(seed)
    return [Hint(rng.randrange(img.width), rng.randrange(img.height), tuple(rng.randrange(256) for _ in range(3)))
            for _ in range(n)]


def timed(fn: Callable[[], object], n: int) -> list[tuple[float, float]]:
    """(wall-clock, process CPU) seconds of `n` calls."""
    times = []
    for _ in range(n):
        t, c = time.perf_counter(), time.process_time()
        fn()
        times.append((time.perf_counter() - t, time.process_time() - c))
    return times


def load_engine(weights: Path, reduced: bool):
    config = ModelConfig(device="cpu", reduced_precision=reduced, weight_overrides={weights.name: weights})
    return engines.load("siggraph17", "colorize", config=config)


@torch.inference_mode()
def model_part(engine, img: Image.Image, runs: int) -> None:
    hints = tapping(img, runs)
    engine.preview(img, hints[:1])  # warm-up
    previews = []
    for i in range(1, runs + 1):  # one more tap each time
        previews += timed(lambda i=i: engine.preview(img, hints[:i]), 1)
    report(f"preview (256 px), 1..{runs} hints", previews, PREVIEW_P95_GOAL_S)
    x = engine.network_input(engine.grid_lightness(img))
    report("  of which the network alone (no hints)", timed(lambda: engine.net(x), max(5, runs // 3)))
    tap = hints[-1]
    report("suggest (colours at a tap, 8 hints placed)", timed(lambda: engine.suggest(img, tap.x, tap.y,
                                                                                      hints=hints[:8]), 5))
    full = timed(lambda: engine.colorize_hints(img, hints[:8]), 5)
    mp = img.width * img.height / 1e6
    report(f"full result {img.width}x{img.height}, 8 hints", full, FULL_1MP_GOAL_S if mp <= 1.05 else None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=30, help="previews per photo (20 or more for a p95)")
    p.add_argument("--megapixels", type=float, nargs="+", default=[1.0, 12.0])
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: the worker's default, 1)")
    p.add_argument("--float32", action="store_true", help="also time the network in float32")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        weights = write_standin("siggraph17", Path(tmp) / engines.get("siggraph17").files[0].filename)
        loaded = [load_engine(weights, True)] + ([load_engine(weights, False)] if args.float32 else [])
    load1, load5, _ = os.getloadavg()
    print(f"CPU: {cpu_name()}, {torch.get_num_threads()} threads; load average {load1:.2f} (1 min), "
          f"{load5:.2f} (5 min) before the runs")
    for engine in loaded:
        for mp in args.megapixels:
            img = photo(mp)
            print(f"\nsiggraph17, network in {str(engine.dtype).replace('torch.', '')}; photo {img.width}x"
                  f"{img.height} ({mp:g} MP, grayscale)")
            model_part(engine, img, args.runs)
    print(f"\nload average after: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
