"""What the model's resize makes of a dataset's objects and images that training cannot use.

Every image is resized so that its shorter side is the model's ``min_size`` (its longer
side at most ``max_size``), whatever its own size. Two cases then go wrong without a
word, and :class:`ResizeAudit` counts them for ``faster-rcnn data`` and ``train``:

* an object under :data:`TINY_SIDE` pixels on a side once resized (a 2-pixel box on a
  1280x960 photo resized to 320 px) is too small for an anchor to match it well or for
  the model to find it: most often an annotation slip, a click instead of a drag;
* an image enlarged more than :data:`LARGE_ENLARGEMENT` times (a 32x32 crop resized to
  320 px is enlarged 10 times) gives the backbone many times its pixels to convolve,
  none of them new: a ``--min-size`` near the images' own size keeps them as they are.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from torch import Tensor

from ..transform import resize_scale
from .dataset import (
    DetectionDataset,
    UnreadableImageError,
    image_name_of,
    image_size_of,
    named_box,
    target_of,
)

TINY_SIDE = 2.0  # px once resized
LARGE_ENLARGEMENT = 4.0


@dataclass
class ResizeAudit:
    """The objects too small once resized and the images enlarged many times, of the
    images counted.

    The smallest of ``min_sizes`` (the sizes training draws the shorter side from)
    shrinks an image most and the largest enlarges it most: each case is counted at
    that size.

    Attributes:
        min_sizes / max_size: the model's ``transform.min_size`` and ``max_size``.
        images / boxes: those counted.
        tiny: the objects under :data:`TINY_SIDE` px on a side once resized, per class.
        tiny_example: the first of them, its image, class, box and resized side.
        enlarged: per image enlarged more than :data:`LARGE_ENLARGEMENT` times, the
            factor, its name and its ``(height, width)``.
    """

    min_sizes: tuple[int, ...]
    max_size: int
    images: int = 0
    boxes: int = 0
    tiny: Counter[str] = field(default_factory=Counter)
    tiny_example: str = ""
    enlarged: list[tuple[float, str, tuple[int, int]]] = field(default_factory=list)

    def count(self, image: str, size: tuple[int, int], boxes: Tensor, names: Sequence[str]) -> None:
        """Count the image named ``image``, of ``(height, width)`` ``size``, and its
        ``(N, 4)`` ``boxes`` in its pixels, of the classes ``names``."""
        self.images += 1
        self.boxes += len(boxes)
        enlargement = resize_scale(size, max(self.min_sizes), self.max_size)
        if enlargement > LARGE_ENLARGEMENT:
            self.enlarged.append((enlargement, image, size))
        scale = resize_scale(size, min(self.min_sizes), self.max_size)
        sides = (boxes[:, 2:] - boxes[:, :2]).amin(dim=1) * scale
        for k in (sides < TINY_SIDE).nonzero().flatten().tolist():
            if not self.tiny:
                resized = f"{float(sides[k]):.1f} px once resized"
                self.tiny_example = f"{named_box(image, names[k], boxes[k])}, {resized}"
            self.tiny[names[k]] += 1

    def notes(self) -> list[str]:
        """A line for each case found (none where neither was)."""
        return self._tiny_note() + self._enlarged_note()

    def _tiny_note(self) -> list[str]:
        count = sum(self.tiny.values())
        if not count:
            return []
        classes = ", ".join(f"{name!r} {n}" for name, n in self.tiny.most_common())
        are = "is" if count == 1 else "are"
        return [
            f"{count} of the {self.boxes} boxes {are} under {TINY_SIDE:g} px on a side once "
            f"resized to {min(self.min_sizes)} px ({classes}; the first: "
            f"{self.tiny_example}): too small for an anchor to match or the model to "
            "find; an annotation slip most likely, or objects that need a larger --min-size"
        ]

    def _enlarged_note(self) -> list[str]:
        if not self.enlarged:
            return []
        factor, image, (height, width) = max(self.enlarged, key=lambda item: item[0])
        sides = statistics.median_low(min(size) for _, _, size in self.enlarged)
        are = "is" if len(self.enlarged) == 1 else "are"
        return [
            f"{len(self.enlarged)} of the {self.images} images {are} enlarged more than "
            f"{LARGE_ENLARGEMENT:g} times by the resize to {max(self.min_sizes)} px (the "
            f"most {factor:.1f} times: {image}, {width}x{height}): training and detection "
            f"convolve many times their pixels, with nothing new in them; `train "
            f"--min-size {sides}` (their median shorter side; every image is resized to "
            "it) keeps them near their own size"
        ]


def audit_resize(
    dataset: DetectionDataset, min_sizes: Sequence[int], max_size: int, indices: Sequence[int]
) -> ResizeAudit:
    """The :class:`ResizeAudit` of the images ``indices`` of ``dataset`` (annotations and
    image headers only where the reader has them); an image that cannot be read is left
    out, as training leaves it out."""
    audit = ResizeAudit(tuple(min_sizes), max_size)
    names = dataset.class_names
    for index in indices:
        try:
            target, size = target_of(dataset, index), image_size_of(dataset, index)
        except UnreadableImageError:
            continue
        labels = [names[label - 1] for label in target["labels"].tolist()]
        audit.count(image_name_of(dataset, index), size, target["boxes"], labels)
    return audit
