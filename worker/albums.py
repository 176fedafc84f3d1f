"""An album job (bot/albums.py gathered it): every picture through the one engine, one album back.

Why one job and not one per picture: the user sent one thing and expects one answer, the limits
count one request, and the pictures come back together, in their order, as they were sent:
photos as photos, files as files (Telegram never mixes the two in an album), each at full size as
a single photo's result would be. A picture that cannot be read (or fetched) does not sink the
rest: it is named in the album's caption. While it runs, the job's status message counts the
pictures done (worker/progress.py spaces the edits).

Delivery keeps the single-photo guarantee: at most once per job (the one `deliver` of worker/stages.py).
An album cannot carry buttons, so its follow-up buttons (bot/contract/followups.py) come in a short
message under it.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from bot.contract.job import AlbumItem, Job, Op
from bot.contract.options import shown
from bot.contract.texts import render
from models import color
from models.errors import InputError
from models.progress import reporting
from worker import results
from worker.progress import Progress
from worker.runtime import Runtime
from worker.stages import Made, Timings, caption, deliver, encode, finish_status, run_engine, working
from worker.telegram import Sent

log = logging.getLogger("paintbot.worker")


def _name(job: Job, index: int) -> str:
    """How the caption names picture `index`: a file by its name (cut short: ten must fit in a caption,
    and no invisible characters are echoed), a photo by its place in the album."""
    item = job.album[index]
    name = shown(Path(item.file_name).name) if item.file_name else ""
    return name or render("album.item", job.lang, number=index + 1)


def process(rt: Runtime, job: Job, timings: Timings, status: Progress, engine) -> str:
    from models import imageio

    count, text = len(job.album), working(job)
    encoded: list[tuple[bytes, bool, str]] = []
    pictures: list[AlbumItem] = []  # the album's items whose results are in `encoded`
    failed: list[int] = []
    last_error: InputError | None = None
    # One reference photo for the whole album (exemplar): fetched and read once, used for every picture.
    reference = imageio.decode(rt.telegram.download(job.reference_file_id)) if job.reference_file_id else None
    made: list[Made] = []
    in_colour: list[int] = []  # pictures already in colour, in an album sent without a command: left as they are
    for i, item in enumerate(job.album):
        try:
            data = rt.telegram.download(item.file_id)
            img = imageio.decode(data)
            if job.op is Op.COLORIZE and job.options.if_gray and reference is None and color.is_colour_photo(img):
                in_colour.append(i)
                status.show(render("album.progress", job.lang, working=text, done=i + 1, count=count))
                continue
            with reporting(lambda f, i=i: status.show(render("working.percent", job.lang, working=text,
                                                             percent=round(100 * (i + f) / count)))):
                made.append(run_engine(rt, engine, job, img, reference))
            encoded.append(encode(job, made[-1].image, img, data, item.file_name or f"photo_{i + 1}",
                                  made[-1].suffix))
            pictures.append(item)
        except InputError as exc:  # this picture only: the others still come back
            log.info("job=%s album picture %d/%d unusable: %s", job.job_id, i + 1, count, exc)
            failed.append(i)
            last_error = exc
        status.show(render("album.progress", job.lang, working=text, done=i + 1, count=count))
    timings.done("model")
    if not encoded and in_colour:  # nothing to colour: said once, nothing recoloured
        job = finish_status(job, status)
        deliver(rt, job, lambda: [Sent(rt.telegram.send_text(job.chat_id, render("colour.album", job.lang),
                                                             reply_to=job.reply_to, thread_id=job.thread_id),
                                       None, None)])
        return "in_colour"
    if not encoded:
        raise last_error  # nothing to send: the user is told why, as for a single photo
    whole = together(made)
    said = caption(job, engine.label, animated=False, made=whole)
    if in_colour:
        said += "\n" + render("album.in_colour", job.lang, items=", ".join(_name(job, i) for i in in_colour))
    if failed:
        said += "\n" + render("album.failed", job.lang, items=", ".join(_name(job, i) for i in failed))
    job = finish_status(job, status)
    if len(encoded) == 1:  # an album needs two: a single result goes as a single photo's would, buttons too
        data, as_document, filename = encoded[0]
        single = job.replace(album=None, file_id=pictures[0].file_id, file_name=pictures[0].file_name,
                             file_unique_id=None)
        rid, keyboard = results.buttons(rt, single, whole.damaged, whole.enhance)
        sent = deliver(rt, single, lambda: [rt.telegram.send_image(single.chat_id, single.reply_to, data, as_document,
                                                                   filename, caption=said, reply_markup=keyboard,
                                                                   thread_id=single.thread_id)],
                       engine.name)
        results.keep(rt, single, engine, rid, sent[0] if sent else None, whole)
    else:
        _deliver_album(rt, job, encoded, pictures, said, engine, whole.damaged, whole.enhance)
    timings.done("send")
    return "ok" if not failed else "partial"  # pictures left as they were (in colour) are no failure


def together(made: list[Made]) -> Made:
    """What the caption and buttons of an album say of all its results: the damaged areas repaired and the faces
    restored in all, damage on any picture (Repair is offered for the album), enlarged or colourised if any was."""
    repaired = [m.repaired for m in made if m.repaired is not None]
    return dataclasses.replace(made[0], colorized_first=any(m.colorized_first for m in made),
                               damaged=any(m.damaged for m in made), enhance=any(m.enhance for m in made),
                               repaired=sum(repaired) if repaired else None,
                               faces=sum(m.faces for m in made),
                               upscaled=next((m.upscaled for m in made if m.upscaled), None),
                               colorizer=next((m.colorizer for m in made if m.colorizer), None))


def _deliver_album(rt: Runtime, job: Job, encoded: list[tuple[bytes, bool, str]], pictures: list[AlbumItem],
                   said: str, engine, damaged: bool, enhance: bool) -> None:
    """Send the album at most once per job, then its buttons. A photo result too large for a photo makes
    the whole album files: Telegram does not mix them."""
    as_document = job.as_document or any(as_doc for _, as_doc, _ in encoded)
    sent = deliver(rt, job, lambda: rt.telegram.send_album(
        job.chat_id, job.reply_to, [(data, name) for data, _, name in encoded], as_document, caption=said,
        thread_id=job.thread_id),
        engine.name)
    if sent is None:
        return
    rid, keyboard = results.buttons(rt, job, damaged, enhance)
    if rid is None:
        return
    results.keep_album(rt, job, engine, rid, pictures, sent)  # before the buttons: a quick tap finds it
    try:
        rt.telegram.send_text(job.chat_id, render("album.followup", job.lang, count=len(sent)),
                              reply_to=sent[0].message_id, reply_markup=keyboard, thread_id=job.thread_id)
    except Exception as exc:  # the album is out; its buttons are a nicety
        log.warning("job=%s: the album's buttons were not sent (%s)", job.job_id, type(exc).__name__)
