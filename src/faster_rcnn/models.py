"""Named presets: each builds a :class:`~faster_rcnn.FasterRCNN` from a complete config.

==============================  ==================================================
``paper_vgg16``                 Ren et al. 2015: VGG-16 conv5_3 (stride 16), 9 anchors,
                                600/1000 resize, RoIPool, border anchors ignored,
                                lambda = 10
``resnet50_fpn``                torchvision's ``fasterrcnn_resnet50_fpn``, number for
                                number
``resnet50_fpn_v2``             torchvision's ``fasterrcnn_resnet50_fpn_v2`` (Li et al.
                                2021: batch norm everywhere, two RPN convs, a conv head)
``mobilenet_v2_fpn``            MobileNetV2 + FPN as torchvision builds it
                                (``mobilenet_backbone``)
``mobilenet_v3_large_fpn``      torchvision's ``fasterrcnn_mobilenet_v3_large_fpn``
``mobilenet_v3_large_320_fpn``  torchvision's ``fasterrcnn_mobilenet_v3_large_320_fpn``
``small``                       a small model trained from scratch on CPU (the demo's)
==============================  ==================================================

Every preset takes ``num_classes`` (background included; ``None``, the default, is the
preset's own count) and returns the model; the config is ``model.config``. They take
torchvision's keyword arguments for its builders too (``resnet50_fpn(3,
box_score_thresh=0.7, min_size=600)``), as config fields
(:mod:`faster_rcnn.torchvision_options`), and its head modules of this package's classes
(``rpn_head=RPNHead(256, 3, conv_depth=2)``, ``box_head=ConvFCHead(256, 7, 1024)``,
``box_predictor=FastRCNNPredictor(1024, 3)``), used with their weights, the config taking
the fields their shapes give (:mod:`faster_rcnn.torchvision_heads`). A module torchvision's
builder passes itself is refused with its TypeError: ``rpn_head`` and ``box_head`` (and
``rpn_anchor_generator``) for ``resnet50_fpn_v2``, ``rpn_anchor_generator`` for the
MobileNetV3 presets.
:func:`preset_config` gives the config alone, to edit before building with
``FasterRCNN.from_config``. torchvision's builder names build the presets that mirror
them, keyword-only as there (``fasterrcnn_resnet50_fpn(num_classes=3, weights=None)``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .config import (
    AnchorConfig,
    BackboneConfig,
    FasterRCNNConfig,
    RoIHeadsConfig,
    RPNConfig,
    TransformConfig,
)
from .model import FasterRCNN
from .torchvision_heads import class_count, take_given_heads, with_given_heads
from .torchvision_options import with_torchvision_options


def paper_vgg16_config(num_classes: int = 21) -> FasterRCNNConfig:
    """The paper's VGG-16 detector with py-faster-rcnn's numbers (PASCAL VOC: 21)."""
    return FasterRCNNConfig(
        num_classes=num_classes,
        backbone=BackboneConfig(name="vgg16", trainable_layers=3, out_channels=512),
        transform=TransformConfig(min_size=(600,), max_size=1000, size_divisible=16),
        anchors=AnchorConfig(
            sizes=((128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),), offset=0.5
        ),
        rpn=RPNConfig(
            allowed_border=0,
            loss_normalization="paper",
            box_loss_weight=10.0,
            pre_nms_top_n_train=12000,
            pre_nms_top_n_test=6000,
            post_nms_top_n_train=2000,
            post_nms_top_n_test=300,
            min_size=16.0,
        ),
        roi_heads=RoIHeadsConfig(
            bg_iou_thresh_lo=0.1,
            batch_size_per_image=128,
            pooler="pool",
            featmap_names=("0",),
            box_head="vgg16",
            representation_size=4096,
            predictor_init_std=0.01,
            smooth_l1_beta=1.0,
            nms_thresh=0.3,
        ),
    )


def resnet50_fpn_config(num_classes: int = 91) -> FasterRCNNConfig:
    """torchvision's ``fasterrcnn_resnet50_fpn`` (COCO: 91 classes)."""
    return FasterRCNNConfig(
        num_classes=num_classes, backbone=BackboneConfig(name="resnet50_fpn", trainable_layers=3)
    )


def resnet50_fpn_v2_config(num_classes: int = 91) -> FasterRCNNConfig:
    """torchvision's ``fasterrcnn_resnet50_fpn_v2`` (COCO: 91 classes): ResNet-50 with
    trainable batch norm, an FPN with batch norm, two 3x3 convs in the RPN head and a box
    head of four 3x3 convs with batch norm and one fully connected layer."""
    return FasterRCNNConfig(
        num_classes=num_classes,
        backbone=BackboneConfig(
            name="resnet50_fpn_v2", trainable_layers=3, frozen_batch_norm=False
        ),
        rpn=RPNConfig(head_conv_depth=2),
        roi_heads=RoIHeadsConfig(box_head="conv_fc"),
    )


