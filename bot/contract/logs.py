"""Logging for the bot and the worker: one line per event, secrets never written."""

from __future__ import annotations

import logging
import os
from urllib.parse import quote


# What the bot and the workers say, and then exit 2, when Telegram answers 401 to their first call.
TOKEN_REJECTED = "Telegram rejected TELEGRAM_BOT_TOKEN (401 Unauthorized): check it with @BotFather"


class RedactSecrets(logging.Filter):
    """Replaces every secret (bot token, Redis password, webhook secret) in a record's final text with '***'.

    Installed on the handler, so it also covers third-party loggers (httpx logs request URLs,
    which contain the bot token) and formatted tracebacks. Each secret is masked in every form it
    may be printed in: whole, a token's secret half alone (after the colon: it is the part that
    matters, and some errors quote it), and URL-encoded (as it stands in a Bot API URL). The
    message is masked once formatted, so arguments of any type (an exception, an httpx URL) are.
    """

    def __init__(self, secrets: tuple[str, ...]):
        super().__init__()
        forms = set()
        for secret in (s for s in secrets if s):
            for form in (secret, secret.partition(":")[2]):
                if len(form) >= 6:  # a fragment this short would mask ordinary words
                    forms.update({form, quote(form, safe="")})
        self.secrets = tuple(sorted(forms, key=len, reverse=True))  # the longest first: no half-masked form

    def _mask(self, text: str) -> str:
        for s in self.secrets:
            text = text.replace(s, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # arguments that do not fit the message: logging reports it, masked
            text = f"{record.msg} {record.args}"
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args = self._mask(text), None
        if record.exc_text:
            record.exc_text = self._mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self._mask(record.stack_info)
        return True


def setup(secrets: tuple[str, ...], level: str | None = None) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or os.environ.get("PAINTBOT_LOG_LEVEL", "INFO"))
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per HTTP request is noise
