"""torchvision's keyword arguments for its detectors, as this package's config fields.

torchvision's builders take a detector's settings as keyword arguments
(``fasterrcnn_resnet50_fpn(weights=None, num_classes=3, box_score_thresh=0.7,
min_size=600)``); here they are fields of its :class:`~faster_rcnn.FasterRCNNConfig`. The
presets of :mod:`faster_rcnn.models` take the same keywords and set those fields
(:func:`with_torchvision_options`), so code written for torchvision's builders keeps its
arguments. What torchvision passes as a module (``rpn_head``, ``box_predictor``, ...) is a
config field or a module replaced on the built model here, and ``weights`` would download:
both are refused in one line saying what to do instead, but for head modules of this
package's classes, which the presets and torchvision's constructor
(``FasterRCNN(backbone, ...)``: :func:`constructor_form`) take first
(:mod:`faster_rcnn.torchvision_heads`). ``weights_backbone=None`` builds the backbone torchvision
builds without ImageNet weights (:func:`untrained_backbone`). What its ``FasterRCNN``
passes on to its transform is taken where it asks for what is done here
(``fixed_size=None``, ``_skip_resize=False``), refused otherwise.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, NamedTuple

from torch import nn

from .anchors import AnchorGenerator
from .backbones.build import custom_feature_maps
from .config import BACKBONES, CUSTOM_BACKBONE, BackboneConfig, FasterRCNNConfig
from .roi_heads.pooling import MultiScaleRoIAlign, SingleScaleRoIPool
from .torchvision_heads import (
    HEAD_TYPES,
    GivenHeads,
    class_count,
    take_given_heads,
    with_given_heads,
)

# torchvision's keyword: (config section, field).
_FIELDS = {
    "min_size": ("transform", "min_size"),
    "max_size": ("transform", "max_size"),
    "image_mean": ("transform", "image_mean"),
    "image_std": ("transform", "image_std"),
    "rpn_pre_nms_top_n_train": ("rpn", "pre_nms_top_n_train"),
    "rpn_pre_nms_top_n_test": ("rpn", "pre_nms_top_n_test"),
    "rpn_post_nms_top_n_train": ("rpn", "post_nms_top_n_train"),
    "rpn_post_nms_top_n_test": ("rpn", "post_nms_top_n_test"),
    "rpn_nms_thresh": ("rpn", "nms_thresh"),
    "rpn_fg_iou_thresh": ("rpn", "fg_iou_thresh"),
    "rpn_bg_iou_thresh": ("rpn", "bg_iou_thresh"),
    "rpn_batch_size_per_image": ("rpn", "batch_size_per_image"),
    "rpn_positive_fraction": ("rpn", "positive_fraction"),
    "rpn_score_thresh": ("rpn", "score_thresh"),
    "box_score_thresh": ("roi_heads", "score_thresh"),
    "box_nms_thresh": ("roi_heads", "nms_thresh"),
    "box_detections_per_img": ("roi_heads", "detections_per_img"),
    "box_fg_iou_thresh": ("roi_heads", "fg_iou_thresh"),
    # torchvision's background RoIs overlap a box by [0, box_bg_iou_thresh).
    "box_bg_iou_thresh": ("roi_heads", "bg_iou_thresh_hi"),
    "box_batch_size_per_image": ("roi_heads", "batch_size_per_image"),
    "box_positive_fraction": ("roi_heads", "positive_fraction"),
    "bbox_reg_weights": ("roi_heads", "box_coder_weights"),
    "trainable_backbone_layers": ("backbone", "trainable_layers"),
    # What torchvision's FasterRCNN passes on to its GeneralizedRCNNTransform.
    "size_divisible": ("transform", "size_divisible"),
}
# torchvision's keywords that take a module, and where that part is set here.
_MODULES = {
    "rpn_anchor_generator": "config.anchors (sizes and aspect_ratios of each level)",
    "rpn_head": "config.rpn.head_conv_depth, or model.rpn.head replaced on the built model",
    "box_roi_pool": "config.roi_heads (pooler, output_size, sampling_ratio, featmap_names)",
    "box_head": "config.roi_heads (box_head, representation_size)",
    "box_predictor": "model.roi_heads.box_predictor replaced on the built model "
    "(torchvision's fine-tuning idiom; num_classes follows it)",
}
# What torchvision's FasterRCNN passes on to its GeneralizedRCNNTransform that is never
# done here: the one value taken (torchvision's default), and why another is refused.
_NEVER_DONE = {
    "fixed_size": (
        None,
        "torchvision resizes every image to that (width, height); images are resized "
        "keeping their aspect ratio here: set min_size and max_size",
    ),
    "_skip_resize": (
        False,
        "torchvision's references pass it with their multiscale and lsj augmentations, "
        "which resize images in the data pipeline; the model resizes every image here, in "
        "training too: give min_size several sizes for multi-scale training",
    ),
}
# The keywords of torchvision's FasterRCNN(backbone, ...) that set config fields or
# modules, or take what is done here (its builders' trainable_backbone_layers is not
# among them).
_CONSTRUCTOR_KEYWORDS = {*_FIELDS, *_MODULES, *_NEVER_DONE} - {"trainable_backbone_layers"}
# Keywords that would download weights: only None (nothing downloaded) is taken.
_DOWNLOADS = {
    "weights": "faster_rcnn.load_torchvision_checkpoint(FILE) reads a detector's file",
    "weights_backbone": "faster_rcnn.load_backbone_weights(model, FILE) reads an ImageNet "
    "backbone's file",
}
# Every keyword of torchvision's builders.
_KEYWORDS = {*_FIELDS, *_MODULES, *_DOWNLOADS, *_NEVER_DONE, "progress"}


def with_torchvision_options(
    config: FasterRCNNConfig, options: Mapping[str, Any], builder: str
) -> FasterRCNNConfig:
    """``config`` with torchvision's keyword ``options`` for ``builder`` (the name of the
    function they were given to) set as its fields; ``progress`` is taken and has no
    effect (nothing is downloaded), and so are ``fixed_size=None`` and
    ``_skip_resize=False``, which ask for what is done here. A ``None`` leaves a field as
    the preset has it, as ``bbox_reg_weights=None`` and ``trainable_backbone_layers=None``
    do in torchvision; ``weights_backbone=None`` asks for an untrained backbone
    (:func:`untrained_backbone`).

    Raises:
        TypeError: a keyword torchvision's builders do not take.
        ValueError: a module (not ``None``) where this package takes config fields,
            weights to download, a ``fixed_size`` or a true ``_skip_resize`` (never done
            here), or a value out of its field's range (naming the field).
    """
    sections: dict[str, dict[str, Any]] = {}
    for key, value in options.items():
        if key not in _KEYWORDS:
            raise TypeError(f"{builder}() got an unexpected keyword argument {key!r}")
        if key in _NEVER_DONE:
            _refuse_what_is_never_done(key, value, builder)
            continue
        if value is None or key == "progress":
            continue
        section, name = _field(key, builder)
        sections.setdefault(section, {})[name] = value
    if "weights_backbone" in options and options["weights_backbone"] is None:
        asked = options.get("trainable_backbone_layers")
        sections["backbone"] = untrained_backbone(config, asked, builder)
    return config.replace(**sections) if sections else config


def untrained_backbone(
    config: FasterRCNNConfig, trainable_layers: int | None, builder: str
) -> dict[str, Any]:
    """The backbone fields of torchvision's builders given ``weights_backbone=None``: a
    backbone trained from scratch has batch norms that learn (``nn.BatchNorm2d``, not
    frozen) and every stage trained; a ``trainable_layers`` other than all of them is
    warned of and overridden, as torchvision does. Without ImageNet weights, frozen
    stages and frozen batch norms would keep their random initialisation.
    """
    stages = BACKBONES[config.backbone.name].stages
    if trainable_layers is not None and trainable_layers != stages:
        warnings.warn(
            f"{builder}(weights_backbone=None, trainable_backbone_layers={trainable_layers}):"
            f" an untrained backbone trains all {stages} stages, as torchvision's builders "
            "do (leave weights_backbone out to freeze stages)",
            stacklevel=5,
        )
    return {"frozen_batch_norm": False, "trainable_layers": stages}


def _refuse_what_is_never_done(key: str, value: Any, builder: str) -> None:
    """Refuse in one line a value of ``key`` (``fixed_size``, ``_skip_resize``) that asks
    torchvision's transform for what is never done here; its default is taken."""
    taken, why = _NEVER_DONE[key]
    if value is not taken:
        raise ValueError(f"{builder}({key}={value!r}): only {taken} is taken here; {why}")


