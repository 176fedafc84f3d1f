"""End-to-end harness: the real bot Application and real RQ workers against the fake Bot API and a real Redis."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from bot.app import ALLOWED_UPDATES, build_application
from bot.contract.settings import Limits, Settings


class BotThread:
    """The bot's Application, long-polling in its own thread and event loop (as `run_polling` would)."""

    def __init__(self, settings: Settings):
        self.app = build_application(settings)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bot", daemon=True)

    def _run(self, coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> "BotThread":
        self.thread.start()
        self._run(self._start())
        return self

    async def _start(self):
        await self.app.initialize()
        await self.app.post_init(self.app)
        await self.app.updater.start_polling(poll_interval=0.0, timeout=1, allowed_updates=ALLOWED_UPDATES)
        await self.app.start()

    async def _stop(self):
        await self.app.updater.stop()
        await self.app.stop()
        await self.app.shutdown()

    def stop(self) -> None:
        if not self.thread.is_alive():  # stopped already (a test stopped it to start another)
            return
        try:
            self._run(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


def settings_for(telegram, redis_url: str, **limits) -> Settings:
    return Settings(token=telegram.token, redis_url=redis_url, telegram_api=telegram.api_root,
                    limits=Limits(**limits))


def gray_photo(w: int = 320, h: int = 240, seed: int = 0, fmt: str = "JPEG") -> bytes:
    """A grayscale photo with structure (gradients and shapes), as bytes."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = 0.5 + 0.3 * np.sin(x / 17.0) * np.cos(y / 23.0) + 0.05 * rng.standard_normal((h, w))
    img[h // 4: h // 2, w // 3: w // 2] = 0.9
    arr = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, "L").save(buf, fmt)
    return buf.getvalue()


def lightness(img: Image.Image) -> np.ndarray:
    from skimage.color import rgb2lab

    return rgb2lab(np.asarray(img.convert("RGB")))[..., 0]


def chroma(img: Image.Image) -> np.ndarray:
    from skimage.color import rgb2lab

    lab = rgb2lab(np.asarray(img.convert("RGB")))
    return np.hypot(lab[..., 1], lab[..., 2])


# --- fixtures for end-to-end tests (import them into a test module to use them) ---------------


SHARED_STYLES = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "styles")


def model_config(standin_weights, cache_dir, **changes):
    """The models as the tests run them: stand-in weights, the shared preset paintings, CPU, small styles."""
    from models.config import ModelConfig

    return ModelConfig(
        device="cpu", cache_dir=cache_dir, styles_dir=Path(SHARED_STYLES).resolve(), style_max_size=128,
        colorize_engine="eccv16", style_engine="adain",
        weight_overrides={"colorization_release_v2-9b330a0b.pth": standin_weights["eccv16"],
                          "vgg_normalised.pth": standin_weights["adain_vgg_normalised"],
                          "decoder.pth": standin_weights["adain_decoder"],
                          "FT_Epoch_latest.pt": standin_weights["scratch_detection"],
                          "big-lama.pt": standin_weights["big_lama"]}).replace(**changes)


@pytest.fixture(scope="session")
def worker_models(standin_weights, tmp_path_factory):
    """The worker's engines, loaded once per test session from stand-in weights (as a worker loads them once)."""
    from models.device import pick_device
    from worker.runtime import Engines

    config = model_config(standin_weights, tmp_path_factory.mktemp("cache"))
    engines = Engines(pick_device(config.device), config).load_defaults()
    engines.get("gatys", "style")
    return engines


def write_shared_standin(path: Path, shapes: dict, seed: int) -> Path:
    """A checkpoint of the shared stand-in rule (../shared/weights/standin.py) for a layout."""
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent / "shared" / "weights"))
    from standin import make_standin

    torch.save({k: torch.from_numpy(v) for k, v in make_standin(shapes, seed).items()}, path)
    return path


