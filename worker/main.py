"""`paintbot-worker`: an RQ worker on the `paintbot` queue.

The models are loaded once, in this process, before the first job. Jobs run in this same
process (RQ's SimpleWorker): RQ's default worker forks a child per job, and a process
must never fork after CUDA is initialised. For the same reason, RQ's scheduler (which
re-enqueues retries after their back-off, and forks) runs inside CPU workers only; with
CUDA workers run one `paintbot-worker --scheduler` beside them (deploy/ does).
"""

from __future__ import annotations

import argparse
import logging
import sys

import redis
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer

from bot import logs
from bot.settings import ConfigError, Settings

log = logging.getLogger("paintbot.worker")


def make_worker(settings: Settings, conn: redis.Redis, name: str | None = None) -> SimpleWorker:
    queue = Queue(settings.queue_name, connection=conn, serializer=JSONSerializer)
    return SimpleWorker([queue], connection=conn, serializer=JSONSerializer, name=name)


def run_scheduler(settings: Settings, conn: redis.Redis) -> None:
    from rq.scheduler import RQScheduler

    RQScheduler([settings.queue_name], connection=conn, serializer=JSONSerializer).work()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="paintbot-worker", description=__doc__.splitlines()[0])
    p.add_argument("--burst", action="store_true", help="quit when the queue is empty")
    p.add_argument("--name", help="worker name (default: RQ's)")
    p.add_argument("--scheduler", action="store_true",
                   help="run only RQ's scheduler (retries after back-off); needed beside CUDA workers")
    args = p.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"paintbot-worker: {exc}", file=sys.stderr)
        return 2
    logs.setup(settings.secrets)
    conn = redis.Redis.from_url(settings.redis_url)
    if args.scheduler:
        run_scheduler(settings, conn)
        return 0

    from models.device import pick_device, set_threads
    from worker import runtime

    set_threads()
    device = pick_device()
    runtime.install(runtime.Runtime.load(settings, device))
    worker = make_worker(settings, conn, args.name)
    worker.work(burst=args.burst, with_scheduler=device.type != "cuda", logging_level=logging.getLevelName(
        logging.getLogger().level))
    return 0


if __name__ == "__main__":
    sys.exit(main())
