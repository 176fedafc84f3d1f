"""Telegram update handlers: check the request, enqueue a job, answer at once."""

from __future__ import annotations

import asyncio
import logging
import time

import redis
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import TelegramError

from bot import instant, language, metrics
from bot.jobs import AlbumItem, Job
from bot.language import Context
from bot.options import BadOptions, ColorizeOptions, Options, StyleOptions
from bot.queue import Duplicate, JobQueue, Refused
from bot.readiness import Readiness
from bot.requests import (MAX_DOWNLOAD_BYTES, Image, image_of, is_file_but_not_image, parse_command, preset_names,
                          sender_of, too_big)
from bot.texts import render, render_error

log = logging.getLogger("paintbot.bot")

BURST_QUIET = 10.0  # seconds without a refusal that end a chat's burst of refused requests


class Bursts:
    """When each chat was last refused by the limits. A burst of requests (an album, a flood of
    photos) gets one refusal, not one per photo; it ends after BURST_QUIET s without one."""

    def __init__(self):
        self._last: dict[int, float] = {}

    def starts(self, chat_id: int) -> bool:
        """Note a refusal to `chat_id` now; True when it starts a burst (and so is worth saying)."""
        now = time.monotonic()
        if len(self._last) > 10_000:  # forget bursts that are over
            self._last = {c: t for c, t in self._last.items() if now - t <= BURST_QUIET}
        last, self._last[chat_id] = self._last.get(chat_id), now
        return last is None or now - last > BURST_QUIET


def _jobs(context: Context) -> JobQueue:
    return context.application.bot_data["jobs"]


async def refuse(answer, chat_id: int, reason: str, text: str, bursts: Bursts | None = None) -> None:
    """A request that does not become a job: one polite answer (with `bursts`, one per burst of
    refusals in the chat), one log line, one count."""
    metrics.REFUSED.labels(reason).inc()
    if bursts is not None and not bursts.starts(chat_id):
        log.info("refused chat=%s reason=%s (told already in this burst)", chat_id, reason)
        return
    log.info("refused chat=%s reason=%s: %s", chat_id, reason, text)
    await answer(text)


async def _vocabulary(context: Context):
    return await asyncio.to_thread(_jobs(context).vocabulary)


