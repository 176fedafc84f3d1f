"""`paintbot`: the image science from the command line, no Telegram involved.

    paintbot colorize IN.jpg [-o OUT.jpg] [--model NAME] [--weights PATH] [--intensity 150] [--like REF.jpg]
    paintbot style IN.jpg --style vangogh|PATH [--engine NAME] [--strength 0.6] [--keep-colors]
                          [--size N] [-o OUT.jpg]
    paintbot style --list
    paintbot restore IN.jpg [-o OUT.jpg] [--no-color] [--mask-out MASK.png]
    paintbot models list | download [NAME ...]
    paintbot eval colorize FOLDER [--engines all|NAME,...] [--size 256|full] [--limit N] [--out DIR]
                                  [--exemplar same-scene]
    paintbot eval style FOLDER [--styles all|NAME,...] [--engines all|NAME,...] [--size N] [--out DIR]
    paintbot eval restore FOLDER [--size 512] [--seed 2026] [--limit N] [--out DIR]

The environment is read once, here, into a ModelConfig that is passed inward. Engine names come
from the registry (models/engines.py). Errors are one line on stderr in terminal words (what is wrong,
and the file, option or variable to change), exit status 1; Ctrl-C exits with 130. Results are written
in the format their name asks for (.jpg, .png, .webp), labelled as AI-made like the bot's files.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _out_path(inp: str, out: str | None, suffix: str) -> Path:
    """Where the result goes; checked before any model runs, so a wrong suffix costs nothing."""
    from models import imageio

    path = Path(out) if out else Path(inp).with_name(f"{Path(inp).stem}_{suffix}.jpg")
    imageio.format_for(path)
    if not path.parent.is_dir():
        raise ValueError(f"cannot write {path}: there is no folder {path.parent}")
    return path


def _open(path: str):
    """An input image; its error names the file (decode's own words do not know it)."""
    from models import imageio

    try:
        return imageio.open_path(path)
    except imageio.ImageError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _config():
    from models import engines

    return engines.config_from_env(os.environ)  # as the worker does (worker/main.py)


def _cmd_colorize(args: argparse.Namespace) -> None:
    from models import colorize, engines, imageio

    if not 0 <= args.intensity <= 200:
        raise ValueError(f"--intensity must be 0..200 (percent of the predicted colour), not {args.intensity}")
    dest = _out_path(args.input, args.output, "color")
    img = _open(args.input)
    reference = _open(args.like) if args.like else None
    name = args.model or (engines.reference_engine("colorize") if reference else None)
    engine = colorize.load(name, weights=args.weights, config=_config())
    out = engine(img, intensity=args.intensity / 100, reference=reference)
    imageio.save_path(out, dest, made_from=img)
    print(dest)


def _cmd_style(args: argparse.Namespace) -> None:
    from models import engines, imageio
    from models.style import presets

    if args.list:
        for e in presets.CATALOG:
            print(f"{e['name']:<12} {e['title']} ({e['artist']}, {e['year'] or 'undated'})")
        return
    if not args.input or not args.style:
        raise ValueError("give a photo and --style NAME|PATH (paintbot style --list shows the names)")
    dest = _out_path(args.input, args.output, Path(args.style).stem)
    config = _config()
    content = _open(args.input)
    custom = Path(args.style).is_file()
    style_img = _open(args.style) if custom else presets.open_preset(args.style, config)
    engine = engines.load(args.engine, "style", config=config)  # named: its own files or an error, no other
    out = engine(content, style_img, strength=args.strength, keep_colors=args.keep_colors,
                 style_key=None if custom else args.style.lower(), size=args.size)
    imageio.save_path(out, dest, made_from=content)
    print(dest)


def _cmd_models_list(args: argparse.Namespace) -> None:
    import dataclasses

    from models import engines, weights
    from models.config import settings_variable

    config = _config()
    for e in engines.ENGINES:
        print(f"{e.name:<18} {e.family:<9} {e.label}" + (f" (also: {', '.join(e.aliases)})" if e.aliases else ""))
        for f in e.files:
            state = "present" if weights.is_present(f, config) else "not downloaded"
            print(f"{'':<18} file {f.filename} [{state}]" + (f" (or {f.override_env})" if f.override_env else ""))
        for field in dataclasses.fields(e.Settings) if e.Settings else ():
            print(f"{'':<18} {settings_variable(e.name, field.name)} (default {field.default})")


def _cmd_models_download(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from models import engines, weights
    from models.style import presets

    config = _config()
    chosen = [engines.get(n) for n in args.names] if args.names else None
    big = [f for e in chosen or engines.ENGINES for f in e.files
           if (f.remote.size or 0) > 500e6 and not weights.is_present(f, config)]
    for f in big:  # said before anything starts, so nobody is surprised by a 912 MB download
        print(f"note: {f.filename} is {f.remote.size / 1e6:.0f} MB", file=sys.stderr)
    bars = []

    def progress(wf):
        bar = tqdm(desc=wf.filename, total=wf.remote.size, unit="B", unit_scale=True, leave=False, file=sys.stderr)
        bars.append(bar)

        def update(done: int, total: int | None) -> None:
            bar.total = total or bar.total
            bar.update(done - bar.n)
        return update

    try:
        for path in engines.download_all(config, chosen, progress):
            print(path)
    finally:
        for bar in bars:
            bar.close()
    if not args.names:
        for path in presets.download_all(config):
            print(path)


def _engines_for_eval(family: str, chosen: str, config) -> dict:
    """The engines `chosen` names ("all": every registered one that can be loaded here, the others
    reported on stderr), loaded once each."""
    from models import engines
    from models.fetch import FetchError

    if chosen == "all":
        loaded = {}
        for e in engines.of_family(family):
            try:
                loaded[e.name] = engines.load(e.name, family, config=config)
            except FetchError as exc:
                print(f"paintbot: eval without {e.name}: {exc}", file=sys.stderr)
        return loaded
    names = [engines.get(n.strip(), family).name for n in chosen.split(",") if n.strip()]
    return {n: engines.load(n, family, config=config) for n in names}


def _cmd_eval(args: argparse.Namespace) -> int:
    from models import evaluate
    from models.style import presets

    config = _config()
    out = Path(args.out)
    loaded = _engines_for_eval(args.family, args.engines, config)
    if args.family == "colorize":
        colorizers = {name: evaluate.ColorEngine(lambda gray, reference=None, e=e: e(gray, reference=reference),
                                                 needs_reference=e.needs_reference) for name, e in loaded.items()}
        report = evaluate.evaluate_colorize(args.folder, colorizers, size=args.size, limit=args.limit, out_dir=out,
                                            reference_protocol=args.exemplar)
    else:
        names = presets.names() if args.styles == "all" else [presets.entry(n.strip())["name"]
                                                             for n in args.styles.split(",") if n.strip()]
        styles = {n: presets.open_preset(n, config) for n in names}
        stylizers = {name: (lambda c, s, e=e: e(c, s, size=max(c.size))) for name, e in loaded.items()}
        report = evaluate.evaluate_style(args.folder, styles, stylizers, size=args.size, out_dir=out,
                                         device=next(iter(loaded.values())).device if loaded else "cpu",
                                         limit=args.limit)
    print(report.markdown)
    print(f"written: {out / 'report.md'}, {out / 'results.csv'}, {out / 'sheet.jpg'}", file=sys.stderr)
    return 130 if report.interrupted else 0


def _cmd_restore(args: argparse.Namespace) -> None:
    """Repair the damage; a black-and-white photo is then colourised by the default colouriser (--no-color: not)."""
    from models import colorize, imageio, restore
    from models.restore.framing import is_gray

    dest = _out_path(args.input, args.output, "restored")
    mask_dest = _out_path(args.input, args.mask_out, "mask") if args.mask_out else None
    img = _open(args.input)
    config = _config()
    repaired = restore.load(config=config)(img)
    out = repaired.image
    if not args.no_color and is_gray(out):
        out = colorize.load(config=config)(out)
    imageio.save_path(out, dest, made_from=img)
    if mask_dest:
        imageio.save_path(repaired.mask, mask_dest)
    print(f"{dest} (repaired {repaired.regions} damaged area{'' if repaired.regions == 1 else 's'})")


def _cmd_eval_restore(args: argparse.Namespace) -> int:
    from models import engines, evaluate_restore, restore, weights

    config = _config()
    engine = restore.load(config=config)
    files = [(f.filename, weights.path_of(f, config)) for f in engines.get(engine.name).files]
    report = evaluate_restore.evaluate_restore(args.folder, engine, files, size=args.size, seed=args.seed,
                                               limit=args.limit, out_dir=args.out)
    print(report.markdown)
    print(f"written: {report.out_dir / 'report.md'}, {report.out_dir / 'results.csv'}, "
          f"{report.out_dir / 'sheet.jpg'}", file=sys.stderr)
    return 0


def _add_restore_parsers(sub, esub) -> None:
    r = sub.add_parser("restore", help="repair scratches, dust and creases (then colourise a black-and-white photo)")
    r.add_argument("input")
    r.add_argument("-o", "--output", help="where to write the result (.jpg, .png or .webp)")
    r.add_argument("--no-color", action="store_true", help="repair only: do not colourise a black-and-white photo")
    r.add_argument("--mask-out", metavar="MASK", help="also write the filled damage as a black-and-white picture")
    r.set_defaults(func=_cmd_restore)
    er = esub.add_parser("restore", help="PSNR and SSIM of repair on seeded synthetic damage of clean photos")
    er.add_argument("folder")
    er.add_argument("--size", type=int, default=512, help="long side of the photos, in pixels (default 512)")
    er.add_argument("--seed", type=int, default=2026, help="the damage's seed (default 2026)")
    er.add_argument("--limit", type=int, default=None, help="at most this many photos")
    er.add_argument("--out", default="eval-restore", help="folder for report.md, results.csv and sheet.jpg")
    er.set_defaults(func=_cmd_eval_restore)


def build_parser() -> argparse.ArgumentParser:
    from models import engines

    p = argparse.ArgumentParser(prog="paintbot", description="Colourise photos and repaint them as paintings.")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("colorize", aliases=["colourise", "colorise"], help="colourise a black-and-white photo")
    c.add_argument("input")
    c.add_argument("-o", "--output", help="where to write the result (.jpg, .png or .webp)")
    c.add_argument("--model", default=None, choices=engines.names("colorize"),
                   help="default: PAINTBOT_COLORIZE_MODEL, else the best this machine can run")
    c.add_argument("--weights", default=None, help="a .pth checkpoint to use instead of the registry's file")
    c.add_argument("--intensity", type=int, default=100, help="percent of the predicted colour, 0..200 (default 100)")
    c.add_argument("--like", metavar="REF", help="a colour photo to take the colours from (e.g. of the same place)")
    c.set_defaults(func=_cmd_colorize)

    s = sub.add_parser("style", help="repaint a photo in the style of a painting")
    s.add_argument("input", nargs="?")
    s.add_argument("--style", help="a preset name (see --list) or an image path")
    s.add_argument("--list", action="store_true", help="list the preset styles")
    s.add_argument("--engine", default=None, choices=engines.names("style"),
                   help="default: PAINTBOT_STYLE_ENGINE, else the best this machine can run")
    s.add_argument("--strength", type=float, default=1.0, help="0..1, how much of the style (default 1)")
    s.add_argument("--keep-colors", action="store_true", help="keep the photo's own colours")
    s.add_argument("--size", type=int, default=None, help="long side of the result in pixels")
    s.add_argument("-o", "--output", help="where to write the result (.jpg, .png or .webp)")
    s.set_defaults(func=_cmd_style)

    m = sub.add_parser("models", help="the registered models, their weight files and preset styles")
    msub = m.add_subparsers(dest="models_command", required=True)
    lst = msub.add_parser("list", help="every registered engine, its files and settings")
    lst.set_defaults(func=_cmd_models_list)
    d = msub.add_parser("download", help="fetch every weight file and preset style now (for offline use)")
    d.add_argument("names", nargs="*", metavar="NAME", help="only these engines' files (default: all, and presets)")
    d.set_defaults(func=_cmd_models_download)

    ev = sub.add_parser("eval", help="compare engines on a folder of photos (the paper's Table 1, and more)")
    esub = ev.add_subparsers(dest="family", required=True)
    ec = esub.add_parser("colorize", help="PSNR, SSIM, colourfulness and speed of each colouriser")
    ec.add_argument("folder")
    ec.add_argument("--engines", default="all", help="all, or a comma-separated list of models")
    ec.add_argument("--size", default="256", choices=("256", "full"), help="256: resize to 256x256 first (default)")
    ec.add_argument("--limit", type=int, default=None, help="at most this many photos")
    ec.add_argument("--out", default="eval", help="folder for report.md, results.csv and sheet.jpg")
    ec.add_argument("--exemplar", default=None, choices=("same-scene",),
                    help="give reference-based engines the right part of each photo as their reference")
    ec.set_defaults(func=_cmd_eval)
    es = esub.add_parser("style", help="content and style losses and speed of each style engine")
    es.add_argument("folder")
    es.add_argument("--styles", default="all", help="all, or a comma-separated list of presets")
    es.add_argument("--engines", default="all", help="all, or a comma-separated list of engines")
    es.add_argument("--size", type=int, default=256, help="long side of the photos, in pixels")
    es.add_argument("--limit", type=int, default=None, help="at most this many photos")
    es.add_argument("--out", default="eval-style", help="folder for report.md, results.csv and sheet.jpg")
    es.set_defaults(func=_cmd_eval)
    _add_restore_parsers(sub, esub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from models.device import DeviceError
    from models.fetch import FetchError

    try:
        return args.func(args) or 0
    except (FetchError, ValueError, DeviceError) as exc:  # InputError and ConfigError are ValueErrors
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
