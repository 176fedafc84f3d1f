"""The registry: every engine paintbot has, one line each, in order of preference within a family.

Everything that needs the list of engines takes it from here: the CLI's choices, `paintbot models
download`, the worker (which loads what a job names and publishes what it can run to the bot),
`bench/`, `paintbot eval`, and the configuration from the environment (`config_from_env`, since
each engine declares its own variables). An engine declares itself beside its network (name, family, files,
settings, how it loads: models/engine.py); adding one is its module plus one line below.

The default of a family is the first engine in this order that may be a default on the device
(`default_on`), whose licence the operator accepts (PAINTBOT_COMMERCIAL=1: commercial use allowed)
and can be loaded: its files are here, or can be downloaded (online). So a machine gets the best
engine it can have, and an offline one falls back to what its folder holds. `default_here` says
which that is and why, without loading anything (`paintbot models list`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

import torch

from models import runtime, weights
from models.config import (ConfigError, ModelConfig, default_cache_dir, env_choice, env_int, env_name, env_path,
                           parse_settings)
from models.device import pick_device
from models.engine import Engine
from models.errors import UnknownEngine
from models.fetch import FetchError

from models.colorize.chromagan import ChromaGANEngine  # noqa: E402,I001
from models.colorize.ddcolor import DDColorArtisticEngine, DDColorEngine, DDColorTinyEngine  # noqa: E402
from models.colorize.exemplar import ExemplarEngine  # noqa: E402
from models.colorize.instance import InstanceEngine  # noqa: E402
from models.colorize.zhang import ECCV16Engine, SIGGRAPH17Engine  # noqa: E402
from models.restore.repair import RepairEngine  # noqa: E402
from models.restore.faces import FacesEngine  # noqa: E402
from models.restore.upscale import UpscaleEngine, UpscaleHQEngine  # noqa: E402
from models.style.adaattn import AdaAttNEngine  # noqa: E402
from models.style.adain import AdaINEngine  # noqa: E402
from models.style.gatys import GatysEngine  # noqa: E402

log = logging.getLogger("paintbot.models")

ENGINES: tuple[type[Engine], ...] = (
    DDColorEngine,
    DDColorTinyEngine,
    DDColorArtisticEngine,
    InstanceEngine,
    SIGGRAPH17Engine,
    ECCV16Engine,
    ChromaGANEngine,
    ExemplarEngine,
    AdaAttNEngine,
    AdaINEngine,
    GatysEngine,
    RepairEngine,
    FacesEngine,
    UpscaleEngine,
    UpscaleHQEngine,
)
FAMILIES = ("colorize", "style", "restore")


def of_family(family: str | None = None) -> list[type[Engine]]:
    return [e for e in ENGINES if family is None or e.family == family]


def names(family: str | None = None) -> list[str]:
    return [e.name for e in of_family(family)]


def get(name: str, family: str | None = None) -> type[Engine]:
    """The engine called `name` (or one of its aliases) in `family`; UnknownEngine names the choices."""
    word = name.strip().lower()
    for e in of_family(family):
        if word == e.name or word in e.aliases:
            return e
    raise UnknownEngine(name, names(family))


def reference_engine(family: str) -> str | None:
    """The engine of `family` that colours a photo like a second one (None if the family has none)."""
    return next((e.name for e in of_family(family) if e.needs_reference), None)


def hint_engine(family: str) -> str | None:
    """The first engine of `family` that takes a person's colour hints (None if the family has none)."""
    return next((e.name for e in of_family(family) if e.takes_hints), None)


def with_weights(config: ModelConfig, name: str | None, path: Path) -> ModelConfig:
    """`config` with `path` used for the one weight file of engine `name` (PAINTBOT_COLORIZE_WEIGHTS, --weights)."""
    if name is None:
        raise ConfigError("a weights file needs the model it is for (PAINTBOT_COLORIZE_MODEL or --model)")
    engine = get(name)
    if len(engine.files) != 1:
        raise ConfigError(f"{engine.name} has {len(engine.files)} weight files: give each through its own "
                          f"variable ({', '.join(f.override_env or f.filename for f in engine.files)})")
    return config.replace(weight_overrides={**config.weight_overrides, engine.files[0].filename: path})


def config_from_env(env: Mapping[str, str]) -> ModelConfig:
    """The ModelConfig that the variables in `env` describe, read once at each edge: the `paintbot` CLI
    and the worker (worker/main.py) pass os.environ. Each engine's weight-file and settings variables
    come from its declaration here; PAINTBOT_COLORIZE_WEIGHTS is a checkpoint for the one file of
    PAINTBOT_COLORIZE_MODEL. ConfigError names a malformed variable."""
    overrides = {f.filename: env_path(env, f.override_env) for e in ENGINES for f in e.files if f.override_env}
    config = ModelConfig(
        device=env_name(env, "PAINTBOT_DEVICE") or "auto",
        torch_threads=env_int(env, "PAINTBOT_TORCH_THREADS", 1) or env_int(env, "OMP_NUM_THREADS", 1),
        keep_memory=env.get("PAINTBOT_KEEP_MEMORY", "1").strip() != "0",
        cache_dir=default_cache_dir(env),
        weights_dir=env_path(env, "PAINTBOT_WEIGHTS_DIR"),
        styles_dir=env_path(env, "PAINTBOT_STYLES_DIR"),
        reduced_precision=env.get("PAINTBOT_REDUCED_PRECISION", "1").strip() != "0",
        runtime=env_choice(env, "PAINTBOT_RUNTIME", runtime.RUNTIMES),
        colorize_engine=env_name(env, "PAINTBOT_COLORIZE_MODEL"),
        style_engine=env_name(env, "PAINTBOT_STYLE_ENGINE"),
        style_max_size=env_int(env, "PAINTBOT_STYLE_MAX_SIZE", 16),
        commercial_only=env.get("PAINTBOT_COMMERCIAL", "").strip().lower() in ("1", "true", "yes", "on"),
        weight_overrides={k: v for k, v in overrides.items() if v is not None},
        engine_settings={e.name: parse_settings(e.name, e.Settings, env) for e in ENGINES if e.Settings is not None},
    )
    colorize_weights = env_path(env, "PAINTBOT_COLORIZE_WEIGHTS")
    return with_weights(config, config.colorize_engine, colorize_weights) if colorize_weights else config


