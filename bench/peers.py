"""paintbot's CPU engines against the runtimes a user who wants fast CPU inference would pick.

    .venv/bin/python bench/peers.py [--networks adaattn instance ...] [--rounds 7] [--threads 2]
                                    [--contention N] [--skip openvino onnxruntime ...]

For each network: paintbot's engine as the worker runs it (its dtype, layout and compiled path), and the
same network, with the same weights and input, under torch eager float32, `torch.compile` and, when the
packages are installed, OpenVINO and onnxruntime float32; `torch.compile` and OpenVINO compute in bf16 on a
CPU with native bf16, else in float32 (as paintbot's engines: emulated bf16 is no one's fast choice). Each
round runs every contestant once, in the orders of a balanced Latin square (Williams'): over each square's
rounds every contestant takes every place once and follows every other contestant equally often, so that a
drift of the machine's speed (another process, the clock) and what one leaves behind for the next fall on all
alike (`--rounds` is rounded up to whole squares). The predecessor matters: beside 4 busy processes an
OpenVINO network that ran right after another OpenVINO network took 13-16 % longer (Zen 5, 2026-12-06), and
the plain rotation used before always put paintbot right after the OpenVINO peer. Each contestant runs in
a process of its own, as a worker runs its engine, and sleeps while the others run: two identical OpenVINO
networks compiled in one process differed by 7-15 % beside busy loops, so in-process comparisons were biased
by the order of compilation. The
medians are printed, each one's ratio to paintbot from the medians and round by round (the median of each
round's ratio: steadier where the host's speed drifts), with the CPU's name and flags. `--contention N`
starts N busy processes (one spinning Python loop each) for the whole run: the shared host of issue 28,
where OpenMP threads that spin-wait lose their cores.

The networks and inputs (issue 28's table):
- eccv16, siggraph17: L at 256 x 256 (one photo);
- ddcolor-tiny: gray RGB at 512 x 512;
- adaattn: a 512 x 512 photo in a preset style (the style side remembered, as for a preset);
- instance: the instance generator (SIGGRAPH U-Net) on 8 crops of 256 x 256, as the instance-aware
  colouriser runs its objects in one batch.
Weights are seeded stand-ins with the published keys and shapes (speed does not depend on the values).
Goal (issue 28): paintbot at most 1.05x the best peer, quiet and beside 4 busy processes. Speed goals live
here, never in timed tests.
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent / "shared" / "weights"))

from worker.main import wait_policy  # noqa: E402

WAITS = wait_policy(os.environ)  # as the worker runs (before torch loads): every torch contestant shares it

import torch  # noqa: E402
from torch import nn  # noqa: E402

from bench.machine import cpu_summary  # noqa: E402
from models import engines, runtime  # noqa: E402
from models.config import ModelConfig  # noqa: E402
from models.device import keep_freed_memory, reduced_dtype  # noqa: E402
from standin import layout, make_standin  # noqa: E402

SHARED = ROOT.parent / "shared"
CONTENT = SHARED / "styles" / "the_resevoir_at_poitiers.jpg"
STYLE = SHARED / "styles" / "starry_night.jpg"
NETWORKS = ("eccv16", "siggraph17", "ddcolor-tiny", "adaattn", "instance")
REDUCED = reduced_dtype(torch.device("cpu")) or torch.float32  # what the engines and the peers compute in here
PRECISION = "bf16" if REDUCED == torch.bfloat16 else "f32"


@dataclass
class Case:
    """One network: paintbot's engine call (no argument: its input is bound), the float32 network the peers
    run, and that network's inputs."""

    name: str
    paintbot: Callable[[], object]
    module: nn.Module
    inputs: tuple[torch.Tensor, ...]
    notes: list[str] = field(default_factory=list)


def standin(file: str, name: str, seed: int) -> dict:
    return {k: torch.from_numpy(v) for k, v in make_standin(layout(file, name), seed).items()}


def write(folder: Path, filename: str, state: dict) -> Path:
    path = folder / filename
    torch.save(state, path)
    return path


def config(folder: Path, overrides: dict) -> ModelConfig:
    """As the worker configures its engines (PAINTBOT_RUNTIME as set, else the service's `auto`; serving)."""
    return ModelConfig(device="cpu", cache_dir=folder / "cache", weight_overrides=overrides,
                       runtime=os.environ.get("PAINTBOT_RUNTIME", "auto"), serving=True)


