"""Instance-aware colourisation (Su, Chu & Huang, CVPR 2020; code: ericsujw/InstColorization).

Why this engine: a whole-image colouriser averages over everything it sees, so small or
unusual objects come out washed-out. Here a detector finds the objects; an instance
generator colours each object's crop at full network resolution; a fusion generator colours
the whole picture and, at thirteen feature maps, blends each object's features into the
picture's with learned per-pixel weights. With no object found, a plain full-image generator
(GComp) colours the picture, as in the reference.

All three networks have SIGGRAPH17's layout (`zhang.SIGGRAPHUNet`); their keys and shapes equal
the published files', so the real weights load strictly. The arithmetic is the reference's,
proven against golden vectors of the authors' code (shared/weights/golden/README_colorization.md),
including the details that look like mistakes but are what the trained weights expect:
box positions truncated to integer cells, a box under one cell grown to one, conv4..conv7 fused
on the 32 grid, non-negative logits, every other instance entering a box's softmax with logit 0
and feature 0, a +1e5 background logit outside all boxes, and a mask channel of -0.5.
The constants and small functions below that carry these rules are module-level on purpose:
the tests replace each one with the plausible mistake and check that the goldens then fail.

Beyond the reference, for speed and memory: all crops go through the instance generator in one
batch; what the blending needs from each crop (its resized features and logits) is taken as the
instance generator produces each feature map, so the 256x256 crop features are never all held
at once; the softmax runs in float32 (the 1e5 bias overflows float16). The caller upsamples the
256x256 ab and joins it to the photo's own full-resolution lightness, like every colouriser here.

The detector is a substitution: the reference runs detectron2's Mask R-CNN X101-32x8d-FPN; here
torchvision's COCO Faster R-CNN R50-FPN v2 gives the boxes (the reference uses only boxes, so a
mask head would add cost for nothing). Input, threshold and box choice follow the reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from models import color
from models import weights as weight_files
from models.device import packed_convolutions, reduced_dtype, sign_relus
from models.colorize.framing import ColorizeEngine
from models.engine import Licence
from models.colorize.zhang import SIGGRAPHUNet
from models.weights import WeightFile, remote

NETWORK_SIZE = 256
MASK_VALUE = -0.5  # the mask channel: "no hint" (0) minus the reference's mask_cent (0.5)
BACKGROUND_BIAS = 1e5  # added to the background logit outside every box: the full image wins there
OUTSIDE_BOX_LOGIT = 0.0  # an instance's logit outside its box: the reference zero-pads, it does not mask
AB_NORM = 110.0  # the networks' tanh output is ab / 110

SCORE_THRESHOLD = 0.7  # inference_bbox.py: ROI_HEADS.SCORE_THRESH_TEST
MAX_BOXES = 8  # Fusion_Testing_Dataset(box_num=8)
COCO_CLASSES = 91  # torchvision's COCO label space; every class is kept, as the reference keeps all


class FusionPoint(NamedTuple):
    layer: str  # the WeightGenerator's attribute name in the published file
    channels: int
    grid: int  # the grid of the box_info the reference passes there (box_info: 256, _2x: 128, ...)
    # The reference's instance features at conv8_up, conv9_up and conv10_up were rectified in
    # place by the next block's leading ReLU(inplace=True) before the fusion read them.
    instance_relu: bool = False


# The feature maps where the fusion generator blends in the instances (FusionGenerator.forward).
# conv4_3 .. conv7_3 are all at 32: the trunk stops downsampling after conv3.
FUSION_POINTS: dict[str, FusionPoint] = {
    "conv1_2": FusionPoint("weight_layer", 64, 256),
    "conv2_2": FusionPoint("weight_layer2", 128, 128),
    "conv3_3": FusionPoint("weight_layer3", 256, 64),
    "conv4_3": FusionPoint("weight_layer4", 512, 32),
    "conv5_3": FusionPoint("weight_layer5", 512, 32),
    "conv6_3": FusionPoint("weight_layer6", 512, 32),
    "conv7_3": FusionPoint("weight_layer7", 512, 32),
    "conv8_up": FusionPoint("weight_layer8_1", 256, 64, instance_relu=True),
    "conv8_3": FusionPoint("weight_layer8_2", 256, 64),
    "conv9_up": FusionPoint("weight_layer9_1", 128, 128, instance_relu=True),
    "conv9_3": FusionPoint("weight_layer9_2", 128, 128),
    "conv10_up": FusionPoint("weight_layer10_1", 128, 256, instance_relu=True),
    "conv10_2": FusionPoint("weight_layer10_2", 128, 256),
}


# ---------------------------------------------------------------------------------------------
# Boxes -> cells of a grid, and crops


class BoxCells(NamedTuple):
    """A box on a grid, as the reference's box_info row: paddings, then width and height.

    The reference names elements 4 and 5 `rh` and `rw`; they hold the width and the height.
    """

    left: int
    right: int
    top: int
    bottom: int
    width: int
    height: int

    def region(self) -> tuple[slice, slice]:
        return slice(self.top, self.top + self.height), slice(self.left, self.left + self.width)


def _at_least_one_cell(start: int, end: int, grid: int) -> tuple[int, int]:
    """A box narrower than one cell is widened to one: its end moves one cell on, unless that end
    is within one cell of the grid's edge; then its start moves one cell back."""
    if end - start < 1:
        if grid - end > 1:
            end += 1
        else:
            start -= 1
    return start, end


