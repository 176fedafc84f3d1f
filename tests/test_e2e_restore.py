"""/restore and the Repair button end to end (issue 23): the real bot and worker, real Redis, the fake Bot API.

The worker's repair engine runs with stand-in weights (tests/standins.py `repair_files`): a scratch detector
whose output is calibrated so that a flat photo has no damage and one with bright scratches does (random
weights detect nothing real; this only makes "clean" and "damaged" two inputs the test can choose), and LaMa
built from spandrel's own architecture. What is checked is paintbot's part: one job, one result, the
caption, black and white kept or colourised, a file for a file, an album for an album, Repair offered only
on a damaged photo, and a tap on it restoring the photo that was sent.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

from bot.contract import records
from bot.contract.options import EngineInfo
from bot.contract.texts import render
from tests.harness import chroma

USER = 8301


def scratched_photo(w: int = 256, h: int = 192, seed: int = 0, fmt: str = "JPEG") -> bytes:
    """An old black-and-white photo: soft shapes, and bright scratches across it."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = 0.45 + 0.2 * np.sin(x / 23.0) * np.cos(y / 29.0)
    pic = Image.fromarray((img * 255).astype(np.uint8), "L")
    draw = ImageDraw.Draw(pic)
    for _ in range(4):
        x0, x1 = rng.integers(0, w, 2)
        draw.line([(int(x0), 0), (int(x1), h - 1)], fill=250, width=2)
    buf = io.BytesIO()
    pic.save(buf, fmt)
    return buf.getvalue()


