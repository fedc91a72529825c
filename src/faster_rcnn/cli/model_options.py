"""``train``'s options that set one field of the model config each: the backbone's trained
stages, the paper's choices (hard negatives, the border policy, the RPN loss
normalisation), the RoI sampling, the detections an image and their NMS, and how
multi-scale training draws its sizes.

Each option's help shows the field's value in every preset, so ``train --help`` says what
a run without the option does.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config import FasterRCNNConfig
from ..models import PRESETS
from .arguments import (
    non_negative_float,
    non_negative_int,
    number,
    positive_float,
    positive_int,
    probability,
)


@dataclass(frozen=True)
class ConfigOption:
    """An option that sets the config field ``setting`` (``"section.field"``)."""

    flag: str
    setting: str
    help: str
    type: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    # What the field means in a config, where it may leave that to a default (None).
    resolved: Callable[[FasterRCNNConfig], Any] | None = None

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    def preset_values(self) -> str:
        """``"paper_vgg16: 0, resnet50_fpn: -1, ..."``: the field in every preset."""
        values = {name: self.value_in(make()) for name, make in PRESETS.items()}
        return ", ".join(
            f"{name}: {value:g}" if isinstance(value, float) else f"{name}: {value}"
            for name, value in values.items()
        )

    def value_in(self, config: FasterRCNNConfig) -> Any:
        """The field's value in ``config``, a default resolved."""
        if self.resolved is not None:
            return self.resolved(config)
        section, field = self.setting.split(".")
        return getattr(getattr(config, section), field)


def border(text: str) -> float:
    """Pixels an anchor may cross the border by, or -1 (keep every anchor)."""
    value = number(text)
    if not (0 <= value < math.inf or value == -1):
        raise argparse.ArgumentTypeError(f"must be >= 0, or -1 to keep every anchor, got {text}")
    return value


CONFIG_OPTIONS = (
    ConfigOption(
        "--trainable-layers",
        "backbone.trainable_layers",
        "the backbone's last stages that train (torchvision's trainable_backbone_layers); "
        "the earlier ones keep their pretrained weights. mobilenet_v2_fpn's 3 was ahead of "
        "2, 4 and 5, each at the steps it fits in 20 CPU minutes "
        "(benchmarks/recipe_ab.md, round 27)",
        type=non_negative_int,
        metavar="N",
        resolved=lambda config: config.backbone.resolved_trainable_layers(),
    ),
    ConfigOption(
        "--rpn-sampler",
        "rpn.sampler",
        "the RPN's negative anchors: drawn at random, or the hardest (highest objectness)",
        choices=("random", "hard_negative"),
    ),
    ConfigOption(
        "--allowed-border",
        "rpn.allowed_border",
        "anchors crossing the image border by more than this many pixels are left out of "
        "the RPN's training (the paper: 0); -1 keeps every anchor",
        type=border,
        metavar="PX",
    ),
    ConfigOption(
        "--rpn-loss",
        "rpn.loss_normalization",
        "the RPN box loss divided by the sampled anchors (per_sample, torchvision's) or by "
        "the anchor locations, N_reg (paper, with lambda = --rpn-box-weight)",
        choices=("per_sample", "paper"),
    ),
    ConfigOption(
        "--rpn-box-weight",
        "rpn.box_loss_weight",
        "the weight of the RPN's box loss, the paper's lambda",
        type=positive_float,
        metavar="LAMBDA",
    ),
    ConfigOption(
        "--roi-batch-size",
        "roi_heads.batch_size_per_image",
        "RoIs sampled per image for the detection head's loss (the paper: 128)",
        type=positive_int,
        metavar="N",
    ),
    ConfigOption(
        "--roi-sampler",
        "roi_heads.sampler",
        "the head's foreground RoIs drawn at random (the paper's), spread evenly over "
        "the objects so that small ones in crowded images get theirs, or over the "
        "classes first so that a rare class gets as many as a common one (or a share that "
        "grows with the square root of its objects)",
        choices=("random", "object_balanced", "class_balanced", "class_sqrt_balanced"),
    ),
    ConfigOption(
        "--gt-jitter",
        "roi_heads.gt_jitter",
        "randomly moved copies of each ground-truth box added to the head's candidate "
        "RoIs in training, so that small objects have foreground RoIs from the first step",
        type=non_negative_int,
        metavar="N",
    ),
    ConfigOption(
        "--detections-per-image",
        "roi_heads.detections_per_img",
        "most detections the trained model returns an image (by default raised to twice "
        "the most objects of a training image, in hundreds, where that is more)",
        type=positive_int,
        metavar="N",
    ),
    ConfigOption(
        "--box-nms-thresh",
        "roi_heads.nms_thresh",
        "the trained model selects each class's detections by greedy NMS at this IoU: of "
        "two detections of a class overlapping more, the lower-scoring one is removed "
        "(without it, the recipe chooses Soft-NMS: see --soft-nms)",
        type=probability,
        metavar="IOU",
    ),
    ConfigOption(
        "--soft-nms",
        "roi_heads.soft_nms_sigma",
        "the trained model selects each class's detections by Gaussian Soft-NMS with this "
        "sigma: a detection overlapping a better one of its class is lowered in score, by "
        "exp(-IoU^2 / sigma), not removed (without it the recipe chooses 0.3, ahead of "
        "greedy NMS in COCO AP on all 18 models measured: benchmarks/recipe_ab.md, "
        "rounds 23-24). 0 keeps the preset's greedy NMS, at 0.6 for a class of which 2 %% "
        "of the training objects overlap another of it beyond the preset's IoU",
        type=non_negative_float,
        metavar="SIGMA",
    ),
    ConfigOption(
        "--multi-scale-per",
        "transform.multi_scale_per",
        "with several --min-size values, training draws one for each image (torchvision's "
        "way) or one for each batch, so that no image is padded up to a larger one's size "
        "(the recipe's choice wherever it trains at several sizes: shorter steps)",
        choices=("image", "batch"),
    ),
)


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """Add every :data:`CONFIG_OPTIONS` option, its help ending with the presets' values."""
    for option in CONFIG_OPTIONS:
        parser.add_argument(
            option.flag,
            type=option.type,
            choices=option.choices,
            metavar=option.metavar,
            help=f"{option.help} (presets: {option.preset_values()})",
        )


def check_nms_options(args: argparse.Namespace) -> None:
    """Refuse ``--box-nms-thresh`` beside a Soft-NMS ``--soft-nms``, which replaces the
    greedy NMS it sets (``--soft-nms 0`` keeps greedy NMS, at that IoU)."""
    if args.box_nms_thresh is not None and args.soft_nms:
        raise ValueError(
            f"--box-nms-thresh {args.box_nms_thresh:g} sets greedy NMS, which --soft-nms "
            f"{args.soft_nms:g} replaces: give one of them (or --soft-nms 0)"
        )


def given_settings(args: argparse.Namespace) -> set[str]:
    """The config fields the command line set."""
    return {o.setting for o in CONFIG_OPTIONS if getattr(args, o.dest) is not None}


def with_config_options(config: FasterRCNNConfig, args: argparse.Namespace) -> FasterRCNNConfig:
    """``config`` with the fields the command line set."""
    for option in CONFIG_OPTIONS:
        value = getattr(args, option.dest)
        if value is not None:
            section, field = option.setting.split(".")
            config = config.replace(**{section: {field: value}})
    return config
