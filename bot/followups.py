"""One-tap follow-ups: the small keyboard under each result, and the record a tap is answered from.

Each result (sent by the worker, or again from the cache by the bot) carries buttons: More colour / Less
colour (±50 % intensity, 0..200), Another model (the next colouriser the workers registered), Paint it…
(the style presets, applied to the colourised result) and Before/after. Their callback_data is
`fu:<rid>:<action>`: `rid` is the short id of a Redis record (`paintbot:followup:<rid>`, kept as long as the
result cache, PAINTBOT_RESULT_CACHE_TTL) holding the file ids of the source and the result, the operation,
its options and the engine that made it: ids and names only. Data that does not parse is junk; a record
that has lapsed gets a polite "send the photo again".

An album's results cannot carry buttons (Telegram's albums take no keyboard): the worker sends them in a
short message under the album, and a tap there asks the same of every picture (no Before/after: one
picture of the album). The record then also holds the album's pictures and results, in order.

A tap is a request of whoever tapped (groups: anyone may, and the limits count the tapper). Its job id must
differ per result and action yet stay the same for a second tap on the same button (one job, as for a
redelivered update): `request_id` gives a number no real message id takes (negative) for that pair.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import asdict, dataclass

import redis
from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.options import INTENSITY_MAX
from bot.texts import render

PREFIX = "fu"
STEP = 50  # percent of colour a More/Less tap adds or takes
ACTIONS = ("more", "less", "model", "paint", "ba")  # and "s:<preset>", a style chosen after "Paint it…"
_DATA = re.compile(r"^fu:([A-Za-z0-9_-]{8}):(more|less|model|paint|ba|s:[a-z0-9_-]{1,32})$")
_ACTION_SLOTS = 64  # request ids: message id * this + the action's number


def _record_key(rid: str) -> str:
    return f"paintbot:followup:{rid}"


@dataclass(frozen=True)
class Followup:
    """What a result's buttons need: where it came from and how it was made."""

    source_file_id: str  # the photo the user sent (what More/Less/Another model colour again)
    source_unique_id: str | None
    as_document: bool
    file_name: str | None
    result_file_id: str  # the result as Telegram holds it (what Paint it… paints, the "after")
    result_unique_id: str | None
    op: str  # "colorize" or "style"
    options: dict  # the operation's options as the queue carries them
    engine: str  # the engine that made it
    # An album's: its pictures and their results, in order ({"message_id", "file_id", "file_name"} each,
    # as bot.jobs.AlbumItem.to_dict gives them); None for a single result.
    album: list | None = None
    album_results: list | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> "Followup | None":
        try:
            return cls(**json.loads(raw))
        except (ValueError, TypeError):
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


def keyboard(rid: str, op: str, options: dict, lang: str | None, another_model: bool,
             album: bool = False) -> InlineKeyboardMarkup:
    """The buttons under a result of `op` (`album`: under an album's results, so no Before/after)."""
    def button(key: str, action: str) -> InlineKeyboardButton:
        return InlineKeyboardButton(render(key, lang), callback_data=data(rid, action))

    rows = []
    if op == "colorize":
        intensity = 100 if options.get("intensity") is None else int(options["intensity"])
        colour = [b for b, show in ((button("followup.more", "more"), intensity < INTENSITY_MAX),
                                    (button("followup.less", "less"), intensity > 0)) if show]
        if colour:
            rows.append(colour)
        rows.append(([button("followup.model", "model")] if another_model else []) +
                    [button("followup.paint", "paint")])
    else:
        rows.append([button("followup.paint", "paint")])
    if not album:
        rows.append([button("followup.compare", "ba")])
    return InlineKeyboardMarkup(rows)


def presets_keyboard(rid: str, presets: tuple[str, ...]) -> InlineKeyboardMarkup:
    buttons = [InlineKeyboardButton(n, callback_data=data(rid, f"s:{n}")) for n in presets]
    return InlineKeyboardMarkup([buttons[i:i + 3] for i in range(0, len(buttons), 3)])


def remember(conn: redis.Redis, rid: str, record: Followup, ttl: int) -> None:
    if ttl > 0:
        conn.set(_record_key(rid), record.to_json(), ex=ttl)


def recall(conn: redis.Redis, rid: str) -> Followup | None:
    raw = conn.get(_record_key(rid))
    return Followup.from_json(raw) if raw else None


def stepped(intensity: int, action: str) -> int:
    """The intensity after a More/Less tap, kept within 0..INTENSITY_MAX."""
    return min(max(intensity + (STEP if action == "more" else -STEP), 0), INTENSITY_MAX)
