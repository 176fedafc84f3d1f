"""Telegram update handlers: tiny, each reads what its update asks for and hands it to bot/submit.py.

The list of which update goes to which handler is bot/app.py; an album's pictures go to bot/albums.py.
"""

from __future__ import annotations

import asyncio
import json
import logging

import redis
from telegram import InlineKeyboardMarkup, Message, Update

from bot import albums, language
from bot.context import Context
from bot.contract import keys, paintings, records, webapp
from bot.contract.job import Op
from bot.contract.options import StyleOptions
from bot.contract.texts import render
from bot.requests import (OPERATION_COMMANDS, Image, for_another_bot, image_of, is_file_but_not_image,
                          parse_command, quotes)
from bot.submit import offer_presets, options_from_words, refuse, submit

log = logging.getLogger("paintbot.bot")

LAST_PHOTO_TTL = 5 * 60  # how long /style or /colorize without a reply still means the last photo sent


async def help_command(update: Update, context: Context) -> None:
    msg = update.effective_message
    await msg.reply_text(render("help", context.lang), do_quote=quotes(msg))


async def forget_command(update: Update, context: Context) -> None:
    """/forget: every record about the person deleted at once (bot/contract/records.py `forget`)."""
    msg, user = update.effective_message, update.effective_user
    if user is None:
        return
    try:
        gone = await asyncio.to_thread(records.forget, context.jobs.redis, user.id)
    except redis.RedisError as exc:
        log.warning("/forget of user %s failed while Redis is away (%s)", user.id, type(exc).__name__)
        await msg.reply_text(render("unavailable", context.lang), do_quote=quotes(msg))
        return
    log.info("forgot user %s: %d records deleted", user.id, gone)
    await msg.reply_text(render("forget.done", context.lang), do_quote=quotes(msg))


async def _remember_photo(context: Context, msg: Message) -> None:
    """The last photo a person sent in a private chat, so that /style (or /colorize) sent right after it,
    without the reply gesture, means that photo (`_photo_meant`)."""
    try:
        await asyncio.to_thread(context.jobs.redis.set, keys.last_photo(msg.chat_id), msg.to_json(),
                                ex=LAST_PHOTO_TTL)
    except redis.RedisError as exc:  # then /style needs a reply, as before
        log.info("last photo in chat %s not remembered (%s)", msg.chat_id, type(exc).__name__)


async def _photo_meant(context: Context, msg: Message) -> Message | None:
    """The photo a command is about: the one it replies to; in a private chat without a reply, the last
    photo the person sent there within LAST_PHOTO_TTL s."""
    if msg.reply_to_message is not None or msg.chat.type != "private":
        return msg.reply_to_message
    try:
        raw = await asyncio.to_thread(context.jobs.redis.get, keys.last_photo(msg.chat_id))
    except redis.RedisError:
        return None
    return Message.de_json(json.loads(raw), context.bot) if raw else None


async def colorize_command(update: Update, context: Context) -> None:
    """/colorize [MODEL] [INTENSITY] as a reply to a photo (any chat); to a photo of an album, the album."""
    msg = update.effective_message
    photo_msg = await _photo_meant(context, msg)
    if await _album_reply(context, msg, photo_msg, Op.COLORIZE):
        return
    await _photo_request(context, msg, photo_msg, Op.COLORIZE, context.args or [])


async def restore_command(update: Update, context: Context) -> None:
    """/restore [nocolor] as a reply to a photo (any chat): repair its damage, then colourise it if it is
    black and white; to a photo of an album, the album."""
    msg = update.effective_message
    photo_msg = await _photo_meant(context, msg)
    if await _album_reply(context, msg, photo_msg, Op.RESTORE):
        return
    await _photo_request(context, msg, photo_msg, Op.RESTORE, context.args or [])


