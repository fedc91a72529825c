"""Training-time augmentation with repeatable randomness.

A transform is a callable ``(image, target, generator) -> (image, target)``. The
:class:`Augmented` wrapper gives item ``i`` of epoch ``e`` its own generator seeded from
``(seed, e, i)``: the same run draws the same flips whatever the number of DataLoader
workers, and workers never share random state. (Multi-scale training is the model's
transform's job: ``TransformConfig.min_size`` as a tuple.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from .dataset import DetectionDataset, Target, WrappedDataset


def derive_seed(*keys: int) -> int:
    """A 64-bit seed that mixes all of ``keys`` (numpy's SeedSequence hash), so nearby
    keys such as ``(0, 1, 2)`` and ``(0, 2, 1)`` give unrelated streams."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1, dtype=np.uint64)[0])


class Transform(Protocol):
    """An augmentation step on one ``(image, target)`` pair, the image ``(3, H, W)``
    float in 0..1 or ``uint8`` levels (a step that must compute in float scales them
    with :func:`~.dataset.as_float_image`)."""

    def __call__(
        self, image: Tensor, target: Target, generator: torch.Generator
    ) -> tuple[Tensor, Target]: ...


# Per flip direction: the image axis mirrored and the box columns (low, high) along it.
FLIP_AXES = {"horizontal": (-1, 0, 2), "vertical": (-2, 1, 3)}


def flip_image(image: Tensor, direction: str) -> Tensor:
    """``(C, H, W)`` mirrored left-right (``"horizontal"``) or top-bottom
    (``"vertical"``)."""
    return image.flip(FLIP_AXES[direction][0])


def flip_boxes(boxes: Tensor, image_shape: Sequence[int], direction: str) -> Tensor:
    """``(N, 4)`` x1 y1 x2 y2 boxes of an image of ``image_shape`` (``(..., H, W)``) as
    they lie in :func:`flip_image`'s mirror of it: ``x1' = W - x2, x2' = W - x1``
    left-right, ``y1' = H - y2, y2' = H - y1`` top-bottom (continuous coordinates, so
    flipping twice gives the boxes back exactly)."""
    axis, low, high = FLIP_AXES[direction]
    size = image_shape[axis]
    flipped = boxes.clone()
    flipped[:, low], flipped[:, high] = size - boxes[:, high], size - boxes[:, low]
    return flipped


class RandomFlip:
    """Mirror the image left-right (``"horizontal"``) or top-bottom (``"vertical"``) with
    probability ``p``.

    Boxes follow (:func:`flip_boxes`); all other entries are unchanged. Inputs are never
    modified.
    """

    def __init__(self, p: float = 0.5, direction: str = "horizontal") -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"flip probability must be in 0..1, got {p}")
        if direction not in FLIP_AXES:
            raise ValueError(f"flip direction must be one of {list(FLIP_AXES)}, got {direction!r}")
        self.p = p
        self.direction = direction

    def __call__(
        self, image: Tensor, target: Target, generator: torch.Generator
    ) -> tuple[Tensor, Target]:
        """``image``: ``(3, H, W)``; ``target["boxes"]``: ``(N, 4)`` x1 y1 x2 y2."""
        if float(torch.rand((), generator=generator)) >= self.p:
            return image, target
        boxes: Tensor = target["boxes"]  # type: ignore[assignment]
        flipped = flip_boxes(boxes, image.shape, self.direction)
        return flip_image(image, self.direction), {**target, "boxes": flipped}


class RandomHorizontalFlip(RandomFlip):
    """Mirror the image left-right with probability ``p`` (see :class:`RandomFlip`)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__(p, "horizontal")


class RandomVerticalFlip(RandomFlip):
    """Mirror the image top-bottom with probability ``p`` (see :class:`RandomFlip`): for
    images with no up or down, such as microscope slides or aerial photographs."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__(p, "vertical")


class Augmented(WrappedDataset):
    """``dataset`` with ``transforms`` applied in order to every item.

    Args:
        dataset: any detection dataset.
        transforms: steps applied in order; they keep the image's aspect ratio (a flip
            keeps its size, a crop its shape), so batches grouped by the wrapped
            dataset's sizes still group landscape and portrait images apart.
        seed: with the epoch and the index, decides every random draw.

    Call :meth:`set_epoch` before each epoch so that every epoch draws afresh. DataLoader
    workers copy the dataset when an iteration starts, so the epoch must be set before
    ``iter(loader)`` and the loader must not keep persistent workers.
    """

    def __init__(
        self, dataset: DetectionDataset, transforms: Sequence[Transform], seed: int = 0
    ) -> None:
        super().__init__(dataset)
        self.transforms = tuple(transforms)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw the random numbers of ``epoch`` from now on."""
        self.epoch = epoch

    def __getitem__(self, index: int) -> tuple[Tensor, Target]:
        image, target = self.dataset[index]
        generator = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch, index))
        for transform in self.transforms:
            image, target = transform(image, target, generator)
        return image, target
