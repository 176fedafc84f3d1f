"""OpenVINO as the CPU runtime of ECCV16, SIGGRAPH17 and AdaAttN's content pass (models/runtime.py): the
same results as torch in the same precision (bf16 on CPUs with native bf16, float32 elsewhere), hints and
odd sizes included; the trace kept under the cache directory and read back after a restart; a new trace
when the weights change; and torch, with one log line, whenever OpenVINO cannot run. In a serving process the
Zhang networks are also compiled by torch in the background and each call runs in whichever has been faster
lately (runtime.Fastest: its choices on a fake clock, its cost of checking, a runtime joining late or never)."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from models import engines, runtime
from models.colorize.hints import Hint
from models.colorize.zhang import ECCV16Engine, SIGGRAPH17Engine
from models.config import ConfigError, ModelConfig
from models.style import adaattn
from tests.conftest import SHARED
from tests.style_golden import write_standin
from tests.standins import official, write_standin as write_official

PHOTO = SHARED / "styles" / "the_resevoir_at_poitiers.jpg"
PAINTING = SHARED / "styles" / "starry_night.jpg"
ZHANG = {"eccv16": ECCV16Engine, "siggraph17": SIGGRAPH17Engine}


pytestmark = pytest.mark.usefixtures("two_threads")


@pytest.fixture(scope="module")
def zhang_files(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("zhang")
    assert set(ZHANG) <= set(official())
    return {name: write_official(name, d / f"{name}.pth") for name in ZHANG}


@pytest.fixture(scope="module")
def adaattn_files(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("adaattn")
    return {wf.filename: write_standin("adain_vgg_normalised" if key == "adaattn_vgg_normalised" else key,
                                       d / wf.filename) for key, wf in adaattn.FILES.items()}


def zhang(name: str, files: dict, cache, runtime_name: str, reduced: bool = True, serving: bool = False):
    cls = ZHANG[name]
    config = ModelConfig(device="cpu", cache_dir=cache, runtime=runtime_name, reduced_precision=reduced,
                         weight_overrides={cls.files[0].filename: files[name]}, serving=serving)
    return cls(torch.device("cpu"), config)


def psnr(a: Image.Image, b: Image.Image) -> float:
    x, y = (np.asarray(i, dtype=np.float64) for i in (a, b))
    mse = ((x - y) ** 2).mean()
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def photo(w: int, h: int) -> Image.Image:
    return Image.open(PHOTO).convert("L").resize((w, h), Image.LANCZOS)


def expected_precision(engine) -> str:
    return "bf16" if engine.dtype == torch.bfloat16 else "f32"


@pytest.mark.parametrize("name", sorted(ZHANG))
def test_zhang_networks_in_openvino_colour_as_torch_does(name, zhang_files, tmp_path):
    ov = zhang(name, zhang_files, tmp_path, "openvino")
    same = zhang(name, zhang_files, tmp_path, "torch")
    exact = zhang(name, zhang_files, tmp_path, "torch", reduced=False)
    assert isinstance(ov.net, runtime.Converted) and ov.net.precision == expected_precision(ov)
    assert not isinstance(same.net, runtime.Converted)
    img = photo(300, 200)
    got, torch_same, reference = ov(img), same(img), exact(img)
    # bf16: as close to float32 as torch's own bf16 is (test_colorize: 35 dB); float32: the same network.
    floor = 35 if ov.net.precision == "bf16" else 60
    assert psnr(got, reference) >= floor, (psnr(got, reference), psnr(torch_same, reference))


def test_siggraph17_hints_reach_the_network_in_openvino(zhang_files, tmp_path):
    ov = zhang("siggraph17", zhang_files, tmp_path, "openvino")
    exact = zhang("siggraph17", zhang_files, tmp_path, "torch", reduced=False)
    img = photo(240, 160)
    hints = [Hint(60, 40, (200, 30, 30)), Hint(180, 120, (20, 40, 220))]
    automatic, steered, reference = ov(img), ov(img, hints=hints), exact(img, hints=hints)
    assert psnr(steered, automatic) < 40  # the hints changed the colours
    assert psnr(steered, reference) >= (35 if ov.net.precision == "bf16" else 60)


def adaattn_engine(files: dict, cache, runtime_name: str, reduced: bool = True) -> adaattn.AdaAttNEngine:
    config = ModelConfig(device="cpu", cache_dir=cache, runtime=runtime_name, reduced_precision=reduced,
                         weight_overrides=files)
    return adaattn.AdaAttNEngine(torch.device("cpu"), config)


def test_adaattn_paints_in_openvino_as_in_torch(adaattn_files, tmp_path):
    ov = adaattn_engine(adaattn_files, tmp_path, "openvino")
    exact = adaattn_engine(adaattn_files, tmp_path, "torch", reduced=False)
    assert isinstance(ov.whole, runtime.Converted) and ov.whole.precision == expected_precision(ov)
    assert exact.whole is None
    painting = Image.open(PAINTING).convert("RGB")
    for w, h, strength in ((96, 72, 1.0), (64, 112, 0.6)):  # any side the network takes, and a blend
        content = Image.open(PHOTO).convert("RGB").resize((w, h), Image.LANCZOS)
        got, reference = (e(content, painting, strength=strength, size=max(w, h), style_key="starry")
                          for e in (ov, exact))
        assert got.size == (w, h)
        # bf16: the floor of torch's own bf16 AdaAttN (test_style_adaattn: 28 dB; measured 33.5 dB at 512 px)
        assert psnr(got, reference) >= (28 if ov.whole.precision == "bf16" else 50), (w, h, strength)


def test_adaattn_larger_than_the_whole_pass_takes_runs_in_torch(adaattn_files, tmp_path, monkeypatch):
    ov = adaattn_engine(adaattn_files, tmp_path, "openvino")
    same = adaattn_engine(adaattn_files, tmp_path, "torch")
    calls = []
    whole = ov.whole
    ov.whole = lambda *inputs: calls.append(inputs) or whole(*inputs)
    content = Image.open(PHOTO).convert("RGB").resize((80, 64), Image.LANCZOS)
    painting = Image.open(PAINTING).convert("RGB")
    ov(content, painting, size=80, style_key="starry")
    assert len(calls) == 1
    monkeypatch.setattr(adaattn, "WHOLE_PASS_ELEMENTS", 16)  # nothing fits: chunked attention in torch
    got = ov(content, painting, size=80, style_key="starry")
    assert len(calls) == 1
    assert psnr(got, same(content, painting, size=80, style_key="starry")) == float("inf")  # torch's own path


def test_the_trace_is_kept_and_read_back_and_redone_for_new_weights(zhang_files, tmp_path, monkeypatch, caplog):
    import openvino

    caplog.set_level(logging.INFO, logger="paintbot.models")
    first = zhang("eccv16", zhang_files, tmp_path, "openvino")
    traces = sorted((tmp_path / "openvino").glob("eccv16-*.xml"))
    assert len(traces) == 1 and traces[0].with_suffix(".bin").stat().st_size > 1_000_000
    assert "traced for OpenVINO" in caplog.text

    def no_tracing(*args, **kwargs):
        raise AssertionError("traced again")

    monkeypatch.setattr(openvino, "convert_model", no_tracing)
    caplog.clear()
    again = zhang("eccv16", zhang_files, tmp_path, "openvino")  # a restarted worker
    assert isinstance(again.net, runtime.Converted) and "OpenVINO trace read from" in caplog.text
    img = photo(128, 96)
    assert psnr(again(img), first(img)) == float("inf")

    monkeypatch.undo()
    changed = tmp_path / "changed.pth"
    state = torch.load(zhang_files["eccv16"])
    state["model8.6.bias"] = state["model8.6.bias"] + 1
    torch.save(state, changed)
    zhang("eccv16", {"eccv16": changed}, tmp_path, "openvino")
    assert len(list((tmp_path / "openvino").glob("eccv16-*.xml"))) == 2


def test_a_read_only_model_cache_still_runs_openvino(zhang_files, tmp_path, monkeypatch, caplog):
    def read_only(ov, model, path):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(runtime, "save", read_only)
    with caplog.at_level(logging.WARNING, logger="paintbot.models"):
        engine = zhang("eccv16", zhang_files, tmp_path, "openvino")
    assert isinstance(engine.net, runtime.Converted)
    assert [r.getMessage() for r in caplog.records] == [
        "eccv16: traced for OpenVINO, not kept (OSError: Read-only file system): traced again at the next start"]


def test_torch_runs_when_openvino_cannot(zhang_files, tmp_path, monkeypatch, caplog):
    import openvino

    img = photo(128, 96)
    expected = zhang("eccv16", zhang_files, tmp_path, "torch")(img)
    monkeypatch.setitem(sys.modules, "openvino", None)  # not installed
    with caplog.at_level(logging.WARNING, logger="paintbot.models"):
        engine = zhang("eccv16", zhang_files, tmp_path, "openvino")
    assert not isinstance(engine.net, runtime.Converted)
    assert "eccv16 runs in torch: OpenVINO is not installed" in caplog.text
    assert psnr(engine(img), expected) == float("inf")

    monkeypatch.setitem(sys.modules, "openvino", openvino)

    def broken(*args, **kwargs):
        raise RuntimeError("Exception from src/inference/src/cpp/core.cpp:112:\nno plugin")

    monkeypatch.setattr(openvino.Core, "compile_model", broken)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="paintbot.models"):
        engine = zhang("siggraph17", zhang_files, tmp_path, "openvino")
    assert not isinstance(engine.net, runtime.Converted)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["siggraph17 runs in torch: OpenVINO could not take it "
                     "(RuntimeError: Exception from src/inference/src/cpp/core.cpp:112:)"]


def test_which_runtime_runs_where():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    for name, want in (("auto", True), ("openvino", True), ("torch", False)):  # on any CPU, bf16 or float32
        assert runtime.wanted(ModelConfig(runtime=name), cpu) is want, name
        assert runtime.wanted(ModelConfig(runtime=name), cuda) is False  # CUDA: torch always
    assert engines.config_from_env({}).runtime == "auto"  # the service's default
    assert ModelConfig().runtime == "torch"  # a ModelConfig built in code asks for OpenVINO by name
    assert engines.config_from_env({"PAINTBOT_RUNTIME": " OpenVINO "}).runtime == "openvino"
    with pytest.raises(ConfigError, match="PAINTBOT_RUNTIME must be one of auto, torch, openvino, not 'onnx'"):
        engines.config_from_env({"PAINTBOT_RUNTIME": "onnx"})


class Clock:
    """Stands in for models.runtime's `time`: the fake runtimes below advance it by what they cost."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