async def hints_command(update: Update, context: Context) -> None:
    """/hints as a reply to a photo: a "Pick colours" button for it (the Mini App, bot/contract/webapp.py), whose
    result goes to this chat; the button is the sender's own (in a group, only they may use it)."""
    msg = update.effective_message
    photo_msg = await _photo_meant(context, msg)
    img = image_of(photo_msg)
    if img is None or photo_msg is None:
        await msg.reply_text(render("hints.need_photo", context.lang))
        return
    user, private = msg.from_user, msg.chat.type == "private"
    grant = webapp.Grant(msg.chat_id, user.id if user else 0, img.file_id, photo_msg.message_id,
                         msg.message_thread_id if msg.is_topic_message else None, context.lang, img.as_document,
                         img.file_name)
    button = None
    if user is not None and not user.is_bot and msg.sender_chat is None:  # a person, whose initData can match
        try:
            button = await asyncio.to_thread(webapp.offer, context.jobs.redis, context.settings,
                                             (await context.vocabulary()).engines, grant, private, context.bot.username)
        except redis.RedisError as exc:
            log.warning("/hints unanswerable while Redis is away (%s)", type(exc).__name__)
            await msg.reply_text(render("unavailable", context.lang))
            return
    if button is None:
        log.info("/hints in chat %s: the Mini App is not offered here", msg.chat_id)
        await msg.reply_text(render("hints.unavailable", context.lang))
        return
    await msg.reply_text(render("hints.offer", context.lang), reply_markup=InlineKeyboardMarkup([[button]]))


async def _photo_request(context: Context, msg: Message, photo_msg: Message | None, op: Op, args: list[str],
                         reference: Image | None = None, if_gray: bool = False) -> None:
    """Colourise or restore the photo of `photo_msg`; colourise with a `reference` photo: like that one;
    `if_gray`: colourise only if it is black and white (a photo sent without a command: one in colour gets
    a question instead)."""
    img = image_of(photo_msg)
    if img is None:
        await msg.reply_text(render(f"need_photo.{op}", context.lang))
        return
    options = await options_from_words(context, msg, op, args, reference)
    if options is not None:
        if if_gray:
            options = options.replace(if_gray=True)
        await submit(context, msg, photo_msg, img, op, options, reference=reference)


async def style_command(update: Update, context: Context) -> None:
    """/style NAME [strength] [keep-colors] [hq] as a reply to a photo (of an album: the whole album);
    /style alone shows the presets."""
    msg = update.effective_message
    photo_msg = await _photo_meant(context, msg)
    if await _album_reply(context, msg, photo_msg, Op.STYLE):
        return
    await _style_request(context, msg, photo_msg, style_img=None, args=context.args or [])


async def _style_request(context: Context, msg: Message, content_msg: Message | None, style_img: Image | None,
                         args: list[str]) -> None:
    content = image_of(content_msg)
    if content is None:
        await msg.reply_text(render("need_photo.style", context.lang))
        return
    options = await options_from_words(context, msg, Op.STYLE, args)
    if options is None:
        return
    if style_img is not None:
        options = options.replace(style=None)  # the photo is the style
    elif options.style is None:
        await offer_presets(context, content_msg)
        return
    await submit(context, msg, content_msg, content, Op.STYLE, options, reference=style_img)


async def style_button(update: Update, context: Context) -> None:
    """A tap on a preset button under "Pick a style:" starts the job for the photo the keyboard replies
    to. Every tap is answered once: a second tap gets a short notice."""
    query = update.callback_query
    name = (query.data or "").partition(":")[2]
    keyboard_msg = query.message if isinstance(query.message, Message) else None
    content_msg = keyboard_msg.reply_to_message if keyboard_msg else None
    if name not in (await context.vocabulary()).styles:
        await unknown_button(update, context)
        return
    if image_of(content_msg) is None:
        await query.answer(render("style.photo_gone", context.lang), show_alert=True)
        return
    outcome = None
    try:
        outcome = await submit(context, keyboard_msg, content_msg, image_of(content_msg), Op.STYLE,
                               StyleOptions(style=name), user_id=query.from_user.id)
    finally:
        await query.answer({"queued": render("style.painting_as", context.lang,
                                             painting=paintings.named(name, context.lang)),
                            "duplicate": render("request.duplicate", context.lang)}.get(outcome))
    if outcome in ("queued", "cached"):
        await keyboard_msg.edit_text(render("style.chosen", context.lang, painting=paintings.named(name, context.lang)))


