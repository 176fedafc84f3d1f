"""`paintbot`: the image science from the command line, no Telegram involved.

    paintbot colorize PHOTO|FOLDER ... [-o OUT] [--force] [--model NAME] [--weights PATH] [--intensity 150]
                      [--like REF.jpg] [--hint X,Y,#RRGGBB ...]
    paintbot style PHOTO|FOLDER ... --style vangogh|PATH [--engine NAME] [--strength 0.6] [--keep-colors]
                   [--size N] [-o OUT] [--force]
    paintbot style --list
    paintbot models list | download [NAME ...]
    paintbot eval colorize FOLDER [--engines all|NAME,...] [--size 256|full] [--limit N] [--out DIR]
                                  [--exemplar same-scene]
    paintbot eval style FOLDER [--styles all|NAME,...] [--engines all|NAME,...] [--size N] [--out DIR]
    paintbot restore PHOTO|FOLDER ... [-o OUT] [--force] [--faces [STRENGTH]] [--upscale {2,4}] [--no-color]
                     [--mask-out MASK.png]
    paintbot eval restore FOLDER [--protocol repair|upscale|faces] [--scale 2|4] [--size 512] [--seed 2026]
                                 [--limit N] [--out DIR]

Why it is shaped so:
- A person at a terminal waits for nothing needless: `paintbot`, `--help`, `--version` and every
  argument error are answered without importing torch (seconds on a small machine). So this module
  imports only the standard library at the top; each command imports what it needs when it runs,
  and engine names are checked against the registry after parsing, before any model loads.
- Nothing is overwritten unless --force says so, and every output is planned (names, formats,
  clashes, existing files) before a model loads, so a mistake costs nothing.
- A result keeps its photo's format (JPEG for JPEG, PNG for PNG/TIFF/BMP/GIF, WebP for WebP, JPEG
  for HEIC) unless -o names another; several photos or folders go to -o FOLDER with a progress bar
  and a summary. Results are labelled as AI-made like the bot's files.
- Errors are one line on stderr in terminal words (what is wrong, and the file, option or variable
  to change): exit status 1, 2 for a wrong command line; Ctrl-C exits with 130. A step that takes
  longer than SHOW_AFTER seconds (loading a model, Gatys' optimisation) draws a progress bar.

Adding a command is one function `add_NAME(sub)` that builds its parser and sets `run=`, listed in
COMMANDS; a command that turns photos into results takes `inputs`, `-o` and `--force` as colorize
does, and its `run` is `run_each(plan(args.inputs, args.output, TAG, args.force), work, DESC)` after
loading its engine under `_loading(name)`. The environment is read once, in `_config`, into a
ModelConfig that is passed inward.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

SHOW_AFTER = 2.0  # seconds a step may take before it gets a progress bar


class UsageError(Exception):
    """A wrong command line: one line, exit status 2, no model touched."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's usage dump -> one line naming the command's --help
        raise UsageError(f"{message} (see {self.prog} --help)")


# --- shared pieces ----------------------------------------------------------------------------------

def _config():
    from models import engines
    from models.device import keep_freed_memory

    config = engines.config_from_env(os.environ)  # as the worker does (worker/main.py)
    keep_freed_memory(config.keep_memory)  # an evaluation runs hundreds of photos in this process
    return config


def _open(path: str | Path):
    """An input image; its error names the file (decode's own words do not know it)."""
    from models import imageio

    try:
        return imageio.open_path(path)
    except imageio.ImageError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _percent(text: str) -> int:
    """--intensity: checked while parsing, so a wrong value never waits for a model."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of percent") from None
    if not 0 <= value <= 200:
        raise argparse.ArgumentTypeError(f"must be 0..200 (percent of the predicted colour), not {value}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be 0..1, not {value}")
    return value


def _hint(text: str) -> tuple[int, int, tuple[int, int, int]]:
    """--hint X,Y,#RRGGBB: checked while parsing (torch-free); made a models Hint once the model is loaded."""
    parts = text.split(",")
    colour = parts[-1].strip().removeprefix("#") if len(parts) == 3 else ""
    try:
        if len(colour) != 6:
            raise ValueError
        x, y = int(parts[0]), int(parts[1])
        rgb = tuple(int(colour[i:i + 2], 16) for i in (0, 2, 4))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not X,Y,#RRGGBB (a pixel's column and row, and a colour "
                                         f"such as #c08040)") from None
    if x < 0 or y < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: X and Y count pixels from 0 at the top left")
    return x, y, rgb


