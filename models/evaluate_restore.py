"""`paintbot eval restore`: how well repair mends damage it did not see coming, on any folder of clean photos.

Old photos with their undamaged originals do not exist, so the damage is drawn: on each clean photo (long side
brought to `size`), a seeded random set of what old prints suffer, drawn with PIL in near-white or near-black:
  - scratches: 3-6 long, nearly straight lines, 1-3 px wide at a 512 px long side, across 30-90 % of the diagonal;
  - creases: 1-2 gently wandering polylines across the photo, 2-4 px wide;
  - dust: 20-60 specks, ellipses of radius 1-3 px.
(widths and radii scale with the photo's long side / 512). The generator is seeded with `seed` and the file's
name (CRC-32), so a photo gets the same damage on every run and machine. The repair engine is then given the
damaged photo alone, and scored against the clean one with the colouriser evaluation's PSNR and SSIM (8-bit
RGB; models/evaluate.py), separately INSIDE the drawn damage (how well it is mended) and OUTSIDE it (what was
touched that should not have been; repair may change only pixels of its own filled mask, and that is checked
bit for bit on every photo). The damaged photo itself is the baseline. Detection is scored too: the share of
drawn damage the filled mask covers, and the share of the filled mask that was not damaged.

The report names the weight files it ran with and their SHA-256: a detector checkpoint has no published hash,
and a big-lama.pt whose MD5 differs from the one lama-cleaner publishes is flagged as not the real file, so
numbers from stand-in weights never pass for real ones.
"""

from __future__ import annotations

import csv
import hashlib
import math
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from skimage.metrics import structural_similarity

from models import imageio, sheet
from models.evaluate import SSIM_OPTIONS, EvalError, Report, find_photos, psnr

LAMA_PUBLISHED_MD5 = "e3aa4aaa15225a33ec84f9f4bc47e500"  # lama-cleaner's check of big-lama.pt
FIELDS = ("file", "width", "height", "damaged_share", "psnr_in_damaged", "psnr_in_repaired", "ssim_in_damaged",
          "ssim_in_repaired", "psnr_out_damaged", "psnr_out_repaired", "ssim_out_repaired", "recall", "overfill",
          "regions", "untouched_outside_fill", "seconds")
SHEET_PHOTOS = 6
CROP = 160