def box_cells(box: tuple[int, int, int, int], image_size: tuple[int, int], grid: int) -> BoxCells:
    """image_util.get_box_info: an integer box (x1, y1, x2, y2) of an image (W, H) on a grid x grid."""
    x1, y1, x2, y2 = box
    width, height = image_size
    left, right = _at_least_one_cell(int(x1 / width * grid), int(x2 / width * grid), grid)
    top, bottom = _at_least_one_cell(int(y1 / height * grid), int(y2 / height * grid), grid)
    return BoxCells(left, grid - right, top, grid - bottom, right - left, bottom - top)


def integer_boxes(boxes: torch.Tensor, image_size: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """Boxes (N, 4) xyxy in pixels -> integers truncated toward zero, as `bbox.astype(np.int32)`.

    Boxes are first clipped to the image (the detector's already are); a box empty after
    truncation is dropped (the reference would fail to resize its empty crop).
    """
    width, height = image_size
    limit = torch.tensor([width, height, width, height], dtype=torch.float32)
    clipped = torch.minimum(boxes.detach().float().cpu().clamp_min(0), limit)
    ints = clipped.numpy().astype(np.int32).tolist()
    return [tuple(b) for b in ints if b[2] > b[0] and b[3] > b[1]]


def resized_pixels(img: Image.Image, boxes: list[tuple[int, int, int, int]] | None = None) -> torch.Tensor:
    """8-bit pixels (N, C, 256, 256) of the whole image (boxes None) or of each box's crop.

    As torchvision's Resize((256, 256), interpolation=2) on the original-resolution image:
    PIL bilinear with its antialiasing, aspect ratio not kept.
    """
    parts = [img] if boxes is None else [img.crop(b) for b in boxes]
    size = (NETWORK_SIZE, NETWORK_SIZE)
    arrays = np.stack([np.asarray(p.resize(size, Image.BILINEAR)) for p in parts])
    pixels = torch.from_numpy(arrays)
    return pixels.unsqueeze(1) if pixels.dim() == 3 else pixels.permute(0, 3, 1, 2)


def network_input(pixels: torch.Tensor) -> torch.Tensor:
    """8-bit pixels (N, 1 or 3, H, W) -> the networks' input (N, 4, H, W): (L - 50) / 100, ab hint 0,
    mask -0.5 (util.get_colorization_data with no hints)."""
    if pixels.shape[1] == 1:
        lightness = color.lightness_from_gray_uint8(pixels)
    else:
        lightness = color.lightness(pixels)
    a = (lightness - 50) / 100
    n, _, h, w = a.shape
    return torch.cat((a, a.new_zeros(n, 2, h, w), a.new_full((n, 1, h, w), MASK_VALUE)), dim=1)


# ---------------------------------------------------------------------------------------------
# Networks


def _logit_convs(channels: int, inner: int = 16) -> nn.Sequential:
    """Three 3x3 convolutions, each followed by ReLU: the logits are >= 0."""
    return nn.Sequential(nn.Conv2d(channels, inner, 3, 1, 1), nn.ReLU(True), nn.Conv2d(inner, inner, 3, 1, 1),
                         nn.ReLU(True), nn.Conv2d(inner, 1, 3, 1, 1), nn.ReLU(True))


class InstancePart(NamedTuple):
    """What one box brings to one fusion point: its crop's logit and features at the box's size."""

    cells: BoxCells
    logit: torch.Tensor  # (height, width)
    feature: torch.Tensor  # (C, height, width)


def _resize(x: torch.Tensor, cells: BoxCells) -> torch.Tensor:
    return F.interpolate(x, size=(cells.height, cells.width), mode="bilinear", align_corners=False)[0]


class WeightGenerator(nn.Module):
    """Per-pixel softmax weights between the instances and the full image at one feature map."""

    def __init__(self, channels: int):
        super().__init__()
        self.simple_instance_conv = _logit_convs(channels)
        self.simple_bg_conv = _logit_convs(channels)

    def instance_parts(self, features: torch.Tensor, cells: list[BoxCells]) -> list[InstancePart]:
        """Crop features (N, C, S, S), one row per box -> each box's logit and features at its size."""
        logits = self.simple_instance_conv(features)
        return [InstancePart(c, _resize(logits[i:i + 1], c)[0], _resize(features[i:i + 1], c))
                for i, c in enumerate(cells)]

    def blend(self, background: torch.Tensor, parts: list[InstancePart]) -> torch.Tensor:
        """The full image's features (1, C, S, S) with the instances blended in.

        Softmax over [instance logits ..., background logit] per pixel: an instance outside its
        box has logit OUTSIDE_BOX_LOGIT and feature 0; the background gets BACKGROUND_BIAS outside
        every box. Float32 throughout the softmax, whatever the features' precision.
        """
        grid = background.shape[-2:]
        logits = torch.full((len(parts) + 1, *grid), OUTSIDE_BOX_LOGIT, device=background.device)
        outside = torch.ones(grid, device=background.device)
        for i, part in enumerate(parts):
            region = part.cells.region()
            logits[i][region] = part.logit.float()
            outside[region] = 0
        logits[-1] = self.simple_bg_conv(background)[0, 0].float() + outside * BACKGROUND_BIAS
        weights = torch.softmax(logits, dim=0).to(background.dtype)
        out = background * weights[-1]
        for i, part in enumerate(parts):
            rows, cols = part.cells.region()
            out[0, :, rows, cols] += weights[i, rows, cols] * part.feature
        return out


class SIGGRAPHGenerator(SIGGRAPHUNet):
    """GComp (full image) and G (instance crops): the plain U-Net on the 4-channel input -> ab / 110."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.unet(x)


class FusionGenerator(SIGGRAPHUNet):
    """GF: its own full-image U-Net with a WeightGenerator at each fusion point."""

    def __init__(self):
        super().__init__()
        for point in FUSION_POINTS.values():
            self.add_module(point.layer, WeightGenerator(point.channels))
        self.weight_layerout = WeightGenerator(2)  # in the published file, never used

    def collect(self, instance_net: SIGGRAPHGenerator, crops_x: torch.Tensor,
                cells: dict[int, list[BoxCells]]) -> dict[str, list[InstancePart]]:
        """Run the instance generator on the crops (one batch), keeping at each fusion point only
        what blending needs from each box. `cells`: grid size -> one BoxCells per crop."""
        parts: dict[str, list[InstancePart]] = {}

        def take(name: str, feature: torch.Tensor) -> torch.Tensor:
            point = FUSION_POINTS[name]
            seen = F.relu(feature) if point.instance_relu else feature
            parts[name] = getattr(self, point.layer).instance_parts(seen, cells[point.grid])
            return feature

        instance_net.unet(crops_x, tap=take)
        return parts

    def forward(self, full_x: torch.Tensor, parts: dict[str, list[InstancePart]]) -> torch.Tensor:
        """Full-image input (1, 4, 256, 256) and the instances' parts -> fused ab / 110."""
        def fuse(name: str, feature: torch.Tensor) -> torch.Tensor:
            return getattr(self, FUSION_POINTS[name].layer).blend(feature, parts[name])

        return self.unet(full_x, tap=fuse)


def build_full() -> SIGGRAPHGenerator:
    """Empty network for latest_net_GComp.pth."""
    return SIGGRAPHGenerator()


def build_instance() -> SIGGRAPHGenerator:
    """Empty network for latest_net_G.pth."""
    return SIGGRAPHGenerator()


def build_fusion() -> FusionGenerator:
    """Empty network for latest_net_GF.pth (after strip_module_prefix)."""
    return FusionGenerator()


def strip_module_prefix(state_dict: dict) -> dict:
    """latest_net_GF.pth was saved from a DataParallel wrapper: every key starts with `module.`.
    Strip it when every key has it; anything else is left for the strict load to judge."""
    prefix = "module."
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix):]: v for k, v in state_dict.items()}
    return state_dict


