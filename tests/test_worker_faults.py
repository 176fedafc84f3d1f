"""The worker under real faults: Telegram errors, bad files, slow jobs, repeated delivery."""

import io
import os
import threading
import time

import numpy as np
import pytest
import redis
from PIL import Image

from bot.contract import keys
from bot.contract.job import Job
from tests.fake_telegram import DOWNLOAD
from tests.harness import gray_photo


def _one_result(tg, method="sendPhoto"):
    calls = tg.calls(method)
    assert len(calls) == 1, f"{len(calls)} results delivered"
    return calls[0]


def _send_and_process(service, chat_id=4000, **photo_kw):
    tg = service.telegram
    chat = tg.private_chat(chat_id)
    photo = tg.user_sends_photo(chat, photo_kw.pop("data", gray_photo(160, 120)), **photo_kw)
    tg.wait_for("sendMessage", chat_id=chat_id)
    service.wait_queued(1)
    service.run_worker()
    return photo


def test_flood_limit_429_is_waited_out(service):
    tg = service.telegram
    tg.fail("sendPhoto", 429, "Too Many Requests: retry after 2", retry_after=2)
    t = time.monotonic()
    _send_and_process(service)
    assert time.monotonic() - t >= 2
    attempts = tg.calls("sendPhoto", ok_only=False)
    assert [c.status for c in attempts] == [429, 200]
    assert attempts[1].at - attempts[0].at >= 2, "retry_after honoured, no tight loop"


def test_server_errors_are_retried_with_backoff(service):
    tg = service.telegram
    tg.fail("sendPhoto", 502, "Bad Gateway", times=2)
    tg.fail("getFile", 500, "Internal Server Error")
    _send_and_process(service)
    _one_result(tg)
    assert [c.status for c in tg.calls("sendPhoto", ok_only=False)] == [502, 502, 200]


def _job_left_nothing(service) -> None:
    """No retry pending, nothing failed for RQ to keep, and the user's slot given back."""
    from rq import Queue

    q = Queue("paintbot", connection=service.redis)
    assert q.count == 0 and q.failed_job_registry.count == 0 and len(q.scheduled_job_registry) == 0
    assert not service.redis.keys("paintbot:inflight:*")


@pytest.mark.parametrize("method,status,description,told", [
    ("getFile", 400, "Bad Request: file is too big", "too big for me"),
    ("getFile", 400, "Bad Request: wrong file_id or the file is temporarily unavailable", "no longer get that photo"),
    (DOWNLOAD, 404, "Not Found", "no longer get that photo"),  # the file_path expired
    ("sendPhoto", 400, "Bad Request: PHOTO_INVALID_DIMENSIONS", "went wrong"),
    ("sendPhoto", 413, "Request Entity Too Large", "went wrong"),  # a 4xx python-telegram-bot has no class for
])
def test_permanent_errors_end_the_job_at_once(service, method, status, description, told):
    """A 4xx is Telegram's final word: one attempt, one explanation, no retry by the worker or by RQ."""
    tg = service.telegram
    tg.fail(method, status, description, times=10)
    _send_and_process(service)
    assert len(tg.calls(method, ok_only=False)) == 1, "not retried"
    (text,) = [m["text"] for m in tg.bot_messages(4000)]
    assert told in text, text
    _job_left_nothing(service)


@pytest.mark.parametrize("where", ["absolute", "dotdot", "relative"])
def test_file_paths_outside_the_bot_api_are_never_read_from_disk(service, tmp_path, where):
    """python-telegram-bot reads a getFile path that names a file on this machine from the disk: a hostile
    Bot API could have the worker send its own files. Only the Bot API's file root is fetched, over HTTP."""
    tg = service.telegram
    secret = tmp_path / "secret.png"
    Image.new("L", (64, 48), 77).save(secret)
    path = {"absolute": str(secret), "dotdot": os.path.relpath(secret),
            "relative": "README.md"}[where]  # the last exists in the worker's working directory
    assert os.path.isfile(path)
    chat = tg.private_chat(4010)
    photo = tg.user_sends_photo(chat, gray_photo())
    tg.answer_file_path(photo["photo"][-1]["file_id"], path)
    tg.wait_for("sendMessage", chat_id=4010)
    service.wait_queued(1)
    service.run_worker()
    assert not tg.calls("sendPhoto") and not tg.calls("sendDocument")
    (text,) = [m["text"] for m in tg.bot_messages(4010)]
    assert "no longer get that photo" in text
    fetched = [c.params["file_path"] for c in tg.calls(DOWNLOAD, ok_only=False)]
    assert fetched == (["README.md"] if where == "relative" else []), "over HTTP, or not at all"
    _job_left_nothing(service)


