"""The Mini App's server (bot/web/server.py) refuses what it must, before it does anything: the real tornado server, a
real Redis, the fake Bot API (the server downloads the photo from it), initData signed as the Bot API documents
(tests/harness.py `init_data`, written from the docs, not with the code under test). No worker runs here: what
is refused must never reach a queue, and what is admitted is looked at on the queue itself."""

from __future__ import annotations

import json
import logging
import time
import urllib.parse

import pytest
import redis

from bot.contract import keys, records, webapp
from bot.contract.job import Job, Op
from bot.contract.options import MAX_HINTS, EngineInfo
from bot.contract.settings import Settings
from bot.contract.texts import render
from tests.harness import WebThread, gray_photo, init_data

USER, OTHER = 7001, 7002


@pytest.fixture
def site(telegram, redis_url, caplog):
    caplog.set_level(logging.INFO)
    settings = Settings(token=telegram.token, redis_url=redis_url, telegram_api=telegram.api_root,
                        webapp_url="https://paint.example.test/app")
    conn = redis.Redis.from_url(redis_url)
    records.publish(conn, [EngineInfo("siggraph17", "colorize", "Zhang et al., SIGGRAPH 2017")], ["starry_night"])
    chat = telegram.private_chat(USER)
    photo = gray_photo(200, 150)
    sent = telegram.user_sends_photo(chat, photo, user=telegram.user(USER))
    grant = webapp.Grant(USER, USER, sent["photo"][-1]["file_id"], sent["message_id"], lang="en")
    token = webapp.keep(conn, grant, 3600)
    server = WebThread(settings).start()
    try:
        yield server, telegram, conn, token, photo, settings
    finally:
        server.stop()
        assert telegram.token not in caplog.text and telegram.token.split(":")[1] not in caplog.text


def signed(telegram, user_id=USER, **kw) -> str:
    return init_data(telegram.token, {"id": user_id, "first_name": "Ada", "language_code": kw.pop("lang", "en")}, **kw)


def nothing_done(conn, telegram, settings) -> None:
    """Nothing was asked of the workers nor of Telegram on behalf of the request."""
    assert conn.llen(f"rq:queue:{settings.queue_name}") == 0
    assert conn.llen(f"rq:queue:{settings.preview_queue}") == 0
    assert not telegram.calls("getFile")


def test_init_data_is_checked_as_the_bot_api_documents(telegram):
    good = signed(telegram, lang="pt-br", start_param="x" * 22)
    fields = webapp.check_init_data(good, telegram.token)
    assert fields["user"]["id"] == USER and fields["start_param"] == "x" * 22
    pairs = dict(urllib.parse.parse_qsl(good))
    for forged in (urllib.parse.urlencode({**pairs, "user": pairs["user"].replace(str(USER), str(OTHER))}),
                   urllib.parse.urlencode({k: v for k, v in pairs.items() if k != "hash"}),
                   urllib.parse.urlencode({**pairs, "hash": pairs["hash"].upper()}),
                   signed(telegram).replace("auth_date=", "auth_date=1"), "", "hash=&&",
                   init_data("999:OTHER-BOT", {"id": USER})):
        with pytest.raises(webapp.InitDataError):
            webapp.check_init_data(forged, telegram.token)
    with pytest.raises(webapp.InitDataError, match="expired"):
        webapp.check_init_data(signed(telegram, auth_date=time.time() - 3601), telegram.token)


def test_a_valid_page_gets_its_photo_by_a_signed_address_in_the_users_language(site):
    server, telegram, conn, token, photo, settings = site
    status, body, _ = server.post("/api/session", {"initData": signed(telegram, lang="de"), "token": token})
    assert status == 200, body
    answer = json.loads(body)
    assert answer["lang"] == "de" and answer["texts"]["send"] == "In den Chat senden"
    assert answer["max_hints"] == MAX_HINTS
    text = body.decode()
    assert not telegram.calls("getFile")  # nothing fetched until the page asks for the photo
    assert telegram.token not in text and "file/" not in text and "photos/" not in text, text
    status, data, kind = server.get(answer["photo"])
    assert status == 200 and kind == "image/jpeg" and data == photo
    # Its signature binds the token and the expiry: any change, or the expiry passing, is refused.
    url = urllib.parse.urlsplit(answer["photo"])
    q = dict(urllib.parse.parse_qsl(url.query))
    for changed in ({**q, "exp": str(int(q["exp"]) + 60)}, {**q, "sig": "0" * 64}, {"exp": q["exp"]}):
        assert server.get(url.path + "?" + urllib.parse.urlencode(changed))[0] == 403
    past = int(time.time()) - 1
    from bot.web.server import photo_signature

    stale = {"exp": past, "sig": photo_signature(telegram.token, token, past)}
    assert server.get(url.path + "?" + urllib.parse.urlencode(stale))[0] == 403


