"""``faster-rcnn anchors``: how well a preset's or a model's anchors cover a dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..data.open import open_dataset
from ..insight.anchor_coverage import dataset_targets, measure_anchor_coverage
from ..model import FasterRCNN
from ..models import PRESETS, preset_config
from ..train.checkpoint import load_model
from .arguments import add_data_arguments, positive_int


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "anchors",
        help="how well a preset's anchors cover a dataset's boxes (no training)",
        description="For every ground-truth box, the best IoU of any anchor the RPN trains "
        "on and the number of anchors at or above the positive threshold, by box size and "
        "aspect ratio.",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--preset", choices=list(PRESETS), default="small")
    source.add_argument("--model", type=Path, help="a model.safetensors (its anchors)")
    add_data_arguments(parser, default_split="train")
    parser.add_argument("--max-images", type=positive_int, help="measure the first N images")
    return parser


def run(args: argparse.Namespace) -> int:
    dataset = open_dataset(args.data, args.split)
    if args.model:
        model = load_model(args.model)
    else:
        model = FasterRCNN.from_config(preset_config(args.preset, dataset.num_classes))
    count = min(len(dataset), args.max_images or len(dataset))
    coverage = measure_anchor_coverage(model, dataset_targets(dataset, count))
    print(f"{len(coverage)} boxes in {count} images")
    print(coverage.table())
    return 0
