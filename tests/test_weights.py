"""The real download + SHA-256 + strict-load path, exercised with stand-in files served over loopback."""

import hashlib
import shutil

import pytest
import torch

from models import colorize, fetch, weights
from tests.standins import official


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PAINTBOT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("PAINTBOT_WEIGHTS_DIR", raising=False)


def _served(file_server, src, name, sha=None):
    shutil.copy(src, file_server.directory / name)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    return fetch.RemoteFile(name, file_server.url(name), digest if sha is None else sha, "PAINTBOT_WEIGHTS_DIR")


def test_registry_matches_official_files():
    for name, entry in official().items():
        rf = weights.REGISTRY[name]
        assert rf.url == entry["url"] and rf.sha256 == entry["sha256"]
        assert rf.filename == entry["url"].rsplit("/", 1)[-1]


@pytest.mark.parametrize("name", ["eccv16", "siggraph17"])
def test_networks_have_the_official_layout(name):
    net = colorize.NETWORKS[name]()
    layout = {k: list(v.shape) for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert layout == official()[name]["state_dict"]


def test_download_verify_and_load(file_server, standin_weights, tmp_path):
    rf = _served(file_server, standin_weights["eccv16"], "eccv16.pth")
    path = weights.weights_path(rf)
    assert path == tmp_path / "cache" / "weights" / "eccv16.pth"
    net = colorize.ECCV16()
    weights.load_into(net, weights.load_state_dict(path), path)  # strict: every key and shape
    assert torch.equal(net.model_out.weight, torch.load(standin_weights["eccv16"])["model_out.weight"])
    (file_server.directory / "eccv16.pth").unlink()
    assert weights.weights_path(rf) == path  # cached: no second download


def test_wrong_hash_is_one_clear_line(file_server, standin_weights):
    rf = _served(file_server, standin_weights["eccv16"], "eccv16.pth", sha="0" * 64)
    with pytest.raises(fetch.FetchError) as e:
        weights.weights_path(rf)
    msg = str(e.value)
    assert "\n" not in msg and "eccv16.pth" in msg and rf.url in msg and "PAINTBOT_WEIGHTS_DIR" in msg


def test_corrupt_cached_file_detected(file_server, standin_weights, tmp_path):
    rf = _served(file_server, standin_weights["eccv16"], "eccv16.pth")
    path = weights.weights_path(rf)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(fetch.FetchError, match="corrupt file .*eccv16.pth.*PAINTBOT_WEIGHTS_DIR"):
        weights.weights_path(rf)


def test_unreachable_url_and_missing_offline_file(tmp_path, monkeypatch):
    rf = fetch.RemoteFile("x.pth", "http://127.0.0.1:9/x.pth", None, "PAINTBOT_WEIGHTS_DIR")
    with pytest.raises(fetch.FetchError, match="could not download x.pth .*127.0.0.1:9/x.pth"):
        weights.weights_path(rf)
    monkeypatch.setenv("PAINTBOT_WEIGHTS_DIR", str(tmp_path / "offline"))
    with pytest.raises(fetch.FetchError, match="missing file .*x.pth"):
        weights.weights_path(rf)


def test_offline_dir_is_used_and_hash_checked(standin_weights, tmp_path, monkeypatch):
    offline = tmp_path / "offline"
    offline.mkdir()
    shutil.copy(standin_weights["eccv16"], offline / "e.pth")
    digest = hashlib.sha256((offline / "e.pth").read_bytes()).hexdigest()
    monkeypatch.setenv("PAINTBOT_WEIGHTS_DIR", str(offline))
    rf = fetch.RemoteFile("e.pth", "http://127.0.0.1:9/e.pth", digest, "PAINTBOT_WEIGHTS_DIR")
    assert weights.weights_path(rf) == offline / "e.pth"
    with pytest.raises(fetch.FetchError, match="corrupt"):
        weights.weights_path(fetch.RemoteFile("e.pth", rf.url, "f" * 64, "PAINTBOT_WEIGHTS_DIR"))


def test_hashless_file_pinned_on_first_verified_use(file_server, standin_weights, tmp_path):
    src = standin_weights["adain_decoder"]
    rf = _served(file_server, src, "decoder.pth", sha="")
    rf = fetch.RemoteFile(rf.filename, rf.url, None, rf.offline_env)
    checked = []
    path = weights.weights_path(rf, check=checked.append)
    assert checked == [path]
    pins = (tmp_path / "cache" / "weights" / "pins.json").read_text()
    assert hashlib.sha256(src.read_bytes()).hexdigest() in pins
    assert weights.weights_path(rf, check=checked.append) == path and len(checked) == 1  # pinned now
    with open(path, "ab") as f:
        f.write(b"tampered")
    with pytest.raises(fetch.FetchError, match="differs from the one pinned"):
        weights.weights_path(rf)


def test_wrong_layout_is_one_clear_line(standin_weights):
    sd = torch.load(standin_weights["eccv16"])
    sd["model1.0.weight"] = torch.zeros(64, 3, 3, 3)
    del sd["model_out.weight"]
    with pytest.raises(fetch.FetchError) as e:
        weights.load_into(colorize.ECCV16(), sd, "bad.pth")
    msg = str(e.value)
    assert "\n" not in msg and "missing model_out.weight" in msg and "model1.0.weight" in msg


def test_not_a_checkpoint(tmp_path):
    p = tmp_path / "junk.pth"
    p.write_bytes(b"not a checkpoint")
    with pytest.raises(fetch.FetchError, match="cannot read weights file .*junk.pth"):
        weights.load_state_dict(p)


def test_models_download_command_names_what_is_missing(tmp_path, monkeypatch, capsys):
    """Offline with an empty weights folder: one line naming the file, its URL and the variable."""
    from models.cli import main

    monkeypatch.setenv("PAINTBOT_WEIGHTS_DIR", str(tmp_path))
    assert main(["models", "download"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "colorization_release_v2-9b330a0b.pth" in err and "https://colorizers" in err
    assert "PAINTBOT_WEIGHTS_DIR" in err