def _field(key: str, builder: str) -> tuple[str, str]:
    """The ``(section, field)`` torchvision's keyword ``key`` sets; a one-line error for
    a module or weights to download."""
    if key in _MODULES:
        raise ValueError(
            f"{builder}({key}=...): torchvision takes a module there; here that part is "
            f"{_MODULES[key]}"
        )
    if key in _DOWNLOADS:
        raise ValueError(
            f"{builder}({key}=...): nothing is downloaded here (only None is taken); "
            f"{_DOWNLOADS[key]}"
        )
    return _FIELDS[key]


class ConstructorForm(NamedTuple):
    """What torchvision's ``FasterRCNN(backbone, ...)`` keywords make: the config, and
    the head modules given, which the model uses in place of fresh ones."""

    config: FasterRCNNConfig
    heads: GivenHeads


def constructor_form(backbone: nn.Module, keywords: Mapping[str, Any]) -> ConstructorForm:
    """The config and head modules of torchvision's ``FasterRCNN(backbone, num_classes=2,
    rpn_anchor_generator=AnchorGenerator(...), box_roi_pool=MultiScaleRoIAlign(...),
    min_size=..., ...)`` (its fine-tuning tutorial's form): torchvision's defaults (those
    of :class:`FasterRCNNConfig`), a backbone of its own (``"custom"``) with the
    ``out_channels`` it has, the anchor generator's sizes and aspect ratios, the pooler's
    feature maps and grid (without one, the maps torchvision's default pooler takes from
    the backbone: :func:`_default_pooler_maps`), the fields that ``rpn_head``, ``box_head`` and
    ``box_predictor`` of this package's classes set
    (:func:`~faster_rcnn.torchvision_heads.with_given_heads`), and the other keywords as
    :func:`with_torchvision_options` sets them.

    Raises:
        TypeError: a keyword torchvision's ``FasterRCNN`` does not take; a generator or
            pooler that is not this package's :class:`~faster_rcnn.anchors.AnchorGenerator`
            or :class:`~faster_rcnn.roi_heads.pooling.MultiScaleRoIAlign`.
        ValueError: ``num_classes`` with a ``box_predictor``, or neither; a backbone
            without an integer ``out_channels``; a head module of another class than this
            package's (set here by config fields or replaced on the built model), or one
            that contradicts the rest; a value out of its field's range.
    """
    options = dict(keywords)
    num_classes = options.pop("num_classes", None)
    generator = options.pop("rpn_anchor_generator", None)
    pool = options.pop("box_roi_pool", None)
    unknown = [key for key in options if key not in _CONSTRUCTOR_KEYWORDS]
    if unknown:
        raise TypeError(f"FasterRCNN() got an unexpected keyword argument {unknown[0]!r}")
    heads = take_given_heads(options, "FasterRCNN")
    for key in [key for key in HEAD_TYPES if key in options]:
        _field(key, "FasterRCNN")
    num_classes = class_count(num_classes, heads.box_predictor, "FasterRCNN")
    channels = getattr(backbone, "out_channels", None)
    if not isinstance(channels, int) or isinstance(channels, bool):
        raise ValueError(
            "FasterRCNN(backbone, num_classes=...): the backbone needs an integer "
            f"out_channels, the channels of its feature maps (got {channels!r})"
        )
    config = FasterRCNNConfig(
        num_classes=num_classes,
        backbone=BackboneConfig(name=CUSTOM_BACKBONE, out_channels=channels),
    )
    sections: dict[str, dict[str, Any]] = {}
    if generator is not None:
        sections["anchors"] = _anchor_fields(generator)
    if pool is not None:
        sections["roi_heads"] = _pooler_fields(pool)
    config = with_torchvision_options(config.replace(**sections), options, "FasterRCNN")
    if pool is None:
        config = _default_pooler_maps(config, backbone)
    return ConstructorForm(with_given_heads(config, heads, "FasterRCNN"), heads)