def racing(monkeypatch, costs: dict[str, float]) -> tuple[runtime.Fastest, list[str]]:
    """A Fastest over fake runtimes whose cost per call (seconds) the test sets in `costs`; the calls' log."""
    clock, calls = Clock(), []
    monkeypatch.setattr(runtime, "time", clock)

    def run_of(name):
        def run(*inputs):
            clock.now += costs[name]
            calls.append(name)
            return inputs[0]
        return run

    fastest = runtime.Fastest("net", {name: run_of(name) for name in costs}, [torch.zeros(1)])
    calls.clear()  # the untimed first calls
    return fastest, calls


def test_the_fastest_runtime_serves_and_the_other_is_checked_at_one_per_cent(monkeypatch):
    costs = {"OpenVINO": 0.010, "torch.compile": 0.017}  # compile 1.7x behind: SIGGRAPH17 on the Xeon
    fastest, calls = racing(monkeypatch, costs)
    x = torch.ones(1)
    assert all(fastest(x) is x for _ in range(3000))
    checks = calls.count("torch.compile")
    spent = sum(costs[c] for c in calls)
    assert 3 <= checks and checks * (costs["torch.compile"] - costs["OpenVINO"]) <= 0.011 * spent
    assert fastest.serving == "OpenVINO"

    costs.update({"OpenVINO": 0.030, "torch.compile": 0.020})  # the host got busy: compile ahead (Zen 5)
    del calls[:]
    for _ in range(1000):
        fastest(x)
    assert calls[:3] == ["OpenVINO"] * 3  # three slow calls move OpenVINO's median past compile's
    assert calls[3:].count("OpenVINO") * (0.030 - 0.020) <= 0.011 * sum(costs[c] for c in calls)
    assert fastest.serving == "torch.compile"


