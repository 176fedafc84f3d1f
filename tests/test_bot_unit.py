"""The bot's pure rules: command parsing, style options, settings, secret redaction."""

import logging
import sys
import subprocess

import pytest

from bot.contract.logs import RedactSecrets
from bot.contract.options import BadOptions, ColorizeOptions, EngineInfo, StyleOptions, Vocabulary
from bot.requests import parse_command
from models.style.presets import names as catalogue
from bot.contract.settings import ConfigError, Settings
from bot.contract.texts import render_error

PRESETS = tuple(catalogue())  # as the workers publish them
VOCABULARY = Vocabulary(PRESETS, (
    EngineInfo("siggraph17", "colorize", "SIGGRAPH 2017 model"), EngineInfo("eccv16", "colorize", "ECCV 2016 model"),
    EngineInfo("adain", "style", "AdaIN", ("fast",)), EngineInfo("gatys", "style", "Gatys", ("hq",))))


def test_parse_command_forms():
    assert parse_command("/colorize", "PaintBot") == ("colorize", [])
    assert parse_command("/colorize@PaintBot", "paintbot") == ("colorize", [])
    assert parse_command("/style vangogh 60 keep-colors", "PaintBot") == ("style", ["vangogh", "60", "keep-colors"])
    assert parse_command("/style@OtherBot vangogh", "PaintBot") is None  # addressed to another bot
    assert parse_command("hello /style", "PaintBot") is None
    assert parse_command(None, "PaintBot") is None
    # A hostile, very long caption is cut, not choked on.
    cmd, args = parse_command("/style " + "x" * 100_000, "PaintBot")
    assert cmd == "style" and len(args) <= 8


def test_style_options():
    names = PRESETS
    assert "vangogh" in names
    assert StyleOptions.parse(["vangogh"], VOCABULARY) == StyleOptions("vangogh", 1.0, False, None)
    assert StyleOptions.parse(["VanGogh", "60", "keep-colours", "hq"], VOCABULARY) == StyleOptions(
        "vangogh", 0.6, True, "gatys")
    assert StyleOptions.parse(["fast", "munch"], VOCABULARY) == StyleOptions("munch", 1.0, False, "adain")
    assert StyleOptions.parse([], VOCABULARY) == StyleOptions()


@pytest.mark.parametrize("args", [["nosuchstyle"], ["<b>x</b>"], ["vangogh", "160"], ["vangogh", "munch"],
                                  ["vangogh", "²"], ["vangogh", "gatys", "adain"]])
def test_style_options_refused_with_help(args):
    with pytest.raises(BadOptions) as e:
        StyleOptions.parse(args, VOCABULARY)
    assert len(render_error(e.value)) < 400


@pytest.mark.parametrize("words, preset", [
    ("van gogh", "vangogh"), ("starry night", "vangogh"), ("Munch", "munch"), ("The Scream", "munch"),
    ("звёздная ночь", "vangogh"), ("ЗВЕЗДНАЯ НОЧЬ", "vangogh"), ("Der Schrei", "munch"), ("el grito", "munch"),
    ("A Noite Estrelada", "vangogh"), ("Fernand Leger", "leger"), ("Леже", "leger"), ("great wave", "hokusai"),
    ("Кацусика Хокусай", "hokusai"), ("Frau mit Hut", "matisse"), ("composición vii", "kandinsky")])
def test_paintings_are_named_naturally_in_any_language(words, preset):
    """Titles, painters and aliases of every language, case, accents and articles aside, with options around."""
    assert StyleOptions.parse(words.split(), VOCABULARY).style == preset
    assert StyleOptions.parse([*words.split(), "60", "hq"], VOCABULARY) == StyleOptions(preset, 0.6, False, "gatys")
    assert StyleOptions.parse(["fast", *words.split()], VOCABULARY) == StyleOptions(preset, 1.0, False, "adain")


