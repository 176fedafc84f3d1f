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

import hashlib
import math
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from skimage.metrics import structural_similarity

from models import imageio, sheet
from models.evaluate import SSIM_OPTIONS, EvalError, Report, find_photos, psnr, write_report

LAMA_PUBLISHED_MD5 = "e3aa4aaa15225a33ec84f9f4bc47e500"  # lama-cleaner's check of big-lama.pt
FIELDS = ("file", "width", "height", "damaged_share", "psnr_in_damaged", "psnr_in_repaired", "ssim_in_damaged",
          "ssim_in_repaired", "psnr_out_damaged", "psnr_out_repaired", "ssim_out_repaired", "recall", "overfill",
          "regions", "untouched_outside_fill", "seconds")
SHEET_PHOTOS = 6
SHEET_CELL = 192  # a sheet cell: one CROP px crop with its titles
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
            line += " — no hash is published for it: these numbers are the real network's only if this is the " \
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


def _clean_photos(folder: Path, size: int, limit: int | None):
    """(name, clean photo at long side `size`, L or RGB) for each readable photo; the unreadable in `skipped`."""
    skipped = []

    def photos():
        for path in find_photos(folder)[:limit]:
            name = path.relative_to(folder).as_posix()
            try:
                clean = imageio.open_path(path)
            except (imageio.ImageError, OSError) as exc:
                skipped.append((name, str(exc)))
                continue
            clean = clean if clean.mode in ("L", "RGB") else clean.convert("RGB")
            yield name, sheet.fit(clean, min(size, max(clean.size)))
    return photos(), skipped


def evaluate_restore(folder: str | Path, repair: Callable, files: list[tuple[str, Path]], size: int = 512,
                     seed: int = 2026, limit: int | None = None, out_dir: str | Path = "eval-restore") -> Report:
    """Repair (a callable: image -> Repaired) on seeded synthetic damage over the photos of `folder`; writes
    report.md, results.csv and sheet.jpg to `out_dir`."""
    import time

    folder, out_dir = Path(folder), Path(out_dir)
    if size < 64:
        raise EvalError(f"--size must be at least 64, not {size}")
    photos, skipped = _clean_photos(folder, size, limit)
    rows, cells = [], []
    for name, clean in photos:
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
    return write_report(out_dir, markdown, rows, FIELDS, cells, skipped, False, cell=SHEET_CELL)


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


# --- the enhancers' protocols (`--protocol upscale` and `--protocol faces`) ----------------------------------

UPSCALE_FIELDS = ("file", "width", "height", "psnr_bicubic", "psnr_upscaled", "ssim_bicubic", "ssim_upscaled",
                  "seconds")


