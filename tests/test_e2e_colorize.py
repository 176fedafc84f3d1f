"""A photo sent to the bot comes back colourised: the real bot, Redis, RQ worker and Bot API over HTTP."""

import io

import numpy as np
from PIL import Image

from tests.harness import chroma, gray_photo, lightness


def _uploaded_image(call) -> Image.Image:
    (upload,) = call.files.values()
    return Image.open(io.BytesIO(upload.data))


def _assert_colourised(out: Image.Image, sent: bytes):
    src = Image.open(io.BytesIO(sent))
    assert out.size == src.size
    dl = np.abs(lightness(out) - lightness(src))
    assert dl.mean() < 2.0, f"lightness changed by {dl.mean():.2f} on average"
    assert chroma(out).mean() > 2.0, "no colour added"


def test_private_photo_comes_back_colourised(service):
    tg = service.telegram
    chat = tg.private_chat(1001)
    data = gray_photo(333, 251)
    photo = tg.user_sends_photo(chat, data)

    (status,) = tg.wait_for("sendMessage", timeout=20)
    assert status.params["text"].startswith("Queued — position 1")
    assert int(status.params["chat_id"]) == chat["id"]
    service.wait_queued(1)
    service.run_worker()

    (sent,) = tg.calls("sendPhoto")
    assert int(sent.params["chat_id"]) == chat["id"]
    assert sent.reply_to == photo["message_id"]
    _assert_colourised(_uploaded_image(sent), data)
    # The status message was tidied away, and nothing else was sent.
    assert [c.method for c in tg.calls() if c.method in ("deleteMessage",)] == ["deleteMessage"]
    assert len(tg.calls("sendDocument")) == 0


def test_document_in_document_out_full_resolution(service):
    tg = service.telegram
    chat = tg.private_chat(1002)
    data = gray_photo(640, 427, fmt="PNG")
    doc = tg.user_sends_document(chat, data, file_name="grandma.png", mime_type="image/png")
    tg.wait_for("sendMessage", timeout=20)
    service.wait_queued(1)
    service.run_worker()

    (sent,) = tg.calls("sendDocument")
    assert sent.reply_to == doc["message_id"]
    (upload,) = sent.files.values()
    assert upload.filename == "grandma_colorized.png"
    out = Image.open(io.BytesIO(upload.data))
    assert out.format == "PNG"
    _assert_colourised(out, data)
    assert not tg.calls("sendPhoto")


def test_colorize_reply_in_group(service):
    tg = service.telegram
    group = tg.group_chat(-100500)
    alice = tg.user(2001)
    data = gray_photo(300, 200, seed=3)
    photo = tg.user_sends_photo(group, data, user=alice)  # groups: a plain photo is not a request
    cmd = tg.user_sends_text(group, f"/colorize@{tg.bot_username}", user=tg.user(2002),
                             reply_to=photo["message_id"])
    (status,) = tg.wait_for("sendMessage", timeout=20)
    assert status.reply_to == photo["message_id"]
    service.wait_queued(1)
    service.run_worker()

    (sent,) = tg.calls("sendPhoto")
    assert int(sent.params["chat_id"]) == group["id"]
    assert sent.reply_to == photo["message_id"]
    _assert_colourised(_uploaded_image(sent), data)
    assert cmd["message_id"] != photo["message_id"]


def test_colorize_without_photo_gives_a_hint_and_no_job(service):
    tg = service.telegram
    group = tg.group_chat(-100501)
    tg.user_sends_text(group, "/colorize", user=tg.user(2003))
    (hint,) = tg.wait_for("sendMessage", timeout=20)
    assert "Reply /colorize to a photo" in hint.params["text"]
    assert service.runtime.redis.llen("rq:queue:paintbot") == 0


def test_start_help_and_command_menu(service):
    tg = service.telegram
    assert tg.calls("setMyCommands"), "the command menu is registered at start-up"
    tg.user_sends_text(tg.private_chat(1003), "/start")
    (reply,) = tg.wait_for("sendMessage", timeout=20)
    assert "colour" in reply.params["text"]