# ---------------------------------------------------------------------------------------------
# The colouriser


class NetworkInputs(NamedTuple):
    full: torch.Tensor  # (1, 4, 256, 256): the whole image
    crops: torch.Tensor | None  # (N, 4, 256, 256): one crop per box; None without boxes
    cells: dict[int, list[BoxCells]]  # grid size -> each box on that grid


class InstanceColorizer:
    """The three loaded networks on one device. Build once, then `predict_ab` per image."""

    def __init__(self, full: SIGGRAPHGenerator, instance: SIGGRAPHGenerator, fusion: FusionGenerator,
                 device: torch.device, dtype: torch.dtype | None = None):
        self.device, self.dtype = torch.device(device), dtype
        layout = dict(device=self.device, dtype=dtype or torch.float32, memory_format=torch.channels_last)
        self.full, self.instance, self.fusion = (n.eval().to(**layout) for n in (full, instance, fusion))
        if dtype is not None:
            self.full, self.instance, self.fusion = (sign_relus(n) for n in (self.full, self.instance, self.fusion))
        if dtype == reduced_dtype(self.device) == torch.bfloat16:  # a CPU with native bf16: models/device.py PackedConv2d
            self.full, self.instance, self.fusion = (packed_convolutions(n)
                                                     for n in (self.full, self.instance, self.fusion))

    @classmethod
    def from_state_dicts(cls, full: dict, instance: dict, fusion: dict, device: torch.device,
                         dtype: torch.dtype | None = None, sources: tuple = ("GComp", "G", "GF")):
        """Strict loads (one-line error naming what differs); GF with or without `module.`."""
        nets = (build_full(), build_instance(), build_fusion())
        for net, sd, source in zip(nets, (full, instance, strip_module_prefix(fusion)), sources):
            weight_files.load_into(net, sd, source)
        return cls(*nets, device=device, dtype=dtype)

    def _on_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, self.dtype or torch.float32)
        return x.contiguous(memory_format=torch.channels_last)

    def prepare(self, img: Image.Image, boxes: torch.Tensor) -> NetworkInputs:
        """The crop stage: the networks' inputs for an image and its boxes."""
        full_x = self._on_device(network_input(resized_pixels(img)))
        ints = integer_boxes(boxes, img.size)
        if not ints:
            return NetworkInputs(full_x, None, {})
        crops_x = self._on_device(network_input(resized_pixels(img, ints)))
        grids = {point.grid for point in FUSION_POINTS.values()}
        return NetworkInputs(full_x, crops_x, {g: [box_cells(b, img.size, g) for b in ints] for g in grids})

    @torch.inference_mode()
    def predict_ab(self, img: Image.Image, boxes: torch.Tensor) -> torch.Tensor:
        """ab (1, 2, 256, 256) float32 in CIE units for an 8-bit L or RGB image and its boxes
        (N, 4) xyxy in original pixels; no box: the full-image generator."""
        inputs = self.prepare(img, boxes)
        if inputs.crops is None:
            return self.full(inputs.full).float() * AB_NORM
        parts = self.fusion.collect(self.instance, inputs.crops, inputs.cells)
        return self.fusion(inputs.full, parts).float() * AB_NORM


