"""The python-telegram-bot Application: which update goes to which handler (the one visible list of them)."""

from __future__ import annotations

import asyncio
import json
import logging

from telegram import BotCommand, Update
from telegram.error import BadRequest, Forbidden, NetworkError
from telegram.ext import (AIORateLimiter, Application, ApplicationBuilder, ApplicationHandlerStop,
                          CallbackQueryHandler, CommandHandler, ContextTypes, Defaults, MessageHandler,
                          MessageReactionHandler, TypeHandler, filters)
from telegram.request import HTTPXRequest

from bot import albums, feedback, followup_buttons, handlers, language, metrics
from bot.context import BotData, Context
from bot.contract.job import Op
from bot.contract.readiness import Readiness
from bot.contract.settings import Settings
from bot.contract.texts import DEFAULT_LANGUAGE, LANGUAGES, render
from bot.queue import JobQueue
from bot.requests import commands_of

log = logging.getLogger("paintbot.bot")

# Reactions are only delivered when asked for by name (they count results' likes: bot/feedback.py).
ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY, Update.MESSAGE_REACTION]
COMMANDS = ["colorize", "restore", "hints", "style", "styles", "language", "forget", "help"]  # the menu; descriptions are texts "command.NAME"


class RetryingRateLimiter(AIORateLimiter):
    """PTB's AIORateLimiter (Telegram's flood limits; 429s waited out as asked) that also retries
    5xx answers, timeouts and connection errors a few times with back-off."""

    ATTEMPTS = 3

    async def process_request(self, callback, args, kwargs, endpoint, data, rate_limit_args):
        for attempt in range(1, self.ATTEMPTS + 1):
            try:
                return await super().process_request(callback, args, kwargs, endpoint, data, rate_limit_args)
            except (BadRequest, Forbidden):
                raise  # our request is wrong, or the chat is gone: repeating will not help
            except NetworkError as exc:
                if attempt == self.ATTEMPTS:
                    raise
                log.warning("Telegram %s failed (%s), retrying", endpoint, exc)
                await asyncio.sleep(0.5 * 2 ** attempt)


class ReadableUpdates(HTTPXRequest):
    """The getUpdates connection. python-telegram-bot reads a batch of updates as a whole, and one
    update it cannot read makes it fetch the same batch again, forever, handling nothing after it.
    Here each update of a batch is read alone first; one that cannot be is logged once and handed
    on empty (its update_id only), so that its offset is confirmed and the updates after it run."""

    async def do_request(self, *args, **kwargs) -> tuple[int, bytes]:
        code, payload = await super().do_request(*args, **kwargs)
        return code, (_readable(payload) if code == 200 else payload)


def _readable(payload: bytes) -> bytes:
    try:
        answer = json.loads(payload)
    except ValueError:
        return payload  # not JSON at all: python-telegram-bot says so and asks again
    updates = answer.get("result") if isinstance(answer, dict) else None
    skipped = 0
    for i, update in enumerate(updates if isinstance(updates, list) else ()):
        try:
            Update.de_json(update, None)
        except Exception as exc:
            update_id = update.get("update_id") if isinstance(update, dict) else None
            if not isinstance(update_id, int):
                continue  # nothing to confirm it by: left to python-telegram-bot
            log.error("skipped update %d: it cannot be read (%s: %s)", update_id, type(exc).__name__, exc)
            updates[i] = {"update_id": update_id}
            skipped += 1
    return json.dumps(answer).encode() if skipped else payload


async def _post_init(app: Application) -> None:
    """The command menu in every language: Telegram shows each user the one of their app's language
    (English for the languages we do not have). Then the albums a previous run was still gathering."""
    for lang in LANGUAGES:
        await app.bot.set_my_commands([BotCommand(c, render(f"command.{c}", lang)) for c in COMMANDS],
                                      language_code=None if lang == DEFAULT_LANGUAGE else lang)
    await albums.recover(app)


