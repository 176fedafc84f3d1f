"""The bot under faults and abuse: Redis down, limits, allow-list, admin commands, hostile text, secrets,
shared identities, duplicate and malformed updates, chats it cannot write to."""

import logging
import time
import unicodedata

import pytest
import redis

from bot.contract import keys
from bot.contract.texts import render
from tests.harness import BotThread, gray_photo, settings_for


def test_redis_down_then_back(bot_service, redis_server):
    tg = bot_service.telegram
    chat = tg.private_chat(601)
    redis_server.stop()
    try:
        tg.user_sends_photo(chat, gray_photo())
        (reply,) = tg.wait_for("sendMessage", timeout=30)
        assert "briefly unavailable" in reply.params["text"]
    finally:
        redis_server.start()
    # Nothing to restart by hand: the next request goes through.
    tg.user_sends_photo(chat, gray_photo(seed=1))
    replies = tg.wait_for("sendMessage", count=2, timeout=30)
    assert replies[1].params["text"].startswith("Queued")
    bot_service.wait_queued(1)


def _bot_with(telegram, redis_url, **kw):
    limits = kw.pop("limits", {})
    settings = settings_for(telegram, redis_url, **limits)
    if kw:
        from dataclasses import replace

        settings = replace(settings, **kw)
    return BotThread(settings).start()


def test_per_user_limits_and_queue_cap(telegram, redis_url):
    bot = _bot_with(telegram, redis_url, limits=dict(user_in_flight=2, user_per_minute=3, queue_cap=3))
    try:
        tg = telegram
        alice, bob, carol = tg.private_chat(701), tg.private_chat(702), tg.private_chat(703)
        for i in range(3):  # the third is over alice's in-flight limit
            tg.user_sends_photo(alice, gray_photo(seed=i))
            tg.wait_for("sendMessage", count=i + 1, chat_id=701)
        texts = [c.params["text"] for c in tg.calls("sendMessage", chat_id=701)]
        assert [t.startswith("Queued") for t in texts] == [True, True, False]
        assert "already have 2 photos in progress" in texts[2]
        tg.user_sends_photo(bob, gray_photo())
        tg.wait_for("sendMessage", chat_id=702)
        tg.user_sends_photo(carol, gray_photo())  # 3 jobs wait: the queue is full
        (full,) = tg.wait_for("sendMessage", chat_id=703)
        assert "very busy" in full.params["text"]
    finally:
        bot.stop()


def test_rate_limit_per_minute(telegram, redis_url):
    bot = _bot_with(telegram, redis_url, limits=dict(user_in_flight=10, user_per_minute=2))
    try:
        tg = telegram
        chat = tg.private_chat(704)
        for i in range(3):
            tg.user_sends_photo(chat, gray_photo(seed=i))
            tg.wait_for("sendMessage", count=i + 1, chat_id=704)
        texts = [c.params["text"] for c in tg.calls("sendMessage", chat_id=704)]
        assert "wait a minute" in texts[2]
    finally:
        bot.stop()


def test_allow_list_and_admin_stats(telegram, redis_url):
    bot = _bot_with(telegram, redis_url, allowed_chats=frozenset({801, 802}), admins=frozenset({801}))
    try:
        tg = telegram
        tg.user_sends_text(tg.private_chat(899), "/start")
        (private,) = tg.wait_for("sendMessage", chat_id=899)
        assert "private" in private.params["text"]
        tg.user_sends_text(tg.private_chat(802), "/stats")
        (denied,) = tg.wait_for("sendMessage", chat_id=802)
        assert "admins" in denied.params["text"]
        tg.user_sends_text(tg.private_chat(801), "/stats")
        (stats,) = tg.wait_for("sendMessage", chat_id=801)
        assert "Queue: 0 waiting" in stats.params["text"] and "Workers:" in stats.params["text"]
    finally:
        bot.stop()


def _no_handler_failed(caplog) -> None:
    assert not [r for r in caplog.records if r.name == "paintbot.bot" and r.levelno >= logging.ERROR]


@pytest.mark.parametrize("text", [
    "/style " + "🎨" * 3000,
    "/style <script>alert(1)</script>",
    "/style ../../etc/passwd",
    "/nosuchcommand",
    "x" * 4096,
    "/style vangogh ²",  # a digit to str.isdigit(), not to int()
    "/colorize ٣٠",
    "/style \u202egnohgnav\u200b 6\u200d0",  # right-to-left override, zero-width characters
    "/colorize \u202e\u2066evil\u2069",
])
def test_hostile_text_gets_a_short_answer(bot_service, caplog, text):
    tg = bot_service.telegram
    chat = tg.private_chat(901)
    photo = tg.user_sends_photo(chat, gray_photo(), caption="/colorize@SomeoneElse")  # ignored: another bot's
    tg.user_sends_text(chat, text, reply_to=photo["message_id"])
    (reply,) = tg.wait_for("sendMessage", chat_id=901)
    assert 0 < len(reply.params["text"]) < 600
    assert not [c for c in reply.params["text"] if unicodedata.category(c) == "Cf"], "nothing invisible echoed"
    assert bot_service.queued() == 0
    _no_handler_failed(caplog)


