"""The fake Bot API answers the real python-telegram-bot client as Telegram would."""

import asyncio
import io
import time

import pytest
from PIL import Image
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, ReplyParameters
from telegram.error import (BadRequest, Conflict, EndPointNotFound, Forbidden, InvalidToken, NetworkError,
                            RetryAfter, TimedOut)
from telegram.ext import ApplicationBuilder, MessageHandler, filters
from telegram.request import HTTPXRequest

from tests.fake_telegram import DOWNLOAD, MAX_GETFILE_BYTES, FakeTelegram
from tests.harness import gray_photo


def _bot(tg, token=None, **request_kw) -> Bot:
    request = HTTPXRequest(**request_kw) if request_kw else None
    return Bot(token or tg.token, base_url=f"{tg.api_root}/bot", base_file_url=f"{tg.api_root}/file/bot",
               request=request)


def _run(tg, scenario, **request_kw):
    async def go():
        async with _bot(tg, **request_kw) as bot:
            return await scenario(bot)
    return asyncio.run(go())


def test_real_client_round_trip(telegram):
    tg = telegram
    chat = tg.private_chat(42)
    photo = tg.user_sends_photo(chat, gray_photo(200, 100))
    assert [(s["width"], s["height"]) for s in photo["photo"]] == [(90, 45), (200, 100)]

    async def scenario(bot):
        assert bot.username == tg.bot_username
        f = await bot.get_file(photo["photo"][-1]["file_id"])
        data = await f.download_as_bytearray()
        sent = await bot.send_photo(42, bytes(data), caption="Done",
                                    reply_parameters=ReplyParameters(photo["message_id"]))
        assert sent.reply_to_message.message_id == photo["message_id"] and sent.reply_to_message.photo
        assert sent.photo[-1].width == 200 and sent.caption == "Done" and sent.from_user.is_bot
        status = await bot.send_message(42, "Queued")
        assert status.message_id == sent.message_id + 1
        edited = await bot.edit_message_text("Working", chat_id=42, message_id=status.message_id)
        assert edited.text == "Working" and edited.edit_date
        with pytest.raises(BadRequest, match="not modified"):
            await bot.edit_message_text("Working", chat_id=42, message_id=status.message_id)
        await bot.delete_message(42, status.message_id)
        with pytest.raises(BadRequest, match="(?i)message to be replied not found"):
            await bot.send_message(42, "x", reply_parameters=ReplyParameters(9999))
        ok = await bot.send_message(42, "x", reply_parameters=ReplyParameters(9999, allow_sending_without_reply=True))
        assert ok.reply_to_message is None
        tg.fail("sendMessage", 429, "Too Many Requests: retry after 3", retry_after=3)
        with pytest.raises(RetryAfter, match="Retry in 3"):
            await bot.send_message(42, "x")
        tg.fail("sendMessage", 403, "Forbidden: bot was blocked by the user")
        with pytest.raises(Forbidden, match="blocked"):
            await bot.send_message(42, "x")
        tg.fail("getFile", 502, "Bad Gateway")
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await bot.get_file(photo["photo"][-1]["file_id"])
        return data

    data = _run(tg, scenario)
    assert bytes(data) == gray_photo(200, 100)
    (sent,) = tg.calls("sendPhoto")
    assert tg.sent_file(sent) == bytes(data) and sent.files["photo"].data == bytes(data)
    assert sent.reply_to == photo["message_id"] and sent.params["caption"] == "Done"
    assert [m.get("text") or m.get("caption") for m in tg.bot_messages(42)] == ["Done", "x"], "deleted one gone"
    assert [c.status for c in tg.calls("sendMessage", chat_id=42, ok_only=False)] == [200, 400, 200, 429, 403]
    assert [c.method for c in tg.calls(DOWNLOAD)] == [DOWNLOAD]