def _engine(name: str | None, family: str, option: str):
    """The registry's engine called `name` (None: None); a wrong name is one line with the choices and
    the closest one, naming the option."""
    from models import engines
    from models.errors import UnknownEngine

    if name is None:
        return None
    try:
        return engines.get(name, family)
    except UnknownEngine as exc:
        raise UsageError(f"{option}: {exc}") from None


class Step:
    """A progress bar on stderr for one step that may take long: drawn only once the step has taken
    SHOW_AFTER seconds (quick steps print nothing), filled by the engine's `models.progress.report`
    where it reports how far it is (Gatys), else counting the seconds."""

    def __init__(self, desc: str, enabled: bool = True):
        self.desc, self.enabled = desc, enabled
        self.fraction: float | None = None
        self.stop = threading.Event()
        self.started = time.time()

    def __enter__(self):
        from models import progress

        if not self.enabled:
            return self
        self.reporting = progress.reporting(self.listen)
        self.reporting.__enter__()
        self.thread = threading.Thread(target=self.draw, daemon=True)
        self.thread.start()
        return self

    def listen(self, fraction: float) -> None:
        self.fraction = fraction

    def draw(self) -> None:
        from tqdm import tqdm

        if self.stop.wait(SHOW_AFTER):
            return
        bar, known = None, None
        while True:
            if bar is None or known != (self.fraction is not None):
                if bar is not None:
                    bar.close()
                known = self.fraction is not None
                fmt = "{desc}: {percentage:3.0f}%|{bar}| {elapsed}" if known else "{desc}… {elapsed}"
                bar = tqdm(total=100 if known else None, desc=self.desc, bar_format=fmt, leave=False,
                           file=sys.stderr)
                bar.start_t = self.started  # the elapsed time counts from the step's start
            if known:
                bar.n = round(100 * self.fraction)
            bar.refresh()
            if self.stop.wait(0.25):
                bar.close()
                return

    def __exit__(self, *exc):
        if self.enabled:
            self.stop.set()
            self.thread.join()
            self.reporting.__exit__(*exc)
        return False


# --- where results go -------------------------------------------------------------------------------

# The format a result keeps from its photo: lossless stays lossless, WebP stays WebP, what paintbot
# cannot write (HEIC) becomes JPEG, the format of photos.
KEEP_FORMAT = {".jpg": ".jpg", ".jpeg": ".jpeg", ".png": ".png", ".tif": ".png", ".tiff": ".png", ".bmp": ".png",
               ".gif": ".png", ".webp": ".webp"}


def result_suffix(photo: Path) -> str:
    return KEEP_FORMAT.get(photo.suffix.lower(), ".jpg")


