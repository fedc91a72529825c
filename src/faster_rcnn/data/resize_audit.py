"""The objects that the model's resize leaves too small to find.

Every image is resized so that its shorter side is the model's ``min_size`` (its longer
side at most ``max_size``), whatever its own size. An object under :data:`TINY_SIDE`
pixels on a side once resized (a 2-pixel box on a 1280x960 photo resized to 320 px) is
too small for an anchor to match it well or for the model to find it: most often an
annotation slip, a click instead of a drag. :class:`ResizeAudit` counts them for
``faster-rcnn data`` and ``train``.

Images the resize enlarges many times are not noted: enlarging is what brings small
objects up to the anchors' sizes (the recipe enlarges the input further where a class
is under the smallest anchor, and shrinks it where every class is over the largest).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from torch import Tensor

from ..counted import counted
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
# Tiny boxes past both as many and this share of the boxes are not annotation slips.
SLIPS_AT_MOST, SLIP_SHARE = 9, 0.05


@dataclass
class ResizeAudit:
    """The objects too small once resized, of the images counted.

    The smallest of ``min_sizes`` (the sizes training draws the shorter side from)
    shrinks an image most: objects are measured at that size.

    Attributes:
        min_sizes / max_size: the model's ``transform.min_size`` and ``max_size``.
        boxes: the boxes counted.
        tiny: the objects under :data:`TINY_SIDE` px on a side once resized, per class.
        tiny_example: the first of them, its image, class, box and resized side.
    """

    min_sizes: tuple[int, ...]
    max_size: int
    boxes: int = 0
    tiny: Counter[str] = field(default_factory=Counter)
    tiny_example: str = ""

    def count(self, image: str, size: tuple[int, int], boxes: Tensor, names: Sequence[str]) -> None:
        """Count the ``(N, 4)`` ``boxes`` of the image named ``image``, of ``(height,
        width)`` ``size``, in its pixels, of the classes ``names``."""
        self.boxes += len(boxes)
        scale = resize_scale(size, min(self.min_sizes), self.max_size)
        sides = (boxes[:, 2:] - boxes[:, :2]).amin(dim=1) * scale
        for k in (sides < TINY_SIDE).nonzero().flatten().tolist():
            if not self.tiny:
                resized = f"{float(sides[k]):.1f} px once resized"
                self.tiny_example = f"{named_box(image, names[k], boxes[k])}, {resized}"
            self.tiny[names[k]] += 1

    def notes(self) -> list[str]:
        """A line where objects too small were found (none where none was)."""
        count = sum(self.tiny.values())
        if not count:
            return []
        classes = ", ".join(f"{name!r} {n}" for name, n in self.tiny.most_common())
        are = "is" if count == 1 else "are"
        # A slip is one box in many; a large share is objects small against their images.
        cause = (
            "an annotation slip most likely, or objects that need a larger --min-size"
            if count <= SLIPS_AT_MOST or count <= SLIP_SHARE * self.boxes
            else "too many for annotation slips: objects small against their images, which "
            "need a larger --min-size"
        )
        return [
            f"{count} of the {counted(self.boxes, 'box')} {are} under {TINY_SIDE:g} px on a "
            f"side once resized to {min(self.min_sizes)} px ({classes}; the first: "
            f"{self.tiny_example}): too small for an anchor to match or the model to "
            f"find; {cause}"
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
