"""`paintbot-bot`: run the Telegram bot (long polling)."""

from __future__ import annotations

import logging
import sys

from bot import logs, metrics
from bot.app import ALLOWED_UPDATES, build_application
from bot.settings import ConfigError, Settings

log = logging.getLogger("paintbot.bot")


def main() -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"paintbot-bot: {exc}", file=sys.stderr)
        return 2
    logs.setup(settings.secrets)
    app = build_application(settings)
    metrics.serve(healthy=lambda: app.running)
    log.info("bot starting: Bot API %s, queue %r", settings.telegram_api, settings.queue_name)
    app.run_polling(allowed_updates=ALLOWED_UPDATES)
    return 0


if __name__ == "__main__":
    sys.exit(main())
