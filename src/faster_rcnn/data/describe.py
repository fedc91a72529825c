"""What a split of a dataset holds, for ``faster-rcnn data``: images, boxes and box sizes
per class, image sizes, what the reader said on opening it, and what the model's resize
makes of them (:mod:`~faster_rcnn.data.resize_audit`).

The boxes are those ``train`` trains on: COCO's crowd regions (``iscrowd`` 1), which it
leaves out (:class:`~faster_rcnn.data.coco.WithoutCrowd`), are counted apart."""

from __future__ import annotations

import statistics
import warnings
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from torch import Tensor

from ..counted import counted
from .coco import drop_crowd
from .dataset import (
    Target,
    UnreadableImageError,
    first_few,
    image_name_of,
    image_size_of,
    named_box,
    target_of,
)
from .open import DatasetLayout
from .repeat_factor import RARE_IMAGE_SHARE, REPEAT_THRESHOLD
from .resize_audit import ResizeAudit

# An image this many times as wide as high, or as high as wide, is a strip: the size line
# names the most elongated, which photos of ordinary shapes (up to 2:1) never are.
STRIP_RATIO = 3.0


@dataclass
class SplitSummary:
    """One split: ``name``, its images, what the resize makes of them (``resize``), boxes,
    images and box sides per class, crowd regions per class (COCO's ``iscrowd``, none of
    the boxes), the smallest and largest image (``(height, width)``, by area, then
    width), the widest and tallest in shape (by width / height, the most and the least),
    the boxes that repeat another of their class in their image, and the reader's
    warnings.

    A box's side is the square root of its area, in the image's pixels as annotated.
    """

    name: str
    images: int
    resize: ResizeAudit
    boxes: Counter[str] = field(default_factory=Counter)
    images_with: Counter[str] = field(default_factory=Counter)
    sides: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    crowd: Counter[str] = field(default_factory=Counter)
    smallest: tuple[int, int] | None = None
    largest: tuple[int, int] | None = None
    widest: tuple[int, int] | None = None
    tallest: tuple[int, int] | None = None
    repeated: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def count(
        self, target: Target, class_names: Sequence[str], image: str, size: tuple[int, int]
    ) -> None:
        """Count the boxes of ``target``, the annotation of the image named ``image`` of
        ``(height, width)`` ``size``; its crowd regions apart."""
        crowd = target.get("iscrowd")
        if isinstance(crowd, Tensor):
            crowd_labels = target["labels"][crowd.bool()].tolist()
            self.crowd.update(class_names[label - 1] for label in crowd_labels)
            target = drop_crowd(target)
        boxes, labels = target["boxes"], target["labels"]
        names = [class_names[label - 1] for label in labels.tolist()]
        self.resize.count(image, size, boxes, names)
        self.boxes.update(names)
        self.images_with.update(set(names))
        sides = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sqrt()
        for name, side in zip(names, sides.tolist(), strict=True):
            self.sides[name].append(side)
        for k in _repeated_boxes(boxes, labels):
            self.repeated.append(named_box(image, names[k], boxes[k]))

    def lines(self) -> list[str]:
        """The summary as indented lines of text."""
        total = sum(self.boxes.values())
        sizes = ""
        if self.smallest is not None and self.largest is not None:
            sizes = f"; image sizes {_hw(self.smallest)} to {_hw(self.largest)} (width x height)"
            sizes += self._strips()
        lines = [f"  {self.name}: {counted(self.images, 'image')}, {counted(total, 'box')}{sizes}"]
        width = max([len(name) for name in self.boxes] + [5])
        lines.append(f"    {'class':<{width}}  boxes  images  box side px: median (range)")
        for name, count in self.boxes.items():
            row = f"    {name:<{width}}  {count:>5}  {self.images_with[name]:>6}"
            lines.append(f"{row}  {_side_range(self.sides[name])}".rstrip())
        notes = self.notes + self._crowd_note() + self._repeated_note() + self._image_rare_note()
        notes += self.resize.notes()
        lines += [f"    note: {note}" for note in notes]
        return lines

    def _strips(self) -> str:
        """The widest image in shape (``, the widest 4000x50 (80:1)``), where it is a
        strip (:data:`STRIP_RATIO`) wider than the smallest and the largest, and likewise
        the tallest: what those two, by area, would hide; ``""`` where there is none."""
        if not (self.smallest and self.largest and self.widest and self.tallest):
            return ""
        shown = (self.smallest, self.largest)
        text = ""
        height, width = self.widest
        if width >= STRIP_RATIO * height and all(_wider(self.widest, size) for size in shown):
            text += f", the widest {_hw(self.widest)} ({_ratio(width / height)}:1)"
        height, width = self.tallest
        if height >= STRIP_RATIO * width and all(_wider(size, self.tallest) for size in shown):
            text += f", the tallest {_hw(self.tallest)} (1:{_ratio(height / width)})"
        return text

    def _image_rare_note(self) -> list[str]:
        rare = [
            f"{name!r} in {count} ({count / self.images:.0%})"
            for name, count in sorted(self.images_with.items(), key=lambda item: item[1])
            if 0 < count < RARE_IMAGE_SHARE * self.images
        ]
        classes = sum(count > 0 for count in self.images_with.values())
        if not rare or classes < 2 or self.name == "test":
            return []
        return [
            f"a class few images hold: {', '.join(rare)} of the {counted(self.images, 'image')}; "
            f"train lists such images more often (repeat-factor sampling at "
            f"{REPEAT_THRESHOLD}; --repeat-threshold 0 lists each image once)"
        ]

    def _crowd_note(self) -> list[str]:
        count = sum(self.crowd.values())
        if not count:
            return []
        are = "is" if count == 1 else "are"
        classes = [f"{name!r} {n}" for name, n in self.crowd.most_common()]
        return [
            f"{counted(count, 'crowd region')} (iscrowd 1: {first_few(classes)}) {are} not "
            "among the boxes above: train leaves them out, and evaluate (COCO AP as VOC mAP) "
            "counts neither them as objects to find nor a detection in one as a false positive"
        ]

    def _repeated_note(self) -> list[str]:
        if not self.repeated:
            return []
        count = len(self.repeated)
        its = "its" if count == 1 else "their"
        return [
            f"{counted(count, 'box repeats', 'boxes repeat')} another box of {its} class in "
            f"{its} image, corner for corner "
            f"({first_few(self.repeated, separator='; ')}): an annotation slip most "
            "likely; evaluation counts each as an object to find (as the VOC and COCO "
            "tools do), and no detector finds one object twice"
        ]