def write_chromagan_standin(path: Path, seed: int) -> Path:
    """A ChromaGAN .h5 with the groups, attributes, names, order, shapes and dtypes of the authors' Keras file
    (shared/weights/chromagan.json), compact: arrays of more than a million values are left unwritten (HDF5 reads
    them back as zeros and stores nothing), so it takes ~10 MB, not 685 MB. For tests of loading, downloading and
    the call shape; the golden test writes the full stand-in with the shared script."""
    import json

    import h5py

    doc = json.loads((Path(__file__).resolve().parent.parent.parent / "shared" / "weights" /
                      "chromagan.json").read_text())
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent / "shared" / "weights"))
    from standin import make_standin

    shapes = doc["checkpoints"]["generator"]["state_dict"]
    values = make_standin({k: s for k, s in shapes.items() if np.prod(s) <= 1_000_000}, seed)
    weight_names = {layer["name"]: layer["weight_names"] for layer in doc["layers"]}
    order = doc["h5_structure"]["layer_names_order"]

    def text(obj, key, value):
        obj.attrs.create(key, data=value.encode("ascii"), dtype=h5py.string_dtype("ascii"))

    with h5py.File(path, "w") as f:
        for key, value in (("keras_version", "2.2.4"), ("backend", "tensorflow"),
                           ("model_config", doc["h5_structure"]["h5_model_config"]),
                           ("training_config", doc["h5_structure"]["root_attrs"]["training_config"])):
            text(f, key, value)
        weights = f.create_group("model_weights")
        weights.attrs["layer_names"] = np.array([n.encode() for n in order])
        text(weights, "backend", "tensorflow")
        text(weights, "keras_version", "2.2.4")
        for layer in order:
            group = weights.create_group(layer)
            names = weight_names[layer]
            group.attrs["weight_names"] = np.array([n.encode() for n in names]) if names else np.array([])
            for name in names:
                key = f"{layer}/{name}"
                if key in values:
                    group.create_dataset(name, data=values[key])
                else:
                    group.create_dataset(name, shape=shapes[key], dtype="float32")
    return path


class Service(SimpleNamespace):
    """The whole path for one test: fake Telegram, real Redis, the bot polling, workers on demand."""

    def queued(self) -> int:
        return self.redis.llen(f"rq:queue:{self.settings.queue_name}")

    def wait_queued(self, n: int, timeout: float = 10) -> None:
        """The bot says "Queued" just before it enqueues: wait for the queue to catch up."""
        import time

        deadline = time.monotonic() + timeout
        while self.queued() < n:
            assert time.monotonic() < deadline, f"{self.queued()} jobs queued, expected {n}"
            time.sleep(0.02)

    def run_worker(self) -> None:
        """One RQ worker in burst mode: processes everything queued, then returns."""
        from worker.main import make_worker

        make_worker(self.settings, self.runtime.redis, publish=self.runtime.publish).work(burst=True,
                                                                                       with_scheduler=False)


@pytest.fixture
def bot_service(telegram, redis_url):
    """The bot alone (no worker): what users are told, what is queued."""
    import redis

    from bot.contract import records
    from models.style import presets

    settings = settings_for(telegram, redis_url)
    conn = redis.Redis.from_url(redis_url)
    records.publish(conn, [], presets.names())  # the presets, as every worker publishes them when it starts
    bot = BotThread(settings).start()
    try:
        yield Service(telegram=telegram, settings=settings, bot=bot, redis=conn)
    finally:
        bot.stop()


@pytest.fixture
def service(bot_service, worker_models):
    from bot.contract import records
    from models.style import presets
    from worker import runtime
    from worker.telegram import FloodGate, Telegram

    svc, conn = bot_service, bot_service.redis
    svc.runtime = runtime.Runtime(svc.settings, worker_models.config, worker_models.device, conn,
                                  Telegram(svc.settings, FloodGate(conn)), worker_models)
    records.publish(conn, worker_models.runnable(), presets.names())
    runtime.install(svc.runtime)
    try:
        yield svc
    finally:
        runtime.install(None)


@pytest.fixture
def engines_with(service, monkeypatch):
    """`engines_with(files, settings)`: the service's worker may load more engines on first use, from these
    weight files (name -> path) with these engine settings; the worker's engine set is restored afterwards."""
    engines = service.runtime.engines
    monkeypatch.setattr(engines, "_loaded", dict(engines._loaded))

    def extend(files: dict, settings: dict | None = None):
        config = engines.config.replace(weight_overrides={**engines.config.weight_overrides, **files},
                                        engine_settings={**engines.config.engine_settings, **(settings or {})})
        monkeypatch.setattr(engines, "config", config)
        return service
    return extend


