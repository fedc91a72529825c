"""What a reader does to annotated boxes that leave their image: clip, drop, and say so.

Annotation tools and conversions leave boxes that reach past the image border (a
negative ``xmin``, ``xmax = 5000`` on a 650-pixel image), lie wholly outside it, have no
area, or have their corners reversed (``xmax < xmin``, a negative COCO ``width``). The
readers clip every box to its image, drop the boxes left without area (reversed ones
among them, but for the VOC and COCO readers', which swap them), and count them all in a
:class:`BoxAudit`, which they report in one warning when the dataset is opened, with the
first few boxes named. Training and evaluation then see only boxes inside their images.
"""

from __future__ import annotations

import warnings
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import torch
from torch import Tensor

from ..counted import counted
from .dataset import boxes_tensor, first_few

# A box's label: its class index in a dataset, its class name in ``explain``.
Label = TypeVar("Label")


@dataclass(frozen=True)
class LabelledBox:
    """A box as an annotation file gives it: where it is (``"a.jpg, region 2"``, as the
    warnings name it after the file), its class name and its corners ``x1, y1, x2, y2``
    in pixels."""

    where: str
    label: str
    box: list[float]


@dataclass
class BoxAudit:
    """The boxes of one dataset that were clipped or dropped, each named by where it is.

    Attributes:
        clipped: per box clipped to its image and kept, where it is (e.g.
            ``"Annotations/a.xml object 2 [-3, 0, 700, 90] on 640x480"``).
        dropped: per box left out, where it is and why.
        swapped: per box kept with its reversed corners swapped, where it is.
    """

    clipped: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    swapped: list[str] = field(default_factory=list)

    def clip(
        self,
        box: list[float],
        width: float,
        height: float,
        where: str,
        rounding: float = 0.0,
        frame: str | None = None,
        written: list[float] | None = None,
    ) -> list[float] | None:
        """``box`` (``x1, y1, x2, y2``) clipped to a ``width`` x ``height`` image, counted
        when that moved a corner by more than ``rounding`` (the format's own rounding,
        which only clipping undoes); ``None``, counted as dropped, when no area is left.
        Where the box is named, it is by ``written`` (its numbers as its file writes them)
        or else ``box``, and ``frame`` says what they are measured in (default
        ``on <width>x<height>``)."""
        # In float32, as the targets hold them: a box thinner than float32 can tell from
        # nothing has no area either. One array for the four (a COCO file has a million
        # boxes), and the box named only where it is counted.
        stored = array("f", box).tolist()
        limits = (width, height, width, height)
        clipped = [min(max(v, 0.0), limit) for v, limit in zip(stored, limits, strict=True)]
        if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
            shown = _shown(written or box, width, height, where, frame)
            self.dropped.append(f"{shown}: {_why_dropped(box, width, height)}")
            return None
        moved = clipped != stored  # most boxes are inside: one comparison of the lists
        if moved and any(abs(c - v) > rounding for c, v in zip(clipped, stored, strict=True)):
            self.clipped.append(_shown(written or box, width, height, where, frame))
        return clipped

    def clip_all(
        self, boxes: Iterable[tuple[str, list[float], Label]], size: tuple[int, int] | None
    ) -> tuple[list[list[float]], list[Label]]:
        """One image's ``(where, box, label)`` boxes clipped to its ``(height, width)``
        ``size`` by :meth:`clip` (kept as given where the size is unknown): the boxes
        kept and their labels."""
        kept: list[list[float]] = []
        labels: list[Label] = []
        for where, box, label in boxes:
            clipped = box if size is None else self.clip(box, size[1], size[0], where)
            if clipped is not None:
                kept.append(clipped)
                labels.append(label)
        return kept, labels

    def swap(
        self,
        box: list[float],
        width: float,
        height: float,
        where: str,
        frame: str | None = None,
        written: list[float] | None = None,
    ) -> None:
        """Count a box written with its corners reversed and read with them swapped, as
        ``box`` (``x1, y1, x2, y2`` on a ``width`` x ``height`` image; ``frame`` and
        ``written`` as in :meth:`clip`)."""
        self.swapped.append(_shown(written or box, width, height, where, frame))

    def drop(self, where: str, reason: str) -> None:
        """Count a box left out for ``reason``."""
        self.dropped.append(f"{where}: {reason}")

    def summary(self, shown: int = 3) -> str:
        """One line: how many boxes were swapped, clipped and dropped, the first ``shown``
        of each; empty when none was."""
        parts = []
        for count_of, verb in (
            (self.swapped, "with reversed corners swapped"),
            (self.clipped, "clipped to the image"),
            (self.dropped, "dropped"),
        ):
            if count_of:
                examples = first_few(count_of, shown, separator="; ")
                parts.append(f"{counted(len(count_of), 'box')} {verb} ({examples})")
        return "; ".join(parts)

    def warn(self, source: str) -> None:
        """Warn about the boxes clipped and dropped in the dataset ``source``, if any."""
        summary = self.summary()
        if summary:
            warnings.warn(f"{source}: {summary}", stacklevel=3)


def audited_targets(
    boxes: Iterable[Iterable[tuple[str, list[float], int]]],
    sizes: Sequence[tuple[int, int] | None],
    source: str,
) -> tuple[BoxAudit, list[Tensor], list[Tensor]]:
    """The targets of a reader that reads every box on opening: per image, its ``(where,
    box, label)`` boxes clipped to its ``(height, width)`` in ``sizes``
    (:meth:`BoxAudit.clip_all`). Returns the audit, warned about naming ``source``, and
    per image its boxes ``float32[N, 4]`` and labels ``int64[N]``."""
    audit = BoxAudit()
    kept = [audit.clip_all(image, size) for image, size in zip(boxes, sizes, strict=True)]
    audit.warn(source)
    labels = [torch.tensor(image_labels, dtype=torch.int64) for _, image_labels in kept]
    return audit, [boxes_tensor(image_boxes) for image_boxes, _ in kept], labels


def _shown(box: list[float], width: float, height: float, where: str, frame: str | None) -> str:
    """How a clipped or dropped box is named: where it is, its corners as given and what
    they are measured in (``a.xml object 2 [-3, 0, 700, 90] on 640x480``)."""
    corners = ", ".join(f"{v:g}" for v in box)
    return f"{where} [{corners}] {frame or f'on {width:g}x{height:g}'}"


def _why_dropped(box: list[float], width: float, height: float) -> str:
    x1, y1, x2, y2 = box
    if x2 < x1 or y2 < y1:
        return "corners reversed"
    return "outside the image" if _outside(box, width, height) else "no area"


def _outside(box: list[float], width: float, height: float) -> bool:
    x1, y1, x2, y2 = box
    return x1 >= width or y1 >= height or x2 <= 0 or y2 <= 0
