"""Whatever people send: decoded safely to 8-bit L/RGB, or refused with a sentence they can act on."""

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import ExifTags, Image

from models.imageio import AI_SOURCE_TYPE, ImageError, decode, encode, save_path


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _png(w: int, h: int, bit_depth: int, color_type: int, rows) -> bytes:
    """A PNG written by hand (PIL cannot write 48-bit RGB, nor stream a 400 MP image): rows are raw bytes."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    z = zlib.compressobj(9)
    body = b"".join(z.compress(b"\x00" + row) for row in rows) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def _png_bomb(w: int, h: int) -> bytes:
    """A valid 1-bit grayscale PNG of w x h black pixels: a few tens of KB on disk."""
    row = b"\x00" * ((w + 7) // 8)
    return _png(w, h, 1, 0, (row for _ in range(h)))


def test_grayscale_and_rgb_pass_through():
    g = Image.fromarray((np.arange(64 * 48) % 256).astype(np.uint8).reshape(48, 64), "L")
    out = decode(_save(g, "PNG"))
    assert out.mode == "L" and out.size == (64, 48) and np.array_equal(np.asarray(out), np.asarray(g))
    assert decode(_save(g.convert("RGB"), "JPEG")).mode == "RGB"


def test_rgba_and_palette_transparency_on_white():
    rgba = Image.new("RGBA", (20, 10), (255, 0, 0, 0))
    assert decode(_save(rgba, "PNG")).getpixel((0, 0)) == (255, 255, 255)
    p = Image.new("P", (20, 10), 1)
    p.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    out = decode(_save(p, "PNG"))
    assert out.mode == "RGB" and out.getpixel((3, 3)) == (10, 200, 30)
    p.info["transparency"] = 1
    assert decode(_save(p, "PNG", transparency=1)).getpixel((3, 3)) == (255, 255, 255)


def test_sixteen_bit_is_scaled_not_clipped():
    arr = (np.linspace(0, 65535, 32 * 16).reshape(16, 32)).astype(np.uint16)
    out = decode(_save(Image.fromarray(arr), "PNG"))
    a = np.asarray(out)
    assert out.mode == "L" and a.min() == 0 and a.max() == 255 and len(np.unique(a)) > 200


def test_48_bit_png_and_32_bit_gray_are_scaled():
    rgb16 = np.zeros((8, 16, 3), dtype=">u2")
    rgb16[..., 0] = np.linspace(0, 65535, 16, dtype=np.uint16)  # red ramp over the full 16-bit range
    out = decode(_png(16, 8, 16, 2, (r.tobytes() for r in rgb16)))
    a = np.asarray(out)
    assert out.mode == "RGB" and a[0, 0, 0] == 0 and a[0, -1, 0] == 255 and a[0, 8, 0] in (136, 137)
    i32 = Image.fromarray(np.linspace(0, 65535, 16 * 8).reshape(8, 16).astype(np.int32), "I")
    out = decode(_save(i32, "TIFF"))
    assert out.mode == "L" and np.asarray(out).max() == 255


def test_gray_with_alpha_on_white():
    la = Image.merge("LA", (Image.new("L", (10, 10), 0), Image.new("L", (10, 10), 0)))
    assert decode(_save(la, "PNG")).getpixel((5, 5)) == (255, 255, 255)


def test_cmyk_jpeg():
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # red
    r, g, b = decode(_save(cmyk, "JPEG")).getpixel((8, 8))
    assert r > 200 and g < 60 and b < 60


def test_exif_orientation_applied():
    img = Image.new("L", (40, 20), 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    out = decode(_save(img, "JPEG", exif=exif))
    assert out.size == (20, 40)


def test_animated_gif_uses_first_frame():
    frames = [Image.new("L", (16, 16), v) for v in (10, 200)]
    data = _save(frames[0], "GIF", save_all=True, append_images=frames[1:])
    out = decode(data)
    assert out.info.get("paintbot_animated") is True
    assert abs(np.asarray(out.convert("L")).mean() - 10) < 3


@pytest.mark.parametrize("data,code", [
    (b"", "image.empty"),
    (b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n", "image.unreadable"),
    (b"hello, this is a text file", "image.unreadable"),
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "image.heic"),
])
def test_not_images(data, code):
    with pytest.raises(ImageError) as err:
        decode(data)
    assert err.value.code == code and "\n" not in str(err.value)


def test_truncated_and_corrupt():
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8))
    jpeg = _save(img, "JPEG")
    with pytest.raises(ImageError, match="damaged"):
        decode(jpeg[: len(jpeg) // 2])
    png = _save(img, "PNG")
    with pytest.raises(ImageError):
        decode(png[:200] + b"\x00" * 50 + png[250:])
    frames = [Image.fromarray(np.random.default_rng(i).integers(0, 255, (64, 64), dtype=np.uint8)) for i in range(3)]
    gif = _save(frames[0], "GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageError, match="damaged"):
        decode(gif[: len(gif) // 4])


def test_decompression_bomb_refused_before_allocating():
    data = _png_bomb(20000, 20000)
    assert len(data) < 100_000
    t = time.perf_counter()
    with pytest.raises(ImageError, match="too large|too many pixels"):
        decode(data)
    assert time.perf_counter() - t < 1.0, "refused from the header, without decoding 400 MP"


def test_max_pixels_is_the_callers_limit():
    data = _save(Image.new("L", (100, 100)), "PNG")
    with pytest.raises(ImageError, match="too large") as err:
        decode(data, max_pixels=5_000)
    assert err.value.code == "image.too_large" and err.value.params == {"width": 100, "height": 100, "limit_mp": 0}
    assert decode(data, max_pixels=10_000).size == (100, 100)


def test_extreme_aspect_ratio_and_tiny():
    assert decode(_save(Image.new("L", (4000, 10)), "PNG")).size == (4000, 10)
    with pytest.raises(ImageError, match="too small"):
        decode(_save(Image.new("L", (4000, 2)), "PNG"))


def test_encode_round_trip():
    img = Image.new("RGB", (30, 20), (10, 20, 30))
    assert Image.open(io.BytesIO(encode(img, "PNG"))).getpixel((0, 0)) == (10, 20, 30)
    assert Image.open(io.BytesIO(encode(img, "JPEG"))).format == "JPEG"


def test_heic_photo_decodes():
    img = Image.new("RGB", (64, 48), (200, 100, 50))
    data = _save(img, "HEIF", quality=95)
    assert data[4:12] == b"ftypheic"
    out = decode(data)
    assert out.size == (64, 48) and out.mode == "RGB"
    r, g, b = out.getpixel((10, 10))
    assert abs(r - 200) < 12 and abs(g - 100) < 12 and abs(b - 50) < 12


def _camera_photo(fmt: str, mode: str) -> bytes:
    """A portrait photo as a phone stores it: landscape pixels, orientation 6, camera, dates and GPS."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make], exif[ExifTags.Base.Model] = "Zeiss", "Ikon 35"
    exif[ExifTags.Base.DateTime] = "1962:07:14 10:20:30"
    exif[ExifTags.Base.Orientation] = 6
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "1962:07:14 10:20:30"
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.MakerNote] = b"serial 0042"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef], gps[ExifTags.GPS.GPSLatitude] = "N", (48.0, 51.0, 24.0)
    gps[ExifTags.GPS.GPSLongitudeRef], gps[ExifTags.GPS.GPSLongitude] = "E", (2.0, 21.0, 3.0)
    return _save(Image.new(mode, (60, 40), 128), fmt, exif=exif)