def evaluate_upscale(folder: str | Path, upscaler: Callable, files: list[tuple[str, Path]], scale: int = 2,
                     size: int = 512, limit: int | None = None, out_dir: str | Path = "eval-restore") -> Report:
    """Downscale-then-upscale: each clean photo (long side `size`, cropped to a multiple of `scale`) is shrunk
    `scale` times (bicubic, as the authors' degradation's simplest part), upscaled by `upscaler` (image, scale=
    -> image) and scored against itself (PSNR, SSIM on the whole photo), beside plain bicubic upscaling of the
    same small photo as the baseline. An upscaler that stops short of the size (its max_side) is brought to it
    with Lanczos. Writes report.md, results.csv and sheet.jpg to `out_dir`."""
    import time

    folder, out_dir = Path(folder), Path(out_dir)
    if size < 64:
        raise EvalError(f"--size must be at least 64, not {size}")
    photos, skipped = _clean_photos(folder, size, limit)
    rows, cells = [], []
    for name, clean in photos:
        clean = clean.crop((0, 0, clean.width - clean.width % scale, clean.height - clean.height % scale))
        small = clean.resize((clean.width // scale, clean.height // scale), Image.Resampling.BICUBIC)
        bicubic = small.resize(clean.size, Image.Resampling.BICUBIC)
        start = time.perf_counter()
        up = upscaler(small, scale=scale)
        seconds = time.perf_counter() - start
        if up.size != clean.size:
            up = up.resize(clean.size, Image.Resampling.LANCZOS)
        t, everywhere = _rgb(clean), np.ones(clean.size[::-1], bool)
        b, u = masked_scores(t, _rgb(bicubic), everywhere), masked_scores(t, _rgb(up), everywhere)
        rows.append({"file": name, "width": clean.width, "height": clean.height, "psnr_bicubic": b[0],
                     "psnr_upscaled": u[0], "ssim_bicubic": b[1], "ssim_upscaled": u[1], "seconds": seconds})
        if len(cells) < SHEET_PHOTOS:
            box = _crop_box(np.zeros(clean.size[::-1], bool), clean.size)
            cells.append([sheet.Cell(img.crop(box).convert("RGB"), title, name)
                          for img, title in ((clean, "original"), (bicubic, "bicubic"), (up, "upscaled"))])
    if not rows:
        raise EvalError(f"no readable photos in {folder}")
    m = {k: _mean(rows, k) for k in UPSCALE_FIELDS[3:]}
    lines = [f"# Upscale {scale}x after a {scale}x bicubic downscale ({len(rows)} photos, long side {size} px)", "",
             "Weights used:", ""] + [f"- {line}" for line in weights_lines(files)] + [
        "", "| | PSNR | SSIM |", "|---|---:|---:|",
        f"| bicubic upscaling (baseline) | {m['psnr_bicubic']:.2f} | {m['ssim_bicubic']:.4f} |",
        f"| upscaled | {m['psnr_upscaled']:.2f} | {m['ssim_upscaled']:.4f} |", "",
        f"- {m['seconds']:.2f} s per photo (the upscaler alone).",
        "- PSNR (MAX 255) and SSIM (models/evaluate.py's settings) on 8-bit RGB over the whole photo; means over "
        "photos. Real-ESRGAN is trained for a harsher degradation (blur, noise, JPEG) than a clean bicubic shrink "
        "and sharpens by design: PSNR favours bicubic's smoothness, so read SSIM and the sheet beside it."]
    lines += _skipped_lines(skipped)
    markdown = "\n".join(lines) + "\n"
    return write_report(out_dir, markdown, rows, UPSCALE_FIELDS, cells, skipped, False, cell=SHEET_CELL)


FACES_FIELDS = ("file", "faces", "synthetic", "face_share", "blur_sigma", "psnr_blurred", "psnr_restored",
                "ssim_blurred", "ssim_restored", "seconds")
FACE_SIDE = 0.6  # a drawn face's aligned square (FFHQ's 512 px crop), as a share of the photo's short side


def synthetic_face(clean: Image.Image) -> tuple[Image.Image, np.ndarray]:
    """`clean` with a plain drawn face (skin oval, eyes, nose, mouth) at the photo's centre, and its five
    landmarks (eyes, nose tip, mouth corners; x y), placed from the FFHQ template: a face whose landmarks are
    known, for photos where the detector finds none."""
    from models.restore.faces import FFHQ_TEMPLATE

    w, h = clean.size
    k = FACE_SIDE * min(w, h) / 512  # the template's 512 px square, scaled into the photo
    points = (FFHQ_TEMPLATE - 256) * k + [w / 2, h / 2]
    img = clean.convert("RGB")
    pen = ImageDraw.Draw(img)
    cx, cy, rx, ry = w / 2, h / 2 + 10 * k, 110 * k, 150 * k
    pen.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=(214, 170, 140))
    for x, y in points[:2]:
        pen.ellipse((x - 14 * k, y - 7 * k, x + 14 * k, y + 7 * k), fill=(245, 245, 240))
        pen.ellipse((x - 6 * k, y - 6 * k, x + 6 * k, y + 6 * k), fill=(60, 40, 30))
    nose = points[2]
    pen.line([(nose[0], nose[1] - 50 * k), (nose[0] - 8 * k, nose[1]), (nose[0] + 8 * k, nose[1])],
             fill=(150, 100, 80), width=max(1, round(3 * k)))
    pen.line([tuple(points[3]), ((points[3][0] + points[4][0]) / 2, points[3][1] + 8 * k), tuple(points[4])],
             fill=(150, 60, 60), width=max(1, round(5 * k)))
    return (img.convert("L") if clean.mode == "L" else img), points.astype(np.float32)


def face_region(size: tuple[int, int], landmarks: list[np.ndarray]) -> np.ndarray:
    """The pixels (bool h x w) of each face's aligned 512 x 512 square, mapped back into the photo."""
    import cv2

    from models.restore.faces import FACE_SIZE, align_matrix

    region = np.zeros(size[::-1], bool)
    for points in landmarks:
        matrix = align_matrix(points)
        if matrix is not None:
            square = cv2.warpAffine(np.ones((FACE_SIZE, FACE_SIZE), np.float32), cv2.invertAffineTransform(matrix),
                                    size)
            region |= square > 0.5
    return region


def evaluate_faces(folder: str | Path, engine, files: list[tuple[str, Path]], size: int = 512, seed: int = 2026,
                   limit: int | None = None, out_dir: str | Path = "eval-restore") -> Report:
    """Blur-then-restore on the face regions: the faces of each clean photo (long side `size`) are found by
    `engine.landmarks` (FacesEngine's RetinaFace); a photo with none gets a drawn face at known landmarks
    (synthetic_face, flagged in the results). Inside each face's square (face_region) the photo is blurred with
    a Gaussian whose sigma is drawn from a generator seeded with `seed` and the file's name (CRC-32): 1-3 px
    per 100 px of face width (twice the first face's eye distance), so the same photo gets the same blur on every run. The blurred photo's faces are
    then restored at the same landmarks (models/restore/faces.py's enhance with `engine.restore`, at the
    engine's default strength: detection is not what is scored), and PSNR and SSIM are measured on the face
    regions against the clean photo, beside the blurred input as the baseline."""
    import time

    import cv2

    from models.restore.enhance import as_rgb, in_kind_of
    from models.restore.faces import enhance

    folder, out_dir = Path(folder), Path(out_dir)
    if size < 64:
        raise EvalError(f"--size must be at least 64, not {size}")
    photos, skipped = _clean_photos(folder, size, limit)
    strength = engine.settings.strength
    rows, cells = [], []
    for name, clean in photos:
        found = engine.landmarks(clean)
        synthetic = not found
        if synthetic:
            clean, points = synthetic_face(clean)
            found = [points]
        region = face_region(clean.size, found)
        width = 2 * float(np.linalg.norm(found[0][0] - found[0][1]))  # a face is about twice its eye distance
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        sigma = rng.uniform(1.0, 3.0) * max(width, 1) / 100
        rgb = as_rgb(clean)
        blurred_rgb = np.where(region[..., None], cv2.GaussianBlur(rgb, (0, 0), sigma), rgb)
        blurred = in_kind_of(clean, blurred_rgb)
        start = time.perf_counter()
        restored = in_kind_of(clean, enhance(as_rgb(blurred), found, engine.restore, strength / 100))
        seconds = time.perf_counter() - start
        t = _rgb(clean)
        b, r = masked_scores(t, _rgb(blurred), region), masked_scores(t, _rgb(restored), region)
        rows.append({"file": name, "faces": len(found), "synthetic": synthetic,
                     "face_share": round(float(region.mean()), 4), "blur_sigma": round(sigma, 3),
                     "psnr_blurred": b[0], "psnr_restored": r[0], "ssim_blurred": b[1], "ssim_restored": r[1],
                     "seconds": seconds})
        if len(cells) < SHEET_PHOTOS:
            box = _crop_box(region, clean.size)
            cells.append([sheet.Cell(img.crop(box).convert("RGB"), title, name)
                          for img, title in ((clean, "clean"), (blurred, "blurred"), (restored, "restored"))])
    if not rows:
        raise EvalError(f"no readable photos in {folder}")
    m = {k: _mean(rows, k) for k in FACES_FIELDS[3:]}
    drawn = sum(r["synthetic"] for r in rows)
    lines = [f"# Faces restored after a seeded blur ({len(rows)} photos, long side {size} px, seed {seed}, "
             f"strength {strength})", "", "Weights used:", ""] + [f"- {line}" for line in weights_lines(files)] + [
        "", "| | PSNR on faces | SSIM on faces |", "|---|---:|---:|",
        f"| blurred input (baseline) | {m['psnr_blurred']:.2f} | {m['ssim_blurred']:.4f} |",
        f"| restored | {m['psnr_restored']:.2f} | {m['ssim_restored']:.4f} |", "",
        f"- {sum(r['faces'] for r in rows)} faces; {drawn} of {len(rows)} photos had none the detector found and "
        "were given a drawn face at known landmarks (a drawing, not a face GFPGAN was trained on: read those "
        "rows apart, results.csv has a `synthetic` column).",
        f"- Blur: Gaussian, sigma {m['blur_sigma']:.2f} px on average (1-3 px per 100 px of face width, seeded), "
        f"inside each face's aligned square; {m['seconds']:.2f} s per photo (align + GFPGAN + paste).",
        "- PSNR (MAX 255) and SSIM (models/evaluate.py's settings) on 8-bit RGB over the face squares; means over "
        "photos. GFPGAN reconstructs a face from its prior: a sharper face can score below the blur on PSNR."]
    lines += _skipped_lines(skipped)
    markdown = "\n".join(lines) + "\n"
    return write_report(out_dir, markdown, rows, FACES_FIELDS, cells, skipped, False, cell=SHEET_CELL)


def _skipped_lines(skipped: list[tuple[str, str]]) -> list[str]:
    return ["", f"## Skipped ({len(skipped)})", ""] + [f"- `{n}`: {why}" for n, why in skipped] if skipped else []
