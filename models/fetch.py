"""Download-once, verify-always files: model weights and preset style images.

One mechanism for every file paintbot fetches from the internet. A file is looked up in
an offline directory first (when the user set one), else in the cache directory, and
downloaded there on first use. Its SHA-256 is checked every time it is opened from disk
by `ensure`, so a truncated or tampered file never reaches a model.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20


class FetchError(RuntimeError):
    """A file could not be found, downloaded or verified. The message is one line a person can act on."""


@dataclass(frozen=True)
class RemoteFile:
    filename: str
    url: str
    sha256: str | None  # None: not published; see models.weights for trust-on-first-use pinning
    offline_env: str  # the variable naming a local directory that holds this file


def cache_dir() -> Path:
    """PAINTBOT_CACHE_DIR, else $XDG_CACHE_HOME/paintbot, else ~/.cache/paintbot."""
    explicit = os.environ.get("PAINTBOT_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "paintbot"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _describe(rf: RemoteFile) -> str:
    return f"{rf.filename} (from {rf.url}; or set {rf.offline_env} to a folder that holds it)"


def _download(rf: RemoteFile, dest: Path, timeout: float = 60.0) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{rf.filename}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(rf.url, timeout=timeout) as resp:
            while chunk := resp.read(CHUNK):
                out.write(chunk)
        if rf.sha256 and sha256_of(Path(tmp)) != rf.sha256:
            raise FetchError(f"downloaded file has the wrong SHA-256: {_describe(rf)}")
        os.replace(tmp, dest)  # atomic: concurrent workers never see half a file
    except FetchError:
        raise
    except Exception as exc:  # network, HTTP status, disk
        raise FetchError(f"could not download {_describe(rf)}: {exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def ensure(rf: RemoteFile, subdir: str) -> Path:
    """Return a verified local path for `rf`, downloading it into the cache if needed.

    With `rf.offline_env` set in the environment, the file must be in that folder (no download).
    """
    offline = os.environ.get(rf.offline_env)
    if offline:
        path = Path(offline).expanduser() / rf.filename
        if not path.is_file():
            raise FetchError(f"missing file {path}: expected {_describe(rf)}")
    else:
        path = cache_dir() / subdir / rf.filename
        if not path.is_file():
            _download(rf, path)
            return path  # just verified while downloading
    if rf.sha256 and sha256_of(path) != rf.sha256:
        raise FetchError(f"corrupt file {path} (SHA-256 mismatch): replace it with {_describe(rf)}")
    return path
