"""Repeat-factor sampling: the images that hold a class few images hold are seen more often.

A class in few training images gives few steps that hold it at all, however its RoIs are
sampled within an image. LVIS (Gupta et al., 2019) repeats those images: with ``f_c``
the share of training images that hold class ``c``, the class's repeat factor is
``r_c = max(1, sqrt(t / f_c))`` and an image's is the largest of its classes' (1 for an
image without objects), so only classes held by fewer than the share ``t`` of the
images are repeated, the rarer the more, and an image of common classes stays once an
epoch. detectron2 offers it as ``RepeatFactorTrainingSampler``.

Here the fractional part is drawn once for the run, from its seed: image ``i`` is listed
``floor(r_i)`` times, and once more with probability ``r_i - floor(r_i)``. An epoch then
has one length for the whole run, so the step-based training's resumption and its
epochs' orders stay as they are; each listing is an item of its own, so its flips and
crops are drawn afresh.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .augment import derive_seed
from .dataset import (
    DetectionDataset,
    Sample,
    Target,
    UnreadableImageError,
    WrappedDataset,
    image_size_of,
    target_of,
)

# Of two classes or more, one held by fewer than this share of the training images is
# one that few images hold: the recipe then lists images at ``REPEAT_THRESHOLD``, and
# ``faster-rcnn data`` notes the class. At 0.4 a class in a tenth of the images is listed
# twice, in 5 % 2.8 times. It was ahead in COCO AP on every pair measured: one class of
# three in 5 % or 10 % of the images, and twelve classes of which six or eight are in
# under a tenth (benchmarks/recipe_ab.md, rounds 55 and 56).
RARE_IMAGE_SHARE = 0.1
REPEAT_THRESHOLD = 0.4
# The record a training run that repeats images writes beside its model file: every
# class's share and factor (its log names the most repeated few).
REPEAT_FACTORS_FILE = "repeat_factors.json"


def image_labels(dataset: DetectionDataset) -> list[list[int]]:
    """Per item of ``dataset``, the labels of its boxes, read from the annotations alone
    where the reader can (an item that cannot be read has none: training skips it)."""
    labels = []
    for index in range(len(dataset)):
        try:
            labels.append(target_of(dataset, index)["labels"].tolist())  # type: ignore[union-attr]
        except UnreadableImageError:
            labels.append([])
    return labels


def class_image_shares(labels_per_image: Sequence[Sequence[int]]) -> dict[int, float]:
    """Per label, the share of the images whose labels include it."""
    images = max(1, len(labels_per_image))
    counts: dict[int, int] = {}
    for labels in labels_per_image:
        for label in set(labels):
            counts[label] = counts.get(label, 0) + 1
    return {label: count / images for label, count in sorted(counts.items())}


def class_repeat_factors(shares: dict[int, float], threshold: float) -> dict[int, float]:
    """Per label of ``shares`` (label -> share of the images holding it), its repeat
    factor ``max(1, sqrt(threshold / share))``."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"repeat threshold must be in (0, 1], got {threshold}")
    return {label: max(1.0, math.sqrt(threshold / share)) for label, share in shares.items()}


def repeat_factors(labels_per_image: Sequence[Sequence[int]], threshold: float) -> list[float]:
    """Per image, the largest of its classes' factors (:func:`class_repeat_factors` of
    :func:`class_image_shares`), 1 for an image without objects."""
    factor = class_repeat_factors(class_image_shares(labels_per_image), threshold)
    return [max((factor[label] for label in labels), default=1.0) for labels in labels_per_image]


def repeated_indices(factors: Sequence[float], seed: int = 0) -> list[int]:
    """Each index ``i`` listed ``floor(factors[i])`` times, and once more with probability
    ``factors[i] - floor(factors[i])`` (drawn from ``seed``), in index order."""
    generator = torch.Generator().manual_seed(derive_seed(seed, len(factors)))
    draws = torch.rand(len(factors), dtype=torch.float64, generator=generator).tolist()
    indices = []
    for index, (factor, draw) in enumerate(zip(factors, draws, strict=True)):
        whole = math.floor(factor)
        indices += [index] * (whole + int(draw < factor - whole))
    return indices


class Repeated(WrappedDataset):
    """``dataset`` with item ``j`` being its item ``indices[j]``: an index listed twice is
    two items, read alike, augmented apart.

    Args:
        dataset: any detection dataset.
        indices: the wrapped items, in order, each as often as it is to be seen.
    """

    def __init__(self, dataset: DetectionDataset, indices: Sequence[int]) -> None:
        super().__init__(dataset)
        self.indices = list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Sample:
        return self.dataset[self.indices[index]]

    def image_size(self, index: int) -> tuple[int, int]:
        """``(height, width)`` of item ``index``, from the wrapped dataset."""
        return image_size_of(self.dataset, self.indices[index])

    def target(self, index: int) -> Target:
        """The target of item ``index``, read as cheaply as the wrapped dataset allows."""
        return target_of(self.dataset, self.indices[index])