async def unknown_button(update: Update, context: Context) -> None:
    """A button this version does not know (junk data, a keyboard an older release left): a notice,
    so that it stops spinning."""
    await update.callback_query.answer(render("button.unknown", context.lang), show_alert=True)


async def styles_command(update: Update, context: Context) -> None:
    """/styles: the worker sends one picture of all presets with their names."""
    msg = update.effective_message
    await submit(context, msg, msg, None, Op.STYLES)


async def _album_reply(context: Context, msg: Message, photo_msg: Message | None, op: Op) -> bool:
    """A command about a photo of an album the bot saw applies to the whole album (bot/albums.py)."""
    pictures = await albums.recalled(context, photo_msg)
    if pictures is None:
        return False
    await albums.request_album(context, msg, photo_msg, pictures, op, context.args or [])
    return True


async def image_message(update: Update, context: Context) -> None:
    """A photo or file. Its caption may hold a command (CommandHandler does not see captions).
    A picture of an album waits for the rest of it (bot/albums.py)."""
    msg = update.effective_message
    mine = not for_another_bot(msg.caption, context.bot.username)
    if mine and msg.chat.type == "private" and image_of(msg) is not None:
        await _remember_photo(context, msg)  # an album's picture too: /style then means the album
    if msg.media_group_id:
        await albums.gather(update, context)
        return
    if not mine:
        return
    parsed = parse_command(msg.caption, context.bot.username)
    private = msg.chat.type == "private"
    cmd, args = parsed if parsed else (None, [])
    op = OPERATION_COMMANDS.get(cmd) if cmd else None
    if op is Op.STYLE:
        if msg.reply_to_message is not None and image_of(msg.reply_to_message) is not None:
            # Custom style: this photo is the style, the replied-to photo the content.
            await _style_request(context, msg, msg.reply_to_message, style_img=image_of(msg), args=args)
        else:
            await _style_request(context, msg, msg, style_img=None, args=args)
        return
    if op is Op.RESTORE:
        await _photo_request(context, msg, msg, Op.RESTORE, args)
        return
    if op is Op.COLORIZE or (cmd is None and private):
        if is_file_but_not_image(msg):
            await refuse(msg.reply_text, msg.chat_id, "not_image", render("not_an_image", context.lang))
            return
        if cmd is not None and image_of(msg.reply_to_message) is not None:
            # A photo captioned /colorize in reply to a photo: colour that one (its whole album) like this one.
            pictures = await albums.recalled(context, msg.reply_to_message)
            if pictures is not None:
                await albums.request_album(context, msg, msg.reply_to_message, pictures, Op.COLORIZE, args,
                                           reference=image_of(msg))
            else:
                await _photo_request(context, msg, msg.reply_to_message, Op.COLORIZE, args, reference=image_of(msg))
        else:
            await _photo_request(context, msg, msg, Op.COLORIZE, args, if_gray=cmd is None)
        return
    if private and cmd is not None:
        await msg.reply_text(render("help", context.lang), do_quote=False)


async def unknown_command(update: Update, context: Context) -> None:
    """Private chats only: words or an unknown command get one line saying what to do (the help is /help)."""
    msg = update.effective_message
    await msg.reply_text(render("text.hint", context.lang), do_quote=quotes(msg))


async def on_error(update: object, context: Context) -> None:
    log.error("error while handling an update: %s", context.error, exc_info=context.error)
    if isinstance(update, Update) and update.effective_message is not None:
        try:
            await language.resolve(update, context)  # an error handler gets a context of its own
            await update.effective_message.reply_text(render("failed", context.lang))
        except Exception:  # the chat may be unreachable; the log line above is what remains
            log.warning("could not tell chat %s about the error", update.effective_chat.id)
