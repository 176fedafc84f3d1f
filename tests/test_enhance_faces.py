"""The faces engine (GFPGAN v1.4 through spandrel, RetinaFace from facexlib): stand-in files in the published
formats come through paintbot's verify-and-pin path; detection, alignment and paste-back are proven equal to
facexlib's FaceRestoreHelper (the authors' own pipeline) on fixed inputs; a face pasted back by an identity
restorer reproduces the photo; strength blends; GFPGAN is fed and read in [-1, 1].

One GFPGAN forward only (about 15 s on a loaded 2-core CPU): everything else runs on aligned faces directly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from models import engines, fetch, weights
from models.config import ModelConfig
from models.restore import faces
from tests.enhance_standins import CONSTANT, constant_gfpgan, firing_retinaface, write_gfpgan, write_retinaface

@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    d = tmp_path_factory.mktemp("faces-offline")
    write_gfpgan(d / "GFPGANv1.4.pth", constant_gfpgan())
    write_retinaface(d / "detection_Resnet50_Final.pth", firing_retinaface())
    return d


@pytest.fixture(scope="module")
def engine(offline, tmp_path_factory):
    config = ModelConfig(device="cpu", cache_dir=tmp_path_factory.mktemp("cache"), weights_dir=offline,
                         reduced_precision=False)
    return engines.load("faces", "restore", config=config)


@pytest.fixture(scope="module")
def helper(engine):
    """facexlib's FaceRestoreHelper as GFPGANer builds it (upscale 1, 512 px faces, square mask), with the
    engine's detector instead of one it would download."""
    from facexlib.utils import face_restoration_helper as frh

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(frh, "init_detection_model", lambda *a, **k: engine.detector)
        mp.setattr(frh, "init_parsing_model", lambda *a, **k: None)
        return frh.FaceRestoreHelper(1, face_size=512, crop_ratio=(1, 1), det_model="retinaface_resnet50",
                                     use_parse=False, device=torch.device("cpu"))


def scene(w=300, h=260) -> np.ndarray:
    """A smooth, structured RGB photo (uint8): gradients and slow waves, no edges."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 128 + 90 * np.sin(xx / 23) * np.cos(yy / 31)
    g = 60 + 0.5 * xx + 0.2 * yy
    b = 200 - 0.4 * yy + 20 * np.sin((xx + yy) / 17)
    return np.clip(np.stack([r, g, b], -1), 0, 255).round().astype(np.uint8)


def landmarks_at(cx, cy, scale, degrees) -> np.ndarray:
    """The FFHQ template's five points moved by a known similarity: a face of (512 * scale) px at (cx, cy)."""
    a = np.deg2rad(degrees)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) * scale
    return ((faces.FFHQ_TEMPLATE - 256) @ rot.T + [cx, cy]).astype(np.float32)


def test_files_come_through_verify_and_pin(engine, offline):
    pins = (engine.config.cache_dir / "weights" / "pins.json").read_text()
    assert "GFPGANv1.4.pth" in pins and "detection_Resnet50_Final.pth" in pins
    saved = torch.load(offline / "GFPGANv1.4.pth", weights_only=True)["params_ema"]
    got = engine.gfpgan.state_dict()
    assert got.keys() == saved.keys() and all(torch.equal(got[k], saved[k]) for k in saved)
    det = engine.detector.state_dict()
    assert all(torch.equal(det[k], v) for k, v in firing_retinaface().items())


def test_a_wrong_file_is_one_clear_line(tmp_path, offline):
    folder = tmp_path / "offline"
    folder.mkdir()
    (folder / "GFPGANv1.4.pth").symlink_to(offline / "detection_Resnet50_Final.pth")
    with pytest.raises(fetch.FetchError, match="is not a network spandrel knows .expected GFPGAN") as e:
        weights.path_of(faces.GFPGAN, ModelConfig(cache_dir=tmp_path, weights_dir=folder))
    assert "\n" not in str(e.value)


def test_detection_equals_facexlib(engine, helper):
    photo = scene(96, 80)
    helper.clean_all()
    helper.read_image(np.ascontiguousarray(photo[..., ::-1]))
    n = helper.get_face_landmarks_5(eye_dist_threshold=faces.EYE_DISTANCE)
    got = engine.landmarks(Image.fromarray(photo))
    assert n > 1 and len(got) == n  # the firing stand-in finds several; the same ones, in the same order
    for ours, theirs in zip(got, helper.all_landmarks_5):
        assert np.array_equal(ours, theirs)


def test_alignment_equals_facexlib(helper):
    photo = scene()
    points = landmarks_at(150, 120, 0.35, 12)
    helper.clean_all()
    helper.read_image(np.ascontiguousarray(photo[..., ::-1]))
    helper.all_landmarks_5 = [points]
    helper.align_warp_face()
    matrix = faces.align_matrix(points)
    assert np.allclose(matrix, helper.affine_matrices[0])
    ours = faces.crop(photo, matrix)
    assert np.array_equal(ours, helper.cropped_faces[0][..., ::-1])
    # the crop is the template's frame: the eyes land on the template's eyes
    assert np.allclose(matrix[:, :2] @ points.T + matrix[:, 2:], faces.FFHQ_TEMPLATE.T, atol=0.05)
    outside = faces.crop(photo, faces.align_matrix(landmarks_at(10, 10, 0.35, 0)))
    assert tuple(outside[0, 0]) == (132, 133, 135)  # facexlib's grey (BGR 135, 133, 132) beyond the photo


