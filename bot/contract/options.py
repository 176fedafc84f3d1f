"""The options of each operation: one typed, frozen definition, with its defaults and units.

Shared by the bot and the workers: the bot parses them from a command's words, the queue carries
them (`to_dict`/`from_dict`, tolerant of fields another version added or dropped), the result cache
keys on them (`cache_key`), and the worker maps them to the plain keywords the engines of models/
take (worker/stages.py), so the image science never sees them. Plain Python, no Telegram, no torch.

Which engines and styles exist is not known here: parsing takes a `Vocabulary` (the engines the
workers registered, the preset catalogue), so a new engine needs no line in this file.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from bot.contract import paintings

INTENSITY_MAX = 200  # percent of the predicted colour
_NUMBER = re.compile(r"^([0-9]{1,3})%?$")  # ASCII digits only: "²" is a digit to str.isdigit()
_ENGINE_WORD = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_KEEP_COLORS = {"keep-colors", "keep-colours", "keepcolors", "keepcolours"}
_NO_UPSCALE = {"noup", "no-up", "noupscale", "no-upscale"}
_NO_COLOR = {"nocolor", "nocolour", "no-color", "no-colour", "bw", "b/w", "gray", "grey"}


class BadOptions(ValueError):
    """The words do not make options; `code` and `params` say why (rendered by bot/contract/texts.py)."""

    def __init__(self, code: str, **params):
        super().__init__(code)
        self.code = code
        self.params = params


@dataclass(frozen=True)
class EngineInfo:
    """What the bot knows of an engine: published by the workers that can run it."""

    name: str
    family: str
    label: str
    aliases: tuple[str, ...] = ()
    needs_reference: bool = False
    default: bool = False  # the family's default on the worker that published it (a job naming no engine)
    weights: str | None = None  # a short digest of the weight files it runs with (the result cache keys on it)

    def to_dict(self) -> dict:
        return {"name": self.name, "family": self.family, "label": self.label, "aliases": list(self.aliases),
                "needs_reference": self.needs_reference, "default": self.default, "weights": self.weights}

    @classmethod
    def from_dict(cls, d: Mapping) -> "EngineInfo":
        return cls(str(d["name"]), str(d["family"]), str(d.get("label") or d["name"]),
                   tuple(d.get("aliases") or ()), bool(d.get("needs_reference")), bool(d.get("default")),
                   str(d["weights"]) if d.get("weights") else None)


@dataclass(frozen=True)
class Vocabulary:
    """The words commands may use: preset style names and registered engines (with their aliases)."""

    styles: tuple[str, ...] = ()
    engines: tuple[EngineInfo, ...] = ()

    def names(self, family: str) -> list[str]:
        return [e.name for e in self.engines if e.family == family]

    def engine(self, word: str, family: str, guess: bool = False) -> str | None:
        """The engine `word` names in `family` (by name or alias). With `guess`, while no worker has
        registered its engines yet, an engine-like word is taken as a name (the worker checks it)."""
        for e in self.engines:
            if e.family == family and (word == e.name or word in e.aliases):
                return e.name
        if guess and not self.engines and _ENGINE_WORD.match(word):
            return word
        return None

    def style(self, words: str) -> str | None:
        """The preset `words` name: its name, or any title, painter or alias of it in any language
        (bot/contract/paintings.py). While no worker has published its presets yet, a name-like word that
        names no engine is taken as one (the worker checks it, and says so if there is none)."""
        if words in self.styles:
            return words
        if (name := paintings.resolve(words, self.styles)) is not None:
            return name
        if not self.styles and _ENGINE_WORD.match(words) and self.engine(words, "style") is None:
            return words
        return None

    def offers(self, family: str, reference: bool = False) -> bool:
        """Whether some worker runs requests of `family` (with a `reference` photo, or without one, which
        an engine that needs one cannot take). True while no worker has published anything yet: the
        worker that takes the job says what it lacks. A worker publishes only what it can run
        (worker/runtime.py), so a family whose files are missing everywhere is not offered."""
        return not self.engines or any(e.family == family and (reference or not e.needs_reference)
                                       for e in self.engines)

    def info(self, name: str) -> EngineInfo | None:
        return next((e for e in self.engines if e.name == name), None)

    def resolved(self, name: str | None, family: str) -> EngineInfo | None:
        """The engine a worker runs for a job naming `name` (None: the family's default), when that is
        certain: the workers published it, and (for the default) exactly one engine of the family as it.
        None when it is not certain (workers disagree, or an older worker did not say)."""
        if name is not None:
            canonical = self.engine(name, family)  # a name or an alias ("hq" of an older job)
            return self.info(canonical) if canonical is not None else None
        defaults = [e for e in self.engines if e.family == family and e.default]
        return defaults[0] if len(defaults) == 1 else None

    def next_engine(self, name: str, family: str) -> str | None:
        """The registered engine after `name` in `family` (round the list), skipping those that need a
        reference photo: what "Another model" offers. None when there is no other."""
        names = [e.name for e in self.engines if e.family == family and not e.needs_reference]
        if name not in names:
            return names[0] if names else None
        following = names[names.index(name) + 1:] + names[:names.index(name)]
        return following[0] if following else None


def shown(word: str, limit: int = 32) -> str:
    """A user's word safe to echo back: no control or formatting characters (RTL overrides,
    zero-width), at most `limit` characters."""
    clean = "".join(c for c in word if unicodedata.category(c) not in ("Cc", "Cf"))
    return clean if len(clean) <= limit else clean[:limit] + "…"


def _number(word: str) -> int | None:
    m = _NUMBER.match(word)
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class ColorizeOptions:
    engine: str | None = None  # None: the worker's default colouriser
    intensity: int = 100  # percent of the predicted chroma, 0..INTENSITY_MAX
    # Colourise only a black-and-white photo; one already in colour gets a question instead (worker/tasks.py).
    # Set for a photo sent without a command; a command, or "Colourise anyway", colourises whatever it is.
    if_gray: bool = False

    def __post_init__(self):
        if not 0 <= self.intensity <= INTENSITY_MAX:
            raise ValueError(f"colour intensity must be 0..{INTENSITY_MAX} %, not {self.intensity}")

    @classmethod
    def parse(cls, words: list[str], vocabulary: Vocabulary) -> "ColorizeOptions":
        """`/colorize [ENGINE] [INTENSITY]`: e.g. `instance 150` (150 % colour)."""
        engine, intensity = None, 100
        for word in (w.lower() for w in words):
            number = _number(word)
            if number is not None:
                if number > INTENSITY_MAX:
                    raise BadOptions("options.intensity_range", max=INTENSITY_MAX)
                intensity = number
            elif engine is None and (name := vocabulary.engine(word, "colorize", guess=True)):
                engine = name
            else:
                raise BadOptions("options.unknown_engine", name=shown(word),
                                 choices=", ".join(vocabulary.names("colorize")))
        return cls(engine, intensity)

    def to_dict(self) -> dict:
        return {"engine": self.engine, "intensity": self.intensity, **({"if_gray": True} if self.if_gray else {})}

    @classmethod
    def from_dict(cls, d: Mapping) -> "ColorizeOptions":
        intensity = d.get("intensity", 100)
        return cls(engine=d.get("engine") or None,
                   intensity=min(max(int(intensity), 0), INTENSITY_MAX) if intensity is not None else 100,
                   if_gray=bool(d.get("if_gray")))

    def replace(self, **changes) -> "ColorizeOptions":
        return dataclasses.replace(self, **changes)

    def cache_key(self) -> str:
        return f"colorize/{self.engine or '-'}/{self.intensity}"


@dataclass(frozen=True)
class StyleOptions:
    style: str | None = None  # a preset's name; None: a custom style image comes with the request
    strength: float = 1.0  # 0 (the photo) .. 1 (the full style)
    keep_colors: bool = False  # keep the photo's own colours, take only the brushwork
    engine: str | None = None  # None: the worker's default style engine

    def __post_init__(self):
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"style strength must be between 0 and 1, not {self.strength}")

    @classmethod
    def parse(cls, words: list[str], vocabulary: Vocabulary) -> "StyleOptions":
        """`/style NAME [STRENGTH 0-100] [keep-colors] [ENGINE]`, in any order; NAME may be absent, and may be
        several words (`/style starry night 60`, `/style Edvard Munch hq`)."""
        strength, keep, rest = 100, False, []
        for word in words:
            number = _number(word)
            if number is not None:
                if number > 100:
                    raise BadOptions("options.strength_range")
                strength = number
            elif word.lower().replace("_", "-") in _KEEP_COLORS:
                keep = True
            else:
                rest.append(word)
        style, engine = _style_and_engine(rest, vocabulary)
        return cls(style, strength / 100, keep, engine)

    def to_dict(self) -> dict:
        # strength travels in percent, as the previous release's workers read it
        return {"style": self.style, "strength": round(self.strength * 100), "keep_colors": self.keep_colors,
                "engine": self.engine}

    @classmethod
    def from_dict(cls, d: Mapping) -> "StyleOptions":
        strength = d.get("strength", 100)
        engine = d.get("engine") or ("hq" if d.get("hq") else None)  # the previous release's `hq` flag: an alias
        return cls(style=d.get("style") or None,
                   strength=min(max(float(strength if strength is not None else 100), 0.0), 100.0) / 100,
                   keep_colors=bool(d.get("keep_colors")), engine=engine)

    def replace(self, **changes) -> "StyleOptions":
        return dataclasses.replace(self, **changes)

    def cache_key(self) -> str:
        return (f"style/{self.style or 'custom'}/{self.engine or '-'}/{round(self.strength * 100)}/"
                f"{int(self.keep_colors)}")


def _style_and_engine(words: list[str], vocabulary: Vocabulary) -> tuple[str | None, str | None]:
    """The preset and the engine a style request's words name: the words are a painting's name, with an
    engine's name before or after it (or an engine alone, or nothing). Raises BadOptions("options.unknown_style")
    with the closest presets (`suggestions`) when they name no painting."""
    if not words:
        return None, None
    lowered = [w.lower() for w in words]
    engine_first = vocabulary.engine(lowered[0], "style")
    engine_last = vocabulary.engine(lowered[-1], "style")
    if len(words) == 1 and engine_first is not None:
        return None, engine_first
    for name_words, engine in ((words, None), (words[:-1], engine_last), (words[1:], engine_first)):
        if name_words and (engine is not None or name_words is words):
            style = vocabulary.style(" ".join(name_words))
            if style is not None:
                return style, engine
    if len(words) == 2 and not vocabulary.engines and (style := vocabulary.style(lowered[0])) is not None:
        return style, vocabulary.engine(lowered[1], "style", guess=True)  # no worker has said its engines yet
    said = " ".join(words)
    raise BadOptions("options.unknown_style", name=shown(said),
                     suggestions=tuple(paintings.closest(said, vocabulary.styles)))



@dataclass(frozen=True)
class RestoreOptions:
    color: bool = True  # colourise a black-and-white photo once it is restored (a colour photo keeps its colours)
    faces: int | None = None  # restored faces over the photo's own, 0..100 (None: the engine's default; 0: none)
    upscale: bool = True  # enlarge a photo smaller than the worker's threshold (worker/stages.py UPSCALE_BELOW)
    repair: bool = True  # find and fill the damage (False: "Enhance", faces and resolution only)
    engine: str | None = None  # the repairer that ran (the worker's restore default; set on results, for the cache)

    @classmethod
    def parse(cls, words: list[str], vocabulary: Vocabulary) -> "RestoreOptions":
        """`/restore [nocolor] [noup] [faces N | nofaces] [norepair]`: repair, restore faces, enlarge, then colourise. No
        engine is named: the restore family's engines (repair, faces, upscale) are steps of one restoration."""
        color, faces, upscale, repair, after_faces = True, None, True, True, False
        for word in (w.lower().replace("_", "-") for w in words):
            number = _number(word)
            if word in _NO_COLOR:
                color = False
            elif word in _NO_UPSCALE:
                upscale = False
            elif word in ("nofaces", "no-faces"):
                faces = 0
            elif word in ("norepair", "no-repair"):
                repair = False
            elif word == "faces":
                after_faces = True
                continue
            elif number is not None and after_faces and number <= 100:
                faces = number
            else:
                raise BadOptions("options.restore_syntax", name=shown(word))
            after_faces = False
        return cls(color, faces, upscale, repair)

    def to_dict(self) -> dict:
        return {"color": self.color, "faces": self.faces, "upscale": self.upscale, "repair": self.repair,
                "engine": self.engine}

    @classmethod
    def from_dict(cls, d: Mapping) -> "RestoreOptions":
        faces = d.get("faces")
        return cls(color=bool(d.get("color", True)),
                   faces=min(max(int(faces), 0), 100) if faces is not None else None,
                   upscale=bool(d.get("upscale", True)), repair=bool(d.get("repair", True)),
                   engine=d.get("engine") or None)

    def replace(self, **changes) -> "RestoreOptions":
        return dataclasses.replace(self, **changes)

    def cache_key(self) -> str:
        faces = "-" if self.faces is None else self.faces
        return f"restore/{self.engine or '-'}/{int(self.color)}/{faces}/{int(self.upscale)}/{int(self.repair)}"


