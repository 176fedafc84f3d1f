"""Hostile and broken files: `decode` ends every one in an image or an ImageError, never another exception.

Why it matters: decoding is a pure function of the bytes, so any other exception would be read by the
worker as a passing fault and retried (holding the user's slot for the retries' whole back-off) before the
user hears "something went wrong", when the truth is "that file is damaged" and can be said at once.
"""

import io
import random
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from models.imageio import ImageError, decode


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def text_chunk_bomb(tag: bytes = b"zTXt", inflated: int = 50_000_000) -> bytes:
    """A valid 16x16 PNG carrying a compressed text chunk (zTXt, or iTXt holding XMP) that inflates to
    `inflated` bytes: about 50 KB on disk, with a correct CRC, so only the inflating gives it away."""
    buf = io.BytesIO()
    Image.new("L", (16, 16), 128).save(buf, "PNG")
    png = buf.getvalue()
    payload = zlib.compress(b"\0" * inflated, 9)
    body = (b"Comment\0\0" if tag == b"zTXt" else b"XML:com.adobe.xmp\0\x01\x00\0\0") + payload
    at = png.index(b"IDAT") - 4  # before the image data, where readers meet it while opening
    return png[:at] + _chunk(tag, body) + png[at:]


@pytest.mark.parametrize("tag", [b"zTXt", b"iTXt"])
def test_text_chunk_bomb_is_a_damaged_image_at_once(tag):
    data = text_chunk_bomb(tag)
    assert len(data) < 60_000
    t = time.monotonic()
    with pytest.raises(ImageError) as caught:
        decode(data)
    assert time.monotonic() - t < 2, "refused quickly, without inflating 50 MB"
    assert caught.value.code == "image.damaged"


def _seeds() -> list[bytes]:
    """Small valid files of each format people send, made with Pillow."""
    rng = np.random.default_rng(7)
    rgb = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), "RGB")
    gray = rgb.convert("L")
    out = []
    for img, fmt, kw in [(rgb, "JPEG", {"quality": 80}), (gray, "JPEG", {"progressive": True}),
                         (rgb, "PNG", {}), (gray.convert("P"), "PNG", {"transparency": 0}),
                         (rgb, "WEBP", {"quality": 70}), (rgb, "WEBP", {"lossless": True}),
                         (rgb.convert("P"), "GIF", {"save_all": True, "append_images": [gray.convert("P")]}),
                         (rgb, "TIFF", {"compression": "tiff_lzw"}), (gray, "TIFF", {}),
                         (rgb, "PNG", {"save_all": True, "append_images": [rgb.rotate(90)]})]:  # APNG
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        out.append(buf.getvalue())
    out.append(text_chunk_bomb(inflated=2_000_000))
    return out


def _mutate(rnd: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    b = bytearray(data)
    for _ in range(rnd.randint(1, 3)):
        how = rnd.randrange(5)
        if how == 0:  # flip bytes, mostly near the start where the headers are
            for _ in range(rnd.randint(1, 8)):
                i = min(int(rnd.expovariate(1 / 60)), len(b) - 1)
                b[i] = rnd.randrange(256)
        elif how == 1:  # truncate
            del b[rnd.randint(8, max(9, len(b) - 1)):]
        elif how == 2:  # splice another file's tail in
            other = rnd.choice(seeds)
            b[rnd.randrange(len(b)):] = other[rnd.randrange(len(other)):]
        elif how == 3:  # insert garbage, or a chunk-like block of it
            junk = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 40)))
            if rnd.random() < 0.5:
                junk = struct.pack(">I", rnd.choice([0, len(junk), 0x7FFFFFFF, 0xFFFFFFFF])) + junk
            i = rnd.randrange(len(b))
            b[i:i] = junk
        else:  # big numbers where sizes and counts live
            i = rnd.randrange(min(len(b), 200))
            b[i:i + 4] = rnd.choice([b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x00\x00\x00", b"\x80\x00\x00\x01"])
    return bytes(b)


def test_fuzzed_files_end_in_an_image_or_an_image_error():
    rnd = random.Random(20240622)
    seeds = _seeds()
    images = refused = 0
    t = time.monotonic()
    for n in range(600):
        data = _mutate(rnd, seeds[n % len(seeds)], seeds)
        try:
            out = decode(data)
        except ImageError:
            refused += 1
        except Exception as exc:  # noqa: BLE001 -- what this test exists to find
            pytest.fail(f"case {n} (seed file {n % len(seeds)}): {type(exc).__name__}: {exc}")
        else:
            assert out.mode in ("L", "RGB")
            images += 1
    assert images and refused, (images, refused)
    assert time.monotonic() - t < 20
