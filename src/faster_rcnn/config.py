"""Configuration: one frozen dataclass per component, with torchvision's defaults.

A model is built from a :class:`FasterRCNNConfig` alone, and the config is stored as JSON
inside every checkpoint, so a checkpoint rebuilds exactly the model that wrote it. The
presets in :mod:`faster_rcnn.models` change only the numbers that differ from these
defaults (the paper preset, for example, follows Ren et al. 2015 instead).

Configs are immutable and validated completely when they are made, here and nowhere
else: every field's type and range, and the consistency between sections (threshold
order, anchor levels against the backbone's feature maps, layer sizes), so that nothing
is built or allocated from a bad one. Change one with :func:`dataclasses.replace`.
Lists are accepted where tuples are expected (JSON has no tuples) and stored as tuples.
"""

from __future__ import annotations

import collections
import dataclasses
import difflib
import itertools
import json
import math
import numbers
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# RoIAlign's sampling ratios that ask for an adaptive grid, ceil(RoI side / output size).
ADAPTIVE_SAMPLING = (0, -1)
# Bounds that keep a hostile or mistyped config (a model file's metadata, say) from
# allocating terabytes before anything else could fail.
MAX_IMAGE_SIDE = 16384
# The smallest training window (TransformConfig.train_window): the FPN presets' smallest
# anchor, which a smaller window would not hold.
MIN_TRAIN_WINDOW = 32
# No box of such an image is larger (the square root of its area), nor more elongated
# than a strip one pixel wide: anchor sizes, the RoI level mapping's canonical scale and
# anchor aspect ratios go no further. Nor is a feature map coarser than the image (the
# level of stride 2**14).
MAX_ASPECT_RATIO = float(MAX_IMAGE_SIDE)
MAX_LEVEL = int(math.log2(MAX_IMAGE_SIDE))
MAX_LAYER_WIDTH = 16384
MAX_CLASSES = 100_000
MAX_LAYER_PARAMETERS = 2**28  # 1 GiB of float32 in one fully connected layer
# float32's smallest positive number (a subnormal): a rate or width below it is 0 in the
# float32 arithmetic of the weights, losses and scores it multiplies or divides (a
# learning rate that updates nothing, a Soft-NMS sigma that divides 0 by 0), and its
# largest, beyond which such a number does not convert at all.
FLOAT32_SMALLEST = 2.0**-149
FLOAT32_LARGEST = (2 - 2.0**-23) * 2.0**127


class BackboneSpec(NamedTuple):
    """What the config needs to know of a named backbone before it is built.

    Attributes:
        feature_maps: names of its output feature maps, finest first.
        stages: how many stages ``trainable_layers`` counts over.
        default_trainable_layers: stages trained when the config says ``None``.
        fixed_channels: its output width when the architecture fixes it (VGG-16's 512).
        returned_layers: the stages whose outputs feed the FPN by default, where they can
            be chosen (torchvision's ``returned_layers``); ``None`` where they cannot.
        returnable: the stage indices ``returned_layers`` may name.
        depthwise: built of depthwise-separable blocks (MobileNets, the small backbone),
            whose depthwise convolutions oneDNN runs several times faster in NHWC.
    """

    feature_maps: tuple[str, ...]
    stages: int
    default_trainable_layers: int
    fixed_channels: int | None = None
    returned_layers: tuple[int, ...] | None = None
    returnable: range = range(0)
    depthwise: bool = False


# torchvision's and py-faster-rcnn's trainable stages for ImageNet-initialised backbones;
# every stage for the small backbone, which is trained from scratch. In a 20-minute CPU
# budget mobilenet_v2_fpn's 3 was ahead of 2, 4 and 5, each at the steps it fits
# (benchmarks/recipe_ab.md, round 27).
BACKBONES: dict[str, BackboneSpec] = {
    "vgg16": BackboneSpec(("0",), 5, 3, fixed_channels=512),
    "resnet50_fpn": BackboneSpec(
        ("0", "1", "2", "3", "pool"), 5, 3, returned_layers=(1, 2, 3, 4), returnable=range(1, 5)
    ),
    "resnet50_fpn_v2": BackboneSpec(
        ("0", "1", "2", "3", "pool"), 5, 3, returned_layers=(1, 2, 3, 4), returnable=range(1, 5)
    ),
    "mobilenet_v2_fpn": BackboneSpec(
        ("0", "1", "pool"), 6, 3, returned_layers=(4, 5), returnable=range(0, 6), depthwise=True
    ),
    "mobilenet_v3_large_fpn": BackboneSpec(
        ("0", "1", "pool"), 6, 3, returned_layers=(4, 5), returnable=range(0, 6), depthwise=True
    ),
    "small": BackboneSpec(("0", "1", "2", "pool"), 5, 5, depthwise=True),
}
# A backbone built by the user and passed to ``FasterRCNN(backbone, config)``.
CUSTOM_BACKBONE = "custom"


