"""Service configuration, read from the environment (see README "Configuration").

Shared by the bot and the worker: both talk to the same Telegram Bot API server and the
same Redis. Each process reads them once at start (`at_start`: `Settings.from_env` and logging that masks
their secrets, the one way every entry point begins), as it reads the image
science's settings once (`models.engines.config_from_env`, the workers and the CLI), and passes
them inward.
Secrets live only in this object and are never logged: `repr()` hides them.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

from bot.contract import logs

DEFAULT_TELEGRAM_API = "https://api.telegram.org"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
QUEUE_NAME = "paintbot"
# Previews of the Mini App "Pick colours" (bot/web/): a queue of their own that every worker takes from first, so a
# preview (a person waiting with a finger on the screen) never waits behind a queue of full photos.
PREVIEW_QUEUE_SUFFIX = "-preview"


class ConfigError(RuntimeError):
    """A required setting is missing or malformed; the message says which variable."""


def _int(env: dict, name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def _id_set(env: dict, name: str) -> frozenset[int]:
    raw = env.get(name, "").replace(",", " ").split()
    try:
        return frozenset(int(x) for x in raw)
    except ValueError:
        raise ConfigError(f"{name} must be a comma-separated list of numeric ids") from None


@dataclass(frozen=True)
class Limits:
    queue_cap: int = 100  # jobs waiting, over all users (PAINTBOT_QUEUE_CAP)
    user_per_minute: int = 10  # requests one user may make per minute (PAINTBOT_USER_JOBS_PER_MINUTE)
    user_in_flight: int = 3  # one user's jobs queued or running at once (PAINTBOT_USER_JOBS_IN_FLIGHT)
    job_timeout: int = 300  # seconds a worker may spend on one job (PAINTBOT_JOB_TIMEOUT)

    @classmethod
    def from_env(cls, env: dict) -> "Limits":
        return cls(
            queue_cap=_int(env, "PAINTBOT_QUEUE_CAP", cls.queue_cap),
            user_per_minute=_int(env, "PAINTBOT_USER_JOBS_PER_MINUTE", cls.user_per_minute),
            user_in_flight=_int(env, "PAINTBOT_USER_JOBS_IN_FLIGHT", cls.user_in_flight),
            job_timeout=_int(env, "PAINTBOT_JOB_TIMEOUT", cls.job_timeout),
        )


@dataclass(frozen=True)
class Settings:
    token: str = field(repr=False)
    redis_url: str = field(default=DEFAULT_REDIS_URL, repr=False)  # may hold a password
    telegram_api: str = DEFAULT_TELEGRAM_API
    queue_name: str = QUEUE_NAME
    limits: Limits = Limits()
    allowed_chats: frozenset[int] = frozenset()  # empty: everyone may use the bot
    admins: frozenset[int] = frozenset()  # user ids allowed to run /stats
    webhook_url: str = ""  # set: receive updates by webhook instead of long polling
    webhook_secret: str = field(default="", repr=False)  # Telegram sends it back in every webhook call
    webhook_port: int = 8443
    # Seconds a sent result is remembered for instant repeats and its follow-up buttons (bot/contract/cache.py,
    # bot/contract/followups.py); 0: no cache, and results carry no buttons.
    result_cache_ttl: int = 7 * 24 * 3600
    # The Mini App "Pick colours" (bot/web/, README "Pick colours"): its HTTPS address (empty: no such button), the
    # short name BotFather gave it (/newapp; empty: no button in groups, which take no web_app buttons), and the
    # port `paintbot-web` listens on.
    webapp_url: str = ""
    webapp_name: str = ""
    web_port: int = 8080

    @property
    def preview_queue(self) -> str:
        """The high-priority queue of the Mini App's previews (worker/main.py listens to it first)."""
        return self.queue_name + PREVIEW_QUEUE_SUFFIX

    @property
    def bot_base_url(self) -> str:
        """PTB's `base_url`: methods go to {root}/bot<token>/METHOD."""
        return f"{self.telegram_api.rstrip('/')}/bot"

    @property
    def file_base_url(self) -> str:
        """PTB's `base_file_url`: files come from {root}/file/bot<token>/PATH."""
        return f"{self.telegram_api.rstrip('/')}/file/bot"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Strings that must never reach a log line or a chat."""
        from redis.connection import parse_url

        out = [self.token, self.webhook_secret]
        password = parse_url(self.redis_url).get("password")
        if password:
            out.append(password)
        return tuple(s for s in out if s)

    def __post_init__(self):
        if self.webapp_url and not self.webapp_url.startswith("https://"):
            raise ConfigError("PAINTBOT_WEBAPP_URL must be an https:// address: Telegram opens Mini Apps over HTTPS "
                              "only (locally, a tunnel such as cloudflared or ngrok gives one)")
        if self.webhook_url and not self.webhook_secret:
            raise ConfigError("PAINTBOT_WEBHOOK_URL is set but PAINTBOT_WEBHOOK_SECRET is not: set a random "
                              "secret (1-256 of A-Z a-z 0-9 _ -) so only Telegram can post updates")

    @classmethod
    def from_env(cls, env: dict | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        token = env.get("TELEGRAM_BOT_TOKEN", "").strip()
        if not token:
            raise ConfigError(
                "TELEGRAM_BOT_TOKEN is not set: create a bot with @BotFather in Telegram "
                "(/newbot) and export the token it gives you"
            )
        return cls(
            token=token,
            redis_url=env.get("REDIS_URL", "").strip() or DEFAULT_REDIS_URL,
            telegram_api=env.get("PAINTBOT_TELEGRAM_API", "").strip() or DEFAULT_TELEGRAM_API,
            limits=Limits.from_env(env),
            allowed_chats=_id_set(env, "PAINTBOT_ALLOWED_CHATS"),
            admins=_id_set(env, "PAINTBOT_ADMINS"),
            webhook_url=env.get("PAINTBOT_WEBHOOK_URL", "").strip(),
            webhook_secret=env.get("PAINTBOT_WEBHOOK_SECRET", "").strip(),
            webhook_port=_int(env, "PAINTBOT_WEBHOOK_PORT", 8443),
            result_cache_ttl=max(0, _int(env, "PAINTBOT_RESULT_CACHE_TTL", 7 * 24 * 3600)),
            webapp_url=env.get("PAINTBOT_WEBAPP_URL", "").strip(),
            webapp_name=env.get("PAINTBOT_WEBAPP_NAME", "").strip(),
            web_port=_int(env, "PAINTBOT_WEB_PORT", 8080),
        )


def at_start(prog: str) -> Settings | None:
    """A process's settings from the environment, with logging set up to mask their secrets from the first
    line on; None after one line on stderr naming the variable at fault (the caller exits 2)."""
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return None
    logs.setup(settings.secrets)
    return settings