def test_user_blocked_the_bot_ends_quietly(service):
    tg = service.telegram
    tg.fail("sendPhoto", 403, "Forbidden: bot was blocked by the user", times=10)
    _send_and_process(service)
    assert len(tg.calls("sendPhoto", ok_only=False)) == 1, "no retries into a blocked chat"
    assert not tg.calls("sendMessage", chat_id=4000)[1:], "no apology into a blocked chat"
    from rq import Queue
    q = Queue("paintbot", connection=service.redis)
    assert q.count == 0 and q.failed_job_registry.count == 0 and len(q.scheduled_job_registry) == 0


def test_photo_deleted_meanwhile_result_still_delivered(service):
    tg = service.telegram
    chat = tg.private_chat(4001)
    photo = tg.user_sends_photo(chat, gray_photo())
    tg.wait_for("sendMessage", chat_id=4001)
    service.wait_queued(1)
    tg._chats[4001].messages.pop(photo["message_id"])  # the user deleted it before the worker ran
    service.run_worker()
    sent = _one_result(tg)
    assert sent.params["reply_parameters"]["allow_sending_without_reply"] is True


def _doc_reply(service, data, name, mime, chat_id):
    tg = service.telegram
    tg.user_sends_document(tg.private_chat(chat_id), data, file_name=name, mime_type=mime)
    tg.wait_for("sendMessage", chat_id=chat_id)
    service.wait_queued(1)
    service.run_worker()
    return [c.params["text"] for c in tg.calls("editMessageText", chat_id=chat_id)]


def _png(img):
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("data,name,mime,needle", [
    (b"just some text", "notes.jpg", "image/jpeg", "isn't an image"),
    (b"", "empty.png", "image/png", "empty"),
    (_png(Image.effect_noise((300, 200), 64))[:3000], "cut.png", "image/png", "damaged"),
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 100, "IMG_0001.HEIC", "image/heic", "HEIC"),
])
def test_unusable_files_get_a_clear_reply(service, data, name, mime, needle):
    texts = _doc_reply(service, data, name, mime, 4100)
    assert any(needle in t for t in texts), texts
    assert not service.telegram.calls("sendDocument")


def test_result_file_name_has_no_invisible_characters(service):
    """The result is named after the user's file: right-to-left overrides and zero-width characters in
    that name are not echoed back (an override makes "photo<RLO>gnp.exe" read "photoexe.png")."""
    _doc_reply(service, _png(Image.new("L", (64, 48), 90)), "old\u202egnp.exe\u200b.png", "image/png", 4105)
    sent = _one_result(service.telegram, "sendDocument")
    assert next(iter(sent.files.values())).filename == "oldgnp.exe_colorized.png"


def test_decompression_bomb_is_refused(service):
    from tests.test_imageio import _png_bomb

    texts = _doc_reply(service, _png_bomb(20000, 20000), "bomb.png", "image/png", 4101)
    assert any("too large" in t or "too many pixels" in t for t in texts), texts


