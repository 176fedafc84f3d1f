"""Download-once, verify-always files: model weights and preset style images.

One mechanism for every file paintbot fetches from the internet. A file is looked up in the
offline folder first (when the operator named one), else in the cache folder, and downloaded
there on first use. Its SHA-256 (or the published prefix of it, as torchvision publishes) is
checked every time it is opened from disk, so a truncated or tampered file never reaches a model.

Some authors publish their weights only inside a zip on Google Drive. Such a file names its
`archive` and `member`: the archive is downloaded once (through Drive's "can't scan this file for
viruses" confirmation page) and kept in the cache, and the member is extracted beside it. An
offline folder may hold either the extracted file or the archive.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import tempfile
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from http.cookiejar import CookieJar
from pathlib import Path

CHUNK = 1 << 20
Progress = Callable[[int, int | None], None]  # (bytes so far, total bytes or None), called per chunk


class FetchError(RuntimeError):
    """A file could not be found, downloaded or verified. The message is one line a person can act on."""


@dataclass(frozen=True)
class RemoteFile:
    filename: str  # the name in the cache and in the offline folder
    url: str
    sha256: str | None  # full digest, or a published prefix of it; None: see models.weights (pinning)
    offline_env: str  # the variable naming an offline folder for this file (named in every error)
    archive: str | None = None  # the zip the URL delivers, when the file is a member of one
    member: str | None = None  # the file's path inside `archive`
    size: int | None = None  # bytes where published, else as the page rounds it (download size warnings)
    mirrors: tuple[str, ...] = ()  # other places the authors publish the same file, tried in order after `url`

    def describe(self) -> str:
        inside = f" inside {self.archive}" if self.archive else ""
        return f"{self.filename}{inside} (from {self.url}; or set {self.offline_env} to a folder that holds it)"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def matches(rf: RemoteFile, digest: str) -> bool:
    """True when `digest` is the published SHA-256, or begins with its published prefix."""
    return rf.sha256 is None or digest.startswith(rf.sha256.lower())


_CONFIRM_FORM = re.compile(r'<form[^>]*id="download-form"[^>]*action="([^"]+)"(.*?)</form>', re.S)
_HIDDEN = re.compile(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"')
_CONFIRM_LINK = re.compile(r'href="([^"]*[?&]confirm=[^"]+)"')


def _confirmed_url(url: str, page: str, cookies: CookieJar) -> str | None:
    """The URL behind a Google Drive confirmation page ("file too large to scan"), or None.

    Drive has answered in three ways over the years: a `download_warning*` cookie whose value goes
    into `&confirm=`, a link carrying `confirm=`, and a form (`id="download-form"`) whose hidden
    fields make the query of its action URL. All three are handled.
    """
    for cookie in cookies:
        if cookie.name.startswith("download_warning"):
            return f"{url}&confirm={urllib.parse.quote(cookie.value)}"
    if form := _CONFIRM_FORM.search(page):
        fields = dict(_HIDDEN.findall(form.group(2)))
        return f"{html.unescape(form.group(1))}?{urllib.parse.urlencode(fields)}"
    if link := _CONFIRM_LINK.search(page):
        return urllib.parse.urljoin(url, html.unescape(link.group(1)))
    return None


def _open(url: str, timeout: float):
    """GET `url`; an HTML answer where a file was expected is Drive's confirmation page: follow it once."""
    cookies = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))
    resp = opener.open(url, timeout=timeout)
    if not resp.headers.get_content_type().startswith("text/html"):
        return resp
    with resp:
        page = resp.read(1 << 20).decode("utf-8", "replace")
    confirmed = _confirmed_url(url, page, cookies)
    if confirmed is None:
        raise OSError("the server answered with a web page instead of the file (download quota exceeded?)")
    resp = opener.open(confirmed, timeout=timeout)
    if resp.headers.get_content_type().startswith("text/html"):
        resp.close()
        raise OSError("the server still answered with a web page after the download confirmation")
    return resp


