"""`/colorize ddcolor` and `/colorize ddcolor-tiny` end to end (fake Bot API, real Redis, the real bot and
worker) and `--model ddcolor-tiny` on the CLI, with the shared stand-ins of the published layouts."""

from __future__ import annotations

import io
import sys

import pytest
from PIL import Image

from models.colorize import ddcolor
from tests.conftest import SHARED
from tests.harness import chroma, gray_photo, write_shared_standin

sys.path.insert(0, str(SHARED / "weights"))
from standin import layout  # noqa: E402

SMALL = ddcolor.DDColorSettings(input_size=64)  # a small network input keeps the test quick


@pytest.fixture(scope="module")
def ddcolor_files(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("ddcolor")
    return {e.files[0].filename: write_shared_standin(folder / e.files[0].filename, layout("ddcolor.json", size),
                                                      seed)
            for e, size, seed in ((ddcolor.DDColorEngine, "large", 2302), (ddcolor.DDColorTinyEngine, "tiny", 2301))}


def test_colorize_ddcolor_and_tiny(engines_with, ddcolor_files):
    svc = engines_with(ddcolor_files, {"ddcolor": SMALL, "ddcolor-tiny": SMALL})
    tg = svc.telegram
    group = tg.group_chat(-100621)
    photo = tg.user_sends_photo(group, gray_photo(160, 120), user=tg.user(62))
    tg.user_sends_text(group, "/colorize ddcolor", user=tg.user(62), reply_to=photo["message_id"])
    private = tg.private_chat(622)
    tg.user_sends_photo(private, gray_photo(100, 80, seed=2), caption="/colorize ddcolor-tiny 150")
    tg.wait_for("sendMessage", count=2)
    svc.wait_queued(2)
    svc.run_worker()
    sent = {c.chat_id: Image.open(io.BytesIO(tg.sent_file(c))) for c in tg.calls("sendPhoto")}
    assert sent[group["id"]].size == (160, 120) and sent[622].size == (100, 80)
    assert chroma(sent[group["id"]]).mean() > 2  # colour was added
    assert {"ddcolor", "ddcolor-tiny"} <= set(svc.runtime.engines._loaded)


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
