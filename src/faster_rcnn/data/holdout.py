"""A reproducible train / validation split of a dataset that has none.

An image goes to validation by the order of ``sha256("<seed>/<key>")``, its key being
its file's path relative to the dataset's folder (the item index for generated data):
the same on every machine, whatever order the files are listed in. The ``round(F * n)``
images first in that order are held out (at least one, and at least one left to train).

Training writes the split to ``<out>/split.json``; evaluation reads it from beside the
model, so it scores exactly the images training never saw.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..counted import counted
from .dataset import DetectionDataset, Sample, Target, WrappedDataset, image_size_of, target_of

SPLIT_FILE = "split.json"
SPLIT_FORMAT = "faster-rcnn/split/1"
PARTS = ("train", "val")


class Subset(WrappedDataset):
    """Items ``indices`` of ``dataset``, renumbered ``0..len-1``; their targets are the
    wrapped dataset's, ``image_id`` too (a COCO file's id, which evaluation against the file
    pairs each image by).

    Attributes:
        indices: the wrapped items, in order.
        image_files: theirs, when the wrapped dataset has files.
        label_to_category_id: the wrapped dataset's, when it has one (the ids detections
            are scored against its COCO file with).
    """

    def __init__(self, dataset: DetectionDataset, indices: Sequence[int]) -> None:
        super().__init__(dataset)
        self.indices = list(indices)
        files = getattr(dataset, "image_files", None)
        if files is not None:
            self.image_files = [files[i] for i in self.indices]
        category_ids = getattr(dataset, "label_to_category_id", None)
        if category_ids is not None:
            self.label_to_category_id = category_ids

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Sample:
        return self.dataset[self.indices[index]]

    def target(self, index: int) -> Target:
        """The target of item ``index``, without decoding its image where the wrapped
        dataset allows."""
        return target_of(self.dataset, self.indices[index])

    def image_size(self, index: int) -> tuple[int, int]:
        return image_size_of(self.dataset, self.indices[index])


def item_keys(dataset: DetectionDataset) -> list[str]:
    """Per item, what the split hashes: the image file relative to the files' common
    folder (``/``-separated), or the index for data without files."""
    files = getattr(dataset, "image_files", None)
    if not files:
        return [str(i) for i in range(len(dataset))]
    common = Path(os.path.commonpath([str(Path(f).parent) for f in files]))
    return [Path(f).relative_to(common).as_posix() for f in files]


def holdout_indices(keys: Sequence[str], fraction: float, seed: int) -> dict[str, list[int]]:
    """``{"train": [...], "val": [...]}``, the item indices of each part, increasing.

    Raises:
        ValueError: ``fraction`` outside (0, 1), or too few items to leave one per part.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"the validation fraction must be between 0 and 1, got {fraction}")
    if len(keys) < 2:
        raise ValueError(f"cannot hold out part of {len(keys)} image(s): two are needed")
    held = min(max(round(fraction * len(keys)), 1), len(keys) - 1)
    order = sorted(
        range(len(keys)), key=lambda i: hashlib.sha256(f"{seed}/{keys[i]}".encode()).hexdigest()
    )
    return {"train": sorted(order[held:]), "val": sorted(order[:held])}


def split_record(
    data: str, dataset: DetectionDataset, fraction: float, seed: int, split: str | None = None
) -> tuple[dict[str, list[int]], dict[str, Any]]:
    """Split ``dataset`` (see :func:`holdout_indices`), the data's split ``split`` (``None``:
    data without splits): the item indices of each part, and the record of the split that a
    split file holds (:func:`read_split` reads it, :func:`held_out_of` its ``split``)."""
    keys = item_keys(dataset)
    parts = holdout_indices(keys, fraction, seed)
    record: dict[str, Any] = {
        "format": SPLIT_FORMAT,
        "data": data,
        "val_fraction": fraction,
        "seed": seed,
    }
    if split is not None:
        record["split"] = split
    record.update({part: [keys[i] for i in parts[part]] for part in PARTS})
    return parts, record


def read_split(path: Path, dataset: DetectionDataset, part: str) -> Subset:
    """The ``part`` (``train`` or ``val``) of ``dataset`` that the split file lists.

    Raises:
        ValueError: not a split file, or it lists images the dataset does not have.
    """
    record = _read_record(path)
    position = {key: i for i, key in enumerate(item_keys(dataset))}
    missing = [key for key in record[part] if key not in position]
    if missing:
        raise ValueError(
            f"{path}: the dataset lacks {len(missing)} of its "
            f"{counted(len(record[part]), f'{part} image')} ({', '.join(missing[:3])}); is it "
            "the same dataset?"
        )
    return Subset(dataset, sorted(position[key] for key in record[part]))


def held_out_of(path: Path) -> str | None:
    """The split of the data whose images the split file ``path`` holds part of out;
    ``None`` for data without splits (or a file written before the split was recorded,
    or not a split file: :func:`read_split` says so)."""
    try:
        split = _read_record(path).get("split")
    except ValueError:
        return None
    return split if isinstance(split, str) else None


def _read_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable split file ({error})") from None
    valid = isinstance(record, dict) and record.get("format") == SPLIT_FORMAT
    if not valid or not all(isinstance(record.get(p), list) for p in PARTS):
        raise ValueError(f"{path}: not a faster-rcnn split file (format {SPLIT_FORMAT})")
    return record
