"""`/colorize instance` end to end (fake Bot API, real Redis, the real bot and worker) and on the CLI,
with the shared stand-ins of the authors' three files and of torchvision's detector."""

from __future__ import annotations

import io
import sys

import pytest
from PIL import Image

from models.colorize import instance
from tests.conftest import SHARED
from tests.harness import gray_photo, write_shared_standin

sys.path.insert(0, str(SHARED / "weights"))
from standin import layout  # noqa: E402

SETTINGS = instance.InstanceSettings(detector_size=128)  # a small detector input keeps the test quick


@pytest.fixture(scope="module")
def instance_files(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("instance")
    shapes = {instance.FULL_FILE: layout("instcolorization.json", "instcolorization_GComp"),
              instance.INSTANCE_FILE: layout("instcolorization.json", "instcolorization_G"),
              instance.FUSION_FILE: layout("instcolorization.json", "instcolorization_GF"),
              instance.DETECTOR_FILE: {k: tuple(v.shape) for k, v in instance.build_detector().state_dict().items()}}
    return {wf.filename: write_shared_standin(folder / wf.filename, layout_, seed)
            for seed, (wf, layout_) in enumerate(shapes.items(), start=2001)}


@pytest.fixture
def instance_service(engines_with, instance_files):
    """The service whose worker can load `instance` on first use."""
    return engines_with(instance_files, {"instance": SETTINGS})


def _sent_image(tg, call) -> Image.Image:
    return Image.open(io.BytesIO(tg.sent_file(call)))


def test_colorize_instance_in_a_group_and_as_a_caption(instance_service):
    svc, tg = instance_service, instance_service.telegram
    group = tg.group_chat(-100611)
    photo = tg.user_sends_photo(group, gray_photo(200, 150), user=tg.user(61))
    tg.user_sends_text(group, f"/colorize@{tg.bot_username} instance", user=tg.user(61),
                       reply_to=photo["message_id"])
    private = tg.private_chat(612)
    tg.user_sends_photo(private, gray_photo(120, 90, seed=1), caption="/colorize instance")
    tg.wait_for("sendMessage", count=2)
    svc.wait_queued(2)
    svc.run_worker()
    sent = {c.chat_id: c for c in tg.calls("sendPhoto")}
    assert _sent_image(tg, sent[group["id"]]).size == (200, 150) and sent[group["id"]].reply_to == photo["message_id"]
    assert _sent_image(tg, sent[612]).size == (120, 90)
    assert isinstance(svc.runtime.engines.get("instance", "colorize"), instance.InstanceEngine)


def test_cli_model_instance(instance_files, tmp_path, monkeypatch):
    from models import cli
    from models.config import ModelConfig

    config = ModelConfig(device="cpu", cache_dir=tmp_path / "cache", weight_overrides=instance_files,
                         engine_settings={"instance": SETTINGS})
    monkeypatch.setattr(cli, "_config", lambda: config)
    src, out = tmp_path / "old.png", tmp_path / "old_color.png"
    Image.open(io.BytesIO(gray_photo(90, 70))).save(src)
    assert cli.main(["colorize", str(src), "--model", "instance", "-o", str(out)]) == 0
    result = Image.open(out)
    assert result.size == (90, 70) and result.mode == "RGB"