def plan(inputs: list[str], output: str | None, tag: str, force: bool) -> list[tuple[Path, Path]]:
    """(photo, result) for every photo named or inside a folder named, all checked before any work:
    the photos exist, no two results share a name, none exists unless `force`. A result is PHOTO_<tag>
    in the photo's format beside it, or inside -o when that is a folder (an existing one, one ending in
    "/", or any -o given with several photos; a photo's subfolder is kept there), or -o itself."""
    from models import imageio

    photos: list[tuple[Path, Path]] = []  # (photo, its folder relative to the folder given)
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in imageio.PHOTO_SUFFIXES
                           and not p.stem.endswith(f"_{tag}"))  # an earlier run's results are no photos to redo
            if not found:
                raise ValueError(f"{path}: no photos in this folder ({', '.join(imageio.PHOTO_SUFFIXES)})")
            photos += [(p, p.parent.relative_to(path)) for p in found]
        elif path.is_file():
            photos.append((path, Path()))
        else:
            raise ValueError(f"{path}: no such file or folder")
    several = len(photos) > 1 or any(Path(i).is_dir() for i in inputs)
    out = Path(output) if output else None
    into_folder = out is not None and (out.is_dir() or output.endswith(("/", os.sep)) or several)
    if into_folder and not out.is_dir() and (out.exists() or out.suffix.lower() in imageio.SUFFIX_FORMATS):
        raise ValueError(f"-o {out}: several photos need a folder for their results, and this names a file")
    pairs = []
    for photo, sub in photos:
        if out is not None and not into_folder:
            dest = out
            if not dest.suffix:
                raise ValueError(f"-o {dest}: name a file .jpg, .png or .webp, or a folder (one that exists, "
                                 f"or end it with /)")
            imageio.format_for(dest)
            if not dest.parent.is_dir():
                raise ValueError(f"cannot write {dest}: there is no folder {dest.parent}")
        else:
            name = f"{photo.stem}_{tag}{result_suffix(photo)}"
            dest = out / sub / name if into_folder else photo.with_name(name)
        pairs.append((photo, dest))
    seen: dict[Path, Path] = {}
    for photo, dest in pairs:
        key = dest.resolve()
        if key == photo.resolve():
            raise ValueError(f"{dest} is the photo itself: name the result otherwise with -o")
        if key in seen:
            raise ValueError(f"{seen[key]} and {photo} would both be written to {dest}: give -o another name, "
                             f"or rename one of them")
        seen[key] = photo
    existing = [dest for _, dest in pairs if dest.exists()]
    if existing and not force:
        if len(pairs) == 1:
            raise ValueError(f"{existing[0]} already exists: add --force to replace it, or name another with -o")
        raise ValueError(f"{len(existing)} of the {len(pairs)} results already exist (e.g. {existing[0]}): "
                         f"add --force to replace them, or give -o another folder")
    return pairs


def run_each(pairs: list[tuple[Path, Path]], work: Callable, desc: str) -> int:
    """`work(photo image) -> result image` for every pair, each result written as soon as it is made.
    One photo: a step bar if it takes long, its error ends the run. Several: a bar over the photos, a
    photo that cannot be read is reported and skipped, and a summary ends the run (exit 1 if any failed)."""
    from tqdm import tqdm

    from models import imageio
    from models.errors import InputError

    single = len(pairs) == 1
    written, failed = [], []
    with tqdm(total=len(pairs), unit="photo", desc=desc, file=sys.stderr, disable=single) as bar:
        for photo, dest in pairs:
            try:
                img = imageio.open_path(photo)
                with Step(desc, enabled=single):
                    out = work(img)
                dest.parent.mkdir(parents=True, exist_ok=True)
                imageio.save_path(out, dest, made_from=img)
            except (InputError, OSError) as exc:  # this photo's (or its result's) fault: the others may be fine
                why = getattr(exc, "strerror", None) or str(exc)
                where = getattr(exc, "filename", None) or photo  # an OSError may be about the result
                if single:
                    raise ValueError(f"{where}: {why}") from None
                failed.append((photo, why))
                tqdm.write(f"paintbot: {where}: {why}", file=sys.stderr)
            else:
                written.append(dest)
                print(dest, flush=True)
            bar.update()
    if not single:
        print(f"paintbot: {len(written)} of {len(pairs)} photos done" + (f", {len(failed)} failed: "
              + "; ".join(f"{p.name} ({e})" for p, e in failed) if failed else ""), file=sys.stderr)
    return 1 if failed else 0


def _loading(engine_name: str | None):
    return Step(f"loading {engine_name or 'the default model'}")


# --- colorize ---------------------------------------------------------------------------------------

def add_colorize(sub) -> None:
    c = sub.add_parser("colorize", aliases=["colourise", "colorise"], help="colourise black-and-white photos",
                       description="Colourise black-and-white photos. A result keeps its photo's format and is "
                                   "written beside it as NAME_color.EXT, or into -o.")
    c.add_argument("inputs", nargs="+", metavar="PHOTO|FOLDER")
    c.add_argument("-o", "--output", metavar="OUT", help="the result's name (.jpg, .png, .webp), or a folder")
    c.add_argument("-f", "--force", action="store_true", help="replace results that already exist")
    c.add_argument("--model", default=None,
                   help="see `paintbot models list` (default: PAINTBOT_COLORIZE_MODEL, else the best this "
                        "machine can run; with --like, the model that colours like a photo)")
    c.add_argument("--weights", default=None, help="a .pth checkpoint to use instead of the registry's file")
    c.add_argument("--intensity", type=_percent, default=100,
                   help="percent of the predicted colour, 0..200 (default 100)")
    c.add_argument("--like", metavar="REF", help="a colour photo to take the colours from (e.g. of the same place)")
    c.add_argument("--hint", metavar="X,Y,#RRGGBB", action="append", type=_hint, default=[],
                   help="a colour you want at pixel X (column), Y (row) of the photo, e.g. 120,80,#c08040; "
                        "repeatable; one photo, with a model that takes hints (default then: siggraph17)")
    c.set_defaults(run=run_colorize)