@dataclass(frozen=True)
class TransformConfig:
    """Resize, normalise and batch (see :class:`faster_rcnn.transform.ImageTransform`).

    ``min_size`` is the target length of the shorter side; a tuple means multi-scale
    training (in training one size drawn per image, as torchvision and detectron2 do, or
    per batch, as YOLOv5 does, by ``multi_scale_per``; the last one used in evaluation).
    One size may be given alone, as torchvision's ``GeneralizedRCNNTransform`` takes it
    (``min_size=800``): it is stored as the tuple ``(800,)``. The longer side is capped at
    ``max_size``. Batches are zero-padded so that height and width are multiples of
    ``size_divisible``.
    """

    min_size: tuple[int, ...] = (800,)
    max_size: int = 1333
    image_mean: tuple[float, float, float] = IMAGENET_MEAN
    image_std: tuple[float, float, float] = IMAGENET_STD
    size_divisible: int = 32
    multi_scale_per: Literal["image", "batch"] = "image"
    train_window: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "min_size", as_sizes(self.min_size))
        require(
            self,
            "min_size",
            isinstance(self.min_size, (tuple, list)),
            f"an integer or a tuple of integers, got {self.min_size!r}",
        )
        check_fields(self)
        require(self, "min_size", len(self.min_size) > 0, "at least one size")
        for name, sizes in (("min_size", self.min_size), ("max_size", (self.max_size,))):
            inside = all(1 <= size <= MAX_IMAGE_SIDE for size in sizes)
            require(self, name, inside, f"in [1, {MAX_IMAGE_SIDE}]")
        require(self, "image_std", all(s > 0 for s in self.image_std), "positive")
        require(self, "size_divisible", 1 <= self.size_divisible <= 256, "in [1, 256]")
        window = self.train_window
        require(
            self,
            "train_window",
            window is None or all(MIN_TRAIN_WINDOW <= side <= MAX_IMAGE_SIDE for side in window),
            f"two sides in [{MIN_TRAIN_WINDOW}, {MAX_IMAGE_SIDE}] px",
            ", or None",
        )


@dataclass(frozen=True)
class AnchorConfig:
    """Anchors (see :class:`faster_rcnn.anchors.AnchorGenerator`).

    One tuple of sizes and one of aspect ratios (height / width) per feature level, each
    without repeats (a repeat would repeat anchors). The paper's single level is
    ``sizes=((128, 256, 512),)``; an FPN has one size per level.
    ``offset`` places anchor centres at ``(i + offset) * stride``: 0 in torchvision, 0.5
    (the cell centre) in the paper's code.
    """

    sizes: tuple[tuple[float, ...], ...] = ((32,), (64,), (128,), (256,), (512,))
    aspect_ratios: tuple[tuple[float, ...], ...] = ((0.5, 1.0, 2.0),) * 5
    offset: float = 0.0

    def __post_init__(self) -> None:
        check_fields(self)
        require(self, "sizes", len(self.sizes) > 0, "at least one feature level")
        require(
            self,
            "aspect_ratios",
            len(self.aspect_ratios) == len(self.sizes),
            f"one tuple per level of sizes ({len(self.sizes)})",
        )
        for level, (sizes, ratios) in enumerate(zip(self.sizes, self.aspect_ratios, strict=True)):
            require(self, f"sizes[{level}]", len(sizes) > 0 and min(sizes) > 0, "positive")
            require(
                self,
                f"sizes[{level}]",
                max(sizes) <= MAX_IMAGE_SIDE,
                f"at most {MAX_IMAGE_SIDE} (no box of an image is larger), got {max(sizes)}",
            )
            require(
                self, f"aspect_ratios[{level}]", len(ratios) > 0 and min(ratios) > 0, "positive"
            )
            _require_distinct(self, f"sizes[{level}]", sizes)
            _require_distinct(self, f"aspect_ratios[{level}]", ratios)
            require(
                self,
                f"aspect_ratios[{level}]",
                min(ratios) >= 1 / MAX_ASPECT_RATIO and max(ratios) <= MAX_ASPECT_RATIO,
                f"in [1/{MAX_ASPECT_RATIO:g}, {MAX_ASPECT_RATIO:g}] (no box of an image is "
                f"more elongated), got {list(ratios)}",
            )
        per_location = [
            len(s) * len(r) for s, r in zip(self.sizes, self.aspect_ratios, strict=True)
        ]
        # One RPN head slides over every level, so every level has as many anchors.
        require(
            self,
            "sizes x aspect_ratios",
            len(set(per_location)) == 1,
            f"the same number of anchors per location on every level, got {per_location}",
        )
        require(self, "offset", 0.0 <= self.offset < 1.0, "in [0, 1)")

    def num_anchors_per_location(self) -> int:
        """Anchors at each feature-map location (sizes x aspect ratios of a level)."""
        return len(self.sizes[0]) * len(self.aspect_ratios[0])


