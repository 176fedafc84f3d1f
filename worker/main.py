"""`paintbot-worker`: an RQ worker on the `paintbot` queue.

The models are loaded once, in this process, before the first job. Jobs run in this same
process (RQ's SimpleWorker): RQ's default worker forks a child per job, and a process
must never fork after CUDA is initialised. RQ's scheduler (which re-enqueues retries after
their back-off) would also be forked from the worker, and a forked child keeps the parent's
Redis sockets open: after the worker is killed, its blocked BLMOVE lives on in Redis and
swallows the next job. So no worker forks anything: one `paintbot-worker --scheduler`
runs as its own process beside the workers (deploy/local.sh and deploy/ start it).

Both wait out a Redis outage instead of exiting (`connect`): RQ retries its own dequeue, but
a job's bookkeeping, our result delivery and the scheduler's loop would otherwise die on the
first refused connection, throwing away a finished result.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from rq import Queue, SimpleWorker, worker_registration
from rq.serializers import JSONSerializer
from rq.worker import WorkerStatus

from bot.contract import health, keys, logs, readiness
from bot.contract.settings import Settings, at_start
from models.config import default_cache_dir  # light: no torch

log = logging.getLogger("paintbot.worker")


HEARTBEAT_EVERY = 10  # seconds between heartbeats while a job runs
HEARTBEAT_TTL = 45  # a worker silent this long is dead: its job is retried or the user told
MAINTENANCE_EVERY = 30  # how often some worker looks for such abandoned jobs
REDIS_BACKOFF_CAP = 5.0  # seconds between attempts to reach Redis, at most, while it is away
COMMANDS_POLL = 1.0  # seconds RQ's command listener waits for a message before it looks whether to stop
READY_TTL = 24 * 3600  # the "ready" record of a worker killed without a goodbye lapses after this
SPIN_COUNT = "10000"  # OpenMP threads spin this long for work, then sleep (GOMP_SPINCOUNT); see `wait_policy`


class _Routine(logging.Filter):
    """RQ's "cleaning registries" lines, every MAINTENANCE_EVERY s of an idle worker, are routine: DEBUG, not INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and str(record.msg).startswith("Worker %s: cleaning "):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


# Error replies that say "not now" rather than "never": memory full under noeviction (OOM), the disk
# refusing the snapshot or the AOF (MISCONF), a failover that made this server a replica (READONLY, and
# UNBLOCKED for a blocking dequeue), a server still loading its data (LOADING) or without a master. The
# same command succeeds once Redis takes writes again; any other error reply is a real error, raised.
TRANSIENT_REPLIES = frozenset({"OOM", "MISCONF", "READONLY", "UNBLOCKED", "LOADING", "MASTERDOWN", "TRYAGAIN"})


def transient(error: Exception) -> bool:
    """Whether a failed Redis command is worth repeating: a lost connection, or a transient error reply."""
    return not isinstance(error, redis.ResponseError) or getattr(error, "status_code", None) in TRANSIENT_REPLIES


class _Patient(ExponentialBackoff):
    """redis-py's exponential back-off, telling the log when a command starts waiting for Redis."""

    def compute(self, failures: int) -> float:
        delay = super().compute(failures)
        if failures == 1 or failures % 12 == 0:  # then about once a minute
            log.warning("Redis unavailable (attempt %d): retrying until it takes commands again", failures)
        return delay


def connect(redis_url: str) -> redis.Redis:
    """A Redis client whose every command waits for Redis to come back (redis-py's retry, forever,
    with back-off) instead of raising: while Redis is away, full, read-only or unable to persist, a worker
    or the scheduler has nothing else to do, and a command that fails half-way through a job would lose
    the job's result (RQ quits its loop on an error it does not expect: the whole fleet went down on one
    `OOM command not allowed`)."""
    retry = Retry(_Patient(cap=REDIS_BACKOFF_CAP, base=0.25), retries=-1,
                  supported_errors=(redis.ConnectionError, redis.TimeoutError, redis.ResponseError),
                  is_retryable=transient)
    return redis.Redis.from_url(redis_url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30,
                                retry=retry)


def _probe(redis_url: str) -> redis.Redis:
    """A client for /healthz and the queue-depth gauge, which must answer at once, Redis or not."""
    return redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2, retry=None)


