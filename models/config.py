"""The image science's settings: one typed object, read from the environment once, at the edges.

`paintbot-worker` and the `paintbot` CLI call `models.engines.config_from_env(os.environ)` and pass
the result inward; nothing else under models/ reads the environment, so a test builds a ModelConfig
directly instead of patching variables. Engine-specific settings (a detector threshold, an input
size) are declared by each engine as a frozen dataclass `Settings`; their variables are derived
from the engine's name, `PAINTBOT_<ENGINE>_<FIELD>` (`paintbot models list` prints them), so adding
an engine adds no line here.

This module holds the object and the generic parsing of variables, and imports nothing of models/:
which engines declare settings and weight-file variables is the registry's knowledge, so the
registry builds the object (were this module to ask the registry, every engine would import it
back through the circle).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType


class ConfigError(ValueError):
    """A setting is malformed; the message names the variable and what it should be."""


def default_cache_dir(env: Mapping[str, str]) -> Path:
    """PAINTBOT_CACHE_DIR, else $XDG_CACHE_HOME/paintbot, else ~/.cache/paintbot."""
    explicit = env.get("PAINTBOT_CACHE_DIR", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    xdg = env.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(xdg) / "paintbot"


def env_path(env: Mapping[str, str], name: str) -> Path | None:
    """Variable `name` as a path (~ expanded); None when unset or blank."""
    raw = env.get(name, "").strip()
    return Path(raw).expanduser() if raw else None


def env_int(env: Mapping[str, str], name: str, minimum: int) -> int | None:
    """Variable `name` as a whole number of at least `minimum`; None when unset or blank."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < minimum:
        raise ConfigError(f"{name} must be a whole number ({minimum} or more), not {raw!r}")
    return int(raw)


def env_name(env: Mapping[str, str], name: str) -> str | None:
    """Variable `name` as a lower-case word (an engine, a device); None when unset or blank."""
    return env.get(name, "").strip().lower() or None


def env_choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """Variable `name` as one of `choices` (lower case); the first choice when unset or blank."""
    raw = env_name(env, name) or choices[0]
    if raw not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {raw!r}")
    return raw


def settings_variable(engine: str, field_name: str) -> str:
    """The environment variable of one engine setting: PAINTBOT_<ENGINE>_<FIELD>, upper case."""
    return f"PAINTBOT_{engine}_{field_name}".upper().replace("-", "_")


def parse_settings(engine: str, cls: type, env: Mapping[str, str]):
    """An engine's Settings dataclass with the fields its variables set (typed as the defaults are)."""
    given = {}
    for f in dataclasses.fields(cls):
        var = settings_variable(engine, f.name)
        raw = env.get(var, "").strip()
        if not raw:
            continue
        kind = type(f.default)
        try:
            given[f.name] = raw.lower() in ("1", "true", "yes", "on") if kind is bool else kind(raw)
        except ValueError:
            raise ConfigError(f"{var} must be a {kind.__name__}, not {raw!r}") from None
    try:
        return cls(**given)
    except ValueError as exc:  # the dataclass's own range checks
        raise ConfigError(f"{engine} settings: {exc}") from None


@dataclass(frozen=True)
class ModelConfig:
    device: str = "auto"  # PAINTBOT_DEVICE: auto (CUDA when available), cpu, cuda[:N]
    torch_threads: int | None = None  # PAINTBOT_TORCH_THREADS (else OMP_NUM_THREADS, else torch's default)
    keep_memory: bool = True  # PAINTBOT_KEEP_MEMORY=0: freed memory goes back to the system (models/device.py)
    cache_dir: Path = field(default_factory=lambda: default_cache_dir({}))  # PAINTBOT_CACHE_DIR
    weights_dir: Path | None = None  # PAINTBOT_WEIGHTS_DIR: offline folder of weight files (no download)
    styles_dir: Path | None = None  # PAINTBOT_STYLES_DIR: offline folder of preset paintings
    reduced_precision: bool = True  # PAINTBOT_REDUCED_PRECISION=0 forces float32
    # PAINTBOT_RUNTIME: auto, torch or openvino (models/runtime.py). The service (worker, CLI) reads `auto`
    # when the variable is unset; a ModelConfig built in code runs torch unless it asks.
    runtime: str = "torch"
    # A long-lived process (the worker, not the one-shot CLI): runtimes that pay off only over many calls are
    # built, in the background (models/runtime.py Fastest). Set by the worker, not by an environment variable.
    serving: bool = False
    colorize_engine: str | None = None  # PAINTBOT_COLORIZE_MODEL; None: the best the worker can run
    style_engine: str | None = None  # PAINTBOT_STYLE_ENGINE; None: the best the worker can run
    style_max_size: int | None = None  # PAINTBOT_STYLE_MAX_SIZE; None: 1024 on CUDA, 512 on CPU
    commercial_only: bool = False  # PAINTBOT_COMMERCIAL=1: no engine whose licence forbids commercial use is a default
    # Files to use instead of downloaded ones, by weight file name (each file declares its variable,
    # e.g. PAINTBOT_ADAIN_DECODER_WEIGHTS for decoder.pth): loaded as given, strictly.
    weight_overrides: Mapping[str, Path] = field(default_factory=dict)
    # Engine name -> that engine's Settings instance (absent: its defaults).
    engine_settings: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "weight_overrides", MappingProxyType(dict(self.weight_overrides)))
        object.__setattr__(self, "engine_settings", MappingProxyType(dict(self.engine_settings)))

    def settings_for(self, engine) -> object | None:
        """`engine`'s Settings: as configured, else its defaults (None for an engine without settings)."""
        if engine.Settings is None:
            return None
        return self.engine_settings.get(engine.name) or engine.Settings()

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)
