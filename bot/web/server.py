"""`paintbot-web`: the Mini App "Pick colours" (issue 27): its page (bot/web/static/, plain HTML/CSS/JS) and JSON API.

Why tornado: python-telegram-bot's webhook extra already brings it (the bot image has it), it is an async
server that has been kept for fifteen years, and the server needs little more than routes, static files, a
body-size limit and an async HTTP client for the Bot API's getFile; aiohttp would be a second web framework in
the same image doing the same.

Every API request is POSTed JSON carrying `initData` (Telegram.WebApp.initData) and the grant `token`; it is
validated (bot/contract/webapp.py `check_init_data`) before anything else is looked at, then the grant must exist
and name this user. Nothing is computed here: previews and suggestions go to the workers' preview queue and come
back through a Redis list (worker/hints.py); Send is admitted like any request (bot/queue.py: the user's limits,
the queue cap, one job per Send) and the worker delivers its result to the chat. The page sees its photo only
through a short-lived signed address of this server (`/api/photo/<token>`): the server downloads the Telegram
file itself, so the file's path and the bot token never reach the browser; neither is ever logged.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import hmac
import json
import logging
import re
import time
import urllib.parse
import uuid
from pathlib import Path

import redis
import redis.asyncio as aredis
import tornado.httpclient
import tornado.web
from rq import Queue
from rq.serializers import JSONSerializer

from bot.contract import keys, records, webapp
from bot.contract.job import MAX_DOWNLOAD_BYTES, Job, Op
from bot.contract.options import MAX_HINTS, HintsOptions
from bot.contract.settings import Settings
from bot.contract.texts import TEXTS, DEFAULT_LANGUAGE, language_of, render
from bot.queue import Duplicate, JobQueue, Refused

log = logging.getLogger("paintbot.web")

STATIC = Path(__file__).with_name("static")
TELEGRAM_JS = "https://telegram.org/js/telegram-web-app.js"  # as Telegram's Mini App docs say to load it
MAX_BODY = 64 * 1024  # an API request: initData and at most MAX_HINTS points
PREVIEW_WAIT = 20  # seconds the server waits for a worker's preview before saying "busy"
PREVIEWS_PER_MINUTE = 120  # one user's previews and suggestions (a drag sends a few a second, the page debounces)
PHOTOS_KEPT = 8  # downloaded photos the server keeps (a page loads its photo once; a reload again): 160 MB at most


class ApiError(Exception):
    """A refusal: HTTP `status`, `code` for the page, the message in words (else webapp.error.<code> in `lang`)."""

    def __init__(self, status: int, code: str, message: str | None = None, lang: str | None = None):
        super().__init__(code)
        self.status, self.code, self.message, self.lang = status, code, message, lang


def _photo_key(bot_token: str) -> bytes:
    """The key of the photo addresses' signatures: derived from the bot token, never the token itself."""
    return hmac.new(bot_token.encode(), b"paintbot-web-photo", hashlib.sha256).digest()


def photo_signature(bot_token: str, token: str, expires: int) -> str:
    return hmac.new(_photo_key(bot_token), f"{token}:{expires}".encode(), hashlib.sha256).hexdigest()