async def _count_update(update: Update, context: Context) -> None:
    kind = "callback_query" if update.callback_query else "reaction" if update.message_reaction else (
        "photo" if update.effective_message and (update.effective_message.photo or update.effective_message.document)
        else "message")
    metrics.UPDATES.labels(kind).inc()


def _allowed_only(allowed: frozenset[int]):
    async def gate(update: Update, context: Context) -> None:
        chat = update.effective_chat
        if chat is not None and chat.id not in allowed:
            log.info("ignored update from chat %s: not in PAINTBOT_ALLOWED_CHATS", chat.id)
            if chat.type == "private" and update.effective_message is not None:
                await update.effective_message.reply_text(render("private_bot", context.lang))
            raise ApplicationHandlerStop
    return gate


async def stats_command(update: Update, context: Context) -> None:
    """/stats for admins: queue depth, workers, jobs finished and failed in the last hour."""
    user = update.effective_user
    if user is None or user.id not in context.settings.admins:
        await update.effective_message.reply_text(render("stats.admins_only", context.lang))
        return
    await update.effective_message.reply_text(render("stats.report", context.lang,
                                                     **await asyncio.to_thread(context.jobs.stats)))


def build_application(settings: Settings, jobs: JobQueue | None = None) -> Application:
    app = (ApplicationBuilder()
           .token(settings.token)
           .base_url(settings.bot_base_url)
           .base_file_url(settings.file_base_url)
           .post_init(_post_init)
           .context_types(ContextTypes(context=Context, bot_data=BotData))
           # Every answer replies to the message it answers, and is still said when that message was deleted
           # meanwhile (Telegram refuses a reply to a deleted message otherwise: "Queued" would be lost).
           .defaults(Defaults(do_quote=True, allow_sending_without_reply=True))
           .concurrent_updates(True)
           # Telegram's flood limits (30 messages/s overall, 20/min per group); 429s are waited out.
           .rate_limiter(RetryingRateLimiter(max_retries=2))
           .get_updates_request(ReadableUpdates(connection_pool_size=1))
           .build())
    app.bot_data.settings = settings
    app.bot_data.jobs = jobs = jobs or JobQueue(settings.redis_url, settings.queue_name, settings.limits)
    app.bot_data.readiness = Readiness(jobs.redis, jobs.queue.key)

    app.add_handler(TypeHandler(Update, language.resolve), group=-3)
    app.add_handler(TypeHandler(Update, _count_update), group=-2)
    if settings.allowed_chats:
        app.add_handler(TypeHandler(Update, _allowed_only(settings.allowed_chats)), group=-1)
    private = filters.ChatType.PRIVATE
    app.add_handler(CommandHandler(["start", "help"], handlers.help_command))
    app.add_handler(CommandHandler(commands_of(Op.COLORIZE), handlers.colorize_command))
    app.add_handler(CommandHandler("restore", handlers.restore_command))
    app.add_handler(CommandHandler("hints", handlers.hints_command))
    app.add_handler(CommandHandler("style", handlers.style_command))
    app.add_handler(CommandHandler("styles", handlers.styles_command))
    app.add_handler(CommandHandler("stats", stats_command))
    app.add_handler(CommandHandler("language", language.language_command))
    app.add_handler(CommandHandler("forget", handlers.forget_command))
    app.add_handler(CallbackQueryHandler(handlers.style_button, pattern=r"^style:"))
    app.add_handler(CallbackQueryHandler(language.language_button, pattern=r"^language:"))
    app.add_handler(CallbackQueryHandler(followup_buttons.followup_button, pattern=r"^fu:"))
    app.add_handler(CallbackQueryHandler(handlers.unknown_button))  # any other tap, junk data too, is answered
    app.add_handler(MessageReactionHandler(feedback.on_reaction))
    app.add_handler(MessageHandler(filters.PHOTO | filters.Document.ALL, handlers.image_message))
    app.add_handler(MessageHandler(private & (filters.TEXT | filters.COMMAND), handlers.unknown_command))
    app.add_error_handler(handlers.on_error)
    return app
