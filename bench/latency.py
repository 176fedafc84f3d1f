"""Update-to-result latency of a photo when the queue is empty, against the colouriser alone.

Why: the path around the model (the bot's answer, the queue, the worker's Bot API calls) is pure
waiting for the user. This drives the whole service as it runs, on loopback: the fake Bot API
server (tests/fake_telegram.py), a real redis-server, the real bot Application polling it and
real `paintbot-worker` processes (one, then two), with eccv16 on stand-in weights (or the real
ones: --weights PATH). Each request is a 640x480 photo from a chat of its own (so the per-chat
flood gate never waits), sent when the previous result is back: the queue is always empty.

Update-to-result: from the moment the user's photo is available to the bot (the fake server
holds the update) to the moment the result's upload (sendPhoto) arrives there. The model alone: the same engine, in this
process, with the workers' thread count, on the same photo (decode + model + encode). On a
shared machine both swing by more than the path around the model costs, so the overhead is also
taken per request, exactly: update-to-result minus that job's own decode + model + encode time,
from the worker's log line for it.

With --rtt S every Bot API call the path makes (not the long poll that brings the update) is
answered S seconds late, as from a server that far from Telegram's: loopback hides what each
round trip on the path costs.

    .venv/bin/python bench/latency.py [--requests 20] [--threads 1] [--weights PATH] [--rtt 0.03]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import SHARED, RedisServer  # noqa: E402
from tests.fake_telegram import FakeTelegram  # noqa: E402
from tests.harness import BotThread, Workers, gray_photo, settings_for  # noqa: E402


def percentiles(xs: list[float]) -> tuple[float, float]:
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]
    return statistics.median(xs), p95


def model_alone(weights: Path, photo: bytes, n: int, threads: int) -> list[float]:
    import torch

    from models import engines as registry
    from models import imageio
    from models.config import ModelConfig

    torch.set_num_threads(threads)
    config = ModelConfig(device="cpu", colorize_engine="eccv16",
                         weight_overrides={"colorization_release_v2-9b330a0b.pth": weights})
    engine = registry.load("eccv16", "colorize", torch.device("cpu"), config)
    times = []
    for i in range(n + 2):
        t0 = time.perf_counter()
        img = imageio.decode(photo)
        out = engine(img)
        imageio.encode(out, "JPEG", quality=92, made_from=img)
        if i >= 2:  # the first runs warm the allocator up, as a worker's first jobs do
            times.append(time.perf_counter() - t0)
    return times


PATH_METHODS = ("sendMessage", "editMessageText", "deleteMessage", "sendChatAction", "getFile", "download",
                "sendPhoto", "sendDocument", "getMe")
STAGE = re.compile(r"job=pb-(-?\d+)-(\d+) .*outcome=ok (.*)$")


def compute_times(logs: str) -> dict[tuple[int, int], float]:
    """(chat, message) -> seconds of decode + model + encode, from the workers' job log lines."""
    found = {}
    for line in logs.splitlines():
        m = STAGE.search(line)
        if m:
            stages = dict(kv.split("=") for kv in m.group(3).split())
            found[int(m.group(1)), int(m.group(2))] = sum(float(stages.get(k, "0s")[:-1])
                                                          for k in ("decode", "model", "encode"))
    return found