@dataclass(frozen=True)
class RPNConfig:
    """Region Proposal Network: assignment, sampling, loss and proposal selection.

    Attributes:
        fg_iou_thresh: anchors with IoU >= this with some GT box are positive.
        bg_iou_thresh: anchors with IoU < this with every GT box are negative.
        allow_low_quality_matches: the best anchor(s) of each GT box are positive too.
        low_quality_min_iou: ... when their IoU is at least this; never at IoU 0 (a GT box
            no anchor overlaps would make every anchor positive).
        batch_size_per_image: anchors sampled per image for the loss (paper: 256).
        positive_fraction: at most this fraction of the sample is positive.
        sampler: ``"random"`` (balanced random sampling) or ``"hard_negative"`` (the
            negatives with the highest objectness loss are kept).
        allowed_border: anchors crossing the image border by more than this many pixels
            are ignored in training (paper: 0); -1 keeps every anchor.
        loss_normalization: ``"per_sample"`` (torchvision: box loss summed over sampled
            anchors and divided by the sample size) or ``"paper"`` (divided by the number
            of anchor locations, N_reg, and weighted by ``box_loss_weight``).
        box_loss_weight: the paper's lambda (10 with ``"paper"``, 1 otherwise).
        smooth_l1_beta: the smooth-L1 transition point (1/9 = py-faster-rcnn's sigma 3).
        pre_nms_top_n_train / pre_nms_top_n_test: boxes kept by score before NMS, per
            feature level.
        post_nms_top_n_train / post_nms_top_n_test: proposals kept after NMS, per image.
        nms_thresh: the NMS IoU threshold (paper: 0.7).
        score_thresh: proposals whose objectness probability is below this are dropped.
        min_size: proposals with a side shorter than this (in pixels of the resized image)
            are dropped.
        box_coder_weights: weights of the RPN's box coder.
        head_conv_depth: 3x3 conv + ReLU layers of the head before its two sibling
            layers (the paper and torchvision: 1; ``fasterrcnn_resnet50_fpn_v2``: 2).
    """

    fg_iou_thresh: float = 0.7
    bg_iou_thresh: float = 0.3
    allow_low_quality_matches: bool = True
    low_quality_min_iou: float = 0.0
    batch_size_per_image: int = 256
    positive_fraction: float = 0.5
    sampler: Literal["random", "hard_negative"] = "random"
    allowed_border: float = -1
    loss_normalization: Literal["per_sample", "paper"] = "per_sample"
    box_loss_weight: float = 1.0
    smooth_l1_beta: float = 1.0 / 9
    pre_nms_top_n_train: int = 2000
    pre_nms_top_n_test: int = 1000
    post_nms_top_n_train: int = 2000
    post_nms_top_n_test: int = 1000
    nms_thresh: float = 0.7
    score_thresh: float = 0.0
    min_size: float = 1e-3
    box_coder_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    head_conv_depth: int = 1

    def __post_init__(self) -> None:
        check_fields(self)
        _require_order(self, ("bg_iou_thresh", "fg_iou_thresh"), 0.0, 1.0)
        _require_order(self, ("low_quality_min_iou", "fg_iou_thresh"), 0.0, 1.0)
        require(self, "head_conv_depth", 1 <= self.head_conv_depth <= 8, "in [1, 8]")
        require(self, "batch_size_per_image", self.batch_size_per_image >= 1, ">= 1")
        require(self, "positive_fraction", 0.0 <= self.positive_fraction <= 1.0, "in [0, 1]")
        require(
            self,
            "allowed_border",
            self.allowed_border >= 0 or self.allowed_border == -1,
            ">= 0, or -1 to keep every anchor",
        )
        # A weight float32 makes infinite (1e308) made every step's loss infinite, skipped.
        weight = f"in [0, {FLOAT32_LARGEST:.2g}] (finite in float32)"
        require(self, "box_loss_weight", 0 <= self.box_loss_weight <= FLOAT32_LARGEST, weight)
        require(self, "smooth_l1_beta", self.smooth_l1_beta >= 0, ">= 0")
        for name in (
            "pre_nms_top_n_train",
            "pre_nms_top_n_test",
            "post_nms_top_n_train",
            "post_nms_top_n_test",
        ):
            require(self, name, getattr(self, name) >= 1, ">= 1")
        require(self, "nms_thresh", 0.0 <= self.nms_thresh <= 1.0, "in [0, 1]")
        require(self, "score_thresh", 0.0 <= self.score_thresh < 1.0, "in [0, 1)")
        require(self, "min_size", self.min_size >= 0, ">= 0")
        require(self, "box_coder_weights", min(self.box_coder_weights) > 0, "positive")