@pytest.mark.parametrize("data", ["colorize:eccv16", "style:nosuchstyle", "x" * 64, "style:"])
def test_every_button_tap_is_answered(bot_service, caplog, data):
    """Buttons this version does not know (an older release's keyboard, junk data) are answered with
    a notice, so the user's button stops spinning; nothing is queued."""
    tg = bot_service.telegram
    chat = tg.private_chat(902)
    photo = tg.user_sends_photo(chat, gray_photo(), caption="/colorize@SomeoneElse")
    keyboard = tg.bot_left_keyboard(chat, [data], reply_to=photo["message_id"])
    tg.user_presses_button(chat, keyboard["message_id"], data)
    (answer,) = tg.wait_for("answerCallbackQuery")
    assert "doesn't work any more" in answer.params["text"] or "no longer available" in answer.params["text"]
    assert bot_service.queued() == 0 and not tg.calls("sendMessage")
    _no_handler_failed(caplog)


def test_before_any_worker_published_its_presets_a_name_is_taken_on_trust(bot_service):
    """The bot learns the presets from what the workers publish (bot/contract/records.py), never from their
    files. Before any worker has (a first start, or older workers during an upgrade), `/style NAME` is
    queued for the worker to check, and `/style` alone cannot offer buttons: it says so."""
    bot_service.redis.delete(keys.STYLES)
    tg = bot_service.telegram
    chat = tg.private_chat(903)
    tg.user_sends_photo(chat, gray_photo(), caption="/style")
    (reply,) = tg.wait_for("sendMessage", chat_id=903)
    assert reply.params["text"] == render("unavailable") and "reply_markup" not in reply.params
    tg.user_sends_photo(chat, gray_photo(seed=1), caption="/style vangogh")
    bot_service.wait_queued(1)


def test_unknown_style_lists_names_and_queues_nothing(bot_service):
    tg = bot_service.telegram
    chat = tg.private_chat(902)
    photo = tg.user_sends_photo(chat, gray_photo(), caption="/style picasso")
    (reply,) = tg.wait_for("sendMessage", chat_id=902)
    assert reply.params["text"] == "I don't know the painting “picasso”. /styles shows them all."
    assert reply.reply_to == photo["message_id"]
    assert bot_service.queued() == 0


def test_bot_process_logs_no_secrets_and_stops_cleanly_on_sigterm(telegram, redis_server):
    """The real `paintbot-bot` process at DEBUG level: the token is in every Bot API URL and the Redis
    password in REDIS_URL, yet neither reaches the log. SIGTERM stops polling and exits 0."""
    import os
    import signal
    import subprocess
    import sys

    import redis

    redis.Redis.from_url(redis_server.url).config_set("requirepass", "s3cret-pw")
    try:
        env = {**os.environ, "TELEGRAM_BOT_TOKEN": telegram.token, "PAINTBOT_TELEGRAM_API": telegram.api_root,
               "REDIS_URL": f"redis://:s3cret-pw@127.0.0.1:{redis_server.port}/0", "PAINTBOT_LOG_LEVEL": "DEBUG"}
        proc = subprocess.Popen([sys.executable, "-m", "bot.main"], env=env, stderr=subprocess.PIPE, text=True)
        try:
            tg = telegram
            tg.wait_for("setMyCommands", timeout=30)
            tg.user_sends_photo(tg.private_chat(950), gray_photo())
            (queued,) = tg.wait_for("sendMessage", chat_id=950)
            assert queued.params["text"].startswith("Queued")
            tg.fail("sendMessage", 502, "Bad Gateway", times=2)  # retried with back-off
            tg.user_sends_text(tg.private_chat(951), "/help")
            (help_,) = tg.wait_for("sendMessage", chat_id=951, timeout=30)
            assert "colour" in help_.params["text"]
        finally:
            proc.send_signal(signal.SIGTERM)
            _, log = proc.communicate(timeout=30)
        assert proc.returncode == 0, log[-2000:]
        assert "getUpdates" in log and "queued job=" in log, "the debug log was captured"
        assert telegram.token not in log and telegram.token.split(":")[1] not in log
        assert "s3cret-pw" not in log
    finally:
        redis.Redis.from_url(f"redis://:s3cret-pw@127.0.0.1:{redis_server.port}/0").config_set("requirepass", "")


