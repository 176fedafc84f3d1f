"""The Mini App "Pick colours" (issue 27): what the bot, the workers and the web server (bot/web/) share.

A colourised result carries a "Pick colours" button that opens a page (bot/web/static/) in Telegram: a tap on the
photo places a colour point, a live preview follows, and Send puts the result coloured with those points in
the chat. Three processes meet here, so their agreements are written once:

- The grant (`Grant`, key `paintbot:hints:<token>`): written by whoever makes the button (the worker under a
  result, the bot for `/hints`), it names the photo (a Telegram file id), the chat and message the result goes
  to, and the ONE person who may use it: the requester of the result (in a private chat, its user; in a group,
  whoever asked for the colourisation, or replied /hints). Other members of a group see the button but are
  refused (they may reply /hints to the photo for a button of their own): checking "may see the message" would
  take a getChatMember call per request and gives a stranger who learned the token a way in; one user id is
  checked by equality. The grant lives as long as the result's other buttons (PAINTBOT_RESULT_CACHE_TTL).
  The token travels in the button (web_app URL `?t=`, or a group's t.me link `startapp=`): it is 128 random
  bits, and useless without initData signed by Telegram for the user it names.
- Telegram's initData (`check_init_data`): every API request of the page carries it, and the web server
  validates it as the Bot API documents ("Validating data received via the Mini App") before anything else:
  secret_key = HMAC_SHA256(key="WebAppData", msg=bot_token), hash = hex HMAC_SHA256(secret_key,
  data_check_string), the string being every field but `hash`, sorted, as key=value lines; compared in
  constant time; `auth_date` no older than INIT_DATA_MAX_AGE. Telegram signs initData once when the app opens,
  so an hour is how long a page may stay open and keep working.
- Replay: a captured initData is a bearer credential for its hour. What it cannot do is make a result twice:
  each Send carries a nonce the page draws once per Send press, and the job id is made of the grant and that
  nonce (`send_request_id`), so the same Send repeated (a retry, a replay) is one job (bot/queue.py's claim);
  after the hour it is refused as expired.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

import redis
from telegram import InlineKeyboardButton, WebAppInfo

from bot.contract import keys, records
from bot.contract.options import EngineInfo
from bot.contract.settings import Settings
from bot.contract.texts import render

ENGINE = "siggraph17"  # the colouriser that takes hints (models/colorize: `takes_hints`)
INIT_DATA_MAX_AGE = 3600  # seconds an initData is taken after Telegram signed it
GRANT_TTL = 24 * 3600  # a /hints button's grant where results keep no buttons (PAINTBOT_RESULT_CACHE_TTL=0)
PHOTO_URL_TTL = 600  # seconds a signed photo address works (the page loads it once, at start)
TOKEN = r"[A-Za-z0-9_-]{22}"  # what `new_token` makes (t.me's startapp takes A-Z a-z 0-9 _ -, up to 64)


class InitDataError(Exception):
    """initData that may not be acted on; `reason` is for the log line and the JSON answer (never a secret)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _secret_key(bot_token: str) -> bytes:
    return hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()


def _data_check_string(pairs: dict[str, str]) -> str:
    return "\n".join(f"{k}={pairs[k]}" for k in sorted(pairs) if k != "hash")