# ---------------------------------------------------------------------------------------------
# The detector


def detector_weights() -> tuple[str, str]:
    """(URL, published SHA-256 prefix) of torchvision's COCO Faster R-CNN R50-FPN v2 weights."""
    from torchvision.models.detection import FasterRCNN_ResNet50_FPN_V2_Weights

    url = FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1.url  # ...-dd69338a.pth: the hash prefix
    return url, url.rsplit("-", 1)[1].split(".")[0]


def build_detector(score_threshold: float = SCORE_THRESHOLD, min_size: int = 800, max_size: int = 1333,
                   proposals: int = 1000):
    """Empty detector with the published file's layout; torchvision downloads nothing.

    min_size/max_size: the input scaling; proposals: RPN proposals kept for the box head (whose
    four convolutions cost about as much as the backbone at 1000). The defaults are detectron2's
    test settings, which the reference used.
    """
    from torchvision.models.detection import fasterrcnn_resnet50_fpn_v2

    return fasterrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, num_classes=COCO_CLASSES,
                                      box_score_thresh=score_threshold, min_size=min_size, max_size=max_size,
                                      rpn_post_nms_top_n_test=proposals)


def detector_input(img: Image.Image) -> torch.Tensor:
    """(3, H, W) in 0..1: OpenCV's 8-bit L channel (L * 255 / 100) stacked three times, as
    inference_bbox.py feeds its detector."""
    pixels = torch.from_numpy(np.array(img))
    if img.mode == "L":
        lightness = color.lightness_from_gray_uint8(pixels)[None]
    else:
        lightness = color.lightness(pixels.permute(2, 0, 1))
    return (lightness * 2.55).round_().div_(255).expand(3, -1, -1)


