"""Safe image decoding and encoding for whatever people send: one function each way.

`decode` returns an 8-bit "RGB" or "L" image with EXIF orientation applied, or raises
ImageError with a code the bot turns into a sentence a user can act on. The pixel count is checked from the header,
before any pixel is allocated, so a tiny file that declares 20000x20000 pixels costs nothing. Whatever else a
file makes the decoders raise is an ImageError too ("damaged"): a file is answered at once, never retried.
The photo's other EXIF (date, camera) rides along in `info["exif"]`.

`encode` given the photo a model made the image from (`made_from`) says so in the file: the IPTC
digital source type for AI-modified images in XMP, and the photo's EXIF without its GPS position.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pillow_heif
from PIL import ExifTags, Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from models.errors import InputError

pillow_heif.register_heif_opener()  # iPhones send HEIC: libheif decodes it like any other format

MAX_PIXELS = 40_000_000  # 40 MP: well above any phone camera, far below what would exhaust memory
MIN_SIDE = 8
MAX_EXIF_BYTES = 65_000  # a JPEG APP1 segment holds at most 65533 bytes: larger EXIF is left out

# IPTC's digital source type for "edited using generative AI" (the news code URI), with XMP's creator tool.
AI_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
AI_XMP = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"'
    ' xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="paintbot"'
    f' Iptc4xmpExt:DigitalSourceType="{AI_SOURCE_TYPE}"/>'
    '</rdf:RDF></x:xmpmeta><?xpacket end="r"?>')
# EXIF that must not travel on: where the photo was taken, the orientation decode already applied,
# and the camera maker's private notes (opaque, internal offsets that break when rewritten).
_DROPPED_TAGS = {ExifTags.IFD.GPSInfo, ExifTags.Base.Orientation}
_DROPPED_CAMERA_TAGS = {ExifTags.Base.MakerNote, ExifTags.IFD.Interop}

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
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # max_pixels is checked in _read
            return _read(data, max_pixels)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):  # a frame or tile beyond the header
        raise _too_many() from None
    except UnidentifiedImageError:  # no decoder recognised the file (only Image.open raises this)
        if _is_heif(data):  # a HEIF variant libheif cannot read, or a damaged one
            raise ImageError("image.heic", "this HEIC image cannot be read (convert it to JPEG or PNG)") from None
        raise ImageError("image.unreadable", "not an image format paintbot reads (JPEG, PNG, WebP, HEIC, ...)") from None
    except FILE_ERRORS as exc:
        raise ImageError("image.damaged", "the image is damaged or incomplete") from exc


# What Pillow's and libheif's decoders raise on a file they cannot read: a malformed header, a truncated
# stream, a text chunk that inflates past Pillow's limit (ValueError), counts and offsets that make no sense
# (IndexError, struct.error, ZeroDivisionError, TypeError, KeyError, ...), a size no memory holds.
# Decoding is a pure function of the bytes, so each of these says "this file", never "try again": decode
# turns every one into ImageError, which the worker answers at once (tests/test_imageio_hostile.py fuzzes it).
FILE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, struct.error,
               zlib.error, ZeroDivisionError, OverflowError, MemoryError, RuntimeError)


def _read(data: bytes, max_pixels: int) -> Image.Image:
    """`decode`'s work, every step of which may meet the file's damage: decode classifies what it raises."""
    im = Image.open(io.BytesIO(data))  # reads the header only (and the PNG chunks before the pixels)
    w, h = im.size
    if w * h > max_pixels:
        raise ImageError("image.too_large", f"the image is too large ({w}×{h}, limit {max_pixels // 1_000_000} MP)",
                         width=w, height=h, limit_mp=max_pixels // 1_000_000)
    if min(w, h) < MIN_SIDE:
        raise ImageError("image.too_small", f"the image is too small ({w}×{h})", width=w, height=h)
    animated = getattr(im, "n_frames", 1) > 1  # counting frames reads the file
    im.seek(0)
    im.load()
    im = ImageOps.exif_transpose(im)  # also takes the orientation it applied out of the EXIF
    out = _to_8bit(im)
    exif = im.info.get("exif")
    if animated:
        out.info["paintbot_animated"] = True
    if exif:
        out.info["exif"] = exif
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


def encode(img: Image.Image, fmt: str = "JPEG", quality: int = 92, made_from: Image.Image | None = None) -> bytes:
    """`img` as JPEG, PNG or WebP. `made_from`: the decoded photo a model turned into `img`; the file
    then carries the AI digital source type (XMP) and that photo's EXIF less its GPS position."""
    buf = io.BytesIO()
    fmt = fmt.upper()
    metadata = _ai_metadata(fmt, made_from) if made_from is not None else {}
    if fmt in ("JPEG", "JPG"):
        img.convert("RGB").save(buf, "JPEG", quality=quality, subsampling=0 if quality >= 95 else 2, **metadata)
    elif fmt == "PNG":
        img.save(buf, "PNG", compress_level=3, **metadata)
    elif fmt == "WEBP":
        img.save(buf, "WEBP", quality=quality, **metadata)
    else:
        raise ValueError(f"cannot encode as {fmt}: use JPEG, PNG or WebP")
    return buf.getvalue()


def _ai_metadata(fmt: str, source: Image.Image) -> dict:
    """Pillow's save arguments that label a result as AI-modified and keep its photo's EXIF (no GPS)."""
    if fmt == "PNG":  # Pillow writes PNG's XMP as the iTXt chunk readers look for
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", AI_XMP)
        metadata = {"pnginfo": info}
    else:
        metadata = {"xmp": AI_XMP.encode()}
    exif = kept_exif(source.info.get("exif"))
    if exif:
        metadata["exif"] = exif
    return metadata


def kept_exif(raw: bytes | None) -> bytes | None:
    """The EXIF a result keeps from its photo (date, camera, exposure): a fresh copy without the GPS
    position, the orientation or the maker's notes. None when there is none, or too much to keep."""
    if not raw:
        return None
    source = Image.Exif()
    try:
        source.load(raw)
        camera = {tag: value for tag, value in source.get_ifd(ExifTags.IFD.Exif).items()
                  if tag not in _DROPPED_CAMERA_TAGS}
    except (OSError, SyntaxError, ValueError, struct.error):  # damaged EXIF: not worth a failed result
        return None
    kept = Image.Exif()
    for tag, value in source.items():
        if tag not in _DROPPED_TAGS and tag != ExifTags.IFD.Exif:
            kept[tag] = value
    if camera:
        kept[ExifTags.IFD.Exif] = camera
    data = kept.tobytes() if len(kept) else None
    return data if data and len(data) <= MAX_EXIF_BYTES else None


def open_path(path: str | Path) -> Image.Image:
    return decode(Path(path).read_bytes())


# What paintbot reads when it looks through a folder (`paintbot colorize DIR`, `paintbot eval`).
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".tif", ".tiff", ".bmp")
SUFFIX_FORMATS = {".png": "PNG", ".webp": "WEBP", ".jpg": "JPEG", ".jpeg": "JPEG"}


def format_for(path: str | Path) -> str:
    """The format a file name asks for; ValueError names the ones paintbot writes."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIX_FORMATS:
        raise ValueError(f"cannot write {suffix or 'a file without a suffix'} ({path}): name it .jpg, .png or .webp")
    return SUFFIX_FORMATS[suffix]


def save_path(img: Image.Image, path: str | Path, made_from: Image.Image | None = None) -> None:
    """Write `img` in the format its suffix names (.jpg, .png, .webp); `made_from` as for `encode`."""
    Path(path).write_bytes(encode(img, format_for(path), quality=95, made_from=made_from))
