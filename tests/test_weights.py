"""The real download + SHA-256 + strict-load path, exercised with stand-in files served over loopback."""

import hashlib
import shutil

import pytest
import torch

from models import engines, fetch, weights
from models.colorize.zhang import ECCV16, ECCV16Engine, SIGGRAPH17Engine
from models.config import ModelConfig
from models.style import adain, presets
from tests.standins import official


@pytest.fixture
def config(tmp_path) -> ModelConfig:
    return ModelConfig(cache_dir=tmp_path / "cache")


def _served(file_server, src, name, sha=None, build=ECCV16) -> weights.WeightFile:
    shutil.copy(src, file_server.directory / name)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    return weights.WeightFile(weights.remote(file_server.url(name), digest if sha is None else sha), build)


def test_registry_declares_the_official_files():
    declared = {"eccv16": ECCV16Engine.files[0], "siggraph17": SIGGRAPH17Engine.files[0],
                "adain_vgg_normalised": adain.ENCODER_FILE, "adain_decoder": adain.DECODER_FILE}
    for name, entry in official().items():
        wf = declared[name]
        assert wf.remote.url == entry["url"] and wf.remote.sha256 == entry["sha256"]
        assert wf.filename == entry["url"].rsplit("/", 1)[-1]
        layout = {k: list(v.shape) for k, v in wf.build().state_dict().items()
                  if not k.endswith("num_batches_tracked")}
        assert layout == entry["state_dict"]
    assert all(f in engines.get(n).files for n, f in (("eccv16", declared["eccv16"]), ("adain", adain.DECODER_FILE)))


def test_download_verify_and_load(file_server, standin_weights, config):
    wf = _served(file_server, standin_weights["eccv16"], "eccv16.pth")
    path = weights.path_of(wf, config)
    assert path == config.cache_dir / "weights" / "eccv16.pth"
    net = weights.load(wf, config)  # strict: every key and shape
    assert torch.equal(net.model_out.weight, torch.load(standin_weights["eccv16"])["model_out.weight"])
    (file_server.directory / "eccv16.pth").unlink()
    assert weights.path_of(wf, config) == path  # cached: no second download


def test_wrong_hash_is_one_clear_line(file_server, standin_weights, config):
    wf = _served(file_server, standin_weights["eccv16"], "eccv16.pth", sha="0" * 64)
    with pytest.raises(fetch.FetchError) as e:
        weights.path_of(wf, config)
    msg = str(e.value)
    assert "\n" not in msg and "eccv16.pth" in msg and wf.remote.url in msg and "PAINTBOT_WEIGHTS_DIR" in msg


def test_corrupt_cached_file_detected(file_server, standin_weights, config):
    wf = _served(file_server, standin_weights["eccv16"], "eccv16.pth")
    path = weights.path_of(wf, config)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(fetch.FetchError, match="corrupt file .*eccv16.pth.*PAINTBOT_WEIGHTS_DIR"):
        weights.path_of(wf, config)


def test_unreachable_url_and_missing_offline_file(tmp_path, config):
    wf = weights.WeightFile(weights.remote("http://127.0.0.1:9/x.pth", None), ECCV16)
    with pytest.raises(fetch.FetchError, match="could not download x.pth .*127.0.0.1:9/x.pth"):
        weights.path_of(wf, config)
    with pytest.raises(fetch.FetchError, match="missing file .*x.pth"):
        weights.path_of(wf, config.replace(weights_dir=tmp_path / "offline"))


def test_offline_dir_is_used_and_hash_checked(standin_weights, tmp_path, config):
    offline = tmp_path / "offline"
    offline.mkdir()
    shutil.copy(standin_weights["eccv16"], offline / "e.pth")
    digest = hashlib.sha256((offline / "e.pth").read_bytes()).hexdigest()
    config = config.replace(weights_dir=offline)
    wf = weights.WeightFile(weights.remote("http://127.0.0.1:9/e.pth", digest), ECCV16)
    assert weights.path_of(wf, config) == offline / "e.pth"
    with pytest.raises(fetch.FetchError, match="corrupt"):
        weights.path_of(weights.WeightFile(weights.remote(wf.remote.url, "f" * 64), ECCV16), config)


def test_published_hash_prefix_is_checked(file_server, standin_weights, config):
    """torchvision publishes the first hex digits of a file's SHA-256 in its name: a prefix is checked."""
    digest = hashlib.sha256(standin_weights["eccv16"].read_bytes()).hexdigest()
    good = _served(file_server, standin_weights["eccv16"], "prefix.pth", sha=digest[:10])
    assert weights.path_of(good, config).is_file()
    bad = _served(file_server, standin_weights["eccv16"], "other.pth", sha="0" + digest[1:10])
    with pytest.raises(fetch.FetchError, match="wrong SHA-256"):
        weights.path_of(bad, config)


def test_hashless_file_pinned_on_first_verified_use(file_server, standin_weights, config, monkeypatch):
    src = standin_weights["adain_decoder"]
    wf = _served(file_server, src, "decoder.pth", build=adain.decoder)
    wf = weights.WeightFile(weights.remote(wf.remote.url, None), adain.decoder)
    checked = []
    monkeypatch.setattr(weights.WeightFile, "check", lambda self, path: checked.append(path))
    path = weights.path_of(wf, config)
    assert checked == [path]
    pins = (config.cache_dir / "weights" / "pins.json").read_text()
    assert hashlib.sha256(src.read_bytes()).hexdigest() in pins
    assert weights.path_of(wf, config) == path and len(checked) == 1  # pinned now
    with open(path, "ab") as f:
        f.write(b"tampered")
    with pytest.raises(fetch.FetchError, match="differs from the one pinned"):
        weights.path_of(wf, config)


