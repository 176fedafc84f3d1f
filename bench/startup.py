"""How long a CPU worker takes to be ready to serve: a first start (OpenVINO traces its networks) and a restart
(the traces read back from the cache directory).

    .venv/bin/python bench/startup.py [--runs 2] [--threads 2]

Each run is a fresh Python process that does what `paintbot-worker` does before its first job: import torch,
OpenVINO, the models and the worker, then load every family's default engine for the CPU (ddcolor-tiny,
adaattn, repair) with the service's settings (PAINTBOT_RUNTIME as set, else `auto`). Runs share one cache
directory, so the first traces and the later ones read. Weights are seeded stand-ins with the published keys
and shapes. Issue 28's goal: ready within 60 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent / "shared" / "weights"))

from bench.machine import cpu_summary  # noqa: E402

CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
from worker.main import wait_policy
wait_policy(os.environ)
import torch
from models import engines
from models.device import keep_freed_memory, pick_device, set_threads
from worker.runtime import Engines
config = engines.config_from_env(os.environ).replace(weight_overrides=json.loads(sys.argv[1]), serving=True)
set_threads(config.torch_threads)
keep_freed_memory(config.keep_memory)
t1 = time.perf_counter()
loaded = Engines(pick_device("cpu"), config).load_defaults()
t2 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "engines": t2 - t1, "summary": loaded.summary()}))
"""


def standins(folder: Path) -> dict[str, str]:
    """Stand-in files for the CPU defaults, by the weight file each replaces."""
    import torch

    from models.colorize import ddcolor
    from models.restore import repair
    from models.style import adaattn
    from standin import layout, make_standin
    from tests import style_golden
    from tests.standins import write_lama_standin, write_scratch_standin

    files = {}
    tiny = ddcolor.DDColorTinyEngine.files[0].filename
    torch.save({k: torch.from_numpy(v) for k, v in make_standin(layout("ddcolor.json", "tiny"), 2301).items()},
               folder / tiny)
    files[tiny] = folder / tiny
    for key, wf in adaattn.FILES.items():
        name = "adain_vgg_normalised" if key == "adaattn_vgg_normalised" else key
        files[wf.filename] = style_golden.write_standin(name, folder / f"{name}.pth")
    files[repair.DETECTOR_FILE.filename] = write_scratch_standin(folder / repair.DETECTOR_FILE.filename)
    files[repair.LAMA_FILE.filename] = write_lama_standin(folder / repair.LAMA_FILE.filename)
    return {k: str(v) for k, v in files.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    print(f"CPU: {cpu_summary()}; {args.threads} threads; load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        files = standins(Path(tmp))
        env = {**os.environ, "PAINTBOT_DEVICE": "cpu", "PAINTBOT_TORCH_THREADS": str(args.threads),
               "PAINTBOT_CACHE_DIR": str(Path(tmp) / "cache"), "PYTHONPATH": str(ROOT)}
        for run in range(args.runs):
            t = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(files)], env=env, cwd=ROOT,
                                  capture_output=True, text=True, check=True)
            wall = time.perf_counter() - t
            got = json.loads(done.stdout.strip().splitlines()[-1])
            kind = "first start" if run == 0 else "restart"
            print(f"{kind:12s} ready in {wall:5.1f} s (imports {got['imports']:.1f} s, engines {got['engines']:.1f} s): "
                  f"{got['summary']}")


if __name__ == "__main__":
    main()