def configured(family: str, config: ModelConfig) -> str | None:
    return {"colorize": config.colorize_engine, "style": config.style_engine}.get(family)


def preferred(family: str, device_type: str, config: ModelConfig) -> type[Engine] | None:
    """The engine a worker on `device_type` tries first for `family`: the configured one, else the first
    that may be a default there, licence permitting (what deploy/local.sh downloads before it starts the service)."""
    name = configured(family, config)
    if name is not None:
        return get(name, family)
    return next(iter(candidates(family, device_type, config)), None)


def candidates(family: str, device_type: str, config: ModelConfig) -> list[type[Engine]]:
    """The engines that may be `family`'s default on this device type, in order of preference."""
    return [e for e in of_family(family) if device_type in e.default_on and not excluded_by_licence(e, config)]


def excluded_by_licence(engine: type[Engine], config: ModelConfig) -> bool:
    return config.commercial_only and not (engine.licence and engine.licence.commercial)


def default_here(family: str, device_type: str, config: ModelConfig) -> tuple[str | None, dict[str, str]]:
    """(the engine `load(None, family)` would pick, why each engine of the family is or is not it),
    from the configuration and the files on disk alone: an engine whose files are missing counts as
    loadable online (no PAINTBOT_WEIGHTS_DIR), since its download is tried."""
    why: dict[str, str] = {}
    chosen = configured(family, config)
    if chosen is not None:
        chosen = get(chosen, family).name
        variable = "PAINTBOT_COLORIZE_MODEL" if family == "colorize" else "PAINTBOT_STYLE_ENGINE"
        why[chosen] = f"default here: {variable} names it"
    for e in of_family(family):
        if e.name in why:
            continue
        if e.needs_reference:
            why[e.name] = "when a reference photo is given (--like; in the chat, a reply with a colour photo)"
        elif device_type not in e.default_on:
            why[e.name] = f"by name only on {device_type}"
        elif chosen is not None:
            why[e.name] = f"by name; {chosen} comes first"
        elif excluded_by_licence(e, config):
            why[e.name] = "by name only: PAINTBOT_COMMERCIAL=1 and its licence forbids commercial use"
        elif config.weights_dir is not None and not e.files_present(config):
            why[e.name] = "not a default: its files are not in PAINTBOT_WEIGHTS_DIR"
        else:
            chosen = e.name
            why[e.name] = (f"default here ({device_type}): the first {family} engine that can run"
                           + ("" if e.files_present(config) else ", downloaded on first use"))
    return chosen, why


def load(name: str | None, family: str, device=None, config: ModelConfig | None = None) -> Engine:
    """Engine `name` (None: the family's default, or the configured one) loaded on `device`.

    An engine asked for by name that cannot be loaded is an error (FetchError names the missing
    file); only the default falls back to the next candidate, saying so in the log.
    """
    config = config or ModelConfig()
    device = pick_device(device if device is not None else config.device)
    name = name or configured(family, config)
    if name is not None:
        return _build(get(name, family), device, config)
    failed: list[tuple[str, FetchError]] = []
    for engine in candidates(family, device.type, config):
        try:
            loaded = _build(engine, device, config)
        except FetchError as exc:
            failed.append((engine.name, exc))
            continue
        for other, exc in failed:
            log.warning("%s unavailable (%s); using the %s engine instead", other, exc, engine.name)
        return loaded
    raise failed[0][1] if failed else FetchError(f"no {family} engine can run on {device.type}")


def _build(engine: type[Engine], device: torch.device, config: ModelConfig) -> Engine:
    t0 = time.perf_counter()
    loaded = engine(device, config)
    log.info("%s engine %s loaded on %s (%s, %s) in %.1f s", engine.family, engine.name, device, loaded.dtype,
             loaded.runs_in, time.perf_counter() - t0)
    return loaded


def download_all(config: ModelConfig, engines: list[type[Engine]] | None = None,
                 progress=None) -> list[tuple[str, Path | FetchError]]:
    """Fetch and verify every registered weight file now (`paintbot models download`): each file is
    tried whatever happened to the ones before it; (file name, its path or why it could not be had).

    `progress(wf)` may return a per-file progress callback (bytes, total)."""
    files = {f.filename: f for e in (engines or ENGINES) for f in e.files}  # engines may share a file
    results: list[tuple[str, Path | FetchError]] = []
    for name, f in files.items():
        try:
            results.append((name, weights.path_of(f, config, progress(f) if progress else None)))
        except FetchError as exc:
            results.append((name, exc))
    return results