def test_application_echoes_through_long_polling(telegram):
    """A PTB Application polls the fake; a scripted message is answered at once, not after the poll timeout."""
    tg = telegram

    async def echo(update, context):
        await update.message.reply_text(update.message.text.upper(), do_quote=True)

    async def go():
        app = (ApplicationBuilder().token(tg.token).base_url(f"{tg.api_root}/bot")
               .base_file_url(f"{tg.api_root}/file/bot").build())
        app.add_handler(MessageHandler(filters.TEXT, echo))
        async with app:
            await app.start()
            await app.updater.start_polling(timeout=10, drop_pending_updates=True)
            t = time.monotonic()
            msg = tg.user_sends_text(tg.private_chat(5), "hello")
            (reply,) = await asyncio.to_thread(tg.wait_for, "sendMessage", timeout=10)
            elapsed = time.monotonic() - t
            await app.updater.stop()
            await app.stop()
        return msg, reply, elapsed

    msg, reply, elapsed = asyncio.run(go())
    assert reply.params["text"] == "HELLO" and reply.chat_id == 5 and reply.reply_to == msg["message_id"]
    assert elapsed < 3, f"the long poll answered after {elapsed:.1f} s"
    assert tg.calls("deleteWebhook")[0].params["drop_pending_updates"] is True


def test_long_polling_offset_limit_allowed_updates_and_conflicts(telegram):
    tg = telegram
    chat = tg.private_chat(7)

    async def scenario(bot):
        task = asyncio.create_task(bot.get_updates(timeout=20))
        await asyncio.sleep(0.3)
        tg.user_sends_text(chat, "/start")
        (first,) = await asyncio.wait_for(task, 5)
        assert first.message.text == "/start" and first.message.entities[0].type == "bot_command"
        tg.user_sends_text(chat, "a")
        tg.user_sends_text(chat, "b")
        assert [u.message.text for u in await bot.get_updates(timeout=0)] == ["/start", "a", "b"], "unconfirmed"
        (a,) = await bot.get_updates(offset=first.update_id + 1, limit=1)
        assert a.message.text == "a"
        tg.user_sends_text(chat, "c")  # a message update the next poll does not want
        assert await bot.get_updates(offset=a.update_id + 2, timeout=0, allowed_updates=["callback_query"]) == ()
        # Telegram allows one poller: a second bot instance polling ends the first one's poll with 409
        waiting = asyncio.create_task(bot.get_updates(timeout=20))
        await asyncio.sleep(0.3)
        async with _bot(tg) as second:
            await second.get_updates(timeout=0)
        with pytest.raises(Conflict, match="terminated by other getUpdates"):
            await asyncio.wait_for(waiting, 5)
        await bot.set_webhook("https://example.org/hook", secret_token="s3cret")
        with pytest.raises(Conflict, match="webhook is active"):
            await bot.get_updates()
        assert (await bot.get_webhook_info()).url == "https://example.org/hook"
        await bot.delete_webhook()
        assert await bot.get_updates() == ()

    _run(tg, scenario)


def test_files_round_trip_and_are_reused_by_file_id(telegram):
    tg = telegram
    chat = tg.private_chat(9)
    tg.user_sends_text(chat, "hi")
    png = io.BytesIO()
    Image.new("RGB", (64, 32), "red").save(png, "PNG")

    async def scenario(bot):
        doc = await bot.send_document(9, png.getvalue(), filename="result.png")
        assert (doc.document.file_name, doc.document.mime_type) == ("result.png", "image/png")
        again = await bot.send_document(9, doc.document.file_id)
        assert again.document.file_name == "result.png" and again.document.file_size == len(png.getvalue())
        as_photo = await bot.send_photo(9, doc.document.file_id)
        assert (as_photo.photo[-1].width, as_photo.photo[-1].height) == (64, 32)
        f = await bot.get_file(doc.document.file_id)
        return bytes(await f.download_as_bytearray())

    assert _run(tg, scenario) == png.getvalue()
    assert [len(c.files) for c in tg.calls("sendDocument")] == [1, 0]
    assert tg.sent_file(tg.calls("sendDocument")[1]) == png.getvalue()


