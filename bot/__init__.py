"""paintbot Telegram bot: receives photos and commands, checks them, enqueues jobs. Never imports torch."""
