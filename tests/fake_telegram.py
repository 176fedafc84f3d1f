"""A fake Telegram Bot API server on loopback, for tests.

It speaks the real HTTP API (the subset paintbot uses) so the real python-telegram-bot client,
in the bot and in the worker, talks to it exactly as to api.telegram.org:
methods at {root}/bot<token>/METHOD, files at {root}/file/bot<token>/PATH.

Tests script users (`user_sends_photo`, `user_sends_text`, `user_presses_button`, ...), then read
what the bot did (`calls`, `wait_for`) and inject real error responses (`fail`, `delay`).
"""

from __future__ import annotations

import io
import itertools
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_GETFILE_BYTES = 20 * 1024 * 1024


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
    at: float
    status: int = 200

    @property
    def chat_id(self) -> int | None:
        v = self.params.get("chat_id")
        return int(v) if v is not None else None

    @property
    def reply_to(self) -> int | None:
        rp = self.params.get("reply_parameters")
        if rp:
            return int(rp["message_id"])
        v = self.params.get("reply_to_message_id")
        return int(v) if v is not None else None


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


def _decode_value(v: str):
    """PTB sends strings as they are and everything else JSON-encoded."""
    try:
        return json.loads(v)
    except ValueError:
        return v


class FakeTelegram:
    def __init__(self, token: str = "123456:TEST-TOKEN", bot_username: str = "paintbot_test_bot"):
        self.token = token
        self.bot_username = bot_username
        self.bot_user = {"id": int(token.split(":")[0]), "is_bot": True, "first_name": "Paintbot",
                         "username": bot_username, "can_join_groups": True,
                         "can_read_all_group_messages": False, "supports_inline_queries": False}
        self._lock = threading.Condition()
        self._updates: list[dict] = []
        self._update_ids = itertools.count(1)
        self._confirmed = 0
        self._chats: dict[int, _Chat] = {}
        self._files: dict[str, tuple[bytes | None, int]] = {}  # file_id -> (data, size)
        self._file_ids = itertools.count(1)
        self._faults: list[Fault] = []
        self._delays: dict[str, float] = {}
        self._calls: list[Call] = []
        self.commands: list = []
        self.webhook: dict = {}
        self._httpd: ThreadingHTTPServer | None = None

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> "FakeTelegram":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                fake._handle(self)

            def do_POST(self):
                fake._handle(self)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, name="fake-telegram", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd:
            with self._lock:
                self._lock.notify_all()
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def api_root(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # --- chats and users -------------------------------------------------------------------
    def user(self, user_id: int, first_name: str | None = None) -> dict:
        return {"id": user_id, "is_bot": False, "first_name": first_name or f"User{user_id}"}

    def private_chat(self, user_id: int) -> dict:
        return self._chat({"id": user_id, "type": "private", "first_name": f"User{user_id}"})["info"]

    def group_chat(self, chat_id: int, title: str = "Family photos", supergroup: bool = True) -> dict:
        assert chat_id < 0, "group ids are negative"
        kind = "supergroup" if supergroup else "group"
        return self._chat({"id": chat_id, "type": kind, "title": title})["info"]

    def _chat(self, info: dict) -> dict:
        with self._lock:
            chat = self._chats.setdefault(info["id"], _Chat(info))
            return {"info": chat.info}

    def _new_message(self, chat_id: int, sender: dict, **content) -> dict:
        """Store a message in a chat (caller holds the lock)."""
        chat = self._chats[chat_id]
        msg = {"message_id": next(chat.next_id), "date": int(time.time()), "chat": chat.info, "from": sender}
        for k, v in content.items():
            if v is not None:
                msg[k] = v
        chat.messages[msg["message_id"]] = msg
        return msg

    def _store_file(self, data: bytes | None, size: int | None = None) -> str:
        fid = f"file-{next(self._file_ids)}-{'x' * 40}"
        self._files[fid] = (data, len(data) if data is not None else int(size or 0))
        return fid

    def _photo_sizes(self, data: bytes) -> list[dict]:
        from PIL import Image

        im = Image.open(io.BytesIO(data))
        w, h = im.size
        thumb = im.convert("RGB")
        thumb.thumbnail((90, 90))
        buf = io.BytesIO()
        thumb.save(buf, "JPEG")
        sizes = []
        for blob, (tw, th) in ((buf.getvalue(), thumb.size), (data, (w, h))):
            fid = self._store_file(blob)
            sizes.append({"file_id": fid, "file_unique_id": fid[:16], "width": tw, "height": th,
                          "file_size": len(blob)})
        return sizes

    @staticmethod
    def _entities(text: str | None) -> list[dict] | None:
        if not text or not text.startswith("/"):
            return None
        length = len(text.split()[0])
        return [{"type": "bot_command", "offset": 0, "length": length}]

    def _user_message(self, chat: dict, user: dict | None, reply_to: int | None, **content) -> dict:
        user = user or self.user(chat["id"] if chat["id"] > 0 else 999)
        with self._lock:
            if reply_to is not None:
                content["reply_to_message"] = dict(self._chats[chat["id"]].messages[reply_to])
                content["reply_to_message"].pop("reply_to_message", None)  # Telegram nests one level only
            msg = self._new_message(chat["id"], user, **content)
            self._push({"message": msg})
            return msg

    def user_sends_text(self, chat: dict, text: str, user: dict | None = None, reply_to: int | None = None) -> dict:
        return self._user_message(chat, user, reply_to, text=text, entities=self._entities(text))

    def user_sends_photo(self, chat: dict, image: bytes, caption: str | None = None, user: dict | None = None,
                         reply_to: int | None = None) -> dict:
        with self._lock:
            sizes = self._photo_sizes(image)
        return self._user_message(chat, user, reply_to, photo=sizes, caption=caption,
                                  caption_entities=self._entities(caption))

    def user_sends_document(self, chat: dict, data: bytes | None, file_name: str, mime_type: str,
                            caption: str | None = None, user: dict | None = None, reply_to: int | None = None,
                            file_size: int | None = None) -> dict:
        """`data=None, file_size=N` announces a file too big to store (as Telegram reports sizes)."""
        with self._lock:
            fid = self._store_file(data, file_size)
            size = self._files[fid][1]
        doc = {"file_id": fid, "file_unique_id": fid[:16], "file_name": file_name, "mime_type": mime_type,
               "file_size": size}
        return self._user_message(chat, user, reply_to, document=doc, caption=caption,
                                  caption_entities=self._entities(caption))

    def user_presses_button(self, chat: dict, message_id: int, data: str, user: dict | None = None) -> dict:
        user = user or self.user(chat["id"] if chat["id"] > 0 else 999)
        with self._lock:
            msg = self._chats[chat["id"]].messages[message_id]
            query = {"id": str(next(self._update_ids) * 1000), "from": user, "message": msg,
                     "chat_instance": str(chat["id"]), "data": data}
            self._push({"callback_query": query})
            return query

    def last_update(self) -> dict:
        """The most recent scripted update (to post it to a webhook instead of serving it by getUpdates)."""
        with self._lock:
            return dict(self._updates[-1])

    def message(self, chat_id: int, message_id: int) -> dict | None:
        with self._lock:
            return self._chats[chat_id].messages.get(message_id)

    def _push(self, update: dict) -> None:
        update["update_id"] = next(self._update_ids)
        self._updates.append(update)
        self._lock.notify_all()

    # --- inspection ------------------------------------------------------------------------
    def calls(self, method: str | None = None, chat_id: int | None = None, ok_only: bool = True) -> list[Call]:
        with self._lock:
            return [c for c in self._calls
                    if (method is None or c.method == method)
                    and (chat_id is None or c.chat_id == chat_id)
                    and (not ok_only or c.status == 200)]

    def wait_for(self, method: str, count: int = 1, timeout: float = 30, chat_id: int | None = None) -> list[Call]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = [c for c in self._calls if c.method == method and c.status == 200
                         and (chat_id is None or c.chat_id == chat_id)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = "\n".join(f"  {c.method} {c.status} {c.params}" for c in self._calls
                                     if c.method != "getUpdates")
                    raise AssertionError(f"waited {timeout}s for {count}x {method}, got {len(found)}:\n{seen}")
                self._lock.wait(min(left, 0.5))

    def sent_file(self, call: Call) -> bytes:
        """The bytes of what the bot uploaded (or re-sent by file_id) in a sendPhoto/sendDocument call."""
        if call.files:
            return next(iter(call.files.values())).data
        key = "photo" if call.method == "sendPhoto" else "document"
        return self._files[call.params[key]][0]

    # --- fault injection -------------------------------------------------------------------
    def fail(self, method: str, status: int, description: str, retry_after: int | None = None, times: int = 1,
             chat_id: int | None = None) -> None:
        with self._lock:
            self._faults.append(Fault(method, status, description, retry_after, times, chat_id))

    def delay(self, method: str, seconds: float) -> None:
        with self._lock:
            self._delays[method] = seconds

    # --- HTTP ------------------------------------------------------------------------------
    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(req.path).path)
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        file_prefix = f"/file/bot{self.token}/"
        if path.startswith(file_prefix):
            return self._serve_file(req, path[len(file_prefix):])
        if not path.startswith("/bot"):
            return self._reply(req, 404, {"ok": False, "error_code": 404, "description": "Not Found"})
        token, _, method = path[4:].partition("/")
        if token != self.token:
            return self._reply(req, 401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        params, files = self._parse(req, body)
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(req.path).query)
        for k, v in query.items():
            params.setdefault(k, _decode_value(v[0]))
        call = Call(method, params, files, time.time())
        status, payload = self._dispatch(call)
        call.status = status
        if method != "getUpdates" or payload.get("result"):
            with self._lock:
                self._calls.append(call)
                self._lock.notify_all()
        self._reply(req, status, payload)

    def _parse(self, req, body: bytes) -> tuple[dict, dict[str, Upload]]:
        ctype = req.headers.get("Content-Type", "")
        params: dict = {}
        files: dict[str, Upload] = {}
        if ctype.startswith("multipart/form-data"):
            msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
            for part in msg.iter_parts():
                name = part.get_param("name", header="content-disposition")
                data = part.get_payload(decode=True) or b""
                filename = part.get_filename()
                if filename is not None or part.get_content_type() not in ("text/plain",):
                    files[name] = Upload(data, filename, part.get_content_type())
                else:
                    params[name] = _decode_value(data.decode())
        elif ctype.startswith("application/json"):
            params = json.loads(body or b"{}")
        elif body:
            params = {k: _decode_value(v[0]) for k, v in urllib.parse.parse_qs(body.decode()).items()}
        return params, files

    @staticmethod
    def _reply(req, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        try:
            req.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a long poll cut short at shutdown)

    def _serve_file(self, req, file_path: str) -> None:
        fid = file_path.rsplit("/", 1)[-1]
        with self._lock:
            entry = self._files.get(fid)
        if entry is None or entry[0] is None:
            return self._reply(req, 404, {"ok": False, "error_code": 404, "description": "Not Found"})
        data = entry[0]
        req.send_response(200)
        req.send_header("Content-Type", "application/octet-stream")
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)

    def _take_fault(self, call: Call) -> Fault | None:
        with self._lock:
            for f in self._faults:
                if f.method == call.method and f.times > 0 and (f.chat_id is None or f.chat_id == call.chat_id):
                    f.times -= 1
                    return f
        return None

    @staticmethod
    def _error(status: int, description: str, retry_after: int | None = None) -> tuple[int, dict]:
        payload = {"ok": False, "error_code": status, "description": description}
        if retry_after is not None:
            payload["parameters"] = {"retry_after": retry_after}
        return status, payload

    def _dispatch(self, call: Call) -> tuple[int, dict]:
        if call.method in self._delays:
            time.sleep(self._delays[call.method])
        fault = self._take_fault(call)
        if fault:
            return self._error(fault.status, fault.description, fault.retry_after)
        handler = getattr(self, f"_m_{call.method}", None)
        if handler is None:
            return self._error(404, "Not Found")
        try:
            result = handler(call.params, call.files)
        except _ApiError as exc:
            return self._error(exc.status, exc.description)
        return 200, {"ok": True, "result": result}

    # --- methods ---------------------------------------------------------------------------
    def _m_getMe(self, p, f):
        return self.bot_user

    def _m_getUpdates(self, p, f):
        offset = int(p.get("offset") or 0)
        timeout = float(p.get("timeout") or 0)
        limit = int(p.get("limit") or 100)
        deadline = time.monotonic() + timeout
        with self._lock:
            if offset:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            while not self._updates and time.monotonic() < deadline and self._httpd is not None:
                self._lock.wait(min(deadline - time.monotonic(), 0.5))
            return list(self._updates[:limit])

    def _m_deleteWebhook(self, p, f):
        self.webhook = {}
        return True

    def _m_setWebhook(self, p, f):
        self.webhook = dict(p)
        return True

    def _m_getWebhookInfo(self, p, f):
        return {"url": self.webhook.get("url", ""), "has_custom_certificate": False, "pending_update_count": 0}

    def _m_setMyCommands(self, p, f):
        self.commands = p.get("commands", [])
        return True

    def _m_getMyCommands(self, p, f):
        return self.commands

    def _chat_for(self, p) -> _Chat:
        chat_id = int(p["chat_id"])
        chat = self._chats.get(chat_id)
        if chat is None:
            raise _ApiError(400, "Bad Request: chat not found")
        return chat

    def _bot_message(self, p, **content) -> dict:
        with self._lock:
            chat = self._chat_for(p)
            reply = p.get("reply_parameters") or (
                {"message_id": p["reply_to_message_id"]} if p.get("reply_to_message_id") else None)
            if reply:
                target = chat.messages.get(int(reply["message_id"]))
                if target is None:
                    if not (reply.get("allow_sending_without_reply") or p.get("allow_sending_without_reply")):
                        raise _ApiError(400, "Bad Request: message to be replied not found")
                else:
                    content["reply_to_message"] = {k: v for k, v in target.items() if k != "reply_to_message"}
            if p.get("reply_markup"):
                content["reply_markup"] = p["reply_markup"]
            return self._new_message(chat.info["id"], self.bot_user, **content)

    def _m_sendMessage(self, p, f):
        text = str(p.get("text", ""))
        if not text.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        return self._bot_message(p, text=text)

    def _upload(self, p, f, key: str) -> tuple[str, bytes | None]:
        if key in f:
            with self._lock:
                fid = self._store_file(f[key].data)
            return fid, f[key].data
        value = str(p.get(key, ""))
        if value.startswith("attach://"):
            up = f[value[len("attach://"):]]
            with self._lock:
                fid = self._store_file(up.data)
            return fid, up.data
        with self._lock:
            if value not in self._files:
                raise _ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
            return value, self._files[value][0]

    def _m_sendPhoto(self, p, f):
        fid, data = self._upload(p, f, "photo")
        if data is None:
            raise _ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        with self._lock:
            sizes = self._photo_sizes(data)
        return self._bot_message(p, photo=sizes, caption=p.get("caption"))

    def _m_sendDocument(self, p, f):
        fid, data = self._upload(p, f, "document")
        up = f.get("document")
        doc = {"file_id": fid, "file_unique_id": fid[:16], "file_size": len(data or b""),
               "file_name": up.filename if up else None, "mime_type": up.content_type if up else None}
        return self._bot_message(p, document={k: v for k, v in doc.items() if v is not None},
                                 caption=p.get("caption"))

    def _m_sendChatAction(self, p, f):
        with self._lock:
            self._chat_for(p)
        return True

    def _edit(self, p, key: str, value) -> dict:
        with self._lock:
            chat = self._chat_for(p)
            msg = chat.messages.get(int(p["message_id"]))
            if msg is None:
                raise _ApiError(400, "Bad Request: message to edit not found")
            if msg.get(key) == value and "reply_markup" not in p:
                raise _ApiError(400, "Bad Request: message is not modified")
            msg[key] = value
            msg["edit_date"] = int(time.time())
            if "reply_markup" in p:
                msg["reply_markup"] = p["reply_markup"]
            else:
                msg.pop("reply_markup", None)
            return msg

    def _m_editMessageText(self, p, f):
        return self._edit(p, "text", str(p.get("text", "")))

    def _m_editMessageCaption(self, p, f):
        return self._edit(p, "caption", str(p.get("caption", "")))

    def _m_deleteMessage(self, p, f):
        with self._lock:
            chat = self._chat_for(p)
            if chat.messages.pop(int(p["message_id"]), None) is None:
                raise _ApiError(400, "Bad Request: message to delete not found")
        return True

    def _m_answerCallbackQuery(self, p, f):
        return True

    def _m_getFile(self, p, f):
        fid = str(p.get("file_id", ""))
        with self._lock:
            entry = self._files.get(fid)
        if entry is None:
            raise _ApiError(400, "Bad Request: invalid file_id")
        if entry[1] > MAX_GETFILE_BYTES:
            raise _ApiError(400, "Bad Request: file is too big")
        return {"file_id": fid, "file_unique_id": fid[:16], "file_size": entry[1], "file_path": f"files/{fid}"}


class _ApiError(Exception):
    def __init__(self, status: int, description: str):
        super().__init__(description)
        self.status = status
        self.description = description