def mobilenet_v2_fpn_config(num_classes: int = 91) -> FasterRCNNConfig:
    """MobileNetV2 + FPN with the anchors and RPN settings of torchvision's MobileNet
    detectors: two feature levels (stride 32) plus the pooled one, five sizes per level."""
    return FasterRCNNConfig(
        num_classes=num_classes,
        backbone=BackboneConfig(name="mobilenet_v2_fpn", trainable_layers=3),
        anchors=AnchorConfig(
            sizes=((32, 64, 128, 256, 512),) * 3, aspect_ratios=((0.5, 1.0, 2.0),) * 3
        ),
        rpn=RPNConfig(score_thresh=0.05),
        roi_heads=RoIHeadsConfig(featmap_names=("0", "1")),
    )


def mobilenet_v3_large_fpn_config(num_classes: int = 91) -> FasterRCNNConfig:
    """torchvision's ``fasterrcnn_mobilenet_v3_large_fpn`` (COCO: 91 classes): the
    MobileNet detectors' anchors and RPN score threshold on MobileNetV3-Large + FPN."""
    return mobilenet_v2_fpn_config(num_classes).replace(backbone={"name": "mobilenet_v3_large_fpn"})


def mobilenet_v3_large_320_fpn_config(num_classes: int = 91) -> FasterRCNNConfig:
    """torchvision's ``fasterrcnn_mobilenet_v3_large_320_fpn``: the same network on
    320/640 images, keeping 150 proposals before and after NMS at test time."""
    return mobilenet_v3_large_fpn_config(num_classes).replace(
        transform={"min_size": (320,), "max_size": 640},
        rpn={"pre_nms_top_n_test": 150, "post_nms_top_n_test": 150},
    )


def small_config(num_classes: int = 4) -> FasterRCNNConfig:
    """A small detector for CPU training from scratch on images of about 320 px."""
    return FasterRCNNConfig(
        num_classes=num_classes,
        backbone=BackboneConfig(name="small", frozen_batch_norm=False, out_channels=64),
        transform=TransformConfig(min_size=(320,), max_size=512),
        anchors=AnchorConfig(
            # Four sizes an octave: at strides 8 to 64 two sizes an octave left 73% of the
            # synthetic boxes without an anchor at IoU 0.7 (see `faster-rcnn anchors`),
            # four leave 60%, and recall@300 at IoU 0.7 rose from 0.75 to 0.81 at 800 steps.
            sizes=((12, 16, 20, 24), (32, 40, 48, 56), (64, 80, 96, 112), (128, 160, 192, 256)),
            aspect_ratios=((0.5, 1.0, 2.0),) * 4,
        ),
        rpn=RPNConfig(
            # Positives at IoU 0.5, not the paper's 0.7. Even with four sizes, 60% of the
            # synthetic boxes (82% of those under 16 px) have no anchor at 0.7 on strides
            # of 8 and more, so the RPN learned to regress from a single low-quality match
            # per box, and the anchors it scored highest were ignored ones (0.3 - 0.7) it
            # never learned to regress. At 800 steps recall@300 at IoU 0.7 went 0.79 -> 0.84.
            fg_iou_thresh=0.5,
            # Weighting the RPN's box loss like the paper's lambda = 10 tightens the
            # proposals: on the synthetic data (600 steps) recall@300 at IoU 0.7 went
            # 0.38 -> 0.73 and VOC mAP 0.84 -> 0.87 against weight 1.
            box_loss_weight=10.0,
            # Only 64 RoIs an image are sampled from the proposals: 500 are plenty, and NMS
            # over fewer boxes makes a training step a third faster.
            pre_nms_top_n_train=500,
            pre_nms_top_n_test=500,
            post_nms_top_n_train=500,
            post_nms_top_n_test=300,
        ),
        roi_heads=RoIHeadsConfig(
            featmap_names=("0", "1", "2"),
            batch_size_per_image=64,
            representation_size=256,
        ),
    )


PRESETS: dict[str, Callable[[int], FasterRCNNConfig]] = {
    "paper_vgg16": paper_vgg16_config,
    "resnet50_fpn": resnet50_fpn_config,
    "resnet50_fpn_v2": resnet50_fpn_v2_config,
    "mobilenet_v2_fpn": mobilenet_v2_fpn_config,
    "mobilenet_v3_large_fpn": mobilenet_v3_large_fpn_config,
    "mobilenet_v3_large_320_fpn": mobilenet_v3_large_320_fpn_config,
    "small": small_config,
}