def run_colorize(args: argparse.Namespace) -> int:
    from models import colorize, engines
    from models.errors import InputError

    chosen = _engine(args.model, "colorize", "--model")
    if chosen is not None and args.like and not chosen.needs_reference:
        raise UsageError(f"--like: the {chosen.name} model takes no reference photo "
                         f"(--model {engines.reference_engine('colorize')} does, or leave --model out)")
    if chosen is not None and chosen.needs_reference and not args.like:
        raise UsageError(f"the {chosen.name} model colours like a photo you give: add --like REF.jpg")
    if args.hint and args.like:
        raise UsageError("--hint and --like do not go together: the colours come from your hints or from the photo")
    if args.hint and chosen is not None and not chosen.takes_hints:
        raise UsageError(f"--hint: the {chosen.name} model takes no colour hints "
                         f"(--model {engines.hint_engine('colorize')} does, or leave --model out)")
    if args.hint and (len(args.inputs) > 1 or Path(args.inputs[0]).is_dir()):
        raise UsageError("--hint: hints are pixels of one photo; give one photo")
    pairs = plan(args.inputs, args.output, "color", args.force)
    reference = _open(args.like) if args.like else None
    name = chosen.name if chosen else (engines.reference_engine("colorize") if reference
                                       else engines.hint_engine("colorize") if args.hint else None)
    config = _config()
    with _loading(name or config.colorize_engine):
        engine = colorize.load(name, weights=args.weights, config=config)
    from models.colorize.hints import Hint

    hints = [Hint(x, y, rgb) for x, y, rgb in args.hint]

    def work(img):
        try:
            return engine(img, intensity=args.intensity / 100, reference=reference, hints=hints)
        except InputError as exc:
            if exc.code == "reference.gray":  # the reference, not this photo: no other photo would do better
                raise ValueError(f"--like {args.like}: the photo is black and white; give a colour one") from None
            raise
    return run_each(pairs, work, "colourising")


# --- style ------------------------------------------------------------------------------------------

def add_style(sub) -> None:
    s = sub.add_parser("style", help="repaint photos in the style of a painting",
                       description="Repaint photos in the style of a painting (a preset or an image). A result "
                                   "keeps its photo's format and is written beside it as NAME_STYLE.EXT, or into -o.")
    s.add_argument("inputs", nargs="*", metavar="PHOTO|FOLDER")
    s.add_argument("--style", help="a preset name (see --list) or an image path")
    s.add_argument("--list", action="store_true", help="list the preset styles")
    s.add_argument("--engine", default=None,
                   help="see `paintbot models list` (default: PAINTBOT_STYLE_ENGINE, else the best this machine "
                        "can run)")
    s.add_argument("--strength", type=_fraction, default=1.0, help="0..1, how much of the style (default 1)")
    s.add_argument("--keep-colors", action="store_true", help="keep the photo's own colours")
    s.add_argument("--size", type=int, default=None, help="long side of the result in pixels")
    s.add_argument("-o", "--output", metavar="OUT", help="the result's name (.jpg, .png, .webp), or a folder")
    s.add_argument("-f", "--force", action="store_true", help="replace results that already exist")
    s.set_defaults(run=run_style)


