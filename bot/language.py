"""The language each update is answered in, and /language to choose it.

A person's own choice (/language, remembered in Redis by bot/queue.py) comes first, then the
language of their Telegram app (`language_code`), then English. In a group the person who asked
decides: the one who sent the command or pressed the button. `resolve` runs before every other
handler and leaves the answer in `context.lang`, which every reply and every job then carries.
"""

from __future__ import annotations

import asyncio
import logging

import redis
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update

from bot.context import Context
from bot.contract.texts import LANGUAGES, language_of, render
from bot.requests import quotes

log = logging.getLogger("paintbot.bot")

BUTTONS_PER_ROW = 3


async def resolve(update: Update, context: Context) -> None:
    """Sets `context.lang` for an update someone may be answered on (messages, button presses)."""
    user = update.effective_user
    if user is None or not (update.message or update.callback_query):
        return
    chosen = await asyncio.to_thread(context.jobs.language, user.id)
    context.lang = chosen or language_of(user.language_code)


async def language_command(update: Update, context: Context) -> None:
    """/language: a button per language, each named in its own language."""
    buttons = [InlineKeyboardButton(render("language.name", lang), callback_data=f"language:{lang}")
               for lang in LANGUAGES]
    rows = [buttons[i:i + BUTTONS_PER_ROW] for i in range(0, len(buttons), BUTTONS_PER_ROW)]
    msg = update.effective_message
    await msg.reply_text(render("language.pick", context.lang), reply_markup=InlineKeyboardMarkup(rows),
                         do_quote=quotes(msg))


async def language_button(update: Update, context: Context) -> None:
    """A tap on a language: remembered for the person who tapped. In a private chat the keyboard
    becomes the confirmation; in a group it stays for the others, and the tapper gets a notice."""
    query = update.callback_query
    lang = (query.data or "").partition(":")[2]
    if lang not in LANGUAGES:
        await query.answer()
        return
    try:
        await asyncio.to_thread(context.jobs.set_language, query.from_user.id, lang)
    except redis.RedisError as exc:
        log.warning("could not remember a language choice (%s)", type(exc).__name__)
        await query.answer(render("unavailable", context.lang), show_alert=True)
        return
    context.lang = lang
    done = render("language.chosen", lang)
    message = query.message
    if isinstance(message, Message) and message.chat.type == "private":
        await query.answer()
        await message.edit_text(done)
    else:
        await query.answer(done)
