#!/usr/bin/env bash
# Install paintbot into .venv and run the whole service on this machine: the bot, one worker and
# RQ's scheduler (retries).
# Without REDIS_URL an embedded redis-server is started (data kept in .paintbot/redis, AOF on).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${TELEGRAM_BOT_TOKEN:-}" ]; then
  echo "TELEGRAM_BOT_TOKEN is not set. Talk to @BotFather in Telegram, send /newbot, then:" >&2
  echo "  export TELEGRAM_BOT_TOKEN=123456:ABC...  and run this again." >&2
  exit 2
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q -e '.[worker]'

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

if [ -z "${REDIS_URL:-}" ]; then
  command -v redis-server >/dev/null || {
    echo "redis-server is not installed: apt-get install redis-server (or set REDIS_URL to a Redis you run)" >&2
    exit 2
  }
  port="${PAINTBOT_REDIS_PORT:-6390}"
  mkdir -p .paintbot/redis
  redis-server --port "$port" --bind 127.0.0.1 --dir "$PWD/.paintbot/redis" --appendonly yes \
    --save "" --daemonize no --loglevel warning &
  pids+=($!)
  export REDIS_URL="redis://127.0.0.1:$port/0"
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  echo "embedded Redis on 127.0.0.1:$port (data in .paintbot/redis)"
fi

.venv/bin/paintbot-worker --scheduler &  # puts retried jobs back on the queue after their back-off
pids+=($!)
.venv/bin/paintbot-worker &
pids+=($!)
.venv/bin/paintbot-bot &
pids+=($!)
wait -n "${pids[@]}"
