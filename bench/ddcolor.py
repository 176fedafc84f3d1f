"""DDColor speed and memory, stage by stage, beside siggraph17, in one run.

    .venv/bin/python bench/ddcolor.py [--repeat 3] [--device cpu] [--megapixels 1.0] [--threads 2]

ddcolor-tiny (ConvNeXt-T) and ddcolor (ConvNeXt-L) at 256 and 512 input, and siggraph17 (256), each on
the same grayscale photo: preprocess (photo -> network input), network, upsample + join (ab to the
photo's size, NEAREST for DDColor as its authors do, bilinear for siggraph17 as its framing does,
joined to the photo's own lightness by models.color.lab_to_rgb_uint8). Best of --repeat runs, the
models alternating so background load hits them alike. Peak memory is the most the process held
during one colourisation beyond what it held before (resident set on the CPU, allocator on CUDA);
weights are the network's tensors. Stand-in weights (official keys and shapes, seeded values):
timing does not depend on the values. The budget line is issue 13's: ddcolor-tiny at 512 input on
a 1 MP photo end to end within 2.5 s on 2 CPU cores. The last column is the CPU time of the run (all
threads): on a machine shared with other work, 1-thread CPU time is the steadier figure.
"""

from __future__ import annotations

import argparse
import ctypes
import re
import sys
import tempfile
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

from models import color, colorize  # noqa: E402
from models.colorize import ddcolor, zhang  # noqa: E402
from models.config import ModelConfig  # noqa: E402
from models.device import reduced_dtype  # noqa: E402
from standin import layout, make_standin  # noqa: E402
from tests.standins import write_standin  # noqa: E402

PHOTO = SHARED / "styles" / "the_resevoir_at_poitiers.jpg"
BUDGET_S = 2.5


class PeakMemory:
    """The most memory the process held during a run beyond what it held before, in MB: the caching
    allocator's peak on CUDA; on the CPU the peak resident set, after glibc has handed its free
    memory back to the system (malloc_trim), so that the run's allocations show as they happen."""

    def __init__(self, device: torch.device):
        self.device = device

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            Path("/proc/self/clear_refs").write_text("5")  # peak resident set := current
            self.base = self._status("VmRSS")

    def peak_mb(self) -> float:
        if self.device.type == "cuda":
            return (torch.cuda.max_memory_allocated(self.device) - self.base) / 2**20
        return (self._status("VmHWM") - self.base) / 2**20

    @staticmethod
    def _status(field: str) -> int:
        kb = re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)
        return int(kb) * 1024


def photo(megapixels: float) -> Image.Image:
    """A grayscale photo with real texture, 4:3, of about `megapixels`."""
    w = round((megapixels * 1e6 * 4 / 3) ** 0.5)
    return Image.open(PHOTO).convert("L").resize((w, round(w * 3 / 4)), Image.BICUBIC)


def join(img: Image.Image, ab: torch.Tensor, mode: str) -> Image.Image:
    """The shared framing's join: ab upsampled to the photo's size onto its own lightness, 8-bit RGB."""
    lightness = color.lightness_from_gray_uint8(torch.from_numpy(np.array(img)).to(ab.device)).unsqueeze(0)
    ab_full = F.interpolate(ab, size=(img.height, img.width), mode=mode)[0]
    planes = color.lab_to_rgb_uint8(lightness, ab_full).cpu().numpy()
    return Image.merge("RGB", [Image.fromarray(p) for p in planes])


def ddcolor_standin(size: str, device: torch.device, dtype: torch.dtype | None) -> ddcolor.DDColor:
    checkpoint = {k: torch.from_numpy(v) for k, v in make_standin(layout("ddcolor.json", size), seed=0).items()}
    return ddcolor.load_network(size, checkpoint, f"{size} stand-in", device, dtype)