def test_telegram_rules_are_enforced(telegram):
    tg = telegram
    chat = tg.private_chat(11)
    big = tg.user_sends_document(chat, None, "scan.tiff", "image/tiff", file_size=MAX_GETFILE_BYTES + 1)
    ratio21 = io.BytesIO()
    Image.new("L", (2100, 100)).save(ratio21, "PNG")

    async def scenario(bot):
        with pytest.raises(BadRequest, match="(?i)file is too big"):
            await bot.get_file(big["document"]["file_id"])
        with pytest.raises(BadRequest, match="(?i)PHOTO_INVALID_DIMENSIONS"):
            await bot.send_photo(11, ratio21.getvalue())
        with pytest.raises(BadRequest, match="(?i)IMAGE_PROCESS_FAILED"):
            await bot.send_photo(11, b"not an image at all")
        with pytest.raises(BadRequest, match="(?i)message is too long"):
            await bot.send_message(11, "x" * 4097)
        with pytest.raises(BadRequest, match="caption is too long"):
            await bot.send_document(11, b"data", filename="a.bin", caption="x" * 1025)
        with pytest.raises(BadRequest, match="(?i)BUTTON_DATA_INVALID"):
            await bot.send_message(11, "Pick", reply_markup=InlineKeyboardMarkup(
                [[InlineKeyboardButton("long", callback_data="style:" + "x" * 60)]]))
        with pytest.raises(BadRequest, match="(?i)BOT_COMMAND_INVALID"):
            await bot.set_my_commands([("Colorize", "Colourise a photo")])
        await bot.set_my_commands([("colorize", "Colourise a photo")])
        assert [c.command for c in await bot.get_my_commands()] == ["colorize"]
        with pytest.raises(BadRequest, match="(?i)chat not found"):
            await bot.send_message(12345, "hello?")
        with pytest.raises(BadRequest, match="(?i)message can't be edited"):
            await bot.edit_message_text("mine now", chat_id=11, message_id=big["message_id"])
        with pytest.raises(EndPointNotFound):
            await bot.do_api_request("sendTelepathy")

    _run(tg, scenario)

    async def wrong_token(bot):
        await bot.get_me()

    with pytest.raises(InvalidToken):
        _run(tg, wrong_token, token="654321:WRONG")
    with pytest.raises(ValueError, match="no message 99"):
        tg.user_sends_text(chat, "re", reply_to=99)
    with pytest.raises(ValueError, match="PIL"):
        tg.user_sends_photo(chat, b"%PDF-1.4")


def test_buttons_and_command_entities(telegram):
    tg = telegram
    group = tg.group_chat(-100123)
    cmd = tg.user_sends_text(group, f"/style@{tg.bot_username} vangogh", user=tg.user(3))
    assert cmd["entities"] == [{"type": "bot_command", "offset": 0, "length": len(f"/style@{tg.bot_username}")}]
    assert cmd["from"]["id"] == 3 and cmd["chat"]["type"] == "supergroup"
    later = tg.user_sends_text(group, "héllo 🎨 /help and http://x/y")
    assert later["entities"] == [{"type": "bot_command", "offset": 9, "length": 5}], "UTF-16 offsets, URLs skipped"
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Munch", callback_data="style:munch")]])

    async def send(bot):
        return await bot.send_message(-100123, "Pick a style", reply_markup=keyboard,
                                      reply_parameters=ReplyParameters(cmd["message_id"]))

    sent = _run(tg, send)
    with pytest.raises(ValueError, match="no button with data 'style:nope'"):
        tg.user_presses_button(group, sent.message_id, "style:nope")
    query = tg.user_presses_button(group, sent.message_id, "style:munch", user=tg.user(3))

    async def answer(bot):
        (update,) = await bot.get_updates(offset=-1)
        assert update.callback_query.data == "style:munch" and update.callback_query.from_user.id == 3
        assert update.callback_query.message.message_id == sent.message_id
        await update.callback_query.answer()
        with pytest.raises(BadRequest, match="(?i)query ID is invalid"):
            await update.callback_query.answer()
        await bot.edit_message_text("Style: munch", chat_id=-100123, message_id=sent.message_id)

    _run(tg, answer)
    assert tg.calls("answerCallbackQuery")[0].params["callback_query_id"] == query["id"]
    assert "reply_markup" not in tg.message(-100123, sent.message_id), "an edit without a keyboard removes it"
    with pytest.raises(ValueError, match="no button"):
        tg.user_presses_button(group, sent.message_id, "style:munch")


