"""Weight files: what a network's file is, how it is verified, and how it is loaded strictly.

Each engine declares its files as `WeightFile`s beside its network (see models/engines.py); this
module knows no engine. Files with a published SHA-256 are checked against it every time. Files
without one (AdaIN's, the Google Drive zips) are verified the first time by loading them strictly
into the network they belong to (every key, every shape); their SHA-256 is then pinned in
`<cache>/weights/pins.json`, and every later use must match the pin.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from models import fetch
from models.config import ModelConfig

log = logging.getLogger("paintbot.models")

OFFLINE_ENV = "PAINTBOT_WEIGHTS_DIR"
FetchError = fetch.FetchError


@dataclass(frozen=True)
class WeightFile:
    """One checkpoint file: where it comes from, and the network it must fit."""

    remote: fetch.RemoteFile
    build: Callable[[], object] | None  # a fresh nn.Module with the file's exact keys and shapes
    prepare: Callable[[dict], dict] | None = None  # unwrap / strip prefixes / drop documented unused keys
    override_env: str | None = None  # a variable naming a file to use instead (loaded as given)
    # For a file whose network a library recognises by itself (spandrel): how the file becomes a state
    # dict (default: torch.load, weights only), and the network made from that state dict, strictly,
    # instead of `build` (FetchError, one line, when it is not the expected one).
    read: Callable[[Path], dict] | None = None
    detect: Callable[[dict, Path], object] | None = None

    @property
    def filename(self) -> str:
        return self.remote.filename

    def state_dict(self, path: Path) -> dict:
        sd = (self.read or load_state_dict)(path)
        return self.prepare(sd) if self.prepare else sd

    def network(self, path: Path):
        """The file's network with its weights, loaded strictly (FetchError, one line, if it does not fit)."""
        sd = self.state_dict(path)
        if self.detect is not None:
            return self.detect(sd, path)
        net = self.build()
        load_into(net, sd, path)
        return net

    def check(self, path: Path) -> None:
        """Raise FetchError unless the file at `path` loads strictly into a fresh network."""
        self.network(path)


def remote(url: str, sha256: str | None, filename: str | None = None, **kw) -> fetch.RemoteFile:
    """A weight file's download: named after the URL's last part unless `filename` says otherwise."""
    return fetch.RemoteFile(filename=filename or url.rsplit("/", 1)[-1], url=url, sha256=sha256,
                            offline_env=OFFLINE_ENV, **kw)


def _pins_file(config: ModelConfig) -> Path:
    return config.cache_dir / "weights" / "pins.json"


def _check_pin(wf: WeightFile, path: Path, config: ModelConfig) -> None:
    pins_file = _pins_file(config)
    pins = json.loads(pins_file.read_text()) if pins_file.is_file() else {}
    digest = fetch.sha256_of(path)
    pinned = pins.get(wf.filename)
    if pinned == digest:
        return
    if pinned is not None:
        raise FetchError(f"corrupt file {path}: its SHA-256 differs from the one pinned when it was first "
                         f"verified; replace it with {wf.remote.describe()}")
    wf.check(path)  # raises on wrong keys or shapes
    pins[wf.filename] = digest
    pins_file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=pins_file.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(pins, f, indent=1, sort_keys=True)
    os.replace(tmp, pins_file)
    log.warning("pinned SHA-256 %s for %s (no full hash is published; verified by its keys and shapes)",
                digest, wf.filename)


def path_of(wf: WeightFile, config: ModelConfig, progress: fetch.Progress | None = None) -> Path:
    """A verified local copy of `wf`: the operator's override as given, else offline folder or cache."""
    override = config.weight_overrides.get(wf.filename)
    if override is not None:
        return override  # loaded strictly by `load`; the operator vouches for its origin
    path = fetch.ensure(wf.remote, config.cache_dir / "weights", config.weights_dir, progress)
    if wf.remote.sha256 is None or len(wf.remote.sha256) < 64:
        _check_pin(wf, path, config)
    return path


