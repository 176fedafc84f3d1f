"""Instant repeats: a result Telegram already holds is sent again by its file_id, with no job and no queue.

A result is keyed by what fully decides it: the input's `file_unique_id` (the same for a photo forwarded
around or sent again, across chats and bots' file_ids), the operation, its canonical options with the
engine resolved to the name the worker runs, and that engine's weights digest
(bot/contract/options.py EngineInfo.weights, published by the workers). After sending a result the worker stores the result's
Telegram file_id under that key with a TTL (PAINTBOT_RESULT_CACHE_TTL, a week by default; 0 turns the cache
off); a later identical request is answered by the bot from here. Ids and engine names only, never content.

The bot uses the cache only when it knows for certain which engine the worker would run: a request naming
no engine while the workers disagree on the default (or did not say) goes to the queue as before.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass

import redis

from bot.contract import keys, records
from bot.contract.job import Op
from bot.contract.options import Options, Vocabulary

log = logging.getLogger("paintbot")


@dataclass(frozen=True)
class Cached:
    """A stored result: what to send again, and what the caption names."""

    file_id: str
    as_document: bool
    engine: str  # the engine that made it (its label goes in the caption)
    colorized_first: bool = False  # a black-and-white photo was colourised before it was painted
    damaged: bool = False  # the photo has scratches or dust: a colourised result offers "Repair"
    repaired: int | None = None  # a restored result: how many damaged areas were filled
    colorizer: str | None = None  # a restored result that was colourised after: by which engine
    faces: int = 0  # a restored result: faces restored
    upscaled: int | None = None  # a restored result: enlarged this many times
    enhance: bool = False  # "Enhance" would change the photo (small enough to enlarge, or faces found): offered

    def to_json(self) -> str:
        return json.dumps({"file_id": self.file_id, "document": self.as_document, "engine": self.engine,
                           "colorized_first": self.colorized_first, "damaged": self.damaged,
                           "repaired": self.repaired, "colorizer": self.colorizer, "faces": self.faces,
                           "upscaled": self.upscaled, "enhance": self.enhance})

    @classmethod
    def from_json(cls, raw: bytes | str) -> "Cached | None":
        """The record, whichever release wrote it: unknown fields are ignored, missing optional ones take
        their defaults; None when it lacks what a result cannot do without (its file id, its engine)."""
        try:
            d = json.loads(raw)
            repaired = d.get("repaired")
            return cls(str(d["file_id"]), bool(d.get("document")), str(d["engine"]), bool(d.get("colorized_first")),
                       bool(d.get("damaged")), int(repaired) if repaired is not None else None,
                       str(d["colorizer"]) if d.get("colorizer") else None, int(d.get("faces") or 0),
                       int(d["upscaled"]) if d.get("upscaled") else None, bool(d.get("enhance", d.get("small"))))  # "small": the release before
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


def key(unique_id: str, op: Op, options: Options, engine: str, weights: str | None) -> str:
    """The Redis key of a result: a digest, so that no user-chosen text ends up in a key name."""
    canonical = "|".join((unique_id, op, options.replace(engine=engine).cache_key(), engine, weights or "-"))
    return keys.cached_result(hashlib.sha256(canonical.encode()).hexdigest()[:32])


def serves(unique_id: str | None, op: Op, options: Options | None, has_reference: bool) -> bool:
    """Whether the cache keeps results of such a request: not without a unique id, nor for an operation or
    a second image (a custom style, a colour reference) whose result the key does not decide."""
    if unique_id is None or Op(op).family is None or options is None or has_reference or op == Op.HINTS:
        return False  # a result with hints is one person's choice of colours: never served to another request
    return op != Op.STYLE or options.style is not None


def key_for_request(vocabulary: Vocabulary, unique_id: str | None, op: Op, options: Options | None,
                    has_reference: bool) -> str | None:
    """The key the bot looks a request up by; None when the cache cannot answer it (`serves`), or the bot
    cannot resolve its engine to the one the worker would run."""
    if not serves(unique_id, op, options, has_reference):
        return None
    info = vocabulary.resolved(options.engine, Op(op).family)
    if info is None:
        return None
    return key(unique_id, op, options, info.name, info.weights)


def lookup(conn: redis.Redis, cache_key: str) -> Cached | None:
    raw = conn.get(cache_key)
    return Cached.from_json(raw) if raw else None


def store(conn: redis.Redis, cache_key: str, result: Cached, ttl: int, owner: int | None = None) -> None:
    """Keep `result` for `ttl` s, noted as `owner`'s (whose photo it is: `/forget` deletes it)."""
    if ttl > 0:
        conn.set(cache_key, result.to_json(), ex=ttl)
        records.own(conn, owner, cache_key, ttl)