def run_style(args: argparse.Namespace) -> int:
    from models.style import presets  # no torch: --list and a wrong command line answer at once

    if args.list:
        rows = [(e["name"], f"{e['title']} ({e['artist']}, {e['year'] or 'undated'})") for e in presets.CATALOG]
        width = max(len(name) for name, _ in rows)
        for name, what in rows:
            print(f"{name:<{width}}  {what}")
        return 0
    if not args.inputs or not args.style:
        raise UsageError("give photos and --style NAME|PATH (paintbot style --list shows the names)")
    custom = Path(args.style).is_file()
    if not custom:
        presets.entry(args.style)  # an unknown preset is refused before anything loads
    chosen = _engine(args.engine, "style", "--engine")
    pairs = plan(args.inputs, args.output, Path(args.style).stem, args.force)
    from models import engines

    config = _config()
    style_img = _open(args.style) if custom else presets.open_preset(args.style, config)
    with _loading(chosen.name if chosen else config.style_engine):
        engine = engines.load(chosen.name if chosen else None, "style", config=config)  # named: no other

    def work(content):
        return engine(content, style_img, strength=args.strength, keep_colors=args.keep_colors,
                      style_key=None if custom else args.style.lower(), size=args.size)
    return run_each(pairs, work, "painting")


# --- models -----------------------------------------------------------------------------------------

def add_models(sub) -> None:
    m = sub.add_parser("models", help="the registered models: licences, sizes, defaults, files; download them")
    msub = m.add_subparsers(dest="models_command", required=True, metavar="list|download")
    lst = msub.add_parser("list", help="every registered engine: licence, size, whether it is the default here and "
                                       "why, its files and settings")
    lst.set_defaults(run=run_models_list)
    d = msub.add_parser("download", help="fetch every weight file and preset style now (for offline use)")
    d.add_argument("names", nargs="*", metavar="NAME", help="only these engines' files (default: all, and presets)")
    d.set_defaults(run=run_models_download)


def _megabytes(n: int | None) -> str:
    return "size not published" if n is None else f"{n / 1e6:,.0f} MB"


def run_models_list(args: argparse.Namespace) -> int:
    import dataclasses

    from models import engines, weights
    from models.config import settings_variable
    from models.device import pick_device

    config = _config()
    device = pick_device(config.device).type
    why = {}
    for family in engines.FAMILIES:
        why |= engines.default_here(family, device, config)[1]
    print(f"On this machine ({device}{', PAINTBOT_COMMERCIAL=1' if config.commercial_only else ''}); "
          f"cache {config.cache_dir / 'weights'}" + (f", offline folder {config.weights_dir}" if config.weights_dir
                                                      else ""))
    for e in engines.ENGINES:
        print()
        print(f"{e.name}  ({e.family}) {e.label}" + (f"; also: {', '.join(e.aliases)}" if e.aliases else ""))
        print(f"  {why.get(e.name, 'by name')}")
        lic = e.licence
        print(f"  licence: code {lic.code}; weights {lic.weights}; "
              f"{'commercial use allowed' if lic.commercial else 'NOT for commercial use'}")
        sizes = [f.remote.size for f in e.files]
        print("  files: none to download" if not e.files else
              f"  files: {len(e.files)}, {_megabytes(sum(sizes))} in all" if all(sizes) else f"  files: {len(e.files)}")
        for f in e.files:
            here = weights.local_path(f, config)
            size = _megabytes(here.stat().st_size if here and not f.remote.size else f.remote.size)
            print(f"    {f.filename}  {size}  {'present' if here else 'not downloaded'}"
                  + (f"  (or {f.override_env})" if f.override_env else ""))
        for field in dataclasses.fields(e.Settings) if e.Settings else ():
            print(f"  {settings_variable(e.name, field.name)} (default {field.default})")
    return 0


