"""Instant repeats, the follow-up buttons under results, before/after and colourise-then-paint, end to end:
the real bot and worker, real Redis, the fake Bot API. Every button is tapped in a private chat and in a
group (where someone other than the requester taps it, and the limits count the tapper)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from rq import Queue
from rq.serializers import JSONSerializer

from bot.contract import followups, keys
from bot.contract.keys import ENGINES as ENGINES_KEY
from bot.contract.texts import render
from tests.harness import chroma, gray_photo, lightness

REQUESTER, TAPPER = 8101, 8102


@pytest.fixture(params=["private", "group"])
def chat_kind(request):
    return request.param


@pytest.fixture
def svc(engines_with, standin_weights):
    """The service whose workers publish two colourisers (eccv16, the default, and siggraph17), so that
    "Another model" has somewhere to go and the worker can load it."""
    svc = engines_with({"siggraph17-df00044c.pth": standin_weights["siggraph17"]})
    published = svc.redis.hgetall(ENGINES_KEY)
    for name, raw in published.items():
        info = json.loads(raw)
        if info["family"] == "colorize" and info["name"] not in ("eccv16", "siggraph17"):
            svc.redis.hdel(ENGINES_KEY, name)
    return svc


def _photo_request(tg, kind: str, data: bytes, caption_args: str = ""):
    """A colourisation request: a photo in private (a caption for options), /colorize in reply in a group."""
    if kind == "private":
        chat = tg.private_chat(REQUESTER)
        photo = tg.user_sends_photo(chat, data, caption=f"/colorize {caption_args}" if caption_args else None)
    else:
        chat = tg.group_chat(-1008100)
        photo = tg.user_sends_photo(chat, data, user=tg.user(REQUESTER))
        tg.user_sends_text(chat, f"/colorize {caption_args}".strip(), user=tg.user(REQUESTER),
                           reply_to=photo["message_id"])
    return chat, photo


def _tapper(tg, kind: str):
    return tg.user(REQUESTER if kind == "private" else TAPPER)


def _results(tg, chat) -> list[dict]:
    """The bot's results in a chat (photos), oldest first."""
    return [m for m in tg.bot_messages(chat["id"]) if "photo" in m or "document" in m]


def _image(tg, msg: dict) -> Image.Image:
    fid = msg["photo"][-1]["file_id"]  # the fake keeps the bytes of every file
    with tg._lock:
        return Image.open(io.BytesIO(tg._files[fid].data))


def _buttons(msg: dict) -> dict[str, str]:
    """Button data by action: {"more": "fu:XXXXXXXX:more", ...}."""
    rows = (msg.get("reply_markup") or {}).get("inline_keyboard", [])
    actions = {b["callback_data"]: b["callback_data"].split(":", 2)[2] for row in rows for b in row}
    return {a.removeprefix("s:"): data for data, a in actions.items()}


def _queued_jobs(svc) -> list[dict]:
    q = Queue(svc.settings.queue_name, connection=svc.redis, serializer=JSONSerializer)
    return [j.args[0] for j in q.jobs]


def _first_result(svc, kind, data=None, caption_args=""):
    tg = svc.telegram
    chat, photo = _photo_request(tg, kind, data or gray_photo(160, 120), caption_args)
    svc.wait_queued(1)
    svc.run_worker()
    (result,) = _results(tg, chat)
    return chat, photo, result


def _tap(svc, kind, chat, msg, action, expect_job=True):
    tg = svc.telegram
    answers = len(tg.calls("answerCallbackQuery"))
    tg.user_presses_button(chat, msg["message_id"], _buttons(msg)[action], user=_tapper(tg, kind))
    tg.wait_for("answerCallbackQuery", count=answers + 1)
    if expect_job:
        svc.wait_queued(1)


def _open_paint_it(svc, kind, chat, msg) -> dict:
    """Tap "Paint it…" under `msg`: the message with the preset buttons the bot answers with."""
    tg = svc.telegram
    _tap(svc, kind, chat, msg, "paint", expect_job=False)
    tg.wait_for(lambda c: c.method == "sendMessage" and c.params["text"] == render("style.pick"))
    (pick,) = [m for m in tg.bot_messages(chat["id"]) if m.get("text") == render("style.pick")]
    return pick


