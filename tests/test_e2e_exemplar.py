""""Colour it like this one" end to end: a colour photo captioned /colorize, replying to a black-and-white
photo (private and group, photos and files), through the fake Bot API, real Redis and the real worker;
and `paintbot colorize OLD --like REF`."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from tests.harness import chroma, gray_photo


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def scene(w: int = 160, h: int = 120) -> Image.Image:
    """A red left half and a blue right half with texture: colour to take and structure to match."""
    rng = np.random.default_rng(3)
    rgb = np.zeros((h, w, 3))
    rgb[:, : w // 2] = (200, 40, 40)
    rgb[:, w // 2:] = (40, 60, 200)
    rgb += rng.normal(0, 12, (h, w, 1))
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")


def test_reply_with_a_colour_photo_captioned_colorize(service):
    tg = service.telegram
    chat = tg.private_chat(701)
    old = tg.user_sends_photo(chat, _png(scene().convert("L")))
    tg.wait_for("sendMessage")  # a photo alone in private: colourised as usual
    group = tg.group_chat(-100702)
    old_file = tg.user_sends_document(group, _png(scene().convert("L")), file_name="grandma.png",
                                      mime_type="image/png", user=tg.user(70))
    tg.user_sends_photo(chat, _png(scene()), caption="/colorize", reply_to=old["message_id"])
    tg.user_sends_document(group, _png(scene()), file_name="today.png", mime_type="image/png", user=tg.user(70),
                           caption=f"/colorize@{tg.bot_username}", reply_to=old_file["message_id"])
    tg.wait_for("sendMessage", count=3)
    service.wait_queued(3)
    service.run_worker()
    photos, documents = tg.calls("sendPhoto"), tg.calls("sendDocument")
    liked = next(c for c in photos if c.reply_to == old["message_id"] and c.chat_id == 701 and
                 chroma(Image.open(io.BytesIO(tg.sent_file(c)))).mean() > 20)
    out = np.asarray(Image.open(io.BytesIO(tg.sent_file(liked))).convert("RGB"), dtype=float)
    assert out[:, :60, 0].mean() > out[:, :60, 2].mean() + 30  # red where the reference is red
    assert out[:, -60:, 2].mean() > out[:, -60:, 0].mean() + 30  # blue where it is blue
    assert "captioned /colorize" in liked.params["caption"]  # says which photo the colours came from
    (as_file,) = documents
    assert as_file.reply_to == old_file["message_id"]  # a file in, a file out (lossless: PNG in, PNG out)
    assert Image.open(io.BytesIO(tg.sent_file(as_file))).format == "PNG"


def test_gray_reference_and_missing_reference_are_explained(service):
    tg = service.telegram
    chat = tg.private_chat(703)
    old = tg.user_sends_document(chat, _png(scene().convert("L")), file_name="old.png", mime_type="image/png")
    tg.wait_for("sendMessage")
    tg.user_sends_document(chat, _png(scene().convert("L")), file_name="also_gray.png", mime_type="image/png",
                           caption="/colorize", reply_to=old["message_id"])
    tg.wait_for("sendMessage", count=2)
    service.wait_queued(2)
    service.run_worker()
    texts = [c.params["text"] for c in tg.calls("editMessageText")] + [c.params["text"] for c in tg.calls("sendMessage")]
    assert any("no colour to take" in t for t in texts), texts
    tg.user_sends_text(chat, "/colorize exemplar", reply_to=old["message_id"])
    reply = tg.wait_for("sendMessage", count=3)[-1]
    assert "colour photo captioned /colorize" in reply.params["text"]


def test_cli_like(tmp_path):
    from models.cli import main

    old, ref, out = tmp_path / "old.png", tmp_path / "ref.png", tmp_path / "new.png"
    scene().convert("L").save(old)
    scene().save(ref)
    assert main(["colorize", str(old), "--like", str(ref), "-o", str(out)]) == 0
    rgb = np.asarray(Image.open(out), dtype=float)
    assert Image.open(out).size == (160, 120) and rgb[:, :60, 0].mean() > rgb[:, :60, 2].mean() + 30


def test_an_album_with_one_reference_is_coloured_alike(service):
    """A colour photo captioned /colorize, replying to one photo of an album, colours the whole album
    like itself: one job, one album back, every picture red where the reference is red."""
    import time

    tg = service.telegram
    group = tg.group_chat(-100705)
    sizes = [(160, 120), (176, 120), (192, 120)]
    sent = tg.user_sends_album(group, [_png(scene(w, h).convert("L")) for w, h in sizes], user=tg.user(71))
    deadline = time.monotonic() + 10
    while not service.redis.keys("paintbot:album:-100705:*"):  # a group's album alone is no request
        assert time.monotonic() < deadline, "the album was not remembered"
        time.sleep(0.05)
    tg.user_sends_photo(group, _png(scene()), caption=f"/colorize@{tg.bot_username}", user=tg.user(72),
                        reply_to=sent[1]["message_id"])
    service.wait_queued(1)
    service.run_worker()
    (album,) = tg.wait_for("sendMediaGroup", timeout=60)
    assert album.reply_to == sent[1]["message_id"] and not tg.calls("sendPhoto")
    assert "captioned /colorize" in album.params["media"][0]["caption"]
    for m, (w, h) in zip(album.params["media"], sizes):
        out = np.asarray(Image.open(io.BytesIO(album.files[m["media"].removeprefix("attach://")].data)).convert("RGB"),
                         dtype=float)
        assert out.shape[:2] == (h, w)
        assert out[:, :60, 0].mean() > out[:, :60, 2].mean() + 30  # red where the reference is red
        assert out[:, -60:, 2].mean() > out[:, -60:, 0].mean() + 30  # blue where it is blue
