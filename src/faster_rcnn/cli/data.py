"""``faster-rcnn data``: what a dataset path holds, as the other commands will read it."""

from __future__ import annotations

import argparse

from ..data.describe import summarize_split
from ..data.open import find_layout
from .splits import default_training_splits


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "data",
        help="what a dataset holds: format, splits, classes, boxes, image sizes",
        description="Detect the dataset's layout and summarise each split: images, boxes, "
        "images and box sides per class, image sizes, the boxes the reader clipped or "
        "dropped and those annotated twice. Run it first on your own data.",
    )
    parser.add_argument("--data", required=True, help="a dataset folder or file")
    return parser


def run(args: argparse.Namespace) -> int:
    layout = find_layout(args.data)
    splits = list(layout.splits) or ["all"]
    described = "splits " + ", ".join(layout.splits) if layout.splits else "no splits"
    print(f"{args.data}: {layout.format}, {described}")
    unopened = 0
    for split in splits:
        try:
            print("\n".join(summarize_split(layout, split).lines()))
        except (ValueError, FileNotFoundError) as error:  # one bad split hides no other
            print(f"  {split}: cannot be opened: {error}")
            unopened += 1
    if not layout.splits:
        print(
            "no splits: `train --val-fraction 0.2` holds out a reproducible fifth of the "
            "images, which `evaluate` then scores"
        )
    elif default_training_splits(layout) == ("train", "val"):
        print("train trains on train and val together (--split train: on train alone)")
    return 1 if unopened else 0
