"""Where "Pick colours" is offered, and to whom (bot/contract/webapp.py): under a colourised result (the worker) and
for /hints (the bot), as a web_app button in a private chat and a t.me link to the bot's Mini App in a group (which
takes no web_app buttons: the fake Bot API refuses them as Telegram does), only when the Mini App has an address
and a worker runs the hints engine. Real bot, real Redis, the worker's code in-process (tests/harness.py), and the
workers' queue order with a real RQ worker."""

from __future__ import annotations

import dataclasses
import json
import urllib.parse

import pytest
from rq import Queue
from rq.serializers import JSONSerializer

from bot.contract import webapp
from bot.contract.keys import ENGINES as ENGINES_KEY
from bot.contract.texts import render
from tests.harness import gray_photo

REQUESTER = 8801
URL = "https://paint.example.test/app"


@pytest.fixture
def svc(engines_with, standin_weights):
    """The service with SIGGRAPH17 published, the Mini App at URL, BotFather's short name "paint"."""
    svc = engines_with({"siggraph17-df00044c.pth": standin_weights["siggraph17"]})
    assert svc.redis.hexists(ENGINES_KEY, "siggraph17")
    configure(svc, webapp_url=URL, webapp_name="paint")
    return svc


def configure(svc, **changes) -> None:
    settings = dataclasses.replace(svc.settings, **changes)
    svc.settings = svc.runtime.settings = svc.bot.app.bot_data.settings = settings


