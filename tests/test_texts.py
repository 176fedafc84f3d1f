"""Every text in every language: no missing key, the same placeholders as English, nothing left
unfilled, nothing over the Telegram limit of the place it is shown in (filled with the longest
values it can really get)."""

from __future__ import annotations

import re
import string

import pytest

from bot.app import COMMANDS
from bot.contract.options import shown
from bot.contract import paintings
from bot.contract.texts import DEFAULT_LANGUAGE, LANGUAGES, TEXTS, language_of, plural_form, render

# Telegram's limits, in UTF-16 code units as Telegram counts them.
MESSAGE, CAPTION, ALERT, COMMAND_DESCRIPTION = 4096, 1024, 200, 256
CAPTIONS = {"styles.caption", "note.animated", "caption.colorize", "caption.style", "caption.style_custom",
            "caption.compare", "caption.colorized_first", "caption.restore", "caption.restore_clean", "caption.restore_faces",
            "caption.restore_upscaled",
            "caption.restore_colorized", "caption.hints"}
ALERTS = {"style.photo_gone", "style.painting_as", "language.chosen", "unavailable", "button.unknown",
          "request.duplicate", "followup.working", "followup.expired", "followup.no_other_model",
          "restore.unavailable"}  # answerCallbackQuery
SAME_IN_EVERY_LANGUAGE = {"caption.intensity", "quote"}  # "Color: 150 %" is Spanish too; Brazil quotes as English does


def _longest_values() -> dict:
    """Each placeholder's longest real value: user words are cut by `shown`, lists are what the bot
    and worker really join, numbers at their widest."""
    from models import engines
    from models.style import presets

    named = [paintings.named(e["name"], lang) for e in presets.CATALOG for lang in LANGUAGES]
    every_engine = ", ".join(engines.names())
    return {"position": 99999, "limit_mb": 20, "queued": 99999, "started": 99999, "workers": 9999,
            "finished": 999999, "failed": 999999, "in_flight": 99, "max": 200, "width": 99999, "height": 99999,
            "limit_mp": 40, "name": shown("x" * 200), "names": max((paintings.catalogue(presets.names(), lang) for lang in LANGUAGES), key=len),
            "text": "x" * 60, "intensity": 200,
            "choices": max(", ".join(presets.names()), every_engine, key=len),
            "engine": max((e.label for e in engines.ENGINES), key=len), "painting": max(named, key=len),
            # progress and albums (worker/progress.py, worker/albums.py: a file is named in 33 characters at most)
            "working": "x" * 60, "percent": 100, "scale": 4, "count": 99999, "done": 10, "number": 10,
            "items": ", ".join(["x" * 40] * 10), "limit": 10}


VALUES = _longest_values()


def _placeholders(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def test_the_languages_of_the_issue_are_all_there():
    assert set(LANGUAGES) == {"en", "ru", "es", "pt", "de"} and LANGUAGES[0] == DEFAULT_LANGUAGE


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_key_renders_within_telegram_limits(lang):
    english = TEXTS[DEFAULT_LANGUAGE]
    table = TEXTS[lang]
    assert set(table) == set(english), f"{lang}: missing {set(english) - set(table)}, extra {set(table) - set(english)}"
    for key, template in table.items():
        forms = template if isinstance(template, dict) else {"": template}
        english_forms = english[key] if isinstance(english[key], dict) else {"": english[key]}
        for form, text_template in forms.items():
            assert _placeholders(text_template) == _placeholders(english_forms["other" if form else ""]), \
                f"{lang} {key} {form}: other placeholders"
        for count in (1, 2, 3, 5, 10, 11, 21, 22, 99999) if isinstance(template, dict) else (VALUES.get("count"),):
            text = render(key, lang, **{**VALUES, "count": count})
            assert text.strip() and not re.search(r"[{}]", text), f"{lang} {key}: {text!r}"
            limit = (COMMAND_DESCRIPTION if key.startswith("command.") else CAPTION if key in CAPTIONS
                     else ALERT if key in ALERTS else MESSAGE)
            assert _units(text) <= limit, f"{lang} {key}: {_units(text)} > {limit}"
        if lang != DEFAULT_LANGUAGE and key not in SAME_IN_EVERY_LANGUAGE:
            assert template != english[key], f"{lang} {key} is not translated"
    for op in ("colorize", "style", "style_custom"):  # an animation's note goes under the result's caption
        assert _units(render(f"caption.{op}", lang, **VALUES) + "\n" + render("note.animated", lang)) <= CAPTION


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_command_menu_exists_in_every_language(lang):
    for command in COMMANDS:
        assert re.fullmatch(r"[a-z0-9_]{1,32}", command)
        assert 1 <= _units(render(f"command.{command}", lang).strip()) <= COMMAND_DESCRIPTION


def test_every_preset_painting_has_a_title_in_every_language():
    """Captions name the painting in the user's language; the catalogue's own title and painter are the
    English ones (accents kept: "Fernand Léger"); a button's title fits a button."""
    from models.style import presets

    assert set(paintings.TABLE) == set(presets.names())
    for name in presets.names():
        entry = presets.entry(name)
        assert paintings.named(name, "en").startswith(f"“{entry['title']}”")
        for lang in LANGUAGES:
            assert paintings.TABLE[name][lang]["title"], f"{name} has no title in {lang}"
            assert len(paintings.button(name, lang)) <= paintings.BUTTON_MAX, f"{name} {lang}: too long for a button"
    assert paintings.named("leger", "de") == "„Formenkontrast“ (Fernand Léger)"
    assert paintings.named("munch", "ru") == "«Крик» (Эдвард Мунк)"
    assert paintings.named("sketch", "es") == "«Boceto de retrato a lápiz»"  # no painter: none invented


def test_plurals_follow_cldr_rules_in_every_language():
    """A text that counts has the forms its language needs (Babel's CLDR rules), and each reads right."""
    counting = {key for key, value in TEXTS[DEFAULT_LANGUAGE].items() if isinstance(value, dict)}
    assert {"album.colorize", "album.followup", "album.too_big", "refused.in_flight"} <= counting
    for lang in LANGUAGES:
        needed = {plural_form(lang, n) for n in range(0, 1001)}
        for key in counting:
            assert needed <= set(TEXTS[lang][key]) | {"other"} and "other" in TEXTS[lang][key], f"{lang} {key}"
    assert [render("album.colorize", "ru", count=n) for n in (1, 3, 5, 21)] == [
        "Раскрашиваю 1 изображение…", "Раскрашиваю 3 изображения…", "Раскрашиваю 5 изображений…",
        "Раскрашиваю 21 изображение…"]
    assert render("refused.in_flight", "en", count=1).startswith("You already have 1 photo in progress.")
    assert render("album.colorize", "de", count=2) == "Koloriere 2 Bilder…"


def test_telegram_language_codes_map_to_ours():
    assert language_of("es") == "es" and language_of("pt-br") == "pt" and language_of("de-AT") == "de"
    assert language_of("RU") == "ru" and language_of("zh-hans") == "en" and language_of(None) == "en"
    assert render("language.chosen", "pt-br") == render("language.chosen", "pt")
