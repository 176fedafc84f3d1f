"""A fake Telegram Bot API server on loopback, for tests.

It speaks the real HTTP API (the subset paintbot uses) so the real python-telegram-bot client,
in the bot and in the worker, talks to it exactly as to api.telegram.org:
methods at {root}/bot<token>/METHOD, files at {root}/file/bot<token>/PATH.

Tests script users (`user_sends_photo`, `user_sends_text`, `user_sends_album`, `user_forwards`,
`user_presses_button`, `user_reacts`, ...; a user may carry their app's `language_code`; a message may be
sent on behalf of a chat: `sender_chat`), then read what the bot did (`calls`, `wait_for`, `bot_messages`,
`commands` per language) and inject real error responses (`fail`, `delay`, `flood_limit`) and a hostile or
broken server (`answer_file_path`, `push_update` of updates a client cannot parse, `redeliver` after a
crash, `bot_left_keyboard`). Telegram's own rules that a bot can trip over are enforced with Telegram's
error texts: reply targets, text/caption lengths, photo size and dimensions, the 20 MB getFile limit,
callback data of at most 64 bytes, one getUpdates poller at a time, albums (sendMediaGroup) of 2 to 10 items
that do not mix documents with photos. Every request is recorded as a `Call`; file downloads are recorded
(and can be failed or delayed) under the method name `DOWNLOAD`. `Call.at` gives per-chat send times for
flood-limit checks.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import re
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_GETFILE_BYTES = 20 * 1024 * 1024  # bots may download at most this much
MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # bots may upload at most this much
MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_TEXT, MAX_CAPTION = 4096, 1024
SEND_METHODS = frozenset({"sendMessage", "sendPhoto", "sendDocument", "sendMediaGroup"})
MEDIA_GROUP_MIN, MEDIA_GROUP_MAX = 2, 10  # sendMediaGroup: an album holds 2 to 10 items
DOWNLOAD = "download"  # the method name file downloads are recorded, failed and delayed under
CHAT_ACTIONS = frozenset({"typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
                          "upload_document", "choose_sticker", "find_location", "record_video_note",
                          "upload_video_note"})
# Parameters Telegram types as String: sent as they are, never JSON-decoded (a text "42" stays "42").
_STRING_PARAMS = frozenset({"text", "caption", "photo", "document", "file_id", "callback_query_id", "parse_mode",
                            "url", "secret_token", "action", "language_code", "inline_message_id", "ip_address",
                            "business_connection_id", "message_effect_id"})
_COMMAND = re.compile(r"(?<![\w/@])/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?![\w@/])")
_COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")
# Update types Telegram only sends to a bot that asked for them by name in allowed_updates.
_ONLY_ON_REQUEST = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
# The users Telegram puts in `from` of messages sent on behalf of a chat (`sender_chat`).
GROUP_ANONYMOUS_BOT = {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
CHANNEL_BOT = {"id": 136817688, "is_bot": True, "first_name": "Channel", "username": "Channel_Bot"}


@dataclass
class Upload:
    data: bytes
    filename: str | None
    content_type: str | None


@dataclass
class Call:
    method: str
    params: dict
    files: dict[str, Upload]
    at: float  # time.time() when the request arrived
    status: int = 200
    description: str | None = None  # the error text when status != 200

    @property
    def chat_id(self) -> int | None:
        v = self.params.get("chat_id")
        try:
            return int(v) if v is not None else None
        except (TypeError, ValueError):  # "@channelusername"
            return None

    @property
    def reply_to(self) -> int | None:
        rp = self.params.get("reply_parameters")
        if rp:
            return int(rp["message_id"])
        v = self.params.get("reply_to_message_id")
        return int(v) if v is not None else None

    def __str__(self) -> str:
        params = {k: (v if len(repr(v)) < 120 else repr(v)[:117] + "...") for k, v in self.params.items()}
        files = {k: f"<{len(u.data)} bytes {u.filename!r} {u.content_type}>" for k, u in self.files.items()}
        outcome = self.status if self.status == 200 else f"{self.status} {self.description!r}"
        return f"{self.method} -> {outcome} {params}{' ' + str(files) if files else ''}"


@dataclass
class Fault:
    method: str
    status: int
    description: str
    retry_after: int | None
    times: int
    chat_id: int | None


@dataclass
class _Chat:
    info: dict
    messages: dict[int, dict] = field(default_factory=dict)
    next_id: itertools.count = field(default_factory=lambda: itertools.count(1))


@dataclass
class _File:
    data: bytes | None  # None: only announced (a size too big to store or to download)
    size: int
    name: str | None = None
    mime: str | None = None


class _ApiError(Exception):
    def __init__(self, status: int, description: str, retry_after: int | None = None,
                 migrate_to_chat_id: int | None = None):
        super().__init__(description)
        self.status, self.description, self.retry_after = status, description, retry_after
        self.migrate_to_chat_id = migrate_to_chat_id


def _bad(description: str) -> _ApiError:
    return _ApiError(400, f"Bad Request: {description}")


def _decode(name: str, value: str):
    """PTB sends strings as they are and everything else JSON-encoded; Telegram knows which is which."""
    if name in _STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value  # a string in a field that may be either (chat_id "@channel")


def _need(p: dict, key: str):
    value = p.get(key)
    if value is None or value == "":
        raise _bad(f"{key} is empty")
    return value


def _without_reply(msg: dict) -> dict:
    """Telegram nests reply_to_message one level only."""
    return {k: v for k, v in msg.items() if k != "reply_to_message"}


class FakeTelegram:
    def __init__(self, token: str = "123456:TEST-TOKEN", bot_username: str = "paintbot_test_bot"):
        self.token = token
        self.bot_username = bot_username
        self.bot_user = {"id": int(token.split(":")[0]), "is_bot": True, "first_name": "Paintbot",
                         "username": bot_username, "can_join_groups": True,
                         "can_read_all_group_messages": False, "supports_inline_queries": False}
        self._lock = threading.Condition()
        self._updates: list[dict] = []  # not yet confirmed by a getUpdates offset
        self._last_update: dict | None = None
        self.pushed_at: dict[int, float] = {}  # update_id -> time.time() when it became available to the bot
        self._update_ids = itertools.count(1)
        self._allowed: set[str] | None = None  # allowed_updates of the last getUpdates/setWebhook; None: all
        self._poll_gen = 0
        self._chats: dict[int, _Chat] = {}
        self._files: dict[str, _File] = {}
        self._file_ids = itertools.count(1)
        self._queries: dict[str, bool] = {}  # callback query id -> answered
        self._query_ids = itertools.count(1)
        self._faults: list[Fault] = []
        self._migrated: dict[int, int] = {}  # a group upgraded to a supergroup: old id -> new id
        self._delays: dict[str, float] = {}
        self._file_paths: dict[str, str] = {}  # file_id -> the file_path getFile answers instead
        self._flood_interval: float | None = None
        self._last_send: dict[int, float] = {}
        self._calls: list[Call] = []
        self.commands: dict[str, list] = {}  # the command menu by language_code ("": every other language)
        self.webhook: dict = {}
        self._httpd: ThreadingHTTPServer | None = None
        self._stopping = False

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeTelegram:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # An answer goes out as two writes (head, body); with Nagle's algorithm the body waits for
            # the client's delayed ACK of the head, up to 40 ms on loopback: a stall Telegram does not have.
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_GET(self):
                fake._handle(self)

            do_POST = do_GET

        self._stopping = False
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="fake-telegram", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd:
            with self._lock:
                self._stopping = True  # long polls answer now
                self._lock.notify_all()
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def api_root(self) -> str:
        if self._httpd is None:
            raise RuntimeError("FakeTelegram is not running: call start() first")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # --- chats and users -------------------------------------------------------------------
    def user(self, user_id: int, first_name: str | None = None, language_code: str | None = None) -> dict:
        """A Telegram user; `language_code` is their app's language, as Telegram passes it on ("es", "pt-br")."""
        user = {"id": user_id, "is_bot": False, "first_name": first_name or f"User{user_id}"}
        if language_code:
            user["language_code"] = language_code
        return user

    def private_chat(self, user_id: int) -> dict:
        if user_id <= 0:
            raise ValueError(f"private chat ids are user ids, positive: got {user_id}")
        return self._chat({"id": user_id, "type": "private", "first_name": f"User{user_id}"})

    def group_chat(self, chat_id: int, title: str = "Family photos", supergroup: bool = True,
                   forum: bool = False) -> dict:
        """A group; `forum`: a supergroup with topics (messages then belong to a topic, or to General)."""
        if chat_id >= 0:
            raise ValueError(f"group chat ids are negative: got {chat_id}")
        info = {"id": chat_id, "type": "supergroup" if supergroup or forum else "group", "title": title}
        return self._chat({**info, "is_forum": True} if forum else info)

    def migrate(self, group: dict, supergroup_id: int) -> dict:
        """The group is upgraded to a supergroup with a new id, as Telegram does when a group grows or gets
        topics: from now on every request to the old id is refused with `migrate_to_chat_id`."""
        new = self.group_chat(supergroup_id, group.get("title", "Family photos"))
        with self._lock:
            self._migrated[group["id"]] = supergroup_id
        return new

    def channel_chat(self, chat_id: int, title: str = "Old photos channel") -> dict:
        if chat_id >= 0:
            raise ValueError(f"channel ids are negative: got {chat_id}")
        return self._chat({"id": chat_id, "type": "channel", "title": title})

    def _chat(self, info: dict) -> dict:
        with self._lock:
            return self._chats.setdefault(info["id"], _Chat(info)).info

    def _new_message(self, chat_id: int, sender: dict, **content) -> dict:
        """Store a message in a chat (caller holds the lock)."""
        chat = self._chats[chat_id]
        msg = {"message_id": next(chat.next_id), "from": sender, "chat": chat.info, "date": int(time.time())}
        msg.update((k, v) for k, v in content.items() if v is not None)
        chat.messages[msg["message_id"]] = msg
        return msg

    def _store_file(self, data: bytes | None, size: int | None = None, name: str | None = None,
                    mime: str | None = None) -> str:
        """Keep a file and give it a file_id (caller holds the lock)."""
        fid = f"AgAC{next(self._file_ids):06d}-fake-file-id"
        self._files[fid] = _File(data, len(data) if data is not None else int(size or 0), name, mime)
        return fid

    @staticmethod
    def _file_dict(fid: str, f: _File) -> dict:
        return {"file_id": fid, "file_unique_id": f"AQAD{fid[4:10]}", "file_size": f.size}

    def _photo_sizes(self, data: bytes) -> list[dict]:
        """PhotoSize list (a 90 px thumbnail, then the image itself, largest last) for image bytes.
        Raises ValueError if PIL cannot read them."""
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            im.load()
            size = im.size
            thumb = im.convert("RGB")
        thumb.thumbnail((90, 90))
        buf = io.BytesIO()
        thumb.save(buf, "JPEG")
        sizes = []
        with self._lock:
            for blob, (w, h) in ((buf.getvalue(), thumb.size), (data, size)):
                fid = self._store_file(blob, mime="image/jpeg")
                sizes.append({**self._file_dict(fid, self._files[fid]), "width": w, "height": h})
        return sizes

    @staticmethod
    def _entities(text: str | None) -> list[dict] | None:
        """bot_command entities as Telegram marks them (offsets and lengths in UTF-16 code units)."""
        def u16(s: str) -> int:
            return len(s.encode("utf-16-le")) // 2

        found = [{"type": "bot_command", "offset": u16(text[:m.start()]), "length": u16(m.group())}
                 for m in _COMMAND.finditer(text or "")]
        return found or None

    def _default_user(self, chat: dict) -> dict:
        return self.user(chat["id"]) if chat["type"] == "private" else self.user(999)

    def _user_message(self, chat: dict, user: dict | None, reply_to: int | None, sender_chat: dict | None = None,
                      topic: int | None = None, **content) -> dict:
        """A user's message. With `sender_chat` it is sent on behalf of a chat, as Telegram shows those:
        `from` is GroupAnonymousBot for the group itself (an anonymous admin), Channel_Bot for a channel.
        With `topic`, it is posted in that topic of a forum."""
        if topic is not None:
            if not chat.get("is_forum"):
                raise ValueError(f"chat {chat['id']} has no topics")
            content.update(message_thread_id=topic, is_topic_message=True)
        if sender_chat is not None:
            user = GROUP_ANONYMOUS_BOT if sender_chat["id"] == chat["id"] else CHANNEL_BOT
            content["sender_chat"] = sender_chat
        with self._lock:
            self._chat(chat)
            if reply_to is not None:
                target = self._chats[chat["id"]].messages.get(reply_to)
                if target is None:
                    raise ValueError(f"no message {reply_to} in chat {chat['id']} to reply to")
                content["reply_to_message"] = _without_reply(target)
            msg = self._new_message(chat["id"], user or self._default_user(chat), **content)
            self._push({"message": msg})
            return msg

    def user_sends_text(self, chat: dict, text: str, user: dict | None = None, reply_to: int | None = None,
                        sender_chat: dict | None = None, topic: int | None = None) -> dict:
        return self._user_message(chat, user, reply_to, sender_chat, topic, text=text, entities=self._entities(text))

    def user_sends_photo(self, chat: dict, image_bytes: bytes, caption: str | None = None, user: dict | None = None,
                         reply_to: int | None = None, sender_chat: dict | None = None, topic: int | None = None) -> dict:
        try:
            sizes = self._photo_sizes(image_bytes)
        except Exception as exc:
            raise ValueError(f"user_sends_photo needs image bytes PIL can read ({exc}); "
                             "use user_sends_document for other files") from None
        return self._user_message(chat, user, reply_to, sender_chat, topic, photo=sizes, caption=caption,
                                  caption_entities=self._entities(caption))

    def user_sends_document(self, chat: dict, data: bytes | None, file_name: str, mime_type: str,
                            caption: str | None = None, user: dict | None = None, reply_to: int | None = None,
                            file_size: int | None = None, sender_chat: dict | None = None) -> dict:
        """`data=None, file_size=N` announces a file over getFile's 20 MB limit without storing it."""
        if data is None and (file_size or 0) <= MAX_GETFILE_BYTES:
            raise ValueError(f"pass the document's bytes, or data=None with a file_size over {MAX_GETFILE_BYTES}")
        with self._lock:
            fid = self._store_file(data, file_size, file_name, mime_type)
            doc = {**self._file_dict(fid, self._files[fid]), "file_name": file_name, "mime_type": mime_type}
        return self._user_message(chat, user, reply_to, sender_chat, document=doc, caption=caption,
                                  caption_entities=self._entities(caption))

    def user_sends_album(self, chat: dict, items: Sequence[bytes | tuple[bytes, str, str]], caption: str | None = None,
                         caption_on: int = 0, user: dict | None = None, topic: int | None = None) -> list[dict]:
        """A media group: one message (and one update) per item, all with the same `media_group_id`, as
        Telegram delivers albums. An item is photo bytes, or (bytes, file_name, mime_type) for a file;
        the album's caption sits on item `caption_on` only. Returns the messages, in order."""
        if not MEDIA_GROUP_MIN <= len(items) <= MEDIA_GROUP_MAX:
            raise ValueError(f"an album holds {MEDIA_GROUP_MIN} to {MEDIA_GROUP_MAX} items, not {len(items)}")
        group = str(13_000_000_000_000_000 + next(self._file_ids))
        sent = []
        for i, item in enumerate(items):
            text = caption if i == caption_on else None
            if isinstance(item, tuple):
                data, name, mime = item
                with self._lock:
                    fid = self._store_file(data, None, name, mime)
                    doc = {**self._file_dict(fid, self._files[fid]), "file_name": name, "mime_type": mime}
                sent.append(self._user_message(chat, user, None, None, topic, document=doc, caption=text,
                                               caption_entities=self._entities(text), media_group_id=group))
            else:
                sent.append(self._user_message(chat, user, None, None, topic, photo=self._photo_sizes(item), caption=text,
                                               caption_entities=self._entities(text), media_group_id=group))
        return sent

    def user_forwards(self, chat: dict, message: dict, user: dict | None = None, caption: str | None = None) -> dict:
        """`user` forwards (or sends again from their gallery of sent files) the photo or file of `message`
        into `chat`: a new message carrying the same file, so the same file_unique_id, as Telegram does."""
        media = {k: message[k] for k in ("photo", "document") if k in message}
        if not media:
            raise ValueError(f"message {message['message_id']} carries no photo or file to forward")
        origin = {"type": "user", "sender_user": message["from"], "date": message["date"]}
        return self._user_message(chat, user, None, None, forward_origin=origin, caption=caption,
                                  caption_entities=self._entities(caption), **media)

    def user_presses_button(self, chat: dict, message_id: int, data: str, user: dict | None = None) -> dict:
        """A callback_query for a button of an inline keyboard the bot sent; returns the CallbackQuery."""
        with self._lock:
            msg = self._chats[chat["id"]].messages.get(message_id) if chat["id"] in self._chats else None
            if msg is None:
                raise ValueError(f"no message {message_id} in chat {chat['id']}")
            rows = (msg.get("reply_markup") or {}).get("inline_keyboard", [])
            offered = [b.get("callback_data") for row in rows for b in row]
            if data not in offered:
                raise ValueError(f"message {message_id} has no button with data {data!r}: it offers {offered}")
            qid = str(next(self._query_ids) * 7919 + 10**12)  # Telegram's look: long decimal strings
            self._queries[qid] = False
            query = {"id": qid, "from": user or self._default_user(chat), "message": msg,
                     "chat_instance": str(-abs(chat["id"]) * 31), "data": data}
            self._push({"callback_query": query})
            return query

    def user_reacts(self, chat: dict, message_id: int, new: Sequence[str], old: Sequence[str] = (),
                    user: dict | None = None) -> dict:
        """A `message_reaction` update: `user` changed their emoji reactions to a message from `old` to
        `new`. Telegram sends it for private chats, and for groups where the bot is an admin; a bot that
        did not name message_reaction in allowed_updates never gets it."""
        with self._lock:
            if self._chats.get(chat["id"]) is None or message_id not in self._chats[chat["id"]].messages:
                raise ValueError(f"no message {message_id} in chat {chat['id']} to react to")
            reaction = {"chat": self._chats[chat["id"]].info, "message_id": message_id,
                        "user": user or self._default_user(chat), "date": int(time.time()),
                        "old_reaction": [{"type": "emoji", "emoji": e} for e in old],
                        "new_reaction": [{"type": "emoji", "emoji": e} for e in new]}
            self._push({"message_reaction": reaction})
            return reaction

    def bot_left_keyboard(self, chat: dict, callback_data: list[str], reply_to: int | None = None) -> dict:
        """A message with an inline keyboard that the bot sent long ago (an earlier release of it, say),
        whose buttons carry this data; returns the message."""
        with self._lock:
            self._chat(chat)
            content = {"text": "Pick one:",
                       "reply_markup": {"inline_keyboard": [[{"text": d, "callback_data": d} for d in callback_data]]}}
            if reply_to is not None:
                content["reply_to_message"] = _without_reply(self._chats[chat["id"]].messages[reply_to])
            return self._new_message(chat["id"], self.bot_user, **content)

    def push_update(self, payload: dict) -> dict:
        """An update exactly as given, with the next update_id: e.g. one a client library cannot parse."""
        with self._lock:
            update = dict(payload)
            self._push(update)
            return update

    def redeliver(self, update: dict) -> None:
        """Serve `update` again, with its own update_id, as Telegram does when the bot stopped before
        confirming it (a crash): the next poller starting afresh (offset 0) receives it again."""
        with self._lock:
            self._updates = sorted([*self._updates, dict(update)], key=lambda u: u["update_id"])
            self._lock.notify_all()

    def unconfirmed(self) -> int:
        """How many updates the bot has not confirmed yet (Telegram would serve them again)."""
        with self._lock:
            return len(self._updates)

    def last_update(self) -> dict:
        """The most recent scripted update (to post it to a webhook instead of serving it by getUpdates)."""
        with self._lock:
            if self._last_update is None:
                raise ValueError("no update has been scripted yet")
            return dict(self._last_update)

    def _push(self, update: dict) -> None:
        update["update_id"] = next(self._update_ids)
        self.pushed_at[update["update_id"]] = time.time()
        self._updates.append(update)
        self._last_update = update
        self._lock.notify_all()

    # --- inspection ------------------------------------------------------------------------
    def _matching(self, what: str | Callable[[Call], bool] | None, chat_id: int | None, ok_only: bool) -> list[Call]:
        """Recorded calls that match (caller holds the lock)."""
        return [c for c in self._calls
                if (what is None or (c.method == what if isinstance(what, str) else what(c)))
                and (chat_id is None or c.chat_id == chat_id)
                and (not ok_only or c.status == 200)]

    def calls(self, method: str | None = None, chat_id: int | None = None, ok_only: bool = True) -> list[Call]:
        """Recorded requests, oldest first: by default only those Telegram answered with ok."""
        with self._lock:
            return self._matching(method, chat_id, ok_only)

    def wait_for(self, what: str | Callable[[Call], bool], count: int = 1, timeout: float = 30,
                 chat_id: int | None = None, ok_only: bool = True) -> list[Call]:
        """Block until `count` calls match (a method name, or a predicate on `Call`); return them all.
        On timeout, raise AssertionError listing every request the bot made."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(found := self._matching(what, chat_id, ok_only)) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    name = what if isinstance(what, str) else getattr(what, "__name__", "predicate")
                    raise AssertionError(f"waited {timeout} s for {count}x {name}"
                                         f"{f' in chat {chat_id}' if chat_id is not None else ''}, "
                                         f"got {len(found)}. Requests so far:\n{self._dump()}")
                self._lock.wait(left)
            return found

    def _dump(self) -> str:
        if not self._calls:
            return "  (none)"
        t0 = self._calls[0].at
        lines = [f"  {c.at - t0:7.3f}s {c}" for c in self._calls
                 if not (c.method == "getUpdates" and c.status == 200)]
        pending = [f for f in self._faults if f.times > 0]
        return "\n".join(lines + ([f"  pending faults: {pending}"] if pending else []))

    def bot_messages(self, chat_id: int) -> list[dict]:
        """What the user now sees from the bot in a chat: its messages, edited, minus deleted ones."""
        with self._lock:
            chat = self._chats.get(chat_id)
            return [m for m in (chat.messages.values() if chat else ()) if m["from"]["id"] == self.bot_user["id"]]

    def message(self, chat_id: int, message_id: int) -> dict | None:
        with self._lock:
            chat = self._chats.get(chat_id)
            return chat.messages.get(message_id) if chat else None

    def sent_file(self, call: Call) -> bytes:
        """The bytes of what the bot uploaded (or re-sent by file_id) in a sendPhoto/sendDocument call."""
        if call.files:
            return next(iter(call.files.values())).data
        key = "photo" if call.method == "sendPhoto" else "document"
        with self._lock:
            return self._files[call.params[key]].data

    def reset(self) -> None:
        """Forget recorded calls, pending faults, delays and the flood limit. Chats, messages, files
        and unconfirmed updates stay."""
        with self._lock:
            self._calls.clear()
            self._faults.clear()
            self._delays.clear()
            self._file_paths.clear()
            self._flood_interval = None
            self._last_send.clear()

    # --- fault injection -------------------------------------------------------------------
    def fail(self, method: str, status: int, description: str, retry_after: int | None = None, times: int = 1,
             chat_id: int | None = None) -> None:
        """Answer the next `times` calls of `method` (to `chat_id`, if given) with this error, e.g.
        429 + retry_after, 500/502, or 403 "Forbidden: bot was blocked by the user"."""
        with self._lock:
            self._faults.append(Fault(method, status, description, retry_after, times, chat_id))

    def answer_file_path(self, file_id: str, file_path: str) -> None:
        """Answer getFile for `file_id` with this `file_path`: a hostile or broken Bot API naming an
        absolute or `..` path, or a path that happens to exist on the client's own disk."""
        with self._lock:
            self._file_paths[file_id] = file_path

    def delay(self, method: str, seconds: float) -> None:
        """Hold every call of `method` this long before answering (0 ends it): the client's timeouts."""
        with self._lock:
            if seconds > 0:
                self._delays[method] = seconds
            else:
                self._delays.pop(method, None)

    def flood_limit(self, seconds: float | None) -> None:
        """Answer 429 + retry_after to a send into a chat less than `seconds` after the last one
        (None: no limit), as Telegram does to bots that flood a chat."""
        with self._lock:
            self._flood_interval = seconds

    def _take_fault(self, call: Call) -> Fault | None:
        with self._lock:
            for f in self._faults:
                if f.method == call.method and f.times > 0 and (f.chat_id is None or f.chat_id == call.chat_id):
                    f.times -= 1
                    return f
        return None

    def _check_flood(self, call: Call) -> None:
        chat_id = call.chat_id
        if call.method not in SEND_METHODS or chat_id is None:
            return
        with self._lock:
            now = time.monotonic()
            last = self._last_send.get(chat_id)
            if self._flood_interval and last is not None and now - last < self._flood_interval:
                wait = max(1, math.ceil(self._flood_interval - (now - last)))
                raise _ApiError(429, f"Too Many Requests: retry after {wait}", wait)
            self._last_send[chat_id] = now  # counted on arrival: two racing sends cannot both pass

    # --- HTTP ------------------------------------------------------------------------------
    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        split = urllib.parse.urlsplit(req.path)
        path = urllib.parse.unquote(split.path)
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        for prefix, serve in (("/file/bot", self._serve_file), ("/bot", self._serve_method)):
            if path.startswith(prefix):
                token, _, rest = path[len(prefix):].partition("/")
                if token != self.token:
                    return self._reply(req, 401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
                return serve(req, rest, split.query, body)
        self._reply(req, 404, {"ok": False, "error_code": 404, "description": "Not Found"})

    def _serve_method(self, req, method: str, query: str, body: bytes) -> None:
        if len(body) > MAX_UPLOAD_BYTES:
            return self._reply(req, 413, {"ok": False, "error_code": 413, "description": "Request Entity Too Large"})
        params, files = self._parse(req.headers.get("Content-Type", ""), body)
        for k, v in urllib.parse.parse_qs(query).items():
            params.setdefault(k, _decode(k, v[0]))
        call = Call(method, params, files, time.time())
        try:
            result = self._dispatch(call, lambda: getattr(self, f"_m_{method}", self._m_unknown)(params, files))
            payload = {"ok": True, "result": result}
        except _ApiError as exc:
            call.status, call.description = exc.status, exc.description
            payload = {"ok": False, "error_code": exc.status, "description": exc.description}
            if exc.retry_after is not None:
                payload["parameters"] = {"retry_after": exc.retry_after}
            if exc.migrate_to_chat_id is not None:
                payload["parameters"] = {"migrate_to_chat_id": exc.migrate_to_chat_id}
        except Exception:  # a bug in this fake: say so loudly in the dump, answer like a server error
            call.status, call.description = 500, f"fake_telegram crashed:\n{traceback.format_exc()}"
            payload = {"ok": False, "error_code": 500, "description": "Internal Server Error"}
        self._record(call)
        self._reply(req, call.status, payload)

    def _serve_file(self, req, file_path: str, query: str, body: bytes) -> None:
        fid = file_path.rsplit("/", 1)[-1]
        call = Call(DOWNLOAD, {"file_path": file_path}, {}, time.time())

        def lookup() -> bytes:
            with self._lock:
                f = self._files.get(fid)
            if f is None or f.data is None:
                raise _ApiError(404, "Not Found")
            return f.data

        try:
            data = self._dispatch(call, lookup)
        except _ApiError as exc:
            call.status, call.description = exc.status, exc.description
            self._record(call)
            return self._reply(req, exc.status, {"ok": False, "error_code": exc.status, "description": exc.description})
        self._record(call)
        req.send_response(200)
        req.send_header("Content-Type", "application/octet-stream")
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        self._write(req, data)

    def _dispatch(self, call: Call, answer: Callable):
        with self._lock:
            pause = self._delays.get(call.method)
        if pause:
            time.sleep(pause)
        fault = self._take_fault(call)
        if fault:
            raise _ApiError(fault.status, fault.description, fault.retry_after)
        self._check_flood(call)
        return answer()

    def _record(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)
            self._lock.notify_all()

    @staticmethod
    def _parse(ctype: str, body: bytes) -> tuple[dict, dict[str, Upload]]:
        params: dict = {}
        files: dict[str, Upload] = {}
        if ctype.startswith("multipart/form-data"):
            msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
            for part in msg.iter_parts():
                name = part.get_param("name", header="content-disposition")
                data = part.get_payload(decode=True) or b""
                filename = part.get_filename()
                if filename is not None or part.get("Content-Type") is not None:
                    files[name] = Upload(data, filename, part.get_content_type())
                else:
                    params[name] = _decode(name, data.decode())
        elif ctype.startswith("application/json"):
            params = json.loads(body or b"{}")
        elif body:
            params = {k: _decode(k, v[0]) for k, v in urllib.parse.parse_qs(body.decode()).items()}
        return params, files

    @classmethod
    def _reply(cls, req, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        cls._write(req, data)

    @staticmethod
    def _write(req, data: bytes) -> None:
        try:
            req.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout, or a long poll abandoned at shutdown)

    # --- methods ---------------------------------------------------------------------------
    def _m_unknown(self, p, f):
        raise _ApiError(404, "Not Found")

    def _m_getMe(self, p, f):
        return self.bot_user

    def _m_getUpdates(self, p, f):
        offset = int(p.get("offset") or 0)
        limit = min(max(int(p.get("limit") or 100), 1), 100)
        deadline = time.monotonic() + float(p.get("timeout") or 0)
        with self._lock:
            if self.webhook.get("url"):
                raise _ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                     "use deleteWebhook to delete the webhook first")
            if "allowed_updates" in p:
                self._allowed = set(p["allowed_updates"]) or None  # [] means all again
            self._poll_gen += 1
            me = self._poll_gen
            if offset > 0:  # confirms everything below it
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            elif offset < 0:  # only the last -offset updates are kept
                self._updates = self._updates[offset:]
            while True:
                self._updates = [u for u in self._updates if self._wanted(u)]  # Telegram drops the others
                left = deadline - time.monotonic()
                if self._updates or left <= 0 or self._stopping:
                    return self._updates[:limit]
                if self._poll_gen != me:
                    raise _ApiError(409, "Conflict: terminated by other getUpdates request; "
                                         "make sure that only one bot instance is running")
                self._lock.wait(left)

    def _wanted(self, update: dict) -> bool:
        """Whether the bot asked for this update's type (caller holds the lock)."""
        (kind,) = update.keys() - {"update_id"}
        return kind in self._allowed if self._allowed is not None else kind not in _ONLY_ON_REQUEST

    def _m_deleteWebhook(self, p, f):
        with self._lock:
            self.webhook = {}
            if p.get("drop_pending_updates"):
                self._updates.clear()
        return True

    def _m_setWebhook(self, p, f):
        _need(p, "url")
        with self._lock:
            self.webhook = dict(p)
            if p.get("allowed_updates") is not None:
                self._allowed = set(p["allowed_updates"]) or None
            if p.get("drop_pending_updates"):
                self._updates.clear()
            self._poll_gen += 1  # a waiting getUpdates is cut off
            self._lock.notify_all()
        return True

    def _m_getWebhookInfo(self, p, f):
        with self._lock:
            info = {"url": self.webhook.get("url", ""), "has_custom_certificate": False,
                    "pending_update_count": len(self._updates)}
            if self._allowed is not None:
                info["allowed_updates"] = sorted(self._allowed)
            return info

    def _m_setMyCommands(self, p, f):
        commands = p.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise _bad("can't parse commands JSON object")
        for c in commands:
            if not _COMMAND_NAME.fullmatch(str(c.get("command", ""))):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(str(c.get("description", "")).strip()) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
        with self._lock:
            self.commands[p.get("language_code") or ""] = commands
        return True

    def _m_getMyCommands(self, p, f):
        with self._lock:
            return self.commands.get(p.get("language_code") or "", [])

    def _chat_for(self, p) -> _Chat:
        """The chat a request names (caller holds the lock). A group upgraded to a supergroup answers as
        Telegram does: 400 with the new chat's id in `parameters.migrate_to_chat_id`."""
        chat_id = int(_need(p, "chat_id"))
        if chat_id in self._migrated:
            raise _ApiError(400, "Bad Request: group chat was upgraded to a supergroup chat",
                            migrate_to_chat_id=self._migrated[chat_id])
        chat = self._chats.get(chat_id)
        if chat is None:
            raise _bad("chat not found")
        return chat

    @staticmethod
    def _check_markup(p, chat: "_Chat | None" = None) -> None:
        """Telegram's rules for inline buttons: callback data of 1-64 bytes; a web_app button only in a private chat
        (elsewhere BUTTON_TYPE_INVALID) and only to an https:// address (BUTTON_URL_INVALID)."""
        for row in (p.get("reply_markup") or {}).get("inline_keyboard", []):
            for button in row:
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode()) <= 64:
                    raise _bad("BUTTON_DATA_INVALID")
                if "web_app" in button:
                    if not str(button["web_app"].get("url", "")).startswith("https://"):
                        raise _bad("BUTTON_URL_INVALID")
                    if chat is not None and chat.info.get("type") != "private":
                        raise _bad("BUTTON_TYPE_INVALID")

    def _bot_message(self, p, **content) -> dict:
        self._check_markup(p)
        caption = p.get("caption")
        if caption is not None and len(caption) > MAX_CAPTION:
            raise _bad("message caption is too long")
        with self._lock:
            chat = self._chat_for(p)
            self._check_markup(p, chat)
            reply = p.get("reply_parameters") or (
                {"message_id": p["reply_to_message_id"]} if p.get("reply_to_message_id") else None)
            target = chat.messages.get(int(reply["message_id"])) if reply else None
            if reply:
                if target is not None:
                    content["reply_to_message"] = _without_reply(target)
                elif not (reply.get("allow_sending_without_reply") or p.get("allow_sending_without_reply")):
                    raise _bad("message to be replied not found")
            # In a forum a message goes to the topic it names, else to its reply's topic, else to General.
            topic = self._topic(chat, p) or (target or {}).get("message_thread_id")
            if topic is not None:
                content.update(message_thread_id=topic, is_topic_message=True)
            return self._new_message(chat.info["id"], self.bot_user, caption=caption,
                                     reply_markup=p.get("reply_markup"), **content)

    def _m_sendMessage(self, p, f):
        text = str(p.get("text", ""))
        if not text.strip():
            raise _bad("message text is empty")
        if len(text) > MAX_TEXT:
            raise _bad("message is too long")
        return self._bot_message(p, text=text)

    def _upload(self, p, f, key: str) -> tuple[str | None, _File]:
        """The file a send names: uploaded with the request (no file_id yet), or an earlier file_id."""
        up = f.get(key)
        value = str(p.get(key, ""))
        if up is None and value.startswith("attach://"):
            up = f.get(value[len("attach://"):])
        if up is not None:
            if not up.data:
                raise _bad("file must be non-empty")
            return None, _File(up.data, len(up.data), up.filename, up.content_type)
        if not value:
            raise _bad(f"there is no {key} in the request")
        with self._lock:
            stored = self._files.get(value)
        if stored is None or stored.data is None:
            raise _bad("wrong file identifier/HTTP URL specified")
        return value, stored

    def _m_sendPhoto(self, p, f):
        return self._bot_message(p, photo=self._sent_photo_sizes(p, f))

    def _m_sendDocument(self, p, f):
        fid, doc = self._upload(p, f, "document")
        if fid is None:
            with self._lock:
                fid = self._store_file(doc.data, name=doc.name, mime=doc.mime)
        info = {**self._file_dict(fid, doc), "file_name": doc.name, "mime_type": doc.mime}
        return self._bot_message(p, document={k: v for k, v in info.items() if v is not None})

    def _m_sendMediaGroup(self, p, f):
        """An album: 2 to 10 photos, or 2 to 10 documents (never mixed); the caption of an item is its own.
        Answers the messages sent, one per item, sharing a media_group_id."""
        media = p.get("media")
        if not isinstance(media, list) or not media:
            raise _bad("parameter \"media\" is required")
        if len(media) > MEDIA_GROUP_MAX:
            raise _bad("too many messages to send as an album")
        if len(media) < MEDIA_GROUP_MIN:
            raise _bad("wrong number of media items: an album needs at least 2")
        kinds = {m.get("type") for m in media}
        if not kinds <= {"photo", "document"}:
            raise _bad("can't parse InputMedia: unsupported media type")
        if kinds == {"photo", "document"}:
            raise _bad("document can't be mixed with other media types")
        contents = []
        for m in media:
            caption = m.get("caption")
            if caption is not None and len(caption) > MAX_CAPTION:
                raise _bad("message caption is too long")
            item = {"photo": m["media"]} if m["type"] == "photo" else {"document": m["media"]}
            if m["type"] == "photo":
                contents.append((caption, {"photo": self._sent_photo_sizes(item, f)}))
            else:
                fid, doc = self._upload(item, f, "document")
                if fid is None:
                    with self._lock:
                        fid = self._store_file(doc.data, name=doc.name, mime=doc.mime)
                info = {**self._file_dict(fid, doc), "file_name": doc.name, "mime_type": doc.mime}
                contents.append((caption, {"document": {k: v for k, v in info.items() if v is not None}}))
        group = str(14_000_000_000_000_000 + next(self._file_ids))
        return [self._bot_message({**p, "caption": caption}, media_group_id=group, **content)
                for caption, content in contents]

    def _sent_photo_sizes(self, p, f) -> list[dict]:
        """The PhotoSizes of a photo a send (sendPhoto, an item of sendMediaGroup) names, checked as
        Telegram checks it; a photo sent again by its file_id keeps the file's ids, as on Telegram."""
        fid, photo = self._upload(p, f, "photo")
        if photo.size > MAX_PHOTO_BYTES:
            raise _bad("PHOTO_SAVE_FILE_INVALID")
        try:
            sizes = self._photo_sizes(photo.data)
        except Exception:
            raise _bad("IMAGE_PROCESS_FAILED") from None
        w, h = sizes[-1]["width"], sizes[-1]["height"]
        if w + h > 10000 or max(w, h) > 20 * min(w, h):
            raise _bad("PHOTO_INVALID_DIMENSIONS")
        if fid is not None:
            sizes[-1] = {**self._file_dict(fid, photo), "width": w, "height": h}
        return sizes

    def _m_sendChatAction(self, p, f):
        if _need(p, "action") not in CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        with self._lock:
            self._topic(self._chat_for(p), p)
        return True

    @staticmethod
    def _topic(chat, p) -> int | None:
        """The topic a send names (`message_thread_id`), which only a forum has (caller holds the lock)."""
        topic = p.get("message_thread_id")
        if topic is None:
            return None
        if not chat.info.get("is_forum"):
            raise _bad("message thread not found")
        return int(topic)

    def _edit(self, p, key: str, value: str) -> dict:
        self._check_markup(p)
        with self._lock:
            msg = self._chat_for(p).messages.get(int(_need(p, "message_id")))
            if msg is None:
                raise _bad("message to edit not found")
            if msg["from"]["id"] != self.bot_user["id"]:
                raise _bad("message can't be edited")
            if key == "text" and "text" not in msg:
                raise _bad("there is no text in the message to edit")
            if key == "caption" and not ({"photo", "document"} & msg.keys()):
                raise _bad("there is no caption in the message to edit")
            markup = p.get("reply_markup")
            if msg.get(key) == value and msg.get("reply_markup") == markup:
                raise _bad("message is not modified: specified new message content and reply markup are "
                           "exactly the same as a current content and reply markup of the message")
            msg[key] = value
            msg["edit_date"] = int(time.time())
            if markup:
                msg["reply_markup"] = markup
            else:
                msg.pop("reply_markup", None)  # an edit without a keyboard removes it
            return msg

    def _m_editMessageText(self, p, f):
        text = str(p.get("text", ""))
        if not text.strip():
            raise _bad("message text is empty")
        if len(text) > MAX_TEXT:
            raise _bad("MESSAGE_TOO_LONG")
        return self._edit(p, "text", text)

    def _m_editMessageCaption(self, p, f):
        caption = str(p.get("caption", ""))
        if len(caption) > MAX_CAPTION:
            raise _bad("message caption is too long")
        return self._edit(p, "caption", caption)

    def _m_deleteMessage(self, p, f):
        with self._lock:
            if self._chat_for(p).messages.pop(int(_need(p, "message_id")), None) is None:
                raise _bad("message to delete not found")
        return True

    def _m_answerCallbackQuery(self, p, f):
        qid = str(_need(p, "callback_query_id"))
        with self._lock:
            if self._queries.get(qid) is not False:  # unknown, or answered already
                raise _bad("query is too old and response timeout expired or query ID is invalid")
            self._queries[qid] = True
        return True

    def _m_getFile(self, p, f):
        fid = str(_need(p, "file_id"))
        with self._lock:
            stored = self._files.get(fid)
            path = self._file_paths.get(fid, f"files/{fid}")
        if stored is None:
            raise _bad("invalid file_id")
        if stored.size > MAX_GETFILE_BYTES:
            raise _bad("file is too big")
        return {**self._file_dict(fid, stored), "file_path": path}
