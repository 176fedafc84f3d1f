"""What a worker keeps of a result it sent, so that the result can be reused: its file id in the result
cache (bot/cache.py: a repeated request is answered by the bot at once) and the record its follow-up
buttons are answered from (bot/followups.py). Ids only; a Redis hiccup costs the reuse, never the result."""

from __future__ import annotations

import logging

import redis

from bot import cache, followups
from bot.jobs import AlbumItem, Job
from worker import runtime
from worker.telegram import Sent

log = logging.getLogger("paintbot.worker")


def buttons(rt: runtime.Runtime, job: Job):
    """(record id, keyboard) for a result of `job` (an album's: for all its results at once); (None, None)
    when results carry no buttons."""
    ttl = rt.settings.result_cache_ttl
    if ttl <= 0 or job.op not in cache.FAMILY:
        return None, None
    rid = followups.new_id()
    adjustable = job.op == "colorize" and not job.reference_file_id
    colourisers = [e for e in rt.engines.runnable() if e.family == "colorize" and not e.needs_reference]
    return rid, followups.keyboard(rid, job.op if adjustable else "style", job.options.to_dict(), job.lang,
                                   another_model=len(colourisers) > 1, album=job.album is not None)


def keep(rt: runtime.Runtime, job: Job, engine, rid: str | None, sent: Sent | None,
         colorized_first: bool = False) -> None:
    """After sending: the result's file id under its cache key, and its follow-up record."""
    ttl = rt.settings.result_cache_ttl
    if ttl <= 0 or sent is None or not sent.file_id or job.op not in cache.FAMILY:
        return
    try:
        if cache.serves(job.file_unique_id, job.op, job.options, bool(job.reference_file_id)):
            key = cache.key(job.file_unique_id, job.op, job.options, engine.name, rt.engines.weights_of(engine))
            cache.store(rt.redis, key, cache.Cached(sent.file_id, sent.as_document, engine.name, colorized_first),
                        ttl)
        if rid is not None:
            record = followups.Followup(job.file_id, job.file_unique_id, job.as_document, job.file_name,
                                        sent.file_id, sent.file_unique_id, job.op,
                                        job.options.replace(engine=engine.name).to_dict(), engine.name)
            followups.remember(rt.redis, rid, record, ttl)
    except redis.RedisError as exc:
        log.warning("job=%s: the result was not kept for reuse (%s)", job.job_id, type(exc).__name__)


def keep_album(rt: runtime.Runtime, job: Job, engine, rid: str, pictures: list[AlbumItem], sent: list[Sent]) -> None:
    """After sending an album: the record its buttons are answered from (albums are not cached)."""
    if not all(s.file_id for s in sent):
        return
    first, made = pictures[0], sent[0]
    record = followups.Followup(
        first.file_id, None, job.as_document, first.file_name, made.file_id, made.file_unique_id, job.op,
        job.options.replace(engine=engine.name).to_dict(), engine.name,
        album=[p.to_dict() for p in pictures],
        album_results=[AlbumItem(s.message_id, s.file_id, p.file_name).to_dict() for p, s in zip(pictures, sent)])
    try:
        followups.remember(rt.redis, rid, record, rt.settings.result_cache_ttl)
    except redis.RedisError as exc:
        log.warning("job=%s: the album's buttons were not kept (%s)", job.job_id, type(exc).__name__)