def run_models_download(args: argparse.Namespace) -> int:
    """Every file is tried, whatever fails before it; a summary says what was fetched and what failed, why."""
    from tqdm import tqdm

    from models import engines, weights
    from models.fetch import FetchError
    from models.style import presets

    config = _config()
    chosen = [_engine(n, None, "models download") for n in args.names] if args.names else None
    for e in chosen or ():
        if not e.files:
            print(f"{e.name}: needs no files (nothing to download)", file=sys.stderr)
    todo = [e for e in chosen or engines.ENGINES if e.files]
    big = [f for e in todo for f in e.files if (f.remote.size or 0) > 500e6 and not weights.is_present(f, config)]
    for f in big:  # said before anything starts, so nobody is surprised by a 912 MB download
        print(f"note: {f.filename} is {f.remote.size / 1e6:.0f} MB", file=sys.stderr)

    def progress(wf):  # a bar per file, from its first byte (a file that is here or fails draws none)
        bar = None

        def update(done: int, total: int | None) -> None:
            nonlocal bar
            if bar is None:
                bar = tqdm(desc=wf.filename, total=total or wf.remote.size, unit="B", unit_scale=True, leave=False,
                           file=sys.stderr)
            bar.update(done - bar.n)
            if total and done >= total:
                bar.close()
        return update

    results = engines.download_all(config, todo, progress) if todo else []
    if not args.names:
        for entry in presets.CATALOG:
            try:
                results.append((entry["file"], presets.preset_path(entry["name"], config)))
            except FetchError as exc:
                results.append((entry["file"], exc))
    fetched = [(name, r) for name, r in results if not isinstance(r, FetchError)]
    failed = [(name, r) for name, r in results if isinstance(r, FetchError)]
    for _, path in fetched:
        print(path)
    if results:
        print(f"paintbot: {len(fetched)} of {len(results)} files here" + (f"; {len(failed)} failed:" if failed else ""),
              file=sys.stderr)
    for name, exc in failed:
        print(f"  {name}: {exc}", file=sys.stderr)
    return 1 if failed else 0


# --- eval -------------------------------------------------------------------------------------------

def add_eval(sub) -> None:
    ev = sub.add_parser("eval", help="compare engines on a folder of photos (the paper's Table 1, and more)")
    esub = ev.add_subparsers(dest="family", required=True, metavar="colorize|style|restore")
    ec = esub.add_parser("colorize", help="PSNR, SSIM, colourfulness and speed of each colouriser")
    ec.add_argument("folder")
    ec.add_argument("--engines", default="all", help="all, or a comma-separated list of models")
    ec.add_argument("--size", default="256", choices=("256", "full"), help="256: resize to 256x256 first (default)")
    ec.add_argument("--limit", type=int, default=None, help="at most this many photos")
    ec.add_argument("--out", default="eval", help="folder for report.md, results.csv and sheet.jpg")
    ec.add_argument("--exemplar", default=None, choices=("same-scene",),
                    help="give reference-based engines the right part of each photo as their reference")
    ec.set_defaults(run=run_eval)
    es = esub.add_parser("style", help="content and style losses and speed of each style engine")
    es.add_argument("folder")
    es.add_argument("--styles", default="all", help="all, or a comma-separated list of presets")
    es.add_argument("--engines", default="all", help="all, or a comma-separated list of engines")
    es.add_argument("--size", type=int, default=256, help="long side of the photos, in pixels")
    es.add_argument("--limit", type=int, default=None, help="at most this many photos")
    es.add_argument("--out", default="eval-style", help="folder for report.md, results.csv and sheet.jpg")
    es.set_defaults(run=run_eval)
    add_eval_restore(esub)


def _engines_for_eval(family: str, chosen: str, config) -> dict:
    """The engines `chosen` names ("all": every registered one that can be loaded here, the others
    reported on stderr), loaded once each."""
    from models import engines
    from models.fetch import FetchError

    if chosen == "all":
        loaded = {}
        for e in engines.of_family(family):
            try:
                with _loading(e.name):
                    loaded[e.name] = engines.load(e.name, family, config=config)
            except FetchError as exc:
                print(f"paintbot: eval without {e.name}: {exc}", file=sys.stderr)
        return loaded
    names = [_engine(n.strip(), family, "--engines").name for n in chosen.split(",") if n.strip()]
    loaded = {}
    for n in names:
        with _loading(n):
            loaded[n] = engines.load(n, family, config=config)
    return loaded


