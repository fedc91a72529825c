"""What a split of a dataset holds, for ``faster-rcnn data``: images, boxes per class,
image sizes and what the reader said on opening it."""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field

from .dataset import image_size_of, target_of
from .open import DatasetLayout


@dataclass
class SplitSummary:
    """One split: ``name``, its images, boxes and images per class, the smallest and
    largest image (``(height, width)``, by area) and the reader's warnings."""

    name: str
    images: int
    boxes: Counter[str] = field(default_factory=Counter)
    images_with: Counter[str] = field(default_factory=Counter)
    smallest: tuple[int, int] | None = None
    largest: tuple[int, int] | None = None
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The summary as indented lines of text."""
        total = sum(self.boxes.values())
        sizes = ""
        if self.smallest is not None and self.largest is not None:
            sizes = f"; image sizes {_hw(self.smallest)} to {_hw(self.largest)} (width x height)"
        lines = [f"  {self.name}: {self.images} images, {total} boxes{sizes}"]
        width = max([len(name) for name in self.boxes] + [5])
        lines.append(f"    {'class':<{width}}  boxes  images")
        for name, count in self.boxes.items():
            lines.append(f"    {name:<{width}}  {count:>5}  {self.images_with[name]:>6}")
        lines += [f"    note: {note}" for note in self.notes]
        return lines


def summarize_split(layout: DatasetLayout, split: str) -> SplitSummary:
    """Open ``split`` of ``layout`` and count what it holds (annotations and image headers
    only: no image is decoded, except for generated data)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = layout.open(split)
    summary = SplitSummary(split, len(dataset), notes=[str(w.message) for w in caught])
    summary.boxes.update(dict.fromkeys(dataset.class_names, 0))
    areas = []
    for index in range(len(dataset)):
        labels = target_of(dataset, index)["labels"].tolist()
        names = [dataset.class_names[label - 1] for label in labels]
        summary.boxes.update(names)
        summary.images_with.update(set(names))
        areas.append(image_size_of(dataset, index))
    if areas:
        summary.smallest = min(areas, key=lambda hw: hw[0] * hw[1])
        summary.largest = max(areas, key=lambda hw: hw[0] * hw[1])
    return summary


def _hw(size: tuple[int, int]) -> str:
    return f"{size[1]}x{size[0]}"