def _as_a_model_would(img: Image.Image) -> Image.Image:
    """A new image of the same size, without the photo's metadata (as every engine returns)."""
    return Image.new("RGB", img.size, (180, 120, 60))


@pytest.mark.parametrize("photo_fmt,mode", [("JPEG", "L"), ("PNG", "RGBA"), ("JPEG", "CMYK")])
@pytest.mark.parametrize("out_fmt", ["JPEG", "PNG", "WEBP"])
def test_results_say_ai_made_them_keep_the_camera_and_lose_the_position(photo_fmt, mode, out_fmt):
    photo = decode(_camera_photo(photo_fmt, mode))
    assert photo.size == (40, 60)  # upright: the orientation was applied
    result = Image.open(io.BytesIO(encode(_as_a_model_would(photo), out_fmt, made_from=photo)))
    assert result.format == out_fmt and result.size == (40, 60)
    description = result.getxmp()["xmpmeta"]["RDF"]["Description"]  # parsed by defusedxml
    assert description["DigitalSourceType"] == AI_SOURCE_TYPE and description["CreatorTool"] == "paintbot"
    exif = result.getexif()
    assert (exif[ExifTags.Base.Make], exif[ExifTags.Base.Model]) == ("Zeiss", "Ikon 35")
    assert exif[ExifTags.Base.DateTime] == "1962:07:14 10:20:30"
    camera = exif.get_ifd(ExifTags.IFD.Exif)
    assert camera[ExifTags.Base.DateTimeOriginal] == "1962:07:14 10:20:30"
    assert ExifTags.Base.MakerNote not in camera
    assert ExifTags.IFD.GPSInfo not in exif and not exif.get_ifd(ExifTags.IFD.GPSInfo)
    assert ExifTags.Base.Orientation not in exif  # a viewer must not turn the upright result again
    raw = result.info.get("exif") or b""
    assert b"Zeiss" in raw and b"serial" not in raw


def test_only_results_are_labelled_and_photos_without_exif_get_none():
    plain = decode(_save(Image.new("L", (30, 20), 90), "JPEG"))
    result = Image.open(io.BytesIO(encode(_as_a_model_would(plain), "JPEG", made_from=plain)))
    assert result.getxmp()["xmpmeta"]["RDF"]["Description"]["DigitalSourceType"] == AI_SOURCE_TYPE
    assert not result.getexif()
    sheet = Image.open(io.BytesIO(encode(_as_a_model_would(plain), "JPEG")))  # no photo behind it
    assert not sheet.getxmp() and not sheet.getexif()


@pytest.mark.parametrize("suffix,fmt", [(".webp", "WEBP"), (".png", "PNG"), (".JPG", "JPEG"), (".jpeg", "JPEG")])
def test_save_path_writes_the_format_its_name_asks_for(tmp_path, suffix, fmt):
    path = tmp_path / f"out{suffix}"
    save_path(Image.new("RGB", (20, 10), "red"), path)
    assert Image.open(path).format == fmt


def test_save_path_refuses_a_format_it_cannot_write(tmp_path):
    with pytest.raises(ValueError, match=r"cannot write \.gif .*\.jpg, \.png or \.webp"):
        save_path(Image.new("RGB", (20, 10)), tmp_path / "out.gif")
    assert not (tmp_path / "out.gif").exists()
