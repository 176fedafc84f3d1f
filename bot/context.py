"""The context every handler gets: python-telegram-bot's, with typed properties instead of raw `bot_data` keys.

As in python-telegram-bot's `contexttypesbot.py` example: `bot_data` is a `BotData` object holding what the
whole application shares (the settings, the job queue, readiness, the albums arriving, refusal bursts), made
once by `bot.app.build_application`; handlers read `context.jobs`, `context.settings`, ... so a misspelt key
is an AttributeError at the first test, not a KeyError in production. `context.lang` is the language this
update is answered in (set by bot/language.py before any other handler runs).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from telegram.ext import Application, CallbackContext, ExtBot

from bot.contract.options import Vocabulary
from bot.contract.readiness import Readiness
from bot.contract.settings import Settings
from bot.contract.texts import DEFAULT_LANGUAGE
from bot.queue import JobQueue

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


class BotData:
    """What the application shares between updates; set up once by `build_application`."""

    settings: Settings
    jobs: JobQueue
    readiness: Readiness

    def __init__(self):
        self.bursts = Bursts()
        self.albums: dict[tuple[int, str], Any] = {}  # the albums arriving now, by (chat, media group): bot/albums.py


class Context(CallbackContext[ExtBot, dict, dict, BotData]):
    """python-telegram-bot's context, plus the language this update is answered in."""

    __slots__ = ("lang",)

    def __init__(self, application: Application, chat_id: int | None = None, user_id: int | None = None):
        super().__init__(application, chat_id, user_id)
        self.lang = DEFAULT_LANGUAGE

    @property
    def settings(self) -> Settings:
        return self.bot_data.settings

    @property
    def jobs(self) -> JobQueue:
        return self.bot_data.jobs

    @property
    def readiness(self) -> Readiness:
        return self.bot_data.readiness

    @property
    def bursts(self) -> Bursts:
        return self.bot_data.bursts

    @property
    def albums(self) -> dict[tuple[int, str], Any]:
        return self.bot_data.albums

    async def vocabulary(self) -> Vocabulary:
        """The words commands may use: the engines and presets the workers published (bot/queue.py)."""
        return await asyncio.to_thread(self.jobs.vocabulary)