def _wait_logged(caplog, needle: str, count: int = 1, timeout: float = 30) -> None:
    """Wait until the bot has logged `needle` `count` times (each request ends in one such line)."""
    deadline = time.monotonic() + timeout
    while (seen := sum(needle in r.getMessage() for r in caplog.records)) < count:
        assert time.monotonic() < deadline, f"logged {seen}x {needle!r}, expected {count}"
        time.sleep(0.05)


@pytest.mark.parametrize("status,description", [
    (403, "Forbidden: bot was kicked from the supergroup chat"),
    (400, "Bad Request: not enough rights to send text messages to the chat"),
])
def test_a_request_that_never_became_a_job_holds_no_slot(bot_service, status, description):
    """The "Queued" message cannot be posted: nothing is queued and the user's slots are all given back,
    so their next photo elsewhere is taken (3 leaked slots used to refuse it for 20 minutes)."""
    tg, conn = bot_service.telegram, bot_service.redis
    group, user = tg.group_chat(-100710), tg.user(710)
    tg.fail("sendMessage", status, description, times=3, chat_id=group["id"])
    for i in range(3):
        tg.user_sends_photo(group, gray_photo(seed=i), caption="/colorize", user=user)
    tg.wait_for("sendMessage", count=3, chat_id=group["id"], ok_only=False)
    deadline = time.monotonic() + 10
    while conn.keys("paintbot:inflight:710") or conn.keys("paintbot:request:*"):
        assert time.monotonic() < deadline, "slots and claims given back"
        time.sleep(0.02)
    assert bot_service.queued() == 0
    tg.user_sends_photo(tg.private_chat(710), gray_photo())
    (reply,) = tg.wait_for("sendMessage", chat_id=710)
    assert reply.params["text"].startswith("Queued")


def test_anonymous_admins_and_channels_are_limited_as_their_chat(telegram, redis_url):
    """Every anonymous group admin arrives as GroupAnonymousBot and every channel post as Channel_Bot:
    limits count per sender chat for those, not per (shared) user id."""
    bot = _bot_with(telegram, redis_url, limits=dict(user_in_flight=1))
    try:
        tg = telegram
        one, two, channel = tg.group_chat(-100720), tg.group_chat(-100721), tg.channel_chat(-100722)
        for i, (chat, sender) in enumerate([(one, one), (two, two), (one, channel), (one, one)]):
            tg.user_sends_photo(chat, gray_photo(seed=i), caption="/colorize", sender_chat=sender)
            tg.wait_for("sendMessage", count=i + 1)
        texts = [c.params["text"] for c in tg.calls("sendMessage")]
        assert [t.startswith("Queued") for t in texts] == [True, True, True, False], texts
        assert "already have 1 photo in progress" in texts[3]
    finally:
        bot.stop()


def test_double_tap_on_a_style_button_makes_one_job(bot_service):
    tg = bot_service.telegram
    chat = tg.private_chat(730)
    photo = tg.user_sends_photo(chat, gray_photo(), caption="/style")  # the keyboard of presets
    (keyboard,) = tg.wait_for("sendMessage", chat_id=730)
    keyboard_id = tg.bot_messages(730)[0]["message_id"]
    tg.user_presses_button(chat, keyboard_id, "style:munch")
    tg.user_presses_button(chat, keyboard_id, "style:munch")
    answers = tg.wait_for("answerCallbackQuery", count=2)
    assert sorted(a.params.get("text", "") for a in answers) == ["Already on it — the result will come here.",
                                                                 "Painting it like “The Scream” (Edvard Munch)…"]
    bot_service.wait_queued(1)
    queued = [c for c in tg.calls("sendMessage", chat_id=730) if c.params["text"].startswith("Queued")]
    assert len(queued) == 1 and bot_service.queued() == 1
    assert queued[0].reply_to == photo["message_id"]


def test_an_update_delivered_again_after_a_crash_makes_one_job(telegram, redis_url, caplog):
    """Telegram serves an update again when the bot stopped before confirming it: the restarted bot
    finds the request already queued and says nothing more."""
    caplog.set_level(logging.INFO, logger="paintbot.bot")
    tg = telegram
    bot = _bot_with(telegram, redis_url)
    try:
        tg.user_sends_photo(tg.private_chat(740), gray_photo())
        update = tg.last_update()
        tg.wait_for("sendMessage", chat_id=740)
    finally:
        bot.stop()
    tg.redeliver(update)
    bot = _bot_with(telegram, redis_url)
    try:
        _wait_logged(caplog, "the same request again")
        assert len(tg.calls("sendMessage", chat_id=740)) == 1
        assert redis.Redis.from_url(redis_url).llen("rq:queue:paintbot") == 1
    finally:
        bot.stop()


