"""Everything paintbot says in a chat, by key: one file per language in bot/contract/locales/.

The bot and the worker both speak, and errors raised deeper down (models/, the options parser)
carry a code and parameters rather than English sentences; `render` turns either into words.
A language is added by adding its file (tests/test_texts.py checks it has every key, the same
placeholders and Telegram's limits); English is the fallback for any other language.

A text that counts something ("{count} pictures") is an object of its plural forms by CLDR category
({"one": ..., "few": ..., "many": ..., "other": ...}); Babel's CLDR rules pick the form for the
language and the number (Russian: 1 картина, 3 картины, 5 картин), so no language's plural rule is
written by hand here. The number is the `count` parameter.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from babel import Locale

LOCALES = Path(__file__).with_name("locales")
DEFAULT_LANGUAGE = "en"
TEXTS: dict[str, dict[str, str | dict[str, str]]] = {p.stem: json.loads(p.read_text(encoding="utf-8"))
                                    for p in sorted(LOCALES.glob("*.json"))}
LANGUAGES: tuple[str, ...] = (DEFAULT_LANGUAGE, *sorted(set(TEXTS) - {DEFAULT_LANGUAGE}))


def language_of(code: str | None) -> str:
    """One of LANGUAGES for an IETF tag as Telegram gives it ("pt-br", "de", None): English if we lack it."""
    primary = (code or "").split("-")[0].split("_")[0].strip().lower()
    return primary if primary in TEXTS else DEFAULT_LANGUAGE


def render(key: str, lang: str | None = None, **params) -> str:
    """The text `key` in `lang` (else English), its {placeholders} filled from `params`."""
    lang = language_of(lang)
    template = TEXTS[lang].get(key) or TEXTS[DEFAULT_LANGUAGE][key]
    if isinstance(template, dict):  # plural forms: the one CLDR picks for `count` in this language
        template = template.get(plural_form(lang, params["count"])) or template["other"]
    return template.format_map(params)


@functools.cache
def _plural_rule(lang: str):
    return Locale.parse(lang).plural_form


def plural_form(lang: str, count: int) -> str:
    """The CLDR plural category of `count` in `lang`: "one", "few", "many" or "other" (Babel's rules)."""
    return _plural_rule(language_of(lang))(abs(count))


def render_error(exc: Exception, lang: str | None = None) -> str:
    """An error carrying `code` and `params` (models.errors.InputError, bot.contract.options.BadOptions), in words."""
    return render(exc.code, lang, **exc.params)