@dataclass(frozen=True)
class RoIHeadsConfig:
    """Fast R-CNN head: RoI sampling, pooling, box head, loss and post-processing.

    Attributes:
        fg_iou_thresh: proposals with IoU >= this with a GT box are foreground.
        bg_iou_thresh_hi / bg_iou_thresh_lo: proposals whose best IoU is in
            ``[lo, hi)`` are background; those below ``lo`` are not sampled
            (paper: [0.1, 0.5); torchvision: [0, 0.5)).
        batch_size_per_image: RoIs sampled per image (paper: 128, torchvision: 512).
        positive_fraction: at most this fraction of them foreground (0.25).
        sampler: ``"random"`` (the paper's and torchvision's), ``"object_balanced"``
            (the foreground RoIs spread evenly over the objects; see
            :class:`faster_rcnn.samplers.ObjectBalancedSampler`), ``"class_balanced"``
            (spread evenly over the classes, then over each class's objects; see
            :class:`faster_rcnn.samplers.ClassBalancedSampler`) or
            ``"class_sqrt_balanced"`` (each class's share of them growing with the square
            root of its objects in the image).
        gt_jitter: in training, this many randomly moved copies of each GT box join the
            candidate RoIs, so that every object has several foreground RoIs from the
            first step (0: none, as the paper and torchvision).
        pooler: ``"align"`` (multi-scale RoIAlign) or ``"pool"`` (the paper's RoIPool).
        featmap_names: the backbone outputs that are pooled; names of maps the backbone
            does not return are passed over, as torchvision's pooler passes them over.
        output_size: pooled grid size (7).
        sampling_ratio: RoIAlign samples per bin side (0 or -1: adaptive, as
            torchvision's RoIAlign reads them; detectron2's poolers give 0).
        aligned: RoIAlign's half-pixel correction (False in torchvision's Faster R-CNN).
        canonical_scale / canonical_level: the FPN level mapping
            ``k = floor(k0 + log2(sqrt(wh) / 224))``.
        box_head: ``"two_mlp"`` (torchvision's TwoMLPHead), ``"vgg16"`` (fc6/fc7 with
            dropout, which take ImageNet VGG-16 classifier weights) or ``"conv_fc"``
            (torchvision's FastRCNNConvFCHead of ``fasterrcnn_resnet50_fpn_v2``: four 3x3
            convs with batch norm, then one fully connected layer).
        representation_size: width of the fully connected layers (1024; VGG: 4096).
        predictor_init_std: ``None`` keeps ``nn.Linear``'s initialisation (torchvision);
            a value draws class scores from N(0, std) and box deltas from
            N(0, std / 10) (py-faster-rcnn: 0.01 / 0.001).
        box_coder_weights: weights of the head's box coder (10, 10, 5, 5).
        smooth_l1_beta: smooth-L1 transition of the box loss (1/9 in torchvision).
        score_thresh: detections scoring below this are dropped.
        nms_thresh: per-class NMS threshold (paper: 0.3, torchvision: 0.5).
        class_nms_thresh: one NMS threshold per class ``1..num_classes-1``, in place of
            ``nms_thresh``; empty (the default): every class uses ``nms_thresh``.
        soft_nms_sigma: above 0, Gaussian Soft-NMS with this sigma selects each class's
            detections instead of greedy NMS (``nms_thresh`` and ``class_nms_thresh`` are
            then unused): a detection overlapping a better one is lowered in score, by
            ``exp(-IoU^2 / sigma)``, not removed. 0 (the default, torchvision's): greedy NMS.
        soft_nms_min_score: Soft-NMS keeps a detection until its lowered score falls below
            this (0.001, as the Soft-NMS paper's code and mmcv's ``soft_nms``); its
            candidates must still score above ``score_thresh``. Lowered scores rank below
            every detection they could displace, so a lower floor only adds detections
            at the end of the ranking, where they never lower an AP.
        detections_per_img: detections kept per image.
        min_box_size: detections with a side shorter than this are dropped.
    """

    fg_iou_thresh: float = 0.5
    bg_iou_thresh_hi: float = 0.5
    bg_iou_thresh_lo: float = 0.0
    batch_size_per_image: int = 512
    positive_fraction: float = 0.25
    sampler: Literal["random", "object_balanced", "class_balanced", "class_sqrt_balanced"] = (
        "random"
    )
    gt_jitter: int = 0
    pooler: Literal["align", "pool"] = "align"
    featmap_names: tuple[str, ...] = ("0", "1", "2", "3")
    output_size: int = 7
    sampling_ratio: int = 2
    aligned: bool = False
    canonical_scale: int = 224
    canonical_level: int = 4
    box_head: Literal["two_mlp", "vgg16", "conv_fc"] = "two_mlp"
    representation_size: int = 1024
    predictor_init_std: float | None = None
    box_coder_weights: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
    smooth_l1_beta: float = 1.0 / 9
    score_thresh: float = 0.05
    nms_thresh: float = 0.5
    class_nms_thresh: tuple[float, ...] = ()
    soft_nms_sigma: float = 0.0
    soft_nms_min_score: float = 0.001
    detections_per_img: int = 100
    min_box_size: float = 1e-2

    def __post_init__(self) -> None:
        check_fields(self)
        self._check_sampling()
        self._check_pooling()
        self._check_box_head()
        self._check_postprocessing()

    def _check_sampling(self) -> None:
        """The IoU thresholds, the RoI sample and the jittered GT boxes."""
        _require_order(self, ("bg_iou_thresh_lo", "bg_iou_thresh_hi", "fg_iou_thresh"), 0.0, 1.0)
        require(self, "batch_size_per_image", self.batch_size_per_image >= 1, ">= 1")
        require(self, "positive_fraction", 0.0 <= self.positive_fraction <= 1.0, "in [0, 1]")
        # More copies of a box than the RoIs sampled could never all be sampled; 2**63 of
        # them overflowed the tensor drawn at the first step.
        most = self.batch_size_per_image
        jitter = f"in [0, {most}], the RoIs sampled an image"
        require(self, "gt_jitter", 0 <= self.gt_jitter <= most, jitter)

    def _check_pooling(self) -> None:
        """The pooled maps, the pooled grid and the FPN level mapping."""
        require(self, "featmap_names", len(self.featmap_names) > 0, "at least one name")
        # No backbone names a map "": such a name pools nothing.
        require(
            self,
            "featmap_names",
            all(self.featmap_names),
            f"names of feature maps, none empty; got {self.featmap_names}",
        )
        require(
            self,
            "featmap_names",
            len(set(self.featmap_names)) == len(self.featmap_names),
            f"names of different maps, got {self.featmap_names}",
        )
        require(
            self,
            "featmap_names",
            self.pooler == "align" or len(self.featmap_names) == 1,
            "a single feature map with pooler='pool' (RoIPool pools one map)",
        )
        require(self, "output_size", 1 <= self.output_size <= 32, "in [1, 32]")
        require(
            self,
            "sampling_ratio",
            self.sampling_ratio >= 1 or self.sampling_ratio in ADAPTIVE_SAMPLING,
            ">= 1, or 0 or -1 for adaptive",
        )
        require(
            self,
            "canonical_scale",
            1 <= self.canonical_scale <= MAX_IMAGE_SIDE,
            f"in [1, {MAX_IMAGE_SIDE}] (a box size), got {self.canonical_scale}",
        )
        require(
            self,
            "canonical_level",
            1 <= self.canonical_level <= MAX_LEVEL,
            f"in [1, {MAX_LEVEL}] (the level of stride 2**k), got {self.canonical_level}",
        )

    def _check_box_head(self) -> None:
        """The box head's width, the predictor's initialisation and the box loss."""
        require(
            self,
            "representation_size",
            1 <= self.representation_size <= MAX_LAYER_WIDTH,
            f"in [1, {MAX_LAYER_WIDTH}]",
        )
        require(
            self,
            "predictor_init_std",
            self.predictor_init_std is None or self.predictor_init_std > 0,
            "positive or None",
        )
        require(self, "box_coder_weights", min(self.box_coder_weights) > 0, "positive")
        require(self, "smooth_l1_beta", self.smooth_l1_beta >= 0, ">= 0")

    def _check_postprocessing(self) -> None:
        """The score threshold, (Soft-)NMS and the detections kept."""
        require(self, "score_thresh", 0.0 <= self.score_thresh < 1.0, "in [0, 1)")
        require(self, "nms_thresh", 0.0 <= self.nms_thresh <= 1.0, "in [0, 1]")
        require(
            self,
            "class_nms_thresh",
            all(0.0 <= value <= 1.0 for value in self.class_nms_thresh),
            "in [0, 1]",
        )
        sigma = self.soft_nms_sigma
        require(
            self,
            "soft_nms_sigma",
            sigma == 0 or sigma >= FLOAT32_SMALLEST,  # a wider one (1e308) lowers no score
            f"0 (greedy NMS) or at least {FLOAT32_SMALLEST:.2g} (> 0 in float32)",
        )
        require(self, "soft_nms_min_score", 0.0 <= self.soft_nms_min_score < 1.0, "in [0, 1)")
        require(self, "detections_per_img", self.detections_per_img >= 1, ">= 1")
        require(self, "min_box_size", self.min_box_size >= 0, ">= 0")


