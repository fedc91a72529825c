"""Training images with no anchor inside them: under the paper's border rule the RPN
learns nothing from them, and nothing says so.

With ``rpn.allowed_border >= 0`` (``paper_vgg16``: 0) the anchors that cross the image
border by more than that are ignored in training. An image none of whose anchors lies
inside has every anchor ignored and an RPN loss of 0. A 2000 x 50 strip is one at
``paper_vgg16``'s 600 / 1000: resized to 1000 x 25, where its anchors are 90 px high at
the least. So is an image resized to 95 px high, though the 182 x 90 anchor fits in it:
that anchor lies inside only centred 45 to 50 px down, and the anchors' centres are 16 px
apart, at 8, 24, 40, 56, ... The torchvision presets keep every anchor
(``allowed_border = -1``) and have no such images.

:func:`anchorless_images` counts them from the images' sizes alone, each at the largest
shorter side training draws (where it has the most room on a grid of fixed strides). An
image counts where no anchor the model places on it, padded alone, lies inside by the rule
training applies (:func:`~faster_rcnn.anchors.anchors_crossing_border`); the anchors are
the model's own (:class:`~faster_rcnn.insight.anchor_coverage.PaddedBatchAnchors`), on the
feature maps its backbone makes of that padded size. Each resized size is decided once,
and the anchors of each padded size are placed once: a 600 px shorter side pads to 608,
so the sizes of a dataset share few padded sizes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch

from ..anchors import AnchorGenerator, anchors_crossing_border
from ..backbones.build import build_backbone
from ..config import FasterRCNNConfig
from ..counted import counted
from ..data.dataset import DetectionDataset, UnreadableImageError, image_name_of, image_size_of
from ..insight.anchor_coverage import PaddedBatchAnchors
from ..transform import padded_size, resized_size
from ..validation import too_elongated


def model_anchors(config: FasterRCNNConfig) -> PaddedBatchAnchors:
    """The anchors a model of ``config`` places, its backbone built for its feature-map
    sizes alone (the global random state left as it was).

    Raises:
        ValueError: ``config`` names a custom backbone, which only its user builds.
    """
    with torch.random.fork_rng(devices=[]):
        backbone = build_backbone(config.backbone)
    return PaddedBatchAnchors(backbone, AnchorGenerator.from_config(config))


def admitting_sizes(
    config: FasterRCNNConfig, sizes: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], bool]:
    """Whether an image resized to each of the ``(height, width)`` ``sizes`` has an
    anchor inside under ``config``'s border rule (``rpn.allowed_border >= 0``), among the
    anchors a model of ``config`` places on it padded alone: each size decided once, the
    anchors of each padded size placed once and not kept."""
    anchors = model_anchors(config)
    border = config.rpn.allowed_border
    admitting = {}
    for padded, group in sizes_by_padded_size(sizes, config.transform.size_divisible).items():
        placed = anchors.placed(padded)
        for size in group:
            admitting[size] = not bool(anchors_crossing_border(placed, size, border).all())
    return admitting


def sizes_by_padded_size(
    sizes: Iterable[tuple[int, int]], size_divisible: int
) -> dict[tuple[int, int], set[tuple[int, int]]]:
    """The distinct ``(height, width)`` ``sizes``, by the size an image of each is padded
    to alone."""
    groups: dict[tuple[int, int], set[tuple[int, int]]] = {}
    for size in sizes:
        groups.setdefault(padded_size([size], size_divisible), set()).add(size)
    return groups


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

    def resized(self, size: tuple[int, int]) -> tuple[int, int]:
        """The ``(height, width)`` an image of ``size`` is counted at."""
        return resized_size(size, self.min_size, self.max_size)

    def count(
        self, image: str, size: tuple[int, int], admitting: Mapping[tuple[int, int], bool]
    ) -> None:
        """Count the image named ``image``, of ``(height, width)`` ``size``, by whether
        its resized size is ``admitting`` an anchor inside."""
        self.images += 1
        resized = self.resized(size)
        if admitting[resized]:
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
    images = resizable_images(dataset, config, indices)
    admitting = admitting_sizes(config, {audit.resized(size) for _, size in images})
    for image, size in images:
        audit.count(image, size, admitting)
    return audit


def resizable_images(
    dataset: DetectionDataset, config: FasterRCNNConfig, indices: Sequence[int]
) -> list[tuple[str, tuple[int, int]]]:
    """The name and ``(height, width)`` of each of the images ``indices`` of ``dataset``
    that can be read and resized to ``config``'s sizes."""
    transform = config.transform
    images = []
    for index in indices:
        try:
            size = image_size_of(dataset, index)
        except UnreadableImageError:
            continue
        if too_elongated(size, transform.min_size, transform.max_size) is None:
            images.append((image_name_of(dataset, index), size))
    return images