def _default_pooler_maps(config: FasterRCNNConfig, backbone: nn.Module) -> FasterRCNNConfig:
    """``config`` pooling the maps torchvision's default pooler,
    ``MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)``, pools from ``backbone``: those of
    its names that the backbone returns (``"0"`` alone from a backbone of one map, as the
    tutorial's MobileNetV2 features are). Unchanged where the backbone cannot be probed or
    returns none of them: building the model then names its maps."""
    maps = custom_feature_maps(backbone, config) or {}
    pooled = tuple(name for name in maps if name in config.roi_heads.featmap_names)
    return config.replace(roi_heads={"featmap_names": pooled}) if pooled else config


def keywords_with_class_count(num_classes: int, keywords: Mapping[str, Any]) -> dict[str, Any]:
    """torchvision's ``FasterRCNN(backbone, num_classes, ...)``, the class count given in
    the config's place: the ``keywords`` of its constructor form with ``num_classes``.

    Raises:
        TypeError: ``num_classes`` given as a keyword too, as Python refuses it there.
    """
    if "num_classes" in keywords:
        raise TypeError("FasterRCNN() got multiple values for argument 'num_classes'")
    return {"num_classes": num_classes, **keywords}


def _anchor_fields(generator: object) -> dict[str, Any]:
    """The :class:`AnchorConfig` fields of ``rpn_anchor_generator``."""
    if not isinstance(generator, AnchorGenerator):
        raise TypeError(
            "FasterRCNN(rpn_anchor_generator=...) takes faster_rcnn.AnchorGenerator, got "
            f"{_class_path(generator)}"
        )
    return {
        "sizes": generator.sizes,
        "aspect_ratios": generator.aspect_ratios,
        "offset": generator.offset,
    }


