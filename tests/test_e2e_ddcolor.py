"""`/colorize ddcolor`, `/colorize ddcolor-tiny` and `/colorize chromagan` end to end (fake Bot API, real Redis,
the real bot and worker; one stack, one worker burst for all three) and `--model ddcolor-tiny` on the CLI, with
stand-ins of the published layouts (ChromaGAN's as a compact Keras .h5)."""

from __future__ import annotations

import io
import sys

import pytest
from PIL import Image

from models.colorize import chromagan, ddcolor
from tests.conftest import SHARED
from tests.harness import chroma, gray_photo, write_chromagan_standin, write_shared_standin

sys.path.insert(0, str(SHARED / "weights"))
from standin import layout  # noqa: E402

SMALL = ddcolor.DDColorSettings(input_size=64)  # a small network input keeps the test quick


@pytest.fixture(scope="module")
def ddcolor_files(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("ddcolor")
    return {e.files[0].filename: write_shared_standin(folder / e.files[0].filename, layout("ddcolor.json", size),
                                                      seed)
            for e, size, seed in ((ddcolor.DDColorEngine, "large", 2302), (ddcolor.DDColorTinyEngine, "tiny", 2301))}


@pytest.fixture(scope="module")
def chromagan_file(tmp_path_factory) -> dict:
    name = chromagan.WEIGHTS.filename
    return {name: write_chromagan_standin(tmp_path_factory.mktemp("chromagan") / name, seed=7)}


def test_colorize_ddcolor_tiny_and_chromagan(engines_with, ddcolor_files, chromagan_file):
    svc = engines_with({**ddcolor_files, **chromagan_file}, {"ddcolor": SMALL, "ddcolor-tiny": SMALL})
    tg = svc.telegram
    group = tg.group_chat(-100621)
    photo = tg.user_sends_photo(group, gray_photo(160, 120), user=tg.user(62))
    tg.user_sends_text(group, "/colorize ddcolor", user=tg.user(62), reply_to=photo["message_id"])
    private = tg.private_chat(622)
    tg.user_sends_photo(private, gray_photo(100, 80, seed=2), caption="/colorize ddcolor-tiny 150")
    tg.user_sends_photo(tg.private_chat(623), gray_photo(150, 90, seed=3), caption="/colorize chromagan 50")
    tg.wait_for("sendMessage", count=3)
    svc.wait_queued(3)
    svc.run_worker()
    sent = {c.chat_id: Image.open(io.BytesIO(tg.sent_file(c))) for c in tg.calls("sendPhoto")}
    assert sent[group["id"]].size == (160, 120) and sent[622].size == (100, 80) and sent[623].size == (150, 90)
    assert chroma(sent[group["id"]]).mean() > 2 and chroma(sent[623]).mean() > 2  # colour was added
    assert {"ddcolor", "ddcolor-tiny", "chromagan"} <= set(svc.runtime.engines._loaded)
    caption = next(c for c in tg.calls("sendPhoto") if c.chat_id == 623).params["caption"]
    assert chromagan.ChromaGANEngine.label in caption


def test_cli_model_ddcolor_tiny(ddcolor_files, tmp_path, monkeypatch):
    from models import cli
    from models.config import ModelConfig

    config = ModelConfig(device="cpu", cache_dir=tmp_path / "cache", weight_overrides=ddcolor_files,
                         engine_settings={"ddcolor-tiny": SMALL})
    monkeypatch.setattr(cli, "_config", lambda: config)
    src, out = tmp_path / "old.jpg", tmp_path / "new.webp"
    src.write_bytes(gray_photo(90, 60))
    assert cli.main(["colorize", str(src), "--model", "ddcolor-tiny", "-o", str(out)]) == 0
    assert Image.open(out).format == "WEBP" and Image.open(out).size == (90, 60)
