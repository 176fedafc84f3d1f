"""The stages of a job after its download, shared by a single photo (worker/tasks.py) and an album
(worker/albums.py): run the engine, encode, caption, finish the status message, deliver at most once.

Why one module: a photo and an album must be answered alike (the same options mapped to the same engine
call, the same file names and formats, the same caption, the same delivery guarantee), so each of these is
written once. This is also the one place where a job's options become the plain keywords the engines of
models/ take (`run_engine`): the image science never sees the queue's option objects.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import redis
from PIL import Image

from bot.contract import captions, keys, records
from bot.contract.job import Job, Op
from bot.contract.options import shown
from bot.contract.texts import render
from models.engine import Engine
from worker import chain
from worker.progress import Progress
from worker.runtime import Runtime
from worker.telegram import Sent

log = logging.getLogger("paintbot.worker")

DELIVERED_TTL = 7 * 24 * 3600  # how long a job's "delivered" mark keeps a retry from sending it again
SENDING_TTL = 20  # seconds a send claim outlives its worker (renewed every SENDING_TTL / 4 s while it lives)
CLAIM_POLL = 1.0  # seconds between looks at another attempt's claim
# Renew or drop a claim only while it is still ours (KEYS: the claim; ARGV: our token, the ttl).
_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end return 0"
_DROP = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
# /restore enlarges a photo whose long side is under this (2x: Telegram's photos, at most 1280 px, come back
# 2560 px); a larger one is left at its size. A result too large for a photo goes as a file (`as_file`).
UPSCALE_BELOW = 1600
PHOTO_MAX_SIDES = 10000  # sendPhoto: width + height at most 10000, ratio at most 20
PHOTO_MAX_RATIO = 20
PHOTO_MAX_BYTES = 10 * 1024 * 1024  # sendPhoto: at most 10 MB (else PHOTO_SAVE_FILE_INVALID)


class Timings:
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


def working(job: Job) -> str:
    """What a job's status message says while it runs."""
    if job.album:
        return render(f"album.{job.op}", job.lang, count=len(job.album))
    return render(f"working.{job.op.family or Op.STYLE}", job.lang)  # /styles and before/after post none


@dataclass(frozen=True)
class Made:
    """What a job's engine made of one image, and what its caption and buttons say about it."""

    image: Image.Image
    suffix: str  # what the result's file name gets: "colorized", the preset's name, "restored"
    colorized_first: bool = False  # style: a black-and-white photo was colourised before it was painted
    damaged: bool = False  # colourise: the photo has scratches or dust, so the result offers "Repair"
    enhance: bool = False  # colourise: "Enhance" would change the photo (under UPSCALE_BELOW, or faces found)
    repaired: int | None = None  # restore: how many damaged areas were filled
    faces: int = 0  # restore: faces found and restored
    upscaled: int | None = None  # restore: enlarged this many times
    colorizer: Engine | None = None  # restore: the colouriser that coloured the repaired black-and-white photo


def run_engine(rt: Runtime, engine: Engine, job: Job, img: Image.Image, second: Image.Image | None) -> Made:
    """The job's operation on one image. `second`: the request's second image (a colour reference, or a
    custom style)."""
    options = job.options
    if job.op is Op.HINTS:  # the colours a person placed in the Mini App (bot/web/), at full resolution
        from models.colorize.hints import Hint

        return Made(engine.colorize_hints(img, [Hint(x, y, (r, g, b)) for x, y, r, g, b in options.hints]), "hints")
    if job.op is Op.COLORIZE:
        out = engine(img, intensity=options.intensity / 100, reference=second)
        return Made(out, "colorized", damaged=damaged(rt, img), enhance=enhanceable(rt, img))
    if job.op is Op.RESTORE:
        from models.restore import pipeline, upscale

        small = max(img.size) < UPSCALE_BELOW
        out, steps = pipeline.restore(
            img, repairer=engine if options.repair else None,
            faces=rt.engines.step("faces", "restore") if options.faces != 0 else None, faces_strength=options.faces,
            upscaler=rt.engines.step(upscale.engine_for(rt.device), "restore") if options.upscale and small else None,
            colorizer=rt.engines.defaults.get("colorize") if options.color else None)  # None: none on this worker
        return Made(out, "restored", repaired=steps.regions, faces=steps.faces, upscaled=steps.upscaled,
                    colorizer=rt.engines.defaults.get("colorize") if steps.colourised else None)
    style_img = second if second is not None else preset(rt, options.style)
    content, colorized_first = chain.colour_first(rt.engines, img, options.keep_colors)
    out = engine(content, style_img, strength=options.strength, keep_colors=options.keep_colors,
                 style_key=options.style)
    return Made(out, options.style or "styled", colorized_first=colorized_first)


