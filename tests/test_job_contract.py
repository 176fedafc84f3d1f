"""The job contract across versions: during a rolling upgrade the new bot's jobs meet old workers and
the old bot's jobs meet new workers. Real job dicts, run through a real worker and the fake Bot API."""

from __future__ import annotations

import io

from PIL import Image
from rq import Queue
from rq.serializers import JSONSerializer

from bot.contract.job import TASK, Job
from bot.contract.options import ColorizeOptions, StyleOptions
from tests.harness import gray_photo

# The fields of a job as the previous release (0.1) defines them: its workers build `Job(**d)`, so a
# job this bot enqueues may carry no other top-level field.
PREVIOUS_RELEASE_FIELDS = {"op", "chat_id", "request_id", "reply_to", "file_id", "as_document", "user_id",
                           "status_message_id", "file_name", "options"}


def _photo_in_group(service, chat_id: int) -> tuple[dict, dict]:
    """A photo posted in a group without a command: the bot ignores it, so the test enqueues by hand."""
    tg = service.telegram
    group = tg.group_chat(chat_id)
    return group, tg.user_sends_photo(group, gray_photo(160, 120), user=tg.user(41))


def _run(service, payload: dict) -> None:
    q = Queue(service.settings.queue_name, connection=service.redis, serializer=JSONSerializer)
    q.enqueue(TASK, payload, job_id=f"pb-{payload['chat_id']}-{payload['request_id']}")
    service.run_worker()


def test_a_job_from_the_previous_release_runs_here(service):
    group, photo = _photo_in_group(service, -100501)
    old = {  # exactly what the 0.1 bot enqueued for "/style vangogh 60 keep-colors hq"
        "op": "style", "chat_id": group["id"], "request_id": photo["message_id"], "reply_to": photo["message_id"],
        "file_id": photo["photo"][-1]["file_id"], "as_document": False, "user_id": 41, "status_message_id": None,
        "file_name": None, "options": {"style": "vangogh", "strength": 60, "keep_colors": True, "hq": False}}
    job = Job.from_dict(old)
    assert job.options == StyleOptions("vangogh", 0.6, True, None)
    assert Job.from_dict({**old, "options": {**old["options"], "hq": True}}).options.engine == "hq"  # -> gatys
    _run(service, old)
    (sent,) = service.telegram.calls("sendPhoto")
    assert sent.reply_to == photo["message_id"]
    assert sent.params["caption"].startswith("Repainted by AI after “The Starry Night”")  # no language: English


def test_a_job_from_a_newer_bot_runs_here(service):
    group, photo = _photo_in_group(service, -100502)
    newer = {"op": "colorize", "chat_id": group["id"], "request_id": photo["message_id"],
             "reply_to": photo["message_id"], "file_id": photo["photo"][-1]["file_id"], "as_document": False,
             "album_id": "13762", "priority": 2,  # fields a later release added
             "options": {"engine": None, "intensity": 120, "tone": "sepia"}}  # and an option it added
    job = Job.from_dict(newer)
    assert job.options == ColorizeOptions(None, 120) and job.user_id is None  # missing fields: their defaults
    _run(service, newer)
    (sent,) = service.telegram.calls("sendPhoto")
    out = Image.open(io.BytesIO(service.telegram.sent_file(sent)))
    assert out.size == (160, 120)


def test_what_this_bot_enqueues_the_previous_release_can_run():
    custom = Job(op="style", chat_id=5, request_id=7, reply_to=6, file_id="F", as_document=True, user_id=5,
                 options=StyleOptions(None, 0.35, True, "adain"), reference_file_id="STYLE", lang="pt")
    for job in (custom, Job(op="colorize", chat_id=5, request_id=8, reply_to=8, file_id="F", as_document=False),
                Job(op="styles", chat_id=5, request_id=9, reply_to=9, file_id=None, as_document=False, lang="de")):
        d = job.to_dict()
        assert set(d) <= PREVIOUS_RELEASE_FIELDS, set(d) - PREVIOUS_RELEASE_FIELDS
        assert Job.from_dict(d) == job  # and this release reads its own jobs back unchanged
    opts = custom.to_dict()["options"]  # read by 0.1 as: style name or style_file_id, strength in percent
    assert opts["style_file_id"] == "STYLE" and opts["strength"] == 35 and opts["keep_colors"] is True
    assert opts["lang"] == "pt"  # the language rides inside options too (0.1 ignores it: English)


def test_the_requesters_language_reaches_the_worker(service):
    group, photo = _photo_in_group(service, -100503)
    job = Job(op="colorize", chat_id=group["id"], request_id=photo["message_id"], reply_to=photo["message_id"],
              file_id=photo["photo"][-1]["file_id"], as_document=False, lang="de")
    _run(service, job.to_dict())
    (sent,) = service.telegram.calls("sendPhoto")
    assert sent.params["caption"].startswith("Von KI koloriert")


def test_an_album_job_travels_inside_options():
    """An album's pictures ride inside options: the previous release builds the job from the top-level
    fields and answers its first picture; this release reads every picture back, in order."""
    from bot.contract.job import AlbumItem

    album = (AlbumItem(11, "F1"), AlbumItem(12, "F2", "b.png"), AlbumItem(13, "F3"))
    job = Job(op="colorize", chat_id=5, request_id=11, reply_to=11, file_id="F1", as_document=True, album=album)
    d = job.to_dict()
    assert set(d) <= PREVIOUS_RELEASE_FIELDS and d["file_id"] == "F1"
    assert d["options"]["album"] == [{"message_id": 11, "file_id": "F1"},
                                     {"message_id": 12, "file_id": "F2", "file_name": "b.png"},
                                     {"message_id": 13, "file_id": "F3"}]
    assert Job.from_dict(d) == job and Job.from_dict(d).album == album
    single = Job(op="colorize", chat_id=5, request_id=8, reply_to=8, file_id="F", as_document=False)
    assert "album" not in single.to_dict()["options"] and Job.from_dict(single.to_dict()).album is None