MAX_HINTS = 32  # colour points one request may carry (the Mini App's limit; the web server refuses more)


@dataclass(frozen=True)
class HintsOptions:
    """The colour points a person placed in the Mini App "Pick colours" (bot/web/): each (x, y, r, g, b), x the column
    and y the row of a full-resolution pixel of the photo, the colour as picked (sRGB 0..255). Always coloured by
    the one engine that takes hints (bot/contract/webapp.py ENGINE)."""

    hints: tuple[tuple[int, int, int, int, int], ...] = ()
    engine: str = "siggraph17"  # the one colouriser that takes hints (fixed; a field so records can name it)

    def __post_init__(self):
        if len(self.hints) > MAX_HINTS:
            raise ValueError(f"at most {MAX_HINTS} hints, not {len(self.hints)}")
        for h in self.hints:
            if len(h) != 5 or min(h) < 0 or max(h[2:]) > 255:
                raise ValueError(f"a hint is (x, y, r, g, b) with colours 0..255, not {h!r}")

    @classmethod
    def of(cls, raw) -> "HintsOptions":
        """From a list of [x, y, r, g, b] (or {"x", "y", "rgb"}) as the page sends them; raises ValueError."""
        points = []
        for h in raw:
            if isinstance(h, Mapping):
                h = (h["x"], h["y"], *h["rgb"])
            if isinstance(h, (str, bytes)) or any(isinstance(v, bool) or not isinstance(v, int) for v in h):
                raise ValueError(f"a hint is five integers, not {h!r}")
            points.append(tuple(h))
        return cls(tuple(points))

    def to_dict(self) -> dict:
        return {"hints": [list(h) for h in self.hints]}

    @classmethod
    def from_dict(cls, d: Mapping) -> "HintsOptions":
        return cls.of(d.get("hints") or [])

    def replace(self, **changes) -> "HintsOptions":
        return dataclasses.replace(self, **changes)


OPTIONS = {"colorize": ColorizeOptions, "style": StyleOptions, "restore": RestoreOptions, "hints": HintsOptions}
Options = ColorizeOptions | StyleOptions | RestoreOptions | HintsOptions


def options_for(op: str, d: Mapping | None = None) -> Options | None:
    """The typed options of operation `op` from a queue dict (None for operations without options)."""
    cls = OPTIONS.get(op)
    return None if cls is None else cls.from_dict(d or {})