def is_present(wf: WeightFile, config: ModelConfig) -> bool:
    """Whether `wf` can be had without a download."""
    if wf.filename in config.weight_overrides:
        return True
    return fetch.is_present(wf.remote, config.cache_dir / "weights", config.weights_dir)


def local_path(wf: WeightFile, config: ModelConfig) -> Path | None:
    """Where `wf` is on disk now (the operator's file, the offline folder or the cache), unverified;
    None when it is not (or only as its archive). For listings: its size, where it is."""
    override = config.weight_overrides.get(wf.filename)
    folder = config.weights_dir if config.weights_dir is not None else config.cache_dir / "weights"  # as fetch.ensure
    path = Path(override) if override is not None else folder / wf.filename
    return path if path.is_file() else None


def load(wf: WeightFile, config: ModelConfig, path: Path | None = None):
    """`wf.build()` with the file's weights, loaded strictly (from `path` if given)."""
    return wf.network(path or path_of(wf, config))


def load_state_dict(path: str | Path) -> dict:
    import torch

    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FetchError(f"weights file not found: {path}") from None
    except Exception as exc:
        raise FetchError(f"cannot read weights file {path} (not a PyTorch checkpoint?): {exc}") from None
    if not isinstance(sd, dict):
        raise FetchError(f"weights file {path} holds a {type(sd).__name__}, not a state_dict")
    return sd


def load_into(module, state_dict: dict, source: str | Path) -> None:
    """Strict load: every key present, no extra ones, every shape equal, else one line saying what differs."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}
    given = {k: tuple(v.shape) for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}
    missing = sorted(expected.keys() - given.keys())
    extra = sorted(given.keys() - expected.keys())
    wrong = sorted(k for k in expected.keys() & given.keys() if expected[k] != given[k])
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}{' …' if len(missing) > 3 else ''}")
        if extra:
            parts.append(f"unexpected {', '.join(extra[:3])}{' …' if len(extra) > 3 else ''}")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} shape(s) differ, e.g. {k}: file {list(given[k])} vs model {list(expected[k])}")
        raise FetchError(f"{source} does not fit {type(module).__name__}: {'; '.join(parts)}")
    module.load_state_dict(state_dict, strict=False)  # num_batches_tracked may be absent, as in the real files


def identity(files, config: ModelConfig) -> str | None:
    """A short digest naming the weights an engine runs with, for the result cache (bot/contract/cache.py): the
    published or pinned SHA-256 of each file, or for an operator's override its path, size and time.
    None when one of them cannot be named (a file neither published, pinned nor present)."""
    import hashlib

    parts = []
    for wf in files:
        override = config.weight_overrides.get(wf.filename)
        if override is not None:
            try:
                st = Path(override).stat()
            except OSError:
                return None
            parts.append(f"{wf.filename}:{override}:{st.st_size}:{int(st.st_mtime)}")
        elif wf.remote.sha256:
            parts.append(f"{wf.filename}:{wf.remote.sha256}")
        else:
            return None
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def describe_used(files, config: ModelConfig) -> str:
    """One line naming the weight files an engine runs with, for reports (`paintbot eval`): each file's
    path and whether it is the authors' published file (its SHA-256 checked), an operator's file that
    is not (a stand-in, a fine-tune: numbers measured with it say nothing of the published model), or
    a file no hash is published for (its SHA-256, pinned on first load)."""
    if not files:
        return "no downloaded weights"
    parts = []
    for wf in files:
        path = path_of(wf, config)  # already fetched and verified when the engine loaded
        digest = fetch.sha256_of(Path(path))
        if wf.remote.sha256 and len(wf.remote.sha256) >= 8 and fetch.matches(wf.remote, digest):
            parts.append(f"{path} (the published {wf.filename}, SHA-256 checked)")
        elif wf.remote.sha256:
            parts.append(f"{path} (SHA-256 {digest[:12]}…: NOT the published {wf.filename})")
        else:
            parts.append(f"{path} (SHA-256 {digest[:12]}…; no hash is published for {wf.filename})")
    return ", ".join(parts)
