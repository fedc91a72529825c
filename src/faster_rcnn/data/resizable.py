"""Leaving out the images a model cannot resize, as the unreadable ones are.

An image so elongated that resizing it to the model's ``min_size``, capped by its
``max_size``, would leave a side of 0 pixels (a 1x2000 strip at 256 / 512) stops the
model's forward pass, and with it a whole training run or evaluation. Through
:class:`ResizableImages` such an image raises :class:`UnresizableImageError` (an
:class:`~faster_rcnn.data.dataset.UnreadableImageError`) when loaded, naming its file
and its size, so that training replaces it and evaluation leaves it out, each with a
warning, as they do an image that cannot be decoded (``--strict`` stops at it, with a
checkpoint); a run's summary counts it as unresizable, not as unreadable.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import Tensor

from ..validation import too_elongated
from .dataset import (
    DetectionDataset,
    Sample,
    Target,
    TransparentWrapper,
    UnreadableImageError,
    target_of,
)


class UnresizableImageError(UnreadableImageError):
    """An image that decodes but cannot be resized to the model's sizes."""

    kind = "unresizable"


def check_resizable(
    image: Tensor,
    file: Path,
    min_sizes: Sequence[int],
    max_size: int,
    names: tuple[str, str] = ("min_size", "max_size"),
) -> None:
    """Raise :class:`UnresizableImageError` naming ``file`` when ``image`` (``[3, H, W]``)
    cannot be resized to ``min_sizes`` capped by ``max_size``, the sizes named by
    ``names`` (see :func:`~faster_rcnn.validation.too_elongated`)."""
    size = (int(image.shape[-2]), int(image.shape[-1]))
    reason = too_elongated(size, min_sizes, max_size, names)
    if reason is not None:
        raise UnresizableImageError(file, f"{file}: {reason}")


class ResizableImages(TransparentWrapper):
    """``dataset``, whose items too elongated for ``min_sizes`` / ``max_size`` raise
    :class:`UnresizableImageError` (see the module). Every other attribute of the wrapped
    dataset (``image_files``, ``label_to_category_id``, ...) is its own.

    Args:
        dataset: any detection dataset.
        min_sizes / max_size: the model's ``transform.min_size`` and ``max_size``.
        names: how a message names those two sizes (``--min-size`` / ``--max-size``
            where the command line set them).
    """

    def __init__(
        self,
        dataset: DetectionDataset,
        min_sizes: Sequence[int],
        max_size: int,
        names: tuple[str, str] = ("min_size", "max_size"),
    ) -> None:
        super().__init__(dataset)
        self.min_sizes, self.max_size, self.names = tuple(min_sizes), max_size, names

    def __getitem__(self, index: int) -> Sample:
        image, target = self.dataset[index]
        files = getattr(self.dataset, "image_files", None)
        file = Path(files[index]) if files is not None else Path(f"image {index}")
        check_resizable(image, file, self.min_sizes, self.max_size, self.names)
        return image, target

    def target(self, index: int) -> Target:
        """The wrapped dataset's target of item ``index``, read as cheaply as it allows."""
        return target_of(self.dataset, index)
