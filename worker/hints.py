"""The Mini App's quick answers (bot/web/, bot/contract/webapp.py): a 256 px preview of the photo coloured with the
points placed so far, and the colours suggested for a point. Run by every worker from the preview queue, which it
takes from before the main one (worker/main.py), so a person dragging a point waits for one network pass, not
for the queue of full photos.

The web server never computes: it enqueues one of these and waits on the Redis list the answer is pushed to
(`webapp.preview_reply`, kept a minute). A person places points one after another on the same photo, so the
photo is downloaded and decoded once per worker (`_photo`, a few kept) rather than once per preview. A failure
pushes an empty answer, which the web server turns into a polite error at once rather than a timeout.
"""

from __future__ import annotations

import base64
import functools
import json
import logging

from bot.contract import webapp
from bot.contract.options import HintsOptions
from worker import runtime

log = logging.getLogger("paintbot.worker")

REPLY_TTL = 60  # seconds an answer waits for the web server to take it
PHOTOS_KEPT = 4  # decoded photos a worker keeps for the next preview of the same photo (a 40 MP file: 120 MB each)


@functools.lru_cache(maxsize=PHOTOS_KEPT)
def _photo(file_id: str):
    from models import imageio

    return imageio.decode(runtime.current().telegram.download(file_id))


def answer(payload: dict) -> str:
    """RQ's entry: `payload` is {"kind": "preview" | "suggest", "reply": request id, "file_id", "hints": [[x, y,
    r, g, b]...], and for a suggestion "x", "y" and "preview": whether to add the preview with the new point}. Pushes
    the JPEG (preview) or JSON {"colours": [[r, g, b]...], "preview": base64 JPEG} (suggest) to the reply list."""
    from models import imageio
    from models.colorize.hints import Hint

    rt = runtime.current()
    kind, reply = payload.get("kind"), webapp.preview_reply(str(payload["reply"]))
    body = b""
    try:
        engine = rt.engines.get(webapp.ENGINE, "colorize")
        img = _photo(str(payload["file_id"]))
        hints = [Hint(x, y, (r, g, b)) for x, y, r, g, b in HintsOptions.of(payload.get("hints") or []).hints]
        if kind == "suggest":  # the colours there with the points already placed
            x, y = int(payload["x"]), int(payload["y"])
            colours = [list(map(int, c)) for c in engine.suggest(img, x, y, k=6, hints=hints)]
            answer = {"colours": colours}
            if payload.get("preview") and colours:  # a tap: the preview with the new point in its first colour,
                # in the same job (one trip through the queue for a tap, not two)
                jpeg = imageio.encode(engine.preview(img, [*hints, Hint(x, y, tuple(colours[0]))], size=256), "JPEG",
                                      quality=85)
                answer["preview"] = base64.b64encode(jpeg).decode()
            body = json.dumps(answer).encode()
        else:
            body = imageio.encode(engine.preview(img, hints, size=256), "JPEG", quality=85)
    except Exception:  # the page is told at once; the log says why
        log.exception("hints %s for request %s failed", kind, payload.get("reply"))
    with rt.redis.pipeline() as p:
        p.rpush(reply, body)
        p.expire(reply, REPLY_TTL)
        p.execute()
    return "ok" if body else "failed"