def test_delays_per_chat_faults_flood_limit_and_wait_for(telegram):
    tg = telegram
    tg.private_chat(21), tg.private_chat(22)
    tg.delay("sendChatAction", 1.0)
    tg.fail("sendMessage", 403, "Forbidden: bot was blocked by the user", times=5, chat_id=22)
    tg.fail(DOWNLOAD, 500, "Internal Server Error")
    photo = tg.user_sends_photo(tg.private_chat(21), gray_photo(64, 48))

    async def scenario(bot):
        with pytest.raises(TimedOut):
            await bot.send_chat_action(21, "typing", read_timeout=0.3)
        tg.delay("sendChatAction", 0)
        assert await bot.send_chat_action(21, "upload_photo")
        await bot.send_message(21, "fine")
        with pytest.raises(Forbidden):
            await bot.send_message(22, "blocked")
        f = await bot.get_file(photo["photo"][-1]["file_id"])
        with pytest.raises(NetworkError, match="Internal Server Error"):
            await f.download_as_bytearray()
        tg.flood_limit(1.0)
        with pytest.raises(RetryAfter):
            await bot.send_message(21, "too soon")
        await asyncio.sleep(1.0)
        await bot.send_message(21, "later")

    _run(tg, scenario)
    sends = tg.calls("sendMessage", chat_id=21)
    assert [c.params["text"] for c in sends] == ["fine", "later"] and sends[1].at - sends[0].at >= 1.0
    assert [c.status for c in tg.calls(DOWNLOAD, ok_only=False)] == [500]
    found = tg.wait_for(lambda c: c.method == "sendMessage" and c.status == 403, ok_only=False)
    assert found[0].chat_id == 22
    with pytest.raises(AssertionError, match=r"(?s)1x sendPhoto.*sendMessage -> 403 'Forbidden: bot was blocked"):
        tg.wait_for("sendPhoto", timeout=0.2)
    tg.reset()
    assert tg.calls() == [] and tg.bot_messages(21)[-1]["text"] == "later"


def test_context_manager_frees_the_port():
    with FakeTelegram(token="42:ABC", bot_username="other_bot") as tg:
        root = tg.api_root

        async def me(bot):
            return await bot.get_me()

        assert _run(tg, me).username == "other_bot"
    with pytest.raises(RuntimeError, match="start"):
        tg.api_root
    with pytest.raises(NetworkError):
        asyncio.run(Bot("42:ABC", base_url=f"{root}/bot").get_me())


def test_languages_reactions_and_menus_per_language(telegram):
    tg = telegram
    chat = tg.private_chat(13)
    msg = tg.user_sends_text(chat, "hola", user=tg.user(13, language_code="es"))

    async def scenario(bot):
        (first,) = await bot.get_updates(timeout=0)
        assert first.message.from_user.language_code == "es"
        tg.user_reacts(chat, msg["message_id"], ["👍"])
        # By default Telegram leaves reactions out: a bot gets them only by naming them.
        assert await bot.get_updates(offset=first.update_id + 1, timeout=0) == ()
        tg.user_reacts(chat, msg["message_id"], ["👎"], old=["👍"])
        (changed,) = await bot.get_updates(offset=first.update_id + 1, timeout=0, allowed_updates=["message_reaction"])
        reaction = changed.message_reaction
        assert [r.emoji for r in reaction.old_reaction] == ["👍"] and [r.emoji for r in reaction.new_reaction] == ["👎"]
        assert reaction.message_id == msg["message_id"] and reaction.chat.id == 13
        await bot.set_my_commands([("colorize", "Colorea la foto")], language_code="es")
        await bot.set_my_commands([("colorize", "Colourise the photo")])
        assert (await bot.get_my_commands(language_code="es"))[0].description == "Colorea la foto"
        assert (await bot.get_my_commands())[0].description == "Colourise the photo"

    _run(tg, scenario)
    with pytest.raises(ValueError, match="no message 99"):
        tg.user_reacts(chat, 99, ["👍"])


