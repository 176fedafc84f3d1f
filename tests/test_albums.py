"""Albums end to end: a media group is one request and comes back as one album (sendMediaGroup),
through the fake Bot API, real Redis and a real worker."""

import io
import time

from PIL import Image

from bot import albums
from bot.contract import followups, keys
from tests.harness import BotThread, gray_photo


def _album_call(tg):
    (call,) = tg.wait_for("sendMediaGroup", timeout=60)
    return call


def _items(tg, call) -> list[tuple[str, Image.Image, str | None]]:
    """(type, image, file name) of each item of a sendMediaGroup call, in order."""
    out = []
    for m in call.params["media"]:
        upload = call.files[m["media"].removeprefix("attach://")]
        out.append((m["type"], Image.open(io.BytesIO(upload.data)), upload.filename))
    return out


def test_album_of_ten_photos_is_one_request_and_one_album(service):
    tg = service.telegram
    chat = tg.private_chat(3101)
    sizes = [(200 + 8 * i, 150 + 4 * i) for i in range(10)]  # each picture its own size: order is visible
    sent = tg.user_sends_album(chat, [gray_photo(w, h, seed=i) for i, (w, h) in enumerate(sizes)])

    (status,) = tg.wait_for("sendMessage", timeout=20)  # no worker is free: one "Queued", for the album
    assert status.params["text"].startswith("Queued — position 1")
    service.wait_queued(1)
    service.run_worker()

    call = _album_call(tg)
    items = _items(tg, call)
    assert [kind for kind, _, _ in items] == ["photo"] * 10
    assert [img.size for _, img, _ in items] == sizes  # the original order, each at full size
    assert call.reply_to == sent[0]["message_id"]
    assert "Colourised" in call.params["media"][0]["caption"]
    assert not tg.calls("sendPhoto") and len(tg.calls("sendMessage")) == 2  # nothing per photo: status, buttons
    edits = [c.params["text"] for c in tg.calls("editMessageText")]
    assert all("10" in t for t in edits), edits  # "Colourising 10 pictures…", counted as they finish
    # The status message is tidied away; what is left is the album's buttons, under it.
    (buttons,) = [m for m in tg.bot_messages(chat["id"]) if "text" in m]
    assert buttons["text"] == "For all 10 pictures:" and buttons["reply_to_message"]["message_id"] == \
        tg.bot_messages(chat["id"])[0]["message_id"]


def test_album_of_three_files_comes_back_as_files_in_order(service):
    tg = service.telegram
    chat = tg.private_chat(3102)
    names = ["first.png", "second.png", "third.png"]
    files = [(gray_photo(160 + 10 * i, 120, seed=i, fmt="PNG"), n, "image/png") for i, n in enumerate(names)]
    tg.user_sends_album(chat, files)
    service.wait_queued(1)
    service.run_worker()

    items = _items(tg, _album_call(tg))
    assert [kind for kind, _, _ in items] == ["document"] * 3
    assert [name for _, _, name in items] == ["first_colorized.png", "second_colorized.png", "third_colorized.png"]
    assert [img.size for _, img, _ in items] == [(160, 120), (170, 120), (180, 120)]
    assert all(img.format == "PNG" for _, img, _ in items)


def test_reply_to_one_photo_of_an_album_applies_to_the_whole_album(service):
    tg = service.telegram
    group = tg.group_chat(-3103)
    sent = tg.user_sends_album(group, [gray_photo(120 + 10 * i, 90, seed=i) for i in range(4)])
    # In a group an album alone is no request; the bot only remembers it.
    import time

    deadline = time.monotonic() + 10
    while not service.redis.keys("paintbot:album:-3103:*"):
        assert time.monotonic() < deadline, "the album was not remembered"
        time.sleep(0.05)
    assert service.queued() == 0
    tg.user_sends_text(group, "/colorize", user=tg.user(3104), reply_to=sent[2]["message_id"])
    service.wait_queued(1)
    service.run_worker()

    call = _album_call(tg)
    items = _items(tg, call)
    assert [img.size for _, img, _ in items] == [(120, 90), (130, 90), (140, 90), (150, 90)]
    assert call.reply_to == sent[2]["message_id"]


