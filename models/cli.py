"""`paintbot`: the image science from the command line, no Telegram involved.

    paintbot colorize IN.jpg [-o OUT.jpg] [--model eccv16|siggraph17] [--weights PATH]
    paintbot style IN.jpg --style vangogh|PATH [--engine adain|gatys] [--strength 0.6]
                          [--keep-colors] [--size N] [-o OUT.jpg]
    paintbot models download
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _out_path(inp: str, out: str | None, suffix: str) -> Path:
    if out:
        return Path(out)
    p = Path(inp)
    return p.with_name(f"{p.stem}_{suffix}.jpg")


def _cmd_colorize(args: argparse.Namespace) -> None:
    from models import colorize, imageio

    img = imageio.open_path(args.input)
    out = colorize.load(args.model, weights=args.weights)(img)
    dest = _out_path(args.input, args.output, "color")
    imageio.save_path(out, dest)
    print(dest)


def _cmd_style(args: argparse.Namespace) -> None:
    from models import imageio, style
    from models.style import presets

    content = imageio.open_path(args.input)
    if Path(args.style).is_file():
        style_img = imageio.open_path(args.style)
    else:
        style_img = presets.open_preset(args.style)
    s = style.load(args.engine)
    out = s(content, style_img, strength=args.strength, keep_colors=args.keep_colors, size=args.size)
    dest = _out_path(args.input, args.output, Path(args.style).stem)
    imageio.save_path(out, dest)
    print(dest)


def _cmd_models_download(args: argparse.Namespace) -> None:
    from models import weights
    from models.style import presets

    for path in weights.download_all():
        print(path)
    for path in presets.download_all():
        print(path)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="paintbot", description="Colourise photos and repaint them as paintings.")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("colorize", aliases=["colourise", "colorise"], help="colourise a black-and-white photo")
    c.add_argument("input")
    c.add_argument("-o", "--output")
    c.add_argument("--model", default=None, choices=["eccv16", "siggraph17"],
                   help="default: PAINTBOT_COLORIZE_MODEL or siggraph17")
    c.add_argument("--weights", default=None, help="a .pth checkpoint to use instead of the registry's file")
    c.set_defaults(func=_cmd_colorize)

    s = sub.add_parser("style", help="repaint a photo in the style of a painting")
    s.add_argument("input")
    s.add_argument("--style", required=True, help="a preset name (see `paintbot style --list`) or an image path")
    s.add_argument("--engine", default=None, choices=["adain", "gatys"],
                   help="default: PAINTBOT_STYLE_ENGINE or adain")
    s.add_argument("--strength", type=float, default=1.0, help="0..1, how much of the style (default 1)")
    s.add_argument("--keep-colors", action="store_true", help="keep the photo's own colours")
    s.add_argument("--size", type=int, default=None, help="long side of the result in pixels")
    s.add_argument("-o", "--output")
    s.set_defaults(func=_cmd_style)

    m = sub.add_parser("models", help="manage model weights and preset styles")
    msub = m.add_subparsers(dest="models_command", required=True)
    d = msub.add_parser("download", help="fetch every weight file and preset style now (for offline use)")
    d.set_defaults(func=_cmd_models_download)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from models.fetch import FetchError

    try:
        args.func(args)
    except (FetchError, FileNotFoundError, ValueError) as exc:
        print(f"paintbot: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