def test_a_slower_runtime_that_became_faster_is_found_at_its_next_check(monkeypatch):
    costs = {"OpenVINO": 0.010, "torch.compile": 0.012}
    fastest, calls = racing(monkeypatch, costs)
    for _ in range(500):
        fastest(torch.ones(1))
    costs["torch.compile"] = 0.005  # what compile lost at its last check, times 100, is 0.2 s: 20 calls away
    del calls[:]
    for _ in range(60):
        fastest(torch.ones(1))
    first = calls.index("torch.compile")
    assert first <= 21 and calls[first:first + 4] == ["torch.compile"] * 4  # checked again at once: confirmed
    assert set(calls[first:]) == {"torch.compile"} and fastest.serving == "torch.compile"


def test_a_runtime_built_later_joins_the_race_and_one_that_fails_does_not(monkeypatch):
    import threading

    costs = {"OpenVINO": 0.010, "torch.compile": 0.004}
    fastest, calls = racing(monkeypatch, {"OpenVINO": costs["OpenVINO"]})
    built = threading.Event()

    def build():
        built.wait(10)
        def run(*inputs):
            calls.append("torch.compile")
            runtime.time.now += costs["torch.compile"]
            return inputs[0]
        return run

    fastest.join_later("torch.compile", build)
    for _ in range(5):
        fastest(torch.ones(1))  # served at once, while the other is built
    built.set()
    fastest.settle(10)
    calls.clear()  # its untimed first call
    for _ in range(20):
        fastest(torch.ones(1))
    assert calls[0] == "torch.compile" and calls[-10:] == ["torch.compile"] * 10

    alone, calls = racing(monkeypatch, {"OpenVINO": 0.010})
    alone.join_later("torch.compile", lambda: None)  # could not be built (compile_torch logged why)
    alone.settle(10)
    alone(torch.ones(1))
    assert list(alone.runs) == ["OpenVINO"] and calls == ["OpenVINO"]