def test_album_caption_command_applies_to_the_whole_album_in_a_group(service):
    tg = service.telegram
    group = tg.group_chat(-3105)
    tg.user_sends_album(group, [gray_photo(100, 80, seed=i) for i in range(3)], caption="/colorize", caption_on=1)
    service.wait_queued(1)
    service.run_worker()
    assert len(_items(tg, _album_call(tg))) == 3


def test_an_unreadable_picture_is_named_and_the_rest_delivered(service):
    tg = service.telegram
    chat = tg.private_chat(3106)
    files = [(gray_photo(100, 80, seed=0, fmt="PNG"), "good1.png", "image/png"),
             (b"\x89PNG\r\n\x1a\nthis is not really a picture", "broken.png", "image/png"),
             (gray_photo(110, 80, seed=1, fmt="PNG"), "good2.png", "image/png")]
    tg.user_sends_album(chat, files)
    service.wait_queued(1)
    service.run_worker()

    call = _album_call(tg)
    assert [name for _, _, name in _items(tg, call)] == ["good1_colorized.png", "good2_colorized.png"]
    caption = call.params["media"][0]["caption"]
    assert "broken.png" in caption and "Could not read" in caption


def test_an_album_with_one_readable_picture_comes_back_as_that_picture_with_its_buttons(service):
    tg = service.telegram
    chat = tg.private_chat(3107)
    files = [(b"\x89PNG\r\n\x1a\nthis is not really a picture", "broken.png", "image/png"),
             (gray_photo(110, 80, seed=1, fmt="PNG"), "good.png", "image/png")]
    sent = tg.user_sends_album(chat, files)
    service.wait_queued(1)
    service.run_worker()

    (call,) = tg.wait_for("sendDocument", timeout=60)  # an album needs two: one file, as for one file
    assert call.files["document"].filename == "good_colorized.png" and "broken.png" in call.params["caption"]
    rows = call.params["reply_markup"]["inline_keyboard"]
    actions = {b["callback_data"].rsplit(":", 1)[1] for row in rows for b in row}
    assert {"more", "less", "ba"} <= actions, "its buttons, as under any result"
    (result,) = [m for m in tg.bot_messages(chat["id"]) if "document" in m]
    rid = rows[0][0]["callback_data"].split(":")[1]
    record = followups.recall(service.redis, rid)
    assert record.source_file_id == sent[1]["document"]["file_id"], "the buttons act on the picture that was read"
    assert record.result_file_id == result["document"]["file_id"] and record.album is None


def test_an_album_counts_as_one_request_for_the_limits(telegram, redis_url):
    """Ten photos from a user allowed 2 requests in flight: one album, queued, no refusal."""
    from tests.harness import BotThread, settings_for

    bot = BotThread(settings_for(telegram, redis_url, user_in_flight=2, user_per_minute=3)).start()
    try:
        chat = telegram.private_chat(3107)
        telegram.user_sends_album(chat, [gray_photo(64, 48, seed=i) for i in range(10)])
        (status,) = telegram.wait_for("sendMessage", timeout=20)
        assert status.params["text"].startswith("Queued")
        import time

        import redis

        conn = redis.Redis.from_url(redis_url)
        deadline = time.monotonic() + 10  # "Queued" is said just before the job is enqueued
        while conn.llen("rq:queue:paintbot") < 1:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(1)
        assert conn.llen("rq:queue:paintbot") == 1 and len(telegram.calls("sendMessage", chat_id=3107)) == 1
    finally:
        bot.stop()