def draw_damage(photo: Image.Image, seed: int, name: str) -> tuple[Image.Image, np.ndarray]:
    """`photo` with seeded synthetic damage drawn on it, and the drawn pixels (bool h x w)."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    w, h = photo.size
    k = max(w, h) / 512
    mask = Image.new("L", photo.size, 0)
    damaged = photo.copy()
    pen, mpen = ImageDraw.Draw(damaged), ImageDraw.Draw(mask)
    gray = damaged.mode == "L"

    def shade():
        v = int(rng.integers(225, 256)) if rng.random() < 0.8 else int(rng.integers(0, 40))
        return v if gray else (v, v, v)

    def line(points, width):
        fill = shade()
        pen.line(points, fill=fill, width=width, joint="curve")
        mpen.line(points, fill=255, width=width, joint="curve")

    diagonal = math.hypot(w, h)
    for _ in range(rng.integers(3, 7)):  # scratches
        length = diagonal * rng.uniform(0.3, 0.9)
        angle = rng.uniform(0, math.pi)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        dx, dy = math.cos(angle) * length / 2, math.sin(angle) * length / 2
        line([(cx - dx, cy - dy), (cx + dx, cy + dy)], max(1, round(rng.integers(1, 4) * k)))
    for _ in range(rng.integers(1, 3)):  # creases
        y0, y1 = rng.uniform(0, h, 2)
        xs = np.linspace(0, w, 12)
        ys = np.linspace(y0, y1, 12) + rng.normal(0, 0.02 * h, 12)
        line(list(zip(xs.tolist(), ys.tolist())), max(2, round(rng.integers(2, 5) * k)))
    for _ in range(rng.integers(20, 61)):  # dust
        r = rng.uniform(1, 3) * k
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        fill = shade()
        pen.ellipse((x - r, y - r, x + r, y + r), fill=fill)
        mpen.ellipse((x - r, y - r, x + r, y + r), fill=255)
    return damaged, np.asarray(mask) > 0


def _rgb(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"))


def masked_scores(truth: np.ndarray, test: np.ndarray, where: np.ndarray) -> tuple[float, float]:
    """PSNR over the pixels `where`, and the mean of the SSIM map there (nan where there are none)."""
    if not where.any():
        return math.nan, math.nan
    p = psnr(truth[where], test[where])
    _, smap = structural_similarity(truth, test, full=True, **SSIM_OPTIONS)
    return p, float(smap[where].mean())


def weights_lines(files: list[tuple[str, Path]]) -> list[str]:
    """One line per weight file: its path and SHA-256, and whether it can be the published file."""
    lines = []
    for name, path in files:
        data = Path(path).read_bytes()
        line = f"`{name}`: {path} (SHA-256 {hashlib.sha256(data).hexdigest()[:16]}…)"
        if name == "big-lama.pt":
            real = hashlib.md5(data).hexdigest() == LAMA_PUBLISHED_MD5
            line += (" — the published file (MD5 matches lama-cleaner's)" if real else
                     " — **NOT the published big-lama.pt** (its MD5 differs from lama-cleaner's): these numbers "
                     "say nothing about LaMa")
        else:
            line += " — no hash is published for it: these numbers are the real detector's only if this is the " \
                    "authors' file"
        lines.append(line)
    return lines


def _crop_box(where: np.ndarray, size: tuple[int, int]) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(where)
    cy, cx = (int(np.median(ys)), int(np.median(xs))) if len(ys) else (size[1] // 2, size[0] // 2)
    side = min(CROP, *size)
    x0 = min(max(cx - side // 2, 0), size[0] - side)
    y0 = min(max(cy - side // 2, 0), size[1] - side)
    return x0, y0, x0 + side, y0 + side


def evaluate_restore(folder: str | Path, repair: Callable, files: list[tuple[str, Path]], size: int = 512,
                     seed: int = 2026, limit: int | None = None, out_dir: str | Path = "eval-restore") -> Report:
    """Repair (a callable: image -> Repaired) on seeded synthetic damage over the photos of `folder`; writes
    report.md, results.csv and sheet.jpg to `out_dir`."""
    import time

    folder, out_dir = Path(folder), Path(out_dir)
    if size < 64:
        raise EvalError(f"--size must be at least 64, not {size}")
    rows, cells, skipped = [], [], []
    for path in find_photos(folder)[:limit]:
        name = path.relative_to(folder).as_posix()
        try:
            clean = imageio.open_path(path)
        except (imageio.ImageError, OSError) as exc:
            skipped.append((name, str(exc)))
            continue
        clean = clean if clean.mode in ("L", "RGB") else clean.convert("RGB")
        clean = sheet.fit(clean, min(size, max(clean.size)))
        damaged, drawn = draw_damage(clean, seed, name)
        start = time.perf_counter()
        result = repair(damaged)
        seconds = time.perf_counter() - start
        filled = np.asarray(result.mask) > 0
        t, d, r = _rgb(clean), _rgb(damaged), _rgb(result.image)
        untouched = bool((d[~filled] == r[~filled]).all())
        in_d, in_r = masked_scores(t, d, drawn), masked_scores(t, r, drawn)
        out_d, out_r = masked_scores(t, d, ~drawn), masked_scores(t, r, ~drawn)
        rows.append({"file": name, "width": clean.width, "height": clean.height,
                     "damaged_share": round(float(drawn.mean()), 4),
                     "psnr_in_damaged": in_d[0], "psnr_in_repaired": in_r[0], "ssim_in_damaged": in_d[1],
                     "ssim_in_repaired": in_r[1], "psnr_out_damaged": out_d[0], "psnr_out_repaired": out_r[0],
                     "ssim_out_repaired": out_r[1], "recall": float((filled & drawn).sum() / max(drawn.sum(), 1)),
                     "overfill": float((filled & ~drawn).sum() / max(filled.sum(), 1)), "regions": result.regions,
                     "untouched_outside_fill": untouched, "seconds": seconds})
        if len(cells) < SHEET_PHOTOS:
            box = _crop_box(drawn, clean.size)
            crops = [(clean, "clean"), (damaged, "damaged"), (result.image, "repaired"), (result.mask, "filled mask")]
            cells.append([sheet.Cell(img.crop(box).convert("RGB"), title, name) for img, title in crops])
    if not rows:
        raise EvalError(f"no readable photos in {folder}")
    markdown = _markdown(rows, files, size, seed, skipped)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.md").write_text(markdown, encoding="utf-8")
    with open(out_dir / "results.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    imageio.save_path(sheet.grid(cells, 192), out_dir / "sheet.jpg")
    return Report(markdown, rows, skipped, False, out_dir)


def _mean(rows: list[dict], key: str) -> float:
    values = [r[key] for r in rows if not math.isnan(r[key]) and not math.isinf(r[key])]
    return float(np.mean(values)) if values else math.nan


def _db(value: float) -> str:
    return "∞ (untouched)" if math.isnan(value) else f"{value:.2f}"


def _markdown(rows: list[dict], files: list[tuple[str, Path]], size: int, seed: int,
              skipped: list[tuple[str, str]]) -> str:
    m = {k: _mean(rows, k) for k in FIELDS[3:] if k not in ("untouched_outside_fill",)}
    untouched = sum(r["untouched_outside_fill"] for r in rows)
    lines = [f"# Repair on synthetic damage ({len(rows)} photos, long side {size} px, seed {seed})", "",
             "Weights used:", ""] + [f"- {line}" for line in weights_lines(files)] + [
        "", "| | PSNR inside damage | SSIM inside damage | PSNR outside damage | SSIM outside damage |",
        "|---|---:|---:|---:|---:|",
        f"| damaged input (baseline) | {m['psnr_in_damaged']:.2f} | {m['ssim_in_damaged']:.4f} | ∞ (untouched) | "
        "1.0000 |",
        f"| repaired | {m['psnr_in_repaired']:.2f} | {m['ssim_in_repaired']:.4f} | {_db(m['psnr_out_repaired'])} | "
        f"{m['ssim_out_repaired']:.4f} |", "",
        f"- Drawn damage: {100 * m['damaged_share']:.2f} % of the pixels on average; the filled mask covered "
        f"{100 * m['recall']:.1f} % of it, and {100 * m['overfill']:.1f} % of the filled mask was undamaged.",
        f"- Pixels outside the filled mask unchanged, bit for bit: {untouched} of {len(rows)} photos.",
        f"- {m['regions']:.1f} damaged areas found per photo; {m['seconds']:.2f} s per photo (detect + fill + paste).",
        "- PSNR (MAX 255) and SSIM (models/evaluate.py's settings) on 8-bit RGB; outside the damage PSNR is "
        "over the undamaged pixels (inf when none changed, left out of the mean), SSIM is the mean of the SSIM map "
        "there. Means over photos."]
    if skipped:
        lines += ["", f"## Skipped ({len(skipped)})", ""] + [f"- `{n}`: {why}" for n, why in skipped]
    return "\n".join(lines) + "\n"
