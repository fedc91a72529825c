"""Several splits of one dataset read as one (``train`` and ``val``, to train on both)."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from pathlib import Path

from .dataset import DetectionDataset, Sample, Target, image_size_of, target_of


class JoinedDataset:
    """The items of ``parts`` one after the other, numbered ``0..len-1`` (``image_id`` too).

    Args:
        parts: datasets with the same ``class_names`` (labels mean the same in each).

    Attributes:
        parts: the joined datasets, in order.
        image_files: every part's files in order, when every part has files.

    Raises:
        ValueError: no parts, or parts whose class names differ.
    """

    def __init__(self, parts: Sequence[DetectionDataset]) -> None:
        if not parts:
            raise ValueError("nothing to join: no datasets given")
        names = parts[0].class_names
        for part in parts[1:]:
            if part.class_names != names:
                raise ValueError(
                    f"cannot join datasets with different classes: {list(names)} and "
                    f"{list(part.class_names)}"
                )
        self.parts = list(parts)
        self._starts = [0]
        for part in self.parts:
            self._starts.append(self._starts[-1] + len(part))
        files = [getattr(part, "image_files", None) for part in self.parts]
        if all(f is not None for f in files):
            self.image_files = [Path(f) for part_files in files for f in part_files]

    @property
    def class_names(self) -> tuple[str, ...]:
        """The class names every part shares."""
        return self.parts[0].class_names

    @property
    def num_classes(self) -> int:
        """Classes including background."""
        return self.parts[0].num_classes

    def __len__(self) -> int:
        return self._starts[-1]

    def __getitem__(self, index: int) -> Sample:
        part, local = self._locate(index)
        image, target = self.parts[part][local]
        return image, {**target, "image_id": index}

    def target(self, index: int) -> Target:
        """The target of item ``index``, without decoding its image where its part allows."""
        part, local = self._locate(index)
        return {**target_of(self.parts[part], local), "image_id": index}

    def image_size(self, index: int) -> tuple[int, int]:
        """``(height, width)`` of item ``index``."""
        part, local = self._locate(index)
        return image_size_of(self.parts[part], local)

    def _locate(self, index: int) -> tuple[int, int]:
        """``(part, index within it)`` of item ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        part = bisect.bisect_right(self._starts, index) - 1
        return part, index - self._starts[part]
