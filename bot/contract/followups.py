"""One-tap follow-ups: the small keyboard under each result, and the record a tap is answered from.

Each result (sent by the worker, or again from the cache by the bot) carries buttons: More colour / Less
colour (±50 % intensity, 0..200), Another model (the next colouriser the workers registered), Paint it…
(the style presets, applied to the colourised or repaired result), Before/after, and Repair under a
colourised photo on which the worker's damage detector found scratches or dust (never on a clean one). Their callback_data is
`fu:<rid>:<action>`: `rid` is the short id of a Redis record (`Followup.key_for(rid)`, kept as long as the
result cache, PAINTBOT_RESULT_CACHE_TTL) holding the file ids of the source and the result, the operation,
its options and the engine that made it: ids and names only. Data that does not parse is junk; a record
that has lapsed gets a polite "send the photo again".

A record belongs to the chat its result was sent to (`chat_id`): anyone may forge a callback carrying another
chat's record id, so a tap is answered from a record only in that chat (`Followup.belongs_to`); elsewhere it
is answered exactly as a lapsed one. A record the previous release wrote has no chat id: it is taken as
lapsed too (the safe choice: its chat cannot be checked), so for one cache lifetime after the upgrade the
buttons of older results ask for the photo again.

An album's results cannot carry buttons (Telegram's albums take no keyboard): the worker sends them in a
short message under the album, and a tap there asks the same of every picture (no Before/after: one
picture of the album). The record then also holds the album's pictures and results, in order.

A tap is a request of whoever tapped (groups: anyone may, and the limits count the tapper). Its job id must
differ per result and action yet stay the same for a second tap on the same button (one job, as for a
redelivered update): `request_id` gives a number no real message id takes (negative) for that pair.
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import redis
from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.contract import keys, paintings, records
from bot.contract.job import AlbumItem, Job, Op
from bot.contract.options import INTENSITY_MAX, EngineInfo, Options
from bot.contract.texts import render

PREFIX = "fu"
STEP = 50  # percent of colour a More/Less tap adds or takes
# and "s:<preset>", a style chosen after "Paint it…"; "anyway": colourise a photo that is in colour already
ACTIONS = ("more", "less", "model", "paint", "ba", "repair", "anyway", "enhance")
_DATA = re.compile(r"^fu:([A-Za-z0-9_-]{8}):(more|less|model|paint|ba|repair|enhance|anyway|s:[a-z0-9_-]{1,32})$")
_ACTION_SLOTS = 64  # request ids: message id * this + the action's number


@dataclass(frozen=True)
class Followup:
    """What a result's buttons need: where it came from and how it was made."""

    source_file_id: str  # the photo the user sent (what More/Less/Another model colour again)
    result_file_id: str  # the result as Telegram holds it (what Paint it… paints, the "after")
    op: str  # "colorize" or "style" (an Op's value)
    engine: str  # the engine that made it
    options: dict = dataclasses.field(default_factory=dict)  # the operation's options as the queue carries them
    source_unique_id: str | None = None
    result_unique_id: str | None = None
    as_document: bool = False
    file_name: str | None = None
    # An album's: its pictures and their results, in order ({"message_id", "file_id", "file_name"} each,
    # as AlbumItem.to_dict gives them); None for a single result.
    album: list | None = None
    album_results: list | None = None
    # The chat the result was sent to, the only one whose taps the record answers; None in a record the
    # previous release wrote (no tap is answered from it: see the module's note).
    chat_id: int | None = None

    @staticmethod
    def key_for(rid: str) -> str:
        return keys.followup(rid)

    @classmethod
    def of(cls, job: Job, engine: str, result_file_id: str, result_unique_id: str | None,
           pictures: Sequence[AlbumItem] | None = None, results: Sequence[AlbumItem] | None = None) -> "Followup":
        """The record of a result of `job` made by `engine` (of an album: its `pictures` that came back, and
        their `results`, in order)."""
        options: Options = job.options
        return cls(job.file_id, result_file_id, str(job.op), engine, options.replace(engine=engine).to_dict(),
                   job.file_unique_id, result_unique_id, job.as_document, job.file_name,
                   None if pictures is None else [p.to_dict() for p in pictures],
                   None if results is None else [r.to_dict() for r in results], chat_id=job.chat_id)

    def belongs_to(self, chat_id: int) -> bool:
        """Whether a tap in `chat_id` may be answered from this record: only in the chat it was made for
        (a record without a chat id, from the previous release, belongs to none)."""
        return self.chat_id is not None and self.chat_id == chat_id

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> "Followup | None":
        """The record, whichever release wrote it: fields this version does not know are ignored (a newer
        release added them), missing ones take their defaults (an older one lacked them: a missing chat id is None, which no tap
        is answered from); None when it lacks what no tap can do without (the photo, the result, the
        operation, the engine)."""
        try:
            d = json.loads(raw)
            known = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in d.items() if k in known})
        except (ValueError, TypeError, AttributeError):
            return None


def new_id() -> str:
    """A record's id: 8 URL-safe characters (48 random bits)."""
    return secrets.token_urlsafe(6)


def data(rid: str, action: str) -> str:
    return f"{PREFIX}:{rid}:{action}"