def test_same_photo_twice_is_computed_once(svc, chat_kind):
    tg = svc.telegram
    chat, photo, first = _first_result(svc, chat_kind)
    computed = len(tg.calls("getFile"))
    # The same photo again, in a new message (forwarded): the same file_unique_id.
    if chat_kind == "private":
        again = tg.user_forwards(chat, photo)
    else:
        again = tg.user_forwards(chat, photo, user=tg.user(TAPPER))
        tg.user_sends_text(chat, "/colorize", user=tg.user(TAPPER), reply_to=again["message_id"])
    (second_call,) = tg.wait_for("sendPhoto", count=2)[1:]
    assert second_call.params["photo"] == first["photo"][-1]["file_id"], "sent again by the cached file id"
    assert not second_call.files, "nothing uploaded"
    assert second_call.reply_to == again["message_id"]
    assert second_call.params["caption"] == first["caption"]
    assert svc.queued() == 0 and len(tg.calls("getFile")) == computed, "no job, nothing downloaded"
    assert not [c for c in tg.calls("sendMessage") if c.params["text"].startswith("Queued")][1:], "no Queued"
    assert _buttons(_results(tg, chat)[-1]).keys() == _buttons(first).keys(), "the same buttons"


def test_cache_off_when_the_workers_disagree_on_the_default(svc):
    tg = svc.telegram
    info = json.loads(svc.redis.hget(ENGINES_KEY, "siggraph17"))
    svc.redis.hset(ENGINES_KEY, "siggraph17", json.dumps({**info, "default": True}))  # two defaults now
    chat, photo, first = _first_result(svc, "private")
    tg.user_forwards(chat, photo)
    svc.wait_queued(1)  # queued: the bot cannot tell which engine the worker would run
    svc.run_worker()
    assert len(_results(tg, chat)) == 2 and len(tg.calls("sendPhoto")[1].files) == 1


def test_intensity_through_telegram(svc):
    tg = svc.telegram
    chat = tg.private_chat(8110)
    data = gray_photo(120, 90)
    asked = [tg.user_sends_photo(chat, data, caption=caption)["message_id"]
             for caption in ("/colorize 0", "/colorize 200", None)]
    svc.wait_queued(3)
    svc.run_worker()
    by_photo = {m["reply_to_message"]["message_id"]: _image(tg, m) for m in _results(tg, chat)}
    zero, double, full = (by_photo[mid] for mid in asked)  # the bot may enqueue them in any order
    assert chroma(zero).max() < 1.5
    assert np.abs(lightness(zero) - lightness(Image.open(io.BytesIO(data)))).mean() < 1.0
    assert chroma(double).mean() > chroma(full).mean()


def test_more_and_less_colour(svc, chat_kind):
    tg = svc.telegram
    chat, photo, first = _first_result(svc, chat_kind)
    # "repair" too: the stand-in scratch detector finds damage on any textured photo (tests/test_e2e_restore.py
    # shows a clean one without it); "enhance": the photo is small and the workers publish faces and upscale
    assert set(_buttons(first)) == {"more", "less", "model", "paint", "ba", "repair", "enhance"}
    _tap(svc, chat_kind, chat, first, "more")
    (job,) = _queued_jobs(svc)
    assert job["options"]["intensity"] == 150 and job["options"]["engine"] == "eccv16"
    assert job["user_id"] == _tapper(tg, chat_kind)["id"], "the limits count whoever tapped"
    svc.run_worker()
    more = _results(tg, chat)[-1]
    assert more["reply_to_message"]["message_id"] == first["message_id"]
    assert chroma(_image(tg, more)).mean() > chroma(_image(tg, first)).mean()
    # Less colour on the 150 % result is 100 % again: already made, so sent again from the cache at once.
    _tap(svc, chat_kind, chat, more, "less", expect_job=False)
    again = tg.wait_for("sendPhoto", count=3)[2]
    assert again.params["photo"] == first["photo"][-1]["file_id"] and svc.queued() == 0


def test_the_same_button_again_after_its_result_asks_again(svc, chat_kind):
    """A tap's claim ends with its job (or its cached answer): tapping the same button once its result has
    arrived makes a new request, not "Already on it" with nothing to come."""
    tg = svc.telegram
    chat, photo, first = _first_result(svc, chat_kind)
    _tap(svc, chat_kind, chat, first, "more")
    svc.run_worker()
    assert len(_results(tg, chat)) == 2
    for n in (3, 4):  # already made: answered from the cache, each time
        _tap(svc, chat_kind, chat, first, "more", expect_job=False)
        tg.wait_for("sendPhoto", count=n)
        assert tg.calls("answerCallbackQuery")[-1].params.get("text") != render("request.duplicate")
    _tap(svc, chat_kind, chat, first, "ba")  # never cached: a job each time, with the same job id
    svc.run_worker()
    _tap(svc, chat_kind, chat, first, "ba")
    svc.run_worker()
    pictures = [m for m in _results(tg, chat) if m.get("caption") == render("caption.compare")]
    assert len(pictures) == 2 and svc.queued() == 0