def _download(url: str, dest: Path, describe: str, check: Callable[[Path], None] | None = None,
              progress: Progress | None = None, timeout: float = 60.0) -> None:
    """Download into a temporary file beside `dest`, run `check` on it, then move it into place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, _open(url, timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            done = 0
            while chunk := resp.read(CHUNK):
                out.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
        if check:
            check(Path(tmp))
        os.replace(tmp, dest)  # atomic: concurrent workers never see half a file
    except FetchError:
        raise
    except Exception as exc:  # network, HTTP status, disk
        raise FetchError(f"could not download {describe}: {exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _download_from_any(rf: RemoteFile, dest: Path, check: Callable[[Path], None] | None = None,
                       progress: Progress | None = None) -> None:
    """`rf.url`, else each of its mirrors in turn; when all fail, one line naming every place tried."""
    if not rf.mirrors:
        _download(rf.url, dest, rf.describe(), check, progress)
        return
    failures = []
    for url in (rf.url, *rf.mirrors):
        try:
            _download(url, dest, url, check, progress)
            return
        except FetchError as exc:
            failures.append(str(exc))
    raise FetchError(f"{rf.filename}: {'; '.join(failures)} (or set {rf.offline_env} to a folder that holds it)")


def _member_name(z: zipfile.ZipFile, member: str) -> str:
    """`member`, or the one entry whose path ends with "/member": authors' zips differ in their top
    folder (checkpoints/..., or none), which no published listing records."""
    names = z.namelist()
    if member in names:
        return member
    found = [n for n in names if n.endswith("/" + member)]
    if len(found) != 1:
        raise KeyError(member)
    return found[0]


def _extract(rf: RemoteFile, archive: Path, dest: Path) -> None:
    """Copy `rf.member` out of the zip `archive` to `dest` (atomically), verifying its hash."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, zipfile.ZipFile(archive) as z, z.open(_member_name(z, rf.member)) as src:
            while chunk := src.read(CHUNK):
                out.write(chunk)
        if not matches(rf, sha256_of(Path(tmp))):
            raise FetchError(f"{rf.member} in {archive} has the wrong SHA-256: {rf.describe()}")
        os.replace(tmp, dest)
    except KeyError:
        raise FetchError(f"{archive} does not contain {rf.member}: expected {rf.describe()}") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise FetchError(f"cannot read {archive} ({exc}): replace it with {rf.describe()}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _verified(rf: RemoteFile, path: Path) -> Path:
    if not matches(rf, sha256_of(path)):
        raise FetchError(f"corrupt file {path} (SHA-256 mismatch): replace it with {rf.describe()}")
    return path


def _hash_check(rf: RemoteFile) -> Callable[[Path], None]:
    def check(path: Path) -> None:
        if not matches(rf, sha256_of(path)):
            raise FetchError(f"downloaded file has the wrong SHA-256: {rf.describe()}")
    return check


def ensure(rf: RemoteFile, cache: Path, offline: Path | None, progress: Progress | None = None) -> Path:
    """A verified local path for `rf`: from the offline folder when one is given (never downloading),
    else from the cache folder, downloading it there on first use."""
    folder = offline if offline is not None else cache
    path = folder / rf.filename
    if path.is_file():
        return _verified(rf, path)
    if rf.archive:
        archive = folder / rf.archive
        if offline is None and not archive.is_file():
            _download_from_any(rf, archive, progress=progress)
        if archive.is_file():
            dest = path if offline is None else cache / rf.filename  # the offline folder may be read-only
            if not dest.is_file():
                _extract(rf, archive, dest)
            return _verified(rf, dest)
    if offline is not None:
        raise FetchError(f"missing file {path}: expected {rf.describe()}")
    _download_from_any(rf, path, check=_hash_check(rf), progress=progress)
    return path


def is_present(rf: RemoteFile, cache: Path, offline: Path | None) -> bool:
    """Whether `ensure` can find `rf` without a download (not verified here: `ensure` does that)."""
    folder = offline if offline is not None else cache
    return (folder / rf.filename).is_file() or bool(rf.archive and (folder / rf.archive).is_file())
