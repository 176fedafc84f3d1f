"""Reading a user's request out of a Telegram message: which image, which command, which options.

Pure functions over python-telegram-bot objects; no I/O, so every rule here is easy to test.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from telegram import Message

from bot.contract.job import MAX_DOWNLOAD_BYTES, Op

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif"}
# The commands that ask for an operation on a photo, in every spelling the bot takes.
OPERATION_COMMANDS: Mapping[str, Op] = {"colorize": Op.COLORIZE, "colorise": Op.COLORIZE, "style": Op.STYLE,
                                        "restore": Op.RESTORE}


def commands_of(op: Op) -> list[str]:
    """The command words that ask for `op` ("colorize", "colorise")."""
    return [word for word, named in OPERATION_COMMANDS.items() if named is op]


@dataclass(frozen=True)
class Image:
    file_id: str
    file_size: int | None
    as_document: bool
    file_name: str | None = None
    file_unique_id: str | None = None  # the same for the same file, in any message (the result cache's key)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> "Image":
        """An image as a record stored it (bot/albums.py), whichever release wrote it: unknown fields ignored,
        missing ones their defaults (a file id it cannot do without: KeyError)."""
        return cls(str(d["file_id"]), d.get("file_size"), bool(d.get("as_document")), d.get("file_name"),
                   d.get("file_unique_id"))


def image_of(msg: Message | None) -> Image | None:
    """The image a message carries: the largest photo size, or an image sent as a file."""
    if msg is None:
        return None
    if msg.photo:
        p = msg.photo[-1]
        return Image(p.file_id, p.file_size, as_document=False, file_unique_id=p.file_unique_id)
    doc = msg.document
    if doc is not None:
        mime = (doc.mime_type or "").lower()
        suffix = Path(doc.file_name or "").suffix.lower()
        if mime.startswith("image/") or suffix in IMAGE_SUFFIXES:
            return Image(doc.file_id, doc.file_size, as_document=True, file_name=doc.file_name,
                         file_unique_id=doc.file_unique_id)
    return None


def sender_of(msg: Message) -> int | None:
    """Whom a message's limits count against. Messages sent on behalf of a chat (anonymous group
    admins all arrive from GroupAnonymousBot, posts of a channel from Channel_Bot) count against that
    chat (`sender_chat`); every other message against its user."""
    if msg.sender_chat is not None:
        return msg.sender_chat.id
    return msg.from_user.id if msg.from_user else None


def quotes(msg: Message) -> bool:
    """Whether an answer to `msg` quotes it: in a group, to say whom and what it answers; in a private chat
    a plain command (/start, /help, /forget) or words are answered without quoting them back."""
    return msg.chat.type != "private"


def is_file_but_not_image(msg: Message) -> bool:
    return msg.document is not None and image_of(msg) is None


def too_big(img: Image) -> bool:
    return img.file_size is not None and img.file_size > MAX_DOWNLOAD_BYTES


_COMMAND = re.compile(r"^/([A-Za-z0-9_]{1,32})(?:@([A-Za-z0-9_]{1,64}))?(?:\s+(.*))?$", re.S)


def for_another_bot(text: str | None, bot_username: str) -> bool:
    """Whether `text` is a command addressed to another bot by name (`/cmd@OtherBot`): not ours to answer.
    Anything else that starts with "/" and is no command of ours (`/сolorize` with a Cyrillic с, `/ please`,
    `/😀`) is a person's words, answered as if the photo came without them."""
    m = _COMMAND.match((text or "").strip()[:512])
    return bool(m and m.group(2) and m.group(2).lower() != bot_username.lower())


def parse_command(text: str | None, bot_username: str) -> tuple[str, list[str]] | None:
    """`/cmd@Bot args` -> ("cmd", [args]); None if not a command or addressed to another bot."""
    if not text:
        return None
    m = _COMMAND.match(text.strip()[:512])
    if not m:
        return None
    cmd, target, rest = m.groups()
    if target and target.lower() != bot_username.lower():
        return None
    return cmd.lower(), (rest or "").split()[:8]