@pytest.mark.parametrize("path", ["/api/session", "/api/preview", "/api/suggest", "/api/send"])
def test_forged_or_expired_init_data_is_refused_before_anything_else(site, path):
    server, telegram, conn, token, photo, settings = site
    body = {"token": token, "hints": [[1, 1, 200, 0, 0]], "x": 1, "y": 1, "nonce": "n" * 16}
    pairs = dict(urllib.parse.parse_qsl(signed(telegram)))
    forged = urllib.parse.urlencode({**pairs, "user": pairs["user"].replace('"Ada"', '"Eve"')})
    for initdata, code in ((forged, "auth"), (init_data("42:ANOTHER-BOT", {"id": USER}), "auth"), ("", "auth"),
                           (signed(telegram, auth_date=time.time() - 2 * 3600), "expired")):
        status, answer, _ = server.post(path, {**body, "initData": initdata})
        assert status == 401 and json.loads(answer)["error"] == code, (path, answer)
    nothing_done(conn, telegram, settings)


@pytest.mark.parametrize("path", ["/api/session", "/api/preview", "/api/send"])
def test_another_users_photo_is_refused(site, path):
    server, telegram, conn, token, photo, settings = site
    body = {"initData": signed(telegram, user_id=OTHER, lang="es"), "token": token, "hints": [[1, 1, 9, 9, 9]],
            "nonce": "n" * 16}
    status, answer, _ = server.post(path, body)
    assert status == 403 and json.loads(answer)["error"] == "not_yours"
    assert json.loads(answer)["message"] == render("webapp.error.not_yours", "es")  # in their language
    status, answer, _ = server.post(path, {**body, "initData": signed(telegram), "token": "A" * 22})  # no such grant
    assert status == 410 and json.loads(answer)["error"] == "expired"
    nothing_done(conn, telegram, settings)


def test_an_oversized_hint_list_is_refused(site):
    server, telegram, conn, token, photo, settings = site
    too_many = [[i, i, 10, 20, 30] for i in range(MAX_HINTS + 1)]
    for path in ("/api/preview", "/api/send"):
        status, answer, _ = server.post(path, {"initData": signed(telegram), "token": token, "hints": too_many,
                                               "nonce": "n" * 16})
        assert status == 400 and json.loads(answer)["error"] == "too_many", answer
        for bad in ([[1, 2, 3]], [[1, 2, 300, 0, 0]], [[-1, 2, 3, 4, 5]], [["1", 2, 3, 4, 5]], "x"):
            assert server.post(path, {"initData": signed(telegram), "token": token, "hints": bad,
                                      "nonce": "n" * 16})[0] == 400
    try:  # over the body limit: tornado refuses it unread (an error status, or the connection closed)
        assert server.post("/api/send", b'{"initData": "' + b"x" * 70_000 + b'"}')[0] >= 400
    except ConnectionError:
        pass
    nothing_done(conn, telegram, settings)


def test_a_replayed_send_is_one_job(site):
    server, telegram, conn, token, photo, settings = site
    body = {"initData": signed(telegram), "token": token, "hints": [[10, 20, 200, 30, 40]], "nonce": "a1b2c3d4e5f6"}
    first = server.post("/api/send", body)
    again = server.post("/api/send", body)
    assert first[0] == 200 and json.loads(first[1])["status"] == "queued"
    assert again[0] == 200 and json.loads(again[1])["status"] == "duplicate"
    queued = conn.lrange(f"rq:queue:{settings.queue_name}", 0, -1)
    assert len(queued) == 1
    from rq.job import Job as RqJob
    from rq.serializers import JSONSerializer

    job = Job.from_dict(RqJob.fetch(queued[0].decode(), connection=conn, serializer=JSONSerializer).args[0])
    assert job.op is Op.HINTS and job.chat_id == USER and job.user_id == USER and job.options.hints == ((10, 20, 200, 30, 40),)
    assert job.file_id and job.reply_to and job.request_id < -2 ** 40
    # Another Send (a new nonce) is another job; the replay of the first stays one.
    assert json.loads(server.post("/api/send", {**body, "nonce": "ffffeeee0000"})[1])["status"] == "queued"
    assert json.loads(server.post("/api/send", body)[1])["status"] == "duplicate"
    assert conn.llen(f"rq:queue:{settings.queue_name}") == 2
    assert not conn.exists(keys.hints_grant("A" * 22))


def test_the_page_loads_telegrams_script_under_a_strict_policy(site):
    server = site[0]
    status, body, kind = server.get("/")
    assert status == 200 and kind.startswith("text/html")
    assert b'<script src="https://telegram.org/js/telegram-web-app.js"></script>' in body


def test_a_group_link_brings_its_token_as_the_start_parameter(site):
    """Opened from a group's t.me link, the page has no `?t=`: the token is initData's start_param, signed with it."""
    server, telegram, conn, token, photo, settings = site
    status, body, _ = server.post("/api/session", {"initData": signed(telegram, start_param=token)})
    assert status == 200, body
    pairs = dict(urllib.parse.parse_qsl(signed(telegram, start_param=token)))
    swapped = urllib.parse.urlencode({**pairs, "start_param": "B" * 22})  # another grant, not signed by Telegram
    assert server.post("/api/session", {"initData": swapped})[0] == 401


def test_the_pages_limit_fits_what_the_network_takes():
    """The contract's MAX_HINTS (what the server admits) never exceeds the engine's (models/colorize/hints.py)."""
    from models.colorize import hints

    assert 0 < MAX_HINTS <= hints.MAX_HINTS