def run_eval(args: argparse.Namespace) -> int:
    from models import evaluate, weights
    from models.style import presets

    config = _config()
    out = Path(args.out)
    loaded = _engines_for_eval(args.family, args.engines, config)
    used = {name: weights.describe_used(type(e).files, config) for name, e in loaded.items()}
    if args.family == "colorize":
        # Every engine takes its reference by keyword (framing.ColorizeEngine.__call__), never by position.
        colorizers = {name: evaluate.ColorEngine(lambda gray, reference=None, e=e: e(gray, reference=reference),
                                                 needs_reference=e.needs_reference) for name, e in loaded.items()}
        report = evaluate.evaluate_colorize(args.folder, colorizers, size=args.size, limit=args.limit, out_dir=out,
                                            reference_protocol=args.exemplar, weights_used=used)
    else:
        names = presets.names() if args.styles == "all" else [presets.entry(n.strip())["name"]
                                                             for n in args.styles.split(",") if n.strip()]
        styles = {n: presets.open_preset(n, config) for n in names}
        stylizers = {name: (lambda c, s, e=e: e(c, s, size=max(c.size))) for name, e in loaded.items()}
        report = evaluate.evaluate_style(args.folder, styles, stylizers, size=args.size, out_dir=out,
                                         device=next(iter(loaded.values())).device if loaded else "cpu",
                                         limit=args.limit, weights_used=used)
    print(report.markdown)
    print(f"written: {out / 'report.md'}, {out / 'results.csv'}, {out / 'sheet.jpg'}", file=sys.stderr)
    return 130 if report.interrupted else 0


# --- restore ----------------------------------------------------------------------------------------

def add_restore(sub) -> None:
    r = sub.add_parser("restore", help="repair scratches, dust and creases, restore faces, upscale, colourise",
                       description="Find scratches, dust and creases and paint them out; then, when asked, restore "
                                   "faces (GFPGAN) and upscale (Real-ESRGAN); a black-and-white photo is then "
                                   "colourised by the default colouriser. The same order as the bot's /restore "
                                   "(models/restore/pipeline.py). Written as NAME_restored.EXT or -o.")
    r.add_argument("inputs", nargs="+", metavar="PHOTO|FOLDER")
    r.add_argument("-o", "--output", metavar="OUT", help="the result's name (.jpg, .png, .webp), or a folder")
    r.add_argument("-f", "--force", action="store_true", help="replace results that already exist")
    r.add_argument("--faces", nargs="?", type=_strength, const=None, default=False, metavar="STRENGTH",
                   help="restore faces (GFPGAN v1.4), blended at STRENGTH %% 0-100 (default: PAINTBOT_FACES_STRENGTH, else 70)")
    r.add_argument("--upscale", type=int, choices=(2, 4), default=None, metavar="{2,4}",
                   help="make the photo 2 or 4 times larger (Real-ESRGAN; never past the engine's long side)")
    r.add_argument("--no-color", action="store_true", help="do not colourise black-and-white photos")
    r.add_argument("--mask-out", metavar="MASK", help="one photo: also write the damage that was filled, as a picture")
    r.set_defaults(run=run_restore)