def summarize_split(
    layout: DatasetLayout, split: str, min_sizes: Sequence[int], max_size: int
) -> SplitSummary:
    """Open ``split`` of ``layout`` and count what it holds, resized to ``min_sizes``
    capped by ``max_size`` (the model's ``transform``); annotations and image headers
    only: no image is decoded, except for generated data."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = layout.open(split)
    resize = ResizeAudit(tuple(min_sizes), max_size)
    summary = SplitSummary(split, len(dataset), resize, notes=[str(w.message) for w in caught])
    summary.boxes.update(dict.fromkeys(dataset.class_names, 0))
    areas, unreadable = [], []
    for index in range(len(dataset)):
        try:  # a YOLO target needs its image's size too
            target, size = target_of(dataset, index), image_size_of(dataset, index)
        except UnreadableImageError as error:
            unreadable.append(str(error))
            continue
        summary.count(target, dataset.class_names, image_name_of(dataset, index), size)
        areas.append(size)
    summary.notes += _unlabelled_note(dataset, summary.images)
    if unreadable:
        summary.notes.append(
            f"{counted(len(unreadable), 'image')} cannot be read "
            f"({first_few(unreadable, separator='; ')}): "
            "train, evaluate and predict skip them"
        )
    if areas:
        # By area, then width: a portrait and a landscape image of one area both show.
        summary.smallest = min(areas, key=lambda hw: (hw[0] * hw[1], hw[1]))
        summary.largest = max(areas, key=lambda hw: (hw[0] * hw[1], hw[1]))
        summary.widest = max(areas, key=lambda hw: (hw[1] / hw[0], hw[1]))
        summary.tallest = max(areas, key=lambda hw: (hw[0] / hw[1], hw[0]))
    return summary


def _unlabelled_note(dataset: object, images: int) -> list[str]:
    """A note of the images of a YOLO split of ``images`` without a label file (its
    reader's ``unlabelled_images``), which the reader takes for images without objects,
    as Ultralytics does, and says nothing of unless none of them has one (its warning is
    a note already)."""
    unlabelled = getattr(dataset, "unlabelled_images", [])
    if not unlabelled or len(unlabelled) == images:
        return []
    return [
        f"{counted(len(unlabelled), 'image has', 'images have')} no label file "
        f"({first_few([str(path) for path in unlabelled])}): read as images without "
        "objects, as Ultralytics reads them; train learns them as background"
    ]


def _repeated_boxes(boxes: Tensor, labels: Tensor) -> list[int]:
    """Indices of the boxes (``float32[N, 4]``, labels ``int64[N]``) equal, label and
    corners, to an earlier one."""
    seen: set[tuple[int, tuple[float, ...]]] = set()
    repeated = []
    for k, row in enumerate(zip(labels.tolist(), map(tuple, boxes.tolist()), strict=True)):
        if row in seen:
            repeated.append(k)
        seen.add(row)
    return repeated


def _side_range(sides: list[float]) -> str:
    if not sides:
        return ""
    return f"{statistics.median(sides):.0f} ({min(sides):.0f}-{max(sides):.0f})"


def _wider(size: tuple[int, int], other: tuple[int, int]) -> bool:
    """Whether the ``(height, width)`` ``size`` is wider for its height than ``other``."""
    return size[1] * other[0] > other[1] * size[0]


def _ratio(ratio: float) -> str:
    """A side over the other, to 3 digits (``7.5``, ``80``), whole from 100 on (``1333``,
    where ``.3g`` writes ``1.33e+03``)."""
    return f"{ratio:.3g}" if ratio < 100 else f"{ratio:.0f}"


def _hw(size: tuple[int, int]) -> str:
    return f"{size[1]}x{size[0]}"
