"""Which images a command takes from ``--data``: a split, or the part of a dataset
without splits that ``--val-fraction`` holds out (see :mod:`faster_rcnn.data.holdout`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..data.dataset import DetectionDataset
from ..data.holdout import SPLIT_FILE, Subset, holdout_indices, item_keys, read_split, write_split
from ..data.open import DatasetLayout, find_layout
from .arguments import open_fraction


def add_holdout_arguments(parser: argparse.ArgumentParser) -> None:
    """``--val-fraction`` and ``--split-seed``."""
    parser.add_argument(
        "--val-fraction",
        type=open_fraction,
        metavar="F",
        help="hold out this fraction of the images for evaluation (for data without "
        "splits); the split is written to --out/split.json",
    )
    parser.add_argument(
        "--split-seed", type=int, default=0, help="which images --val-fraction holds out"
    )


def training_images(args: argparse.Namespace) -> DetectionDataset:
    """The ``--split`` of ``--data``, less what ``--val-fraction`` holds out (the split
    written to ``<--out>/split.json``)."""
    layout = find_layout(args.data)
    dataset = layout.open(args.split)
    if args.val_fraction is None:
        if not layout.splits:
            print(
                f"{args.data}: {layout.format} without splits: training on all "
                f"{len(dataset)} images (--val-fraction F holds some out for evaluate)"
            )
        return dataset
    file = args.out / SPLIT_FILE
    parts = write_split(file, str(args.data), dataset, args.val_fraction, args.split_seed)
    print(
        f"{args.data}: {len(parts['val'])} of {len(dataset)} images held out for evaluation "
        f"(--val-fraction {args.val_fraction:g}, --split-seed {args.split_seed}), listed in "
        f"{file}"
    )
    return Subset(dataset, parts["train"])


def test_or_val(layout: DatasetLayout) -> str:
    """``test`` when the layout has such a split (or none at all), else ``val``."""
    try:
        return layout.resolve("test")
    except ValueError:
        print(f"{layout.path} has no test split: using val")
        return "val"


def evaluation_images(
    args: argparse.Namespace, class_names: Sequence[str] | None
) -> DetectionDataset:
    """The ``--split`` of ``--data`` (default: ``test``, else ``val``); for data without
    splits, the images held out by ``--val-fraction``, else by the ``split.json`` beside
    ``--model``, else all of them (with a warning)."""
    layout = find_layout(args.data)
    dataset = layout.open(args.split or test_or_val(layout), class_names)
    if args.val_fraction is not None:
        held = holdout_indices(item_keys(dataset), args.val_fraction, args.split_seed)["val"]
        print(
            f"{args.data}: scoring the {len(held)} of {len(dataset)} images held out by "
            f"--val-fraction {args.val_fraction:g} --split-seed {args.split_seed}"
        )
        return Subset(dataset, held)
    if layout.splits:
        return dataset
    file = args.model.parent / SPLIT_FILE
    if file.is_file():
        subset = read_split(file, dataset, "val")
        print(f"{args.data} has no splits: scoring the {len(subset)} images held out in {file}")
        return subset
    print(
        f"faster-rcnn: warning: {args.data} has no splits and there is no {file}: scoring all "
        f"{len(dataset)} images, which training may have seen",
        file=sys.stderr,
    )
    return dataset
