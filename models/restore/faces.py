"""Faces: GFPGAN v1.4 (Wang et al., CVPR 2021; TencentARC/GFPGAN, Apache-2.0) through spandrel, run the way its
authors run it (GFPGANer with facexlib's FaceRestoreHelper).

People look at the faces of an old photo first, and a face is where softness and JPEG blocks hurt most.
GFPGAN reconstructs a face from a generative prior (StyleGAN2 trained on FFHQ): what it returns is the
network's reconstruction, sharp and plausible, not a recovery of lost detail; so `strength` (0-100, default
70) blends it with the photo's own face, since identity matters more than sharpness.

The steps, each as GFPGANer does them:
1. detect: facexlib's RetinaFace (ResNet-50, `detection_Resnet50_Final.pth`), used as a library: its network
   and `detect_faces` (priors, decoding, NMS), BGR, score > 0.97; faces whose eyes are closer than 5 px are
   dropped (GFPGANer's `eye_dist_threshold`). GFPGANer detects at the photo's own size; paintbot shrinks a
   photo to 800 px on its long side first (`detect_side`, facexlib's `resize` option), since RetinaFace costs
   more than GFPGAN itself on a 1 MP photo on a CPU, and a face too small to be found at 800 px is too small
   to restore. Its weights come through paintbot's
   verify-and-pin path and are loaded strictly here: facexlib's own loader would download into its package
   folder at run time, and its FaceRestoreHelper always loads a second network (ParseNet), so neither is used.
2. align: the similarity transform (rotation, uniform scale, shift) taking the five landmarks onto the
   512 x 512 FFHQ template, estimated robustly (least median of squares) and applied with bilinear sampling,
   grey (135, 133, 132) outside the photo, as FaceRestoreHelper.align_warp_face.
3. restore: RGB in [-1, 1] (not spandrel's [0, 1]: see models/restore/enhance.py), GFPGANv1Clean with its
   per-call random noise (from a fixed seed here, so a photo always gets the same result), output clamped
   to [-1, 1].
4. paste back: the inverse transform, and a soft mask: the warped square eroded by 2 px (its interpolated
   rim), then by a tenth of the face's width, and blurred by as much, so no seam shows (FaceRestoreHelper's
   square-mask paste). GFPGANer can instead shape the mask with a face-parsing network (ParseNet, another
   85 MB); paintbot uses the square mask.
`strength` scales the soft mask, so 0 gives the photo back bit for bit.

tests/test_enhance_faces.py proves steps 1, 2 and 4 equal to facexlib's FaceRestoreHelper on fixed inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from models.engine import Engine, Licence
from models.restore.enhance import as_rgb, detector, in_kind_of, read
from models.weights import WeightFile, remote

GFPGAN_URL = "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.4.pth"
RETINAFACE_URL = "https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_Resnet50_Final.pth"
FACE_SIZE = 512
# The five landmarks (eyes, nose tip, mouth corners) of an FFHQ face at 512 x 512 (x, y), as facexlib has them.
FFHQ_TEMPLATE = np.array([[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935],
                          [201.26117, 371.41043], [313.08905, 371.15118]], np.float32)
OUTSIDE = (135, 133, 132)  # the grey a crop gets where it reaches beyond the photo (BGR, as facexlib)
SCORE = 0.97  # GFPGAN's detection threshold
NMS = 0.4
EYE_DISTANCE = 5  # px: closer eyes are a side view or a face too small to restore
NOISE_SEED = 0


def build_detector():
    from facexlib.detection.retinaface import RetinaFace

    return RetinaFace(network_name="resnet50", half=False, phase="test", device="cpu")


def strip_module(sd: dict) -> dict:
    """detection_Resnet50_Final.pth was saved from a DataParallel: its keys may begin with "module."."""
    return {k.removeprefix("module."): v for k, v in sd.items()}


def _gfpgan_v14(model) -> str | None:
    return None if model.purpose == "FaceSR" else f"a {model.purpose} network"


GFPGAN = WeightFile(remote(GFPGAN_URL, None, size=348_632_874), build=None, read=read,  # {"params_ema": ...}
                    detect=detector("GFPGAN", GFPGAN_URL, _gfpgan_v14))
RETINAFACE = WeightFile(remote(RETINAFACE_URL, None, size=109_497_761), build_detector, strip_module)


@dataclass(frozen=True)
class FacesSettings:
    strength: int = 70  # % of the restored face over the photo's own, when a call does not say
    # Detection sees the photo shrunk to this long side (Lanczos, as facexlib's `resize`), landmarks scaled back:
    # RetinaFace-ResNet50 costs ~6x more at 1 MP than at 800 px on a CPU; 0: the photo's own size, as GFPGANer.
    detect_side: int = 800

    def __post_init__(self):
        if not 0 <= self.strength <= 100:
            raise ValueError(f"strength must be 0..100, not {self.strength}")
        if self.detect_side and self.detect_side < 128:
            raise ValueError(f"detect_side must be 0 or at least 128, not {self.detect_side}")


# --- the geometry, as facexlib's FaceRestoreHelper (with upscale_factor 1 and no parsing network) ---

def align_matrix(landmarks: np.ndarray) -> np.ndarray:
    """The 2 x 3 similarity transform taking the five (x, y) `landmarks` onto FFHQ_TEMPLATE."""
    import cv2

    return cv2.estimateAffinePartial2D(np.asarray(landmarks, np.float32), FFHQ_TEMPLATE, method=cv2.LMEDS)[0]


def crop(rgb: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The aligned 512 x 512 face of `rgb` (h, w, 3 uint8) under `matrix`."""
    import cv2

    return cv2.warpAffine(rgb, matrix, (FACE_SIZE, FACE_SIZE), borderMode=cv2.BORDER_CONSTANT,
                          borderValue=OUTSIDE[::-1])


