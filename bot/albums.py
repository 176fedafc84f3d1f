"""Albums: a media group is one request, answered by one album.

Why: Telegram delivers an album of 10 photos as 10 updates sharing a `media_group_id`, the caption
(and so a /colorize or /style command) on one of them only. Taken one by one, an album would be
10 requests: 3 results and 7 refusals from the per-user limits, 10 status messages, 10 answers.
So the bot gathers the updates of a group until none has come for GATHER_QUIET s, then makes one
request of them (one admission, one job, one status message "Colourising 10 pictures…"); the
worker (worker/albums.py) answers with one album.

Telegram forgets an update once the bot has confirmed it, which it does at the next poll, long
before an album is complete. So each arriving picture's update is also kept in Redis until its album
has been handled: a bot stopped or killed while gathering hands those updates to its handlers again
when it starts (`recover`), and the album is answered, late but not lost.

A gathered album is remembered for ALBUM_TTL s (its pictures' ids, in Redis), so that /colorize or
/style NAME sent later as a reply to any one of its photos applies to the whole album. In a group
the bot only sees an album it may read: with privacy mode on, Telegram sends it just the captioned
item, and a reply then applies to that picture alone.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import redis
from telegram import Message, Update
from telegram.ext import Application

from bot.context import BotData, Context
from bot.contract import keys, records
from bot.contract.job import MAX_ALBUM, AlbumItem, Op
from bot.contract.texts import render
from bot.requests import OPERATION_COMMANDS, Image, for_another_bot, image_of, parse_command, sender_of
from bot.submit import offer_presets, options_from_words, refuse, submit

log = logging.getLogger("paintbot.bot")

GATHER_QUIET = 1.0  # seconds without another picture of the group that end an album
ALBUM_TTL = 2 * 24 * 3600  # how long a reply to an album's photo still finds the whole album
GATHERING_TTL = 24 * 3600  # a bot down for longer than this forgets the albums it was gathering


@dataclass
class _Arriving:
    messages: dict[int, Message] = field(default_factory=dict)
    timer: asyncio.TimerHandle | None = None


async def gather(update: Update, context: Context) -> None:
    """One picture of a media group: the album is handled GATHER_QUIET s after its last picture (the albums
    arriving now are `context.albums`, by chat and media group)."""
    msg = update.effective_message
    key = (msg.chat_id, msg.media_group_id)
    await _keep(context, key, update)
    album = context.albums.setdefault(key, _Arriving())
    album.messages[msg.message_id] = msg
    if album.timer is not None:
        album.timer.cancel()
    album.timer = asyncio.get_running_loop().call_later(
        GATHER_QUIET, lambda: context.application.create_task(_complete(key, context)))


async def _complete(key: tuple[int, str], context: Context) -> None:
    album = context.albums.pop(key, None)
    if album is None:
        return
    messages = [album.messages[i] for i in sorted(album.messages)]  # the album's own order
    try:
        await _gathered(context, messages)
    except Exception:
        log.exception("album %s in chat %s could not be handled", key[1], key[0])
    finally:
        await _forget(context, key)


async def _keep(context: Context, key: tuple[int, str], update: Update) -> None:
    """The picture's update, kept until its album is handled (if Redis is down, in memory only)."""
    conn = context.jobs.redis
    name = keys.album_gathering(*key)

    def store():
        with conn.pipeline() as pipe:
            pipe.hset(name, str(update.effective_message.message_id), json.dumps(update.to_dict()))
            pipe.expire(name, GATHERING_TTL)
            pipe.sadd(keys.ALBUMS_GATHERING, name)
            pipe.execute()

    try:
        await asyncio.to_thread(store)
    except redis.RedisError as exc:
        log.warning("album %s in chat %s: picture not kept (%s)", key[1], key[0], type(exc).__name__)


async def _forget(context: Context, key: tuple[int, str]) -> None:
    conn = context.jobs.redis
    name = keys.album_gathering(*key)

    def drop():
        with conn.pipeline() as pipe:
            pipe.delete(name)
            pipe.srem(keys.ALBUMS_GATHERING, name)
            pipe.execute()

    try:
        await asyncio.to_thread(drop)
    except redis.RedisError as exc:  # handled again at the next start: the job's id makes that a no-op
        log.warning("album %s in chat %s: not forgotten (%s)", key[1], key[0], type(exc).__name__)


