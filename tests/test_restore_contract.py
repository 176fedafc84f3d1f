"""What the bot and the workers agree on for /restore (issue 23): the operation and its options on the queue,
the words that make them, the Repair button (only on a damaged photo, only where some worker repairs), the
result cache's record across versions, and the caption, in every language."""

from __future__ import annotations

import json

import pytest

from bot.contract import cache, captions, followups
from bot.contract.job import Job, Op
from bot.contract.options import BadOptions, ColorizeOptions, EngineInfo, RestoreOptions, Vocabulary
from bot.contract.texts import LANGUAGES, render

ECCV = EngineInfo("eccv16", "colorize", "ECCV", default=True, weights="w1")
SIGG = EngineInfo("siggraph17", "colorize", "SIGGRAPH", weights="w2")
REPAIR = EngineInfo("repair", "restore", "Old-photo repair (Wan et al.) + LaMa", default=True, weights="w9")
VOCAB = Vocabulary(("vangogh",), (ECCV, SIGG, REPAIR))


def test_restore_options_from_words_and_through_the_queue():
    assert RestoreOptions.parse([], VOCAB) == RestoreOptions(color=True, engine=None)
    for word in ("nocolor", "NoColour", "no-color", "no_colour", "bw"):
        assert RestoreOptions.parse([word], VOCAB) == RestoreOptions(color=False), word
    assert RestoreOptions.parse(["noup", "faces", "50"], VOCAB) == RestoreOptions(True, 50, False)
    assert RestoreOptions.parse(["nofaces", "nocolor"], VOCAB) == RestoreOptions(False, 0, True)
    assert RestoreOptions.parse(["norepair"], VOCAB) == RestoreOptions(repair=False)
    assert RestoreOptions.parse(["faces"], VOCAB) == RestoreOptions(), "faces alone: the default strength"
    for word in ("150", "upscale", "repair"):  # no engine is chosen by name: one restoration, its steps
        with pytest.raises(BadOptions) as err:
            RestoreOptions.parse([word], VOCAB)
        assert err.value.code == "options.restore_syntax" and err.value.params == {"name": word}
    with pytest.raises(BadOptions):
        RestoreOptions.parse(["faces", "150"], VOCAB)
    job = Job(Op.RESTORE, 5, 7, 7, "F", options=RestoreOptions(color=False, faces=30, upscale=False))
    again = Job.from_dict(json.loads(json.dumps(job.to_dict())))
    assert again == job and again.op.family == "restore"
    assert RestoreOptions.from_dict({}) == RestoreOptions(), "an older bot's job: the defaults"
    keys = {o.cache_key() for o in (RestoreOptions(), RestoreOptions(color=False), RestoreOptions(faces=0),
                                    RestoreOptions(faces=50), RestoreOptions(upscale=False),
                                    RestoreOptions(repair=False))}
    assert len(keys) == 6


def test_repair_is_offered_only_for_a_damaged_photo_where_a_worker_repairs():
    def actions(markup):
        return [b.callback_data.rsplit(":", 1)[1] for row in markup.inline_keyboard for b in row]

    damaged = followups.keyboard("abcdefgh", Op.COLORIZE, {}, "en", VOCAB.engines, damaged=True)
    assert "repair" in actions(damaged)
    assert "repair" not in actions(followups.keyboard("abcdefgh", Op.COLORIZE, {}, "en", VOCAB.engines))
    no_repairer = (ECCV, SIGG, EngineInfo("upscale", "restore", "Real-ESRGAN"))  # a restorer, but not the repairer
    assert "repair" not in actions(followups.keyboard("abcdefgh", Op.COLORIZE, {}, "en", no_repairer, damaged=True))
    upscaler = EngineInfo("upscale", "restore", "Real-ESRGAN")
    small = followups.keyboard("abcdefgh", Op.COLORIZE, {}, "en", (*VOCAB.engines, upscaler), enhance=True)
    assert "enhance" in actions(small), "a small photo, and a worker runs a restore step: Enhance"
    assert "enhance" not in actions(followups.keyboard("abcdefgh", Op.COLORIZE, {}, "en", (*VOCAB.engines, upscaler)))
    assert "enhance" not in actions(followups.keyboard("abcdefgh", Op.COLORIZE, {}, "en", VOCAB.engines, enhance=True))
    restored = followups.keyboard("abcdefgh", Op.RESTORE, {}, "en", VOCAB.engines, damaged=True)
    assert actions(restored) == ["paint", "ba"], "a restored result: paint it, before/after"
    assert followups.parse("fu:abcdefgh:repair") == ("abcdefgh", "repair")
    assert followups.parse("fu:abcdefgh:enhance") == ("abcdefgh", "enhance")
    ids = {followups.request_id(7, a, ("vangogh",)) for a in (*followups.ACTIONS, "s:vangogh")}
    assert len(ids) == len(followups.ACTIONS) + 1, "every action of a message has its own job"


def test_a_cached_restored_result_reads_across_versions():
    entry = cache.Cached("FILE", False, "repair", damaged=False, repaired=14, colorizer="eccv16", faces=2, upscaled=2,
                         enhance=True)
    assert cache.Cached.from_json(entry.to_json()) == entry
    older = cache.Cached.from_json(json.dumps({"file_id": "FILE", "engine": "eccv16"}))
    assert older == cache.Cached("FILE", False, "eccv16") and not older.damaged and older.repaired is None
    colourised = cache.Cached("FILE", False, "eccv16", damaged=True)
    assert cache.Cached.from_json(colourised.to_json()).damaged
    assert cache.Cached.from_json(json.dumps({"file_id": "F", "engine": "eccv16", "small": True})).enhance, \
        "the release before wrote 'small' (Enhance offered under a small photo)"
    assert cache.key("U", Op.RESTORE, RestoreOptions(), "repair", "w9") != \
        cache.key("U", Op.COLORIZE, ColorizeOptions(), "repair", "w9")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_caption_says_what_was_done(lang):
    done = captions.result_caption(Op.RESTORE, RestoreOptions(), "REPAIRER", lang, repaired=14,
                                   colorizer_label="COLOURISER")
    assert "14" in done and "REPAIRER" in done and "COLOURISER" in done
    assert render("caption.restore_colorized", lang, engine="COLOURISER") in done
    enhanced = captions.result_caption(Op.RESTORE, RestoreOptions(), "REPAIRER", lang, repaired=3, faces=2, upscaled=2)
    assert render("caption.restore_faces", lang, count=2) in enhanced
    assert render("caption.restore_upscaled", lang, scale=2) in enhanced
    clean = captions.result_caption(Op.RESTORE, RestoreOptions(color=False), "REPAIRER", lang, repaired=0)
    assert clean == render("caption.restore_clean", lang, engine="REPAIRER")
