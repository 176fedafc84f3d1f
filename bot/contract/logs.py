"""Logging for the bot and the worker: one line per event, secrets never written."""

from __future__ import annotations

import logging
import os


class RedactSecrets(logging.Filter):
    """Replaces every secret (bot token, Redis password) in a record's final text with '***'.

    Installed on the handler, so it also covers third-party loggers (httpx logs request URLs,
    which contain the bot token) and formatted tracebacks.
    """

    def __init__(self, secrets: tuple[str, ...]):
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        exc_text = record.exc_text or ""
        if any(s in text or s in exc_text for s in self.secrets):
            for s in self.secrets:
                text = text.replace(s, "***")
                exc_text = exc_text.replace(s, "***")
            record.msg, record.args, record.exc_text = text, None, exc_text or None
        return True


def setup(secrets: tuple[str, ...], level: str | None = None) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or os.environ.get("PAINTBOT_LOG_LEVEL", "INFO"))
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per HTTP request is noise
