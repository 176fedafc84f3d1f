"""Shared test infrastructure: real servers on loopback, never mocks of them.

- `redis_server`: a real `redis-server` on a free loopback port, owned by the test session,
  which tests may stop and restart (same port, same data dir) to inject faults.
- `redis_url`: that server, flushed before each test.
- `file_server`: a loopback HTTP server for a folder (stand-in weights, style images).
"""

from __future__ import annotations

import functools
import http.server
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A redis-server process the tests own. `stop()`/`start()` keep port and data dir."""

    def __init__(self, workdir: Path, appendonly: bool = False):
        self.port = free_port()
        self.workdir = workdir
        self.appendonly = appendonly
        self.proc: subprocess.Popen | None = None
        self.exe = shutil.which("redis-server")
        if not self.exe:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
                "--save", "", "--daemonize", "no", "--loglevel", "warning"]
        args += ["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly else ["--appendonly", "no"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server):
    import redis

    if redis_server.proc is None:
        redis_server.start()
    redis.Redis.from_url(redis_server.url).flushall()
    return redis_server.url


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class FileServer:
    def __init__(self, directory: Path):
        self.directory = directory
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def file_server(tmp_path):
    """Serves files put into `file_server.directory` over loopback HTTP."""
    d = tmp_path / "served"
    d.mkdir()
    server = FileServer(d)
    yield server
    server.close()


@pytest.fixture(scope="session")
def standin_weights(tmp_path_factory) -> dict[str, Path]:
    """One stand-in file per official checkpoint (written once per test session)."""
    from tests.standins import official, write_standin

    d = tmp_path_factory.mktemp("standin-weights")
    return {name: write_standin(name, d / f"{name}.pth") for name in official()}


@pytest.fixture
def telegram():
    """A fake Telegram Bot API server on loopback (see tests/fake_telegram.py)."""
    from tests.fake_telegram import FakeTelegram

    with FakeTelegram() as fake:
        yield fake


# End-to-end fixtures live with the harness they drive.
from tests.harness import bot_service, service, worker_env, worker_models  # noqa: E402,F401