def test_animated_gif_first_frame_and_a_note(service):
    frames = [Image.new("L", (64, 48), v) for v in (40, 200)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    _doc_reply(service, buf.getvalue(), "anim.gif", "image/gif", 4102)
    sent = _one_result(service.telegram, "sendDocument")
    assert "first frame" in sent.params["caption"]


@pytest.mark.parametrize("img", [
    Image.new("CMYK", (90, 60), (0, 0, 0, 100)),
    Image.fromarray((np.arange(90 * 60).reshape(60, 90) * 12).astype(np.uint16)),
    Image.new("LA", (90, 60), (120, 255)),
    Image.new("L", (2000, 20), 128),  # extreme aspect ratio
])
def test_unusual_images_are_colourised(service, img):
    buf = io.BytesIO()
    img.save(buf, "JPEG" if img.mode == "CMYK" else "PNG")
    _doc_reply(service, buf.getvalue(), "odd." + ("jpg" if img.mode == "CMYK" else "png"), "image/png", 4103)
    out = Image.open(io.BytesIO(service.telegram.sent_file(_one_result(service.telegram, "sendDocument"))))
    assert out.size == img.size


def test_too_slow_job_is_stopped_and_user_told(service):
    from dataclasses import replace

    from worker.main import make_worker

    tg = service.telegram
    group = tg.group_chat(-100400)
    photo = tg.user_sends_photo(group, gray_photo(128, 128), user=tg.user(44))
    tg.user_sends_text(group, "/style vangogh hq", user=tg.user(44), reply_to=photo["message_id"])
    tg.wait_for("sendMessage", chat_id=group["id"])
    service.wait_queued(1)
    from rq import Queue
    from rq.serializers import JSONSerializer

    (job,) = Queue("paintbot", connection=service.redis, serializer=JSONSerializer).jobs
    job.timeout = 4  # the operation's time limit, made small: gatys at this size needs far longer
    job.save()
    make_worker(replace(service.settings), service.redis).work(burst=True)
    texts = [c.params["text"] for c in tg.calls("editMessageText", chat_id=group["id"])]
    assert any("took too long" in t for t in texts), texts
    assert not tg.calls("sendPhoto")


def test_same_job_run_twice_delivers_once(service):
    """An RQ retry after a worker died right after sending must not send a second result."""
    from worker.tasks import run_job

    tg = service.telegram
    chat = tg.private_chat(4200)
    photo = tg.user_sends_photo(chat, gray_photo())
    tg.wait_for("sendMessage", chat_id=4200)
    service.wait_queued(1)
    service.redis.delete("rq:queue:paintbot")  # run it by hand instead
    payload = Job("colorize", 4200, photo["message_id"], photo["message_id"], photo["photo"][-1]["file_id"],
                  False, user_id=4200).to_dict()
    assert run_job(payload) == "ok"
    run_job(payload)
    _one_result(tg)


def test_results_to_one_chat_respect_the_flood_limit(service):
    """Three results for one private chat leave at least a second apart (Telegram: ~1 message/s per chat)."""
    tg = service.telegram
    chat = tg.private_chat(4300)
    for i in range(3):
        tg.user_sends_photo(chat, gray_photo(64, 48, seed=i))
        tg.wait_for("sendMessage", count=i + 1, chat_id=4300)
    service.wait_queued(3)
    service.run_worker()
    times = [c.at for c in tg.calls("sendPhoto")]
    assert len(times) == 3
    assert all(b - a >= 0.95 for a, b in zip(times, times[1:])), times


def test_a_flood_slot_reserved_far_ahead_is_kept_until_it_passes(redis_url):
    """A group whose send slot is taken for a minute (senders queued behind each other): the next reservation
    takes the slot after it, and the key must live until then. It lived one interval (4 s), so every sender
    after that went at once, into Telegram's flood limit (CI caught it: a slow job's status message reserved
    first, and the result behind it went unheld)."""
    from worker.telegram import GROUP_INTERVAL, FloodGate

    conn = redis.Redis.from_url(redis_url)
    chat = -4310
    conn.set(keys.flood(chat), str(time.time() + 60), px=65_000)
    given_up = threading.Event()
    given_up.set()
    assert FloodGate(conn).wait(chat, given_up) is False  # reserved the slot after the busy one, then gave up
    assert float(conn.get(keys.flood(chat))) > time.time() + 60 + GROUP_INTERVAL - 5
    assert conn.pttl(keys.flood(chat)) > (60 + GROUP_INTERVAL - 5) * 1000

def test_heic_photo_is_colourised(service):
    buf = io.BytesIO()
    Image.new("RGB", (120, 80), (90, 90, 90)).save(buf, "HEIF", quality=90)
    _doc_reply(service, buf.getvalue(), "IMG_0002.HEIC", "image/heic", 4104)
    out = Image.open(io.BytesIO(service.telegram.sent_file(_one_result(service.telegram, "sendDocument"))))
    assert out.size == (120, 80)


def test_in_a_forum_topic_every_message_of_a_job_stays_in_its_topic(service):
    """Workers sent no message_thread_id: in a forum topic whose photo was deleted before the result (so no
    reply carries the topic), the result landed in General. The job records the topic it came from, and every
    message and chat action of the worker carries it: a photo's and an album's."""
    tg = service.telegram
    forum = tg.group_chat(-100950, forum=True)
    photo = tg.user_sends_photo(forum, gray_photo(), user=tg.user(50), topic=77)
    tg.user_sends_text(forum, "/colorize", user=tg.user(50), reply_to=photo["message_id"], topic=77)
    tg.wait_for("sendMessage", chat_id=forum["id"])
    service.wait_queued(1)
    tg._chats[forum["id"]].messages.pop(photo["message_id"])  # deleted before the worker ran
    service.run_worker()
    tg.user_sends_album(forum, [gray_photo(seed=i) for i in range(2)], caption="/colorize", user=tg.user(50),
                        topic=78)
    tg.wait_for("sendMessage", count=2, chat_id=forum["id"])
    service.wait_queued(1)
    service.run_worker()
    (single,) = tg.calls("sendPhoto", chat_id=forum["id"])
    (album,) = tg.calls("sendMediaGroup", chat_id=forum["id"])
    assert int(single.params["message_thread_id"]) == 77 and int(album.params["message_thread_id"]) == 78
    actions = tg.calls("sendChatAction", chat_id=forum["id"])
    assert actions and all(a.params.get("message_thread_id") in (77, 78, "77", "78") for a in actions)
    shown = tg.bot_messages(forum["id"])  # what members see: the results (and the album's buttons), each in its topic
    assert shown and all(m.get("message_thread_id") in (77, 78) for m in shown), shown


def test_text_chunk_bomb_is_answered_at_once_and_not_retried(service):
    """A 50 KB PNG whose text chunk inflates to 50 MB makes Pillow raise a bare ValueError: a file's fault,
    told at once as a damaged image, never retried by RQ (which held the user's slot for 41 s of retries)."""
    from bot.contract.texts import render
    from tests.test_imageio_hostile import text_chunk_bomb

    tg = service.telegram
    t = time.monotonic()
    _doc_reply(service, text_chunk_bomb(b"iTXt"), "scan.png", "image/png", 4106)
    assert time.monotonic() - t < 15
    damaged = render("image.damaged", "en")
    assert [m["text"] for m in tg.bot_messages(4106)] == [damaged], "answered once, in the status message"
    assert len(tg.calls(DOWNLOAD, ok_only=False)) == 1, "downloaded once: not retried"
    assert not tg.calls("sendPhoto") and not tg.calls("sendDocument")
    _job_left_nothing(service)


def test_a_group_upgraded_to_a_supergroup_meanwhile_gets_its_result_there(service):
    """A group that became a supergroup while its photo waited (Telegram answers 400 with
    `migrate_to_chat_id`) got nothing: the move was taken as a final refusal, and the result and the apology
    both went to the old id. The worker follows the move once; the result's reactions and buttons belong to
    the supergroup it landed in."""
    from bot.contract import keys
    from bot.contract.texts import render

    tg = service.telegram
    group = tg.group_chat(-960, supergroup=False)
    photo = tg.user_sends_photo(group, gray_photo(), user=tg.user(60))
    tg.user_sends_text(group, "/colorize", user=tg.user(60), reply_to=photo["message_id"])
    tg.wait_for("sendMessage", chat_id=group["id"])
    service.wait_queued(1)
    supergroup = tg.migrate(group, -1000960)
    service.run_worker()
    refused = [c for c in tg.calls(chat_id=group["id"], ok_only=False) if c.status == 400]
    assert refused and all("upgraded to a supergroup" in c.description for c in refused), "told once, followed"
    assert not tg.calls("sendPhoto", chat_id=group["id"])
    (sent,) = tg.calls("sendPhoto", chat_id=supergroup["id"])
    result = next(m for m in tg.bot_messages(supergroup["id"]) if "photo" in m)
    assert service.redis.get(keys.result_engine(supergroup["id"], result["message_id"])) is not None
    more = next(b["callback_data"] for row in result["reply_markup"]["inline_keyboard"] for b in row
                if b["callback_data"].endswith(":more"))
    tg.user_presses_button(supergroup, result["message_id"], more, user=tg.user(60))
    (answer,) = tg.wait_for("answerCallbackQuery")
    assert answer.params.get("text") == render("followup.working"), "the buttons work in the supergroup"
    assert not [c for c in tg.calls("sendMessage") if "went wrong" in c.params.get("text", "")]


def test_openmp_threads_sleep_unless_the_operator_chose():
    """A shared host (issue 28): the worker sets a short OpenMP spin before torch is first imported (libgomp
    reads it once, when torch loads it), and leaves an operator's own choice alone."""
    import subprocess
    import sys

    probe = ("import sys, worker.main as m; assert 'torch' not in sys.modules, 'torch loaded before the policy'; "
             "import os; print(m.wait_policy(os.environ)); import torch; print(os.environ.get('GOMP_SPINCOUNT'))")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["GOMP_SPINCOUNT=10000", "10000"]
    from worker.main import wait_policy

    assert wait_policy({"OMP_WAIT_POLICY": "PASSIVE"}) == "OMP_WAIT_POLICY=PASSIVE"
    assert wait_policy({"GOMP_SPINCOUNT": "300000"}) == "GOMP_SPINCOUNT=300000"


def test_compiled_kernels_are_kept_under_the_model_cache_or_else_in_the_temporary_folder(tmp_path):
    """torch.compile's kernels (the race of models/runtime.py) outlive a restart where the model cache is writable;
    where it is not (compose and Kubernetes mount it read-only) they go to the temporary folder; an operator's own
    TORCHINDUCTOR_CACHE_DIR stays."""
    import tempfile
    from pathlib import Path

    from worker.main import compile_cache

    env: dict = {}
    assert compile_cache(env, tmp_path) == env["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "inductor")
    assert (tmp_path / "inductor").is_dir()
    blocked = tmp_path / "a file"
    blocked.write_text("")  # nothing can be made under it, as under a read-only mount (which root could not bypass)
    env = {}
    assert compile_cache(env, blocked) == str(Path(tempfile.gettempdir()) / "paintbot-inductor")
    env = {"TORCHINDUCTOR_CACHE_DIR": "/srv/kernels"}
    assert compile_cache(env, tmp_path) == "/srv/kernels"
