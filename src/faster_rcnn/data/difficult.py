"""Training without the objects Pascal VOC marks ``difficult``, as py-faster-rcnn does."""

from __future__ import annotations

from torch import Tensor

from .dataset import Sample, Target, WrappedDataset, boxes_kept, target_of


class WithoutDifficult(WrappedDataset):
    """``dataset`` with its ``difficult`` objects taken out of every target.

    py-faster-rcnn trains without them (``USE_DIFF = False``) and VOC's evaluation ignores
    them. Left in (the default here, as torchvision's references do), they are positives
    like any other box. Targets without a ``"difficult"`` entry are returned as they are.
    """

    def __getitem__(self, index: int) -> Sample:
        image, target = self.dataset[index]
        return image, without_difficult(target)

    def target(self, index: int) -> Target:
        """The target of item ``index``, read as cheaply as the wrapped dataset allows."""
        return without_difficult(target_of(self.dataset, index))


def without_difficult(target: Target) -> Target:
    """``target`` without its difficult boxes; per-box entries are filtered alike. The
    flags may be of any dtype, 0 or 1 (bool, or a user's int64)."""
    difficult = target.get("difficult")
    if not isinstance(difficult, Tensor) or not bool(difficult.any()):
        return target
    return boxes_kept(target, ~difficult.bool())  # a mask: ~ of integers would index