def test_paste_back_equals_facexlib(helper):
    photo = scene()
    points = [landmarks_at(150, 120, 0.35, 12), landmarks_at(230, 190, 0.2, -20)]
    rng = np.random.default_rng(0)
    restored = [rng.integers(0, 256, (512, 512, 3), dtype=np.uint8) for _ in points]
    helper.clean_all()
    helper.read_image(np.ascontiguousarray(photo[..., ::-1]))
    helper.all_landmarks_5 = list(points)
    helper.align_warp_face()
    for face in restored:
        helper.add_restored_face(np.ascontiguousarray(face[..., ::-1]))
    helper.get_inverse_affine()
    theirs = helper.paste_faces_to_input_image()[..., ::-1].astype(int)
    faces_left = iter(restored)
    ours = faces.enhance(photo, points, lambda face: next(faces_left), 1.0).astype(int)
    assert np.abs(ours - theirs).max() <= 1  # facexlib truncates to uint8 where paintbot rounds
    assert (ours != photo).mean() > 0.2


def test_identity_restorer_gives_the_photo_back():
    """Outside the blend band the photo is bit-identical; under the face (aligned and warped back, two
    bilinear resamplings of a smooth photo) within one grey level."""
    photo = scene()
    points = landmarks_at(150, 120, 0.35, 12)
    out = faces.enhance(photo, [points], lambda face: face, 1.0).astype(int)
    matrix = faces.align_matrix(points)
    mask = faces.paste(np.zeros(photo.shape, np.float32), np.full((512, 512, 3), 255, np.uint8), matrix)[..., 0]
    outside, inside = mask == 0, mask > 254
    assert outside.mean() > 0.5 and inside.sum() > 5000
    assert np.array_equal(out[outside], photo[outside])
    assert np.abs(out - photo).max() <= 2 and np.abs(out[inside] - photo[inside]).max() <= 1


def test_strength_blends_restored_with_original():
    photo = scene()
    points = [landmarks_at(150, 120, 0.35, 12)]
    grey = lambda face: np.full_like(face, 200)  # noqa: E731
    full = faces.enhance(photo, points, grey, 1.0).astype(float)
    half = faces.enhance(photo, points, grey, 0.5).astype(float)
    none = faces.enhance(photo, points, grey, 0.0)
    assert np.array_equal(none, photo)
    degenerate = [np.full((5, 2), 50, np.float32)]  # no transform fits: skipped, not a crash
    assert np.array_equal(faces.enhance(photo, degenerate, grey, 1.0), photo)
    assert np.abs(half - (full + photo) / 2).max() <= 1
    assert (np.abs(full - 200) < 1).sum() > 5000  # the face's middle is all restored


def test_gfpgan_is_fed_and_read_in_minus_one_to_one(engine):
    """The stand-in's image is CONSTANT in [-1, 1]: read as [-1, 1] that is 51 grey levels (read as spandrel's
    [0, 1] it would clamp to 0); the network receives black as -1 and white as +1."""
    seen = {}
    hook = engine.gfpgan.register_forward_pre_hook(lambda m, args: seen.update(x=args[0].detach().clone()))
    try:
        face = np.zeros((512, 512, 3), np.uint8)
        face[:, 256:] = 255
        out = engine.restore(face)
    finally:
        hook.remove()
    assert out.shape == (512, 512, 3) and out.dtype == np.uint8 and np.all(out == 51)
    assert seen["x"].min().item() == -1 and seen["x"].max().item() == 1


def test_the_call_keeps_the_kind_and_counts_faces(engine, monkeypatch):
    """The engine's own call around a restorer (here the identity, GFPGAN's range being held above): a
    black-and-white photo stays so, in its mode; strength 0 or no face gives the photo itself."""
    monkeypatch.setattr(engine, "restore", lambda face: face)
    gray = Image.fromarray(scene(96, 80)).convert("L")
    out, n = engine(gray, strength=100)
    assert n > 1 and out.mode == "L" and out.size == gray.size
    same, n0 = engine(gray, strength=0)
    assert same is gray and n0 == n
    with pytest.raises(ValueError):
        engine(gray, strength=101)
    assert engine.settings.strength == 70  # the documented default


def test_detection_on_a_shrunk_photo_gives_landmarks_at_full_size(engine, monkeypatch):
    """detect_side: RetinaFace sees the photo at that long side (Lanczos, as facexlib's resize) and the
    landmarks come back in the photo's own pixels."""
    import cv2

    big = scene(256, 200)
    small = cv2.resize(big[..., ::-1], (128, 100), interpolation=cv2.INTER_LANCZOS4)[..., ::-1]
    with torch.inference_mode():
        raw = engine.detector.detect_faces(np.ascontiguousarray(small[..., ::-1]), faces.SCORE, faces.NMS)
    expected = [p for p in raw[:, 5:15].reshape(-1, 5, 2) * 2 if np.linalg.norm(p[0] - p[1]) >= faces.EYE_DISTANCE]
    monkeypatch.setattr(engine, "settings", faces.FacesSettings(detect_side=128))
    at_big = engine.landmarks(Image.fromarray(big))  # the eye-distance rule counts the photo's own pixels
    assert len(at_big) == len(expected) > 0
    assert all(np.allclose(a, b, atol=1e-3) for a, b in zip(at_big, expected))