def load(name: str, family: str, cfg: ModelConfig, notes: list[str]):
    """The engine as a worker loads it, twice with one cache directory: a first start (OpenVINO traces the
    network) and a restart (the trace is read back); both times go into the notes, and for a raced network
    (models/runtime.py Fastest) when its second runtime joined. The bench times it only after that."""
    times, joined = [], []
    for _ in range(2):
        t = time.perf_counter()
        engine = engines.load(name, family, config=cfg)
        times.append(time.perf_counter() - t)
        raced = getattr(engine, "net", None)
        if isinstance(raced, runtime.Fastest):
            raced.settle()
            joined.append(f"{time.perf_counter() - t:.1f} s")
    notes.append(f"paintbot: {engine.runs_in} ({engine.dtype}); engine loaded in {times[0]:.1f} s at a first "
                 f"start, {times[1]:.1f} s at a restart" + (f"; raced from {' and '.join(joined)} (the restart "
                                                            "in-process: a new process compiles from the disk cache)"
                                                            if joined else ""))
    return engine


def zhang_case(name: str, folder: Path) -> Case:
    from models.colorize import zhang

    cls = {"eccv16": zhang.ECCV16Engine, "siggraph17": zhang.SIGGRAPH17Engine}[name]
    path = write(folder, cls.files[0].filename, standin("official.json", name, 1701))
    notes: list[str] = []
    engine = load(name, "colorize", config(folder, {cls.files[0].filename: path}), notes)
    x = torch.rand(1, 1, 256, 256) - 0.5
    module = cls.files[0].build()
    module.load_state_dict(torch.load(path))
    fed = [x.to(engine.dtype).contiguous(memory_format=torch.channels_last)]
    if name == "siggraph17":  # as the engine calls it: no hints, as zeros (the peers make the zeros inside)
        fed += [torch.zeros(1, 2, 256, 256), torch.zeros(1, 1, 256, 256)]
    return Case(name, lambda: engine.net(*fed), module.eval(), (x,), notes)


def ddcolor_case(folder: Path) -> Case:
    from models.colorize import ddcolor

    cls = ddcolor.DDColorTinyEngine
    path = write(folder, cls.files[0].filename, standin("ddcolor.json", "tiny", 2301))
    notes: list[str] = []
    engine = load("ddcolor-tiny", "colorize", config(folder, {cls.files[0].filename: path}), notes)
    x = torch.rand(1, 3, 512, 512)
    module = ddcolor.build("tiny")
    module.load_state_dict(ddcolor.prepare_state_dict(torch.load(path)))
    net, dtype = engine.colorizer.net, engine.colorizer.dtype or torch.float32
    fed = x.to(dtype).contiguous(memory_format=torch.channels_last)
    return Case("ddcolor-tiny", lambda: net(fed), module.eval(), (x,), notes)


class AdaAttNNetwork(nn.Module):
    """AdaAttN from a 512 px photo to the painting, the preset's style side held as constants: what every
    peer runs (encoder, three attention levels, transformer, decoder), in float32."""

    def __init__(self, nets, style: torch.Tensor):
        super().__init__()
        from models.style import adaattn

        self.nets = copy.deepcopy(nets).float().to(memory_format=torch.contiguous_format)
        with torch.inference_mode():
            memories = adaattn.remember_style(self.nets, adaattn.encode_levels(self.nets.encoder, style))
        for i, m in enumerate(memories):
            for name, t in m._asdict().items():
                self.register_buffer(f"{name}{i}", t.clone())

    def forward(self, x):
        from models.style import adaattn as a

        feats = a.encode_levels(self.nets.encoder, x)
        memories = [a.StyleMemory(*(getattr(self, f"{name}{i}") for name in a.StyleMemory._fields)) for i in range(3)]
        # The attention hands back float32 (models/style/adaattn.py `attend`); the convolutions after it run in
        # the peer's dtype, as the engine's own torch path casts them (`as_convs`).
        skip, l4, l5 = (t.to(x.dtype) for t in a.attend_levels(self.nets, feats, memories, chunk_elements=1 << 40))
        return self.nets.decoder(self.nets.transformer(l4, l5), skip)


def adaattn_case(folder: Path) -> Case:
    from PIL import Image

    from models.style import adaattn, framing
    from tests import style_golden

    overrides = {}
    for key, wf in adaattn.FILES.items():
        name = "adain_vgg_normalised" if key == "adaattn_vgg_normalised" else key
        overrides[wf.filename] = style_golden.write_standin(name, folder / f"{name}.pth")
    notes: list[str] = []
    engine = load("adaattn", "style", config(folder, overrides), notes)
    content = framing.to_tensor(Image.open(CONTENT).convert("RGB").resize((512, 512), Image.LANCZOS), engine.device)
    style = Image.open(STYLE).convert("RGB")
    with torch.inference_mode():
        engine.paint(content, style, 1.0, "preset")  # remembers the preset's style side at 512 px
    sw, sh = framing.fit(style.size, 512)
    module = AdaAttNNetwork(engine.nets, framing.to_tensor(style.resize((sw, sh), Image.LANCZOS), engine.device))
    return Case("adaattn", lambda: engine.paint(content, style, 1.0, "preset"), module.eval(), (content,), notes)