def check_init_data(init_data: str, bot_token: str, now: float | None = None,
                    max_age: int = INIT_DATA_MAX_AGE) -> dict:
    """The fields of `init_data` (the query string Telegram.WebApp.initData), `user` decoded from its JSON, once
    its hash is Telegram's for this bot and it is fresh. Raises InitDataError (forged, expired, malformed)."""
    try:
        pairs = dict(urllib.parse.parse_qsl(init_data or "", keep_blank_values=True, strict_parsing=True))
    except ValueError:
        raise InitDataError("malformed") from None
    given = pairs.get("hash", "")
    expected = hmac.new(_secret_key(bot_token), _data_check_string(pairs).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise InitDataError("bad signature")
    try:
        signed_at = int(pairs["auth_date"])
        user = json.loads(pairs["user"])
        user_id = int(user["id"])
    except (KeyError, ValueError, TypeError):
        raise InitDataError("no user or auth_date") from None
    age = (time.time() if now is None else now) - signed_at
    if age > max_age or age < -60:
        raise InitDataError("expired")
    return {**pairs, "user": {**user, "id": user_id}}


@dataclass(frozen=True)
class Grant:
    """What one "Pick colours" button opens: the photo, where its result goes, and who may ask for it."""

    chat_id: int
    user_id: int  # the only person whose initData may use it (see the module's note)
    file_id: str  # the photo as Telegram holds it: never sent to the browser
    reply_to: int  # the message the result answers
    thread_id: int | None = None
    lang: str | None = None
    as_document: bool = False
    file_name: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> "Grant | None":
        try:
            d = json.loads(raw)
            known = {f.name for f in fields(cls)}
            return cls(**{k: v for k, v in d.items() if k in known})
        except (ValueError, TypeError, AttributeError):
            return None


def new_token() -> str:
    return secrets.token_urlsafe(16)


def keep(conn: redis.Redis, grant: Grant, ttl: int) -> str:
    """Write `grant` for `ttl` s (owned by its user: /forget deletes it); returns its token."""
    token = new_token()
    conn.set(keys.hints_grant(token), grant.to_json(), ex=ttl)
    records.own(conn, grant.user_id, keys.hints_grant(token), ttl)
    return token


def recall(conn: redis.Redis, token: str) -> Grant | None:
    raw = conn.get(keys.hints_grant(token))
    return Grant.from_json(raw) if raw else None


def engine_published(engines: Sequence[EngineInfo]) -> bool:
    """Whether some worker runs the engine that takes hints."""
    return any(e.name == ENGINE for e in engines)


def offered(webapp_url: str, engines: Sequence[EngineInfo]) -> bool:
    """Whether "Pick colours" is offered: the Mini App has an address and some worker runs the hints engine."""
    return bool(webapp_url) and engine_published(engines)


def offer(conn: redis.Redis, settings: Settings, engines: Sequence[EngineInfo], grant: Grant, private: bool,
          bot_username: str | None) -> InlineKeyboardButton | None:
    """The "Pick colours" button for `grant`, its grant kept (as long as a result's buttons, PAINTBOT_RESULT_CACHE_TTL,
    or GRANT_TTL where results carry none); None where it is not offered: no Mini App address, no worker running
    the hints engine, or a group without the app's short name. The one way the bot and the workers offer it.
    Raises redis.RedisError."""
    if not offered(settings.webapp_url, engines) or (not private and not (settings.webapp_name and bot_username)):
        return None
    token = keep(conn, grant, settings.result_cache_ttl or GRANT_TTL)
    return button(token, grant.lang, settings.webapp_url, private, bot_username, settings.webapp_name)


def button(token: str, lang: str | None, webapp_url: str, private: bool, bot_username: str | None,
           webapp_name: str) -> InlineKeyboardButton | None:
    """The "Pick colours" button: a web_app button in a private chat; in a group (where Telegram refuses web_app
    inline buttons) a t.me link to the bot's Mini App with the token as its start parameter, when BotFather's
    short name of the app is configured (PAINTBOT_WEBAPP_NAME) and the bot's username known; else None."""
    text = render("followup.hints", lang)
    if private:
        return InlineKeyboardButton(text, web_app=WebAppInfo(f"{webapp_url}?{urllib.parse.urlencode({'t': token})}"))
    if webapp_name and bot_username:
        return InlineKeyboardButton(text, url=f"https://t.me/{bot_username}/{webapp_name}?startapp={token}")
    return None


def send_request_id(token: str, nonce: str) -> int:
    """The request id of a Send (bot/contract/job.py `Job.job_id`): the same grant and nonce give the same id, so a
    Send repeated is one job. Negative, as a tap's (a request no message can deliver again), and beyond every
    follow-up tap's (bot/contract/followups.py `request_id`: message id * 64, under 2**37)."""
    digest = hashlib.sha256(f"{token}:{nonce}".encode()).digest()
    return -(2 ** 40 + int.from_bytes(digest[:6], "big"))


def preview_reply(request: str) -> str:
    """The Redis list a preview's (or suggestion's) answer is pushed to by the worker (bot/web/ waits on it)."""
    return keys.hints_reply(request)
