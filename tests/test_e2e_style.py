"""/style end to end: presets, the inline keyboard, a custom style, options, /styles."""

import io

import numpy as np
import pytest
from PIL import Image
from rq import Queue
from rq.serializers import JSONSerializer

from tests.harness import gray_photo


class Spy:
    """Wraps the real engine (it still runs) and records what each job asked of it."""

    def __init__(self, engine):
        self.engine, self.calls = engine, []

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def __call__(self, content, style, **kw):
        self.calls.append({"style_size": style.size, **kw})
        return self.engine(content, style, **kw)


@pytest.fixture
def spy(service, monkeypatch):
    """The worker's default style engine, spied on for one test."""
    spy = Spy(service.runtime.engines.defaults["style"])
    monkeypatch.setitem(service.runtime.engines.defaults, "style", spy)
    return spy


def _result(tg, method="sendPhoto") -> Image.Image:
    (call,) = tg.calls(method)
    return Image.open(io.BytesIO(tg.sent_file(call)))


def test_style_reply_in_private_with_options(service, spy):
    tg = service.telegram
    chat = tg.private_chat(3001)
    photo = tg.user_sends_photo(chat, gray_photo(400, 300), caption="/style vangogh 60 keep-colors")
    (status,) = tg.wait_for("sendMessage")
    assert status.params["text"].startswith("Queued")
    service.wait_queued(1)
    service.run_worker()
    (call,) = spy.calls
    assert (call["style_key"], call["strength"], call["keep_colors"]) == ("vangogh", 0.6, True)
    out = _result(tg)
    assert max(out.size) == 128 and out.size[0] / out.size[1] == 400 / 300  # PAINTBOT_STYLE_MAX_SIZE in tests
    (sent,) = tg.calls("sendPhoto")
    assert sent.reply_to == photo["message_id"]


def test_style_in_group_with_bot_name_and_grayscale_gets_colour(service):
    tg = service.telegram
    group = tg.group_chat(-100777)
    photo = tg.user_sends_photo(group, gray_photo(300, 300), user=tg.user(11))
    tg.user_sends_text(group, f"/style@{tg.bot_username} hokusai", user=tg.user(12), reply_to=photo["message_id"])
    tg.wait_for("sendMessage", chat_id=group["id"])
    service.wait_queued(1)
    service.run_worker()
    out = np.asarray(_result(tg).convert("RGB"), dtype=float)
    assert out.std(axis=2).mean() > 1.0, "the style brings colour to a grayscale photo"


def test_private_photo_then_style_reply_gives_both_results(service):
    """In a private chat a photo is colourised at once; a /style reply to it then repaints it too."""
    tg = service.telegram
    chat = tg.private_chat(3002)
    photo = tg.user_sends_photo(chat, gray_photo(200, 150))
    tg.wait_for("sendMessage")
    tg.user_sends_text(chat, "/style munch", reply_to=photo["message_id"])
    tg.wait_for("sendMessage", count=2)
    service.wait_queued(2)
    service.run_worker()
    colourised, styled = tg.calls("sendPhoto")
    assert colourised.reply_to == styled.reply_to == photo["message_id"]
    assert Image.open(io.BytesIO(tg.sent_file(colourised))).size == (200, 150)
    assert Image.open(io.BytesIO(tg.sent_file(styled))).size == (128, 96)


