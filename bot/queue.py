"""The producer side of the Redis/RQ queue: admission limits, then enqueue.

Admission is all or nothing. `admit` claims the request (its job id: the chat and message it
came from, so the same update delivered twice, or a button tapped twice, is one request) and
takes one of its sender's in-flight slots; the request then ends in `enqueue`, or in `withdraw`,
which gives both back: a request that never became a job holds nothing.

The bot's side of the records the workers write (bot/contract/records.py) goes through here too: the
vocabulary they published (kept VOCABULARY_TTL s), which engine made a result (read when someone reacts
to it), and the language each user chose with /language. Every key is named in bot/contract/keys.py.
"""

from __future__ import annotations

import logging
import time

import redis
from rq import Callback, Queue, Retry, Worker
from rq.serializers import JSONSerializer

from bot.contract import keys, records
from bot.contract.job import ON_FAILURE, TASK, Job
from bot.contract.options import Vocabulary
from bot.contract.settings import Limits

# Retries for transient faults (network, a worker that died): 2 more attempts, backing off.
RETRY = Retry(max=2, interval=[10, 30])
RESULT_TTL = 3600  # finished jobs are kept an hour (ids only: /stats counts them)
FAILURE_TTL = 24 * 3600
VOCABULARY_TTL = 30.0  # seconds the bot trusts its copy of the engines the workers published
LANGUAGE_TTL = 365 * 24 * 3600  # a /language choice is forgotten after a year without a new one
# Seconds a request made from a message is remembered (Telegram redelivers within minutes); a follow-up
# tap's claim ends with its job (bot/contract/records.py `release`) or its cached answer (bot/instant.py).
REQUEST_TTL = 3600

log = logging.getLogger("paintbot")


class Refused(Exception):
    """The request is not queued: `reason` is the metric label and the text key of the polite reply."""

    def __init__(self, reason: str, **params):
        super().__init__(reason)
        self.reason = reason
        self.code = f"refused.{reason}"
        self.params = params


class Duplicate(Exception):
    """The same request is already queued: an update delivered twice, a button tapped twice."""


# Admission in one step, so that requests arriving together (an album) cannot all pass one check:
# claim the request, then check the queue cap, the sender's requests this minute and their jobs in
# flight (forgetting those lost long ago), and take a slot. Refused: the claim is given back.
# A request answered from the result cache (ARGV[9] = 1: `claim`) is checked against the rate alone:
# it costs no compute and takes no place in the queue nor an in-flight slot, but it is still a message
# sent on the sender's behalf.
# KEYS: request claim, queue, sender's in-flight set, sender's counter for this minute.
# ARGV: job id, now, forget before, claim ttl, queue cap, per minute, in flight, 1 if there is a sender,
#       1 if the answer is cached.
_ADMIT = """
if not redis.call('SET', KEYS[1], 1, 'NX', 'EX', ARGV[4]) then return {'duplicate', 0} end
local function refuse(reason, n) redis.call('DEL', KEYS[1]) return {reason, n} end
local cached = ARGV[9] == '1'
local queued = 0
if not cached then
  queued = redis.call('LLEN', KEYS[2])
  if queued >= tonumber(ARGV[5]) then return refuse('queue_full', 0) end
end
if ARGV[8] == '1' then
  local made = redis.call('INCR', KEYS[4])
  redis.call('EXPIRE', KEYS[4], 120)
  if made > tonumber(ARGV[6]) then return refuse('rate', 0) end
  if not cached then
    redis.call('ZREMRANGEBYSCORE', KEYS[3], 0, ARGV[3])
    local in_flight = redis.call('ZCARD', KEYS[3])
    if in_flight >= tonumber(ARGV[7]) then return refuse('in_flight', in_flight) end
    redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
  end
end
return {'admitted', queued + 1}
"""


