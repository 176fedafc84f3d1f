"""`/style NAME adaattn` end to end (fake Bot API, real Redis, the real bot and worker), the `fast` and
`hq` words beside it, `paintbot style --engine adaattn`, and AdaAttN as the default style engine
exactly where its files are; all on the shared stand-ins of the authors' three files."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from models import engines
from models.config import ModelConfig
from models.style import adaattn, adain, gatys
from tests.harness import SHARED_STYLES, chroma, gray_photo
from tests.style_golden import write_standin

LAYOUTS = ("adaattn_adaattn_3", "adaattn_transformer", "adaattn_decoder")


@pytest.fixture(scope="module")
def adaattn_files(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("adaattn")
    return {adaattn.FILES[name].filename: write_standin(name, folder / f"{name}.pth") for name in LAYOUTS}


def test_style_adaattn_fast_and_hq_by_word(engines_with, adaattn_files):
    svc = engines_with(adaattn_files)
    tg = svc.telegram
    group = tg.group_chat(-100631)
    photo = tg.user_sends_photo(group, gray_photo(120, 74), user=tg.user(63))
    tg.user_sends_text(group, f"/style@{tg.bot_username} vangogh adaattn", user=tg.user(63),
                       reply_to=photo["message_id"])
    private = tg.private_chat(632)
    tg.user_sends_photo(private, gray_photo(90, 110, seed=3), caption="/style vangogh fast")
    other = tg.private_chat(633)
    tg.user_sends_photo(other, gray_photo(70, 50, seed=4), caption="/style munch hq")
    tg.wait_for("sendMessage", count=3)
    svc.wait_queued(3)
    svc.run_worker()
    sent = {c.chat_id: c for c in tg.calls("sendPhoto")}
    painted = Image.open(io.BytesIO(tg.sent_file(sent[group["id"]])))
    assert painted.size == (120, 74) and chroma(painted).mean() > 2  # any aspect ratio, in colour
    assert sent[group["id"]].reply_to == photo["message_id"]
    assert adaattn.AdaAttNEngine.label in sent[group["id"]].params["caption"]
    assert adain.AdaINEngine.label in sent[632].params["caption"]
    assert gatys.GatysEngine.label in sent[633].params["caption"]
    assert Image.open(io.BytesIO(tg.sent_file(sent[632]))).size == (90, 110)


def test_cli_style_engine_adaattn(adaattn_files, standin_weights, tmp_path, monkeypatch):
    from models import cli

    config = ModelConfig(device="cpu", cache_dir=tmp_path / "cache", style_max_size=128,
                         styles_dir=Path(SHARED_STYLES).resolve(),
                         weight_overrides={**adaattn_files,
                                           adain.ENCODER_FILE.filename: standin_weights["adain_vgg_normalised"]})
    monkeypatch.setattr(cli, "_config", lambda: config)
    src, out = tmp_path / "photo.png", tmp_path / "painted.png"
    src.write_bytes(gray_photo(100, 60))
    assert cli.main(["style", str(src), "--style", "vangogh", "--engine", "adaattn", "--strength", "0.7",
                     "-o", str(out)]) == 0
    assert Image.open(out).size == (100, 60)


def test_adaattn_is_the_default_style_engine_only_where_its_files_are(adaattn_files, standin_weights, tmp_path):
    encoder = {adain.ENCODER_FILE.filename: standin_weights["adain_vgg_normalised"],
               adain.DECODER_FILE.filename: standin_weights["adain_decoder"]}
    offline = tmp_path / "offline"
    offline.mkdir()  # nothing to download from: the files given here are all there is
    config = ModelConfig(device="cpu", cache_dir=tmp_path / "cache", weights_dir=offline,
                         weight_overrides={**encoder, **adaattn_files})
    assert engines.load(None, "style", config=config).name == "adaattn"
    assert engines.load(None, "style", config=config.replace(weight_overrides=encoder)).name == "adain"
