"""From a request to a job: the options read from the user's words, admission, enqueueing, or one polite refusal.

Every way a request is made (a command, a captioned photo, an album, a preset button, a follow-up button)
ends here, so that the same request gets the same answer whichever way it came: the same options check
(`options_from_words`: the words, and whether the engine named needs a reference photo), the same limits,
the same result cache (bot/instant.py), the same "Queued" or chat action, the same refusals (one per burst
of refusals in a chat: bot/context.py `Bursts`).
"""

from __future__ import annotations

import asyncio
import logging

import redis
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.error import TelegramError

from bot import instant, metrics
from bot.context import Bursts, Context
from bot.contract import paintings
from bot.contract.job import MAX_DOWNLOAD_BYTES, AlbumItem, Job, Op
from bot.contract.options import OPTIONS, BadOptions, Options
from bot.contract.texts import render, render_error
from bot.queue import Duplicate, Refused
from bot.requests import Image, sender_of, too_big

log = logging.getLogger("paintbot.bot")


async def refuse(answer, chat_id: int, reason: str, text: str, bursts: Bursts | None = None) -> None:
    """A request that does not become a job: one polite answer (with `bursts`, one per burst of
    refusals in the chat), one log line, one count."""
    metrics.REFUSED.labels(reason).inc()
    if bursts is not None and not bursts.starts(chat_id):
        log.info("refused chat=%s reason=%s (told already in this burst)", chat_id, reason)
        return
    log.info("refused chat=%s reason=%s: %s", chat_id, reason, text)
    await answer(text)


async def options_from_words(context: Context, msg: Message, op: Op, words: list[str],
                             reference: Image | None = None) -> Options | None:
    """The options `words` ask for (`/colorize instance 150`, `/style vangogh 60 keep-colors`, `/restore nocolor`);
    None when they do not make options, name an engine that needs a reference photo and there is none, or
    ask for a family no worker runs (workers that published their engines, none of them a restorer: an
    older release, or the repair weights missing): then the user has been told why, in reply to `msg`."""
    vocabulary = await context.vocabulary()
    if not vocabulary.offers(op.family, reference is not None):
        await refuse(msg.reply_text, msg.chat_id, "unavailable", render(f"{op.family}.unavailable", context.lang))
        return None
    try:
        options = OPTIONS[op.family].parse(words, vocabulary)
    except BadOptions as exc:
        await refuse(msg.reply_text, msg.chat_id, "bad_options", _explained(exc, context.lang))
        return None
    info = vocabulary.info(options.engine) if options.engine else None
    if op is Op.COLORIZE and reference is None and info is not None and info.needs_reference:
        await refuse(msg.reply_text, msg.chat_id, "bad_options", render("reference.missing", context.lang))
        return None
    return options


def _explained(exc: BadOptions, lang: str) -> str:
    """Why the words make no options; a painting's name that matches none gets the closest ones."""
    if exc.params.get("suggestions"):
        return render("options.did_you_mean", lang, name=exc.params["name"],
                      choices=paintings.either(exc.params["suggestions"], lang))
    return render_error(exc, lang)


async def offer_presets(context: Context, content_msg: Message) -> None:
    """`/style` without a name: the presets as buttons, replying to the photo so that a tap finds it."""
    presets = (await context.vocabulary()).styles
    if not presets:  # no worker has said which it has yet
        await content_msg.reply_text(render("unavailable", context.lang))
        return
    buttons = [InlineKeyboardButton(paintings.button(n, context.lang), callback_data=f"style:{n}") for n in presets]
    rows = [buttons[i:i + paintings.PER_ROW] for i in range(0, len(buttons), paintings.PER_ROW)]
    await content_msg.reply_text(render("style.pick", context.lang), reply_markup=InlineKeyboardMarkup(rows))


