"""What the bot answers and queues, before any worker runs (real bot, fake Bot API, real Redis)."""

import json

from tests.harness import gray_photo


def _queued_jobs(svc) -> list[dict]:
    """The JSON payloads on the queue (RQ's JSON serializer: no pickle anywhere)."""
    from rq.job import Job
    from rq.serializers import JSONSerializer

    out = []
    for job_id in svc.redis.lrange("rq:queue:paintbot", 0, -1):
        job = Job.fetch(job_id.decode(), connection=svc.redis, serializer=JSONSerializer)
        out.append({"func": job.func_name, "payload": job.args[0]})
    return out


def test_photo_is_queued_as_ids_only(bot_service):
    tg = bot_service.telegram
    chat = tg.private_chat(501)
    photo = tg.user_sends_photo(chat, gray_photo())
    (status,) = tg.wait_for("sendMessage")
    assert status.params["text"].startswith("Queued — position 1")
    assert status.reply_to == photo["message_id"]
    bot_service.wait_queued(1)
    (job,) = _queued_jobs(bot_service)
    assert job["func"] == "worker.tasks.run_job"
    p = job["payload"]
    assert p["op"] == "colorize" and p["chat_id"] == 501 and p["reply_to"] == photo["message_id"]
    assert p["file_id"] == photo["photo"][-1]["file_id"] and p["as_document"] is False
    assert p["status_message_id"] is not None and p["user_id"] == 501
    blob = json.dumps(p)
    assert tg.token not in blob


def test_non_image_file_is_refused_politely(bot_service):
    tg = bot_service.telegram
    tg.user_sends_document(tg.private_chat(502), b"%PDF-1.4 ...", file_name="scan.pdf", mime_type="application/pdf")
    (reply,) = tg.wait_for("sendMessage")
    assert "doesn't look like an image" in reply.params["text"]
    assert bot_service.queued() == 0


def test_file_over_download_limit_is_refused_before_download(bot_service):
    tg = bot_service.telegram
    tg.user_sends_document(tg.private_chat(503), None, file_name="huge.png", mime_type="image/png",
                           file_size=25 * 1024 * 1024)
    (reply,) = tg.wait_for("sendMessage")
    assert "too big" in reply.params["text"]
    assert bot_service.queued() == 0 and not tg.calls("getFile")


def test_group_photo_without_command_and_commands_for_other_bots_are_ignored(bot_service):
    tg = bot_service.telegram
    group = tg.group_chat(-100900)
    photo = tg.user_sends_photo(group, gray_photo(), user=tg.user(9))
    tg.user_sends_text(group, "/colorize@SomeOtherBot", user=tg.user(9), reply_to=photo["message_id"])
    tg.user_sends_text(group, "/help", user=tg.user(9))
    (reply,) = tg.wait_for("sendMessage")  # only /help is answered
    assert "colour" in reply.params["text"]
    assert bot_service.queued() == 0
    assert len(tg.calls("sendMessage")) == 1