async def submit(context: Context, request: Message, reply_to: Message, img: Image | None,
                 op: str, options: Options | None = None, user_id: int | None = None,
                 reference: Image | None = None, request_id: int | None = None,
                 album: tuple[AlbumItem, ...] | None = None, status_text: str | None = None) -> str:
    """Admit and enqueue: all or nothing, so a request that does not become a job holds no slot.
    A job that has to wait in line is told "Queued" with its position (replying to the photo);
    one a worker takes at once gets a chat action instead (bot/readiness.py), unless `status_text`
    asks for a status message all the same (an album's). Every outcome gets exactly one answer;
    returns which: "queued", "cached" (answered at once from the result cache, bot/instant.py; never
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
              file_unique_id=img.file_unique_id if img else None, album=album)
    jobs, bursts = _jobs(context), context.application.bot_data["bursts"]
    if album is None and await instant.answer(context, job, reply_to, img, reference is not None):
        return "cached"
    try:
        position, at_once = await asyncio.to_thread(_admit, context, job)
    except Duplicate:
        log.info("job=%s: the same request again (a redelivered update, a second tap): already queued", job.job_id)
        return "duplicate"
    except Refused as exc:
        await refuse(reply_to.reply_text, job.chat_id, exc.reason, render_error(exc, context.lang), bursts)
        return "refused"
    except redis.RedisError as exc:
        log.warning("queue unavailable (%s): job=%s not queued", type(exc).__name__, job.job_id)
        await refuse(reply_to.reply_text, job.chat_id, "unavailable", render("unavailable", context.lang), bursts)
        return "refused"
    status = None
    if not at_once or status_text is not None:
        try:
            status = await reply_to.reply_text(status_text if at_once else
                                               render("queued", context.lang, position=position))
        except TelegramError as exc:  # kicked from the group (403), no right to write there (400), ...
            log.warning("job=%s not queued: cannot write to chat %s (%s)", job.job_id, job.chat_id, exc)
            await _withdraw(context, job)
            return "unreachable"
        except BaseException:
            await _withdraw(context, job)
            raise
        job = job.replace(status_message_id=status.message_id)
    try:
        await asyncio.to_thread(jobs.enqueue, job)
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
            await context.bot.send_chat_action(job.chat_id, "upload_document" if job.as_document else "upload_photo")
        except TelegramError as exc:  # the worker meets the same chat, and ends the job if it is gone
            log.info("job=%s: no chat action in chat %s (%s)", job.job_id, job.chat_id, exc)
    return "queued"


def _readiness(context: Context) -> Readiness:
    data = context.application.bot_data
    if "readiness" not in data:
        jobs = _jobs(context)
        data["readiness"] = Readiness(jobs.redis, jobs.queue.key)
    return data["readiness"]


def _admit(context: Context, job: Job) -> tuple[int, bool]:
    """Admission (bot/queue.py), then whether a worker takes the job at once (in one thread hop)."""
    position = _jobs(context).admit(job)
    try:
        return position, _readiness(context).arrive(job.job_id)
    except redis.RedisError:
        _jobs(context).withdraw(job)
        raise


async def _withdraw(context: Context, job: Job) -> None:
    try:
        await asyncio.to_thread(_jobs(context).withdraw, job)
        await asyncio.to_thread(_readiness(context).forget, job.job_id)
    except redis.RedisError:
        log.warning("job=%s: could not give back its slot while Redis is away; it lapses by itself", job.job_id)


async def help_command(update: Update, context: Context) -> None:
    await update.effective_message.reply_text(render("help", context.lang))


async def colorize_command(update: Update, context: Context) -> None:
    """/colorize [MODEL] [INTENSITY] as a reply to a photo (any chat); to a photo of an album, the album."""
    msg = update.effective_message
    if await _album_reply(context, msg, "colorize"):
        return
    await _colorize_request(context, msg, msg.reply_to_message, context.args or [])


async def _colorize_request(context, msg: Message, photo_msg: Message | None, args: list[str],
                            reference: Image | None = None) -> None:
    """Colourise the photo of `photo_msg`; with a `reference` photo, like that one."""
    img = image_of(photo_msg)
    if img is None:
        await msg.reply_text(render("need_photo.colorize", context.lang))
        return
    vocabulary = await _vocabulary(context)
    try:
        opts = ColorizeOptions.parse(args, vocabulary)
    except BadOptions as exc:
        await refuse(msg.reply_text, msg.chat_id, "bad_options", render_error(exc, context.lang))
        return
    info = vocabulary.info(opts.engine) if opts.engine else None
    if info is not None and info.needs_reference and reference is None:
        await refuse(msg.reply_text, msg.chat_id, "bad_options", render("reference.missing", context.lang))
        return
    await submit(context, msg, photo_msg, img, "colorize", opts, reference=reference)


async def style_command(update: Update, context: Context) -> None:
    """/style NAME [strength] [keep-colors] [hq] as a reply to a photo (of an album: the whole album);
    /style alone shows the presets."""
    msg = update.effective_message
    if await _album_reply(context, msg, "style"):
        return
    await _style_request(context, msg, msg.reply_to_message, style_img=None, args=context.args or [])


async def _style_request(context, msg: Message, content_msg: Message | None, style_img: Image | None,
                         args: list[str]) -> None:
    content = image_of(content_msg)
    if content is None:
        await msg.reply_text(render("need_photo.style", context.lang))
        return
    try:
        opts = StyleOptions.parse(args, await _vocabulary(context))
    except BadOptions as exc:
        await refuse(msg.reply_text, msg.chat_id, "bad_options", render_error(exc, context.lang))
        return
    if style_img is not None:
        opts = opts.replace(style=None)  # the photo is the style
    elif opts.style is None:
        # No name: offer the presets as buttons; the keyboard replies to the photo so a tap finds it.
        buttons = [InlineKeyboardButton(n, callback_data=f"style:{n}") for n in preset_names()]
        rows = [buttons[i:i + 3] for i in range(0, len(buttons), 3)]
        await content_msg.reply_text(render("style.pick", context.lang), reply_markup=InlineKeyboardMarkup(rows))
        return
    await submit(context, msg, content_msg, content, "style", opts, reference=style_img)


async def style_button(update: Update, context: Context) -> None:
    """A tap on a preset button under "Pick a style:" starts the job for the photo the keyboard replies
    to. Every tap is answered once: a second tap gets a short notice."""
    query = update.callback_query
    name = (query.data or "").partition(":")[2]
    keyboard_msg = query.message if isinstance(query.message, Message) else None
    content_msg = keyboard_msg.reply_to_message if keyboard_msg else None
    if name not in preset_names():
        await unknown_button(update, context)
        return
    if image_of(content_msg) is None:
        await query.answer(render("style.photo_gone", context.lang), show_alert=True)
        return
    outcome = None
    try:
        outcome = await submit(context, keyboard_msg, content_msg, image_of(content_msg), "style",
                               StyleOptions(style=name), user_id=query.from_user.id)
    finally:
        await query.answer({"queued": render("style.painting_as", context.lang, name=name),
                            "duplicate": render("request.duplicate", context.lang)}.get(outcome))
    if outcome in ("queued", "cached"):
        await keyboard_msg.edit_text(render("style.chosen", context.lang, name=name))  # one tap per keyboard


async def unknown_button(update: Update, context: Context) -> None:
    """A button this version does not know (junk data, a keyboard an older release left): a notice,
    so that it stops spinning."""
    await update.callback_query.answer(render("button.unknown", context.lang), show_alert=True)


async def styles_command(update: Update, context: Context) -> None:
    """/styles: the worker sends one picture of all presets with their names."""
    msg = update.effective_message
    await submit(context, msg, msg, None, "styles")


async def _album_reply(context: Context, msg: Message, op: str) -> bool:
    """A command replying to a photo of an album the bot saw applies to the whole album (bot/albums.py)."""
    from bot import albums

    pictures = await albums.recalled(context, msg.reply_to_message)
    if pictures is None:
        return False
    await albums.request_album(context, msg, msg.reply_to_message, pictures, op, context.args or [])
    return True


async def image_message(update: Update, context: Context) -> None:
    """A photo or file. Its caption may hold a command (CommandHandler does not see captions).
    A picture of an album waits for the rest of it (bot/albums.py)."""
    msg = update.effective_message
    if msg.media_group_id:
        from bot import albums

        await albums.gatherer(context).add(update, context)
        return
    parsed = parse_command(msg.caption, context.bot.username)
    private = msg.chat.type == "private"
    if parsed is None and msg.caption and msg.caption.lstrip().startswith("/"):
        return  # a command for another bot
    cmd, args = parsed if parsed else (None, [])
    if cmd == "style":
        if msg.reply_to_message is not None and image_of(msg.reply_to_message) is not None:
            # Custom style: this photo is the style, the replied-to photo the content.
            await _style_request(context, msg, msg.reply_to_message, style_img=image_of(msg), args=args)
        else:
            await _style_request(context, msg, msg, style_img=None, args=args)
        return
    if cmd in ("colorize", "colorise") or (cmd is None and private):
        if is_file_but_not_image(msg):
            await refuse(msg.reply_text, msg.chat_id, "not_image", render("not_an_image", context.lang))
            return
        if cmd is not None and image_of(msg.reply_to_message) is not None:
            # A photo captioned /colorize in reply to a photo: colour that one (its whole album) like this one.
            from bot import albums

            pictures = await albums.recalled(context, msg.reply_to_message)
            if pictures is not None:
                await albums.request_album(context, msg, msg.reply_to_message, pictures, "colorize", args,
                                           reference=image_of(msg))
            else:
                await _colorize_request(context, msg, msg.reply_to_message, args, reference=image_of(msg))
        else:
            await _colorize_request(context, msg, msg, args)
        return
    if private and cmd is not None:
        await msg.reply_text(render("help", context.lang))


async def unknown_command(update: Update, context: Context) -> None:
    """Private chats only: an unknown command or plain text gets the help text."""
    await update.effective_message.reply_text(render("help", context.lang))


async def on_error(update: object, context: Context) -> None:
    log.error("error while handling an update: %s", context.error, exc_info=context.error)
    if isinstance(update, Update) and update.effective_message is not None:
        try:
            await language.resolve(update, context)  # an error handler gets a context of its own
            await update.effective_message.reply_text(render("failed", context.lang))
        except Exception:  # the chat may be unreachable; the log line above is what remains
            log.warning("could not tell chat %s about the error", update.effective_chat.id)
