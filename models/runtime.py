"""Where a network runs on a CPU: torch, or OpenVINO's CPU plugin (issue 28).

Why two: OpenVINO runs some of paintbot's networks faster than torch eager on the same cores, in bf16 on
CPUs with native bf16 (AMX, AVX512-BF16) and in float32 on CPUs with AVX2 only, because it fuses what
torch runs as separate passes over memory (convolution + ReLU + batch norm; AdaAttN's matrix product,
softmax and product in one attention kernel). bench/peers.py measures each network against OpenVINO and `torch.compile` in one
interleaved run; an engine routes a network through `convert` only where that benchmark shows OpenVINO
ahead (ECCV16, SIGGRAPH17, AdaAttN's content pass). Where torch is ahead (DDColor) or nothing was
measured, the engine keeps torch. `torch.compile` alone was measured too and left out: slower than OpenVINO
on each of these networks on a quiet host, with 7-46 s of compilation at a first start; it joins the race
below only for the two small networks it beat OpenVINO on under load.

What OpenVINO runs is still paintbot's own network: the module is built and strictly loaded from the
verified, pinned weight files (models/weights.py) exactly as for torch, then traced from its float32
weights (`ov.convert_model`); OpenVINO computes it in the precision asked (`INFERENCE_PRECISION_HINT`:
bf16 where the engine would have used bf16, else f32). The trace is kept under the cache directory
(`openvino/<key>.xml` and `.bin`), keyed by a digest of the weights, paintbot's model code, the inputs'
shapes and both libraries' versions, so a restarted worker reads it instead of tracing again; a change of
any of them traces anew.

Which runtime is fastest is not fixed even on one CPU: it moves with the load. SIGGRAPH17 as the engine calls
it, on the 2-core Zen 5 of issue 28 (bf16, own processes, 16 rounds): `torch.compile` 1.07x OpenVINO's time
quiet, 0.87x beside 4 busy processes; on an AMX Xeon OpenVINO was ahead both ways. So where an engine asks
(`Engine.runnable(..., race=True)`: ECCV16 and SIGGRAPH17, small networks of one input shape), the runtime is
`auto` and the process serves many calls (a worker, not the CLI), the network is also compiled by inductor,
in the background (its kernels kept for the next start in TORCHINDUCTOR_CACHE_DIR, which the worker sets), and
`Fastest` runs each call in whichever of the two has been faster lately, timing them as it goes. Both compute in the
engine's precision, within the bf16 bounds of float32 that tests/test_runtime.py checks (SIGGRAPH17's largest
ab error on a photo: 1.36 in OpenVINO, 1.21 compiled), so which one served a call moves a colour by about a
CIE unit at most.

Chosen by `ModelConfig.runtime` (PAINTBOT_RUNTIME): `auto` (the service's default: OpenVINO, raced against
compiled torch where the engine asks), `openvino` (OpenVINO alone on any CPU, in the engine's precision, when
the package imports), or `torch` (eager). On CUDA torch always runs. Whatever fails on the way (the import,
the trace, the compilation) logs one line and the network runs without it: a slower worker, never a dead one.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import statistics
import tempfile
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from models.config import ModelConfig

log = logging.getLogger("paintbot.models")

RUNTIMES = ("auto", "torch", "openvino")
MODELS = Path(__file__).resolve().parent  # paintbot's model code: part of every trace's key


def wanted(config: ModelConfig, device: torch.device) -> bool:
    """Whether a network of an engine on this device should be converted: on any CPU unless
    the runtime asked for is `torch`. bench/peers.py measured OpenVINO ahead of torch eager in bf16 on CPUs
    with native bf16 and in float32 on an AVX2-only CPU (ECCV16 1.12x, SIGGRAPH17 1.09x of it there), where
    `auto` once kept torch."""
    return device.type == "cpu" and config.runtime != "torch"


@lru_cache(maxsize=1)
def code_digest() -> str:
    """A digest of every module under models/: a trace follows the forward code, not only the weights."""
    digest = hashlib.sha256()
    for path in sorted(MODELS.rglob("*.py")):
        digest.update(path.relative_to(MODELS).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def trace_key(net: nn.Module, example: Sequence[torch.Tensor], shapes: Sequence[Sequence[int]], version: str) -> str:
    """What a saved trace depends on: the network's class and weights, the model code, the inputs (dtype and
    shape as traced, and the shapes it accepts) and the libraries' versions."""
    digest = hashlib.sha256()
    digest.update(f"{type(net).__module__}.{type(net).__qualname__}|{code_digest()}|{version}|{torch.__version__}".encode())
    digest.update(repr([(str(t.dtype), tuple(t.shape)) for t in example]).encode())
    digest.update(repr([list(s) for s in shapes]).encode())
    for name, tensor in net.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().float().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()[:32]


