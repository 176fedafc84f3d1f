"""What the workers write down for the bot: what they can run, which engine made a result, when a job is over.

Why here: these records are written by one process and read by the other, so both must agree on their
shape, and a release must read what the previous one wrote (rolling upgrades: bot/contract/__init__.py).
Ids and short names only, never content.

- The vocabulary: each worker publishes, at start, the engines it can run (`EngineInfo` by name) and the
  preset styles it has (their names); the bot parses commands against them (`Vocabulary`). So the bot
  knows the presets without reading the workers' catalogue file, and a new engine needs no bot release.
- Which engine made each result message, so that a reaction to it counts for that engine (bot/feedback.py).
- `release`: a job is over (delivered or given up); it no longer counts against its sender's jobs in flight,
  and a follow-up tap's may be asked again.
- Whose records are whose (`own`, `forget`): a record about a person's photos (a cached result, a result's
  follow-up record, an album's pictures) is keyed by ids that name no person, so each writer also notes its
  key in that person's set (keys.owned); `/forget` deletes every key in it, their language and their last
  photo at once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

import redis

from bot.contract import keys
from bot.contract.job import Job
from bot.contract.options import EngineInfo, Vocabulary

log = logging.getLogger("paintbot")

RESULT_ENGINE_TTL = 7 * 24 * 3600  # how long a result's reactions are counted for its engine


def publish(conn: redis.Redis, engines: Sequence[EngineInfo], styles: Sequence[str]) -> None:
    """A worker tells the bot what it can run (its engines merged with what other workers said)."""
    with conn.pipeline() as pipe:
        if engines:
            pipe.hset(keys.ENGINES, mapping={e.name: json.dumps(e.to_dict()) for e in engines})
        if styles:
            pipe.set(keys.STYLES, json.dumps(list(styles)))
        pipe.execute()


def published(conn: redis.Redis) -> Vocabulary:
    """What the workers published (empty while none has started). A record this release cannot read is
    skipped with a log line: the others still make the vocabulary. Raises redis.RedisError."""
    engines = []
    for raw in conn.hvals(keys.ENGINES):
        try:
            engines.append(EngineInfo.from_dict(json.loads(raw)))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("a published engine record could not be read (%s): skipped", type(exc).__name__)
    try:
        styles = tuple(str(s) for s in json.loads(conn.get(keys.STYLES) or "[]"))
    except (ValueError, TypeError) as exc:
        log.warning("the published preset styles could not be read (%s): none known", type(exc).__name__)
        styles = ()
    return Vocabulary(styles, tuple(sorted(engines, key=lambda e: e.name)))


def record_result(conn: redis.Redis, chat_id: int, message_id: int, engine: str) -> None:
    """Called by the worker for each result it sends: reactions to that message count for `engine`."""
    conn.set(keys.result_engine(chat_id, message_id), engine, ex=RESULT_ENGINE_TTL)


def result_engine(conn: redis.Redis, chat_id: int, message_id: int) -> str | None:
    """The engine that made result `message_id` in `chat_id` (None: not a result, or over a week old)."""
    name = conn.get(keys.result_engine(chat_id, message_id))
    return name.decode() if name else None


def release(conn: redis.Redis, job: Job) -> None:
    """Called by the worker once a job is over (delivered or given up, no retry to follow): it no longer
    counts as in flight. A follow-up tap's job (`Job.from_tap`) also ends its request's claim and its
    delivered mark, which both exist only while the job may still run: the same button tapped again later
    is a new request, answered again (its job id is the same, so a mark left behind would keep it from
    being sent). A message's claim stays (REQUEST_TTL, bot/queue.py), so that Telegram delivering the
    update again makes no second job."""
    if job.user_id is not None:
        conn.zrem(keys.inflight(job.user_id), job.job_id)
    if job.from_tap:
        conn.delete(keys.request(job.job_id), keys.delivered(job.job_id))


def own(conn: redis.Redis, owner: int | None, key: str, ttl: int) -> None:
    """Note that record `key` (living `ttl` s) is about `owner`'s photos, for `forget`. Nobody to note for
    requests made on behalf of nobody (`owner` None)."""
    if owner is None or ttl <= 0:
        return
    name = keys.owned(owner)
    with conn.pipeline() as pipe:
        pipe.sadd(name, key)
        pipe.expire(name, ttl, gt=True)  # as long as the longest record in it
        pipe.expire(name, ttl, nx=True)
        pipe.execute()


def forget(conn: redis.Redis, user_id: int) -> int:
    """Delete every record about `user_id` (the keys `own` noted, their /language choice, the last photo they
    sent the bot privately) at once; returns how many keys went. Raises redis.RedisError."""
    name = keys.owned(user_id)
    noted = [k.decode() if isinstance(k, bytes) else k for k in conn.smembers(name)]
    return conn.delete(name, keys.language(user_id), keys.last_photo(user_id), *noted)
