"""`paintbot-bot`: run the Telegram bot (long polling, or a webhook when PAINTBOT_WEBHOOK_URL is set)."""

from __future__ import annotations

import logging
import sys
from urllib.parse import urlsplit

from telegram.error import InvalidToken

from bot.app import ALLOWED_UPDATES, build_application
from bot.contract import health, logs
from bot.contract.settings import at_start

log = logging.getLogger("paintbot.bot")


def _not_a_rejected_token(record: logging.LogRecord) -> bool:
    """python-telegram-bot logs a rejected token (401) with its traceback before raising it; `main` says it in
    one line instead."""
    return not (record.name.startswith("telegram") and record.exc_info
                and isinstance(record.exc_info[1], InvalidToken))


def main() -> int:
    settings = at_start("paintbot-bot")
    if settings is None:
        return 2
    for handler in logging.getLogger().handlers:
        handler.addFilter(_not_a_rejected_token)
    app = build_application(settings)
    health.serve(healthy=lambda: app.running)
    log.info("bot starting: Bot API %s, queue %r, %s", settings.telegram_api, settings.queue_name,
             "webhook" if settings.webhook_url else "long polling")
    # Both run until SIGINT/SIGTERM, then stop taking updates and shut down cleanly.
    try:
        if settings.webhook_url:
            app.run_webhook(listen="0.0.0.0", port=settings.webhook_port,
                            url_path=urlsplit(settings.webhook_url).path.lstrip("/"),
                            webhook_url=settings.webhook_url, secret_token=settings.webhook_secret,
                            allowed_updates=ALLOWED_UPDATES)
        else:
            app.run_polling(allowed_updates=ALLOWED_UPDATES)
    except InvalidToken:  # 401 on the first call: no traceback (it would quote the token), one line
        log.error(logs.TOKEN_REJECTED)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
