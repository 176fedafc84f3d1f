"""The producer side of the Redis/RQ queue: admission limits, then enqueue.

Also the one place that knows the Redis keys shared with the workers (in-flight sets),
so the worker releases a job through `release()` here rather than re-deriving key names.
"""

from __future__ import annotations

import time
import redis
from rq import Callback, Queue, Retry
from rq.serializers import JSONSerializer

from bot.jobs import ON_FAILURE, TASK, Job
from bot.settings import Limits

# Retries for transient faults (network, a worker that died): 2 more attempts, backing off.
RETRY = Retry(max=2, interval=[10, 30])
RESULT_TTL = 3600  # finished jobs are kept an hour (ids only: /stats counts them)
FAILURE_TTL = 24 * 3600


class Refused(Exception):
    """The request is not queued; `str(exc)` is the polite reply for the user, `reason` a metric label."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def _inflight_key(user_id: int) -> str:
    return f"paintbot:inflight:{user_id}"


class JobQueue:
    def __init__(self, redis_url: str, name: str, limits: Limits = Limits()):
        # Short timeouts: when Redis is away the bot must answer "unavailable" quickly, not hang.
        self.redis = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=3,
                                          health_check_interval=30)
        self.queue = Queue(name, connection=self.redis, serializer=JSONSerializer)
        self.limits = limits

    def admit(self, job: Job) -> int:
        """Check the limits for `job` and count it against its user; return its expected queue position.

        Raises Refused (the polite reason) or redis.RedisError (the service is unavailable).
        """
        lim = self.limits
        if self.queue.count >= lim.queue_cap:
            raise Refused("I'm very busy right now. Please try again in a few minutes.", "queue_full")
        if job.user_id is not None:
            now = time.time()
            key = _inflight_key(job.user_id)
            minute = f"paintbot:rate:{job.user_id}:{int(now // 60)}"
            pipe = self.redis.pipeline()
            pipe.zremrangebyscore(key, 0, now - lim.job_timeout * 4)  # forget jobs lost long ago
            pipe.zcard(key)
            pipe.incr(minute)
            pipe.expire(minute, 120)
            _, in_flight, made, _ = pipe.execute()
            if made > lim.user_per_minute:
                raise Refused("That's a lot of photos at once! Please wait a minute and send again.", "rate")
            if in_flight >= lim.user_in_flight:
                raise Refused(f"You already have {in_flight} photos in progress. "
                              "Please wait for them before sending more.", "in_flight")
            self.redis.zadd(key, {job.job_id: now})
        return self.queue.count + 1

    def enqueue(self, job: Job) -> None:
        """Put an admitted job on the queue. A request delivered twice (same job id) is queued once."""
        if self.queue.fetch_job(job.job_id) is not None:
            return
        self.queue.enqueue(TASK, job.to_dict(), job_id=job.job_id, job_timeout=self.limits.job_timeout,
                           retry=RETRY, on_failure=Callback(ON_FAILURE), result_ttl=RESULT_TTL,
                           failure_ttl=FAILURE_TTL,
                           description=f"{job.op} chat={job.chat_id}")


    def stats(self) -> dict:
        """Queue depth, workers, and jobs finished/failed in the last hour (for /stats)."""
        from rq import Worker

        now = time.time()
        q = self.queue
        # Registry scores are expiry times: a job finished/failed at t expires at t + its ttl.
        finished = self.redis.zcount(q.finished_job_registry.key, now + RESULT_TTL - 3600, "+inf")
        failed = self.redis.zcount(q.failed_job_registry.key, now + FAILURE_TTL - 3600, "+inf")
        return {"queued": q.count, "started": q.started_job_registry.count,
                "workers": Worker.count(queue=q), "finished": finished, "failed": failed}


def release(conn: redis.Redis, job: Job) -> None:
    """Called by the worker once a job is over (delivered or given up): it no longer counts as in flight."""
    if job.user_id is not None:
        conn.zrem(_inflight_key(job.user_id), job.job_id)