def paste(photo: np.ndarray, face: np.ndarray, matrix: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """`photo` (h, w, 3 float32) with the aligned `face` (512 x 512 x 3) put back under the inverse of `matrix`
    through a soft mask scaled by `strength` (0..1). Where the mask is 0 the photo is unchanged."""
    import cv2

    h, w = photo.shape[:2]
    inverse = cv2.invertAffineTransform(matrix)
    back = cv2.warpAffine(face, inverse, (w, h)).astype(np.float32)
    square = cv2.warpAffine(np.ones((FACE_SIZE, FACE_SIZE), np.float32), inverse, (w, h))
    square = cv2.erode(square, np.ones((2, 2), np.uint8))  # the interpolated rim
    edge = int(square.sum() ** 0.5) // 20  # a tenth of the face's width, in halves
    inner = cv2.erode(square, np.ones((2 * edge, 2 * edge), np.uint8))
    soft = cv2.GaussianBlur(inner, (2 * edge + 1, 2 * edge + 1), 0)[..., None] * strength
    return soft * (square[..., None] * back) + (1 - soft) * photo


def enhance(rgb: np.ndarray, landmarks: list[np.ndarray], restore: Callable[[np.ndarray], np.ndarray],
            strength: float) -> np.ndarray:
    """`rgb` (h, w, 3 uint8) with each face (five landmarks) aligned, restored by `restore` (512 x 512 x 3
    uint8 -> same) and pasted back at `strength` (0..1), one after another as GFPGANer does."""
    out = rgb.astype(np.float32)
    for points in landmarks:
        matrix = align_matrix(points)
        if matrix is None:  # landmarks that fix no transform (all on one point): nothing to align
            continue
        out = paste(out, restore(crop(rgb, matrix)), matrix, strength)
    return np.clip(out.round(), 0, 255).astype(np.uint8)


class FacesEngine(Engine):
    name = "faces"
    family = "restore"
    label = "GFPGAN v1.4 (Wang et al., CVPR 2021)"
    licence = Licence(code="Apache-2.0 (GFPGAN) + MIT (facexlib)",
                      weights="Apache-2.0 (GFPGANv1.4.pth, in the Apache-2.0 repository's release, no separate terms; "
                              "trained on FFHQ) + MIT (RetinaFace, biubug6/Pytorch_Retinaface via facexlib)",
                      commercial=True,
                      source="github.com/TencentARC/GFPGAN LICENSE; github.com/xinntao/facexlib LICENSE; "
                             "github.com/biubug6/Pytorch_Retinaface LICENSE")
    files = (GFPGAN, RETINAFACE)
    default_on = frozenset()  # chosen by name by the /restore pipeline: the family's default is repair
    Settings = FacesSettings

    def __init__(self, device, config):
        super().__init__(device, config)
        # GFPGAN has no float16 (spandrel: supports_half False): bf16 on capable CPUs, else float32.
        if self.dtype == torch.float16:
            self.dtype = torch.float32
        # Not channels-last (Engine.half): its modulated convolutions keep 5-D weights.
        self.gfpgan = self.load_file(self.files[0]).model.to(dtype=self.dtype)
        # float32: facexlib feeds it float32 images (under bf16 autocast it measured no faster on the Xeon)
        self.detector = self.load_file(self.files[1])
        self.detector.device = device  # facexlib keeps its device and BGR means beside the network
        self.detector.mean_tensor = self.detector.mean_tensor.to(device)

    @torch.inference_mode()
    def landmarks(self, img: Image.Image) -> list[np.ndarray]:
        """The five landmarks (5 x 2, x y) of each face RetinaFace finds in `img`, best first."""
        import cv2

        bgr = np.ascontiguousarray(as_rgb(img)[..., ::-1])
        side = self.settings.detect_side
        scale = side / max(img.size) if side and max(img.size) > side else 1.0
        if scale != 1.0:
            size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
            bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_LANCZOS4)
        found = self.detector.detect_faces(bgr, SCORE, NMS)
        out = []
        for row in found:
            points = row[5:15].reshape(5, 2) / scale
            if np.linalg.norm(points[0] - points[1]) >= EYE_DISTANCE:
                out.append(points)
        return out

    @torch.inference_mode()
    def restore(self, face: np.ndarray) -> np.ndarray:
        """GFPGAN's reconstruction of an aligned face (512 x 512 x 3 uint8 RGB -> same)."""
        x = torch.from_numpy(face).permute(2, 0, 1)[None].to(self.device, self.dtype)
        x = x.div_(127.5).sub_(1)  # [-1, 1]
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(NOISE_SEED)
            y = self.gfpgan(x, return_rgb=False)[0]
        y = (y[0].float().clamp_(-1, 1) + 1) * 127.5
        return y.round_().byte().permute(1, 2, 0).cpu().numpy()

    def __call__(self, img: Image.Image, *, strength: int | None = None) -> tuple[Image.Image, int]:
        """`img` with its faces restored at `strength` % (None: the configured default), in its own kind
        (a black-and-white photo keeps only the restored lightness), and how many faces were found."""
        strength = self.settings.strength if strength is None else strength
        if not 0 <= strength <= 100:
            raise ValueError(f"strength must be 0..100, not {strength}")
        found = self.landmarks(img)
        if not found or strength == 0:
            return img, len(found)
        return in_kind_of(img, enhance(as_rgb(img), found, self.restore, strength / 100)), len(found)
