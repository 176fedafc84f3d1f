"""The fake Bot API answers the real python-telegram-bot client as Telegram would."""

import asyncio

import pytest
from telegram import Bot, ReplyParameters
from telegram.error import BadRequest, Forbidden, RetryAfter

from tests.harness import gray_photo


def _bot(tg) -> Bot:
    return Bot(tg.token, base_url=f"{tg.api_root}/bot", base_file_url=f"{tg.api_root}/file/bot")


def test_real_client_round_trip(telegram):
    tg = telegram
    chat = tg.private_chat(42)
    photo = tg.user_sends_photo(chat, gray_photo(200, 100))

    async def go():
        async with _bot(tg) as bot:
            assert bot.username == tg.bot_username
            f = await bot.get_file(photo["photo"][-1]["file_id"])
            data = await f.download_as_bytearray()
            sent = await bot.send_photo(42, bytes(data), reply_parameters=ReplyParameters(photo["message_id"]))
            assert sent.reply_to_message.message_id == photo["message_id"]
            assert sent.photo[-1].width == 200
            status = await bot.send_message(42, "Queued")
            await bot.edit_message_text("Working", chat_id=42, message_id=status.message_id)
            await bot.delete_message(42, status.message_id)
            with pytest.raises(BadRequest, match="replied not found"):
                await bot.send_message(42, "x", reply_parameters=ReplyParameters(9999))
            ok = await bot.send_message(42, "x", reply_parameters=ReplyParameters(9999, allow_sending_without_reply=True))
            assert ok.reply_to_message is None
            tg.fail("sendMessage", 429, "Too Many Requests: retry after 3", retry_after=3)
            with pytest.raises(RetryAfter):
                await bot.send_message(42, "x")
            tg.fail("sendMessage", 403, "Forbidden: bot was blocked by the user")
            with pytest.raises(Forbidden):
                await bot.send_message(42, "x")
            return data

    data = asyncio.run(go())
    (sent,) = tg.calls("sendPhoto")
    assert tg.sent_file(sent) == bytes(data)
    assert sent.reply_to == photo["message_id"]


def test_long_polling_returns_promptly_when_an_update_arrives(telegram):
    tg = telegram
    chat = tg.private_chat(7)

    async def go():
        async with _bot(tg) as bot:
            task = asyncio.create_task(bot.get_updates(timeout=20))
            await asyncio.sleep(0.3)
            tg.user_sends_text(chat, "/start")
            updates = await asyncio.wait_for(task, 5)
            assert updates[0].message.text == "/start"
            assert updates[0].message.entities[0].type == "bot_command"
            assert await bot.get_updates(offset=updates[0].update_id + 1, timeout=0) == ()

    asyncio.run(go())