class PaintbotWorker(SimpleWorker):
    """A SimpleWorker (jobs run in this process, no fork) that keeps its heartbeat while a job runs.

    RQ's SimpleWorker heartbeats only between jobs, so a job's registry entry must outlive the
    whole job timeout and a killed worker's job sits in limbo for minutes. Here a thread renews
    the heartbeat every HEARTBEAT_EVERY s with a short TTL, so a dead worker is noticed within
    HEARTBEAT_TTL + MAINTENANCE_EVERY s and RQ retries its job (or fails it, and the user is told).

    It also keeps its idle mark (bot/contract/readiness.py): set on every heartbeat while it waits for a job,
    dropped while it runs one and when it stops, so the bot knows whether a new job is taken at once.

    And it notices when Redis has forgotten it (restarted without persistence, flushed, a failover to an
    empty replica): RQ's heartbeat only renews keys, so the worker would stay out of `rq:workers` and the
    engines it runs unpublished - /stats would say "Workers: 0" and the bot could not resolve an engine.
    Each idle heartbeat (and the end of each job) checks, and registers it and publishes its engines again.
    """

    _running_job = False
    publish: Callable[[], None] | None = None  # says what this worker runs (worker/runtime.py Runtime.publish)

    def heartbeat(self, timeout=None, pipeline=None):
        super().heartbeat(timeout, pipeline=pipeline)
        if not self._running_job:
            readiness.idle(pipeline if pipeline is not None else self.connection, self.name)
            if pipeline is None:
                self.make_known()

    def subscribe(self):
        """RQ's listener for commands sent to this worker (its pub/sub channel), polling every COMMANDS_POLL s
        instead of RQ's 60: stopping the worker (Ctrl-C, SIGTERM) unsubscribes on the listener's connection,
        which waited for the listener's read, so a stop could hang for up to a minute after "warm shut down
        requested"."""
        self.log.info("Worker %s: subscribing to channel %s", self.name, self.pubsub_channel_name)
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(sleep_time=COMMANDS_POLL, daemon=True,
                                                       exception_handler=self._pubsub_exception_handler)

    def make_known(self) -> None:
        """Register this worker and publish its engines again if Redis has lost them."""
        with self.connection.pipeline(transaction=False) as p:
            p.sismember(self.redis_workers_keys, self.key)
            p.exists(keys.ENGINES, keys.STYLES)
            registered, published = p.execute()
        if registered and published == 2:
            return
        log.warning("Redis has forgotten this worker (restarted empty?): registering it and publishing its engines "
                    "again")
        with self.connection.pipeline() as p:
            p.hset(self.key, mapping=self.serialize())
            worker_registration.register(self, p)
            p.expire(self.key, self.worker_ttl + 60)
            p.execute()
        if self.publish is not None:
            self.publish()

    def register_death(self):
        readiness.busy(self.connection, self.name)
        self.connection.delete(keys.worker_ready(self.name))
        super().register_death()

    def get_heartbeat_ttl(self, job, working_time: float = 0.0) -> int:
        return HEARTBEAT_TTL

    def execute_job(self, job, queue) -> None:
        self._running_job = True
        readiness.busy(self.connection, self.name)
        execution = self.prepare_execution(job)
        stop = threading.Event()

        def beat():
            while not stop.wait(HEARTBEAT_EVERY):
                try:
                    self.maintain_heartbeats(job, execution)
                except Exception:  # Redis away for a moment: the next beat tries again
                    self.log.warning("heartbeat for job %s failed", job.id, exc_info=True)

        beater = threading.Thread(target=beat, name=f"heartbeat-{job.id}", daemon=True)
        beater.start()
        try:
            self.perform_job(job, queue, execution)
        finally:
            stop.set()
            beater.join()
            self._running_job = False
        self.set_state(WorkerStatus.IDLE)
        readiness.idle(self.connection, self.name)
        self.make_known()


def wait_policy(env: dict) -> str:
    """Make torch's OpenMP threads spin only briefly (GOMP_SPINCOUNT=10000) before they sleep while they
    wait for work, unless the operator chose (OMP_WAIT_POLICY, or GOMP_SPINCOUNT of their own); returns what
    holds. Set before torch loads: libgomp (torch's OpenMP on Linux) reads it once. Why: a worker shares its
    host with the bot, Redis, other workers; libgomp's default long spin then takes cores from all of them,
    and an inference slows several times over. ECCV16, 2 threads, on the 2-core Xeon beside 4 busy
    processes: 537 ms with the default spin, 191 ms passive (OMP_WAIT_POLICY=PASSIVE), 205 ms with this
    short spin; on the quiet machine 48 ms default, 53 ms passive, 48 ms short spin: the short spin costs
    nothing when the host is quiet and keeps most of the passive gain when it is not."""
    if "OMP_WAIT_POLICY" not in env and "GOMP_SPINCOUNT" not in env:
        env["GOMP_SPINCOUNT"] = SPIN_COUNT
    return f"OMP_WAIT_POLICY={env['OMP_WAIT_POLICY']}" if "OMP_WAIT_POLICY" in env else \
        f"GOMP_SPINCOUNT={env['GOMP_SPINCOUNT']}"