def parse(callback_data: str | None) -> tuple[str, str] | None:
    """(rid, action) of a follow-up button's data; None for anything else."""
    m = _DATA.match(callback_data or "")
    return (m.group(1), m.group(2)) if m else None


def request_id(message_id: int, action: str, presets: tuple[str, ...]) -> int:
    """The job's request id for a tap of `action` on message `message_id` (see the module's note)."""
    if action.startswith("s:"):
        number = len(ACTIONS) + 1 + presets.index(action[2:])
    else:
        number = ACTIONS.index(action) + 1
    return -(message_id * _ACTION_SLOTS + number)


def another_model(engines: Sequence[EngineInfo]) -> bool:
    """Whether "Another model" has one to offer: a second colouriser that needs no reference photo."""
    return len([e for e in engines if e.family == "colorize" and not e.needs_reference]) > 1


def can_repair(engines: Sequence[EngineInfo]) -> bool:
    """Whether "Repair" has an engine to run: a worker published the restore family's default (the repair
    engine; the family's other engines, faces and upscale, are steps after it, by name only)."""
    return any(e.family == "restore" and e.default for e in engines)


def can_enhance(engines: Sequence[EngineInfo]) -> bool:
    """Whether "Enhance" has an engine to run: a worker published a restore step besides the repairer (faces,
    upscale)."""
    return any(e.family == "restore" and not e.default for e in engines)


def keyboard(rid: str, op: Op, options: dict, lang: str | None, engines: Sequence[EngineInfo],
             album: bool = False, damaged: bool = False, enhance: bool = False,
             hints: InlineKeyboardButton | None = None) -> InlineKeyboardMarkup:
    """The buttons under a result of `op` (`album`: under an album's results, so no Before/after), with
    "Another model" when `engines` (those the workers run) offer one, and "Repair" under a colourised
    result when the worker found damage on the photo (`damaged`) and some worker can repair it, and "Enhance"
    (faces and resolution) when it would change the photo (`enhance`: small enough to enlarge, or faces found)
    and a worker runs a step.
    `hints`: the "Pick colours" button (bot/contract/webapp.py `button`: a web_app or t.me link, not a callback,
    so it has no action here), under a colourised result when the Mini App is offered."""
    def button(key: str, action: str) -> InlineKeyboardButton:
        return InlineKeyboardButton(render(key, lang), callback_data=data(rid, action))

    rows = []
    if op == Op.COLORIZE:
        intensity = 100 if options.get("intensity") is None else int(options["intensity"])
        colour = [b for b, show in ((button("followup.more", "more"), intensity < INTENSITY_MAX),
                                    (button("followup.less", "less"), intensity > 0)) if show]
        if colour:
            rows.append(colour)
        rows.append(([button("followup.model", "model")] if another_model(engines) else []) +
                    [button("followup.paint", "paint")])
        restore = ([button("followup.repair", "repair")] if damaged and can_repair(engines) else []) + \
            ([button("followup.enhance", "enhance")] if enhance and can_enhance(engines) else [])
        if restore:
            rows.append(restore)
    else:
        rows.append([button("followup.paint", "paint")])
    if hints is not None:
        rows.append([hints])
    if not album:
        rows.append([button("followup.compare", "ba")])
    return InlineKeyboardMarkup(rows)


def in_colour_keyboard(rid: str, lang: str | None, engines: Sequence[EngineInfo]) -> InlineKeyboardMarkup:
    """The choices under "This photo is already in colour": paint it, repair it (when a worker published a
    restorer: /restore keeps a colour photo's colours), or colourise it anyway. The record's result is the
    photo itself, so "Paint it…" paints the photo."""
    def button(key: str, action: str) -> InlineKeyboardButton:
        return InlineKeyboardButton(render(key, lang), callback_data=data(rid, action))

    first = [button("followup.paint", "paint")] + ([button("followup.repair", "repair")] if can_repair(engines) else [])
    return InlineKeyboardMarkup([first, [button("colour.anyway", "anyway")]])


def presets_keyboard(rid: str, presets: tuple[str, ...], lang: str | None) -> InlineKeyboardMarkup:
    """The presets under "Paint it…", each by its painting's title in `lang`."""
    buttons = [InlineKeyboardButton(paintings.button(n, lang), callback_data=data(rid, f"s:{n}")) for n in presets]
    return InlineKeyboardMarkup([buttons[i:i + paintings.PER_ROW] for i in range(0, len(buttons), paintings.PER_ROW)])


def remember(conn: redis.Redis, rid: str, record: Followup, ttl: int, owner: int | None = None) -> None:
    """Keep `record` for `ttl` s, noted as `owner`'s (the requester's: `/forget` deletes it)."""
    if ttl > 0:
        conn.set(Followup.key_for(rid), record.to_json(), ex=ttl)
        records.own(conn, owner, Followup.key_for(rid), ttl)


def recall(conn: redis.Redis, rid: str) -> Followup | None:
    raw = conn.get(Followup.key_for(rid))
    return Followup.from_json(raw) if raw else None


def stepped(intensity: int, action: str) -> int:
    """The intensity after a More/Less tap, kept within 0..INTENSITY_MAX."""
    return min(max(intensity + (STEP if action == "more" else -STEP), 0), INTENSITY_MAX)
