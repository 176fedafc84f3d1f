"""The job RQ runs: download, decode, engine, encode, reply, tidy the status message.

The job names its engine (or leaves it to the worker's default); the engine is looked up in the
worker's registry and run through its family's one call shape, so no engine is named here.
Every way a job can end is handled here and answered in the chat exactly once: delivered; the
user's input was unusable, or Telegram will not give us the photo (told why, from the error's
code); the model is not available here (told); the chat is gone (nobody to tell); Telegram
refused a request for good (told, not retried); took too long (told); anything else (retried by
RQ, the user told when retries run out).
"""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path

import redis
from rq import get_current_job
from rq.timeouts import JobTimeoutException

from bot import captions, readiness
from bot.jobs import Job
from bot.options import shown
from bot.queue import record_result, release
from bot.texts import render, render_error
from models.errors import InputError
from models.fetch import FetchError
from models.progress import reporting
from worker import albums, chain, metrics, results, runtime
from worker.progress import Progress
from worker.telegram import ChatGone, Rejected, Sent

log = logging.getLogger("paintbot.worker")

DELIVERED_TTL = 7 * 24 * 3600
PHOTO_MAX_SIDES = 10000  # sendPhoto: width + height at most 10000, ratio at most 20
PHOTO_MAX_RATIO = 20


class Stages:
    """Wall time of each stage of one job, for the job's log line."""

    def __init__(self):
        self.times: dict[str, float] = {}
        self._t = time.perf_counter()

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.times[name] = now - self._t
        self._t = now

    def __str__(self) -> str:
        return " ".join(f"{k}={v:.3f}s" for k, v in self.times.items())


def _last_attempt() -> bool:
    current = get_current_job()
    return current is None or not current.retries_left


def run_job(payload: dict) -> str:
    rt = runtime.current()
    job = Job.from_dict(payload)
    readiness.started(rt.redis, job.job_id)
    stages = Stages()
    outcome = "error"
    status = None
    try:
        # A queued job's "Queued" becomes "Colourising…" now.
        working = job.op in ("colorize", "style")  # /styles and before/after are ready at once
        status = Progress(rt, job.chat_id, job.reply_to, _starting(job), job.status_message_id,
                          post_after=None if working else float("inf"), announce=working)
        outcome = _process(rt, job, stages, status)
        return outcome
    except ChatGone:
        outcome = "chat_gone"
        return outcome
    except JobTimeoutException:
        outcome = "timeout"
        _tell(rt, _with_status(job, status), render("timed_out", job.lang))
        return outcome
    except InputError as exc:  # the photo, the reference, the model or style named: told why
        log.info("job=%s unusable input: %s", job.job_id, exc)
        outcome = "bad_input"
        _tell(rt, _with_status(job, status), render_error(exc, job.lang))
        return outcome
    except Rejected as exc:  # the same request would be refused again: no retry
        log.warning("job=%s refused by Telegram: %s", job.job_id, exc)
        outcome = "rejected"
        _tell(rt, _with_status(job, status), render("failed", job.lang))
        return outcome
    except Exception:
        if _last_attempt():
            _tell(rt, _with_status(job, status), render("failed", job.lang))
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
        for stage, seconds in stages.times.items():
            metrics.STAGE_SECONDS.labels(stage).observe(seconds)
        log.info("job=%s op=%s chat=%s outcome=%s %s", job.job_id, job.op, job.chat_id, outcome, stages)


def _working(job: Job) -> str:
    """What a job's status message says while it runs."""
    if job.album:
        return render(f"album.{job.op}", job.lang, count=len(job.album))
    return render("working.colorize" if job.op == "colorize" else "working.style", job.lang)


def _starting(job: Job) -> str:
    """A job's status message as it starts (an album's counts its pictures done, unlike the bot's)."""
    if job.album:
        return render("album.progress", job.lang, working=_working(job), done=0, count=len(job.album))
    return _working(job)


def _with_status(job: Job, status: Progress | None) -> Job:
    """`job` with the status message that is now showing (the bot's, or one this worker posted);
    no more progress is shown after this."""
    return job.replace(status_message_id=status.finish()) if status is not None else job


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
        rt.telegram.send_text(job.chat_id, text, reply_to=job.reply_to)
    except ChatGone:
        pass
    except Exception:
        log.exception("could not tell chat %s: %r", job.chat_id, text)


def _process(rt: runtime.Runtime, job: Job, stages: Stages, status: Progress) -> str:
    from models import imageio

    tg = rt.telegram
    if job.op == "styles":
        _deliver(rt, _with_status(job, status), _styles_sheet(rt.models.styles_dir, rt.models.cache_dir),
                 as_document=False, filename="styles.jpg", caption=render("styles.caption", job.lang, names=", ".join(_preset_names())))
        return "ok"
    if job.op == "compare":
        return _compare(rt, job, stages, status)

    try:
        engine = rt.engines.get(job.options.engine, job.op, reference=bool(job.reference_file_id))
    except FetchError as exc:  # its files cannot be had on this worker: a retry would not help
        log.error("job=%s model unavailable: %s", job.job_id, exc)
        _tell(rt, job, render("engine.unavailable", job.lang))
        return "unavailable"
    if job.status_message_id:  # it waited in line (`status` made "Queued" "Colourising…")
        tg.chat_action(job.chat_id, "upload_document" if job.as_document else "upload_photo")
    # else the bot showed a chat action as it enqueued, and a long job gets a status message from `status`
    if job.album:
        return albums.process(rt, job, stages, status, engine)
    data = tg.download(job.file_id)
    reference = tg.download(job.reference_file_id) if job.reference_file_id else None
    stages.done("download")
    img = imageio.decode(data)
    second = imageio.decode(reference) if reference is not None else None
    stages.done("decode")

    working = _working(job)
    with reporting(lambda f: status.show(render("working.percent", job.lang, working=working, percent=round(100 * f)))):
        out, suffix, colorized_first = _run_engine(rt, engine, job, img, second)
    stages.done("model")

    encoded, as_document, filename = _encode(job, out, img, data, job.file_name, suffix)
    stages.done("encode")
    rid, keyboard = results.buttons(rt, job)
    sent = _deliver(rt, _with_status(job, status), encoded, as_document, filename,
                    caption=_caption(job, engine.label, animated=bool(img.info.get("paintbot_animated")),
                                     colorized_first=colorized_first),
                    engine=engine.name, reply_markup=keyboard)
    results.keep(rt, job, engine, rid, sent, colorized_first)
    stages.done("send")
    return "ok"


