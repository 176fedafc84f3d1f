"""Instant repeats: the time from a repeated photo's update to the bot's reply from the result cache.

    .venv/bin/python bench/cache.py [--repeat 50]

The real bot (python-telegram-bot, long polling) against the fake Bot API and a real redis-server, all on
loopback; no worker runs, because a cached answer needs none. A photo's result is put in the cache as a
worker leaves it (bot/contract/cache.py), then the same photo is forwarded again and again; each time the figure
is from the update being offered to the bot to the fake server receiving the sendPhoto that carries the
cached file_id. Goal: under 300 ms at the median on loopback.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bot.contract import cache, records  # noqa: E402
from bot.contract.job import Op  # noqa: E402
from bot.contract.options import ColorizeOptions, EngineInfo  # noqa: E402
from tests.conftest import RedisServer  # noqa: E402
from tests.fake_telegram import FakeTelegram  # noqa: E402
from tests.harness import BotThread, gray_photo, settings_for  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=50)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        try:
            with FakeTelegram() as tg:
                return _run(tg, server.url, args.repeat)
        finally:
            server.stop()


def _run(tg: FakeTelegram, redis_url: str, repeat: int) -> int:
    conn = redis.Redis.from_url(redis_url)
    records.publish(conn, [EngineInfo("eccv16", "colorize", "Zhang et al. (ECCV 2016)", default=True,
                                      weights="bench")], styles=())
    settings = settings_for(tg, redis_url)
    bot = BotThread(settings).start()
    try:
        chat = tg.private_chat(4242)
        photo = tg.user_sends_photo(chat, gray_photo(640, 480))
        tg.wait_for("sendMessage")  # "Queued": nothing is cached yet (no worker runs here)
        largest = photo["photo"][-1]
        unique_id = largest["file_unique_id"]
        key = cache.key(unique_id, Op.COLORIZE, ColorizeOptions(), "eccv16", "bench")
        cache.store(conn, key, cache.Cached(largest["file_id"], False, "eccv16"), ttl=3600)  # as a worker would
        times = []
        for i in range(repeat):
            t0 = time.time()
            tg.user_forwards(chat, photo)
            (call,) = tg.wait_for("sendPhoto", count=i + 1)[i:]
            assert call.params["photo"] == largest["file_id"], "answered from the cache"
            times.append((call.at - t0) * 1000)
        assert conn.llen(f"rq:queue:{settings.queue_name}") == 1, "only the first request was queued"
    finally:
        bot.stop()
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    print(f"cached repeat, update -> sendPhoto by file_id ({repeat} repeats, loopback): "
          f"median {statistics.median(times):.1f} ms, p95 {p95:.1f} ms, max {times[-1]:.1f} ms (goal < 300 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
