"""The worker's side of the Bot API: python-telegram-bot's `Bot`, called synchronously.

RQ runs jobs synchronously, so this wraps the async `Bot` in one private event loop per
process. Every call goes through `_call`, the one place that applies Telegram's rules:
429 waits exactly `retry_after`; timeouts, connection errors and 5xx back off and retry a few
times; 403 (the user blocked the bot, or left the group) becomes `ChatGone` and ends the job
quietly; any other 4xx becomes `Rejected`: the same request would be refused again, so it is
never retried.

Files are only ever fetched over HTTP from the Bot API's file root: python-telegram-bot reads a
`file_path` that names a file on this machine from the local disk (its local mode), so an
absolute or `..` path from getFile is refused here before anything is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import PurePosixPath

from telegram import Bot, File, InputMediaDocument, InputMediaPhoto, ReplyParameters
from telegram.error import BadRequest, ChatMigrated, Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.request import HTTPXRequest

from bot.contract import keys
from bot.contract.job import MAX_DOWNLOAD_BYTES
from bot.contract.settings import Settings
from models.errors import InputError

log = logging.getLogger("paintbot.worker")

MAX_RETRY_AFTER = 120.0  # longer than this and the job's own retry is the better wait
NETWORK_ATTEMPTS = 4

# Telegram's flood limits for outgoing messages, shared by every worker through Redis:
# about one message a second per chat, 20 a minute per group, 30 a second overall.
PRIVATE_INTERVAL, GROUP_INTERVAL, GLOBAL_INTERVAL = 1.0, 3.0, 1.0 / 30
# Reserve the next free send slot of a key: returns how long the caller must wait (seconds). The key lives until
# the slot after the one reserved has passed (plus a second): with a lifetime of one interval, a slot reserved
# far ahead (senders queued behind each other, a busy group) was forgotten and the next sender went at once.
_RESERVE_SLOT = """
local now = tonumber(ARGV[1])
local slot = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
local free = slot + tonumber(ARGV[2])
redis.call('SET', KEYS[1], tostring(free), 'PX', math.ceil((free - now) * 1000) + 1000)
return tostring(slot - now)
"""


class FloodGate:
    """Spaces out sends so that all workers together stay inside Telegram's flood limits."""

    def __init__(self, conn):
        self._reserve = conn.register_script(_RESERVE_SLOT)

    def wait(self, chat_id: int, cancel: threading.Event | None = None) -> bool:
        """Wait for this worker's slot; False if `cancel` was set meanwhile (the send is no longer wanted)."""
        interval = GROUP_INTERVAL if chat_id < 0 else PRIVATE_INTERVAL
        now = time.time()
        delay = max(float(self._reserve(keys=[keys.flood(chat_id)], args=[now, interval])),
                    float(self._reserve(keys=[keys.FLOOD_ALL], args=[now, GLOBAL_INTERVAL])))
        return not (cancel or threading.Event()).wait(max(delay, 0))


@dataclass(frozen=True)
class Sent:
    """A result as Telegram holds it now: its message, and the file ids that send it again (bot/contract/cache.py)."""

    message_id: int
    file_id: str | None
    file_unique_id: str | None
    as_document: bool = False
    chat_id: int | None = None  # the chat it landed in: the job's, or the supergroup its group became

    @classmethod
    def of(cls, message) -> "Sent":
        media = message.photo[-1] if message.photo else message.document
        return cls(message.message_id, media.file_id if media else None, media.file_unique_id if media else None,
                   message.document is not None, message.chat_id)


class ChatGone(Exception):
    """The chat can no longer be written to (403): nobody is left to tell."""


class Cancelled(Exception):
    """A send given up while it waited for its flood slot: whoever asked for it no longer wants it."""


class Rejected(Exception):
    """Telegram refused the request for good (a 4xx other than 403 and 429): asking again gets the same."""


class _Moved(Exception):
    """The group was upgraded to a supergroup with a new id (Telegram's ChatMigrated)."""

    def __init__(self, chat_id: int):
        super().__init__(chat_id)
        self.chat_id = chat_id


class TokenRejected(Rejected):
    """Telegram does not know the token (401): no call this worker makes can succeed."""


class _Request(HTTPXRequest):
    """python-telegram-bot raises the 4xx answers it has no class for (413, 410, ...) as NetworkError,
    which reads as worth retrying; they are as final as a 400, so they are raised as BadRequest."""

    _CLASSIFIED = frozenset({400, 401, 403, 404, 409, 429})

    async def do_request(self, *args, **kwargs) -> tuple[int, bytes]:
        code, payload = await super().do_request(*args, **kwargs)
        if 400 <= code < 500 and code not in self._CLASSIFIED:
            raise BadRequest(f"HTTP {code}: {payload[:200].decode(errors='replace')}")
        return code, payload


