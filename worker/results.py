"""What a worker keeps of a result it sent, so that the result can be reused: its file id in the result
cache (bot/contract/cache.py: a repeated request is answered by the bot at once) and the record its
follow-up buttons are answered from (bot/contract/followups.py). Ids only; a Redis hiccup costs the reuse, never the result."""

from __future__ import annotations

import logging

import redis

from bot.contract import cache, followups, records, webapp
from bot.contract.job import AlbumItem, Job, Op
from worker import runtime
from worker.telegram import Sent

log = logging.getLogger("paintbot.worker")


def buttons(rt: runtime.Runtime, job: Job, damaged: bool = False, enhance: bool = False):
    """(record id, keyboard) for a result of `job` (an album's: for all its results at once); (None, None)
    when results carry no buttons. `damaged`: the photo (a picture of the album) has damage to repair;
    `enhance`: "Enhance" would change it (small enough to enlarge, or faces found)."""
    if rt.settings.result_cache_ttl <= 0 or job.op.family is None:
        return None, None
    rid = followups.new_id()
    adjustable = job.op is Op.COLORIZE and not job.reference_file_id
    engines = published_engines(rt)
    return rid, followups.keyboard(rid, job.op if adjustable else Op.STYLE, job.options.to_dict(), job.lang,
                                   engines, album=job.album is not None, damaged=damaged, enhance=enhance,
                                   hints=hints_button(rt, job, engines))


def hints_button(rt: runtime.Runtime, job: Job, engines):
    """"Pick colours" under a colourised result (bot/contract/webapp.py `offer`), for the photo the user sent and
    the person who asked; None where it is not offered, for an album, or when Redis is away."""
    if job.op.family != "colorize" or job.album or job.user_id is None or not webapp.offered(rt.settings.webapp_url,
                                                                                             engines):
        return None
    private = job.chat_id > 0
    grant = webapp.Grant(job.chat_id, job.user_id, job.file_id, job.reply_to, job.thread_id, job.lang,
                         job.as_document, job.file_name)
    try:
        return webapp.offer(rt.redis, rt.settings, engines, grant, private, None if private else rt.telegram.username())
    except redis.RedisError as exc:
        log.warning("job=%s: no Pick colours button (its grant was not kept: %s)", job.job_id, type(exc).__name__)
        return None


def published_engines(rt: runtime.Runtime):
    """What buttons may offer: the engines every worker published, which the bot answers a tap from (not this
    worker's own list: a button it offered must never meet "not available"); none while Redis is away."""
    try:
        return records.published(rt.redis).engines
    except redis.RedisError:
        return ()


def keep(rt: runtime.Runtime, job: Job, engine, rid: str | None, sent: Sent | None, made=None) -> None:
    """After sending: the result's file id under its cache key, and its follow-up record."""
    ttl = rt.settings.result_cache_ttl
    if ttl <= 0 or sent is None or not sent.file_id or job.op.family is None:
        return
    try:
        if cache.serves(job.file_unique_id, job.op, job.options, bool(job.reference_file_id)):
            key = cache.key(job.file_unique_id, job.op, job.options, engine.name, rt.engines.weights_of(engine))
            cache.store(rt.redis, key, cache.Cached(
                sent.file_id, sent.as_document, engine.name, bool(made and made.colorized_first),
                bool(made and made.damaged), made.repaired if made else None,
                made.colorizer.name if made and made.colorizer else None, made.faces if made else 0,
                made.upscaled if made else None, bool(made and made.enhance)), ttl, owner=job.user_id)
        if rid is not None:  # its buttons answer in the chat the result landed in (a group may have moved)
            landed = job.replace(chat_id=sent.chat_id or job.chat_id)
            followups.remember(rt.redis, rid, followups.Followup.of(landed, engine.name, sent.file_id,
                                                                    sent.file_unique_id), ttl, owner=job.user_id)
    except redis.RedisError as exc:
        log.warning("job=%s: the result was not kept for reuse (%s)", job.job_id, type(exc).__name__)


def keep_album(rt: runtime.Runtime, job: Job, engine, rid: str, pictures: list[AlbumItem], sent: list[Sent]) -> None:
    """After sending an album: the record its buttons are answered from (albums are not cached)."""
    if not all(s.file_id for s in sent):
        return
    first = pictures[0]
    record = followups.Followup.of(
        job.replace(file_id=first.file_id, file_name=first.file_name, file_unique_id=None,
                    chat_id=sent[0].chat_id or job.chat_id), engine.name,
        sent[0].file_id, sent[0].file_unique_id, pictures,
        [AlbumItem(s.message_id, s.file_id, p.file_name) for p, s in zip(pictures, sent)])
    try:
        followups.remember(rt.redis, rid, record, rt.settings.result_cache_ttl, owner=job.user_id)
    except redis.RedisError as exc:
        log.warning("job=%s: the album's buttons were not kept (%s)", job.job_id, type(exc).__name__)