def _keyboard(msg: dict) -> list[dict]:
    return [b for row in (msg.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]


def _result(svc, chat) -> dict:
    svc.wait_queued(1)
    svc.run_worker()
    (msg,) = [m for m in svc.telegram.bot_messages(chat["id"]) if "photo" in m]
    return msg


def test_a_private_result_offers_a_web_app_button_with_its_own_grant(svc):
    tg = svc.telegram
    chat = tg.private_chat(REQUESTER)
    photo = tg.user_sends_photo(chat, gray_photo(seed=3), user=tg.user(REQUESTER, language_code="ru"))
    (button,) = [b for b in _keyboard(_result(svc, chat)) if "web_app" in b]
    assert button["text"] == render("followup.hints", "ru")
    url = urllib.parse.urlsplit(button["web_app"]["url"])
    assert url._replace(query="").geturl() == URL
    (token,) = urllib.parse.parse_qs(url.query)["t"]
    grant = webapp.recall(svc.redis, token)
    assert grant == webapp.Grant(chat["id"], REQUESTER, photo["photo"][-1]["file_id"], photo["message_id"], None, "ru",
                                 False, None)
    assert 0 < svc.redis.ttl(f"paintbot:hints:{token}") <= svc.settings.result_cache_ttl
    # The grant is the person's record: /forget deletes it with the rest (bot/contract/records.py `forget`).
    tg.user_sends_text(chat, "/forget", user=tg.user(REQUESTER, language_code="ru"))
    tg.wait_for(lambda c: c.method == "sendMessage" and c.params.get("text") == render("forget.done", "ru"))
    assert webapp.recall(svc.redis, token) is None


def test_a_group_result_offers_a_link_to_the_bots_mini_app_for_the_requester(svc):
    tg = svc.telegram
    group = tg.group_chat(-1008801)
    photo = tg.user_sends_photo(group, gray_photo(seed=4), user=tg.user(REQUESTER))
    tg.user_sends_text(group, "/colorize", user=tg.user(REQUESTER), reply_to=photo["message_id"])
    msg = _result(svc, group)
    (button,) = [b for b in _keyboard(msg) if "url" in b]
    assert not [b for b in _keyboard(msg) if "web_app" in b]
    prefix = f"https://t.me/{tg.bot_username}/paint?startapp="
    assert button["url"].startswith(prefix)
    grant = webapp.recall(svc.redis, button["url"].removeprefix(prefix))
    assert (grant.chat_id, grant.user_id, grant.reply_to) == (group["id"], REQUESTER, photo["message_id"])


def test_no_button_without_the_address_the_short_name_or_the_engine(svc):
    tg = svc.telegram
    configure(svc, webapp_name="")  # a group then gets none (no web_app there); a private chat still does
    group = tg.group_chat(-1008802)
    photo = tg.user_sends_photo(group, gray_photo(seed=5), user=tg.user(REQUESTER))
    tg.user_sends_text(group, "/colorize", user=tg.user(REQUESTER), reply_to=photo["message_id"])
    msg = _result(svc, group)
    assert _keyboard(msg) and not [b for b in _keyboard(msg) if "url" in b or "web_app" in b]
    configure(svc, webapp_url="")
    chat = tg.private_chat(REQUESTER + 1)
    tg.user_sends_photo(chat, gray_photo(seed=6))
    assert not [b for b in _keyboard(_result(svc, chat)) if "web_app" in b]
    configure(svc, webapp_url=URL)
    svc.redis.hdel(ENGINES_KEY, "siggraph17")  # no worker runs the engine that takes hints
    chat = tg.private_chat(REQUESTER + 2)
    tg.user_sends_photo(chat, gray_photo(seed=7))
    assert not [b for b in _keyboard(_result(svc, chat)) if "web_app" in b]


def _markup_buttons(call) -> list[dict]:
    markup = call.params["reply_markup"]
    markup = json.loads(markup) if isinstance(markup, str) else markup
    return [b for row in markup["inline_keyboard"] for b in row]


def test_hints_command_gives_the_sender_a_button_for_the_photo(svc):
    tg = svc.telegram
    chat = tg.private_chat(REQUESTER + 3)
    photo = tg.user_sends_photo(chat, gray_photo(seed=8))
    tg.user_sends_text(chat, "/hints", reply_to=photo["message_id"])
    (offer,) = tg.wait_for(lambda c: c.method == "sendMessage" and c.params.get("text") == render("hints.offer"),
                           chat_id=chat["id"])
    (button,) = _markup_buttons(offer)
    (token,) = urllib.parse.parse_qs(urllib.parse.urlsplit(button["web_app"]["url"]).query)["t"]
    assert webapp.recall(svc.redis, token).file_id == photo["photo"][-1]["file_id"]
    # In a group, another member than the photo's sender: a link of their own; without a photo, what to do.
    group = tg.group_chat(-1008803)
    shared = tg.user_sends_photo(group, gray_photo(seed=9), user=tg.user(REQUESTER))
    tg.user_sends_text(group, "/hints", user=tg.user(REQUESTER + 4), reply_to=shared["message_id"])
    (link,) = tg.wait_for(lambda c: c.method == "sendMessage" and c.params.get("text") == render("hints.offer"),
                          chat_id=group["id"])
    (button,) = _markup_buttons(link)
    grant = webapp.recall(svc.redis, button["url"].split("startapp=")[1])
    assert (grant.user_id, grant.chat_id, grant.reply_to) == (REQUESTER + 4, group["id"], shared["message_id"])
    tg.user_sends_text(group, "/hints", user=tg.user(REQUESTER + 4))
    tg.wait_for(lambda c: c.method == "sendMessage" and c.params.get("text") == render("hints.need_photo"),
                chat_id=group["id"])
    # Not offered (no Mini App address): said so, in a sentence.
    configure(svc, webapp_url="")
    tg.user_sends_text(chat, "/hints", reply_to=photo["message_id"])
    tg.wait_for(lambda c: c.method == "sendMessage" and c.params.get("text") == render("hints.unavailable"),
                chat_id=chat["id"])


def test_workers_take_previews_before_the_queue_of_photos(redis_url):
    """RQ looks at a worker's queues in order: the preview queue is first (worker/main.py `make_worker`)."""
    import redis

    from bot.contract.settings import Settings
    from worker.main import make_worker

    global NOTES
    NOTES = redis_url
    conn = redis.Redis.from_url(redis_url)
    settings = Settings(token="1:T", redis_url=redis_url)
    main = Queue(settings.queue_name, connection=conn, serializer=JSONSerializer)
    previews = Queue(settings.preview_queue, connection=conn, serializer=JSONSerializer)
    for i in range(3):
        main.enqueue("tests.test_webapp_buttons.note", f"photo-{i}")
    previews.enqueue("tests.test_webapp_buttons.note", "preview")
    make_worker(settings, conn).work(burst=True, with_scheduler=False)
    assert [x.decode() for x in conn.lrange("order", 0, -1)] == ["preview", "photo-0", "photo-1", "photo-2"]


NOTES = ""  # the Redis the jobs below write to (the worker runs them in this process)


def note(what: str) -> None:
    import redis

    redis.Redis.from_url(NOTES).rpush("order", what)