async def submit(context: Context, request: Message, reply_to: Message, img: Image | None,
                 op: Op, options: Options | None = None, user_id: int | None = None,
                 reference: Image | None = None, request_id: int | None = None,
                 album: tuple[AlbumItem, ...] | None = None) -> str:
    """Admit and enqueue: all or nothing, so a request that does not become a job holds no slot.
    A job that has to wait in line is told "Queued" with its position (replying to the photo);
    one a worker takes at once gets a chat action instead (bot/contract/readiness.py), and a status message
    from the worker only if it turns out long (worker/progress.py; an album's too). Every outcome gets exactly
    one answer; returns which: "queued", "cached" (answered at once from the result cache, bot/instant.py; never
    for an album), "refused", "duplicate" (the same request is already queued: nothing said) or
    "unreachable" (the chat cannot be written to: nothing can be said). `request_id`: the job's, when
    the request is no message of its own (a follow-up tap)."""
    for image in (img, reference):
        if image is not None and too_big(image):
            await refuse(reply_to.reply_text, request.chat_id, "too_big",
                         render("too_big", context.lang, limit_mb=MAX_DOWNLOAD_BYTES // 2**20))
            return "refused"
    job = Job(op=op, chat_id=request.chat_id, request_id=request.message_id if request_id is None else request_id,
              reply_to=reply_to.message_id, file_id=img.file_id if img else None,
              as_document=bool(img and img.as_document), file_name=img.file_name if img else None, options=options,
              reference_file_id=reference.file_id if reference else None,
              user_id=user_id if user_id is not None else sender_of(request), lang=context.lang,
              file_unique_id=img.file_unique_id if img else None, album=album,
              thread_id=request.message_thread_id if request.is_topic_message else None)
    try:
        if album is None and await instant.answer(context, job, reply_to, img, reference is not None):
            return "cached"
        position, at_once = await asyncio.to_thread(_admit, context, job)
    except Duplicate:
        log.info("job=%s: the same request again (a redelivered update, a second tap): already queued", job.job_id)
        return "duplicate"
    except Refused as exc:
        await refuse(reply_to.reply_text, job.chat_id, exc.reason, render_error(exc, context.lang), context.bursts)
        return "refused"
    except redis.RedisError as exc:
        log.warning("queue unavailable (%s): job=%s not queued", type(exc).__name__, job.job_id)
        await refuse(reply_to.reply_text, job.chat_id, "unavailable", render("unavailable", context.lang),
                     context.bursts)
        return "refused"
    status = None
    if not at_once:
        try:
            status = await reply_to.reply_text(render("queued", context.lang, position=position))
        except TelegramError as exc:  # kicked from the group (403), no right to write there (400), ...
            log.warning("job=%s not queued: cannot write to chat %s (%s)", job.job_id, job.chat_id, exc)
            await _withdraw(context, job)
            return "unreachable"
        except BaseException:
            await _withdraw(context, job)
            raise
        job = job.replace(status_message_id=status.message_id)
    try:
        await asyncio.to_thread(context.jobs.enqueue, job)
    except redis.RedisError as exc:
        log.warning("queue unavailable (%s): job=%s not queued", type(exc).__name__, job.job_id)
        await _withdraw(context, job)
        await refuse(status.edit_text if status else reply_to.reply_text, job.chat_id, "unavailable",
                     render("unavailable", context.lang))
        return "refused"
    metrics.ENQUEUED.labels(op).inc()
    log.info("queued job=%s op=%s chat=%s position=%d%s", job.job_id, op, job.chat_id, position,
             " (a worker takes it at once)" if at_once else "")
    if status is None:  # the user sees "sending a photo…" until the result arrives (or a long job's status)
        try:
            await context.bot.send_chat_action(job.chat_id, "upload_document" if job.as_document else "upload_photo",
                                               message_thread_id=job.thread_id)
        except TelegramError as exc:  # the worker meets the same chat, and ends the job if it is gone
            log.info("job=%s: no chat action in chat %s (%s)", job.job_id, job.chat_id, exc)
    return "queued"


def _admit(context: Context, job: Job) -> tuple[int, bool]:
    """Admission (bot/queue.py), then whether a worker takes the job at once (in one thread hop)."""
    position = context.jobs.admit(job)
    try:
        return position, context.readiness.arrive(job.job_id)
    except redis.RedisError:
        context.jobs.withdraw(job)
        raise


async def _withdraw(context: Context, job: Job) -> None:
    try:
        await asyncio.to_thread(context.jobs.withdraw, job)
        await asyncio.to_thread(context.readiness.forget, job.job_id)
    except redis.RedisError:
        log.warning("job=%s: could not give back its slot while Redis is away; it lapses by itself", job.job_id)