def instance_case(folder: Path) -> Case:
    from models.colorize import instance

    entries = (("instcolorization_GComp", 2001), ("instcolorization_G", 2002), ("instcolorization_GF", 2003))
    sds = [standin("instcolorization.json", e, seed) for e, seed in entries]
    dtype = reduced_dtype(torch.device("cpu"))
    colorizer = instance.InstanceColorizer.from_state_dicts(*sds, device="cpu", dtype=dtype)
    crops = torch.rand(8, 4, 256, 256) - 0.5
    module = instance.build_instance()
    module.load_state_dict(sds[1])
    fed = crops.to(dtype or torch.float32).contiguous(memory_format=torch.channels_last)
    return Case("instance", lambda: colorizer.instance(fed), module.eval(), (crops,))


CASES = {"eccv16": lambda f: zhang_case("eccv16", f), "siggraph17": lambda f: zhang_case("siggraph17", f),
         "ddcolor-tiny": ddcolor_case, "adaattn": adaattn_case, "instance": instance_case}


# --- the peers --------------------------------------------------------------------------------------


def eager_f32(case: Case) -> Callable[[], object]:
    return lambda: case.module(*case.inputs)


def compiled(case: Case) -> Callable[[], object]:
    module = copy.deepcopy(case.module).to(REDUCED, memory_format=torch.channels_last)
    fast = torch.compile(module)
    inputs = tuple(i.to(REDUCED).contiguous(memory_format=torch.channels_last) for i in case.inputs)
    return lambda: fast(*inputs)


def openvino(case: Case) -> Callable[[], object]:
    import openvino as ov

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ov.convert_model(case.module, example_input=case.inputs)
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": PRECISION,
                                                      "INFERENCE_NUM_THREADS": str(torch.get_num_threads()),
                                                      "PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()
    arrays = [i.numpy() for i in case.inputs]
    return lambda: request.infer(arrays)


def onnxruntime_f32(case: Case, folder: Path) -> Callable[[], object]:
    import onnxruntime as ort

    path = folder / f"{case.name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(case.module, case.inputs, str(path), dynamo=False, opset_version=17)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    # Its threads would spin on after each run and slow whoever runs next (measured: the contestant after it
    # lost 20-25 %); the others' threads sleep soon too (GOMP_SPINCOUNT, OpenVINO's own).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feeds = {i.name: t.numpy() for i, t in zip(session.get_inputs(), case.inputs)}
    return lambda: session.run(None, feeds)


PEERS = {"eager f32": lambda case, folder: eager_f32(case), f"compile {PRECISION}": lambda case, folder: compiled(case),
         f"openvino {PRECISION}": lambda case, folder: openvino(case), "onnxruntime f32": onnxruntime_f32}


def contestant(conn, network: str, name: str, threads: int) -> None:
    """One contestant in a process of its own, as a worker runs its engine: builds the case, makes the first
    call (inductor and OpenVINO's plugin compile there: not timed), then times one call each time it is asked
    (None: stop). Alone in its process, no contestant's threads or arena lie beside another's: two identical
    OpenVINO networks in one process, beside 4 busy loops, differed by 7-15 % (the first compiled the faster)."""
    torch.set_num_threads(threads)
    keep_freed_memory(engines.config_from_env(os.environ).keep_memory)  # as the worker
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # inductor's files beside the model cache, as the worker keeps them, fresh for each run (a first start);
        # set, not defaulted: importing torch._dynamo (above) already wrote its own default here
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder / "cache" / "inductor")
        case = CASES[network](folder)
        t = time.perf_counter()
        try:
            fn = case.paintbot if name == "paintbot" else PEERS[name](case, folder)
            with torch.inference_mode():  # as measured: inductor would otherwise trace a backward too
                fn()
        except Exception as exc:  # a peer that cannot run this network (a missing package, an exporter's gap)
            conn.send(("failed", f"{name}: not run ({type(exc).__name__}: {str(exc).splitlines()[0][:100]})"))
            return
        notes = case.notes if name == "paintbot" else [f"{name}: ready in {time.perf_counter() - t:.1f} s"]
        shapes = " + ".join("x".join(map(str, i.shape)) for i in case.inputs)
        conn.send(("ready", notes, shapes))
        call = timed(fn)
        while conn.recv() is not None:
            conn.send(call())


