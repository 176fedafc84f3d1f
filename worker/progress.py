"""A job's status message while it runs: posted only when the job turns out long, then kept current.

Why: a photo that is ready in under a second needs no status message (the bot's chat action says
"sending a photo…"), and each message, edit and delete on the way is a round trip the user waits
for. A job that runs longer (Gatys `hq`, an album, a large file) must not look dead: after
POST_AFTER s without a result, it gets a status message replying to the photo (or keeps the one the
bot posted when the job had to queue), which then shows how far the work is (a percentage or
"3 of 10"), edited at most once per EDIT_EVERY s and only when the text changes. On delivery, the
worker deletes the message (`finish` says which one, if any).

A model call cannot be interrupted to post a message, so a thread of its own does the posting and
editing, with a Bot API client of its own (worker/telegram.py's client runs one event loop, owned
by the job's thread). `show` only records the wanted text; `finish` stops the thread first, so
no edit can land after the result; a status message still waiting for a group's flood slot then is
not posted at all (the result, not a message about it, takes that slot).
"""

from __future__ import annotations

import logging
import threading
import time

from worker.telegram import Cancelled, ChatGone, FloodGate, Telegram

log = logging.getLogger("paintbot.worker")

POST_AFTER = 3.0  # seconds of work before a job without a status message gets one
EDIT_EVERY = 3.0  # seconds at least between two changes of a status message (Telegram's edit limits)
TICK = 0.25

_client_lock = threading.Lock()


def _client(rt) -> Telegram:
    """The progress threads' own Bot API client (one per worker runtime, made on first use, kept with it)."""
    with _client_lock:
        client = getattr(rt, "progress_telegram", None)
        if client is None:
            client = rt.progress_telegram = Telegram(rt.settings, FloodGate(rt.redis))
        return client


class Progress:
    """The status message of one job. `show(text)` from the job's thread; `finish()` once at the end."""

    def __init__(self, rt, chat_id: int, reply_to: int, text: str, message_id: int | None = None,
                 thread_id: int | None = None, post_after: float | None = None, announce: bool = True):
        """`message_id`: the status message the bot posted ("Queued"), if any; with `announce` it says
        `text` from now on (edited here, before the job's work begins: the user's turn has come)."""
        self._rt, self.chat_id, self.reply_to, self.thread_id = rt, chat_id, reply_to, thread_id
        self.message_id = message_id
        self.posted = False  # whether this job posted its status message itself
        self._shown: str | None = None
        self._wanted = text
        self._started = time.monotonic()
        self._post_after = POST_AFTER if post_after is None else post_after
        self._last_change: float | None = None
        if message_id is not None and announce:
            rt.telegram.edit_text(chat_id, message_id, text)
            self._shown, self._last_change = text, time.monotonic()
        elif message_id is not None:
            self._shown, self._last_change = text, time.monotonic()  # left as it is
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"progress-{chat_id}", daemon=True)
        self._thread.start()

    def show(self, text: str) -> None:
        with self._lock:
            self._wanted = text

    def _run(self) -> None:
        while not self._stop.wait(TICK):
            try:
                self._step()
            except ChatGone:
                return
            except Exception:  # a status message is a courtesy: never fail the job over it
                log.warning("status message in chat %s not updated", self.chat_id, exc_info=True)
                return

    def _step(self) -> None:
        with self._lock:
            wanted, now = self._wanted, time.monotonic()
        if self._stop.is_set():
            return
        if self.message_id is None:
            if now - self._started >= self._post_after:
                try:  # a group's flood slot may hold it: once the job is done, it is not worth the wait
                    self.message_id = _client(self._rt).send_text(self.chat_id, wanted, reply_to=self.reply_to,
                                                                  thread_id=self.thread_id, cancel=self._stop)
                except Cancelled:
                    log.info("status message in chat %s not posted: the job ended while it waited for its "
                             "flood slot", self.chat_id)
                    return
                self.posted = True
                self._shown, self._last_change = wanted, time.monotonic()
        elif wanted != self._shown and (self._last_change is None or now - self._last_change >= EDIT_EVERY):
            _client(self._rt).edit_text(self.chat_id, self.message_id, wanted)
            self._shown, self._last_change = wanted, time.monotonic()

    def finish(self) -> int | None:
        """Stop updating; returns the status message's id (None: none was ever shown)."""
        self._stop.set()
        self._thread.join()
        return self.message_id