def select_boxes(boxes: torch.Tensor, scores: torch.Tensor, box_num: int = MAX_BOXES) -> torch.Tensor:
    """image_util.gen_maskrcnn_bbox_fromPred: more than box_num boxes -> the box_num best scores
    in ascending score order; otherwise the detector's order. box_num <= 0 keeps all."""
    if 0 < box_num < len(boxes):
        keep = np.argsort(scores.numpy(), axis=0)[len(boxes) - box_num:]
        boxes = boxes[torch.from_numpy(keep)]
    return boxes


class Detector:
    """COCO boxes for the colouriser: all classes, score >= threshold, at most max_boxes."""

    def __init__(self, net: nn.Module, device: torch.device, max_boxes: int = MAX_BOXES):
        self.net, self.device, self.max_boxes = net.eval().to(device), torch.device(device), max_boxes

    @classmethod
    def from_state_dict(cls, state_dict: dict, device: torch.device, source: str = "detector",
                        max_boxes: int = MAX_BOXES, **settings) -> Detector:
        """Strict load; `settings` go to build_detector (score_threshold, min_size, max_size, proposals)."""
        net = build_detector(**settings)
        weight_files.load_into(net, state_dict, source)
        return cls(net, device, max_boxes)

    @torch.inference_mode()
    def __call__(self, img: Image.Image) -> torch.Tensor:
        """Boxes (N, 4) float32 xyxy in the image's pixels (N may be 0)."""
        found = self.net([detector_input(img).to(self.device)])[0]
        return select_boxes(found["boxes"].float().cpu(), found["scores"].float().cpu(), self.max_boxes)


