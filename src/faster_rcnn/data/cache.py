"""Keep a dataset's items in memory after their first read, images at 8 bits a channel."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .dataset import (
    DetectionDataset,
    Sample,
    Target,
    UnreadableImageError,
    WrappedDataset,
    image_size_of,
    target_of,
)

# What a cached image holds a pixel: three 8-bit channels.
BYTES_PER_PIXEL = 3


class InMemoryDataset(WrappedDataset):
    """``dataset``, with every item kept in memory once read.

    Images are stored and handed out as ``uint8`` levels (a quarter of the float32 size:
    300 KB for a 320 x 320 image), as the readers of image files give them and the model
    takes them (:func:`~faster_rcnn.data.dataset.as_float_image` scales them to 0..1):
    exact for images with 8-bit levels - those decoded from files and
    :class:`SyntheticShapes`'s - and any other image rounded to the nearest level. Each
    read returns new tensors, so a caller may modify what it gets.

    Its targets are the wrapped dataset's, read without decoding an image where that
    dataset can (:func:`~faster_rcnn.data.dataset.target_of`): the statistics ``train``
    takes of every target before its first step decode none.

    Worth it when reading an item costs much more than the copy: decoding JPEGs, or
    drawing synthetic images. DataLoader workers each fill their own copy of the cache,
    which is lost when the workers stop; use it with ``num_workers=0``.

    Args:
        dataset: any detection dataset.
    """

    def __init__(self, dataset: DetectionDataset) -> None:
        super().__init__(dataset)
        self._items: dict[int, tuple[Tensor, Target]] = {}

    def __getitem__(self, index: int) -> Sample:
        if index not in self._items:
            image, target = self.dataset[index]
            self._items[index] = (eight_bit_levels(image), target)
        pixels, target = self._items[index]
        return pixels.clone(), _copied(target)

    def target(self, index: int) -> Target:
        """The target of item ``index``, its cached copy or else the wrapped dataset's,
        without decoding its image where that dataset can."""
        if index in self._items:
            return _copied(self._items[index][1])
        return target_of(self.dataset, index)

    def image_size(self, index: int) -> tuple[int, int]:
        """``(height, width)`` of item ``index``, without reading it when not cached."""
        if index in self._items:
            height, width = self._items[index][0].shape[-2:]
            return height, width
        return super().image_size(index)


def eight_bit_levels(image: Tensor) -> Tensor:
    """``uint8[C, H, W]``: ``image`` (``float[C, H, W]`` in 0..1) at the nearest of 256
    levels, or ``image`` itself where it holds levels already (a reader's item). Rounded a
    channel at a time: the float scratch is a third of the image, not a whole copy of it
    (192 MB, not 576, of an 8000 x 6000 photo)."""
    if image.dtype == torch.uint8:
        return image
    levels = torch.empty(image.shape, dtype=torch.uint8, device=image.device)
    for channel, stored in zip(image, levels, strict=True):
        stored.copy_(channel.mul(255).round_().clamp_(0, 255))
    return levels


def _copied(target: Target) -> Target:
    """``target`` with its tensors cloned, so that a caller may modify what it gets."""
    return {k: v.clone() if isinstance(v, Tensor) else v for k, v in target.items()}


def cached_bytes(dataset: DetectionDataset, indices: Sequence[int]) -> int:
    """The bytes :class:`InMemoryDataset` holds once it has read all of ``dataset``:
    :data:`BYTES_PER_PIXEL` for each pixel of each image, as decoded (before any resize),
    from the sizes of the images ``indices`` (their headers, where the reader has them)
    scaled to the whole dataset; exact where ``indices`` are every image. An image that
    cannot be read is never cached and is left out; the targets' few bytes are too."""
    sizes = []
    for index in indices:
        try:
            sizes.append(image_size_of(dataset, index))
        except UnreadableImageError:
            continue
    if not sizes:
        return 0
    pixels = sum(height * width for height, width in sizes)
    return round(BYTES_PER_PIXEL * pixels * len(dataset) / len(indices))