def damaged(rt: Runtime, img: Image.Image) -> bool:
    """Whether the worker's damage detector finds scratches or dust on `img` (False when this worker runs no
    restore engine): computed while colourising, so that "Repair" is offered only where there is damage."""
    restorer = rt.engines.defaults.get("restore")
    return restorer is not None and restorer.damage(img).regions > 0


def enhanceable(rt: Runtime, img: Image.Image) -> bool:
    """Whether "Enhance" (faces, then resolution) would change `img`: it is small enough to be enlarged, or,
    on a larger photo, the worker's face detector finds a face. Detection runs only where this worker already
    has the faces engine (loaded, or its files here: never a download in the middle of a colourisation), on
    the photo shrunk to the engine's detection side (about 0.2 s on a 2-core CPU), so "Enhance" under a large
    photo means faces to restore."""
    if max(img.size) < UPSCALE_BELOW:
        return True
    faces = rt.engines.ready("faces", "restore")
    return faces is not None and len(faces.landmarks(img)) > 0


def preset(rt: Runtime, name: str) -> Image.Image:
    from models.style import presets

    return presets.open_preset(name, rt.models)


def fits_photo(size: tuple[int, int]) -> bool:
    """Whether Telegram takes a picture this size as a photo (sendPhoto refuses others: PHOTO_INVALID_DIMENSIONS)."""
    w, h = size
    return w + h <= PHOTO_MAX_SIDES and max(w, h) <= PHOTO_MAX_RATIO * min(w, h)


def as_file(size: tuple[int, int], asked: bool = False, nbytes: int = 0) -> bool:
    """The one rule for how the worker sends a picture of this size, encoded in `nbytes` (a result, an album's,
    the /styles sheet, a before/after): as a file when that was `asked` for, or when Telegram would refuse it
    as a photo (its sides, or over 10 MB: a large restored or upscaled photo full of grain)."""
    return asked or not fits_photo(size) or nbytes > PHOTO_MAX_BYTES


def encode(job: Job, out: Image.Image, img: Image.Image, data: bytes, file_name: str | None,
           suffix: str) -> tuple[bytes, bool, str]:
    """A result as it is sent: bytes, whether as a file (asked for, or too large for a photo), file name."""
    from models import imageio

    as_document = as_file(out.size, asked=job.as_document)
    while True:
        png = as_document and data[:8] == b"\x89PNG\r\n\x1a\n"  # lossless in, lossless out
        encoded = imageio.encode(out, "PNG" if png else "JPEG", quality=95 if as_document else 92, made_from=img)
        if as_document or not as_file(out.size, nbytes=len(encoded)):
            break
        as_document = True  # too heavy for a photo: the same picture as a file
    stem = shown(Path(file_name or "").stem) or "photo"  # echoed back: no RTL overrides
    return encoded, as_document, f"{stem}_{suffix}.{'png' if png else 'jpg'}"


