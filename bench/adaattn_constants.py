"""AdaAttN's content pass in OpenVINO with the remembered style as constants: how much the engine would gain.

    .venv/bin/python bench/adaattn_constants.py [--rounds 9] [--contention N]

The engine traces one content pass for every style (models/style/adaattn.py ContentPass): the remembered
style (three levels' keys, values and centres) comes in as inputs, any photo shape. The peers in
bench/peers.py hold a preset's style as constants in a network of one shape, and on an AVX2 Zen 3 came out
ahead of it on AdaAttN. This takes the engine's own trace, makes the style inputs constants (and, in a second
copy, fixes the photo's shape too), compiles each, checks they paint what the engine paints, and times the
three in bench/peers.py's balanced order (2 threads, 512 px photo, a preset style), printing the compile times.
All three run in this one process: beside busy loops, OpenVINO networks compiled in one process differ by
7-15 % by the order of compilation (bench/peers.py), so read its busy figures with that margin.
A measurement, not a path the engine takes. On a Xeon with AMX (2026-12-06), after the engine's attention lost
its stray transposes, in one process: engine 401 ms, photo shape fixed 355 ms (another run: 396 / 374),
style as constants and shape fixed 305 ms, each compiled copy holding ~400 MB of buffers at 512 px: a copy
per preset and photo shape would buy up to a quarter of the time for that memory; not taken so far.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench.peers as peers  # noqa: E402  (sets up the paths and the worker's thread policy first)
import torch  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--contention", type=int, default=0, help="busy processes beside the run")
    args = ap.parse_args()
    import openvino as ov
    import openvino.opset13 as ops
    from PIL import Image

    from models.style import adaattn, framing
    from tests import style_golden

    torch.set_num_threads(2)
    print(f"CPU: {peers.cpu_summary()}; OpenVINO {ov.__version__} ({peers.PRECISION}), 2 threads, "
          f"{args.contention} busy processes beside")
    busy = [mp.Process(target=peers.spin, daemon=True) for _ in range(args.contention)]
    for p in busy:
        p.start()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        overrides = {}
        for key, wf in adaattn.FILES.items():
            name = "adain_vgg_normalised" if key == "adaattn_vgg_normalised" else key
            overrides[wf.filename] = style_golden.write_standin(name, folder / f"{name}.pth")
        engine = peers.engines.load("adaattn", "style", config=peers.config(folder, overrides))
        if engine.whole is None:
            sys.exit("the engine runs AdaAttN in torch here (PAINTBOT_RUNTIME=torch, or no OpenVINO): nothing to compare")
        photo = Image.open(peers.CONTENT).convert("RGB").resize((512, 512), Image.LANCZOS)
        content = framing.to_tensor(photo, engine.device)
        style = Image.open(peers.STYLE).convert("RGB")
        with torch.inference_mode():
            engine.paint(content, style, 1.0, "preset")  # remembers the preset at 512 px
        memories = engine.cached(("preset", 512), lambda: None)
        padded, _ = adaattn.pad_for_network(content)
        inputs = [padded, torch.tensor(1.0)] + [t for m in memories for t in m]
        arrays = [t.detach().float().contiguous().numpy() for t in inputs]
        (trace,) = (folder / "cache" / "openvino").glob("*.xml")
        core = ov.Core()
        properties = {"INFERENCE_PRECISION_HINT": peers.PRECISION, "INFERENCE_NUM_THREADS": "2",
                      "PERFORMANCE_HINT": "LATENCY", "SNIPPETS_MODE": "DISABLE"}  # as the engine
        requests = {}
        for fixed_shape in (False, True):
            started = time.perf_counter()
            model = core.read_model(trace)
            held = model.get_parameters()[1:]  # strength and the style: constants
            for parameter, value in zip(held, arrays[1:]):
                parameter.output(0).replace(ops.constant(value).output(0))
            for parameter in held:
                model.remove_parameter(parameter)
            if fixed_shape:
                model.reshape({model.inputs[0]: ov.PartialShape(list(arrays[0].shape))})
            requests[fixed_shape] = core.compile_model(model, "CPU", properties).create_infer_request()
            print(f"style as constants{', photo shape fixed' if fixed_shape else ''}: compiled in "
                  f"{time.perf_counter() - started:.1f} s")
        expected = engine.whole(*inputs).numpy()
        fns = {"engine": lambda: engine.whole(*inputs),
               "style constant": lambda: requests[False].infer([arrays[0]], share_inputs=True),
               "style constant, shape fixed": lambda: requests[True].infer([arrays[0]], share_inputs=True)}
        for name in list(fns)[1:]:
            print(f"{name}: largest difference from the engine {abs(fns[name]()[0] - expected).max():.1e}")
        times = peers.measure({k: peers.timed(fn) for k, fn in fns.items()}, args.rounds)
    medians = {k: statistics.median(v) for k, v in times.items()}
    for name, median in medians.items():
        paired = statistics.median(a / b for a, b in zip(times["engine"], times[name]))
        print(f"  {name:28s} {median * 1000:8.1f} ms  engine/this {medians['engine'] / median:5.2f}  per round {paired:5.2f}")


if __name__ == "__main__":
    main()
