"""Unreadable images: left out of a run, with a warning and a count, instead of ending it.

A corrupt, truncated or vanished image file met in the middle of training should not
cost the run. The loaders (asked with ``skip_unreadable=True``) wrap their dataset in
:class:`SkipUnreadable`, which turns the reader's
:class:`~faster_rcnn.data.dataset.UnreadableImageError` into a :class:`Skipped` entry;
the batch carries the entries to the main process, from DataLoader workers too, in
``Batch.unreadable``; and the run keeps an :class:`UnreadableLog`, which warns once per
file and counts, or under ``strict`` stops at the first.

In training an unreadable item is replaced by the next readable one in dataset order: a
batch keeps its size (data-parallel processes still split it evenly) and every step still
trains on a batch, so the step-to-batch correspondence that bit-identical resume relies
on holds. In evaluation an unreadable image is left out, its ground truth with it. An
image that decodes but that the model cannot resize (:mod:`.resizable`) goes the same
way, counted apart, as unresizable.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from ..counted import counted
from .dataset import (
    DetectionDataset,
    Sample,
    UnreadableImageError,
    WrappedDataset,
    first_few,
)


@dataclass(frozen=True)
class Skipped:
    """What :class:`SkipUnreadable` gives in place of an item whose image is unreadable.

    Attributes:
        index: the item's index in the dataset.
        file: the image file, as a string.
        reason: the reader's one-line error.
        replacement: the item that takes its place in a training batch; ``None`` in
            evaluation, or when no item of the dataset is readable.
        kind: why it is left out, as a run's summary counts it: ``"unreadable"``, or
            the ``kind`` of the reader's error (``"unresizable"``).
    """

    index: int
    file: str
    reason: str
    replacement: Sample | None = None
    kind: str = UnreadableImageError.kind


class SkipUnreadable(WrappedDataset):
    """``dataset``, with items whose image cannot be read given as :class:`Skipped`.

    Args:
        dataset: any detection dataset.
        replace: give the next readable item (in dataset order, wrapping round) as the
            replacement of an unreadable one, for training; without it, evaluation's
            choice, the unreadable item is left out.
    """

    def __init__(self, dataset: DetectionDataset, replace: bool) -> None:
        super().__init__(dataset)
        self.replace = replace

    def __getitem__(self, index: int) -> Sample | Skipped:
        try:
            return self.dataset[index]
        except UnreadableImageError as error:
            skipped = Skipped(index, str(error.path), str(error), kind=error.kind)
        if not self.replace:
            return skipped
        return replace(skipped, replacement=self._next_readable(index))

    def _next_readable(self, index: int) -> Sample | None:
        """The first readable item after ``index``; ``None`` when there is none."""
        for offset in range(1, len(self.dataset)):
            try:
                return self.dataset[(index + offset) % len(self.dataset)]
            except UnreadableImageError:
                continue
        return None


class UnreadableLog:
    """The unreadable images a run met: each file warned about once and counted, or,
    ``strict``, an error at the first.

    Args:
        strict: raise instead of skipping.
        warn: warn about each file the first time it is met.
    """

    def __init__(self, strict: bool = False, warn: bool = True) -> None:
        self.strict, self.warn = strict, warn
        self.times_skipped: Counter[str] = Counter()  # file -> times met
        self.kinds: dict[str, str] = {}  # file -> its Skipped.kind

    def note(self, skipped: Iterable[Skipped], where: str) -> None:
        """Record the entries of one batch; ``where`` (e.g. ``"joint, step 35"``) starts
        the warning.

        Raises:
            UnreadableImageError: ``strict``, and an entry to record.
        """
        for entry in skipped:
            if self.strict:
                raise UnreadableImageError(Path(entry.file), f"{where}: {entry.reason} (strict)")
            if self.warn and entry.file not in self.times_skipped:
                instead = "" if entry.replacement is None else ", the next readable image used"
                warnings.warn(f"{where}: {entry.reason}; skipped{instead}", stacklevel=2)
            self.times_skipped[entry.file] += 1
            self.kinds[entry.file] = entry.kind

    @property
    def files(self) -> tuple[str, ...]:
        """The files met, of every kind, in the order first met."""
        return tuple(self.times_skipped)

    def files_of(self, kind: str) -> tuple[str, ...]:
        """The files met of one :attr:`Skipped.kind`, in the order first met."""
        return tuple(file for file, its_kind in self.kinds.items() if its_kind == kind)

    def summary(self, shown: int = 3) -> str:
        """One line for a run's summary, a part for each kind, e.g. ``"1 unreadable
        image skipped (4 times): a.jpg; 1 unresizable image skipped: b.jpg"``; empty
        when there was none."""
        parts = []
        for kind in dict.fromkeys(self.kinds.values()):
            files = self.files_of(kind)
            count, times = len(files), sum(self.times_skipped[file] for file in files)
            repeated = f" ({times} times)" if times > count else ""
            parts.append(
                f"{counted(count, f'{kind} image')} skipped{repeated}: {first_few(files, shown)}"
            )
        return "; ".join(parts)