class Converted:
    """A network running in OpenVINO, called like the torch module it came from: torch tensors in (any
    dtype or memory layout), its one output out as a float32 torch tensor. One request per network; a worker
    runs one job at a time."""

    def __init__(self, compiled, name: str, precision: str):
        self.request = compiled.create_infer_request()
        self.inputs = len(compiled.inputs)
        self.name, self.precision = name, precision

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        if len(inputs) != self.inputs:
            raise TypeError(f"{self.name} takes {self.inputs} inputs, not {len(inputs)}")
        arrays = [t.detach().to("cpu", torch.float32).contiguous().numpy() for t in inputs]  # float32: no copy
        results = self.request.infer(arrays, share_inputs=True)
        return torch.from_numpy(results[0])

    def __repr__(self) -> str:
        return f"<{self.name} in OpenVINO ({self.precision})>"


def convert(net: nn.Module, example: Sequence[torch.Tensor], *, name: str, config: ModelConfig,
            dtype: torch.dtype, shapes: Sequence[Sequence[int]] | None = None,
            properties: dict[str, str] | None = None) -> Converted | None:
    """`net` (float32, eval mode, on the CPU) in OpenVINO, computing in bf16 where `dtype` is bf16 else in
    f32; None, after one log line, where it cannot be (the caller keeps torch).

    `example`: float32 inputs to trace with; `shapes`: each input's accepted shape, -1 where a dimension
    may vary (default: exactly the example's); `properties`: the CPU plugin's own, for this network. The trace
    is read from, or saved to, the cache directory."""
    precision = "bf16" if dtype == torch.bfloat16 else "f32"
    try:
        import openvino as ov
    except ImportError as exc:
        log.warning("%s runs in torch: OpenVINO is not installed (%s)", name, exc)
        return None
    shapes = [list(s) for s in shapes] if shapes is not None else [list(t.shape) for t in example]
    try:
        folder = Path(config.cache_dir) / "openvino"
        path = folder / f"{name}-{trace_key(net, example, shapes, ov.__version__)}.xml"
        core = ov.Core()
        if path.exists():
            model = core.read_model(path)
            log.info("%s: OpenVINO trace read from %s", name, path)
        else:
            with warnings.catch_warnings():  # the tracer's notes on Python control flow: checked by tests
                warnings.simplefilter("ignore")
                with torch.no_grad():
                    model = ov.convert_model(net, example_input=tuple(example),
                                             input=[ov.PartialShape(s) for s in shapes])
            try:
                save(ov, model, path)
                log.info("%s: traced for OpenVINO, saved to %s", name, path)
            except OSError as exc:  # a read-only model cache: the trace serves this process only
                log.warning("%s: traced for OpenVINO, not kept (%s: %s): traced again at the next start",
                            name, type(exc).__name__, exc.strerror or exc)
        threads = str(torch.get_num_threads())
        compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": precision,
                                                     "INFERENCE_NUM_THREADS": threads,
                                                     "PERFORMANCE_HINT": "LATENCY", **(properties or {})})
        return Converted(compiled, name, precision)
    except Exception as exc:  # noqa: BLE001 - any failure of a third-party compiler: torch runs instead
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        log.warning("%s runs in torch: OpenVINO could not take it (%s: %s)", name, type(exc).__name__, first)
        return None


