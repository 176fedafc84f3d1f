"""The pieces of instant repeats and follow-ups on their own: cache keys, engine resolution, the
published engine info across versions, the job contract, the black-and-white test, the before/after picture."""

from __future__ import annotations

import numpy as np
from PIL import Image

from bot.contract import cache, followups
from bot.contract.job import Job
from bot.contract.options import ColorizeOptions, EngineInfo, StyleOptions, Vocabulary
from bot.contract.settings import Settings
from tests.test_job_contract import PREVIOUS_RELEASE_FIELDS

ECCV = EngineInfo("eccv16", "colorize", "ECCV", default=True, weights="w1")
SIGG = EngineInfo("siggraph17", "colorize", "SIGGRAPH", weights="w2")
EXEMPLAR = EngineInfo("exemplar", "colorize", "Exemplar", needs_reference=True)
ADAIN = EngineInfo("adain", "style", "AdaIN", aliases=("fast",), default=True, weights="w3")
VOCAB = Vocabulary(("vangogh", "munch"), (ADAIN, ECCV, EXEMPLAR, SIGG))


def test_engine_info_of_an_older_worker_reads_and_round_trips():
    old = {"name": "eccv16", "family": "colorize", "label": "ECCV", "aliases": [], "needs_reference": False}
    info = EngineInfo.from_dict(old)
    assert info.default is False and info.weights is None
    assert EngineInfo.from_dict(ECCV.to_dict()) == ECCV


def test_engine_resolution():
    assert VOCAB.resolved(None, "colorize") == ECCV and VOCAB.resolved("siggraph17", "colorize") == SIGG
    assert VOCAB.resolved("adain", "colorize") is None and VOCAB.resolved("nosuch", "colorize") is None
    two_defaults = Vocabulary((), (ECCV, EngineInfo("siggraph17", "colorize", "S", default=True)))
    assert two_defaults.resolved(None, "colorize") is None, "workers disagree: not certain"
    assert Vocabulary((), (SIGG,)).resolved(None, "colorize") is None, "nobody said: not certain"


def test_another_model_goes_round_and_skips_reference_engines():
    assert VOCAB.next_engine("eccv16", "colorize") == "siggraph17"
    assert VOCAB.next_engine("siggraph17", "colorize") == "eccv16"
    assert Vocabulary((), (ECCV,)).next_engine("eccv16", "colorize") is None


def test_cache_keys():
    default = cache.key_for_request(VOCAB, "U1", "colorize", ColorizeOptions(), False)
    assert default == cache.key_for_request(VOCAB, "U1", "colorize", ColorizeOptions(engine="eccv16"), False)
    assert default == cache.key("U1", "colorize", ColorizeOptions(), "eccv16", "w1"), "the worker's key"
    others = {cache.key_for_request(VOCAB, "U2", "colorize", ColorizeOptions(), False),
              cache.key_for_request(VOCAB, "U1", "colorize", ColorizeOptions(intensity=150), False),
              cache.key_for_request(VOCAB, "U1", "colorize", ColorizeOptions(engine="siggraph17"), False),
              cache.key("U1", "colorize", ColorizeOptions(), "eccv16", "other weights"),
              cache.key_for_request(VOCAB, "U1", "style", StyleOptions("vangogh"), False)}
    assert default not in others and len(others) == 5
    assert cache.key_for_request(VOCAB, "U1", "style", StyleOptions("vangogh", engine="fast"), False) == \
        cache.key_for_request(VOCAB, "U1", "style", StyleOptions("vangogh"), False)
    for op, opts, ref in (("style", StyleOptions(None), True), ("colorize", ColorizeOptions(), True),
                          ("styles", None, False)):
        assert cache.key_for_request(VOCAB, "U1", op, opts, ref) is None
    assert cache.key_for_request(VOCAB, None, "colorize", ColorizeOptions(), False) is None
    assert default.startswith("paintbot:cache:") and "U1" not in default


def test_cached_entries_read_back_and_junk_is_nothing():
    entry = cache.Cached("FILE", True, "eccv16", colorized_first=True)
    assert cache.Cached.from_json(entry.to_json()) == entry
    assert cache.Cached.from_json(b"{not json") is None and cache.Cached.from_json(b'{"engine": 1}') is None


