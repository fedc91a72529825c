"""Training images with no anchor inside them: under the paper's border rule the RPN
learns nothing from them, and nothing says so.

With ``rpn.allowed_border >= 0`` (``paper_vgg16``: 0) the anchors that cross the image
border by more than that are ignored in training. An image whose resized size is smaller
than every anchor shape in one direction has none inside it: every anchor of it is
ignored and its RPN loss is 0. A 2000 x 50 strip is one at ``paper_vgg16``'s 600 / 1000:
resized to 1000 x 25, where its anchors are 90 px high at the least. The torchvision
presets keep every anchor (``allowed_border = -1``) and have no such images.

:func:`anchorless_images` counts them from the images' sizes alone, each at the largest
shorter side training draws (the best case). The anchors' shapes decide: where one fits,
the grid of anchor centres may still place none of it inside (a shape 5 px narrower than
the image, its centres 16 px apart), so an image counted surely has no anchor inside,
and one left uncounted may have none either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..anchors import base_anchors, per_level
from ..config import AnchorConfig, FasterRCNNConfig
from ..counted import counted
from ..data.dataset import DetectionDataset, UnreadableImageError, image_name_of, image_size_of
from ..transform import resized_size
from ..validation import too_elongated


def anchor_shapes(anchors: AnchorConfig) -> Tensor:
    """``(K, 2)`` width and height of every anchor shape of every level, in whole pixels
    as the anchor generator rounds them (:func:`~faster_rcnn.anchors.base_anchors`)."""
    sizes, ratios = per_level(anchors.sizes, anchors.aspect_ratios)
    cells = torch.cat([base_anchors(s, r) for s, r in zip(sizes, ratios, strict=True)])
    return cells[:, 2:] - cells[:, :2]


def admits_an_anchor(size: tuple[int, int], shapes: Tensor, allowed_border: float) -> bool:
    """Whether an image of ``(height, width)`` ``size`` has room for one of the ``(K, 2)``
    anchor ``shapes`` (width, height), each allowed ``allowed_border`` px past every side."""
    height, width = size
    room = torch.tensor([width, height], dtype=shapes.dtype) + 2 * allowed_border
    return bool((shapes <= room).all(dim=1).any())


@dataclass
class AnchorlessImages:
    """The images counted, and those with no anchor inside them once resized.

    Attributes:
        min_size / max_size: the shorter side they were resized to (the largest drawn)
            and the longer side's cap.
        allowed_border: the RPN's border rule, ``rpn.allowed_border``.
        images: the images counted.
        anchorless: those with no anchor inside.
        example: the first of them: its name, size and resized size.
    """

    min_size: int
    max_size: int
    allowed_border: float
    images: int = 0
    anchorless: int = 0
    example: str = ""

    def count(self, image: str, size: tuple[int, int], shapes: Tensor) -> None:
        """Count the image named ``image``, of ``(height, width)`` ``size``, against the
        ``(K, 2)`` anchor ``shapes``."""
        self.images += 1
        resized = resized_size(size, self.min_size, self.max_size)
        if admits_an_anchor(resized, shapes, self.allowed_border):
            return
        if not self.anchorless:
            self.example = (
                f"{image}, {size[1]}x{size[0]} (width x height), {resized[1]}x{resized[0]} "
                "once resized"
            )
        self.anchorless += 1

    def notes(self) -> list[str]:
        """A line where an image has no anchor inside (none where none has)."""
        if not self.anchorless:
            return []
        admit = "admits" if self.anchorless == 1 else "admit"
        return [
            f"{self.anchorless} of the {counted(self.images, 'image')} {admit} no anchor "
            f"inside once resized to {self.min_size} px (the first: {self.example}), and "
            f"anchors crossing the border by more than {self.allowed_border:g} px are "
            "ignored in training (rpn.allowed_border): the RPN learns nothing from them; "
            "keep every anchor (--allowed-border -1, as torchvision's presets do) or give "
            "smaller ones (--anchors)"
        ]


def anchorless_images(
    dataset: DetectionDataset, config: FasterRCNNConfig, indices: Sequence[int]
) -> AnchorlessImages:
    """The :class:`AnchorlessImages` of the images ``indices`` of ``dataset`` (their
    sizes only, from their headers where the reader has them), resized to the largest of
    ``config``'s shorter sides; none are counted where ``config`` keeps every anchor.
    An image that cannot be read, or is too elongated to resize, is left out, as
    training leaves it out."""
    transform = config.transform
    audit = AnchorlessImages(max(transform.min_size), transform.max_size, config.rpn.allowed_border)
    if audit.allowed_border < 0:
        return audit
    shapes = anchor_shapes(config.anchors)
    for index in indices:
        try:
            size = image_size_of(dataset, index)
        except UnreadableImageError:
            continue
        if too_elongated(size, transform.min_size, transform.max_size) is None:
            audit.count(image_name_of(dataset, index), size, shapes)
    return audit