class JobQueue:
    def __init__(self, redis_url: str, name: str, limits: Limits = Limits()):
        # Short timeouts: when Redis is away the bot must answer "unavailable" quickly, not hang.
        self.redis = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=3,
                                          health_check_interval=30)
        self.queue = Queue(name, connection=self.redis, serializer=JSONSerializer)
        self._admit = self.redis.register_script(_ADMIT)
        self.limits = limits
        self._vocabulary: tuple[float, Vocabulary] | None = None

    def vocabulary(self) -> Vocabulary:
        """The preset styles and the engines the workers published (re-read every VOCABULARY_TTL s;
        while Redis is away, the last copy, so that the request itself meets the outage and is told so)."""
        now = time.monotonic()
        if self._vocabulary is None or now - self._vocabulary[0] > VOCABULARY_TTL:
            try:
                vocabulary = records.published(self.redis)
            except redis.RedisError:
                return self._vocabulary[1] if self._vocabulary else Vocabulary()
            if not vocabulary.engines:  # no worker has registered yet: ask again next time
                return vocabulary
            self._vocabulary = now, vocabulary
        return self._vocabulary[1]

    def language(self, user_id: int) -> str | None:
        """The language `user_id` chose with /language; None when they did not, or Redis is away
        (then their Telegram app's language will do)."""
        try:
            chosen = self.redis.get(keys.language(user_id))
        except redis.RedisError as exc:
            log.info("language of user %s unknown while Redis is away (%s)", user_id, type(exc).__name__)
            return None
        return chosen.decode() if chosen else None

    def set_language(self, user_id: int, lang: str) -> None:
        self.redis.set(keys.language(user_id), lang, ex=LANGUAGE_TTL)

    def result_engine(self, chat_id: int, message_id: int) -> str | None:
        """The engine that made result `message_id` in `chat_id` (None: not a result, or over a week old)."""
        return records.result_engine(self.redis, chat_id, message_id)

    def admit(self, job: Job) -> int:
        """Claim `job`'s request and take one of its sender's slots; return its expected queue position.
        When this returns, the caller ends the request with `enqueue` or `withdraw`; when it raises,
        nothing is held.

        Raises Duplicate (the request is already being answered), Refused (the polite reason) or
        redis.RedisError (the service is unavailable).
        """
        return self._run_admission(job, cached=False)

    def claim(self, job: Job) -> bool:
        """Claim `job`'s request for an answer that needs no job (bot/instant.py): no slot, no place in the
        queue, but it counts against its sender's requests this minute. False when it is claimed already
        (the same update again, a second tap), as `admit` would say Duplicate. Raises Refused("rate") or
        redis.RedisError."""
        try:
            self._run_admission(job, cached=True)
        except Duplicate:
            return False
        return True

    def _run_admission(self, job: Job, cached: bool) -> int:
        """The admission script (_ADMIT) for `job`; `cached`: checked against the rate alone."""
        lim, now, sender = self.limits, time.time(), job.user_id
        outcome, number = self._admit(keys=[
            keys.request(job.job_id), self.queue.key, keys.inflight(sender), keys.rate(sender, int(now // 60))], args=[
            job.job_id, now, now - lim.job_timeout * 4, REQUEST_TTL, lim.queue_cap, lim.user_per_minute,
            lim.user_in_flight, int(sender is not None), int(cached)])
        if outcome == b"duplicate":
            raise Duplicate(job.job_id)
        if outcome != b"admitted":
            raise Refused(outcome.decode(), count=number)
        return number

    def unclaim(self, job: Job) -> None:
        self.redis.delete(keys.request(job.job_id))

    def withdraw(self, job: Job) -> None:
        """An admitted request did not become a job: give back its claim and its slot."""
        records.release(self.redis, job)
        self.redis.delete(keys.request(job.job_id))

    def enqueue(self, job: Job) -> None:
        """Put an admitted job on the queue."""
        # An album's pictures each get the time limit of one photo.
        timeout = self.limits.job_timeout * max(1, len(job.album or ()))
        self.queue.enqueue(TASK, job.to_dict(), job_id=job.job_id, job_timeout=timeout,
                           retry=RETRY, on_failure=Callback(ON_FAILURE), result_ttl=RESULT_TTL,
                           failure_ttl=FAILURE_TTL,
                           description=f"{job.op} chat={job.chat_id}")

    def stats(self) -> dict:
        """Queue depth, workers, and jobs finished/failed in the last hour (for /stats)."""
        now = time.time()
        q = self.queue
        # Registry scores are expiry times: a job finished/failed at t expires at t + its ttl.
        finished = self.redis.zcount(q.finished_job_registry.key, now + RESULT_TTL - 3600, "+inf")
        failed = self.redis.zcount(q.failed_job_registry.key, now + FAILURE_TTL - 3600, "+inf")
        # Counts only: RQ's registry `count` would first clean the registry up, running the failure
        # callbacks of abandoned jobs here, in the bot. That is the workers' maintenance, not ours.
        return {"queued": q.count, "started": q.started_job_registry.get_job_count(cleanup=False),
                "workers": Worker.count(queue=q), "finished": finished, "failed": failed}

