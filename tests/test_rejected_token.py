"""A token Telegram rejects (401: mistyped, revoked): the real `paintbot-bot` and `paintbot-worker` processes
say so in one line and exit 2, and the token is printed nowhere: not whole, not its secret half (after the
colon), not URL-encoded (as it stands in the Bot API's URLs)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import urllib.parse

from bot.contract.logs import RedactSecrets
from tests.harness import Workers

TOKEN = "123456:ABC-rejected_SECRET-half"  # the fake Bot API knows another: every method answers 401


def _leaks(out: str) -> list[str]:
    forms = (TOKEN, TOKEN.split(":", 1)[1], urllib.parse.quote(TOKEN, safe=""))
    return [f for f in forms if f in out]


def test_the_bot_exits_2_with_one_line(telegram, redis_url):
    env = {**os.environ, "TELEGRAM_BOT_TOKEN": TOKEN, "PAINTBOT_TELEGRAM_API": telegram.api_root,
           "REDIS_URL": redis_url}
    proc = subprocess.run([sys.executable, "-m", "bot.main"], env=env, capture_output=True, text=True, timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-3000:]
    assert "Telegram rejected TELEGRAM_BOT_TOKEN" in out and "Traceback" not in out, out[-3000:]
    assert not _leaks(out), out
    assert len([line for line in out.splitlines() if "ERROR" in line or "Telegram rejected" in line]) == 1, out


def test_the_worker_exits_2_with_one_line(telegram, redis_url, worker_env, tmp_path):
    env = {**worker_env(redis_url), "TELEGRAM_BOT_TOKEN": TOKEN, "PAINTBOT_LOG_LEVEL": "DEBUG"}
    workers = Workers(env, tmp_path)
    try:
        proc = workers.start("w1")
        assert proc.wait(120) == 2, workers.log("w1")[-3000:]
        out = workers.log("w1")
        assert "Telegram rejected TELEGRAM_BOT_TOKEN" in out and "Traceback" not in out, out[-3000:]
        assert not _leaks(out), out
    finally:
        workers.stop_all()


def test_every_form_of_a_secret_is_masked():
    """The filter masks the token, its secret half and its URL-encoded form, in the message, in arguments of
    any type, and in the exception text."""
    redact = RedactSecrets((TOKEN, "s3cret-pw"))

    class Holder:
        def __repr__(self):
            return f"<url /bot{urllib.parse.quote(TOKEN, safe='')}/getMe>"

    try:
        raise ValueError(f"token {TOKEN.split(':', 1)[1]} refused")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "%s %r %d s3cret-pw", (TOKEN, Holder(), 7), exc_info)
    assert redact.filter(record)
    text = logging.Formatter().format(record)
    assert not _leaks(text) and "s3cret-pw" not in text and "7" in text and "ValueError" in text, text
