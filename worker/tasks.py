"""The job RQ runs: download, decode, engine, encode, reply, tidy the status message.

The job names its engine (or leaves it to the worker's default); the engine is looked up in the
worker's registry and run through its family's one call shape (worker/stages.py), so no engine is
named here. The stages after the download are shared with albums (worker/albums.py).
Every way a job can end is handled here and answered in the chat exactly once: delivered; the
user's input was unusable, or Telegram will not give us the photo (told why, from the error's
code); the model is not available here (told); the chat is gone (nobody to tell); Telegram
refused a request for good (told, not retried); took too long (told); anything else (retried by
RQ, the user told when retries run out).
"""

from __future__ import annotations

import functools
import logging

import redis

from rq import get_current_job
from rq.timeouts import JobTimeoutException

from bot.contract import followups, paintings, readiness
from bot.contract.job import Job, Op
from bot.contract.records import release
from bot.contract.texts import render, render_error
from models.errors import InputError
from models.fetch import FetchError
from models.progress import reporting
from worker import albums, metrics, results, runtime
from worker.progress import Progress
from worker.stages import Timings, as_file, caption, deliver, encode, finish_status, run_engine, working
from worker.telegram import ChatGone, Rejected, Sent

log = logging.getLogger("paintbot.worker")


def _last_attempt() -> bool:
    current = get_current_job()
    return current is None or not current.retries_left


def run_job(payload: dict) -> str:
    rt = runtime.current()
    job = Job.from_dict(payload)
    readiness.started(rt.redis, job.job_id)
    timings = Timings()
    outcome = "error"
    status = None
    try:
        # A queued job's "Queued" becomes "Colourising…" now.
        computes = job.op.family is not None  # /styles and before/after are ready at once
        status = Progress(rt, job.chat_id, job.reply_to, _starting(job), job.status_message_id, job.thread_id,
                          post_after=None if computes else float("inf"), announce=computes)
        outcome = _process(rt, job, timings, status)
        return outcome
    except ChatGone:
        outcome = "chat_gone"
        return outcome
    except JobTimeoutException:
        outcome = "timeout"
        _tell(rt, finish_status(job, status), render("timed_out", job.lang))
        return outcome
    except InputError as exc:  # the photo, the reference, the model or style named: told why
        log.info("job=%s unusable input: %s", job.job_id, exc)
        outcome = "bad_input"
        _tell(rt, finish_status(job, status), render_error(exc, job.lang))
        return outcome
    except Rejected as exc:  # the same request would be refused again: no retry
        log.warning("job=%s refused by Telegram: %s", job.job_id, exc)
        outcome = "rejected"
        _tell(rt, finish_status(job, status), render("failed", job.lang))
        return outcome
    except Exception:
        if _last_attempt():
            _tell(rt, finish_status(job, status), render("failed", job.lang))
            outcome = "failed"
        else:
            outcome = "retry"
        raise
    finally:
        if status is not None and status.finish() and status.posted and outcome == "retry":
            rt.telegram.delete(job.chat_id, status.message_id)  # the retry shows its own if it runs long
        if outcome != "retry":
            release(rt.redis, job)
        metrics.JOBS.labels(job.op, outcome).inc()
        for stage, seconds in timings.times.items():
            metrics.STAGE_SECONDS.labels(stage).observe(seconds)
        log.info("job=%s op=%s chat=%s outcome=%s %s", job.job_id, job.op, job.chat_id, outcome, timings)


def _starting(job: Job) -> str:
    """A job's status message as it starts (an album's counts its pictures done, unlike the bot's)."""
    if job.album:
        return render("album.progress", job.lang, working=working(job), done=0, count=len(job.album))
    return working(job)


def on_job_failure(rq_job, connection, exc_type, exc_value, tb) -> None:
    """RQ's failure callback. `run_job` answers its own failures; this covers the one it cannot:
    its worker was killed mid-job (RQ finds the job abandoned). Told once, when no retry is left."""
    from rq.exceptions import AbandonedJobError

    if exc_type is not AbandonedJobError or rq_job.retries_left:
        return
    job = Job.from_dict(rq_job.args[0])
    log.warning("job=%s op=%s chat=%s outcome=abandoned (its worker died; no retries left)",
                job.job_id, job.op, job.chat_id)
    release(connection, job)
    _tell(runtime.current(), job, render("failed", job.lang))


def _tell(rt: runtime.Runtime, job: Job, text: str) -> None:
    """The one apology/explanation for a job: in the status message if there is one, else a reply."""
    try:
        if job.status_message_id and rt.telegram.edit_text(job.chat_id, job.status_message_id, text):
            return
        rt.telegram.send_text(job.chat_id, text, reply_to=job.reply_to, thread_id=job.thread_id)
    except ChatGone:
        pass
    except Exception:
        log.exception("could not tell chat %s: %r", job.chat_id, text)