@dataclass(frozen=True)
class BackboneConfig:
    """Which backbone to build (see :func:`faster_rcnn.backbones.build_backbone`).

    Attributes:
        name: ``"vgg16"``, ``"resnet50_fpn"``, ``"mobilenet_v2_fpn"``,
            ``"mobilenet_v3_large_fpn"``, ``"small"``, or
            ``"custom"`` for a backbone module the user builds and passes to
            ``FasterRCNN(backbone, config)``.
        trainable_layers: how many of the last stages are trained (the rest are frozen);
            ``None`` means the backbone's own default.
        frozen_batch_norm: batch norm with fixed statistics and affine parameters, as
            when fine-tuning from ImageNet weights.
        out_channels: channels of every output feature map (the FPN's width; 512 for
            VGG-16).
        returned_layers: the stages whose outputs the FPN reads, in increasing order
            (torchvision's ``returned_layers``: ResNet ``layer1..layer4`` are 1-4; a
            MobileNet's stages 0-5 start at its first block and each stride-2 block, and
            the FPN reads a stage's first block); ``None`` means the backbone's own
            (ResNet 1-4, MobileNet 4-5: two stride-32 maps). Stage 3 added to a
            MobileNet's gives the FPN a stride-16 map.
    """

    name: str = "resnet50_fpn"
    trainable_layers: int | None = None
    frozen_batch_norm: bool = True
    out_channels: int = 256
    returned_layers: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        check_fields(self)
        names = [*BACKBONES, CUSTOM_BACKBONE]
        require(self, "name", self.name in names, f"one of {', '.join(names)}")
        require(
            self,
            "out_channels",
            1 <= self.out_channels <= MAX_LAYER_WIDTH,
            f"in [1, {MAX_LAYER_WIDTH}]",
        )
        spec = BACKBONES.get(self.name)
        if spec is None:
            return
        if spec.fixed_channels is not None:
            require(
                self,
                "out_channels",
                self.out_channels == spec.fixed_channels,
                f"{spec.fixed_channels} for {self.name}",
            )
        require(
            self,
            "trainable_layers",
            self.trainable_layers is None or 0 <= self.trainable_layers <= spec.stages,
            f"in [0, {spec.stages}] for {self.name}",
            ", or None for its default",
        )
        self._check_returned_layers(spec)

    def _check_returned_layers(self, spec: BackboneSpec) -> None:
        chosen = self.returned_layers
        if chosen is None:
            return
        require(
            self,
            "returned_layers",
            spec.returned_layers is not None,
            f"left out for {self.name}, whose feature maps are fixed",
        )
        first, last = spec.returnable.start, spec.returnable.stop - 1
        require(
            self,
            "returned_layers",
            len(chosen) >= 1
            and all(a < b for a, b in itertools.pairwise(chosen))
            and set(chosen) <= set(spec.returnable),
            f"increasing stage indices in [{first}, {last}] for {self.name}",
            f", got {chosen}",
        )

    def feature_maps(self) -> tuple[str, ...] | None:
        """Names of the backbone's output feature maps, finest first (``None`` for a
        custom backbone): ``"0"``, ``"1"``... one per returned stage, then ``"pool"``."""
        spec = BACKBONES.get(self.name)
        if spec is None:
            return None
        if self.returned_layers is None:
            return spec.feature_maps
        return (*(str(level) for level in range(len(self.returned_layers))), "pool")

    def resolved_returned_layers(self) -> tuple[int, ...] | None:
        """``returned_layers``, the backbone's default where it is ``None``."""
        spec = BACKBONES.get(self.name)
        if self.returned_layers is None and spec is not None:
            return spec.returned_layers
        return self.returned_layers

    def resolved_trainable_layers(self) -> int | None:
        """``trainable_layers``, the backbone's default where it is ``None``."""
        spec = BACKBONES.get(self.name)
        if self.trainable_layers is None and spec is not None:
            return spec.default_trainable_layers
        return self.trainable_layers


