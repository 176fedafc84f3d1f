"""What a worker process holds for its whole life: its engines, the Telegram client, Redis.

Built once by `paintbot-worker` before the first job, then used by every job the process runs.
Each family's default engine is loaded at start (so a missing file is found then, not by the first
user's job); an engine a job names is loaded on first use and kept, so no model is ever loaded twice
in a process.

A family whose default cannot be loaded (no network on a first start, a file missing from the offline
folder) does not stop the worker: it says so in one line and is not offered, and the worker serves the
families it has. Stopping would take the whole service down for one missing model (deploy/local.sh
stops everything when a process ends), and a person could not tell "only model X is missing" from
"the bot is broken". What the worker publishes is only what it can run (`runnable`), so the bot
answers a family nobody offers with "not available on this bot right now" (bot/submit.py).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import redis
import torch

from bot.contract import records
from bot.contract.options import EngineInfo
from bot.contract.settings import Settings
from models import engines as registry
from models import weights
from models.config import ModelConfig
from models.engine import Engine
from models.fetch import FetchError
from worker import metrics
from worker.telegram import FloodGate, Telegram

log = logging.getLogger("paintbot.worker")


class Engines:
    """The engines of one worker process, loaded once each, by name."""

    def __init__(self, device: torch.device, config: ModelConfig):
        self.device, self.config = device, config
        self.defaults: dict[str, Engine] = {}
        self.missing: dict[str, str] = {}  # family -> why its default could not be loaded (not offered)
        self._loaded: dict[str, Engine] = {}
        self._lock = threading.Lock()

    def load_defaults(self) -> "Engines":
        """Load each family's default; a family whose files cannot be had is left out, said in one line."""
        for family in registry.FAMILIES:
            try:
                engine = registry.load(None, family, self.device, self.config)
            except FetchError as exc:
                self.missing[family] = str(exc)
                log.error("%s is not offered by this worker: %s", family, exc)
                continue
            self.defaults[family] = self._loaded[engine.name] = engine
        return self

    def get(self, name: str | None, family: str, reference: bool = False) -> Engine:
        """Engine `name` of `family` (None: the family's default, or with a `reference` photo the engine
        that colours like one). Raises UnknownEngine, or FetchError when its files cannot be had."""
        name = name or (registry.reference_engine(family) if reference else None)
        if name is None:
            if family not in self.defaults:
                raise FetchError(f"no {family} engine on this worker: {self.missing.get(family, 'none loaded')}")
            return self.defaults[family]
        cls = registry.get(name, family)
        with self._lock:
            if cls.name not in self._loaded:
                self._loaded[cls.name] = registry.load(cls.name, family, self.device, self.config)
            return self._loaded[cls.name]

    def step(self, name: str, family: str) -> Engine | None:
        """Engine `name` for an optional step of a job (/restore's faces and upscale), loaded (or fetched, when
        downloads are allowed) as `get` does; None when its files cannot be had here: the step is skipped, the
        caption does not claim it, and the job goes on."""
        try:
            return self.get(name, family)
        except FetchError as exc:
            log.warning("%s skipped: %s", name, exc)
            return None

    def ready(self, name: str, family: str) -> Engine | None:
        """Engine `name` when it is loaded or its files are here (then it is loaded); None otherwise, without
        a download: for checks made on the side of another job (a colourisation asking whether "Enhance"
        would find faces)."""
        cls = registry.get(name, family)
        if cls.name not in self._loaded and not cls.files_present(self.config):
            return None
        return self.step(name, family)

    def runnable(self) -> list[EngineInfo]:
        """What this worker can run: engines already loaded, those whose files are here, and, when
        downloads are allowed (no offline folder) and worked (every family's default loaded), every
        registered engine. A worker that could not download its defaults offers nothing it would have
        to download."""
        online = self.config.weights_dir is None and not self.missing
        defaults = {e.name for e in self.defaults.values()}
        return [EngineInfo(e.name, e.family, e.label, e.aliases, e.needs_reference, e.name in defaults,
                           weights.identity(e.files, self.config)) for e in registry.ENGINES
                if online or e.name in self._loaded or e.files_present(self.config)]

    def summary(self) -> str:
        """What this worker runs, for the operator: "colorize ddcolor-tiny (cpu, bfloat16), style adaattn
        (cpu, bfloat16 in OpenVINO)", each family it could not load named as not offered."""
        def precision(e: Engine) -> str:
            return str(e.dtype).removeprefix("torch.") + (f" in {e.runs_in}" if e.runs_in != "torch" else "")

        said = [f"{f} {e.name} ({e.device}, {precision(e)})" for f, e in self.defaults.items()]
        return ", ".join(said + [f"{f}: not offered (files missing)" for f in self.missing])

    def weights_of(self, engine: Engine) -> str | None:
        """What the result cache keys an engine's results on (as published in `runnable`)."""
        return weights.identity(engine.files, self.config)


@dataclass
class Runtime:
    settings: Settings
    models: ModelConfig
    device: torch.device
    redis: redis.Redis
    telegram: Telegram
    engines: Engines

    @classmethod
    def load(cls, settings: Settings, models: ModelConfig, device: torch.device, conn: redis.Redis) -> "Runtime":
        t0 = time.perf_counter()
        engines = Engines(device, models).load_defaults()
        load_time = time.perf_counter() - t0
        metrics.MODEL_LOAD_SECONDS.set(load_time)
        log.info("models loaded on %s in %.1f s: %s", device, load_time, engines.summary())
        rt = cls(settings, models, device, conn, Telegram(settings, FloodGate(conn)), engines)
        rt.publish()
        return rt

    def publish(self) -> None:
        """Tell the bot what this worker runs: its engines and the preset styles (bot/contract/records.py).
        Done at start, and again whenever Redis has lost it (worker/main.py, with the heartbeat)."""
        from models.style import presets

        records.publish(self.redis, self.engines.runnable(), presets.names())


_current: Runtime | None = None


def install(rt: Runtime | None) -> None:
    global _current
    _current = rt


def current() -> Runtime:
    if _current is None:
        raise RuntimeError("no worker runtime: start workers with `paintbot-worker`")
    return _current