def _run_engine(rt: runtime.Runtime, engine, job: Job, img, second):
    """The job's operation on one image: the result, the suffix its file name gets, and whether a
    black-and-white photo was colourised before it was painted (worker/chain.py)."""
    if job.op == "colorize":
        return engine(img, job.options, reference=second), "colorized", False
    style_img = second if second is not None else _preset(rt, job.options.style)
    content, colorized_first = chain.colour_first(rt.engines, img, job.options)
    return engine(content, style_img, job.options), job.options.style or "styled", colorized_first


def _encode(job: Job, out, img, data: bytes, file_name: str | None, suffix: str) -> tuple[bytes, bool, str]:
    """A result as it is sent: bytes, whether as a file (asked for, or too large for a photo), file name."""
    from models import imageio

    as_document = job.as_document or not _fits_photo(out.size)
    png = as_document and data[:8] == b"\x89PNG\r\n\x1a\n"  # lossless in, lossless out
    encoded = imageio.encode(out, "PNG" if png else "JPEG", quality=95 if as_document else 92, made_from=img)
    stem = shown(Path(file_name or "").stem) or "photo"  # echoed back: no RTL overrides
    return encoded, as_document, f"{stem}_{suffix}.{'png' if png else 'jpg'}"


def _compare(rt: runtime.Runtime, job: Job, stages: Stages, status: Progress) -> str:
    """The before/after picture of a result: the photo (file_id) and the result (reference_file_id)."""
    from models import imageio, sheet

    rt.telegram.chat_action(job.chat_id, "upload_photo")
    before = imageio.decode(rt.telegram.download(job.file_id))
    after = imageio.decode(rt.telegram.download(job.reference_file_id))
    stages.done("download")
    picture = sheet.before_after(before, after, render("compare.before", job.lang), render("compare.after", job.lang))
    stages.done("model")
    _deliver(rt, _with_status(job, status), imageio.encode(picture, "JPEG", quality=90), False, "before_after.jpg",
             caption=render("caption.compare", job.lang))
    stages.done("send")
    return "ok"


def _caption(job: Job, engine_label: str, animated: bool, colorized_first: bool = False) -> str:
    """What was done, by which model, and that it is not a record of the past nor a real painting."""
    return captions.result_caption(job.op, job.options, engine_label, job.lang, like=bool(job.reference_file_id)
                                   and job.op == "colorize", colorized_first=colorized_first, animated=animated)


def _fits_photo(size: tuple[int, int]) -> bool:
    w, h = size
    return w + h <= PHOTO_MAX_SIDES and max(w, h) <= PHOTO_MAX_RATIO * min(w, h)


def _deliver(rt: runtime.Runtime, job: Job, data: bytes, as_document: bool, filename: str,
             caption: str | None = None, engine: str | None = None, reply_markup=None) -> Sent | None:
    """Send the result at most once per job, even when a retry follows a crash after sending; returns what
    was sent (None: it had been already). A result `engine` made is recorded, so that reactions to it count
    for that engine."""
    if not rt.redis.set(f"paintbot:delivered:{job.job_id}", 1, nx=True, ex=DELIVERED_TTL):
        log.warning("job=%s was already delivered; not sending twice", job.job_id)
        return None
    try:
        sent = rt.telegram.send_image(job.chat_id, job.reply_to, data, as_document, filename, caption=caption,
                                      reply_markup=reply_markup)
        message_id = sent.message_id
    except Exception:
        rt.redis.delete(f"paintbot:delivered:{job.job_id}")  # not delivered: a retry may send it
        raise
    if job.status_message_id:
        rt.telegram.delete(job.chat_id, job.status_message_id)
    if engine is not None:
        try:
            record_result(rt.redis, job.chat_id, message_id, engine)
        except redis.RedisError as exc:  # delivered all the same: only its reactions go uncounted
            log.warning("job=%s: the result's engine was not recorded (%s)", job.job_id, type(exc).__name__)
    return sent


def _preset(rt: runtime.Runtime, name: str):
    from models.style import presets

    return presets.open_preset(name, rt.models)


def _preset_names() -> list[str]:
    from models.style import presets

    return presets.names()


@functools.cache
def _styles_sheet(styles_dir, cache_dir) -> bytes:
    """The /styles picture: the presets never change while a worker runs, so draw it once."""
    from models import imageio
    from models.config import ModelConfig
    from models.style import presets

    sheet = presets.contact_sheet(ModelConfig(styles_dir=styles_dir, cache_dir=cache_dir))
    return imageio.encode(sheet, "JPEG", quality=90)