@pytest.mark.parametrize("photos", [10, 30])  # an album; a burst
def test_a_burst_of_photos_gets_one_refusal(bot_service, caplog, photos):
    caplog.set_level(logging.INFO, logger="paintbot.bot")
    tg = bot_service.telegram
    chat = tg.private_chat(750)
    for i in range(photos):
        tg.user_sends_photo(chat, gray_photo(48, 32, seed=i))
    _wait_logged(caplog, "queued job=", 3)
    _wait_logged(caplog, "refused chat=750", photos - 3)
    texts = [c.params["text"] for c in tg.calls("sendMessage", chat_id=750)]
    assert len(texts) == 4 and sum(t.startswith("Queued") for t in texts) == 3, texts


def test_a_malformed_update_is_skipped_once_and_the_bot_carries_on(bot_service, caplog):
    """An update python-telegram-bot cannot read used to be fetched again forever, wedging the bot."""
    tg = bot_service.telegram
    bad = tg.push_update({"message": {"message_id": 1, "date": 0, "chat": {"id": 760}}})  # a chat with no type
    tg.user_sends_text(tg.private_chat(761), "/help")
    (reply,) = tg.wait_for("sendMessage", chat_id=761)
    assert "colour" in reply.params["text"]
    tg.wait_for(lambda c: c.method == "getUpdates" and int(c.params.get("offset") or 0) > bad["update_id"])
    skipped = [r for r in caplog.records if "skipped update" in r.getMessage()]
    assert len(skipped) == 1 and f"update {bad['update_id']}" in skipped[0].getMessage()
    assert not [r for r in caplog.records if "Error while parsing updates" in r.getMessage()]


def test_stats_only_reads(telegram, redis_url):
    """/stats counts an abandoned job (its worker died) as running; finding and retrying it is the
    workers' maintenance, never run in the bot."""
    from rq import Queue
    from rq.job import JobStatus
    from rq.serializers import JSONSerializer

    bot = _bot_with(telegram, redis_url, admins=frozenset({770}))
    conn = redis.Redis.from_url(redis_url)
    try:
        tg = telegram
        chat = tg.private_chat(770)
        tg.user_sends_photo(chat, gray_photo())
        tg.wait_for("sendMessage", chat_id=770)
        q = Queue("paintbot", connection=conn, serializer=JSONSerializer)
        deadline = time.monotonic() + 10
        while not q.count:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        (job,) = q.jobs  # as if a worker took it and died a minute ago
        q.remove(job)
        job.set_status(JobStatus.STARTED)
        conn.zadd(q.started_job_registry.key, {f"{job.id}:died": time.time() - 60})
        tg.user_sends_text(chat, "/stats")
        stats = tg.wait_for("sendMessage", count=2, chat_id=770)[1]
        assert "0 waiting, 1 running" in stats.params["text"]
        assert conn.zcard(q.started_job_registry.key) == 1 and q.count == 0, "nothing cleaned up or retried"
    finally:
        bot.stop()


@pytest.mark.parametrize("caption", ["/сolorize", "/ please colour this", "/😀"])
def test_a_photo_captioned_with_a_command_like_word_is_answered_in_a_private_chat(bot_service, caption):
    """`/сolorize` (a Cyrillic с), `/ please ...`, `/😀`: no command of ours nor another bot's, so the photo is
    colourised as if it came without a caption, as a plain photo would be (it used to be dropped unanswered)."""
    tg = bot_service.telegram
    chat = tg.private_chat(940)
    tg.user_sends_photo(chat, gray_photo(), caption=caption)
    (queued,) = tg.wait_for("sendMessage", chat_id=940)
    assert queued.params["text"].startswith("Queued")
    bot_service.wait_queued(1)
    tg.user_sends_photo(chat, gray_photo(seed=3), caption="/colorize@SomeOtherBot")  # still not ours
    time.sleep(1)
    assert len(tg.calls("sendMessage", chat_id=940)) == 1 and bot_service.queued() == 1


def test_queued_is_still_said_when_the_photo_was_deleted_meanwhile(bot_service):
    """`/colorize` replying to a photo deleted before the bot answered: Telegram refuses a reply to it (400
    "message to be replied not found"), which withdrew the request and told nobody. The answer goes without
    the reply link, and the job stays."""
    tg = bot_service.telegram
    group = tg.group_chat(-100941)
    photo = tg.user_sends_photo(group, gray_photo(), user=tg.user(41))
    tg.user_sends_text(group, "/colorize", user=tg.user(41), reply_to=photo["message_id"])
    tg._chats[group["id"]].messages.pop(photo["message_id"])  # deleted before the bot answers
    (queued,) = tg.wait_for("sendMessage", chat_id=group["id"])
    assert queued.params["text"].startswith("Queued")
    assert queued.params["reply_parameters"]["allow_sending_without_reply"] is True
    bot_service.wait_queued(1)
