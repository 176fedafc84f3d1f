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

    def __init__(self, workdir: Path, appendonly: bool = False, extra: tuple[str, ...] = ()):
        self.port = free_port()
        self.workdir = workdir
        self.appendonly = appendonly
        self.extra = extra  # more redis-server arguments
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
        args += list(self.extra)
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


@pytest.fixture(scope="module")
def two_threads():
    """torch on 2 threads while one module runs (the goldens' setting), the count restored after; a module asks
    for it with `pytestmark = pytest.mark.usefixtures("two_threads")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


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


class DriveServer:
    """A loopback imitation of Google Drive's large-file downloads: the first answer is the
    "can't scan this file for viruses" page, and only the confirmed request gets the file.

    `variant` picks how the page asks for confirmation, as Drive has over the years: "cookie"
    (a download_warning cookie), "form" (the download-form with hidden fields, on another host
    path) or "quota" (no way through: the daily quota is exceeded).
    """

    def __init__(self, variant: str = "form"):
        self.files: dict[str, bytes] = {}  # Drive file id -> content
        self.variant = variant
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                from urllib.parse import parse_qs, urlsplit

                server.requests.append(self.path)
                url = urlsplit(self.path)
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                data = server.files.get(q.get("id", ""))
                if data is None:
                    self.send_error(404)
                    return
                confirmed = q.get("confirm") == "t0k3n" and (server.variant != "form" or q.get("uuid") == "u-1")
                if confirmed and server.variant != "quota":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                page = "<html><body>Google Drive can't scan this file for viruses.</body></html>"
                if server.variant == "form":
                    page = (f'<html><body><form id="download-form" action="{server.root}/download" method="get">'
                            f'<input type="hidden" name="id" value="{q["id"]}">'
                            '<input type="hidden" name="export" value="download">'
                            '<input type="hidden" name="confirm" value="t0k3n">'
                            '<input type="hidden" name="uuid" value="u-1"></form></body></html>')
                body = page.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                if server.variant == "cookie":
                    self.send_header("Set-Cookie", "download_warning_13058876669334088843_1Xb=t0k3n; Path=/")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.root = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, file_id: str) -> str:
        """The URL paintbot is given, as Drive's own `uc?export=download` form."""
        return f"{self.root}/uc?export=download&id={file_id}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def drive():
    server = DriveServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def standin_weights(tmp_path_factory) -> dict[str, Path]:
    """One stand-in file per official checkpoint (written once per test session), and the restore family's
    two (the worker loads every family's default): the scratch detector of SCRATCH.md and a LaMa archive."""
    from tests.standins import official, write_lama_standin, write_scratch_standin, write_standin

    d = tmp_path_factory.mktemp("standin-weights")
    files = {name: write_standin(name, d / f"{name}.pth") for name in official()}
    files["scratch_detection"] = write_scratch_standin(d / "FT_Epoch_latest.pt")
    files["big_lama"] = write_lama_standin(d / "big-lama.pt")
    return files


@pytest.fixture
def telegram():
    """A fake Telegram Bot API server on loopback (see tests/fake_telegram.py)."""
    from tests.fake_telegram import FakeTelegram

    with FakeTelegram() as fake:
        yield fake


# End-to-end fixtures live with the harness they drive.
from tests.harness import bot_service, engines_with, service, worker_env, worker_models  # noqa: E402,F401
