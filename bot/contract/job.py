"""The job: what the bot (producer) hands the workers (consumers) through the queue.

A job is a small JSON object of ids and options — never image bytes, never a token —
enqueued with RQ's JSON serializer (no pickle anywhere on the queue path). The worker
runs `worker.tasks.run_job(job)`; the bot only names that function, it never imports it.
What a job asks for is an `Op`, never a bare string.

The contract survives rolling upgrades. The bot (one replica) is replaced at once while the
workers are rolled gradually, so for minutes jobs cross versions both ways:
- `from_dict` ignores fields it does not know (a newer bot added them) and fills the ones a job
  lacks (an older bot did not send them) with their defaults;
- `to_dict` adds no top-level field that the previous release's workers cannot take (they build
  the job with `Job(**d)`): anything new travels inside `options`, whose unknown keys every
  release ignores, and option keys keep their meaning and units (strength in percent).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from bot.contract.options import Options, options_for

log = logging.getLogger("paintbot")

TASK = "worker.tasks.run_job"
ON_FAILURE = "worker.tasks.on_job_failure"  # RQ calls it when a job fails, also when its worker died
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024  # the Bot API's getFile limit: larger files are refused before a job


class Op(StrEnum):
    """What a job asks for. The value is what the queue carries (a string every release reads)."""

    COLORIZE = "colorize"
    STYLE = "style"
    STYLES = "styles"  # the picture of every preset
    COMPARE = "compare"  # the before/after picture of a result (file_id the photo, reference_file_id the result)
    RESTORE = "restore"  # repair the damage (scratches, dust, tears), then colourise a black-and-white photo
    HINTS = "hints"  # colourise with the colours a person placed in the Mini App (bot/web/, bot/contract/webapp.py)

    @property
    def family(self) -> str | None:
        """The engine family that makes its results (None: no engine runs, nothing to cache or adjust)."""
        return {Op.COLORIZE: "colorize", Op.STYLE: "style", Op.RESTORE: "restore", Op.HINTS: "colorize"}.get(self)

# Fields newer than the previous release travel inside `options`, under these keys: the second image
# of a request (a custom style, an exemplar's colour reference) under the key the previous release
# already read for custom styles; the requester's language (its workers ignore it and answer in English).
# An album's pictures (bot/albums.py) travel there too: the previous release's workers read the job as
# its first picture alone, and answer that one.
# The input's file_unique_id keys the result cache (bot/contract/cache.py) and the result's follow-up record.
# The forum topic the request came from goes there too (the previous release's workers answer in General).
_IN_OPTIONS = {"reference_file_id": "style_file_id", "lang": "lang", "file_unique_id": "file_unique_id",
               "album": "album", "thread_id": "thread_id"}
MAX_ALBUM = 10  # Telegram's media groups hold 2 to 10 items


@dataclass(frozen=True)
class AlbumItem:
    """One picture of an album: the message it came in (its place in the album) and its file."""
    message_id: int
    file_id: str
    file_name: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping) -> "AlbumItem":
        return cls(int(d["message_id"]), str(d["file_id"]), d.get("file_name"))

    def to_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Job:
    op: Op
    chat_id: int
    request_id: int  # message id of the request (the photo, the command or the keyboard tapped)
    reply_to: int  # message id of the photo the result answers
    file_id: str | None = None  # the content image (None for "styles", the preset sheet)
    as_document: bool = False  # a file in gives a file out
    user_id: int | None = None  # whom the limits count against: the user, or the chat sent on behalf of
    status_message_id: int | None = None
    file_name: str | None = None
    options: Options | None = None  # the operation's typed options (None for "styles")
    reference_file_id: str | None = None  # a custom style photo, or the colour reference to copy
    lang: str | None = None  # the language to answer in (bot/contract/texts.py); None: English
    file_unique_id: str | None = None  # the content image's, the same for the same photo sent again
    album: tuple[AlbumItem, ...] | None = None  # a media group, in order (file_id is its first picture's)
    thread_id: int | None = None  # the forum topic the request came from: every message of the job goes there

    def __post_init__(self):
        try:
            object.__setattr__(self, "op", Op(self.op))
        except ValueError:
            raise ValueError(f"unknown operation {self.op!r}") from None
        if self.options is None or isinstance(self.options, Mapping):
            object.__setattr__(self, "options", options_for(self.op, self.options))
        if self.album is not None:
            object.__setattr__(self, "album", tuple(
                a if isinstance(a, AlbumItem) else AlbumItem.from_dict(a) for a in self.album) or None)

    @property
    def from_tap(self) -> bool:
        """Whether the request is a tap on a result's follow-up button (a negative request id:
        bot/contract/followups.py `request_id`) rather than a message, which Telegram may deliver again."""
        return self.request_id < 0

    @property
    def job_id(self) -> str:
        """One job per request: the same Telegram update delivered twice maps to the same id."""
        return f"pb-{self.chat_id}-{self.request_id}"

    def replace(self, **changes) -> "Job":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in _IN_OPTIONS}
        d["options"] = self.options.to_dict() if self.options is not None else {}
        for name, key in _IN_OPTIONS.items():
            if getattr(self, name):
                d["options"][key] = getattr(self, name)
        if self.album:
            d["options"]["album"] = [a.to_dict() for a in self.album]
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "Job":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            log.info("job %s has fields this version does not know (%s): ignored", d.get("request_id"), unknown)
        fields = {k: v for k, v in d.items() if k in known}
        options = dict(fields.get("options") or {})
        for name, key in _IN_OPTIONS.items():
            fields[name] = fields.get(name) or options.pop(key, None)
        fields["options"] = options
        return cls(**fields)