def test_settings_read_the_cache_ttl():
    assert Settings.from_env({"TELEGRAM_BOT_TOKEN": "t"}).result_cache_ttl == 7 * 24 * 3600
    assert Settings.from_env({"TELEGRAM_BOT_TOKEN": "t", "PAINTBOT_RESULT_CACHE_TTL": "60"}).result_cache_ttl == 60
    assert Settings.from_env({"TELEGRAM_BOT_TOKEN": "t", "PAINTBOT_RESULT_CACHE_TTL": "-5"}).result_cache_ttl == 0


def test_jobs_of_this_feature_keep_the_contract():
    more = Job(op="colorize", chat_id=5, request_id=-(9 * 64 + 1), reply_to=9, file_id="F", as_document=False,
               user_id=6, options=ColorizeOptions("eccv16", 150), file_unique_id="U")
    compare = Job(op="compare", chat_id=5, request_id=-(9 * 64 + 5), reply_to=9, file_id="F", as_document=False,
                  reference_file_id="R", user_id=6)
    for job in (more, compare):
        d = job.to_dict()
        assert set(d) <= PREVIOUS_RELEASE_FIELDS
        assert Job.from_dict(d) == job
    assert more.to_dict()["options"]["file_unique_id"] == "U"
    assert more.job_id != compare.job_id


def test_intensity_steps_stay_in_range():
    assert [followups.stepped(i, "more") for i in (0, 100, 180, 200)] == [50, 150, 200, 200]
    assert [followups.stepped(i, "less") for i in (0, 30, 100, 200)] == [0, 0, 50, 150]


def test_keyboard_fits_telegram_and_hides_what_does_nothing():
    rid = followups.new_id()
    kb = followups.keyboard(rid, "colorize", {"intensity": 200}, "ru", [ECCV, EXEMPLAR]).to_dict()
    data = [b["callback_data"] for row in kb["inline_keyboard"] for b in row]
    assert all(len(d.encode()) <= 64 for d in data)
    assert {followups.parse(d)[1] for d in data} == {"less", "paint", "ba"}, "one colouriser that needs no reference"
    offered = followups.keyboard(rid, "colorize", {}, "en", VOCAB.engines).to_dict()
    assert {followups.parse(b["callback_data"])[1] for row in offered["inline_keyboard"] for b in row} == {
        "more", "less", "model", "paint", "ba"}
    styled = followups.keyboard(rid, "style", {}, "en", VOCAB.engines).to_dict()
    assert {followups.parse(b["callback_data"])[1] for row in styled["inline_keyboard"] for b in row} == {"paint", "ba"}


def test_black_and_white_detection():
    from worker.chain import is_black_and_white

    rng = np.random.default_rng(0)
    gray = rng.integers(0, 255, (120, 160), dtype=np.uint8)
    noisy_scan = np.stack([gray, gray, gray], -1).astype(int) + rng.integers(-2, 3, (120, 160, 3))
    sepia = np.stack([gray * 1.0, gray * 0.85, gray * 0.62], -1)
    colour = rng.integers(0, 255, (120, 160, 3))
    assert is_black_and_white(Image.fromarray(gray, "L"))
    assert is_black_and_white(Image.fromarray(np.clip(noisy_scan, 0, 255).astype(np.uint8)))
    assert not is_black_and_white(Image.fromarray(sepia.astype(np.uint8)))
    assert not is_black_and_white(Image.fromarray(colour.astype(np.uint8)))


def test_before_after_picture():
    from models.sheet import BEFORE_AFTER_MAX, before_after

    wide_before, wide_after = Image.new("L", (4000, 3000), 128), Image.new("RGB", (1000, 750), (200, 30, 30))
    wide = before_after(wide_before, wide_after, "До", "После")
    assert max(wide.size) <= BEFORE_AFTER_MAX and wide.height > wide.width, "a wide photo: one above the other"
    tall = before_after(Image.new("L", (300, 400), 128), Image.new("RGB", (300, 400), (30, 30, 200)), "Vorher",
                        "Nachher")
    assert tall.width > 2 * 300 and tall.height > 400, "side by side, under label bands"
    arr = np.asarray(tall)
    band = arr[:40, :300]
    assert (band > 200).any() and (band < 60).any(), "a label is written on its band"
    assert arr[-1, -1].tolist() == [30, 30, 200] and abs(int(arr[-1, 0, 0]) - 128) <= 1