@dataclass(frozen=True)
class FasterRCNNConfig:
    """Everything that defines a Faster R-CNN model.

    ``num_classes`` counts the background; ``class_names`` (optional, without background)
    name labels ``1..num_classes-1`` and travel with the model in its checkpoint.
    """

    num_classes: int = 91
    class_names: tuple[str, ...] = ()
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    transform: TransformConfig = field(default_factory=TransformConfig)
    anchors: AnchorConfig = field(default_factory=AnchorConfig)
    rpn: RPNConfig = field(default_factory=RPNConfig)
    roi_heads: RoIHeadsConfig = field(default_factory=RoIHeadsConfig)

    def __post_init__(self) -> None:
        check_fields(self)
        require(
            self,
            "num_classes",
            2 <= self.num_classes <= MAX_CLASSES,
            f"in [2, {MAX_CLASSES}] (it counts the background)",
        )
        require(
            self,
            "class_names",
            not self.class_names or len(self.class_names) == self.num_classes - 1,
            f"{self.num_classes - 1} names, one per class without the background; got "
            f"{len(self.class_names)}",
        )
        blank = [repr(name) for name in self.class_names if not name.strip()]
        require(self, "class_names", not blank, f"non-blank names; got {', '.join(blank)}")
        repeated = sorted({name for name in self.class_names if self.class_names.count(name) > 1})
        shown = ", ".join(map(repr, repeated))
        verb = "repeats" if len(repeated) == 1 else "repeat"
        require(self, "class_names", not repeated, f"names of different classes; {shown} {verb}")
        thresholds = self.roi_heads.class_nms_thresh
        require(
            self,
            "roi_heads.class_nms_thresh",
            not thresholds or len(thresholds) == self.num_classes - 1,
            f"empty or {self.num_classes - 1} IoUs, one per class without the background; "
            f"got {len(thresholds)}",
        )
        self._check_feature_maps()
        self._check_layer_sizes()

    def _check_feature_maps(self) -> None:
        """Anchor levels and pooled maps against the named backbone's outputs."""
        maps = self.backbone.feature_maps()
        if maps is None:  # a custom backbone: checked against the module when built
            return
        self.check_feature_maps(maps)

    def check_feature_maps(self, maps: tuple[str, ...]) -> None:
        """Refuse anchor levels or pooled maps that do not fit a backbone returning the
        feature maps named ``maps`` (finest first): one level of anchors per map, and
        some of those maps pooled (others named are passed over, as torchvision's pooler
        passes them over).

        Raises:
            ValueError: naming the field and the backbone's maps.
        """
        require(
            self,
            "anchors.sizes",
            len(self.anchors.sizes) == len(maps),
            f"one tuple per feature map of {self.backbone.name} ({len(maps)}: "
            f"{', '.join(maps)}); got {len(self.anchors.sizes)}",
        )
        pooled = self.roi_heads.featmap_names
        require(
            self,
            "roi_heads.featmap_names",
            not set(pooled).isdisjoint(maps),
            f"among {self.backbone.name}'s feature maps {maps}; {list(pooled)} are not",
        )

    def _check_layer_sizes(self) -> None:
        """The head's fully connected layers fit in memory."""
        heads = self.roi_heads
        pooled = self.backbone.out_channels * heads.output_size**2
        require(
            self,
            "roi_heads.representation_size",
            pooled * heads.representation_size <= MAX_LAYER_PARAMETERS,
            f"small enough that the first layer (out_channels x output_size^2 = {pooled} "
            f"inputs) has at most {MAX_LAYER_PARAMETERS} weights",
        )
        require(
            self,
            "num_classes",
            5 * self.num_classes * heads.representation_size <= MAX_LAYER_PARAMETERS,
            f"small enough that the predictor has at most {MAX_LAYER_PARAMETERS} weights",
        )

    def replace(self, **changes: Any) -> FasterRCNNConfig:
        """A validated copy with ``changes``; a section may be given as a dict of the
        fields to change in it::

            config.replace(transform={"min_size": (600,)}, class_names=("cat", "dog"))
        """
        for name, value in changes.items():
            if name in _SECTIONS and isinstance(value, dict):
                changes[name] = _replaced(getattr(self, name), value)
        return _replaced(self, changes)

    def with_returned_layers(self, returned_layers: tuple[int, ...]) -> FasterRCNNConfig:
        """A copy whose FPN reads the backbone stages ``returned_layers``, with anchors
        and pooled maps to match: the RoI head pools from every map but ``"pool"``, and
        each level keeps its stage's anchors (a stage the config does not read takes the
        anchors every level has, where all levels have the same).

        Raises:
            ValueError: the stages are not the backbone's, or a new stage has no anchors
                to take (give an anchor file for the new levels).
        """
        backbone = dataclasses.replace(self.backbone, returned_layers=tuple(returned_layers))
        current = self.backbone.resolved_returned_layers()
        maps = backbone.feature_maps()
        assert current is not None and maps is not None  # validated by the replace above
        sizes, ratios = self.anchors.sizes, self.anchors.aspect_ratios
        same = len(set(zip(sizes, ratios, strict=True))) == 1
        missing = sorted(set(returned_layers) - set(current))
        if missing and not same:
            raise ValueError(
                f"backbone stages {missing} have no anchors in this config: give an anchor "
                f"file with one level per feature map ({', '.join(maps)})"
            )
        levels = [*(current.index(k) if k in current else 0 for k in returned_layers), -1]
        anchors = dataclasses.replace(
            self.anchors,
            sizes=tuple(sizes[i] for i in levels),
            aspect_ratios=tuple(ratios[i] for i in levels),
        )
        return self.replace(
            backbone=backbone, anchors=anchors, roi_heads={"featmap_names": maps[:-1]}
        )

    def label_names(self) -> tuple[str, ...]:
        """The names of labels ``1..num_classes-1``: ``class_names``, or ``"class<k>"``
        for a model trained without names."""
        if self.class_names:
            return self.class_names
        return tuple(f"class{k}" for k in range(1, self.num_classes))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def changes_since(self, other: FasterRCNNConfig) -> list[str]:
        """The settings that differ from ``other``'s, as ``"section.name old -> new"``
        (:meth:`changed_settings`, :func:`worded_change`)."""
        return [worded_change(*change) for change in self.changed_settings(other)]

    def changed_settings(self, other: FasterRCNNConfig) -> list[tuple[str, Any, Any]]:
        """The settings that differ from ``other``'s, as ``("section.name", old, new)``, by
        name; a backbone setting left to its default (``None``) and that default are no
        change."""
        ours, theirs = (
            _flat(self._defaults_spelled().to_dict()),
            _flat(other._defaults_spelled().to_dict()),
        )
        return [
            (name, theirs.get(name), ours.get(name))
            for name in sorted(ours.keys() | theirs.keys())
            if ours.get(name) != theirs.get(name)
        ]

    def _defaults_spelled(self) -> FasterRCNNConfig:
        """This config with the backbone's stages and trainable layers given as the values
        its ``None`` (the backbone's default) stands for."""
        backbone = self.backbone
        spelled = {
            "returned_layers": backbone.resolved_returned_layers(),
            "trainable_layers": backbone.resolved_trainable_layers(),
        }
        return self.replace(backbone=spelled)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FasterRCNNConfig:
        """Rebuild (and so validate) a config from :meth:`to_dict` output."""
        if not isinstance(data, dict):
            raise ValueError(f"a config must be a JSON object, got {type(data).__name__}")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key in _SECTIONS:
                kwargs[key] = _build_section(_SECTIONS[key], value)
            elif key in {f.name for f in dataclasses.fields(cls)}:
                kwargs[key] = value
            else:
                raise ValueError(f"unknown config field {key!r}")
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> FasterRCNNConfig:
        return cls.from_dict(json.loads(text))


