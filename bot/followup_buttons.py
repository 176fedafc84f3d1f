"""The taps on a result's follow-up buttons (bot/contract/followups.py): each becomes a request of whoever tapped,
through the same `submit` as a command (limits, the result cache, "Queued", the job), in private chats and
groups alike. A tap is answered once: what happens next, or why nothing does. A record answers taps in its
own chat only (bot/contract/followups.py): anywhere else it is as good as expired."""

from __future__ import annotations

import asyncio
import logging

import redis
from telegram import Message, Update

from bot.context import Context
from bot.contract import followups, paintings
from bot.contract.job import AlbumItem, Op
from bot.contract.options import ColorizeOptions, RestoreOptions, StyleOptions, Vocabulary
from bot.contract.texts import render
from bot.handlers import unknown_button
from bot.requests import Image
from bot.submit import submit

log = logging.getLogger("paintbot.bot")


async def followup_button(update: Update, context: Context) -> None:
    query = update.callback_query
    parsed = followups.parse(query.data)
    tapped = query.message if isinstance(query.message, Message) else None
    if parsed is None or tapped is None:
        await unknown_button(update, context)
        return
    rid, action = parsed
    try:
        record = await asyncio.to_thread(followups.recall, context.jobs.redis, rid)
    except redis.RedisError as exc:
        log.warning("follow-up %s unanswerable while Redis is away (%s)", rid, type(exc).__name__)
        await query.answer(render("unavailable", context.lang), show_alert=True)
        return
    if record is not None and not record.belongs_to(tapped.chat_id):  # forged, or the previous release's
        log.warning("follow-up %s tapped in chat %s is not that chat's record: answered as expired",
                    rid, tapped.chat_id)
        record = None
    if record is None:  # lapsed with the cache (or never kept): the photo is needed again
        await query.answer(render("followup.expired", context.lang), show_alert=True)
        return
    vocabulary = await context.vocabulary()
    if action == "paint":
        await query.answer()
        await tapped.reply_text(render("style.pick", context.lang),
                                reply_markup=followups.presets_keyboard(rid, vocabulary.styles, context.lang))
        return
    request = _request(record, action, vocabulary)
    if request is None:
        key = {"model": "followup.no_other_model", "repair": "restore.unavailable",
               "enhance": "restore.unavailable"}.get(action, "button.unknown")
        await query.answer(render(key, context.lang), show_alert=True)
        return
    op, img, options, reference, album = request
    # The result answers the result tapped; a style chosen under "Paint it…" answers the result it was for.
    result_msg = tapped.reply_to_message if action.startswith("s:") and tapped.reply_to_message else tapped
    outcome = None
    try:
        outcome = await submit(context, tapped, result_msg, img, op, options, user_id=query.from_user.id,
                               reference=reference,
                               request_id=followups.request_id(tapped.message_id, action, vocabulary.styles),
                               album=album)
    finally:
        await query.answer({"queued": render("followup.working", context.lang),
                            "duplicate": render("request.duplicate", context.lang)}.get(outcome))
    if outcome in ("queued", "cached") and action.startswith("s:"):
        await tapped.edit_text(render("style.chosen", context.lang, painting=paintings.named(action[2:], context.lang)))


def _request(record: followups.Followup, action: str, vocabulary: Vocabulary):
    """(op, image, options, reference image, album) a tap asks for; None when it asks for nothing possible.
    Under an album the image is its first picture and `album` all of them, as for the album itself."""
    source = Image(record.source_file_id, None, record.as_document, record.file_name, record.source_unique_id)
    result = Image(record.result_file_id, None, record.as_document, record.file_name, record.result_unique_id)
    sources, results = (None if items is None else tuple(AlbumItem.from_dict(d) for d in items)
                        for items in (record.album, record.album_results))
    if action.startswith("s:"):
        name = action[2:]
        if name not in vocabulary.styles:
            return None
        if record.op in (Op.COLORIZE, Op.RESTORE, Op.HINTS):  # paint the colourised (or repaired) result
            return Op.STYLE, result, StyleOptions(style=name), None, results
        return Op.STYLE, source, StyleOptions(style=name), None, sources
    if action == "ba":
        return None if sources else (Op.COMPARE, source, None, result, None)
    if action == "enhance":  # the photo the user sent, its faces and resolution restored, then colourised
        return None if not followups.can_enhance(vocabulary.engines) else (
            Op.RESTORE, source, RestoreOptions(repair=False), None, sources)
    if action == "repair":  # the photo the user sent, repaired then colourised (as /restore does)
        return None if not followups.can_repair(vocabulary.engines) else (Op.RESTORE, source, RestoreOptions(), None,
                                                                          sources)
    if record.op != Op.COLORIZE:
        return None
    options = ColorizeOptions.from_dict(record.options).replace(engine=record.engine)
    if action in ("more", "less"):
        return (Op.COLORIZE, source, options.replace(intensity=followups.stepped(options.intensity, action)), None,
                sources)
    if action == "anyway":  # the photo was in colour: colourise it all the same
        return Op.COLORIZE, source, options.replace(if_gray=False), None, sources
    if action == "model":
        following = vocabulary.next_engine(record.engine, "colorize")
        return None if following is None else (Op.COLORIZE, source, options.replace(engine=following), None, sources)
    return None
