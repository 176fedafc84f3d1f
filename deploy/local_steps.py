"""The steps of deploy/local.sh that need Python: what to download first, what is missing, the "ready" line.

    local_steps.py fetch     says which default engines' files it downloads, how big and where to, then
                             downloads them with `paintbot models download NAME` (a progress bar per file);
                             whatever could not be had (offline, or missing from PAINTBOT_WEIGHTS_DIR) is
                             then said in one short block with the two ways out, and the service starts
                             all the same, without it
    local_steps.py ready REDIS_URL REDIS_DATA WORKER...
                             waits until the bot's token answers and each worker said it is ready, then
                             prints one line: the bot's @username and t.me link, each worker's engines with
                             device and precision, and where the data lives

Why a script and not the CLI: these are local.sh's words to the person starting it, about this machine's
defaults; the downloading itself is `paintbot models download NAME` (models/cli.py), called in-process
once per engine, so one engine that cannot be had does not stop the others, and the whole step costs
one torch import. `fetch` reads the same variables as the worker (models.engines.config_from_env), so
what is downloaded first is what the worker loads. `ready` imports neither torch nor models/: it only
reads Redis and asks Telegram who the bot is (the token is never printed).
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

READY_WAIT = 900  # seconds `ready` waits for the bot and the workers before it says what is still missing


def _mb(size: int | None) -> str:
    return f"{size / 1e6:.0f} MB" if size else "size unknown until the download starts"


def _home(path: Path) -> str:
    home = str(Path.home())
    return "~" + str(path)[len(home):] if str(path).startswith(home + os.sep) else str(path)


def _defaults():
    """(config, [(family, engine, files not here)]) for this machine's default engines."""
    from models import engines, weights
    from models.device import pick_device

    config = engines.config_from_env(os.environ)
    device = pick_device(config.device).type
    chosen = []
    for family in engines.FAMILIES:
        engine = engines.preferred(family, device, config)
        if engine is not None:
            chosen.append((family, engine, [f for f in engine.files if not weights.is_present(f, config)]))
    return config, device, chosen


def fetch() -> int:
    from models import cli

    config, _, chosen = _defaults()
    absent = [(family, e, files) for family, e, files in chosen if files]
    if absent and config.weights_dir is None:  # with an offline folder nothing is downloaded
        total = sum(f.remote.size or 0 for _, _, files in absent for f in files)
        print(f"First start: downloading the default models ({_mb(total) if total else 'sizes as the servers say'})"
              f" into {_home(config.cache_dir / 'weights')}:", file=sys.stderr)
        for family, e, files in absent:
            for f in files:
                print(f"  {family} {e.name}: {f.filename} ({_mb(f.remote.size)})", file=sys.stderr)
        for _, e, _ in absent:  # one engine at a time: one that cannot be had does not stop the others
            if cli.main(["models", "download", e.name]) == 130:
                return 130  # Ctrl-C
    return missing()


def missing() -> int:
    from models import engines

    config, device, chosen = _defaults()
    absent = [(family, e, files) for family, e, files in chosen if files]
    if not absent:
        return 0
    lines = [f"Some default models are not in PAINTBOT_WEIGHTS_DIR ({config.weights_dir}):" if config.weights_dir
             else "Some default models could not be downloaded (no internet here?):"]
    for family, e, files in absent:
        size = sum(f.remote.size or 0 for f in files)
        sources = dict.fromkeys(f"{f.remote.archive or f.filename} from {f.remote.url}" for f in files)
        lines.append(f"  {family} {e.name}{f' ({_mb(size)})' if size else ''}: {'; '.join(sources)}")
    names = " ".join(e.name for _, e, _ in absent)
    free = [f"{e.name} ({family}{', only by name' if device not in e.default_on else ''}"
            f"{', with a colour reference photo' if e.needs_reference else ''})"
            for family, _, _ in absent for e in engines.of_family(family) if not e.files]
    lines += ["Two ways out:",
              f"  1. on a machine with internet: paintbot models download {names}",
              f"     then copy the files of its ~/.cache/paintbot/weights into {config.weights_dir};"
              if config.weights_dir else
              "     then copy its folder ~/.cache/paintbot/weights here and set PAINTBOT_WEIGHTS_DIR to it;",
              f"  2. engines that need no download: {', '.join(free) if free else 'none in these families'}."]
    now = []
    for family, _, _ in absent:  # what the worker falls back to (models.engines.load): the first it can have
        fallbacks = [] if engines.configured(family, config) else engines.of_family(family)  # named: no other
        instead = next((e for e in fallbacks if device in e.default_on and e.files_present(config)), None)
        now.append(f"{family} runs on {instead.name}" if instead else
                   f"{family} is answered \"not available on this bot right now\"")
    lines.append(f"Starting without them: {'; '.join(now)}.")
    print("\n".join(lines), file=sys.stderr)
    return 0


def _bot_username(timeout: float) -> str | None:
    """The bot's @username, from Telegram (getMe); None if the token is refused (the bot says so itself)."""
    token = os.environ["TELEGRAM_BOT_TOKEN"]
    api = os.environ.get("PAINTBOT_TELEGRAM_API", "https://api.telegram.org").rstrip("/")
    try:
        with urllib.request.urlopen(f"{api}/bot{token}/getMe", timeout=timeout) as r:
            return json.load(r)["result"]["username"]
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 404):
            return None
        raise


def ready(redis_url: str, redis_data: str, workers: list[str]) -> int:
    import redis

    from bot.contract import keys

    conn = redis.Redis.from_url(redis_url, socket_timeout=5)
    deadline = time.monotonic() + READY_WAIT
    username, said = None, {}
    while time.monotonic() < deadline:
        try:
            if username is None:
                username = _bot_username(10) or ""
            for w in workers:
                if w not in said and (summary := conn.get(keys.worker_ready(w))) is not None:
                    said[w] = summary.decode()
        except (OSError, redis.RedisError):
            pass  # Telegram or Redis not answering yet: try again
        if username is not None and len(said) == len(workers):
            break
        time.sleep(0.5)
    else:
        waiting = [w for w in workers if w not in said] + (["Telegram (getMe)"] if username is None else [])
        print(f"paintbot: still not ready after {READY_WAIT} s, waiting for {', '.join(waiting)}", file=sys.stderr)
        return 1
    if not username:
        return 1  # the token was refused: the bot and the worker say so in their own line
    parts = [f"paintbot is ready: @{username} https://t.me/{username}"]
    parts += [f"worker {w}: {said[w]}" for w in workers]
    parts.append(f"Redis data in {redis_data}")
    print(" | ".join(parts), flush=True)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["fetch"]:
        step = fetch
    elif argv[:1] == ["ready"] and len(argv) >= 4:
        return ready(argv[1], argv[2], argv[3:])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    from models.device import DeviceError

    try:
        return step()
    except (ValueError, DeviceError) as exc:  # a malformed setting, a device that is not there
        print(f"paintbot: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