def compile_cache(env: dict, cache_dir: Path) -> str:
    """Where torch.compile keeps the kernels it builds (a worker races OpenVINO against compiled torch for ECCV16
    and SIGGRAPH17, models/runtime.py), so that a restart compiles from them (5 s against 22 s for SIGGRAPH17 on
    the Xeon): under the model cache, or the temporary folder where that is read-only (compose, Kubernetes),
    unless the operator chose (TORCHINDUCTOR_CACHE_DIR); returns it. Set before torch is imported: importing
    torch._dynamo writes inductor's default folder into the environment (torch 2.14), which would then pass for
    the operator's choice (it did: the first worker kept its kernels in /tmp/torchinductor_root)."""
    if "TORCHINDUCTOR_CACHE_DIR" not in env:
        folder = Path(cache_dir) / "inductor"
        if not writable(folder):
            folder = Path(tempfile.gettempdir()) / "paintbot-inductor"
        env["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
    return env["TORCHINDUCTOR_CACHE_DIR"]


def writable(folder: Path) -> bool:
    """Whether files can be made in `folder` (made if missing): a read-only mount refuses even root."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def make_worker(settings: Settings, conn: redis.Redis, name: str | None = None,
                publish: Callable[[], None] | None = None) -> PaintbotWorker:
    """The worker on the paintbot queue, taking the Mini App's previews first (their own queue: RQ looks at a
    worker's queues in order); `publish` says again what it runs when Redis has forgotten."""
    queues = [Queue(name, connection=conn, serializer=JSONSerializer)
              for name in (settings.preview_queue, settings.queue_name)]
    # An idle worker blocks in BLPOP for worker_ttl - 15 s between maintenance passes: keep that
    # at MAINTENANCE_EVERY so abandoned jobs are found promptly even when the queue is empty.
    worker = PaintbotWorker(queues, connection=conn, serializer=JSONSerializer, name=name,
                            maintenance_interval=MAINTENANCE_EVERY, worker_ttl=MAINTENANCE_EVERY + 15)
    worker.publish = publish
    return worker


def run_scheduler(settings: Settings, conn: redis.Redis) -> None:
    from rq.scheduler import RQScheduler

    RQScheduler([settings.queue_name], connection=conn, serializer=JSONSerializer).work()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="paintbot-worker", description=__doc__.splitlines()[0])
    p.add_argument("--burst", action="store_true", help="quit when the queue is empty")
    p.add_argument("--name", help="worker name (default: RQ's)")
    p.add_argument("--scheduler", action="store_true",
                   help="run only RQ's scheduler (puts retried jobs back after their back-off); one per deployment")
    args = p.parse_args(argv)
    settings = at_start("paintbot-worker")
    if settings is None:
        return 2
    logging.getLogger("rq.worker").addFilter(_Routine())
    conn, probe = connect(settings.redis_url), _probe(settings.redis_url)
    if args.scheduler:
        health.serve(healthy=lambda: bool(probe.ping()))
        run_scheduler(settings, conn)
        return 0

    waits = wait_policy(os.environ)  # before the first import of torch (below)
    kernels = compile_cache(os.environ, default_cache_dir(os.environ))  # before torch._dynamo writes its default
    from models.device import DeviceError, keep_freed_memory, pick_device, set_threads
    from models.engines import config_from_env
    from models.fetch import FetchError
    from worker import runtime

    try:  # the image science's settings, read here once and passed inward
        models = config_from_env(os.environ).replace(serving=True)
        log.info("torch on %d CPU threads, OpenMP waits %s, freed memory %s, compiled kernels kept in %s",
                 set_threads(models.torch_threads), waits, keep_freed_memory(models.keep_memory), kernels)
        device = pick_device(models.device)
        runtime.install(runtime.Runtime.load(settings, models, device, conn))
    except (ValueError, DeviceError, FetchError) as exc:  # a bad setting, no GPU, a missing weight file
        log.error("cannot start: %s", exc)  # one line: the file, where to get it, the variable to set
        return 2
    from worker.telegram import TokenRejected

    try:
        runtime.current().telegram.check()
    except TokenRejected:
        log.error(logs.TOKEN_REJECTED)  # one line, no traceback: nothing can be sent with this token
        return 2
    except Exception as exc:  # Telegram unreachable for now: jobs retry their calls
        log.warning("Telegram not reachable as the worker starts (%s): starting all the same", type(exc).__name__)
    worker = make_worker(settings, conn, args.name, publish=runtime.current().publish)
    ready = f"{runtime.current().engines.summary()}; models in {models.weights_dir or models.cache_dir}"
    conn.set(keys.worker_ready(worker.name), ready, ex=READY_TTL)  # deploy/local.sh's "ready" line reads it
    log.info("worker %s ready: %s", worker.name, ready)
    from worker import metrics

    metrics.watch(Queue(settings.queue_name, connection=probe), device)
    health.serve(healthy=lambda: bool(probe.ping()))
    worker.work(burst=args.burst, with_scheduler=False, logging_level=logging.getLevelName(
        logging.getLogger().level))
    return 0


if __name__ == "__main__":
    sys.exit(main())
