"""The weight files paintbot uses: where they come from, how they are verified, how they are loaded.

Files with a published SHA-256 are checked against it every time. The AdaIN files have no
published hash: the first time such a file is verified by its keys and shapes (a strict load)
its SHA-256 is pinned in `<cache>/weights/pins.json`, and every later use must match the pin.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from models import fetch

log = logging.getLogger("paintbot.models")

OFFLINE_ENV = "PAINTBOT_WEIGHTS_DIR"


def _remote(url: str, sha256: str | None) -> fetch.RemoteFile:
    return fetch.RemoteFile(filename=url.rsplit("/", 1)[-1], url=url, sha256=sha256, offline_env=OFFLINE_ENV)


REGISTRY: dict[str, fetch.RemoteFile] = {
    "eccv16": _remote("https://colorizers.s3.us-east-2.amazonaws.com/colorization_release_v2-9b330a0b.pth",
                      "9b330a0bae53f4ded77b1e23defbf78beaa09c10ebc4c4999e8e4f4a160b93f9"),
    "siggraph17": _remote("https://colorizers.s3.us-east-2.amazonaws.com/siggraph17-df00044c.pth",
                          "df00044c0a4d7c3edcecf6f75437ce346a66e7a42612d9b968e1a7e17dbc6f66"),
    "adain_vgg_normalised": _remote(
        "https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/vgg_normalised.pth", None),
    "adain_decoder": _remote("https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/decoder.pth", None),
}


def _pins_file() -> Path:
    return fetch.cache_dir() / "weights" / "pins.json"


def _check_pin(rf: fetch.RemoteFile, path: Path, check: Callable[[Path], None] | None) -> None:
    pins_file = _pins_file()
    pins = json.loads(pins_file.read_text()) if pins_file.is_file() else {}
    digest = fetch.sha256_of(path)
    pinned = pins.get(rf.filename)
    if pinned == digest:
        return
    if pinned is not None:
        raise fetch.FetchError(f"corrupt file {path}: its SHA-256 differs from the one pinned when it was first "
                               f"verified; replace it with {rf.filename} from {rf.url} (or set {rf.offline_env})")
    if check is None:
        raise fetch.FetchError(f"{path} has no published SHA-256 and nothing verified it; load it through its model")
    check(path)  # raises on wrong keys or shapes
    pins[rf.filename] = digest
    pins_file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=pins_file.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(pins, f, indent=1, sort_keys=True)
    os.replace(tmp, pins_file)
    log.warning("pinned SHA-256 %s for %s (no hash is published; verified by its keys and shapes)",
                digest, rf.filename)


def weights_path(name: str | fetch.RemoteFile, check: Callable[[Path], None] | None = None) -> Path:
    """A verified local copy of a registry file (downloaded into the cache on first use)."""
    rf = REGISTRY[name] if isinstance(name, str) else name
    path = fetch.ensure(rf, "weights")
    if rf.sha256 is None:
        _check_pin(rf, path, check)
    return path


def load_state_dict(path: str | Path) -> dict:
    import torch

    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise fetch.FetchError(f"weights file not found: {path}") from None
    except Exception as exc:
        raise fetch.FetchError(f"cannot read weights file {path} (not a PyTorch checkpoint?): {exc}") from None
    if not isinstance(sd, dict):
        raise fetch.FetchError(f"weights file {path} holds a {type(sd).__name__}, not a state_dict")
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
        raise fetch.FetchError(f"{source} does not fit {type(module).__name__}: {'; '.join(parts)}")
    module.load_state_dict(state_dict, strict=False)  # num_batches_tracked may be absent, as in the real files


def download_all() -> list[Path]:
    """Fetch and verify every registry file now (`paintbot models download`)."""
    from models.style import adain

    checks = {"adain_vgg_normalised": adain.check_encoder_file, "adain_decoder": adain.check_decoder_file}
    return [weights_path(name, check=checks.get(name)) for name in REGISTRY]