# ---------------------------------------------------------------------------------------------
# The engine: the authors' three files from their Google Drive zip, torchvision's detector


def _checkpoint(name: str, build, prepare=None) -> WeightFile:
    """One of the authors' files: in checkpoints.zip on Google Drive (no hash published: pinned
    after its first strict load), folder coco_finetuned_mask_256_ffs as test_fusion.py loads it."""
    return WeightFile(remote("https://docs.google.com/uc?export=download&id=1Xb-DKAA9ibCVLqm8teKd1MWk6imjwTBh",
                             None, filename=f"instcolorization_{name}.pth",
                             archive="instcolorization_checkpoints.zip",
                             member=f"coco_finetuned_mask_256_ffs/latest_net_{name}.pth"), build, prepare)


FULL_FILE = _checkpoint("GComp", build_full)
INSTANCE_FILE = _checkpoint("G", build_instance)
FUSION_FILE = _checkpoint("GF", build_fusion, strip_module_prefix)
DETECTOR_FILE = WeightFile(remote(*detector_weights()), build_detector)


@dataclass(frozen=True)
class InstanceSettings:
    score_threshold: float = SCORE_THRESHOLD  # detections kept from this score on (the reference's 0.7)
    max_boxes: int = MAX_BOXES  # instances coloured separately (the reference's 8; fewer is faster)
    detector_size: int = 800  # the detector's input short side (detectron2's 800; 512 is twice as fast)

    def __post_init__(self):
        if not 0 < self.score_threshold < 1 or self.max_boxes < 0 or self.detector_size < 128:
            raise ValueError("score_threshold must be in (0, 1), max_boxes >= 0, detector_size >= 128")


class InstanceEngine(ColorizeEngine):
    """Objects found by the detector are coloured on their own and fused into the whole picture."""

    name = "instance"
    label = "InstColorization (Su et al., CVPR 2020)"
    licence = Licence(code="MIT", weights="MIT (the authors' checkpoints.zip, linked from the MIT repository; "
                      "no separate terms) + BSD-3-Clause (torchvision's COCO detector)", commercial=True,
                      source="github.com/ericsujw/InstColorization LICENSE; github.com/pytorch/vision LICENSE")
    files = (FULL_FILE, INSTANCE_FILE, FUSION_FILE, DETECTOR_FILE)
    default_on = frozenset({"cuda"})  # on a CPU DDColor is better and faster
    Settings = InstanceSettings

    def __init__(self, device, config):
        super().__init__(device, config)
        reduced = None if self.dtype == torch.float32 else self.dtype
        nets = (weight_files.load(f, config) for f in (FULL_FILE, INSTANCE_FILE, FUSION_FILE))
        self.colorizer = InstanceColorizer(*nets, device=device, dtype=reduced)
        path = weight_files.path_of(DETECTOR_FILE, config)
        s = self.settings
        self.detector = Detector.from_state_dict(DETECTOR_FILE.state_dict(path), device, str(path),
                                                 max_boxes=s.max_boxes, score_threshold=s.score_threshold,
                                                 min_size=s.detector_size)

    def predict_ab(self, img: Image.Image, reference: Image.Image | None = None) -> torch.Tensor:
        boxes = self.detector(img) if self.settings.max_boxes else torch.zeros(0, 4)
        return self.colorizer.predict_ab(img, boxes)