def test_an_album_the_queue_cannot_take_gets_one_clear_answer(telegram, redis_url):
    """The queue is full: the album's 6 pictures get one "very busy", not one refusal each."""
    from tests.harness import BotThread, settings_for

    bot = BotThread(settings_for(telegram, redis_url, queue_cap=1)).start()
    try:
        telegram.user_sends_photo(telegram.private_chat(3108), gray_photo(64, 48))
        telegram.wait_for("sendMessage", chat_id=3108, timeout=20)  # "Queued": the queue is now full
        chat = telegram.private_chat(3109)
        sent = telegram.user_sends_album(chat, [gray_photo(64, 48, seed=i) for i in range(6)])
        (refusal,) = telegram.wait_for("sendMessage", chat_id=3109, timeout=20)
        assert "very busy" in refusal.params["text"] and refusal.reply_to == sent[0]["message_id"]
        import time

        time.sleep(2)  # nothing more comes
        assert len(telegram.calls("sendMessage", chat_id=3109)) == 1
    finally:
        bot.stop()


def test_an_album_captioned_style_comes_back_painted(service):
    tg = service.telegram
    chat = tg.private_chat(3110)
    tg.user_sends_album(chat, [gray_photo(96, 72, seed=i) for i in range(2)], caption="/style vangogh")
    service.wait_queued(1)
    service.run_worker()
    call = _album_call(tg)
    assert [kind for kind, _, _ in _items(tg, call)] == ["photo", "photo"]
    assert "“The Starry Night” (Vincent van Gogh)" in call.params["media"][0]["caption"]


def test_send_media_group_keeps_telegrams_rules(telegram):
    """The fake refuses what Telegram refuses: one item, eleven, photos mixed with files."""
    import pytest

    from bot.contract.settings import Settings
    from worker.telegram import Rejected, Telegram

    tg = Telegram(Settings(token=telegram.token, telegram_api=telegram.api_root))
    chat = telegram.private_chat(3111)
    photo = telegram.user_sends_photo(chat, gray_photo(64, 48))
    item = (gray_photo(64, 48), "a.jpg")
    for items in ([item], [item] * 11):
        with pytest.raises(Rejected):
            tg.send_album(chat["id"], photo["message_id"], items, as_document=False)
    assert len(tg.send_album(chat["id"], photo["message_id"], [item] * 10, as_document=True)) == 10
    mixed = {"chat_id": chat["id"], "media": [{"type": "photo", "media": "x"}, {"type": "document", "media": "y"}]}
    import json
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"{telegram.api_root}/bot{telegram.token}/sendMediaGroup",
                                 data=json.dumps(mixed).encode(), headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req)
    assert "can't be mixed" in json.loads(err.value.read())["description"]


def test_an_album_being_gathered_when_the_bot_stops_is_answered_after_it_starts(service, monkeypatch):
    """Telegram forgets an update once the bot has confirmed it (at its next poll, long before an album is
    complete): the pictures are kept in Redis while gathering, so a bot stopped then is not the album's end."""
    tg = service.telegram
    chat = tg.private_chat(3111)
    monkeypatch.setattr(albums, "GATHER_QUIET", 60.0)  # the album cannot complete before the bot stops
    sizes = [(200, 150), (240, 160), (280, 170)]
    sent = tg.user_sends_album(chat, [gray_photo(w, h, seed=i) for i, (w, h) in enumerate(sizes)])
    deadline = time.monotonic() + 10
    while service.redis.hlen(keys.album_gathering(chat["id"], sent[0]["media_group_id"])) < 3:
        assert time.monotonic() < deadline, "the album's pictures were not kept"
        time.sleep(0.02)
    service.bot.stop()
    assert not tg.calls("sendMessage") and service.queued() == 0
    assert tg.unconfirmed() == 0  # Telegram will not send these updates again

    monkeypatch.setattr(albums, "GATHER_QUIET", 1.0)
    service.bot = BotThread(service.settings).start()
    try:
        (status,) = tg.wait_for("sendMessage", timeout=20)
        assert status.params["text"].startswith("Queued")
        service.wait_queued(1)
        service.run_worker()
        call = _album_call(tg)
        assert [img.size for _, img, _ in _items(tg, call)] == sizes
        assert call.reply_to == sent[0]["message_id"]
        assert not service.redis.keys("paintbot:albums:gathering*")  # handled: nothing left to recover
    finally:
        service.bot.stop()