def test_inline_keyboard_flow(service):
    """The preset keyboard, its toast and its "Style:" line name the paintings in the reader's language."""
    tg = service.telegram
    chat = tg.group_chat(-1003003)
    anna, ben = tg.user(5, "Anna", language_code="de"), tg.user(6, "Ben", language_code="de")
    photo = tg.user_sends_photo(chat, gray_photo(200, 200), user=anna)
    tg.user_sends_text(chat, "/style", reply_to=photo["message_id"], user=anna)
    (keyboard,) = tg.wait_for("sendMessage")
    buttons = {b["callback_data"]: b["text"] for row in keyboard.params["reply_markup"]["inline_keyboard"] for b in row}
    assert len(buttons) == 11 and buttons["style:vangogh"] == "Die Sternennacht"
    assert buttons["style:hokusai"] == "Die große Welle" and all(len(t) <= 22 for t in buttons.values())
    assert service.queued() == 0
    kb_id = max(m for m in range(1, 10) if tg.message(chat["id"], m) and tg.message(chat["id"], m).get("reply_markup"))
    tg.user_presses_button(chat, kb_id, "style:kandinsky", user=ben)
    (toast,) = tg.wait_for("answerCallbackQuery")
    assert toast.params["text"] == "Ich male es im Stil des Werks „Komposition VII“ (Wassily Kandinsky)…"
    tg.wait_for("sendMessage", count=2)  # "Queued"
    tg.wait_for(lambda c: c.method == "editMessageText" and c.params["message_id"] == kb_id)
    assert tg.message(chat["id"], kb_id)["text"] == "Stil: „Komposition VII“ (Wassily Kandinsky)"  # no keyboard
    service.wait_queued(1)
    service.run_worker()
    (sent,) = tg.calls("sendPhoto")
    assert sent.reply_to == photo["message_id"]


def test_custom_style_photo(service, spy):
    tg = service.telegram
    chat = tg.group_chat(-1003004)
    content = tg.user_sends_photo(chat, gray_photo(240, 160), user=tg.user(7))
    stripes = np.zeros((90, 120, 3), dtype=np.uint8)
    stripes[:, ::10] = (255, 0, 0)
    buf = io.BytesIO()
    Image.fromarray(stripes).save(buf, "PNG")
    tg.user_sends_photo(chat, buf.getvalue(), caption="/style", reply_to=content["message_id"], user=tg.user(7))
    tg.wait_for("sendMessage")
    service.wait_queued(1)
    service.run_worker()
    (call,) = spy.calls
    assert call["style_size"] == (120, 90) and call.get("style_key") is None  # a custom style: never cached
    (sent,) = tg.calls("sendPhoto")
    assert sent.reply_to == content["message_id"]


def test_unknown_style_name(bot_service):
    tg = bot_service.telegram
    chat = tg.group_chat(-1003005)  # in a group the photo alone is no request: only /style is answered
    photo = tg.user_sends_photo(chat, gray_photo(), user=tg.user(3005))
    tg.user_sends_text(chat, "/style nosuch", user=tg.user(3005), reply_to=photo["message_id"])
    (reply,) = tg.wait_for("sendMessage")
    assert reply.params["text"] == "I don't know the painting “nosuch”. /styles shows them all."
    tg.user_sends_text(chat, "/style the screm 60", user=tg.user(3005, language_code="es"), reply_to=photo["message_id"])
    reply = tg.wait_for("sendMessage", count=2)[1]
    assert reply.params["text"] == "No conozco la obra «the screm». ¿Quisiste decir «El grito» (Edvard Munch)?"
    tg.user_sends_text(chat, "/style Звёздная ночь 60", user=tg.user(3005), reply_to=photo["message_id"])
    bot_service.wait_queued(1)
    (job,) = [j.args[0] for j in Queue(bot_service.settings.queue_name, connection=bot_service.redis,
                                       serializer=JSONSerializer).jobs]
    assert job["options"]["style"] == "vangogh" and job["options"]["strength"] == 60


def test_styles_sheet(service):
    tg = service.telegram
    chat = tg.private_chat(3006)
    tg.user_sends_text(chat, "/styles", user=tg.user(3006, language_code="ru"))
    tg.wait_for("sendMessage")
    service.wait_queued(1)
    service.run_worker()
    (sent,) = tg.calls("sendPhoto")
    assert sent.reply_to is None, "a plain command in a private chat is answered without a quote"
    lines = sent.params["caption"].splitlines()
    assert "• «Звёздная ночь» (Винсент ван Гог)" in lines and "• «Контраст форм» (Фернан Леже)" in lines
    assert "• «Карандашный набросок портрета»" in lines and len(lines) == 12
    sheet = Image.open(io.BytesIO(tg.sent_file(sent)))
    assert sheet.size[0] >= 800