def _strength(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"STRENGTH is a whole number 0-100, not {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"STRENGTH is 0-100, not {value}")
    return value


def run_restore(args: argparse.Namespace) -> int:
    from models import colorize, imageio, restore
    from models.restore import pipeline, upscale

    pairs = plan(args.inputs, args.output, "restored", args.force)
    mask_out = None
    if args.mask_out:
        if len(pairs) != 1:
            raise UsageError("--mask-out names one picture: give one photo")
        mask_out = plan([str(pairs[0][0])], args.mask_out, "mask", args.force)[0][1]
    config = _config()
    with _loading("repair"):
        repairer = restore.load(config=config)
    faces = upscaler = None
    if args.faces is not False:  # False: no --faces; None: --faces at the engine's strength
        with _loading("faces"):
            faces = restore.load("faces", config=config)
    if args.upscale:
        name = upscale.engine_for(repairer.device)
        with _loading(name):
            upscaler = restore.load(name, config=config)
    loaded = {}

    def repair(img):
        repaired = repairer(img)
        if mask_out is not None:
            imageio.save_path(repaired.mask, mask_out)
        return repaired

    def colorizer(img):  # loaded only when a black-and-white photo reaches it
        if "colorize" not in loaded:
            with _loading(config.colorize_engine):
                loaded["colorize"] = colorize.load(config=config)
        return loaded["colorize"](img)

    def work(img):
        out, _ = pipeline.restore(img, repairer=repair, faces=faces,
                                  faces_strength=None if args.faces is False else args.faces,
                                  upscaler=upscaler, scale=args.upscale or 2,
                                  colorizer=None if args.no_color else colorizer)
        return out
    return run_each(pairs, work, "restoring")


def add_eval_restore(esub) -> None:
    er = esub.add_parser("restore", help="PSNR and SSIM of repair, upscale or faces on clean photos",
                         description="repair: seeded synthetic damage, then repair; upscale: a bicubic downscale, "
                                     "then the upscaler (bicubic as the baseline); faces: a seeded blur of the faces, "
                                     "then GFPGAN (the blurred input as the baseline). models/evaluate_restore.py.")
    er.add_argument("folder")
    er.add_argument("--protocol", choices=("repair", "upscale", "faces"), default="repair",
                    help="what is measured (default repair)")
    er.add_argument("--scale", type=int, choices=(2, 4), default=2, help="upscale protocol: the factor (default 2)")
    er.add_argument("--size", type=int, default=512, help="long side of the photos, in pixels (default 512)")
    er.add_argument("--seed", type=int, default=2026, help="the damage's or blur's seed (default 2026)")
    er.add_argument("--limit", type=int, default=None, help="at most this many photos")
    er.add_argument("--out", default="eval-restore", help="folder for report.md, results.csv and sheet.jpg")
    er.set_defaults(run=run_eval_restore)


def run_eval_restore(args: argparse.Namespace) -> int:
    from models import engines, evaluate_restore, restore, weights
    from models.restore import upscale

    config = _config()
    name = {"repair": None, "faces": "faces"}.get(args.protocol)
    if args.protocol == "upscale":
        from models.device import pick_device

        name = upscale.engine_for(pick_device(config.device))
    with _loading(name or "repair"):
        engine = restore.load(name, config=config)
    files = [(f.filename, weights.path_of(f, config)) for f in engines.get(engine.name).files]
    common = dict(size=args.size, limit=args.limit, out_dir=args.out)
    if args.protocol == "upscale":
        report = evaluate_restore.evaluate_upscale(args.folder, engine, files, scale=args.scale, **common)
    elif args.protocol == "faces":
        report = evaluate_restore.evaluate_faces(args.folder, engine, files, seed=args.seed, **common)
    else:
        report = evaluate_restore.evaluate_restore(args.folder, engine, files, seed=args.seed, **common)
    print(report.markdown)
    print(f"written: {report.out_dir / 'report.md'}, {report.out_dir / 'results.csv'}, "
          f"{report.out_dir / 'sheet.jpg'}", file=sys.stderr)
    return 0


# --- the program ------------------------------------------------------------------------------------

COMMANDS = (add_colorize, add_style, add_models, add_eval, add_restore)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("paintbot")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> Parser:
    p = Parser(prog="paintbot", description="Colourise old photos and repaint them as paintings, at a terminal.",
               epilog="`paintbot COMMAND --help` says more; `paintbot models list` shows the models, their "
                      "licences and which are the defaults here.")
    p.add_argument("--version", action="version", version=f"paintbot {version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for add in COMMANDS:
        add(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    try:
        if not argv:
            parser.print_help()
            return 0
        args = parser.parse_args(argv)
        if not hasattr(args, "run"):
            parser.print_help()
            return 0
        return _run(args)
    except UsageError as exc:
        print(f"paintbot: {exc}", file=sys.stderr)
        return 2


def _is_users(exc: Exception) -> bool:
    """A file, setting or device a person can change (InputError and ConfigError are ValueErrors).
    DeviceError is looked up only once torch is in: `paintbot style --list` must not import it."""
    from models.fetch import FetchError

    device = sys.modules.get("models.device")
    return isinstance(exc, (FetchError, ValueError)) or (device is not None and isinstance(exc, device.DeviceError))


def _run(args: argparse.Namespace) -> int:
    try:
        return args.run(args) or 0
    except UsageError:
        raise
    except (RuntimeError, ValueError) as exc:
        if not _is_users(exc):
            raise
        print(f"paintbot: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # an input that is not there, an output folder that cannot be written
        print(f"paintbot: {exc.filename or ''}{': ' if exc.filename else ''}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("paintbot: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