def _pooler_fields(pool: object) -> dict[str, Any]:
    """The :class:`RoIHeadsConfig` fields of ``box_roi_pool``."""
    if not isinstance(pool, MultiScaleRoIAlign):
        raise TypeError(
            "FasterRCNN(box_roi_pool=...) takes faster_rcnn.roi_heads.MultiScaleRoIAlign, got "
            f"{_class_path(pool)}"
        )
    height, width = pool.output_size
    if height != width:
        raise ValueError(
            f"FasterRCNN(box_roi_pool=...): a pooled grid of {height}x{width}; the box "
            "head here pools square grids (output_size one side)"
        )
    return _align_fields(pool)


def pooler_fields(pool: nn.Module) -> dict[str, Any] | None:
    """The :class:`RoIHeadsConfig` fields of a RoI pooler of exactly this package's
    classes (:class:`MultiScaleRoIAlign`, :class:`SingleScaleRoIPool`) pooling a square
    grid, as ``model.roi_heads.box_roi_pool`` is set on a built model; ``None`` for
    another, which no config rebuilds."""
    if type(pool) not in (MultiScaleRoIAlign, SingleScaleRoIPool):
        return None
    height, width = pool.output_size
    if height != width:
        return None
    if isinstance(pool, SingleScaleRoIPool):
        return {"pooler": "pool", "featmap_names": (pool.featmap_name,), "output_size": height}
    return _align_fields(pool)


def _align_fields(pool: MultiScaleRoIAlign) -> dict[str, Any]:
    """The :class:`RoIHeadsConfig` fields of ``pool`` (of a square grid)."""
    return {
        "pooler": "align",
        "featmap_names": pool.featmap_names,
        "output_size": pool.output_size[0],
        "sampling_ratio": pool.sampling_ratio,
        "aligned": pool.aligned,
        "canonical_scale": pool.canonical_scale,
        "canonical_level": pool.canonical_level,
    }


def _class_path(value: object) -> str:
    """``module.Class`` of ``value``: torchvision's ``AnchorGenerator`` is not this
    package's, though they share a name."""
    return f"{type(value).__module__}.{type(value).__qualname__}"