async def recover(app: Application[Any, Context, dict, dict, BotData, Any]) -> None:
    """At start-up: the pictures of albums a previous run was still gathering go through the handlers
    again, as if just received (Telegram will not send them again: they were confirmed)."""
    conn = app.bot_data.jobs.redis

    def stored() -> list[dict]:
        updates = []
        for name in conn.smembers(keys.ALBUMS_GATHERING):
            values = conn.hvals(name)
            if not values:  # expired
                conn.srem(keys.ALBUMS_GATHERING, name)
            updates += [json.loads(v) for v in values]
        return sorted(updates, key=lambda u: u["update_id"])

    try:
        updates = await asyncio.to_thread(stored)
    except redis.RedisError as exc:
        log.warning("albums being gathered when the bot stopped not looked for (%s)", type(exc).__name__)
        return
    for data in updates:
        await app.update_queue.put(Update.de_json(data, app.bot))
    if updates:
        log.info("%d pictures of albums left gathering by the last run: handled now", len(updates))


async def _gathered(context: Context, messages: list[Message]) -> None:
    """A whole album has arrived: remember it, and if it asks for something (a command in its caption,
    or any album in a private chat), make that one request."""
    first = messages[0]
    pictures = [(m.message_id, image_of(m)) for m in messages if image_of(m) is not None]
    await _remember(context, first.chat_id, first.media_group_id, pictures, sender_of(first))
    command, request = None, first
    for m in messages:
        if for_another_bot(m.caption, context.bot.username):
            return
        parsed = parse_command(m.caption, context.bot.username)
        if parsed is not None:
            command, request = parsed, m
    private = first.chat.type == "private"
    if command is None:
        if private:
            await request_album(context, request, first, pictures, Op.COLORIZE, [], if_gray=True)
        return
    cmd, args = command
    if cmd in OPERATION_COMMANDS:
        await request_album(context, request, first, pictures, OPERATION_COMMANDS[cmd], args)
    elif private:
        await request.reply_text(render("help", context.lang))


async def _remember(context: Context, chat_id: int, group: str, pictures: list[tuple[int, Image]],
                    owner: int | None) -> None:
    conn = context.jobs.redis

    def store():
        key = keys.album(chat_id, group)
        conn.hset(key, mapping={str(mid): json.dumps(img.to_dict()) for mid, img in pictures})
        conn.expire(key, ALBUM_TTL)
        records.own(conn, owner, key, ALBUM_TTL)  # the sender's: /forget deletes it

    if not pictures:
        return
    try:
        await asyncio.to_thread(store)
    except redis.RedisError as exc:  # the album itself is still answered; a later reply finds one photo
        log.warning("album %s in chat %s not remembered (%s)", group, chat_id, type(exc).__name__)


async def recalled(context: Context, photo_msg: Message | None) -> list[tuple[int, Image]] | None:
    """The pictures of the album `photo_msg` belongs to, in order; None when it is no album the bot saw
    (then the photo alone is meant)."""
    if photo_msg is None or not photo_msg.media_group_id or image_of(photo_msg) is None:
        return None
    try:
        stored = await asyncio.to_thread(context.jobs.redis.hgetall,
                                         keys.album(photo_msg.chat_id, photo_msg.media_group_id))
    except redis.RedisError:
        return None
    pictures = []
    for mid, raw in stored.items():
        try:
            pictures.append((int(mid), Image.from_dict(json.loads(raw))))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # written by a release we cannot read
            log.warning("a remembered album picture could not be read (%s): left out", type(exc).__name__)
    pictures.sort(key=lambda p: p[0])
    return pictures if len(pictures) > 1 else None


async def request_album(context: Context, request: Message, reply_to: Message, pictures: list[tuple[int, Image]],
                        op: Op, args: list[str], reference: Image | None = None, if_gray: bool = False) -> None:
    """One request for all `pictures` (message id, image), answered in reply to `reply_to`; with a colour
    `reference` photo, every picture is coloured like it (so the album's pictures come out alike). `if_gray`:
    an album sent without a command, whose pictures already in colour are left as they are (worker/albums.py)."""
    if not pictures:
        await refuse(request.reply_text, request.chat_id, "not_image", render("not_an_image", context.lang))
        return
    if len(pictures) > MAX_ALBUM:
        await refuse(request.reply_text, request.chat_id, "album_too_big",
                     render("album.too_big", context.lang, count=len(pictures), limit=MAX_ALBUM))
        return
    options = await options_from_words(context, request, op, args, reference)
    if options is None:
        return
    if op is Op.STYLE and options.style is None:  # no name: the preset keyboard, as for one photo
        await offer_presets(context, reply_to)
        return
    if if_gray and op is Op.COLORIZE:
        options = options.replace(if_gray=True)
    if len(pictures) == 1:
        await submit(context, request, reply_to, pictures[0][1], op, options, reference=reference)
        return
    album = tuple(AlbumItem(mid, img.file_id, img.file_name) for mid, img in pictures)
    first = pictures[0][1]
    # No status message of the bot's own when a worker takes it at once: the worker posts one only if the
    # album turns out long (worker/progress.py), as for a single photo.
    await submit(context, request, reply_to, first, op, options, album=album, reference=reference)