def flat_photo(w: int = 256, h: int = 192, fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    Image.new("L", (w, h), 120).save(buf, fmt)
    return buf.getvalue()


def _result(tg, chat) -> dict:
    (msg,) = [m for m in tg.bot_messages(chat["id"]) if "photo" in m or "document" in m]
    return msg


def _picture(tg, msg: dict) -> Image.Image:
    media = msg["photo"][-1] if "photo" in msg else msg["document"]
    with tg._lock:
        return Image.open(io.BytesIO(tg._files[media["file_id"]].data))


def _actions(msg: dict) -> dict[str, str]:
    rows = (msg.get("reply_markup") or {}).get("inline_keyboard", [])
    return {b["callback_data"].rsplit(":", 1)[1]: b["callback_data"] for row in rows for b in row}


def _run(service, jobs: int = 1) -> None:
    service.wait_queued(jobs)
    service.run_worker()


def test_restore_in_a_private_chat_repairs_then_colourises(service):
    tg = service.telegram
    chat = tg.private_chat(USER)
    tg.user_sends_photo(chat, scratched_photo(), caption="/restore")
    _run(service)
    msg = _result(tg, chat)
    caption = msg["caption"]
    restorer = service.runtime.engines.defaults["restore"]
    colorizer = service.runtime.engines.defaults["colorize"]
    assert restorer.label in caption and colorizer.label in caption, caption
    assert render("caption.restore_colorized", engine=colorizer.label) in caption
    assert caption.startswith(render("caption.restore", count=0, engine="")[:20]), "damage was found and repaired"
    out = _picture(tg, msg)
    assert out.size == (256, 192)
    assert chroma(out).mean() > 1, "the black-and-white photo was colourised after its repair"
    assert set(_actions(msg)) == {"paint", "ba"}


def test_restore_nocolor_in_a_group_keeps_it_black_and_white(service):
    tg = service.telegram
    group = tg.group_chat(-1008300)
    photo = tg.user_sends_photo(group, scratched_photo(seed=1), user=tg.user(USER))
    tg.user_sends_text(group, "/restore nocolor", user=tg.user(USER), reply_to=photo["message_id"])
    _run(service)
    msg = _result(tg, group)
    assert msg["reply_to_message"]["message_id"] == photo["message_id"]
    assert render("caption.restore_colorized", engine="")[:10] not in msg["caption"]
    assert chroma(_picture(tg, msg)).max() < 3, "nocolor: the repaired photo stays black and white"


def test_a_file_comes_back_as_a_file_at_full_resolution(service):
    tg = service.telegram
    chat = tg.private_chat(USER + 1)
    tg.user_sends_document(chat, scratched_photo(300, 200, seed=2, fmt="PNG"), "grandma.png", "image/png",
                           caption="/restore nocolor")
    _run(service)
    msg = _result(tg, chat)
    assert "document" in msg and msg["document"]["file_name"] == "grandma_restored.png"
    out = _picture(tg, msg)
    assert out.size == (300, 200) and out.format == "PNG"


def test_an_album_comes_back_as_one_album(service):
    tg = service.telegram
    chat = tg.private_chat(USER + 2)
    tg.user_sends_album(chat, [scratched_photo(200 + 16 * i, 150, seed=i) for i in range(3)], caption="/restore")
    _run(service)
    (call,) = tg.wait_for("sendMediaGroup", timeout=60)
    media = call.params["media"]
    assert len(media) == 3 and [m["type"] for m in media] == ["photo"] * 3
    assert service.runtime.engines.defaults["restore"].label in media[0]["caption"]


def test_repair_is_offered_on_a_damaged_photo_only_and_restores_it(service):
    tg = service.telegram
    chat = tg.private_chat(USER + 3)
    tg.user_sends_photo(chat, flat_photo())
    _run(service)
    clean = _result(tg, chat)
    assert "repair" not in _actions(clean), "never offer to repair a clean photo"

    tg.reset()
    damaged_chat = tg.private_chat(USER + 4)
    sent = tg.user_sends_photo(damaged_chat, scratched_photo(seed=3))
    _run(service)
    result = _result(tg, damaged_chat)
    assert render("caption.colorize", engine="")[:12] in result["caption"]
    repair = _actions(result)["repair"]
    tg.user_presses_button(damaged_chat, result["message_id"], repair, user=tg.user(USER + 4))
    _run(service)
    restored = [m for m in tg.bot_messages(damaged_chat["id"]) if "photo" in m][-1]
    assert restored["message_id"] != result["message_id"]
    assert service.runtime.engines.defaults["restore"].label in restored["caption"]
    assert restored["reply_to_message"]["message_id"] == result["message_id"]
    assert _picture(tg, restored).size == Image.open(io.BytesIO(scratched_photo(seed=3))).size
    assert sent["message_id"] != restored["message_id"]


def test_without_a_worker_that_repairs_restore_says_so(bot_service):
    tg, conn = bot_service.telegram, bot_service.redis
    records.publish(conn, [EngineInfo("eccv16", "colorize", "ECCV", default=True)], ["vangogh"])
    chat = tg.private_chat(USER + 5)
    tg.user_sends_photo(chat, scratched_photo(), caption="/restore")
    (answer,) = tg.wait_for("sendMessage", timeout=20)
    assert answer.params["text"] == render("restore.unavailable")
    assert bot_service.queued() == 0


def test_a_small_photo_is_enlarged_unless_noup_says_not(engines_with, tmp_path):
    """/restore's upscale step (issue 24) runs where the worker has the upscaler's files, on a photo smaller
    than UPSCALE_BELOW; `noup` keeps the size. The caption says what was done. (Faces: no GFPGAN files on this
    worker, so that step is skipped, and the caption does not claim it.)"""
    from models.restore import upscale
    from tests.enhance_standins import write_compact

    files = {wf.remote.filename: write_compact(tmp_path / wf.remote.filename, seed=i)
             for i, wf in enumerate((upscale.GENERAL, upscale.WDN))}
    service = engines_with(files)
    tg = service.telegram
    chat = tg.private_chat(USER + 6)
    tg.user_sends_photo(chat, scratched_photo(seed=4), caption="/restore")
    _run(service)
    msg = _result(tg, chat)
    assert _picture(tg, msg).size == (512, 384), "enlarged 2x"
    assert render("caption.restore_upscaled", scale=2) in msg["caption"]
    assert render("caption.restore_faces", count=1)[:12] not in msg["caption"]
    tg.reset()
    chat = tg.private_chat(USER + 7)
    tg.user_sends_photo(chat, scratched_photo(seed=5), caption="/restore noup")
    _run(service)
    msg = _result(tg, chat)
    assert _picture(tg, msg).size == (256, 192) and render("caption.restore_upscaled", scale=2) not in msg["caption"]
    # "Enhance" under a colourised small photo: faces and resolution, no repair, then colour.
    tg.reset()
    chat = tg.private_chat(USER + 8)
    tg.user_sends_photo(chat, flat_photo())
    _run(service)
    result = _result(tg, chat)
    enhance = _actions(result)["enhance"]
    assert "repair" not in _actions(result)
    tg.user_presses_button(chat, result["message_id"], enhance, user=tg.user(USER + 8))
    _run(service)
    enhanced = [m for m in tg.bot_messages(chat["id"]) if "photo" in m][-1]
    assert _picture(tg, enhanced).size == (512, 192 * 2) and render("caption.restore_upscaled", scale=2) in \
        enhanced["caption"]
    assert render("caption.restore_clean", engine="")[:15] in enhanced["caption"], "nothing repaired: not asked"


def _faces_files(tmp_path, detector: dict) -> dict:
    """GFPGAN (a constant-image stand-in) and RetinaFace (`detector`) weight files, as engines_with takes them."""
    from models.restore import faces
    from tests.enhance_standins import constant_gfpgan, write_gfpgan, write_retinaface

    return {faces.GFPGAN.remote.filename: write_gfpgan(tmp_path / faces.GFPGAN.remote.filename, constant_gfpgan()),
            faces.RETINAFACE.remote.filename: write_retinaface(tmp_path / faces.RETINAFACE.remote.filename, detector)}


def test_faces_are_restored_and_a_large_photo_with_faces_offers_enhance(engines_with, tmp_path):
    """/restore's faces step through the bot (issue 24), with a detector that finds exactly one face in any
    photo and a GFPGAN whose face is flat grey: the caption says one face was restored, and the face's square
    is changed. A large photo (no enlargement to offer) is offered "Enhance" because a face is there, and the
    tap restores that face."""
    from tests.enhance_standins import one_face_retinaface

    service = engines_with(_faces_files(tmp_path, one_face_retinaface()))
    tg = service.telegram
    chat = tg.private_chat(USER + 9)
    tg.user_sends_photo(chat, scratched_photo(seed=6), caption="/restore noup norepair nocolor")
    _run(service)
    msg = _result(tg, chat)
    assert render("caption.restore_faces", count=1) in msg["caption"], msg["caption"]
    before = np.asarray(Image.open(io.BytesIO(scratched_photo(seed=6))).convert("L"), np.float32)
    after = np.asarray(_picture(tg, msg).convert("L"), np.float32)
    assert after.shape == before.shape and np.abs(after - before).max() > 40, "the face was pasted back"
    tg.reset()
    chat = tg.private_chat(USER + 10)
    tg.user_sends_photo(chat, scratched_photo(1800, 1200, seed=7))
    _run(service)
    result = _result(tg, chat)
    assert "enhance" in _actions(result), "no enlargement to offer, but a face to restore"
    tg.user_presses_button(chat, result["message_id"], _actions(result)["enhance"], user=tg.user(USER + 10))
    _run(service)
    enhanced = [m for m in tg.bot_messages(chat["id"]) if "photo" in m or "document" in m][-1]
    assert render("caption.restore_faces", count=1) in enhanced["caption"]
    assert _picture(tg, enhanced).size == (1800, 1200), "large: not enlarged"


def test_a_large_photo_without_faces_is_not_offered_enhance(engines_with, tmp_path):
    from tests.enhance_standins import blind_retinaface

    service = engines_with(_faces_files(tmp_path, blind_retinaface()))
    tg = service.telegram
    chat = tg.private_chat(USER + 11)
    tg.user_sends_photo(chat, scratched_photo(1800, 1200, seed=8))
    _run(service)
    assert "enhance" not in _actions(_result(tg, chat)), "nothing Enhance would change"
    tg.reset()
    chat = tg.private_chat(USER + 12)
    tg.user_sends_photo(chat, scratched_photo(seed=9))
    _run(service)
    assert "enhance" in _actions(_result(tg, chat)), "a small photo: Enhance would enlarge it"


def test_a_result_over_sendphotos_10_mb_goes_as_a_file():
    """One rule for every send path (worker/stages.py `as_file`): sides Telegram refuses, or more bytes than
    sendPhoto takes (the fake Bot API refuses those as Telegram does: PHOTO_SAVE_FILE_INVALID)."""
    from bot.contract.job import Job, Op
    from tests.fake_telegram import MAX_PHOTO_BYTES
    from worker import stages

    grain = Image.fromarray(np.random.default_rng(0).integers(0, 256, (3000, 4400, 3), dtype=np.uint8))
    job = Job(Op.RESTORE, 1, 2, 2, "F")
    data, as_document, name = stages.encode(job, grain, grain, b"\xff\xd8", "old.jpg", "restored")
    assert as_document and name == "old_restored.jpg"
    small = grain.resize((400, 260))
    data, as_document, _ = stages.encode(job, small, small, b"\xff\xd8", "old.jpg", "restored")
    assert not as_document and len(data) <= MAX_PHOTO_BYTES
    assert stages.PHOTO_MAX_BYTES == MAX_PHOTO_BYTES
