"""The bot's pure rules: command parsing, style options, settings, secret redaction."""

import logging
import sys
import subprocess

import pytest

from bot.logs import RedactSecrets
from bot.requests import BadOptions, parse_command, parse_style_args, preset_names
from bot.settings import ConfigError, Settings


def test_parse_command_forms():
    assert parse_command("/colorize", "PaintBot") == ("colorize", [])
    assert parse_command("/colorize@PaintBot", "paintbot") == ("colorize", [])
    assert parse_command("/style vangogh 60 keep-colors", "PaintBot") == ("style", ["vangogh", "60", "keep-colors"])
    assert parse_command("/style@OtherBot vangogh", "PaintBot") is None  # addressed to another bot
    assert parse_command("hello /style", "PaintBot") is None
    assert parse_command(None, "PaintBot") is None
    # A hostile, very long caption is cut, not choked on.
    cmd, args = parse_command("/style " + "x" * 100_000, "PaintBot")
    assert cmd == "style" and len(args) <= 8


def test_style_options():
    names = preset_names()
    assert "vangogh" in names
    assert parse_style_args(["vangogh"], need_name=True) == {
        "style": "vangogh", "strength": 100, "keep_colors": False, "hq": False}
    assert parse_style_args(["VanGogh", "60", "keep-colours", "hq"], need_name=True) == {
        "style": "vangogh", "strength": 60, "keep_colors": True, "hq": True}
    assert parse_style_args([], need_name=False)["strength"] == 100


@pytest.mark.parametrize("args", [["nosuchstyle"], ["<b>x</b>"], ["vangogh", "160"], ["vangogh", "munch"]])
def test_style_options_refused_with_help(args):
    with pytest.raises(BadOptions) as e:
        parse_style_args(args, need_name=True)
    assert len(str(e.value)) < 400


def test_unknown_style_lists_names():
    with pytest.raises(BadOptions) as e:
        parse_style_args(["picasso"], need_name=True)
    assert all(n in str(e.value) for n in preset_names())


def test_settings_require_token_and_hide_secrets():
    with pytest.raises(ConfigError, match="BotFather"):
        Settings.from_env({})
    s = Settings.from_env({"TELEGRAM_BOT_TOKEN": "123:SECRET", "REDIS_URL": "redis://:hunter2@redis:6379/0",
                           "PAINTBOT_TELEGRAM_API": "http://127.0.0.1:9/", "PAINTBOT_ALLOWED_CHATS": "1, -100"})
    assert s.bot_base_url == "http://127.0.0.1:9/bot" and s.file_base_url == "http://127.0.0.1:9/file/bot"
    assert s.allowed_chats == {1, -100}
    assert "SECRET" not in repr(s) and "hunter2" not in repr(s)
    assert set(s.secrets) == {"123:SECRET", "hunter2"}
    with pytest.raises(ConfigError, match="PAINTBOT_QUEUE_CAP"):
        Settings.from_env({"TELEGRAM_BOT_TOKEN": "1:x", "PAINTBOT_QUEUE_CAP": "lots"})


def test_redaction_covers_messages_args_and_tracebacks():
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    h = Keep()
    h.addFilter(RedactSecrets(("123:SECRET", "hunter2")))
    logger = logging.getLogger("test.redact")
    logger.addHandler(h)
    try:
        logger.warning("GET https://api.telegram.org/bot%s/getMe", "123:SECRET")
        try:
            raise RuntimeError("redis://:hunter2@host failed")
        except RuntimeError:
            logger.exception("boom")
    finally:
        logger.removeHandler(h)
    text = "\n".join(records)
    assert "SECRET" not in text and "hunter2" not in text and text.count("***") >= 2


def test_bot_never_imports_torch():
    code = "import sys, bot.main, bot.app, bot.handlers, bot.queue; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
