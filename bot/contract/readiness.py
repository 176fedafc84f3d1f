"""Whether a worker will take a new job at once, so that the bot need not say "Queued".

Why: when the queue is empty, a "Queued — position 1" message (and the worker's edit of it, and
its deletion) is three Bot API round trips on the path to the result, telling the user nothing.
The bot says it only when the user really has to wait in line; otherwise it shows a chat action.

How: each worker keeps a mark in the sorted set keys.IDLE_WORKERS while it waits for a job (its name,
scored with the time the mark lapses, so a worker that died while idle stops counting within
IDLE_TTL s); it drops the mark when it takes a job. The bot puts every job it admits into
keys.WAITING_JOBS, and the worker takes it out when the job starts. One script, run as the job is
admitted, adds the job and compares: the job is taken at once when there are at least as many
idle workers as jobs waiting (this one included). A job a worker has dequeued but not yet started
still counts as waiting while its worker is still marked idle: the error is always towards saying
"Queued" once too often, never towards a silent wait.
"""

from __future__ import annotations

import time

import redis

from bot.contract.keys import IDLE_WORKERS, WAITING_JOBS

IDLE_TTL = 45  # seconds an idle mark lasts unless renewed (a worker renews it each dequeue round)
WAITING_TTL = 3600  # a waiting entry older than this belongs to a job that was lost: forgotten

# KEYS: idle workers, waiting jobs, the RQ queue. ARGV: job id, now, forget waiting before.
# Returns {1 if taken at once else 0, jobs waiting (this one included)}. Jobs RQ put back on the
# queue by itself (a retry) are not in the waiting set: the queue's length counts them.
_ARRIVE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
local waiting = math.max(redis.call('ZCARD', KEYS[2]), redis.call('LLEN', KEYS[3]) + 1)
local idle = redis.call('ZCARD', KEYS[1])
if idle >= waiting then return {1, waiting} end
return {0, waiting}
"""


class Readiness:
    """The bot's side: note an admitted job as waiting, and learn whether a worker takes it at once."""

    def __init__(self, conn: redis.Redis, queue_key: str):
        self.redis, self.queue_key = conn, queue_key
        self._arrive = conn.register_script(_ARRIVE)

    def arrive(self, job_id: str) -> bool:
        """`job_id` is about to be enqueued: True when an idle worker will take it at once."""
        now = time.time()
        at_once, _ = self._arrive(keys=[IDLE_WORKERS, WAITING_JOBS, self.queue_key], args=[job_id, now, now - WAITING_TTL])
        return bool(at_once)

    def forget(self, job_id: str) -> None:
        """The job was not enqueued after all (withdrawn)."""
        self.redis.zrem(WAITING_JOBS, job_id)


def started(conn: redis.Redis, job_id: str) -> None:
    """A worker started `job_id`: it no longer waits."""
    conn.zrem(WAITING_JOBS, job_id)


def idle(conn: redis.Redis, worker: str) -> None:
    """Worker `worker` waits for a job (renewed each time it asks the queue again)."""
    conn.zadd(IDLE_WORKERS, {worker: time.time() + IDLE_TTL})


def busy(conn: redis.Redis, worker: str) -> None:
    """Worker `worker` took a job, or stopped."""
    conn.zrem(IDLE_WORKERS, worker)
