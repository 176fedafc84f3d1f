"""The preset paintings as people name them: titles and painters in each language, and a person's words
back to a preset.

Why: a preset's name ("vangogh") is a key, not a word anyone reads or types. People see the painting's
title in their language, quoted as their language quotes ("«Звёздная ночь» (Винсент ван Гог)",
"„Die Sternennacht“ (Vincent van Gogh)"), a short title on a button, and they may type any title, painter or
alias of any language (`/style van gogh`, `/style the scream`, `/style звёздная ночь`): case, accents,
punctuation and a leading article do not matter. A name that matches none gets the closest ones.

The table is bot/contract/paintings.json (one entry per preset of models/style/catalog.json, tests/test_texts.py
holds them together); shared by the bot (buttons, toasts, parsing) and the workers (captions, /styles).
"""

from __future__ import annotations

import difflib
import functools
import json
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from babel.lists import format_list

from bot.contract.texts import DEFAULT_LANGUAGE, language_of, render

TABLE: dict[str, dict] = json.loads(Path(__file__).with_name("paintings.json").read_text(encoding="utf-8"))
BUTTON_MAX = 22  # characters of a title on a button, PER_ROW buttons to a row on a phone
PER_ROW = 2
# Leading articles a person may leave out ("starry night" for "The Starry Night"), in the languages we speak.
_ARTICLES = {"the", "a", "an", "die", "der", "das", "la", "el", "los", "las", "o", "os", "as"}


def _entry(name: str, lang: str | None) -> dict:
    entry = TABLE.get(name) or {}
    return entry.get(language_of(lang)) or entry.get(DEFAULT_LANGUAGE) or {"title": name}


def title(name: str, lang: str | None) -> str:
    """The painting's title in `lang`, quoted as that language quotes: «Крик», „Der Schrei“, “The Scream”."""
    return render("quote", lang, text=_entry(name, lang)["title"])


def named(name: str, lang: str | None) -> str:
    """The painting as a caption, toast or list names it: its quoted title and, when known, its painter."""
    painter = _entry(name, lang).get("painter")
    return f"{title(name, lang)} ({painter})" if painter else title(name, lang)


def button(name: str, lang: str | None) -> str:
    """The painting on a button: its title, or a shorter one where the title is too long for a button."""
    entry = _entry(name, lang)
    return entry.get("button") or entry["title"]


def either(names: Iterable[str], lang: str | None) -> str:
    """Paintings offered as a choice, as the language lists them (CLDR via Babel): "“The Scream” (Edvard Munch)
    or “Udnie” (Francis Picabia)", "«Крик» (Эдвард Мунк) или «Удни» (Франсис Пикабиа)"."""
    return format_list([named(n, lang) for n in names], style="or", locale=language_of(lang))


def catalogue(names: Iterable[str], lang: str | None) -> str:
    """The presets one to a line, as /styles lists them under its picture."""
    return "\n".join(f"• {named(n, lang)}" for n in names)


def _plain(text: str) -> str:
    """`text` as it is compared: no case, accents (ё is е), punctuation or repeated spaces."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    letters = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^\w]+", " ", letters).split())


def _without_article(text: str) -> str:
    first, _, rest = text.partition(" ")
    return rest if rest and first in _ARTICLES else text


@functools.cache
def _spellings() -> dict[str, str]:
    """Every way of naming a preset, plain (see `_plain`), to its name: the name itself, its aliases, and in
    every language its title (with and without its article), its short title, its painter and the
    painter's surname."""
    found: dict[str, str] = {}
    for name, entry in TABLE.items():
        words = [name, *entry.get("aliases", ())]
        for lang, said in entry.items():
            if lang == "aliases":
                continue
            words += [said["title"], said.get("button", "")]
            if said.get("painter"):
                words += [said["painter"], said["painter"].split()[-1]]
        for word in words:
            plain = _plain(word)
            for spelling in {plain, _without_article(plain)} - {""}:
                found.setdefault(spelling, name)
    return found


def resolve(words: str, presets: Iterable[str]) -> str | None:
    """The preset of `presets` that `words` name (any title, painter or alias of any language), or None."""
    plain = _plain(words)
    available = set(presets)
    for spelling in (plain, _without_article(plain), plain.replace(" ", "")):
        name = _spellings().get(spelling)
        if name in available:
            return name
    return None


def closest(words: str, presets: Iterable[str], n: int = 3) -> list[str]:
    """The presets whose names are closest to `words` (a misspelt one), best first; empty when none is close."""
    available = set(presets)
    spellings = {s: name for s, name in _spellings().items() if name in available}
    found: list[str] = []
    for spelling in difflib.get_close_matches(_plain(words), list(spellings), n=10, cutoff=0.6):
        if spellings[spelling] not in found:
            found.append(spellings[spelling])
    return found[:n]