class DDColorRun:
    """DDColorColorizer.predict_ab, stage by stage, then the join."""

    def __init__(self, net: ddcolor.DDColor, input_size: int, device: torch.device, dtype: torch.dtype | None):
        self.net, self.input_size, self.device, self.dtype = net, input_size, device, dtype

    @torch.inference_mode()
    def __call__(self, img: Image.Image, times: dict) -> Image.Image:
        x = _timed(times, "preprocess", self.device, lambda: ddcolor.network_input(
            img, self.input_size, self.device).to(self.dtype or torch.float32).contiguous(
            memory_format=torch.channels_last))
        ab = _timed(times, "network", self.device, lambda: self.net(x).float())
        return _timed(times, "upsample+join", self.device, lambda: join(img, ab, ddcolor.AB_UPSAMPLING))


class Siggraph17Run:
    def __init__(self, weights: Path, device: torch.device, dtype: torch.dtype | None):
        config = ModelConfig(device=str(device), reduced_precision=dtype is not None)
        self.c = colorize.load("siggraph17", weights=weights, device=device, config=config)
        self.net, self.device = self.c.net, device

    @torch.inference_mode()
    def __call__(self, img: Image.Image, times: dict) -> Image.Image:
        def preprocess():
            small = img.resize((zhang.NETWORK_SIZE, zhang.NETWORK_SIZE), Image.BICUBIC)
            x = ((self.c.lightness(small) - 50) / 100).unsqueeze(0)
            return x.to(self.c.dtype).contiguous(memory_format=torch.channels_last)

        x = _timed(times, "preprocess", self.device, preprocess)
        ab = _timed(times, "network", self.device, lambda: self.net(x).float())
        return _timed(times, "upsample+join", self.device, lambda: join(img, ab, "bilinear"))


def _timed(times: dict, stage: str, device: torch.device, fn):
    t = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    times[stage] = time.perf_counter() - t
    return out


def weights_mb(net: torch.nn.Module) -> float:
    tensors = list(net.parameters()) + list(net.buffers())
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--megapixels", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=2, help="CPU threads (the budget is for 2)")
    p.add_argument("--reduced-precision", action="store_true", help="fp16 on CUDA, bf16 on CPUs with native bf16")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = reduced_dtype(device) if args.reduced_precision else None
    img = photo(args.megapixels)

    with tempfile.TemporaryDirectory() as tmp:
        siggraph_weights = write_standin("siggraph17", Path(tmp) / "siggraph17.pth")
        runs = {"siggraph17 (256)": Siggraph17Run(siggraph_weights, device, dtype)}
    for size, name in (("tiny", "ddcolor-tiny"), ("large", "ddcolor")):
        net = ddcolor_standin(size, device, dtype)
        for input_size in (256, 512):
            runs[f"{name} ({input_size})"] = DDColorRun(net, input_size, device, dtype)

    best: dict = {}
    for _ in range(args.repeat):
        for label, run in runs.items():
            times: dict = {}
            cpu = time.process_time()
            run(img, times)
            times["total"] = sum(times.values())
            times["cpu"] = time.process_time() - cpu
            if label not in best or times["total"] < best[label]["total"]:
                best[label] = times
    memory, peaks = PeakMemory(device), {}
    for label, run in runs.items():  # after the timed runs: trimming costs page faults
        memory.reset()
        run(img, {})
        peaks[label] = memory.peak_mb()

    print(f"photo {img.width}x{img.height} ({img.width * img.height / 1e6:.2f} MP, grayscale), device {device}, "
          f"CPU threads {torch.get_num_threads()}, precision {dtype or torch.float32}, best of {args.repeat}\n")
    stages = ["preprocess", "network", "upsample+join", "total", "cpu"]
    print(f"{'model (input)':<20}" + "".join(f"{s:>15}" for s in stages) + f"{'peak MB':>10}{'weights MB':>12}")
    for label, times in best.items():
        print(f"{label:<20}" + "".join(f"{times[s] * 1000:>12.0f} ms" for s in stages)
              + f"{peaks[label]:>10.0f}{weights_mb(runs[label].net):>12.0f}")
    tiny = best["ddcolor-tiny (512)"]["total"]
    print(f"\nddcolor-tiny at 512 input, end to end: {tiny:.2f} s (budget {BUDGET_S} s on 2 CPU cores: "
          f"{'within' if tiny <= BUDGET_S else 'OVER'})")


if __name__ == "__main__":
    main()
