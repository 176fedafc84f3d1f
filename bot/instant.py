"""Answering a request from the result cache (bot/contract/cache.py), in the bot: no job, no queue, no "Queued".

`answer` is asked first for every request that would become a job. When the result is cached it sends
it again by its Telegram file_id (sendPhoto/sendDocument with the id string: nothing is uploaded) with
the same caption and follow-up buttons as a fresh result, and says so (True); the caller then stops.
Anything in the way (no key, nothing stored, Redis away, Telegram no longer knows the file id) makes it
say False, and the request goes to the queue as before: the cache can only make an answer faster.
"""

from __future__ import annotations

import asyncio
import logging

import redis
from telegram import Message
from telegram.error import BadRequest

from bot import metrics
from bot.context import Context
from bot.contract import cache, captions, followups, records, webapp
from bot.contract.job import Job
from bot.requests import Image

log = logging.getLogger("paintbot.bot")


async def answer(context: Context, job: Job, reply_to: Message, img: Image | None, has_reference: bool) -> bool:
    """Send the cached result of `job`'s request in reply to `reply_to`; False when there is none to send.
    The request is claimed as a job's is (the same update again gets nothing more: bot/queue.py), and counts
    against its sender's requests a minute: raises Refused when it is over them."""
    jobs, ttl = context.jobs, context.settings.result_cache_ttl
    op, options = job.op, job.options
    if ttl <= 0 or img is None:
        return False
    vocabulary = await context.vocabulary()
    key = cache.key_for_request(vocabulary, img.file_unique_id, op, options, has_reference)
    if key is None:
        return False
    try:
        hit = await asyncio.to_thread(cache.lookup, jobs.redis, key)
    except redis.RedisError as exc:
        log.info("result cache unavailable (%s): the request is queued", type(exc).__name__)
        return False
    if hit is None:
        return False
    try:  # Refused (the sender's rate) goes to the caller: refused as any request over it is
        if not await asyncio.to_thread(jobs.claim, job):
            return False  # answered already, or being: `admit` says Duplicate
    except redis.RedisError:
        return False
    caption = captions.result_caption(op, options, _label(vocabulary, hit.engine), context.lang,
                                      colorized_first=hit.colorized_first, repaired=hit.repaired,
                                      faces=hit.faces, upscaled=hit.upscaled,
                                      colorizer_label=_label(vocabulary, hit.colorizer) if hit.colorizer else None)
    rid = followups.new_id()
    keyboard = followups.keyboard(rid, op, options.to_dict(), context.lang, vocabulary.engines, damaged=hit.damaged,
                                  enhance=hit.enhance, hints=await _hints_button(context, job, img, vocabulary))
    try:
        if hit.as_document:
            sent = await reply_to.reply_document(hit.file_id, caption=caption, reply_markup=keyboard)
        else:
            sent = await reply_to.reply_photo(hit.file_id, caption=caption, reply_markup=keyboard)
    except BadRequest as exc:  # Telegram no longer knows the file: forget it, compute it again
        log.warning("cached result %s could not be sent again (%s): forgotten, the request is queued", key, exc)
        await asyncio.to_thread(_forget, jobs.redis, key, jobs.unclaim, job)
        return False
    except BaseException:
        await asyncio.to_thread(_forget, jobs.redis, None, jobs.unclaim, job)
        raise
    metrics.CACHED.labels(op).inc()
    if job.from_tap:  # answered: the same button tapped again later asks again (bot/contract/records.py `release`)
        try:
            await asyncio.to_thread(jobs.unclaim, job)
        except redis.RedisError:
            pass  # the claim lapses after REQUEST_TTL
    log.info("answered chat=%s op=%s from the result cache (engine %s)", reply_to.chat_id, op, hit.engine)
    media = sent.photo[-1] if sent.photo else sent.document
    record = followups.Followup.of(job, hit.engine, hit.file_id, media.file_unique_id if media else None)
    try:
        await asyncio.to_thread(followups.remember, jobs.redis, rid, record, ttl, job.user_id)
        await asyncio.to_thread(records.own, jobs.redis, job.user_id, key, ttl)  # their photo's result, too
    except redis.RedisError as exc:
        log.warning("follow-up record of a cached answer not kept (%s): its buttons will ask for the photo again",
                    type(exc).__name__)
    return True


async def _hints_button(context: Context, job: Job, img: Image, vocabulary):
    """"Pick colours" under a cached colourised result, as under a fresh one (worker/results.py)."""
    if job.op.family != "colorize" or job.user_id is None:
        return None
    grant = webapp.Grant(job.chat_id, job.user_id, img.file_id, job.reply_to, job.thread_id, context.lang,
                         img.as_document, img.file_name)
    try:
        return await asyncio.to_thread(webapp.offer, context.jobs.redis, context.settings, vocabulary.engines, grant,
                                       job.chat_id > 0, context.bot.username)
    except redis.RedisError:
        return None


def _label(vocabulary, engine: str) -> str:
    info = vocabulary.info(engine)
    return info.label if info else engine


def _forget(conn: redis.Redis, key: str | None, unclaim, job: Job) -> None:
    """Give back the request's claim (so the queue may take it) and forget a stale cache entry."""
    try:
        unclaim(job)
        if key is not None:
            conn.delete(key)
    except redis.RedisError:
        pass