def start(network: str, skip: set[str], threads: int) -> tuple[dict, list[str], str]:
    """A process per contestant, started one after another (each builds and compiles alone): their pipes by
    name, the notes, and the network's input shapes."""
    ctx = mp.get_context("spawn")
    pipes, notes, shapes = {}, [], ""
    for name in ["paintbot", *PEERS]:
        if name != "paintbot" and (name in skip or name.split()[0] in skip):
            continue
        ours, theirs = ctx.Pipe()
        proc = ctx.Process(target=contestant, args=(theirs, network, name, threads), daemon=True)
        proc.start()
        answer = ours.recv() if ours.poll(1800) else ("failed", f"{name}: not ready in 30 min")
        if answer[0] == "ready":
            pipes[name] = (ours, proc)
            notes += answer[1]
            shapes = answer[2]
        else:
            notes.append(answer[1])
            proc.kill()
    return pipes, notes, shapes


def spin() -> None:
    while True:
        pass


def balanced_orders(names: list[str]) -> list[list[str]]:
    """Williams' balanced Latin square over `names`: each place once per name, and each name right after
    every other equally often (n orders for an even n; for an odd n the square and its mirror, 2n)."""
    n = len(names)
    first = [0] + [(k + 1) // 2 if k % 2 else n - k // 2 for k in range(1, n)]
    rows = [[(i + x) % n for x in first] for i in range(n)]
    if n % 2:
        rows += [row[::-1] for row in rows]
    return [[names[i] for i in row] for row in rows]


def asked(conn) -> Callable[[], float]:
    """A contestant in its own process as a timed call: one run there, its seconds back; it sleeps until asked."""
    def call() -> float:
        conn.send(True)
        return conn.recv()
    return call


def timed(fn: Callable[[], object]) -> Callable[[], float]:
    """A call in this process as a timed call (inference mode, as the worker runs)."""
    def call() -> float:
        with torch.inference_mode():
            t = time.perf_counter()
            fn()
            return time.perf_counter() - t
    return call


def measure(calls: dict[str, Callable[[], float]], rounds: int, warmup: int = 2) -> dict[str, list[float]]:
    """Each contestant's times (each call runs it once and says how long it took), in the balanced orders."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    times: dict[str, list[float]] = {k: [] for k in calls}
    orders = balanced_orders(list(calls))
    for r in range(-(-rounds // len(orders)) * len(orders)):
        for name in orders[r % len(orders)]:
            times[name].append(calls[name]())
    return times


def report(network: str, shapes: str, notes: list[str], times: dict[str, list[float]]) -> None:
    """Medians, and each peer's ratio to paintbot round by round (the two ran seconds apart in every round):
    on a shared host whose speed drifts over minutes the per-round ratio holds where the medians wander."""
    medians = {k: statistics.median(v) for k, v in times.items()}
    paired = {k: statistics.median(a / b for a, b in zip(times["paintbot"], v)) for k, v in times.items()}
    ours = medians["paintbot"]
    best_peer = min((k for k in medians if k != "paintbot"), key=medians.get, default=None)
    print(f"\n{network} (input {shapes})")
    for name, m in medians.items():
        spread = f"{min(times[name]) * 1000:.0f}-{max(times[name]) * 1000:.0f}"
        print(f"  {name:16s} {m * 1000:8.1f} ms  (range {spread} ms)  paintbot/this {ours / m:5.2f}"
              f"  per round {paired[name]:5.2f}")
    if best_peer:
        print(f"  paintbot vs best peer ({best_peer}): {ours / medians[best_peer]:.2f}x, "
              f"per round {paired[best_peer]:.2f}x")
    for note in notes:
        print(f"  . {note}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=NETWORKS)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--contention", type=int, default=0, help="busy processes beside the run")
    ap.add_argument("--skip", nargs="*", default=[], help="peers to leave out (e.g. openvino onnxruntime)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    memory = keep_freed_memory(engines.config_from_env(os.environ).keep_memory)  # as the worker: for every contestant
    print(f"CPU: {cpu_summary()}; torch {torch.__version__}, {args.threads} threads, "
          f"OpenMP waits {WAITS} (the worker's), freed memory {memory}, "
          f"{args.contention} busy processes beside; load average {os.getloadavg()[0]:.2f}")
    busy = [mp.Process(target=spin, daemon=True) for _ in range(args.contention)]
    for p in busy:
        p.start()
    try:
        for network in args.networks:
            pipes, notes, shapes = start(network, set(args.skip), args.threads)
            try:
                report(network, shapes, notes, measure({k: asked(conn) for k, (conn, _) in pipes.items()}, args.rounds))
            finally:
                for conn, proc in pipes.values():
                    conn.send(None)
                    proc.join(30)
                    proc.kill()
    finally:
        for p in busy:
            p.kill()


if __name__ == "__main__":
    main()