def test_a_file_of_the_wrong_network_is_never_pinned(file_server, standin_weights, config):
    wf = _served(file_server, standin_weights["eccv16"], "decoder.pth", build=adain.decoder)
    wf = weights.WeightFile(weights.remote(wf.remote.url, None), adain.decoder)
    with pytest.raises(fetch.FetchError, match="does not fit Sequential"):
        weights.path_of(wf, config)
    assert not (config.cache_dir / "weights" / "pins.json").exists()


def test_wrong_layout_is_one_clear_line(standin_weights):
    sd = torch.load(standin_weights["eccv16"])
    sd["model1.0.weight"] = torch.zeros(64, 3, 3, 3)
    del sd["model_out.weight"]
    with pytest.raises(fetch.FetchError) as e:
        weights.load_into(ECCV16(), sd, "bad.pth")
    msg = str(e.value)
    assert "\n" not in msg and "missing model_out.weight" in msg and "model1.0.weight" in msg


def test_not_a_checkpoint(tmp_path):
    p = tmp_path / "junk.pth"
    p.write_bytes(b"not a checkpoint")
    with pytest.raises(fetch.FetchError, match="cannot read weights file .*junk.pth"):
        weights.load_state_dict(p)


def test_models_download_command_names_what_is_missing(tmp_path, monkeypatch, capsys):
    """Offline with empty folders: the size of each big file first, then every file is tried (none stops
    the others) and a summary names each missing one with its URL and the variable. Engines that need
    no files say so."""
    from models.cli import main

    monkeypatch.setenv("PAINTBOT_WEIGHTS_DIR", str(tmp_path))  # the CLI reads its environment
    monkeypatch.setenv("PAINTBOT_STYLES_DIR", str(tmp_path))
    assert main(["models", "download"]) == 1
    err = capsys.readouterr().err.strip().split("\n")
    files = {f.filename: f for e in engines.ENGINES for f in e.files}
    big = [f for f in files.values() if (f.remote.size or 0) > 500e6]
    assert err[:len(big)] == [f"note: {f.filename} is {f.remote.size / 1e6:.0f} MB" for f in big] and big
    total = len(files) + len(presets.CATALOG)
    assert err[len(big)] == f"paintbot: 0 of {total} files here; {total} failed:"
    failures = err[len(big) + 1:]
    assert len(failures) == total
    for f, line in zip(files.values(), failures):
        assert line.startswith(f"  {f.filename}: ") and f.remote.url in line and "PAINTBOT_WEIGHTS_DIR" in line
    assert main(["models", "download", "exemplar", "gatys"]) == 0
    assert capsys.readouterr().err.splitlines() == ["exemplar: needs no files (nothing to download)",
                                                    "gatys: needs no files (nothing to download)"]


def _zip(members: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _member(drive, name: str, member: str) -> fetch.RemoteFile:
    return fetch.RemoteFile(filename=f"x_{member.rsplit('/', 1)[-1]}", url=drive.url("ZIPID"), sha256=None,
                            offline_env="PAINTBOT_WEIGHTS_DIR", archive="checkpoints.zip", member=member)


@pytest.mark.parametrize("variant", ["form", "cookie"])
def test_google_drive_zip_through_the_confirmation_page(drive, variant, tmp_path):
    drive.variant = variant
    drive.files["ZIPID"] = _zip({"ckpt/a.pth": b"A" * 1000, "top/ckpt/b.pth": b"B" * 10})
    cache = tmp_path / "cache"
    a = fetch.ensure(_member(drive, "a", "ckpt/a.pth"), cache, None)
    assert a.read_bytes() == b"A" * 1000 and a == cache / "x_a.pth"
    assert len(drive.requests) == 2  # the confirmation page, then the file
    b = fetch.ensure(_member(drive, "b", "ckpt/b.pth"), cache, None)  # found under the zip's own top folder
    assert b.read_bytes() == b"B" * 10 and len(drive.requests) == 2  # the archive is kept: no second download
    with pytest.raises(fetch.FetchError, match="does not contain ckpt/c.pth") as err:
        fetch.ensure(_member(drive, "c", "ckpt/c.pth"), cache, None)
    assert "\n" not in str(err.value)


def test_google_drive_quota_page_is_one_clear_line(drive, tmp_path):
    drive.variant = "quota"
    drive.files["ZIPID"] = _zip({"ckpt/a.pth": b"A"})
    with pytest.raises(fetch.FetchError, match="could not download x_a.pth inside checkpoints.zip .*web page") as err:
        fetch.ensure(_member(drive, "a", "ckpt/a.pth"), tmp_path / "cache", None)
    assert "\n" not in str(err.value) and "PAINTBOT_WEIGHTS_DIR" in str(err.value)
    assert not list((tmp_path / "cache").glob("*.part"))


def test_offline_folder_may_hold_the_archive_or_the_file(drive, tmp_path):
    offline = tmp_path / "offline"
    offline.mkdir()
    (offline / "checkpoints.zip").write_bytes(_zip({"ckpt/a.pth": b"A" * 3}))
    rf = _member(drive, "a", "ckpt/a.pth")
    extracted = fetch.ensure(rf, tmp_path / "cache", offline)  # the offline folder may be read-only
    assert extracted == tmp_path / "cache" / "x_a.pth" and extracted.read_bytes() == b"AAA"
    (offline / "checkpoints.zip").unlink()
    (offline / "x_a.pth").write_bytes(b"AAA")
    assert fetch.ensure(rf, tmp_path / "cache", offline) == offline / "x_a.pth"
    assert drive.requests == []  # offline: never a download