def test_less_colour_stops_at_zero(svc, chat_kind):
    chat, photo, result = _first_result(svc, chat_kind, caption_args="50")
    _tap(svc, chat_kind, chat, result, "less")
    svc.run_worker()
    zero = _results(svc.telegram, chat)[-1]
    assert chroma(_image(svc.telegram, zero)).max() < 1.5
    assert "less" not in _buttons(zero) and "more" in _buttons(zero), "nothing less than no colour"


def test_another_model(svc, chat_kind):
    tg = svc.telegram
    chat, photo, first = _first_result(svc, chat_kind)
    _tap(svc, chat_kind, chat, first, "model")
    (job,) = _queued_jobs(svc)
    assert job["options"]["engine"] == "siggraph17" and job["file_id"] == photo["photo"][-1]["file_id"]
    svc.run_worker()
    other = _results(tg, chat)[-1]
    assert "SIGGRAPH" in other["caption"] or "siggraph" in other["caption"].lower()


def test_paint_it(svc, chat_kind):
    tg = svc.telegram
    chat, photo, first = _first_result(svc, chat_kind)
    pick = _open_paint_it(svc, chat_kind, chat, first)
    assert pick["reply_to_message"]["message_id"] == first["message_id"]
    assert all(len(d.encode()) <= 64 for d in _buttons(pick).values())
    _tap(svc, chat_kind, chat, pick, "vangogh")
    (job,) = _queued_jobs(svc)
    assert job["op"] == "style" and job["options"]["style"] == "vangogh"
    assert job["file_id"] == first["photo"][-1]["file_id"], "the colourised result is what is painted"
    assert job["user_id"] == _tapper(tg, chat_kind)["id"]
    svc.run_worker()
    painted = _results(tg, chat)[-1]
    assert painted["reply_to_message"]["message_id"] == first["message_id"]
    assert "Starry Night" in painted["caption"]
    assert tg.message(chat["id"], pick["message_id"])["text"] == "Style: “The Starry Night” (Vincent van Gogh)"