def test_siggraph17_serving_races_openvino_against_compiled_torch(zhang_files, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))  # as the worker sets it
    engine = zhang("siggraph17", zhang_files, tmp_path, "auto", serving=True)
    assert isinstance(engine.net, runtime.Fastest)
    engine.net.settle(600)
    assert set(engine.net.runs) == {"OpenVINO", "torch.compile"}
    assert any((tmp_path / "inductor").rglob("*.py")), "inductor kept nothing for the next start"
    exact = zhang("siggraph17", zhang_files, tmp_path, "torch", reduced=False)
    img = photo(240, 160)
    hints = [Hint(60, 40, (200, 30, 30)), Hint(180, 120, (20, 40, 220))]
    x = exact.network_input(exact.grid_lightness(img))
    ab, mask = hinting_maps(img, hints, exact)
    reference = exact.net(x, ab, mask)
    for name, run in engine.net.runs.items():  # whichever serves: within bf16 of float32, hints included
        got = run(x, ab, mask)
        assert got.dtype == torch.float32 and got.shape == reference.shape
        # ab units (CIE), stand-in weights: compiled bf16 measured 1.21 (torch eager bf16 the same), OpenVINO 1.36
        assert (got - reference).abs().max() < 2, name
    # A one-shot process (the CLI) and an explicit `openvino` race nothing: OpenVINO alone.
    assert isinstance(zhang("siggraph17", zhang_files, tmp_path, "auto").net, runtime.Converted)
    assert isinstance(zhang("siggraph17", zhang_files, tmp_path, "openvino", serving=True).net, runtime.Converted)


def hinting_maps(img, hints, engine):
    from models.colorize import hints as hinting

    lightness = engine.grid_lightness(img)
    points = hinting.colour_points(hints, img.width, img.height, lightness[0])
    return hinting.hint_maps(points, img.width, img.height, 256)


def test_openvino_serves_alone_when_torch_cannot_compile(zhang_files, tmp_path, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("InductorError: C++ compile error\nlong details")

    monkeypatch.setattr(torch, "compile", broken)
    with caplog.at_level(logging.WARNING, logger="paintbot.models"):
        engine = zhang("eccv16", zhang_files, tmp_path, "auto", serving=True)
        engine.net.settle(60)
    assert list(engine.net.runs) == ["OpenVINO"]
    assert [r.getMessage() for r in caplog.records] == [
        "eccv16: not compiled by torch (RuntimeError: InductorError: C++ compile error)"]
    assert engine(photo(64, 48)).size == (64, 48)
