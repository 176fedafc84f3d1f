"""The bot under faults and abuse: Redis down, limits, allow-list, admin commands, hostile text, secrets."""

import pytest

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


@pytest.mark.parametrize("text", [
    "/style " + "🎨" * 3000,
    "/style <script>alert(1)</script>",
    "/style ../../etc/passwd",
    "/nosuchcommand",
    "x" * 4096,
])
def test_hostile_text_gets_a_short_answer(bot_service, text):
    tg = bot_service.telegram
    chat = tg.private_chat(901)
    photo = tg.user_sends_photo(chat, gray_photo(), caption="/colorize@SomeoneElse")  # ignored: another bot's
    tg.user_sends_text(chat, text, reply_to=photo["message_id"])
    (reply,) = tg.wait_for("sendMessage", chat_id=901)
    assert 0 < len(reply.params["text"]) < 600
    assert bot_service.queued() == 0


def test_unknown_style_lists_names_and_queues_nothing(bot_service):
    tg = bot_service.telegram
    chat = tg.private_chat(902)
    photo = tg.user_sends_photo(chat, gray_photo(), caption="/style picasso")
    (reply,) = tg.wait_for("sendMessage", chat_id=902)
    assert "picasso" in reply.params["text"] and "vangogh" in reply.params["text"]
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