def test_before_after(svc, chat_kind):
    tg = svc.telegram
    chat, photo, first = _first_result(svc, chat_kind, data=gray_photo(200, 150))
    _tap(svc, chat_kind, chat, first, "ba")
    (job,) = _queued_jobs(svc)
    assert job["op"] == "compare"
    svc.run_worker()
    picture = _results(tg, chat)[-1]
    assert picture["caption"] == render("caption.compare")
    img = _image(tg, picture)
    assert img.width == 200 and img.height > 300, "a wide photo: before above after"
    top, bottom = np.asarray(img.convert("RGB"), dtype=float)[:img.height // 2], \
        np.asarray(img.convert("RGB"), dtype=float)[img.height // 2:]
    assert chroma(Image.fromarray(bottom.astype(np.uint8))).mean() > chroma(Image.fromarray(top.astype(np.uint8))).mean()


def test_before_after_side_by_side_for_a_tall_photo(svc):
    tg = svc.telegram
    chat, photo, first = _first_result(svc, "private", data=gray_photo(90, 160))
    _tap(svc, "private", chat, first, "ba")
    svc.run_worker()
    img = _image(tg, _results(tg, chat)[-1])
    assert img.width > 2 * 90 and img.height > 160


def test_expired_buttons_ask_for_the_photo_again(svc, chat_kind):
    tg = svc.telegram
    chat, photo, first = _first_result(svc, chat_kind)
    for key in svc.redis.scan_iter("paintbot:followup:*"):
        svc.redis.delete(key)
    for action in ("more", "ba"):
        _tap(svc, chat_kind, chat, first, action, expect_job=False)
    answers = tg.calls("answerCallbackQuery")[-2:]
    assert all(a.params["text"] == render("followup.expired") and a.params["show_alert"] for a in answers)
    assert svc.queued() == 0


def test_another_chats_record_is_answered_as_expired(svc, chat_kind, caplog):
    """A forged callback carrying another chat's record id gets that chat's photo processed nowhere: it is
    answered as an expired button, with a log line."""
    tg = svc.telegram
    chat, photo, first = _first_result(svc, chat_kind)
    sent = len(tg.calls("sendPhoto"))
    thief = tg.private_chat(8199)
    for action in ("more", "ba", "paint"):
        kb = tg.bot_left_keyboard(thief, [_buttons(first)[action]])
        answers = len(tg.calls("answerCallbackQuery"))
        tg.user_presses_button(thief, kb["message_id"], _buttons(first)[action], user=tg.user(8199))
        (answer,) = tg.wait_for("answerCallbackQuery", count=answers + 1)[answers:]
        assert answer.params["text"] == render("followup.expired") and answer.params["show_alert"], action
    assert svc.queued() == 0 and len(tg.calls("sendPhoto")) == sent
    assert not [m for m in tg.bot_messages(thief["id"]) if "photo" in m or m.get("text") == render("style.pick")]
    assert "is not that chat's record" in caplog.text
    # The chat it belongs to still gets its answer.
    _tap(svc, chat_kind, chat, first, "more")


def test_a_record_without_a_chat_is_answered_as_expired(svc):
    """A record the previous release wrote (no chat id) cannot be checked: taken as expired."""
    tg = svc.telegram
    chat, photo, first = _first_result(svc, "private")
    rid = _buttons(first)["more"].split(":")[1]
    record = json.loads(svc.redis.get(followups.Followup.key_for(rid)))
    assert record.pop("chat_id") == chat["id"]
    svc.redis.set(followups.Followup.key_for(rid), json.dumps(record))
    _tap(svc, "private", chat, first, "more", expect_job=False)
    assert tg.calls("answerCallbackQuery")[-1].params["text"] == render("followup.expired")
    assert svc.queued() == 0


def test_junk_follow_up_data_is_answered(svc):
    tg = svc.telegram
    chat = tg.private_chat(8120)
    kb = tg.bot_left_keyboard(chat, ["fu:short:more", "fu:AAAAAAAA:explode"])
    for data in ("fu:short:more", "fu:AAAAAAAA:explode"):
        tg.user_presses_button(chat, kb["message_id"], data)
    answers = tg.wait_for("answerCallbackQuery", count=2)
    assert all(a.params["text"] == render("button.unknown") for a in answers)


def test_callback_data_parses_and_fits():
    rid = followups.new_id()
    for action in (*followups.ACTIONS, "s:vangogh"):
        data = followups.data(rid, action)
        assert len(data.encode()) <= 64 and followups.parse(data) == (rid, action)
    assert followups.parse("fu:../../x:more") is None and followups.parse("style:vangogh") is None
    assert followups.request_id(7, "more", ("a",)) != followups.request_id(7, "less", ("a",)) < 0


def test_colourise_then_paint_a_gray_photo(svc, chat_kind):
    tg = svc.telegram
    data = gray_photo(160, 120)
    if chat_kind == "private":
        chat = tg.private_chat(8130)
        tg.user_sends_photo(chat, data, caption="/style vangogh keep-colors")
    else:
        chat = tg.group_chat(-1008130)
        photo = tg.user_sends_photo(chat, data, user=tg.user(8131))
        tg.user_sends_text(chat, "/style vangogh keep-colors", user=tg.user(8131), reply_to=photo["message_id"])
    svc.wait_queued(1)
    svc.run_worker()
    (result,) = _results(tg, chat)
    assert chroma(_image(tg, result)).mean() > 2.0, "keeping the colours of a colourised photo gives colour"
    assert render("caption.colorized_first") in result["caption"]


def test_the_same_message_twice_is_answered_once_from_the_cache(svc):
    """Telegram may deliver an update again: a cached answer claims its request as a job does."""
    tg = svc.telegram
    chat, photo, first = _first_result(svc, "private")
    again = tg.user_forwards(chat, photo)
    tg.wait_for("sendPhoto", count=2)
    tg.push_update({"message": again})  # the same message once more, as a redelivered update
    tg.user_sends_text(chat, "/help")  # the bot has read past the redelivered one when /help is answered
    tg.wait_for(lambda c: c.method == "sendMessage" and c.params["text"] == render("help"))
    assert len(tg.calls("sendPhoto")) == 2 and svc.queued() == 0


def test_cached_answers_count_against_the_rate(svc):
    """A cached answer costs no compute but is still a message sent on the user's behalf: more cached repeats
    than PAINTBOT_USER_JOBS_PER_MINUTE in a few seconds get exactly that many answers and one refusal."""
    import time

    tg = svc.telegram
    limit = svc.settings.limits.user_per_minute
    if time.time() % 60 > 40:  # the rate counts per minute: all of it within one
        time.sleep(60.5 - time.time() % 60)
    chat, photo, first = _first_result(svc, "private")  # the first request of this minute
    for _ in range(limit + 5):
        tg.user_forwards(chat, photo)
    tg.wait_for("sendPhoto", count=limit)
    (refusal,) = tg.wait_for(lambda c: c.method == "sendMessage" and c.params["text"] == render("refused.rate"))
    tg.user_sends_text(chat, "/help")  # the bot has read past every repeat when /help is answered
    tg.wait_for(lambda c: c.method == "sendMessage" and c.params["text"] == render("help"))
    time.sleep(0.5)
    assert len(tg.calls("sendPhoto")) == limit, "the computed result and limit - 1 cached answers"
    assert [c.params["text"] for c in tg.calls("sendMessage")].count(render("refused.rate")) == 1, "once per burst"
    assert svc.queued() == 0 and not svc.redis.zcard(keys.inflight(REQUESTER)), "a cached answer takes no slot"


def test_a_cached_file_id_telegram_no_longer_knows_is_forgotten(svc):
    tg = svc.telegram
    chat, photo, first = _first_result(svc, "private")
    (key,) = list(svc.redis.scan_iter("paintbot:cache:*"))
    entry = json.loads(svc.redis.get(key))
    svc.redis.set(key, json.dumps({**entry, "file_id": "AgACgone-fake-file-id"}))
    tg.user_forwards(chat, photo)
    svc.wait_queued(1)  # refused by Telegram (400): computed again
    assert svc.redis.get(key) is None
    svc.run_worker()
    assert len(tg.calls("sendPhoto")) == 2 and json.loads(svc.redis.get(key))["file_id"] != "AgACgone-fake-file-id"


def test_no_cache_and_no_buttons_when_turned_off(svc):
    import dataclasses

    off = dataclasses.replace(svc.settings, result_cache_ttl=0)
    svc.bot.app.bot_data.settings = svc.runtime.settings = off
    tg = svc.telegram
    chat, photo, first = _first_result(svc, "private")
    assert "reply_markup" not in first
    tg.user_forwards(chat, photo)
    svc.wait_queued(1)
    assert not list(svc.redis.scan_iter("paintbot:cache:*")) and not list(svc.redis.scan_iter("paintbot:followup:*"))


# --- an album's buttons: in a message under it (albums take no keyboard), for all its pictures -------------

ALBUM_SIZES = [(160, 120), (140, 100), (120, 90)]


def _album_result(svc, kind):
    """An album of three gray photos, colourised: (chat, the album's messages, the message with its buttons)."""
    tg = svc.telegram
    photos = [gray_photo(w, h, seed=i) for i, (w, h) in enumerate(ALBUM_SIZES)]
    if kind == "private":
        chat = tg.private_chat(REQUESTER)
        tg.user_sends_album(chat, photos)
    else:
        chat = tg.group_chat(-1008100)
        tg.user_sends_album(chat, photos, caption="/colorize", user=tg.user(REQUESTER))
    svc.wait_queued(1)
    svc.run_worker()
    album = _results(tg, chat)
    (buttons,) = [m for m in tg.bot_messages(chat["id"]) if m.get("reply_markup")]
    return chat, album, buttons


def _album_sizes(tg, album: list[dict]) -> list[tuple[int, int]]:
    return [_image(tg, m).size for m in album]


def test_album_buttons_colour_the_whole_album_again(svc, chat_kind):
    tg = svc.telegram
    chat, first, buttons = _album_result(svc, chat_kind)
    assert len(first) == 3 and _album_sizes(tg, first) == ALBUM_SIZES
    assert buttons["text"] == render("album.followup", count=3)
    assert buttons["reply_to_message"]["message_id"] == first[0]["message_id"]
    assert set(_buttons(buttons)) == {"more", "less", "model", "paint", "repair", "enhance"}, \
        "no Before/after for an album"
    _tap(svc, chat_kind, chat, buttons, "more")
    (job,) = _queued_jobs(svc)
    assert job["op"] == "colorize" and job["options"]["intensity"] == 150
    assert len(job["options"]["album"]) == 3, "the whole album"
    assert job["user_id"] == _tapper(tg, chat_kind)["id"], "the limits count whoever tapped"
    svc.run_worker()
    more = _results(tg, chat)[3:]
    assert _album_sizes(tg, more) == ALBUM_SIZES, "one album back, in the album's order"
    assert more[0]["reply_to_message"]["message_id"] == buttons["message_id"]
    for before, after in zip(first, more):
        assert chroma(_image(tg, after)).mean() > chroma(_image(tg, before)).mean()


def test_album_buttons_paint_the_colourised_album(svc, chat_kind):
    tg = svc.telegram
    chat, first, buttons = _album_result(svc, chat_kind)
    pick = _open_paint_it(svc, chat_kind, chat, buttons)
    _tap(svc, chat_kind, chat, pick, "vangogh")
    (job,) = _queued_jobs(svc)
    assert job["op"] == "style" and job["options"]["style"] == "vangogh"
    assert [item["file_id"] for item in job["options"]["album"]] == [m["photo"][-1]["file_id"] for m in first], \
        "the colourised results are what is painted"
    svc.run_worker()
    painted = _results(tg, chat)[3:]  # in the album's order (painted at most at the style size: compare shapes)
    assert [round(w / h, 1) for w, h in _album_sizes(tg, painted)] == [round(w / h, 1) for w, h in ALBUM_SIZES]
    assert "Starry Night" in painted[0]["caption"]


def test_before_after_cannot_be_asked_of_an_album(svc):
    """A forged "ba" under an album's buttons is answered, and asks for nothing."""
    tg = svc.telegram
    chat, first, buttons = _album_result(svc, "private")
    rid = next(iter(_buttons(buttons).values())).split(":")[1]
    with tg._lock:  # as if the keyboard had offered it
        tg._chats[chat["id"]].messages[buttons["message_id"]]["reply_markup"]["inline_keyboard"].append(
            [{"text": "ba", "callback_data": followups.data(rid, "ba")}])
    tg.user_presses_button(chat, buttons["message_id"], followups.data(rid, "ba"))
    (answer,) = tg.wait_for("answerCallbackQuery")
    assert answer.params.get("text") == render("button.unknown") and svc.queued() == 0


# --- pictures Telegram refuses as photos (sendPhoto: width + height <= 10000, ratio <= 20) go as files ------


def _file_image(tg, msg: dict) -> Image.Image:
    with tg._lock:
        return Image.open(io.BytesIO(tg._files[msg["document"]["file_id"]].data))


def _thin(w: int, h: int) -> bytes:
    arr = (np.add.outer(np.arange(h), np.arange(w)) % 256).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, "L").save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("size", [(4000, 40), (40, 4000)])
def test_before_after_of_a_thin_result_arrives_as_a_file(svc, size):
    """The before/after of a 4000x40 result is a 2560x84 sheet (53x2560 for 40x4000): sendPhoto refuses it
    (PHOTO_INVALID_DIMENSIONS), so it goes as a file, as a result that size does."""
    tg = svc.telegram
    chat = tg.private_chat(REQUESTER)
    tg.user_sends_document(chat, _thin(*size), file_name="strip.png", mime_type="image/png")
    svc.wait_queued(1)
    svc.run_worker()
    (first,) = _results(tg, chat)
    _tap(svc, "private", chat, first, "ba")
    svc.run_worker()
    assert not [c for c in tg.calls("sendPhoto", ok_only=False) if c.status != 200], "no photo refused"
    picture = _results(tg, chat)[-1]
    assert picture is not first and "document" in picture
    assert picture["caption"] == render("caption.compare")
    w, h = _file_image(tg, picture).size
    assert max(w, h) > 20 * min(w, h), "the sheet itself, at full size"
    assert not [m for m in tg.bot_messages(chat["id"]) if m.get("text") == render("failed")]


def test_an_album_with_a_thin_picture_arrives(svc):
    """One 4000x40 picture in an album of photos: Telegram would refuse it as a photo, and an album does
    not mix photos with files, so the whole album comes back as files, in order, the thin one included."""
    tg = svc.telegram
    chat = tg.private_chat(REQUESTER)
    tg.user_sends_album(chat, [gray_photo(160, 120), _thin(4000, 40), gray_photo(120, 90, seed=1)])
    svc.wait_queued(1)
    svc.run_worker()
    assert not [c for c in tg.calls(ok_only=False) if c.method.startswith("send") and c.status != 200]
    album = _results(tg, chat)
    assert [_file_image(tg, m).size for m in album] == [(160, 120), (4000, 40), (120, 90)]