def test_an_unknown_painting_brings_the_closest_ones():
    from bot.contract import paintings

    for words, closest in ((["scraem"], ("munch",)), (["van", "gok"], ("vangogh",)), (["strry", "nigt"], ("vangogh",))):
        with pytest.raises(BadOptions) as e:
            StyleOptions.parse(words, VOCABULARY)
        assert e.value.code == "options.unknown_style" and e.value.params["suggestions"] == closest
    with pytest.raises(BadOptions) as e:
        StyleOptions.parse(["picasso"], VOCABULARY)
    assert e.value.params["suggestions"] == () and "/styles" in render_error(e.value)
    assert paintings.either(["munch", "picabia"], "ru") == "«Крик» (Эдвард Мунк) или «Удни» (Франсис Пикабиа)"


def test_colorize_options():
    assert ColorizeOptions.parse([], VOCABULARY) == ColorizeOptions()
    assert ColorizeOptions.parse(["ECCV16", "150"], VOCABULARY) == ColorizeOptions("eccv16", 150)
    assert ColorizeOptions.parse(["40%"], VOCABULARY) == ColorizeOptions(None, 40)
    for words, code in ((["pix2pix"], "options.unknown_engine"), (["250"], "options.intensity_range"),
                        (["eccv16", "siggraph17"], "options.unknown_engine")):
        with pytest.raises(BadOptions) as e:
            ColorizeOptions.parse(words, VOCABULARY)
        assert e.value.code == code
    assert "siggraph17, eccv16" in render_error(BadOptions("options.unknown_engine", name="x",
                                                           choices=", ".join(VOCABULARY.names("colorize"))))
    # Before any worker registered its engines, an engine-like word is passed on for the worker to check.
    assert ColorizeOptions.parse(["instance"], Vocabulary(PRESETS)).engine == "instance"
    assert StyleOptions.parse(["vangogh", "hq"], Vocabulary(PRESETS)).engine == "hq"
    with pytest.raises(BadOptions, match="options.unknown_style"):
        StyleOptions.parse(["vangoghh"], Vocabulary(PRESETS))


def test_options_round_trip_and_cache_keys():
    for opts in (ColorizeOptions(), ColorizeOptions("eccv16", 0), StyleOptions("munch", 0.35, True, "adain"),
                 StyleOptions()):
        again = type(opts).from_dict(opts.to_dict())
        assert again == opts and again.cache_key() == opts.cache_key()
    assert ColorizeOptions().cache_key() != ColorizeOptions(intensity=150).cache_key()
    assert StyleOptions("munch").cache_key() != StyleOptions("munch", keep_colors=True).cache_key()
    with pytest.raises(ValueError):
        StyleOptions(strength=1.5)


def test_settings_require_token_and_hide_secrets():
    with pytest.raises(ConfigError, match="BotFather"):
        Settings.from_env({})
    s = Settings.from_env({"TELEGRAM_BOT_TOKEN": "123:SECRET", "REDIS_URL": "redis://:hunter2@redis:6379/0",
                           "PAINTBOT_TELEGRAM_API": "http://127.0.0.1:9/", "PAINTBOT_ALLOWED_CHATS": "1, -100"})
    assert s.bot_base_url == "http://127.0.0.1:9/bot" and s.file_base_url == "http://127.0.0.1:9/file/bot"
    assert s.allowed_chats == {1, -100}
    assert "SECRET" not in repr(s) and "hunter2" not in repr(s)
    assert set(s.secrets) == {"123:SECRET", "hunter2"}
    with pytest.raises(ConfigError, match="PAINTBOT_QUEUE_CAP"):
        Settings.from_env({"TELEGRAM_BOT_TOKEN": "1:x", "PAINTBOT_QUEUE_CAP": "lots"})


def test_redaction_covers_messages_args_and_tracebacks():
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    h = Keep()
    h.addFilter(RedactSecrets(("123:SECRET", "hunter2")))
    logger = logging.getLogger("test.redact")
    logger.addHandler(h)
    try:
        logger.warning("GET https://api.telegram.org/bot%s/getMe", "123:SECRET")
        try:
            raise RuntimeError("redis://:hunter2@host failed")
        except RuntimeError:
            logger.exception("boom")
    finally:
        logger.removeHandler(h)
    text = "\n".join(records)
    assert "SECRET" not in text and "hunter2" not in text and text.count("***") >= 2


def test_bot_never_imports_torch():
    code = "import sys, bot.main, bot.app, bot.handlers, bot.queue; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
