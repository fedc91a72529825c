"""Configuration: one plain dataclass per component, with torchvision's defaults.

A model is built from a :class:`FasterRCNNConfig` alone, and the config is stored as JSON
inside every checkpoint, so a checkpoint rebuilds exactly the model that wrote it. The
presets in :mod:`faster_rcnn.models` change only the numbers that differ from these
defaults (the paper preset, for example, follows Ren et al. 2015 instead).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class TransformConfig:
    """Resize, normalise and batch (see :class:`faster_rcnn.transform.ImageTransform`).

    ``min_size`` is the target length of the shorter side; a tuple means multi-scale
    training (one size drawn per image in training, the last one used in evaluation).
    The longer side is capped at ``max_size``. Batches are zero-padded so that height and
    width are multiples of ``size_divisible``.
    """

    min_size: tuple[int, ...] = (800,)
    max_size: int = 1333
    image_mean: tuple[float, float, float] = IMAGENET_MEAN
    image_std: tuple[float, float, float] = IMAGENET_STD
    size_divisible: int = 32


@dataclass
class AnchorConfig:
    """Anchors (see :class:`faster_rcnn.anchors.AnchorGenerator`).

    One tuple of sizes and one of aspect ratios (height / width) per feature level. The
    paper's single level is ``sizes=((128, 256, 512),)``; an FPN has one size per level.
    ``offset`` places anchor centres at ``(i + offset) * stride``: 0 in torchvision, 0.5
    (the cell centre) in the paper's code.
    """

    sizes: tuple[tuple[float, ...], ...] = ((32,), (64,), (128,), (256,), (512,))
    aspect_ratios: tuple[tuple[float, ...], ...] = ((0.5, 1.0, 2.0),) * 5
    offset: float = 0.0


@dataclass
class RPNConfig:
    """Region Proposal Network: assignment, sampling, loss and proposal selection.

    Attributes:
        fg_iou_thresh: anchors with IoU >= this with some GT box are positive.
        bg_iou_thresh: anchors with IoU < this with every GT box are negative.
        allow_low_quality_matches: the best anchor(s) of each GT box are positive too.
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
    """

    fg_iou_thresh: float = 0.7
    bg_iou_thresh: float = 0.3
    allow_low_quality_matches: bool = True
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


@dataclass
class RoIHeadsConfig:
    """Fast R-CNN head: RoI sampling, pooling, box head, loss and post-processing.

    Attributes:
        fg_iou_thresh: proposals with IoU >= this with a GT box are foreground.
        bg_iou_thresh_hi / bg_iou_thresh_lo: proposals whose best IoU is in
            ``[lo, hi)`` are background; those below ``lo`` are not sampled
            (paper: [0.1, 0.5); torchvision: [0, 0.5)).
        batch_size_per_image: RoIs sampled per image (paper: 128, torchvision: 512).
        positive_fraction: at most this fraction of them foreground (0.25).
        pooler: ``"align"`` (multi-scale RoIAlign) or ``"pool"`` (the paper's RoIPool).
        featmap_names: the backbone outputs that are pooled.
        output_size: pooled grid size (7).
        sampling_ratio: RoIAlign samples per bin side (-1: adaptive).
        aligned: RoIAlign's half-pixel correction (False in torchvision's Faster R-CNN).
        canonical_scale / canonical_level: the FPN level mapping
            ``k = floor(k0 + log2(sqrt(wh) / 224))``.
        box_head: ``"two_mlp"`` (torchvision's TwoMLPHead) or ``"vgg16"`` (fc6/fc7 with
            dropout, which take ImageNet VGG-16 classifier weights).
        representation_size: width of the two fully connected layers (1024; VGG: 4096).
        predictor_init_std: ``None`` keeps ``nn.Linear``'s initialisation (torchvision);
            a value draws class scores from N(0, std) and box deltas from
            N(0, std / 10) (py-faster-rcnn: 0.01 / 0.001).
        box_coder_weights: weights of the head's box coder (10, 10, 5, 5).
        smooth_l1_beta: smooth-L1 transition of the box loss (1/9 in torchvision).
        score_thresh: detections scoring below this are dropped.
        nms_thresh: per-class NMS threshold (paper: 0.3, torchvision: 0.5).
        detections_per_img: detections kept per image.
        min_box_size: detections with a side shorter than this are dropped.
    """

    fg_iou_thresh: float = 0.5
    bg_iou_thresh_hi: float = 0.5
    bg_iou_thresh_lo: float = 0.0
    batch_size_per_image: int = 512
    positive_fraction: float = 0.25
    pooler: Literal["align", "pool"] = "align"
    featmap_names: tuple[str, ...] = ("0", "1", "2", "3")
    output_size: int = 7
    sampling_ratio: int = 2
    aligned: bool = False
    canonical_scale: int = 224
    canonical_level: int = 4
    box_head: Literal["two_mlp", "vgg16"] = "two_mlp"
    representation_size: int = 1024
    predictor_init_std: float | None = None
    box_coder_weights: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
    smooth_l1_beta: float = 1.0 / 9
    score_thresh: float = 0.05
    nms_thresh: float = 0.5
    detections_per_img: int = 100
    min_box_size: float = 1e-2


@dataclass
class BackboneConfig:
    """Which backbone to build (see :func:`faster_rcnn.backbones.build_backbone`).

    Attributes:
        name: ``"vgg16"``, ``"resnet50_fpn"``, ``"mobilenet_v2_fpn"`` or ``"small"``.
        trainable_layers: how many of the last stages are trained (the rest are frozen);
            ``None`` means the backbone's own default.
        frozen_batch_norm: batch norm with fixed statistics and affine parameters, as
            when fine-tuning from ImageNet weights.
        out_channels: channels of every output feature map (FPN width; ignored by VGG).
    """

    name: str = "resnet50_fpn"
    trainable_layers: int | None = None
    frozen_batch_norm: bool = True
    out_channels: int = 256


@dataclass
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

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FasterRCNNConfig:
        """Rebuild a config from :meth:`to_dict` output (lists become tuples again)."""
        sections = {
            "backbone": BackboneConfig,
            "transform": TransformConfig,
            "anchors": AnchorConfig,
            "rpn": RPNConfig,
            "roi_heads": RoIHeadsConfig,
        }
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key in sections:
                kwargs[key] = _build_section(sections[key], value)
            elif key in {f.name for f in dataclasses.fields(cls)}:
                kwargs[key] = _as_tuple(value)
            else:
                raise ValueError(f"unknown config field {key!r}")
        config = cls(**kwargs)
        config.validate()
        return config

    def validate(self) -> None:
        """Raise ``ValueError`` when settings contradict each other."""
        if self.class_names and len(self.class_names) != self.num_classes - 1:
            raise ValueError(
                f"{len(self.class_names)} class names for {self.num_classes - 1} classes "
                "(num_classes counts the background)"
            )

    @classmethod
    def from_json(cls, text: str) -> FasterRCNNConfig:
        return cls.from_dict(json.loads(text))


def _as_tuple(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_as_tuple(v) for v in value)
    return value


def _build_section(section: type, values: dict[str, Any]) -> Any:
    known = {f.name for f in dataclasses.fields(section)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown {section.__name__} field(s): {sorted(unknown)}")
    return section(**{k: _as_tuple(v) for k, v in values.items()})
