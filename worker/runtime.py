"""What a worker process holds for its whole life: models, the Telegram client, Redis.

Built once by `paintbot-worker` before the first job (models are never loaded per job),
then used by every job the process runs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis
import torch

from bot.settings import Settings
from worker import metrics
from worker.telegram import FloodGate, Telegram

log = logging.getLogger("paintbot.worker")


@dataclass
class Runtime:
    settings: Settings
    device: torch.device
    redis: redis.Redis
    telegram: Telegram
    colorizer: object  # models.colorize.load(...)
    stylizer: object  # models.style.load(...): the configured engine (adain by default)
    hq_stylizer: object  # the gatys optimisation, for `/style NAME hq`

    @classmethod
    def load(cls, settings: Settings, device: torch.device | None = None) -> "Runtime":
        from models import colorize, style
        from models.device import pick_device

        device = device or pick_device()
        t0 = time.perf_counter()
        colorizer = colorize.load(device=device)
        stylizer = style.load(device=device)
        hq = stylizer if stylizer.engine == "gatys" else style.load("gatys", device=device)
        load_time = time.perf_counter() - t0
        metrics.MODEL_LOAD_SECONDS.set(load_time)
        log.info("models loaded on %s in %.1f s (style engine %s)", device, load_time, stylizer.engine)
        conn = redis.Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5)
        return cls(settings, device, conn, Telegram(settings, FloodGate(conn)), colorizer, stylizer, hq)


_current: Runtime | None = None


def install(rt: Runtime) -> None:
    global _current
    _current = rt


def current() -> Runtime:
    if _current is None:
        raise RuntimeError("no worker runtime: start workers with `paintbot-worker`")
    return _current