def save(ov, model, path: Path) -> None:
    """The trace as IR (.xml and .bin), written beside its final name and renamed into place, weights first,
    so another worker never reads half a file; weights kept in float32."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        staged = Path(tmp) / path.name
        ov.save_model(model, staged, compress_to_fp16=False)
        os.replace(staged.with_suffix(".bin"), path.with_suffix(".bin"))
        os.replace(staged, path)


class Compiled:
    """A network under `torch.compile`, called like a Converted one: torch tensors in (any dtype or layout), its
    output out as float32. The inputs are always copied in inference mode, in the network's dtype, channels-last:
    inductor's code is specialised to what it first saw, and a tensor made outside inference mode (a bf16 input
    handed over as it is) made it build a second variant, 654 ms on first use and 107 against 89 ms after
    (SIGGRAPH17, the Xeon)."""

    def __init__(self, fn: Callable, name: str, dtype: torch.dtype):
        self.fn, self.name, self.dtype = fn, name, dtype

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            fed = [t.to(self.dtype, memory_format=torch.channels_last, copy=True) for t in inputs]
            return self.fn(*fed).float()

    def __repr__(self) -> str:
        return f"<{self.name} under torch.compile ({str(self.dtype).removeprefix('torch.')})>"


def compile_torch(net: nn.Module, example: Sequence[torch.Tensor], *, name: str,
                  dtype: torch.dtype) -> Compiled | None:
    """A copy of `net` (float32, eval mode, on the CPU) in `dtype`, channels-last, compiled by inductor for the
    `example` inputs' shapes, now rather than at a user's first call; None, after one log line, where it cannot
    be. A copy: OpenVINO's graph may still read the float32 weights it was traced from. Inductor keeps what it
    built in TORCHINDUCTOR_CACHE_DIR, which the worker points under the model cache (models/ reads no
    environment), so a restart compiles from it."""
    t = time.perf_counter()
    try:
        net = copy.deepcopy(net).to(dtype, memory_format=torch.channels_last)
        compiled = Compiled(torch.compile(net, dynamic=False), name, dtype)
        compiled(*example)
    except Exception as exc:  # noqa: BLE001 - any failure of a third-party compiler: the other runtime runs alone
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        log.warning("%s: not compiled by torch (%s: %s)", name, type(exc).__name__, first)
        return None
    log.info("%s: compiled by torch in %.1f s", name, time.perf_counter() - t)
    return compiled


class Fastest:
    """One network in several runtimes, each call run in the one that has been fastest lately (module docstring).

    A runtime's time is the median of its last WINDOW calls. The fastest runs every call except the checks: a
    slower runtime runs again once the calls since its last run took 1 / SHARE times what it lost then, so
    checking costs at most SHARE of the time (1 %) however far behind it is, and a change of load (a second
    worker starting, a neighbour going quiet) is seen soon: 7 calls later for a runtime 7 % behind (compiled
    SIGGRAPH17 on the quiet Zen 5), 35 for one 35 % behind (on the Xeon). A check that finds the slower runtime
    ahead of the fastest's median runs it again at once, so a few calls confirm the change (or not). Each
    runtime joins after a call with the `example`, untimed (a first call sets up: 83 against 65 ms for
    OpenVINO's SIGGRAPH17 on the Xeon), and SEED timed ones: the first users' calls go to the runtime that was
    faster then, rather than each runtime in turn and then the one with the luckier first sample (SIGGRAPH17
    beside 4 busy processes over a bench's 18 calls: 1.04x OpenVINO without the timed calls, 1.01x with them).
    For networks of one input shape: times of different shapes would not compare.

    A runtime that takes long to build joins later (`join_later`): inductor compiled SIGGRAPH17 in 22 s at a
    first start on the quiet Xeon (5 s from its cache; the whole load beside 4 busy processes took 55 s), while
    the Mini App's previews wait at most 20 s. So the first runtime serves at once, the second is built in a
    thread and raced once it is ready; meanwhile jobs share the cores with the compiler (SIGGRAPH17 in
    OpenVINO: 106-145 ms a call during the compilation, 67 ms after)."""

    WINDOW = 5
    SEED = 3
    SHARE = 0.01
    building = threading.Lock()  # one compilation at a time in a process (ECCV16 and SIGGRAPH17 may load together)

    def __init__(self, name: str, runs: dict[str, Callable[..., torch.Tensor]], example: Sequence[torch.Tensor]):
        self.name, self.example = name, tuple(example)
        self.runs: dict[str, Callable[..., torch.Tensor]] = {}
        self.times: dict[str, deque] = {}
        self.since: dict[str, float] = {}  # seconds of calls since each runtime last ran
        self.serving: str | None = None
        self.lock = threading.Lock()
        self.later: threading.Thread | None = None
        for run, fn in runs.items():
            self.add(run, fn)

    def add(self, run: str, fn: Callable[..., torch.Tensor]) -> None:
        """Race `fn` too, after one untimed call with the example and SEED timed ones."""
        fn(*self.example)
        times = deque(maxlen=self.WINDOW)
        for _ in range(self.SEED):
            t = time.perf_counter()
            fn(*self.example)
            times.append(time.perf_counter() - t)
        with self.lock:
            self.runs[run], self.times[run], self.since[run] = fn, times, 0.0

    def join_later(self, run: str, build: Callable[[], Callable[..., torch.Tensor] | None]) -> None:
        """Build a runtime in a thread (`build` returns it, or None where it could not be built) and race it once
        built; `settle` waits for that."""
        def work():
            with self.building:
                fn = build()
            if fn is not None:
                self.add(run, fn)
        self.later = threading.Thread(target=work, name=f"{self.name}: {run}", daemon=True)
        self.later.start()

    def settle(self, timeout: float | None = None) -> None:
        """Wait until a runtime being built has joined (or failed to)."""
        if self.later is not None:
            self.later.join(timeout)

    def median(self, run: str) -> float:
        return statistics.median(self.times[run])

    def fastest(self) -> str:
        return min(self.runs, key=self.median)

    def choose(self) -> str:
        best = self.fastest()
        lead = self.median(best)
        for run in sorted(self.runs, key=self.since.__getitem__, reverse=True):
            behind = self.median(run) - lead
            if run != best and (self.times[run][-1] < lead or self.since[run] * self.SHARE >= behind):
                return run
        return best

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        with self.lock:
            run = self.choose()
            fn = self.runs[run]
        t = time.perf_counter()
        out = fn(*inputs)
        took = time.perf_counter() - t
        with self.lock:
            self.times[run].append(took)
            for other in self.since:
                self.since[other] = 0.0 if other == run else self.since[other] + took
            best = self.fastest()
            if best != self.serving:
                log.info("%s now runs in %s (%s)", self.name, best,
                         ", ".join(f"{r} {self.median(r) * 1000:.0f} ms" for r in self.runs))
                self.serving = best
        return out

    def __repr__(self) -> str:
        return f"<{self.name}, the fastest of {' and '.join(self.runs)}>"