class Telegram:
    def __init__(self, settings: Settings, flood_gate: FloodGate | None = None):
        self._loop = asyncio.new_event_loop()
        self._gate = flood_gate
        request = _Request(connection_pool_size=4, connect_timeout=10, read_timeout=30,
                               write_timeout=60, media_write_timeout=120)
        self.bot = Bot(settings.token, base_url=settings.bot_base_url, base_file_url=settings.file_base_url,
                       request=request, get_updates_request=request)
        self._ready = False
        # Groups that became supergroups (a new chat id, for good), as Telegram said: old id -> new id.
        self._moved: dict[int, int] = {}

    def check(self) -> None:
        """Ask Telegram who this bot is (getMe), as a worker starts: raises TokenRejected when the token is
        refused, so that a mistyped or revoked token stops the worker at once instead of failing every job."""
        self._username = self._call("get_me").username

    def username(self) -> str | None:
        """The bot's @username (getMe, asked once): a group's "Pick colours" link names it. None if unreachable."""
        if getattr(self, "_username", None) is None:
            try:
                self.check()
            except Exception as exc:  # noqa: BLE001 - the button is left out, the result still goes
                log.warning("the bot's username is unknown (%s): no Pick colours link in groups", type(exc).__name__)
                return None
        return self._username

    def _call(self, method: str, *args, **kwargs):
        """Call Bot API `method` (a chat is always named by keyword, `chat_id=`). A group that was upgraded
        to a supergroup is followed once to its new id, for this call and every later one: the result of a
        request made just before the upgrade still arrives, in the supergroup."""
        chat = kwargs.get("chat_id")
        if chat is not None:
            kwargs["chat_id"] = self._moved.get(chat, chat)
        try:
            return self._run(method, lambda: getattr(self.bot, method)(*args, **kwargs))
        except _Moved as moved:
            if chat is None or kwargs["chat_id"] == moved.chat_id:
                raise Rejected(f"{method}: chat {chat} moved, but not to another chat") from None
            log.info("chat %s is now supergroup %s: %s goes there", chat, moved.chat_id, method)
            self._moved[chat] = kwargs["chat_id"] = moved.chat_id
        try:
            return self._run(method, lambda: getattr(self.bot, method)(*args, **kwargs))
        except _Moved:  # once only: a chain of moves is no chat to write to
            raise Rejected(f"{method}: chat {chat} moved twice") from None

    def _run(self, what: str, make_coro):
        attempt = 0
        while True:
            attempt += 1
            try:
                if not self._ready:
                    self._complete(self.bot.initialize())
                    self._ready = True
                return self._complete(make_coro())
            except RetryAfter as exc:
                wait = exc.retry_after.total_seconds() if hasattr(exc.retry_after, "total_seconds") \
                    else float(exc.retry_after)
                if wait > MAX_RETRY_AFTER:
                    raise
                log.warning("Telegram flood limit on %s: waiting %.0f s as asked", what, wait)
                time.sleep(wait)
            except Forbidden as exc:
                raise ChatGone(str(exc)) from None
            except InvalidToken:  # 401/404: its text quotes the token, so not carried on
                raise TokenRejected(what) from None
            except ChatMigrated as exc:
                raise _Moved(exc.new_chat_id) from None
            except (BadRequest, Conflict) as exc:  # 400, 409: final
                raise Rejected(f"{what}: {exc}") from None
            except NetworkError as exc:  # TimedOut, connection errors and 5xx answers
                if attempt >= NETWORK_ATTEMPTS:
                    raise
                delay = min(2 ** attempt, 30)
                log.warning("Telegram %s failed (%s), retrying in %d s", what, exc, delay)
                time.sleep(delay)

    def _complete(self, coro):
        """Run one call to completion. If something interrupts it (RQ's job timeout arrives as an
        exception from a signal handler), cancel the request so the loop is clean for the next call."""
        task = self._loop.create_task(coro)
        try:
            return self._loop.run_until_complete(task)
        except BaseException:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    self._loop.run_until_complete(task)
            raise

    def download(self, file_id: str) -> bytes:
        """A user's file, over HTTP from the Bot API. Raises InputError when Telegram will not give it:
        too big for bots to download, or no longer there (the user is asked to send it again)."""
        try:
            info = self._call("get_file", file_id)
            remote = File(info.file_id, info.file_unique_id, info.file_size, self._file_url(info.file_path))
            remote.set_bot(self.bot)
            return bytes(self._run("download", remote.download_as_bytearray))
        except Rejected as exc:
            if "too big" in str(exc).lower():
                raise InputError("too_big", str(exc), limit_mb=MAX_DOWNLOAD_BYTES // 2**20) from None
            raise InputError("photo.gone", str(exc)) from None

    def _file_url(self, file_path: str | None) -> str:
        """The HTTP URL of a getFile `file_path`, which must be relative and stay under the file root.
        (python-telegram-bot prefixes the root only when the path is not a file on this machine.)"""
        root = f"{self.bot.base_file_url}/"
        path = (file_path or "").removeprefix(root)
        if not path or path.startswith("/") or ".." in PurePosixPath(path).parts:
            log.warning("getFile answered an unusable file_path %r: not fetched", path)
            raise Rejected(f"getFile: unusable file_path {path!r}")
        return root + path

    def _before_send(self, chat_id: int, cancel: threading.Event | None = None) -> None:
        if self._gate is not None and not self._gate.wait(chat_id, cancel):
            raise Cancelled(f"send to chat {chat_id} no longer wanted")

    def send_image(self, chat_id: int, reply_to: int | None, data: bytes, as_document: bool, filename: str,
                   caption: str | None = None, reply_markup=None, thread_id: int | None = None) -> "Sent":
        """Send a result (with `reply_markup`, its follow-up buttons; into forum topic `thread_id`, as every
        send here); returns its message and file ids."""
        self._before_send(chat_id)
        # allow_sending_without_reply: if the photo was deleted meanwhile, still deliver the result.
        # No reply_to: an answer to a plain command in a private chat, which needs no quote.
        reply = ReplyParameters(message_id=reply_to, allow_sending_without_reply=True) if reply_to else None
        if as_document:
            sent = self._call("send_document", chat_id=chat_id, document=data, filename=filename, caption=caption,
                              reply_parameters=reply, disable_content_type_detection=True, reply_markup=reply_markup,
                              message_thread_id=thread_id)
        else:
            sent = self._call("send_photo", chat_id=chat_id, photo=data, filename=filename, caption=caption,
                              reply_parameters=reply, reply_markup=reply_markup, message_thread_id=thread_id)
        return Sent.of(sent)

    def send_album(self, chat_id: int, reply_to: int, items: list[tuple[bytes, str]], as_document: bool,
                   caption: str | None = None, thread_id: int | None = None) -> list["Sent"]:
        """Send 2 to 10 results as one album (photos, or files: Telegram does not mix them), the caption
        on the first; returns each as Telegram holds it, in order."""
        self._before_send(chat_id)
        reply = ReplyParameters(message_id=reply_to, allow_sending_without_reply=True)
        media = [InputMediaDocument(data, filename=name, caption=caption if i == 0 else None,
                                    disable_content_type_detection=True) if as_document else
                 InputMediaPhoto(data, filename=name, caption=caption if i == 0 else None)
                 for i, (data, name) in enumerate(items)]
        sent = self._call("send_media_group", chat_id=chat_id, media=media, reply_parameters=reply,
                          message_thread_id=thread_id)
        return [Sent.of(m) for m in sent]

    def send_text(self, chat_id: int, text: str, reply_to: int | None = None, reply_markup=None,
                  thread_id: int | None = None, cancel: threading.Event | None = None) -> int:
        """Send a text (with `reply_markup`, buttons under it); returns its message id. `cancel`: set, while
        the text waits for the chat's flood slot, it is not sent (raises Cancelled)."""
        reply = ReplyParameters(message_id=reply_to, allow_sending_without_reply=True) if reply_to else None
        self._before_send(chat_id, cancel)
        return self._call("send_message", chat_id=chat_id, text=text, reply_parameters=reply,
                          reply_markup=reply_markup, message_thread_id=thread_id).message_id

    def edit_text(self, chat_id: int, message_id: int, text: str) -> bool:
        """Edit a status message; False if it is gone (deleted by the user), which is fine."""
        try:
            self._call("edit_message_text", text, chat_id=chat_id, message_id=message_id)
            return True
        except (Rejected, NetworkError) as exc:
            log.info("could not edit status message %s in chat %s: %s", message_id, chat_id, exc)
            return False

    def delete(self, chat_id: int, message_id: int) -> None:
        try:
            self._call("delete_message", chat_id=chat_id, message_id=message_id)
        except (Rejected, NetworkError) as exc:
            log.info("could not delete status message %s in chat %s: %s", message_id, chat_id, exc)

    def chat_action(self, chat_id: int, action: str, thread_id: int | None = None) -> None:
        try:
            self._call("send_chat_action", chat_id=chat_id, action=action, message_thread_id=thread_id)
        except (Rejected, NetworkError):
            pass  # "uploading…" is a nicety; never fail a job over it
