"""Batches for training and evaluation.

A batch is ``(images, targets)``: two lists, since images differ in size (the model's
transform resizes and pads them). Training batches are shuffled by an explicit seed and
grouped by aspect ratio, so that the images padded together have similar shapes and
little of the padded batch is wasted; crowd boxes are dropped from training targets.
Asked to, the loaders skip unreadable images and say which in ``Batch.unreadable`` (see
:mod:`.unreadable`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Sampler

from ..counted import counted
from .augment import Augmented, derive_seed
from .coco import drop_crowd
from .dataset import DetectionDataset, Sample, Target, UnreadableImageError, image_size_of
from .unreadable import Skipped, SkipUnreadable


class Batch(tuple[list[Tensor], list[Target]]):
    """``(images, targets)``, unpacked as a pair; ``unreadable`` lists the items whose
    image could not be read (left out, or replaced in training; see :mod:`.unreadable`).
    """

    unreadable: tuple[Skipped, ...]

    def __new__(
        cls, images: list[Tensor], targets: list[Target], unreadable: Sequence[Skipped] = ()
    ) -> Batch:
        batch = super().__new__(cls, (images, targets))
        batch.unreadable = tuple(unreadable)
        return batch

    def __getnewargs__(self) -> tuple[list[Tensor], list[Target], tuple[Skipped, ...]]:
        return self[0], self[1], self.unreadable


def collate(batch: Sequence[Sample | Skipped]) -> Batch:
    """``[(image, target), ...]`` -> ``([image, ...], [target, ...])``; a :class:`Skipped`
    entry gives its replacement, if it has one, and is listed in ``Batch.unreadable``."""
    samples = [item.replacement if isinstance(item, Skipped) else item for item in batch]
    kept = [sample for sample in samples if sample is not None]
    skipped = [item for item in batch if isinstance(item, Skipped)]
    return Batch([image for image, _ in kept], [target for _, target in kept], skipped)


def collate_train(batch: Sequence[Sample | Skipped]) -> Batch:
    """:func:`collate`, with crowd boxes removed from the targets (see :func:`drop_crowd`)."""
    collated = collate(batch)
    images, targets = collated
    return Batch(images, [drop_crowd(target) for target in targets], collated.unreadable)


def aspect_ratio_groups(dataset: DetectionDataset) -> list[int]:
    """Per item, 1 for a landscape image (width / height > 1), else 0.

    Sizes come from the readers' ``image_size`` without decoding images. An image whose
    size cannot be read is put in group 0: loading it will find it unreadable.
    """
    groups = []
    for index in range(len(dataset)):
        try:
            height, width = image_size_of(dataset, index)
        except UnreadableImageError:
            height, width = 1, 1
        groups.append(int(width > height))
    return groups


class GroupedBatchSampler(Sampler[list[int]]):
    """Shuffled batches of indices whose items all belong to one group.

    Each epoch, the indices are shuffled by a generator seeded from ``(seed, epoch)`` and
    dealt into one buffer per group; a buffer that reaches ``batch_size`` is yielded as a
    batch. The buffers left partly filled at the end of the epoch are yielded too, one
    smaller batch per group in increasing group order, so that every index appears
    exactly once per epoch; with ``drop_last`` they are dropped instead (at most
    ``batch_size - 1`` indices per group, different ones each epoch).

    Args:
        group_ids: the group of every index, e.g. from :func:`aspect_ratio_groups`.
        batch_size: indices per full batch.
        seed: with the epoch, decides the order.
        drop_last: leave out each epoch's partly filled batches.
    """

    def __init__(
        self, group_ids: Sequence[int], batch_size: int, seed: int = 0, drop_last: bool = False
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.group_ids = list(group_ids)
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the order of ``epoch`` from the next iteration on."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch))
        buffers: dict[int, list[int]] = {}
        for index in torch.randperm(len(self.group_ids), generator=generator).tolist():
            buffer = buffers.setdefault(self.group_ids[index], [])
            buffer.append(index)
            if len(buffer) == self.batch_size:
                yield buffer
                buffers[self.group_ids[index]] = []
        if not self.drop_last:
            yield from (buffers[group] for group in sorted(buffers) if buffers[group])

    def __len__(self) -> int:
        counts = Counter(self.group_ids).values()
        if self.drop_last:
            return sum(count // self.batch_size for count in counts)
        return sum(math.ceil(count / self.batch_size) for count in counts)


def make_train_loader(
    dataset: DetectionDataset,
    batch_size: int,
    num_workers: int = 0,
    seed: int = 0,
    group_by_aspect_ratio: bool = True,
    epoch: int = 0,
    drop_last: bool = False,
    skip_unreadable: bool = False,
) -> DataLoader:
    """A loader over one training epoch: shuffled, grouped, crowd boxes dropped.

    The batches depend only on ``(seed, epoch)``, and so do the augmentations of an
    :class:`Augmented` dataset, whose epoch is set here: the same batches come out for any
    ``num_workers``.

    Args:
        dataset: any detection dataset.
        batch_size: images per batch (the last batches of an epoch may hold fewer, see
            :class:`GroupedBatchSampler`).
        num_workers: DataLoader worker processes (0 loads in this process).
        seed: decides the order (and, for :class:`Augmented`, nothing else: it has its own).
        group_by_aspect_ratio: batch landscape and portrait images apart.
        epoch: which epoch's order to give.
        drop_last: leave out each epoch's partly filled batches.
        skip_unreadable: replace an item whose image cannot be read by the next readable
            one and list it in ``Batch.unreadable``, instead of raising.
    """
    groups = aspect_ratio_groups(dataset) if group_by_aspect_ratio else [0] * len(dataset)
    sampler = GroupedBatchSampler(groups, batch_size, seed, drop_last)
    sampler.set_epoch(epoch)
    if isinstance(dataset, Augmented):
        dataset.set_epoch(epoch)
    loaded = SkipUnreadable(dataset, replace=True) if skip_unreadable else dataset
    return _loader(loaded, sampler, num_workers, seed, collate_train)


def iterate_batches(
    dataset: DetectionDataset,
    batch_size: int,
    seed: int = 0,
    num_workers: int = 0,
    group_by_aspect_ratio: bool = True,
    drop_last: bool = False,
    start_batch: int = 0,
    skip_unreadable: bool = False,
) -> Iterator[Batch]:
    """Training batches without end, epoch after epoch, for step-based training.

    Epoch ``e`` gives the batches of ``make_train_loader(..., epoch=e)``. ``start_batch``
    skips that many batches of the stream without loading them, so a resumed run picks
    up exactly where it stopped. ``skip_unreadable`` as in :func:`make_train_loader`.

    Yields:
        ``(images, targets)`` with crowd boxes dropped.
    """
    groups = aspect_ratio_groups(dataset) if group_by_aspect_ratio else [0] * len(dataset)
    sampler = GroupedBatchSampler(groups, batch_size, seed, drop_last)
    if len(sampler) == 0:
        raise ValueError(
            f"no training batch: {counted(len(dataset), 'image')}, batch_size {batch_size}, "
            f"drop_last {drop_last}"
        )
    epoch, skip = divmod(start_batch, len(sampler))
    loaded = SkipUnreadable(dataset, replace=True) if skip_unreadable else dataset
    while True:
        sampler.set_epoch(epoch)
        if isinstance(dataset, Augmented):
            dataset.set_epoch(epoch)
        batches = list(sampler)[skip:]
        yield from _loader(loaded, batches, num_workers, seed, collate_train)
        epoch, skip = epoch + 1, 0


def make_eval_loader(
    dataset: DetectionDataset | Sequence[Sample],
    batch_size: int = 1,
    num_workers: int = 0,
    skip_unreadable: bool = False,
) -> DataLoader:
    """A loader over ``dataset`` in order, all boxes kept (crowd ones included).

    Args:
        dataset: any detection dataset, or any sequence of ``(image, target)`` items.
        batch_size: images per batch; the last batch holds the rest.
        num_workers: DataLoader worker processes (0 loads in this process).
        skip_unreadable: leave out an item whose image cannot be read and list it in
            ``Batch.unreadable`` (a batch may then hold fewer images, or none), instead
            of raising.

    Returns:
        A loader of ``(images, targets)`` batches (see :func:`collate`).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    batches = [
        list(range(start, min(start + batch_size, len(dataset))))
        for start in range(0, len(dataset), batch_size)
    ]
    loaded = SkipUnreadable(dataset, replace=False) if skip_unreadable else dataset  # type: ignore[arg-type]
    return _loader(loaded, batches, num_workers, 0, collate)


def _loader(
    dataset: DetectionDataset | Sequence[Sample],
    batches: Iterable[list[int]],
    num_workers: int,
    seed: int,
    collate_fn: Callable[[Sequence[Sample | Skipped]], Batch],
) -> DataLoader:
    # A generator of our own: otherwise the DataLoader draws its workers' base seed from
    # the global RNG, and loading would shift every later global random draw.
    return DataLoader(
        dataset,  # type: ignore[arg-type]
        batch_sampler=batches,  # type: ignore[arg-type]
        num_workers=num_workers,
        collate_fn=collate_fn,
        generator=torch.Generator().manual_seed(seed),
    )
