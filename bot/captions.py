"""The caption of a result: what was done, by which model, and that it is neither a record of the past nor
a real painting. One function for the worker (a fresh result) and the bot (a result sent again from the
cache, bot/cache.py), so that both say the same. Plain Python: the preset catalogue is read as data."""

from __future__ import annotations

import json
from functools import lru_cache

from bot.options import Options
from bot.requests import CATALOG
from bot.texts import render


@lru_cache(maxsize=1)
def _catalog() -> dict[str, dict]:
    return {e["name"]: e for e in json.loads(CATALOG.read_text())}


def painting(name: str) -> str:
    """A preset as a caption names it: "The Starry Night (Vincent van Gogh)", the title alone if unattributed."""
    entry = _catalog().get(name)
    if entry is None:
        return name
    return f"{entry['title']} ({entry['artist']})" if entry.get("year") else entry["title"]


def result_caption(op: str, options: Options, engine_label: str, lang: str | None, like: bool = False,
                   colorized_first: bool = False, animated: bool = False) -> str:
    """`like`: coloured after the user's colour photo; `colorized_first`: a black-and-white photo was
    colourised by the default colouriser before it was painted keeping those colours."""
    if op == "colorize":
        text = render("caption.colorize_like" if like else "caption.colorize", lang, engine=engine_label)
    elif options.style is None:
        text = render("caption.style_custom", lang, engine=engine_label)
    else:
        text = render("caption.style", lang, engine=engine_label, painting=painting(options.style))
    if colorized_first:
        text = f"{text}\n{render('caption.colorized_first', lang)}"
    return f"{text}\n{render('note.animated', lang)}" if animated else text
