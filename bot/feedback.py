"""Which model people like: 👍 and 👎 on results, counted per engine in the bot's metrics.

The worker records which engine made each result message (bot/contract/records.py `record_result`: chat id,
message id and engine name, kept a week). Telegram sends a `message_reaction` update when someone
changes their reaction to a message, in private chats and in groups where the bot is an admin; the
bot then counts the 👍/👎 added or taken back for that engine (bot/metrics.py REACTIONS).
"""

from __future__ import annotations

import asyncio
import logging

import redis
from telegram import ReactionTypeEmoji, Update

from bot import metrics
from bot.context import Context

log = logging.getLogger("paintbot.bot")

VERDICTS = {"👍": "like", "👎": "dislike"}


def _emojis(reactions) -> set[str]:
    return {r.emoji for r in reactions if isinstance(r, ReactionTypeEmoji)}


async def on_reaction(update: Update, context: Context) -> None:
    reaction = update.message_reaction
    try:
        engine = await asyncio.to_thread(context.jobs.result_engine, reaction.chat.id, reaction.message_id)
    except redis.RedisError as exc:
        log.warning("a reaction went uncounted while Redis is away (%s)", type(exc).__name__)
        return
    if engine is None:  # not one of our results, or older than a week
        return
    old, new = _emojis(reaction.old_reaction), _emojis(reaction.new_reaction)
    for emoji, verdict in VERDICTS.items():
        if emoji in new and emoji not in old:
            metrics.REACTIONS.labels(engine, verdict, "added").inc()
        elif emoji in old and emoji not in new:
            metrics.REACTIONS.labels(engine, verdict, "removed").inc()
