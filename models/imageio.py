"""Safe image decoding and encoding for whatever people send: one function each way.

`decode` returns an 8-bit "RGB" or "L" image with EXIF orientation applied, or raises
ImageError with a code the bot turns into a sentence a user can act on. The pixel count is checked from the header,
before any pixel is allocated, so a tiny file that declares 20000x20000 pixels costs nothing.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pillow_heif
from PIL import Image, ImageOps, UnidentifiedImageError

from models.errors import InputError

pillow_heif.register_heif_opener()  # iPhones send HEIC: libheif decodes it like any other format

MAX_PIXELS = 40_000_000  # 40 MP: well above any phone camera, far below what would exhaust memory
MIN_SIDE = 8

# decode() checks max_pixels from the header; PIL's own bomb check stays as a second fence
# (it raises DecompressionBombError above twice this many pixels).
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class ImageError(InputError):
    """The data is not an image paintbot can use."""


def _too_many() -> ImageError:
    return ImageError("image.too_many_pixels", "the image has too many pixels")


def _is_heif(data: bytes) -> bool:
    return data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1")


def decode(data: bytes, max_pixels: int = MAX_PIXELS) -> Image.Image:
    if not data:
        raise ImageError("image.empty", "the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # max_pixels is checked below
            im = Image.open(io.BytesIO(data))  # reads the header only
    except Image.DecompressionBombError:
        raise _too_many() from None
    except UnidentifiedImageError:
        if _is_heif(data):  # a HEIF variant libheif cannot read, or a damaged one
            raise ImageError("image.heic", "this HEIC image cannot be read (convert it to JPEG or PNG)") from None
        raise ImageError("image.unreadable", "not an image format paintbot reads (JPEG, PNG, WebP, HEIC, ...)") from None
    w, h = im.size
    if w * h > max_pixels:
        raise ImageError("image.too_large", f"the image is too large ({w}×{h}, limit {max_pixels // 1_000_000} MP)",
                         width=w, height=h, limit_mp=max_pixels // 1_000_000)
    if min(w, h) < MIN_SIDE:
        raise ImageError("image.too_small", f"the image is too small ({w}×{h})", width=w, height=h)
    try:
        animated = getattr(im, "n_frames", 1) > 1  # counting frames reads the file: inside the try
        im.seek(0)
        im.load()
        im = ImageOps.exif_transpose(im)
        out = _to_8bit(im)
    except Image.DecompressionBombError:  # a later frame or tile larger than the header said
        raise _too_many() from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error) as exc:
        raise ImageError("image.damaged", "the image is damaged or incomplete") from exc
    if animated:
        out.info["paintbot_animated"] = True
    return out


def _to_8bit(im: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit "L" (gray) or "RGB"; transparency is laid on white."""
    mode = im.mode
    if mode in ("L", "RGB"):
        return im
    if mode == "1":
        return im.convert("L")
    if mode.startswith("I") or mode == "F":  # 16/32-bit gray: scale the range, never just clip
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if (mode.startswith("I;16") or arr.max() > 255) else 255.0
        if mode == "F" and arr.max() <= 1.0:
            top = 1.0
        return Image.fromarray(np.clip(arr / top * 255 + 0.5, 0, 255).astype(np.uint8), "L")
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode in ("LA", "La", "PA"):
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "RGBa"):
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, im.convert("RGBA")).convert("RGB")
    return im.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX, 48-bit RGB


def encode(img: Image.Image, fmt: str = "JPEG", quality: int = 92) -> bytes:
    buf = io.BytesIO()
    fmt = fmt.upper()
    if fmt in ("JPEG", "JPG"):
        img.convert("RGB").save(buf, "JPEG", quality=quality, subsampling=0 if quality >= 95 else 2)
    elif fmt == "PNG":
        img.save(buf, "PNG", compress_level=3)
    elif fmt == "WEBP":
        img.save(buf, "WEBP", quality=quality)
    else:
        raise ValueError(f"cannot encode as {fmt}: use JPEG, PNG or WebP")
    return buf.getvalue()


def open_path(path: str | Path) -> Image.Image:
    return decode(Path(path).read_bytes())


SUFFIX_FORMATS = {".png": "PNG", ".webp": "WEBP", ".jpg": "JPEG", ".jpeg": "JPEG"}


def save_path(img: Image.Image, path: str | Path) -> None:
    """Write `img` in the format its suffix names (JPEG for any other suffix)."""
    path = Path(path)
    path.write_bytes(encode(img, SUFFIX_FORMATS.get(path.suffix.lower(), "JPEG"), quality=95))