def test_hostile_shapes_senders_and_redelivery(telegram):
    """What the reliability tests script, as the real client reads it: messages sent on behalf of a
    chat, a getFile path chosen by the test, an update the client cannot parse, an update served
    again to a poller starting afresh, and an old keyboard."""
    tg = telegram
    group, channel = tg.group_chat(-100500), tg.channel_chat(-100501)
    photo = tg.user_sends_photo(group, gray_photo(64, 48), caption="/colorize", sender_chat=group)
    first = tg.last_update()
    tg.user_sends_text(group, "/help", sender_chat=channel)
    tg.answer_file_path(photo["photo"][-1]["file_id"], "/etc/hostname")
    old = tg.bot_left_keyboard(group, ["colorize:old"], reply_to=photo["message_id"])
    tg.user_presses_button(group, old["message_id"], "colorize:old")

    async def scenario(bot):
        anonymous, as_channel, tap = await bot.get_updates()
        assert anonymous.message.sender_chat.id == group["id"]
        assert anonymous.message.from_user.username == "GroupAnonymousBot"
        assert as_channel.message.sender_chat.type == "channel"
        assert as_channel.message.from_user.username == "Channel_Bot"
        assert tap.callback_query.data == "colorize:old"
        assert (await bot.get_file(photo["photo"][-1]["file_id"])).file_path == "/etc/hostname"
        tg.push_update({"message": {"message_id": 1, "date": 0, "chat": {"id": 5}}})
        with pytest.raises(TypeError, match="type"):  # python-telegram-bot cannot read a chat without one
            await bot.get_updates(offset=tap.update_id + 1)
        await bot.get_updates(offset=tap.update_id + 2)  # confirms everything
        tg.redeliver(first)
        (again,) = await bot.get_updates()
        assert again.update_id == first["update_id"] and again.message.message_id == photo["message_id"]

    _run(tg, scenario)


def test_forwards_and_photos_sent_again_keep_the_file_ids(telegram):
    """As Telegram does: a forwarded photo, and a photo sent again by its file_id, carry the same file
    (file_id and file_unique_id); a file id Telegram does not know is refused with its error."""
    tg = telegram
    chat, group = tg.private_chat(10), tg.group_chat(-10010)
    photo = tg.user_sends_photo(chat, gray_photo(80, 60))
    forwarded = tg.user_forwards(group, photo, user=tg.user(11), caption="/colorize")
    assert forwarded["photo"] == photo["photo"] and forwarded["forward_origin"]["sender_user"]["id"] == 10
    assert forwarded["chat"]["id"] == -10010 and forwarded["from"]["id"] == 11
    assert tg.user_forwards(chat, photo)["message_id"] == photo["message_id"] + 1, "a new message"
    with pytest.raises(ValueError, match="no photo or file"):
        tg.user_forwards(chat, tg.user_sends_text(chat, "hi"))

    async def scenario(bot):
        first = await bot.send_photo(10, gray_photo(80, 60))
        again = await bot.send_photo(-10010, first.photo[-1].file_id)
        assert (again.photo[-1].file_id, again.photo[-1].file_unique_id) == \
            (first.photo[-1].file_id, first.photo[-1].file_unique_id)
        with pytest.raises(BadRequest, match="(?i)wrong file identifier"):
            await bot.send_photo(10, "AgACnosuch-fake-file-id")

    _run(tg, scenario)