def preset_config(name: str, num_classes: int | None = None) -> FasterRCNNConfig:
    """The config of a named preset, with the preset's class count unless one is given."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    make = PRESETS[name]
    return make() if num_classes is None else make(num_classes)


def presets_of_backbone(backbone: str) -> list[str]:
    """The presets whose backbone is ``backbone`` (a config's ``backbone.name``), in
    :data:`PRESETS`' order; none for a backbone no preset builds."""
    return [name for name, make in PRESETS.items() if make().backbone.name == backbone]


# torchvision's builder of a preset: the keywords it passes to FasterRCNN itself, which
# a caller's repeat (a TypeError there), and the config fields that part is here.
_BUILDERS_OWN = {
    "resnet50_fpn_v2": ("rpn_anchor_generator", "rpn_head", "box_head"),
    "mobilenet_v3_large_fpn": ("rpn_anchor_generator",),
    "mobilenet_v3_large_320_fpn": ("rpn_anchor_generator",),
}
_OWN_FIELDS = {
    "rpn_anchor_generator": "anchors",
    "rpn_head": "rpn.head_conv_depth",
    "box_head": "roi_heads.box_head and representation_size",
}


def _refuse_builders_own(name: str, options: dict[str, Any]) -> None:
    """Refuse a keyword torchvision's builder of preset ``name`` passes itself (any
    value, ``None`` too), as its ``FasterRCNN(...)`` call does: ``rpn_head`` or
    ``box_head`` to ``fasterrcnn_resnet50_fpn_v2``, whose heads are its own."""
    for key in _BUILDERS_OWN.get(name, ()):
        if key in options:
            raise TypeError(
                f"{name}() got multiple values for keyword argument {key!r}: the preset "
                f"passes its own, as torchvision's fasterrcnn_{name} does (here that part "
                f"is preset_config({name!r}).{_OWN_FIELDS[key]})"
            )


def _built(name: str, num_classes: int | None, options: dict[str, Any]) -> FasterRCNN:
    """The preset ``name`` with ``num_classes`` (``None``: the preset's, or the given
    predictor's) and torchvision's keyword ``options``: head modules of this package's
    classes (:func:`~faster_rcnn.torchvision_heads.take_given_heads`), used in the model
    and described by its config, and config fields
    (:func:`~faster_rcnn.torchvision_options.with_torchvision_options`).

    Raises:
        TypeError: a keyword torchvision's builder of the preset passes itself
            (:func:`_refuse_builders_own`), or one its builders do not take.
        ValueError: ``num_classes`` with a ``box_predictor``, a head that contradicts the
            preset, or an option :func:`with_torchvision_options` refuses (one line each).
    """
    _refuse_builders_own(name, options)
    options = dict(options)
    heads = take_given_heads(options, name)
    if num_classes is not None or heads.box_predictor is not None:
        num_classes = class_count(num_classes, heads.box_predictor, name)
    config = with_torchvision_options(preset_config(name, num_classes), options, name)
    return FasterRCNN.from_config(with_given_heads(config, heads, name), heads)


def paper_vgg16(num_classes: int | None = None, **torchvision_options: Any) -> FasterRCNN:
    return _built("paper_vgg16", num_classes, torchvision_options)


def resnet50_fpn(num_classes: int | None = None, **torchvision_options: Any) -> FasterRCNN:
    return _built("resnet50_fpn", num_classes, torchvision_options)


def resnet50_fpn_v2(num_classes: int | None = None, **torchvision_options: Any) -> FasterRCNN:
    return _built("resnet50_fpn_v2", num_classes, torchvision_options)


def mobilenet_v2_fpn(num_classes: int | None = None, **torchvision_options: Any) -> FasterRCNN:
    return _built("mobilenet_v2_fpn", num_classes, torchvision_options)


def mobilenet_v3_large_fpn(
    num_classes: int | None = None, **torchvision_options: Any
) -> FasterRCNN:
    return _built("mobilenet_v3_large_fpn", num_classes, torchvision_options)


def mobilenet_v3_large_320_fpn(
    num_classes: int | None = None, **torchvision_options: Any
) -> FasterRCNN:
    return _built("mobilenet_v3_large_320_fpn", num_classes, torchvision_options)


def small(num_classes: int | None = None, **torchvision_options: Any) -> FasterRCNN:
    return _built("small", num_classes, torchvision_options)


# torchvision's builders under their own names, keyword-only as there: code written for
# torchvision.models.detection runs with its import changed.
def fasterrcnn_resnet50_fpn(
    *, num_classes: int | None = None, **torchvision_options: Any
) -> FasterRCNN:
    """torchvision's ``fasterrcnn_resnet50_fpn``: :func:`resnet50_fpn`."""
    return resnet50_fpn(num_classes, **torchvision_options)


def fasterrcnn_resnet50_fpn_v2(
    *, num_classes: int | None = None, **torchvision_options: Any
) -> FasterRCNN:
    """torchvision's ``fasterrcnn_resnet50_fpn_v2``: :func:`resnet50_fpn_v2`."""
    return resnet50_fpn_v2(num_classes, **torchvision_options)


def fasterrcnn_mobilenet_v3_large_fpn(
    *, num_classes: int | None = None, **torchvision_options: Any
) -> FasterRCNN:
    """torchvision's ``fasterrcnn_mobilenet_v3_large_fpn``: :func:`mobilenet_v3_large_fpn`."""
    return mobilenet_v3_large_fpn(num_classes, **torchvision_options)


def fasterrcnn_mobilenet_v3_large_320_fpn(
    *, num_classes: int | None = None, **torchvision_options: Any
) -> FasterRCNN:
    """torchvision's ``fasterrcnn_mobilenet_v3_large_320_fpn``:
    :func:`mobilenet_v3_large_320_fpn`."""
    return mobilenet_v3_large_320_fpn(num_classes, **torchvision_options)