def worded_change(name: str, old: Any, new: Any) -> str:
    """A setting's change in words: ``"transform.min_size (600,) -> (800,)"``."""
    return f"{name} {old!r} -> {new!r}"


def _flat(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested sections' settings under dotted names (``transform.min_size``)."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


_SECTIONS: dict[str, type] = {
    "backbone": BackboneConfig,
    "transform": TransformConfig,
    "anchors": AnchorConfig,
    "rpn": RPNConfig,
    "roi_heads": RoIHeadsConfig,
}


def _build_section(section: type, values: Any) -> Any:
    if not isinstance(values, dict):
        raise ValueError(f"{section.__name__} must be a JSON object, got {type(values).__name__}")
    _check_known(section, values)
    return section(**values)


def _replaced(config: Any, changes: dict[str, Any]) -> Any:
    """``dataclasses.replace``, with a field the config lacks refused as a ``ValueError``
    (as every bad value is), not a ``TypeError``."""
    _check_known(type(config), changes)
    return dataclasses.replace(config, **changes)


def _check_known(section: type, values: dict[str, Any]) -> None:
    """Refuse fields ``section`` lacks, naming them (and the likely one meant)."""
    known = [f.name for f in dataclasses.fields(section)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        close = difflib.get_close_matches(unknown[0], known, n=1)
        meant = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown {section.__name__} field(s): {unknown}{meant}")


def as_sizes(value: Any) -> Any:
    """``value`` as a tuple of sizes where it is one size given alone (torchvision's
    ``min_size=800``: ``(800,)``); anything else as it is, for the config to check."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return (int(value),)
    return value


class ConfigError(ValueError):
    """A config field's value refused: ``"TransformConfig.max_size must be in [1, 16384]"``.

    Attributes:
        field: the section and field, ``"TransformConfig.max_size"`` (an element's index
            left out), for a caller that took the value under another name (a command-line
            flag) to name that instead.
        requirement: what the value must be, ``"must be in [1, 16384]"``, in words that
            hold wherever it was given. The message adds ``python_only``, what only a
            Python caller wrote: the value as Python shows it (``", got (5, 4)"``) or what
            ``None`` stands for, which a flag shows as typed or cannot give.
    """

    def __init__(self, where: str, requirement: str, python_only: str = "") -> None:
        super().__init__(f"{where} {requirement}{python_only}")
        self.field = where.split("[")[0]
        self.requirement = requirement


def check_setting(
    section: type,
    name: str,
    value: Any,
    where: str,
    current: Mapping[str, Any] | None = None,
    shown: str | None = None,
) -> None:
    """Refuse ``value`` set on a built model's module as ``where``
    (``"roi_heads.score_thresh"``) where the config field ``name`` of ``section``
    (:class:`RoIHeadsConfig`...) refuses it, by that field's own rules: its type and
    range, the other fields at their defaults, or at their values in ``current``.

    ``current`` holds the module's other settings (as the section's fields) that a rule
    between fields compares ``value`` with: a matcher's other IoU thresholds, the head's
    GT jitter against the RoIs an image. Such a rule broken once ``value`` joins them is
    raised as the field it names (``"proposal_matcher.high_threshold = 0.2:
    bg_iou_thresh (0.3) must be ordered ..."``), unless the config refuses ``current``
    alike without ``value`` (``name`` at its default). A rule with fields outside
    ``current`` is left to :attr:`~faster_rcnn.FasterRCNN.config`, which reads them all:
    the defaults of the others might refuse a good value. ``name`` and ``current``'s fields may be a
    section's field of :class:`FasterRCNNConfig` (``"roi_heads.class_nms_thresh"``,
    with ``{"num_classes": 3}``), for a rule between sections. ``shown`` is the value as
    the message gives it where ``value`` is not what was set (one name checked as the
    field's tuple of names); ``repr(value)`` by default.

    Raises:
        ValueError: ``"roi_heads.score_thresh = 1.5: must be in [0, 1)"``.
    """
    current = dict(current or {})
    refusal = _refusal(section, {**current, name: value})
    if refusal is None:
        return
    if current and str(refusal) == str(_refusal(section, current)):
        return  # refused alike without value: a rule of the others and the defaults
    refused = _setting_named(section, refusal.field)
    shown = repr(value) if shown is None else shown
    if refused == name:
        raise ValueError(f"{where} = {shown}: {refusal.requirement}")
    if refused in current:
        raise ValueError(
            f"{where} = {shown}: {refused} ({current[refused]!r}) {refusal.requirement}"
        )


def _refusal(section: type, settings: Mapping[str, Any]) -> ConfigError | None:
    """What ``section`` made of ``settings`` (a section's field of
    :class:`FasterRCNNConfig` given as ``"roi_heads.class_nms_thresh"``) is refused with,
    or ``None``."""
    fields: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {}
    for key, value in settings.items():
        part, _, name = key.rpartition(".")
        if part:
            sections.setdefault(part, {})[name] = value
        else:
            fields[key] = value
    try:
        section(**fields, **{part: _SECTIONS[part](**values) for part, values in sections.items()})
    except ConfigError as error:
        return error
    return None


def _setting_named(section: type, field: str) -> str:
    """The field of ``section`` (a section's of :class:`FasterRCNNConfig` as
    ``"roi_heads.class_nms_thresh"``) that a :class:`ConfigError`'s ``field``
    (``"RoIHeadsConfig.class_nms_thresh"``) names."""
    owner, _, name = field.partition(".")
    if owner == section.__name__:
        return name
    parts = [part for part, kind in _SECTIONS.items() if kind.__name__ == owner]
    return f"{parts[0]}.{name}" if parts else field


def require(
    config: object, name: str, condition: bool, expected: str, python_only: str = ""
) -> None:
    """Raise :class:`ConfigError` naming the section and field unless ``condition`` holds;
    ``python_only`` follows ``expected`` in its message only (:class:`ConfigError`)."""
    if not condition:
        raise ConfigError(f"{type(config).__name__}.{name}", f"must be {expected}", python_only)


def is_float32_positive(value: float) -> bool:
    """Whether ``value`` is a positive number that float32 holds, neither 0 nor infinite
    there (:data:`FLOAT32_SMALLEST`, :data:`FLOAT32_LARGEST`)."""
    return FLOAT32_SMALLEST <= value <= FLOAT32_LARGEST


def _require_distinct(config: object, name: str, values: tuple[float, ...]) -> None:
    """Each of ``values`` once: a repeated anchor size or ratio repeats its anchors."""
    repeated = sorted(value for value, count in collections.Counter(values).items() if count > 1)
    shown = ", ".join(f"{value:g}" for value in repeated)
    require(
        config,
        name,
        not repeated,
        f"distinct (a repeated value repeats its anchors), got {list(values)}: {shown} repeats",
    )


def _require_order(config: object, names: tuple[str, ...], low: float, high: float) -> None:
    """The fields ``names`` are non-decreasing within ``[low, high]``."""
    values = [getattr(config, name) for name in names]
    in_order = all(a <= b for a, b in zip([low, *values], [*values, high], strict=True))
    shown = " <= ".join(f"{name} ({value})" for name, value in zip(names, values, strict=True))
    require(config, names[0], in_order, f"ordered {low} <= {shown} <= {high}")


def check_fields(config: object) -> None:
    """Check every field of a config dataclass against its annotation; lists are stored
    as tuples."""
    hints = _type_hints(type(config))
    for item in dataclasses.fields(config):  # type: ignore[arg-type]
        where = f"{type(config).__name__}.{item.name}"
        value = _typed(getattr(config, item.name), hints[item.name], where)
        object.__setattr__(config, item.name, value)


_HINTS: dict[type, dict[str, Any]] = {}


def _type_hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _typed(value: Any, hint: Any, where: str) -> Any:
    """``value`` if it has the type ``hint`` describes (tuples rebuilt from lists)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        if value not in args:
            raise ConfigError(where, f"must be one of {', '.join(map(repr, args))}; got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = (arg for arg in args if arg is not type(None))
        return _typed(value, inner, where)
    if origin is tuple:
        return _typed_tuple(value, args, where)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ConfigError(where, f"must be a number, got {value!r}")
        if not _finite(value):
            raise ConfigError(where, f"must be finite, got {value!r}")
        # A NumPy scalar (an array's element) as Python's own: the config is written as JSON.
        return value if isinstance(value, (int, float)) else float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ConfigError(where, f"must be an integer, got {value!r}")
        return int(value)
    if isinstance(hint, type) and not isinstance(value, hint):
        raise ConfigError(where, f"must be a {hint.__name__}, got {value!r}")
    return value


def _finite(value: numbers.Real) -> bool:
    """Whether ``value`` is a finite float: an integer beyond float's range (a JSON
    ``1e400`` spelt out in digits) is not."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _typed_tuple(value: Any, args: tuple[Any, ...], where: str) -> tuple[Any, ...]:
    if not isinstance(value, (tuple, list)):
        raise ConfigError(where, f"must be a tuple, got {value!r}")
    if len(args) == 2 and args[1] is Ellipsis:
        args = (args[0],) * len(value)
    elif len(value) != len(args):
        raise ConfigError(where, f"must have {len(args)} values, got {len(value)}")
    return tuple(
        _typed(v, arg, f"{where}[{i}]") for i, (v, arg) in enumerate(zip(value, args, strict=True))
    )