class Web:
    """What every handler shares: settings, Redis (async for waiting, sync for RQ and admission), photos kept."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.aredis = aredis.Redis.from_url(settings.redis_url, socket_timeout=PREVIEW_WAIT + 5,
                                            socket_connect_timeout=3)
        self.jobs = JobQueue(settings.redis_url, settings.queue_name, settings.limits)
        self.previews = Queue(settings.preview_queue, connection=self.jobs.redis, serializer=JSONSerializer)
        self.photos: collections.OrderedDict[str, tuple[bytes, str]] = collections.OrderedDict()
        self.http = tornado.httpclient.AsyncHTTPClient(force_instance=True, max_body_size=MAX_DOWNLOAD_BYTES)

    async def authorise(self, body: dict) -> tuple[dict, str, webapp.Grant, str]:
        """(initData fields, token, grant, language) of a request; raises ApiError. initData first, always."""
        try:
            fields = webapp.check_init_data(str(body.get("initData") or ""), self.settings.token)
        except webapp.InitDataError as exc:
            log.warning("web: initData refused (%s)", exc.reason)
            raise ApiError(401, "expired" if exc.reason == "expired" else "auth") from None
        token = str(body.get("token") or fields.get("start_param") or "")
        user = fields["user"]
        lang = await self.language(user)
        if not _is_token(token):
            raise ApiError(410, "expired", lang=lang)
        try:
            raw = await self.aredis.get(keys.hints_grant(token))
        except redis.RedisError as exc:
            log.warning("web: Redis unavailable (%s)", type(exc).__name__)
            raise ApiError(503, "failed", lang=lang) from None
        grant = webapp.Grant.from_json(raw) if raw else None
        if grant is None:
            raise ApiError(410, "expired", lang=lang)
        if grant.user_id != user["id"]:
            log.warning("web: user %s asked for the grant of user %s in chat %s: refused", user["id"], grant.user_id,
                        grant.chat_id)
            raise ApiError(403, "not_yours", lang=lang)
        return fields, token, grant, lang

    async def language(self, user: dict) -> str:
        """The language the user chose with /language, else their Telegram app's (initData user.language_code)."""
        try:
            chosen = await self.aredis.get(keys.language(user["id"]))
        except redis.RedisError:
            chosen = None
        return language_of(chosen.decode() if chosen else user.get("language_code"))

    async def limit(self, user_id: int) -> None:
        minute = int(time.time() // 60)
        key = keys.hints_rate(user_id, minute)
        made = await self.aredis.incr(key)
        await self.aredis.expire(key, 120)
        if made > PREVIEWS_PER_MINUTE:
            raise ApiError(429, "failed")

    async def photo(self, file_id: str) -> tuple[bytes, str]:
        """The photo's bytes and type, downloaded from Telegram once (getFile, then the file)."""
        if file_id in self.photos:
            self.photos.move_to_end(file_id)
            return self.photos[file_id]
        api = self.settings.telegram_api.rstrip("/")
        query = urllib.parse.urlencode({"file_id": file_id})
        try:  # the addresses hold the token: an error is logged by its type alone
            answer = await self.http.fetch(f"{api}/bot{self.settings.token}/getFile?{query}", raise_error=False)
            info = json.loads(answer.body or b"{}") if answer.code == 200 else {}
            path = (info.get("result") or {}).get("file_path")
            data = None
            if info.get("ok") and path and (info["result"].get("file_size") or 0) <= MAX_DOWNLOAD_BYTES:
                data = await self.http.fetch(f"{api}/file/bot{self.settings.token}/{path}", raise_error=False)
        except (OSError, ValueError, tornado.httpclient.HTTPClientError) as exc:
            log.warning("web: Telegram unreachable for the photo (%s)", type(exc).__name__)
            raise ApiError(502, "failed") from None
        if data is None:
            log.warning("web: Telegram gave no file for a grant (HTTP %s)", answer.code)
            raise ApiError(410, "expired")
        if data.code != 200:
            log.warning("web: the photo's download failed (HTTP %s)", data.code)
            raise ApiError(502, "failed")
        kind = "image/png" if data.body[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg"
        self.photos[file_id] = data.body, kind
        while len(self.photos) > PHOTOS_KEPT:
            self.photos.popitem(last=False)
        return data.body, kind

    async def ask_worker(self, payload: dict) -> bytes:
        """Enqueue a preview or a suggestion on the preview queue and wait for the worker's answer."""
        request = uuid.uuid4().hex
        payload = {**payload, "reply": request}
        try:
            await asyncio.to_thread(self.previews.enqueue, "worker.hints.answer", payload, job_id=f"pv-{request}",
                                    ttl=PREVIEW_WAIT, result_ttl=0, failure_ttl=300, job_timeout=PREVIEW_WAIT,
                                    description=f"hints {payload['kind']}")
            answer = await self.aredis.blpop([webapp.preview_reply(request)], timeout=PREVIEW_WAIT)
        except redis.RedisError as exc:
            log.warning("web: Redis unavailable (%s)", type(exc).__name__)
            raise ApiError(503, "failed") from None
        if answer is None:
            log.warning("web: no worker answered a %s within %s s", payload["kind"], PREVIEW_WAIT)
            raise ApiError(504, "failed")
        if not answer[1]:
            raise ApiError(502, "failed")
        return answer[1]


def _is_token(token: str) -> bool:
    return re.fullmatch(webapp.TOKEN, token) is not None


def _hints(body: dict, at_least: int = 0) -> HintsOptions:
    raw = body.get("hints")
    if not isinstance(raw, list):
        raise ApiError(400, "failed")
    if len(raw) > MAX_HINTS:
        raise ApiError(400, "too_many")
    try:
        options = HintsOptions.of(raw)
    except (ValueError, TypeError, KeyError) as exc:
        log.info("web: hints refused (%s)", exc)
        raise ApiError(400, "failed") from None
    if len(options.hints) < at_least:
        raise ApiError(400, "failed")
    return options


def page_texts(lang: str) -> dict:
    """The page's words in `lang` (the webapp.* keys; plural ones as their CLDR forms, picked by the page)."""
    table = TEXTS[lang]
    return {k.removeprefix("webapp."): table.get(k) or TEXTS[DEFAULT_LANGUAGE][k]
            for k in TEXTS[DEFAULT_LANGUAGE] if k.startswith("webapp.")}


class Api(tornado.web.RequestHandler):
    web: Web

    def initialize(self, web: Web):
        self.web = web

    def set_default_headers(self):
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    async def post(self, *args):
        lang = DEFAULT_LANGUAGE
        try:
            try:
                body = json.loads(self.request.body or b"{}")
                assert isinstance(body, dict)
            except (ValueError, AssertionError):
                raise ApiError(400, "auth") from None
            fields, token, grant, lang = await self.web.authorise(body)
            try:
                await self.answer(body, fields, token, grant, lang)
            except redis.RedisError as exc:
                log.warning("web: Redis unavailable (%s)", type(exc).__name__)
                raise ApiError(503, "failed") from None
        except ApiError as exc:
            self.set_status(exc.status)
            lang = exc.lang or lang
            message = exc.message or render(f"webapp.error.{exc.code}" if exc.code != "too_many" else "webapp.too_many",
                                            lang, max=MAX_HINTS)
            self.finish({"error": exc.code, "message": message})

    async def answer(self, body: dict, fields: dict, token: str, grant: webapp.Grant, lang: str) -> None:
        raise NotImplementedError


class Session(Api):
    """The page opens: its photo's signed address, the user's language and the page's words."""

    async def answer(self, body, fields, token, grant, lang):
        vocabulary = await asyncio.to_thread(records.published, self.web.jobs.redis)
        if not webapp.engine_published(vocabulary.engines):
            raise ApiError(503, "failed", render("hints.unavailable", lang))
        expires = int(time.time()) + webapp.PHOTO_URL_TTL
        photo = f"/api/photo/{token}?" + urllib.parse.urlencode(
            {"exp": expires, "sig": photo_signature(self.web.settings.token, token, expires)})
        self.finish({"photo": photo, "lang": lang, "texts": page_texts(lang), "max_hints": MAX_HINTS})


class Preview(Api):
    async def answer(self, body, fields, token, grant, lang):
        hints = _hints(body)
        await self.web.limit(fields["user"]["id"])
        jpeg = await self.web.ask_worker({"kind": "preview", "file_id": grant.file_id,
                                          "hints": [list(h) for h in hints.hints]})
        self.set_header("Content-Type", "image/jpeg")
        self.finish(jpeg)


class Suggest(Api):
    """The colours to offer at a tap (with the points already placed); with "preview", also the preview with the
    new point in the first of them, computed in the same worker job: a tap costs one trip through the queue."""

    async def answer(self, body, fields, token, grant, lang):
        try:
            x, y = int(body["x"]), int(body["y"])
        except (KeyError, ValueError, TypeError):
            raise ApiError(400, "failed") from None
        hints = _hints({"hints": body.get("hints") or []})
        await self.web.limit(fields["user"]["id"])
        if len(hints.hints) >= MAX_HINTS:
            raise ApiError(400, "too_many")
        answer = json.loads(await self.web.ask_worker({"kind": "suggest", "file_id": grant.file_id, "x": x, "y": y,
                                                       "hints": [list(h) for h in hints.hints],
                                                       "preview": bool(body.get("preview"))}))
        self.finish(answer)  # {"colours": [[r, g, b]...], "preview": base64 JPEG with the new point, if asked}


class Send(Api):
    """The result at full resolution, to the chat the grant names: one job per (grant, nonce)."""

    async def answer(self, body, fields, token, grant, lang):
        hints = _hints(body, at_least=1)
        nonce = str(body.get("nonce") or "")
        if not 8 <= len(nonce) <= 64:
            raise ApiError(400, "failed")
        job = Job(op=Op.HINTS, chat_id=grant.chat_id, request_id=webapp.send_request_id(token, nonce),
                  reply_to=grant.reply_to, file_id=grant.file_id, as_document=grant.as_document,
                  user_id=fields["user"]["id"], file_name=grant.file_name, options=hints, lang=lang,
                  thread_id=grant.thread_id)
        try:
            await asyncio.to_thread(self.web.jobs.admit, job)
        except Duplicate:  # the same Send again (a retry, a replay): the one job answers it
            log.info("web: send %s again: one job", job.job_id)
            self.finish({"status": "duplicate"})
            return
        except Refused as exc:
            raise ApiError(429, exc.reason, render(exc.code, lang, **exc.params)) from None
        except redis.RedisError as exc:
            log.warning("web: Redis unavailable (%s)", type(exc).__name__)
            raise ApiError(503, "failed") from None
        try:
            await asyncio.to_thread(self.web.jobs.enqueue, job)
        except BaseException:
            await asyncio.to_thread(self.web.jobs.withdraw, job)
            raise
        log.info("web: job %s queued, %d hints, chat %s", job.job_id, len(hints.hints), grant.chat_id)
        self.finish({"status": "queued", "message": render("webapp.sent", lang)})


class Photo(tornado.web.RequestHandler):
    """The photo of a grant, to its page: by a signed address that lapses (no initData: an <img> cannot send it)."""

    def initialize(self, web: Web):
        self.web = web

    async def get(self, token: str):
        try:
            expires = int(self.get_query_argument("exp"))
            sig = self.get_query_argument("sig")
        except (ValueError, tornado.web.MissingArgumentError):
            raise tornado.web.HTTPError(403) from None
        good = photo_signature(self.web.settings.token, token, expires)
        if not hmac.compare_digest(sig.encode(), good.encode()) or expires < time.time():
            raise tornado.web.HTTPError(403)
        raw = await self.web.aredis.get(keys.hints_grant(token))
        grant = webapp.Grant.from_json(raw) if raw else None
        if grant is None:
            raise tornado.web.HTTPError(410)
        try:
            data, kind = await self.web.photo(grant.file_id)
        except ApiError as exc:
            raise tornado.web.HTTPError(exc.status) from None
        self.set_header("Content-Type", kind)
        self.set_header("Cache-Control", "private, max-age=600")
        self.finish(data)


class Page(tornado.web.RequestHandler):
    def initialize(self, telegram_js: str):
        self.telegram_js = telegram_js

    def get(self):
        origin = "{0.scheme}://{0.netloc}".format(urllib.parse.urlsplit(self.telegram_js))
        self.set_header("Content-Security-Policy",
                        f"default-src 'self'; script-src 'self' {origin}; img-src 'self' blob: data:; "
                        "style-src 'self'; connect-src 'self'; frame-ancestors https://*.telegram.org https://web.telegram.org")
        self.set_header("Cache-Control", "no-store")
        page = (STATIC / "index.html").read_text(encoding="utf-8")
        self.finish(page.replace("{{TELEGRAM_JS}}", self.telegram_js))


class Health(tornado.web.RequestHandler):
    def initialize(self, web: Web):
        self.web = web

    async def get(self):
        try:
            await self.web.aredis.ping()
        except redis.RedisError:
            raise tornado.web.HTTPError(503) from None
        self.finish("ok")


def make_app(settings: Settings, telegram_js: str = TELEGRAM_JS) -> tornado.web.Application:
    """The web server's routes. `telegram_js`: where the page loads Telegram's script from (tests serve a stand-in)."""
    web = Web(settings)
    return tornado.web.Application([
        (r"/", Page, {"telegram_js": telegram_js}),
        (r"/api/session", Session, {"web": web}),
        (r"/api/preview", Preview, {"web": web}),
        (r"/api/suggest", Suggest, {"web": web}),
        (r"/api/send", Send, {"web": web}),
        (rf"/api/photo/({webapp.TOKEN})", Photo, {"web": web}),
        (r"/healthz", Health, {"web": web}),
        (r"/static/(.*)", tornado.web.StaticFileHandler, {"path": str(STATIC)}),
    ], xheaders=True)