def service_run(tg: FakeTelegram, photo: bytes, n: int, first_chat: int) -> tuple[list[tuple], int]:
    """n photos one after another; returns (chat, message, update-to-result time) and how many
    "Queued" texts were sent."""
    times = []
    for i in range(n + 2):
        time.sleep(0.3)  # the worker finishes its bookkeeping after the upload: the queue is empty and idle
        chat = tg.private_chat(first_chat + i)
        msg = tg.user_sends_photo(chat, photo)
        t0 = tg.pushed_at[tg.last_update()["update_id"]]  # not counting the fake's own work to make the update
        (sent,) = tg.wait_for(lambda c: c.method == "sendPhoto" and c.chat_id == chat["id"], timeout=60)
        assert sent.reply_to == msg["message_id"]
        if i >= 2:
            times.append((chat["id"], msg["message_id"], sent.at - t0))
    queued = sum(1 for c in tg.calls("sendMessage") if c.params.get("text", "").startswith("Queued"))
    return times, queued


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=20)
    p.add_argument("--threads", type=int, default=1, help="torch threads of each worker (and of the model alone)")
    p.add_argument("--weights", type=Path, help="eccv16 weights (default: a stand-in with the official layout)")
    p.add_argument("--rtt", type=float, default=0.0, help="seconds each Bot API call on the path takes (default 0)")
    args = p.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="paintbot-latency-"))
    weights = args.weights
    if weights is None:
        from tests.standins import write_standin

        weights = write_standin("eccv16", tmp / "eccv16.pth")
    photo = gray_photo(640, 480)

    alone = model_alone(weights, photo, args.requests, args.threads)
    m50, m95 = percentiles(alone)
    if args.rtt:
        print(f"every Bot API call on the path answered {args.rtt * 1000:.0f} ms late")
    print(f"model alone (decode+eccv16+encode, 640x480, {args.threads} thread): "
          f"p50 {m50 * 1000:.0f} ms  p95 {m95 * 1000:.0f} ms")

    redis_server = RedisServer(tmp)
    redis_server.start()
    env = {**os.environ, "PAINTBOT_DEVICE": "cpu", "PAINTBOT_TORCH_THREADS": str(args.threads),
           "PAINTBOT_COLORIZE_MODEL": "eccv16", "PAINTBOT_COLORIZE_WEIGHTS": str(weights),
           "PAINTBOT_STYLES_DIR": str(SHARED / "styles"), "PAINTBOT_CACHE_DIR": str(tmp / "cache"),
           "PAINTBOT_LOG_LEVEL": "INFO"}
    try:
        for n_workers in (1, 2):
            import redis

            redis.Redis.from_url(redis_server.url).flushall()
            with FakeTelegram() as tg:
                for method in PATH_METHODS if args.rtt else ():
                    tg.delay(method, args.rtt)
                # Style engines stay on their defaults' stand-ins: only colourisation is measured.
                from tests.standins import write_standin

                for name, var in (("adain_vgg_normalised", "PAINTBOT_ADAIN_ENCODER_WEIGHTS"),
                                  ("adain_decoder", "PAINTBOT_ADAIN_DECODER_WEIGHTS")):
                    path = tmp / f"{name}.pth"
                    if not path.exists():
                        write_standin(name, path)
                    env[var] = str(path)
                wenv = {**env, "TELEGRAM_BOT_TOKEN": tg.token, "PAINTBOT_TELEGRAM_API": tg.api_root,
                        "REDIS_URL": redis_server.url}
                workers = Workers(wenv, tmp)
                bot = BotThread(settings_for(tg, redis_server.url)).start()
                try:
                    for w in range(n_workers):
                        workers.start(f"bench-{n_workers}-{w}")
                    deadline = time.monotonic() + 120
                    conn = redis.Redis.from_url(redis_server.url)
                    while conn.scard("rq:workers:paintbot") < n_workers:  # every worker has loaded its models
                        assert time.monotonic() < deadline, "workers did not start"
                        time.sleep(0.2)
                    time.sleep(1.0)
                    runs, queued = service_run(tg, photo, args.requests, 50_000 + 1000 * n_workers)
                    time.sleep(0.5)  # the job's log line follows its upload
                finally:
                    bot.stop()
                    workers.stop_all()
            computed = compute_times("".join(workers.log(f"bench-{n_workers}-{w}") for w in range(n_workers)))
            s50, s95 = percentiles([t for _, _, t in runs])
            o50, o95 = percentiles([t - computed[c, m] for c, m, t in runs])
            print(f"{n_workers} worker{'s' if n_workers > 1 else ' '}: update-to-result p50 {s50 * 1000:.0f} ms  "
                  f"p95 {s95 * 1000:.0f} ms  (+{(s50 - m50) * 1000:.0f} ms over the model alone at p50); "
                  f"around the job's own compute: p50 {o50 * 1000:.0f} ms  p95 {o95 * 1000:.0f} ms; "
                  f"{queued} \"Queued\" messages for {args.requests + 2} photos")
    finally:
        redis_server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