def caption(job: Job, engine_label: str, animated: bool, made: Made | None = None) -> str:
    """What was done, by which model, and that it is not a record of the past nor a real painting."""
    return captions.result_caption(job.op, job.options, engine_label, job.lang,
                                   like=bool(job.reference_file_id) and job.op is Op.COLORIZE,
                                   colorized_first=bool(made and made.colorized_first), animated=animated,
                                   repaired=made.repaired if made else None,
                                   faces=made.faces if made else 0, upscaled=made.upscaled if made else None,
                                   colorizer_label=made.colorizer.label if made and made.colorizer else None)


def finish_status(job: Job, status: Progress | None) -> Job:
    """Stop the job's progress updates, and return `job` with the status message now showing (the bot's
    "Queued", or one this worker posted): the message the result replaces, or an apology is written into."""
    return job.replace(status_message_id=status.finish()) if status is not None else job


def deliver(rt: Runtime, job: Job, send: Callable[[], list[Sent]], engine: str | None = None) -> list[Sent] | None:
    """Send a job's result exactly once, whatever moment a worker dies: `send()` sends it (one photo, a file,
    an album) and returns its messages. Returns them, or None when the job had been delivered already. Then
    the status message goes, and each message `engine` made is recorded, so that reactions to it count for
    that engine.

    Sending can take long (the group's flood slot, a 429's retry_after, the upload itself), and a worker can
    be killed at any moment of it. So an attempt first takes a short "sending" claim, which its worker keeps
    renewing while it lives (`_claimed`): another attempt of the same job (RQ's retry after a crash) waits
    while the claim lives and sends only once it lapsed without a result. The "delivered" mark is written
    from Telegram's answer (the messages' ids, before anything else), never before the send: a worker
    killed while waiting leaves no mark, and the retry sends. What remains is the few milliseconds between
    Telegram's answer and that write: a kill exactly then repeats the result (once more, never zero)."""
    mark, claim = keys.delivered(job.job_id), keys.sending(job.job_id)
    with _claimed(rt, job, claim) as ours:
        if not ours:
            log.warning("job=%s was already delivered; not sending twice", job.job_id)
            return None
        sent = send()
        rt.redis.set(mark, json.dumps([m.message_id for m in sent]), ex=DELIVERED_TTL)
    if job.status_message_id:
        rt.telegram.delete(job.chat_id, job.status_message_id)
    if engine is not None:
        try:
            for message in sent:  # in the chat it landed in (a group may have become a supergroup)
                records.record_result(rt.redis, message.chat_id or job.chat_id, message.message_id, engine)
        except redis.RedisError as exc:  # delivered all the same: only its reactions go uncounted
            log.warning("job=%s: the result's engine was not recorded (%s)", job.job_id, type(exc).__name__)
    return sent


@contextlib.contextmanager
def _claimed(rt: Runtime, job: Job, claim: str) -> Iterator[bool]:
    """Hold `job`'s send claim for the block (True), renewed by a thread while this worker lives; False
    when the job turns out delivered. Waits while another attempt holds the claim (it is sending now)."""
    token, mark, told = secrets.token_hex(8), keys.delivered(job.job_id), False
    while True:
        if rt.redis.exists(mark):
            yield False
            return
        if rt.redis.set(claim, token, nx=True, ex=SENDING_TTL):
            break
        if not told:
            log.info("job=%s: another attempt is sending its result; waiting for its answer", job.job_id)
            told = True
        time.sleep(CLAIM_POLL)
    renew, drop = rt.redis.register_script(_RENEW), rt.redis.register_script(_DROP)
    stop = threading.Event()

    def keep() -> None:
        while not stop.wait(SENDING_TTL / 4):
            try:
                renew(keys=[claim], args=[token, SENDING_TTL])
            except redis.RedisError:  # Redis away for a moment: the next round tries again
                log.warning("job=%s: send claim not renewed", job.job_id, exc_info=True)

    keeper = threading.Thread(target=keep, name=f"sending-{job.job_id}", daemon=True)
    keeper.start()
    try:
        # Between the look above and the claim, the attempt before may have finished: look again.
        yield not rt.redis.exists(mark)
    finally:
        stop.set()
        keeper.join()
        drop(keys=[claim], args=[token])