def operator_env() -> dict[str, str]:
    """This process's environment without the TORCHINDUCTOR_CACHE_DIR that importing torch._dynamo wrote into it:
    a worker started from it picks its compiled kernels' folder as from an operator's (worker/main.py
    compile_cache), beside its model cache."""
    return {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"}


@pytest.fixture
def worker_env(telegram, standin_weights, tmp_path):
    def env(redis_url):
        return {**operator_env(),
                "TELEGRAM_BOT_TOKEN": telegram.token, "PAINTBOT_TELEGRAM_API": telegram.api_root,
                "REDIS_URL": redis_url, "PAINTBOT_DEVICE": "cpu", "PAINTBOT_TORCH_THREADS": "1",
                "PAINTBOT_COLORIZE_MODEL": "eccv16", "PAINTBOT_COLORIZE_WEIGHTS": str(standin_weights["eccv16"]),
                "PAINTBOT_ADAIN_ENCODER_WEIGHTS": str(standin_weights["adain_vgg_normalised"]),
                "PAINTBOT_ADAIN_DECODER_WEIGHTS": str(standin_weights["adain_decoder"]),
                "PAINTBOT_SCRATCH_WEIGHTS": str(standin_weights["scratch_detection"]),
                "PAINTBOT_LAMA_WEIGHTS": str(standin_weights["big_lama"]),
                "PAINTBOT_STYLES_DIR": os.path.abspath(SHARED_STYLES), "PAINTBOT_CACHE_DIR": str(tmp_path / "cache"),
                "PAINTBOT_STYLE_MAX_SIZE": "112",
                # torch, not the service's auto: each worker here has a fresh cache, so OpenVINO would trace
                # every start (seconds each); tests/test_runtime.py proves the OpenVINO path.
                "PAINTBOT_RUNTIME": "torch"}
    return env


class Workers:
    def __init__(self, env, tmp_path):
        self.env, self.tmp_path, self.procs = env, tmp_path, []

    def start(self, name: str, *args: str) -> subprocess.Popen:
        """A `paintbot-worker` process; `start("scheduler", "--scheduler")` runs RQ's scheduler."""
        log = open(self.tmp_path / f"{name}.log", "w")
        p = subprocess.Popen([sys.executable, "-m", "worker.main", "--name", name, *args], env=self.env,
                             stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text()

    def stop_all(self):
        """Stop every process, then hold their logs to the promise that no secret is ever written: the token,
        its secret half and its URL-encoded form (whatever fault the test injected)."""
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        token = self.env["TELEGRAM_BOT_TOKEN"]
        forms = (token, token.split(":", 1)[1], urllib.parse.quote(token, safe=""))
        for log in sorted(self.tmp_path.glob("*.log")):
            text = log.read_text(errors="replace")
            assert not [f for f in forms if f in text], f"{log.name} shows the bot's token"


class WebThread:
    """`paintbot-web` (bot/web/server.py), the real tornado server, in its own thread and event loop on a free port."""

    def __init__(self, settings: Settings, **app_options):
        self.settings, self.app_options = settings, app_options
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="web", daemon=True)
        self.port = None

    def start(self) -> "WebThread":
        import tornado.httpserver
        import tornado.netutil

        from bot.web.server import MAX_BODY, make_app

        async def listen():
            sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
            self.server = tornado.httpserver.HTTPServer(make_app(self.settings, **self.app_options),
                                                        max_body_size=MAX_BODY, xheaders=True)
            self.server.add_sockets(sockets)
            return sockets[0].getsockname()[1]

        self.thread.start()
        self.port = asyncio.run_coroutine_threadsafe(listen(), self.loop).result(10)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def post(self, path: str, body: dict | bytes) -> tuple[int, bytes, str]:
        """(status, body, content type) of a POST of `body` (JSON) to the server."""
        import json
        import urllib.error
        import urllib.request

        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as r:
                return r.status, r.read(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            return e.code, e.read(), e.headers.get("Content-Type", "")

    def get(self, path: str) -> tuple[int, bytes, str]:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(self.url + path, timeout=30) as r:
                return r.status, r.read(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            return e.code, e.read(), e.headers.get("Content-Type", "")

    def stop(self) -> None:
        async def close():
            self.server.stop()
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def init_data(token: str, user: dict, auth_date: float | None = None, **extra) -> str:
    """Telegram.WebApp.initData as Telegram signs it, written out here from the Bot API's words ("Validating data
    received via the Mini App") rather than with the code under test: data_check_string = the fields but `hash`,
    sorted by key, as key=value joined by newlines; secret_key = HMAC_SHA256(<bot token>, key "WebAppData");
    hash = hex(HMAC_SHA256(data_check_string, key secret_key))."""
    import hashlib
    import hmac
    import json
    import time

    fields = {"user": json.dumps(user, separators=(",", ":")), "auth_date": str(int(auth_date or time.time())),
              "query_id": "AAHdF6IQAAAAAN0XohDhrOrc", **{k: str(v) for k, v in extra.items()}}
    check = "\n".join(f"{k}={fields[k]}" for k in sorted(fields))
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    fields["hash"] = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    return urllib.parse.urlencode(fields)


def wait_until(predicate, timeout: float, what: str) -> None:
    """Poll `predicate` every 0.2 s until it holds; fail the test naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.2)
