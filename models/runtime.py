"""Where a network runs on a CPU: torch, or OpenVINO's CPU plugin (issue 28).

Why two: OpenVINO runs some of paintbot's networks faster than torch eager on the same cores, in bf16 on
CPUs with native bf16 (AMX, AVX512-BF16) and in float32 on CPUs with AVX2 only, because it fuses what
torch runs as separate passes over memory (convolution + ReLU + batch norm; AdaAttN's matrix product,
softmax and product in one attention kernel). bench/peers.py measures each network against OpenVINO and `torch.compile` in one
interleaved run; an engine routes a network through `convert` only where that benchmark shows OpenVINO
ahead (ECCV16, SIGGRAPH17, AdaAttN's content pass). Where torch is ahead (DDColor) or nothing was
measured, the engine keeps torch. `torch.compile` was measured too and left out: slower than OpenVINO on
each of these networks, with 7-46 s of compilation at every start.

What OpenVINO runs is still paintbot's own network: the module is built and strictly loaded from the
verified, pinned weight files (models/weights.py) exactly as for torch, then traced from its float32
weights (`ov.convert_model`); OpenVINO computes it in the precision asked (`INFERENCE_PRECISION_HINT`:
bf16 where the engine would have used bf16, else f32). The trace is kept under the cache directory
(`openvino/<key>.xml` and `.bin`), keyed by a digest of the weights, paintbot's model code, the inputs'
shapes and both libraries' versions, so a restarted worker reads it instead of tracing again; a change of
any of them traces anew.

Chosen by `ModelConfig.runtime` (PAINTBOT_RUNTIME): `auto` (the service's default) or `openvino`, its
older name (OpenVINO on any CPU, in the engine's precision, when the package imports), or `torch`. On
CUDA torch always runs. Whatever fails on the way (the import, the trace, the compilation) logs one line
and the torch network runs instead: a slower worker, never a dead one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
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