def _process(rt: runtime.Runtime, job: Job, timings: Timings, status: Progress) -> str:
    from models import color, imageio

    tg = rt.telegram
    if job.op is Op.STYLES:
        job = finish_status(job, status)
        sheet, as_document = _styles_sheet(rt.models.styles_dir, rt.models.cache_dir)
        text = render("styles.caption", job.lang, names=paintings.catalogue(_preset_names(), job.lang))
        quote = job.reply_to if job.chat_id < 0 else None  # a private chat (positive id) needs no quote
        deliver(rt, job, lambda: [tg.send_image(job.chat_id, quote, sheet, as_document, "styles.jpg",
                                                caption=text, thread_id=job.thread_id)])
        return "ok"
    if job.op is Op.COMPARE:
        return _compare(rt, job, timings, status)

    try:
        engine = rt.engines.get(job.options.engine, job.op.family, reference=bool(job.reference_file_id))
    except FetchError as exc:  # its files cannot be had on this worker: a retry would not help
        log.error("job=%s model unavailable: %s", job.job_id, exc)
        said = "engine.unavailable" if job.options.engine else f"{job.op.family}.unavailable"  # a named one, or all
        _tell(rt, job, render(said, job.lang))
        return "unavailable"
    if job.status_message_id:  # it waited in line (`status` made "Queued" "Colourising…")
        tg.chat_action(job.chat_id, "upload_document" if job.as_document else "upload_photo", job.thread_id)
    # else the bot showed a chat action as it enqueued, and a long job gets a status message from `status`
    if job.album:
        return albums.process(rt, job, timings, status, engine)
    data = tg.download(job.file_id)
    reference = tg.download(job.reference_file_id) if job.reference_file_id else None
    timings.done("download")
    img = imageio.decode(data)
    second = imageio.decode(reference) if reference is not None else None
    timings.done("decode")
    if job.op is Op.COLORIZE and job.options.if_gray and second is None and color.is_colour_photo(img):
        return _in_colour(rt, job, status, engine)

    text = working(job)
    with reporting(lambda f: status.show(render("working.percent", job.lang, working=text, percent=round(100 * f)))):
        made = run_engine(rt, engine, job, img, second)
    timings.done("model")

    encoded, as_document, filename = encode(job, made.image, img, data, job.file_name, made.suffix)
    timings.done("encode")
    rid, keyboard = results.buttons(rt, job, made.damaged, made.enhance)
    job = finish_status(job, status)
    said = caption(job, engine.label, animated=bool(img.info.get("paintbot_animated")), made=made)
    sent = deliver(rt, job, lambda: [tg.send_image(job.chat_id, job.reply_to, encoded, as_document, filename,
                                                   caption=said, reply_markup=keyboard, thread_id=job.thread_id)],
                   engine.name)
    results.keep(rt, job, engine, rid, sent[0] if sent else None, made)
    timings.done("send")
    return "ok"


def _in_colour(rt: runtime.Runtime, job: Job, status: Progress, engine) -> str:
    """A photo sent to be colourised is in colour already: not recoloured silently, but asked about, with
    buttons (bot/contract/followups.py `in_colour_keyboard`) answered from a record whose result is the photo."""
    log.info("job=%s: the photo is in colour already; asked what to do", job.job_id)
    job = finish_status(job, status)
    rid = followups.new_id() if rt.settings.result_cache_ttl > 0 else None
    keyboard = followups.in_colour_keyboard(rid, job.lang, results.published_engines(rt)) if rid else None
    if rid is not None:
        try:
            followups.remember(rt.redis, rid, followups.Followup.of(job, engine.name, job.file_id, job.file_unique_id),
                               rt.settings.result_cache_ttl, owner=job.user_id)
        except redis.RedisError as exc:
            log.warning("job=%s: the question's buttons were not kept (%s)", job.job_id, type(exc).__name__)
            keyboard = None
    deliver(rt, job, lambda: [Sent(rt.telegram.send_text(job.chat_id, render("colour.already", job.lang),
                                                         reply_to=job.reply_to, reply_markup=keyboard,
                                                         thread_id=job.thread_id), None, None)])
    return "in_colour"


def _compare(rt: runtime.Runtime, job: Job, timings: Timings, status: Progress) -> str:
    """The before/after picture of a result: the photo (file_id) and the result (reference_file_id)."""
    from models import imageio, sheet

    rt.telegram.chat_action(job.chat_id, "upload_photo", job.thread_id)
    before = imageio.decode(rt.telegram.download(job.file_id))
    after = imageio.decode(rt.telegram.download(job.reference_file_id))
    timings.done("download")
    picture = sheet.before_after(before, after, render("compare.before", job.lang), render("compare.after", job.lang))
    timings.done("model")
    job = finish_status(job, status)
    data, text = imageio.encode(picture, "JPEG", quality=90), render("caption.compare", job.lang)
    as_document = as_file(picture.size, nbytes=len(data))  # a thin result makes a sheet Telegram refuses as a photo
    deliver(rt, job, lambda: [rt.telegram.send_image(job.chat_id, job.reply_to, data, as_document,
                                                     "before_after.jpg", caption=text, thread_id=job.thread_id)])
    timings.done("send")
    return "ok"


def _preset_names() -> list[str]:
    from models.style import presets

    return presets.names()


@functools.cache
def _styles_sheet(styles_dir, cache_dir) -> tuple[bytes, bool]:
    """The /styles picture, and whether it goes as a file (worker/stages.py `as_file`): the presets never
    change while a worker runs, so draw it once."""
    from models import imageio
    from models.config import ModelConfig
    from models.style import presets

    sheet = presets.contact_sheet(ModelConfig(styles_dir=styles_dir, cache_dir=cache_dir))
    data = imageio.encode(sheet, "JPEG", quality=90)
    return data, as_file(sheet.size, nbytes=len(data))
