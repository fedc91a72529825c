"""``faster-rcnn data``: what a dataset path holds, as the other commands will read it."""

from __future__ import annotations

import argparse

from ..counted import counted
from ..data.describe import SplitSummary, summarize_split
from ..data.open import DatasetLayout, find_layout
from ..host_cpus import one_thread
from ..models import PRESETS, preset_config
from .arguments import add_image_size_arguments, non_empty, with_image_sizes
from .splits import default_training_splits


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "data",
        help="what a dataset holds: format, splits, classes, boxes, image sizes",
        description="Detect the dataset's layout and summarise each split: images, boxes, "
        "images and box sides per class (COCO's crowd regions, which train leaves out, "
        "counted apart), image sizes (the smallest and largest, and the widest and tallest "
        "strips, 3:1 or more, where those hide them), the boxes the reader clipped or "
        "dropped and those annotated twice, the boxes too small to find once resized as "
        "--preset resizes them, the splits train takes and evaluate scores, and the classes "
        "other splits have that those lack. Run it first on your own data.",
    )
    parser.add_argument("--data", type=non_empty, required=True, help="a dataset folder or file")
    parser.add_argument(
        "--preset",
        choices=list(PRESETS),
        default="small",
        help="the model whose resize the boxes and images are measured at (default: "
        "train's, small)",
    )
    add_image_size_arguments(parser)
    return parser


# Every tensor here is small (an image's boxes; a generated image's masks, which its
# boxes are read from): a second thread only waits for the first (see host_cpus.one_thread).
@one_thread()
def run(args: argparse.Namespace) -> int:
    transform = with_image_sizes(preset_config(args.preset), args).transform
    layout = find_layout(args.data)
    splits = list(layout.splits) or ["all"]
    described = "splits " + ", ".join(layout.splits) if layout.splits else "no splits"
    print(f"{args.data}: {layout.format}, {described}")
    if layout.note is not None:
        print(f"note: {layout.note}")
    summaries: dict[str, SplitSummary] = {}
    for split in splits:
        try:
            summaries[split] = summarize_split(
                layout, split, transform.min_size, transform.max_size
            )
        except (ValueError, FileNotFoundError) as error:  # one bad split hides no other
            print(f"  {split}: cannot be opened: {error}")
            continue
        print("\n".join(summaries[split].lines()))
    trained = _splits_train_takes(layout, summaries)
    for line in _untrained_class_notes(trained, summaries):
        print(line)
    defaults = default_training_splits(layout)
    if not layout.splits:
        print(
            "no splits: `train --val-fraction 0.2` holds out a reproducible fifth of the "
            "images, which `evaluate` then scores"
        )
    elif len(layout.splits) == 1:
        print(
            f"one split: `train --split {layout.splits[0]} --val-fraction 0.2` holds out a "
            "reproducible fifth of its images, which `evaluate` then scores"
        )
    elif trained is not None:
        named = [layout.resolve(split) for split in defaults]
        print(_what_train_takes(trained, named) + _scored_by_evaluate(layout, trained))
    return 0 if len(summaries) == len(splits) else 1


def _what_train_takes(trained: list[str], defaults: list[str]) -> str:
    """``"train trains on train"``: the ``trained`` splits, and why the validation split
    is left out where it is one of the ``defaults``; each by its name in the data, as
    ``train`` says it (Roboflow's ``valid``, COCO's ``train2017``)."""
    if len(trained) == 2:
        first, second = trained
        return f"train trains on {first} and {second} together (--split {first}: on {first} alone)"
    if len(defaults) == 2:
        return f"train trains on {trained[0]} alone: {defaults[1]} has a class it lacks"
    return f"train trains on {trained[0]}"


def _scored_by_evaluate(layout: DatasetLayout, trained: list[str]) -> str:
    """``"; evaluate scores test"``: the split ``evaluate`` scores by default (its test
    split, else its validation split), where it is not one of ``trained``; ``""`` where
    none."""
    for split in ("test", "val"):
        try:
            scored = layout.resolve(split)
        except ValueError:
            continue
        return f"; evaluate scores {scored}" if scored not in trained else ""
    return ""


def _splits_train_takes(
    layout: DatasetLayout, summaries: dict[str, SplitSummary]
) -> list[str] | None:
    """The splits ``train`` trains on by default, joined as it joins them (a later one
    with a class the first lacks is left out); None where there is no such split or one
    of them could not be opened."""
    try:
        names = [layout.resolve(split) for split in default_training_splits(layout)]
    except ValueError:  # no split that train takes by default
        return None
    if not layout.splits or any(name not in summaries for name in names):
        return None
    first = set(summaries[names[0]].boxes)
    return [names[0], *(name for name in names[1:] if set(summaries[name].boxes) <= first)]


def _untrained_class_notes(
    trained: list[str] | None, summaries: dict[str, SplitSummary]
) -> list[str]:
    """A note for each split not ``trained`` on with boxes of a class the ``trained``
    splits have none of: a model trained on them never learns that class."""
    if trained is None:
        return []
    learned = {name for split in trained for name, n in summaries[split].boxes.items() if n}
    have = "has" if len(trained) == 1 else "have"
    notes = []
    for split, summary in summaries.items():
        unseen = {name: n for name, n in summary.boxes.items() if n and name not in learned}
        if split in trained or not unseen:
            continue
        listed = ", ".join(f"{name!r} ({counted(n, 'box')})" for name, n in unseen.items())
        notes.append(
            f"note: {split} has boxes of classes that {' and '.join(trained)} {have} none "
            f"of, {listed}: train's model never learns them, and evaluate scores them as "
            "never found (AP 0)"
        )
    return notes
