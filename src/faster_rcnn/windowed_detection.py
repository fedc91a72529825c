"""Detection in overlapping windows at the model's scale: each window detected alone, merged.

The model resizes each image as its own eval call does (shorter side ``min_size[-1]``,
longer at most ``max_size``); the resized image is then cut into overlapping windows of
about the size the model trained on (``train --train-window``), and each window goes
through the backbone, the RPN and the head by itself. Its proposal limits are the
model's times the window's share of the image's pixels, but no fewer than a preset's
1000 (:func:`window_proposal_limit`): a model whose limits were raised for a whole
crowded image (8,200 for 543 objects) gave each of 12 windows all 8,200, 12 times the
whole image's RoIs, while a model with a preset's limits gives every window the
proposals a whole image of its size would, where the whole-image pass shares them among
all its objects. The network's memory is a window's however large the image is (the
resized image itself is held whole). This is how SAHI and the DOTA tools detect in large
images.

Each window's candidates (every box and class above the score threshold, before NMS) are
moved by the window's place onto the resized image. A candidate that touches an inner
edge of its window (one that is not the image's) and is no longer along that axis than
the window's overlap with its neighbour there is dropped: the neighbour holds that
object whole, so this is a cut copy of it. The rest are pooled and the head's own
per-class NMS (or Soft-NMS) and detection limit select the detections among them, as
they would among one window's. An image the window holds whole is one window: its
detections are the model's own, bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import pairwise

import torch
from torch import Tensor

from .image_list import ImageList
from .model import FasterRCNN
from .roi_heads import RoIHeads
from .rpn import RegionProposalNetwork
from .stand_in_detector import StandInDetector
from .transform import window_size
from .validation import rgb_image_list, validate_image_sizes, validate_images

# The share of a window its neighbours overlap by at least, by default (SAHI's is 0.2):
# an object up to a quarter of a window's side then lies whole in some window.
DEFAULT_OVERLAP = 0.25

# How near (px) a box's side must come to an inner window edge to count as cut there.
EDGE_MARGIN = 1.0

# A window's proposal limits are scaled down to no fewer than this (the presets' and
# torchvision's 1000), nor to more than the model's own.
WINDOW_PROPOSALS_FLOOR = 1000


class WindowedDetection(StandInDetector):
    """A detector that runs ``model`` on overlapping windows of each resized image and
    merges them.

    Args:
        model: the detector (plain or :func:`~faster_rcnn.fast_inference.
            optimize_for_inference`'d); left unchanged.
        window: ``(height, width)`` of a window in resized-image pixels, turned to each
            image's orientation and cut to it (:func:`~faster_rcnn.transform.window_size`).
        overlap: the share of a window's side its neighbours overlap by at least, in
            ``[0, 1)``.

    ``detector(images)`` and :meth:`detect_with_proposals` answer as the model's own
    eval-mode calls do (:class:`~faster_rcnn.stand_in_detector.StandInDetector`), and
    :meth:`candidates_with_proposals` and :attr:`roi_heads` as the model's, so it stands
    in for the model in :class:`~faster_rcnn.test_time_flips.TestTimeFlips` too (flips
    outside, windows inside).
    """

    def __init__(
        self, model: FasterRCNN, window: tuple[int, int], overlap: float = DEFAULT_OVERLAP
    ) -> None:
        if len(window) != 2 or min(window) < 1:
            raise ValueError(f"a window is two positive sides (height, width), got {window!r}")
        if not 0 <= overlap < 1:
            raise ValueError(f"the windows' overlap must be in [0, 1), got {overlap!r}")
        self.model = model
        self.window = (int(window[0]), int(window[1]))
        self.overlap = overlap

    def describe(self) -> str:
        """One line: the windows, the resize they are cut from and how they are merged."""
        height, width = self.window
        transform = self.model.transform
        return (
            f"windows of {height} x {width} at the model's scale (overlap "
            f"{self.overlap:.0%}): each image resized to {transform.min_size[-1]} px (longer "
            f"side at most {transform.max_size}), each window detected alone, the boxes cut "
            "at an inner window edge dropped, the rest pooled and selected by the model's "
            "own NMS"
        )

    @property
    def proposals_per_image(self) -> None:
        """None: the detections use each window's proposals, however many windows an
        image has."""
        return None

    @property
    def roi_heads(self) -> RoIHeads:
        """The model's head, whose ``select`` keeps the detections among candidates."""
        return self.model.roi_heads

    @torch.no_grad()
    def detect_with_proposals(
        self, images: list[Tensor], proposal_limit: int | None = None
    ) -> tuple[list[dict[str, Tensor]], list[dict[str, Tensor]]]:
        """The merged detections and every window's proposals (as
        :meth:`FasterRCNN.detect_with_proposals`, whose arguments these are; the limit
        holds per window). The proposals are pooled by decreasing score, not NMS'd
        across windows: an object in two windows has the proposals of both."""
        return self._detect(images, proposal_limit, before_nms=False)

    @torch.no_grad()
    def candidates_with_proposals(
        self, images: list[Tensor], proposal_limit: int | None = None
    ) -> tuple[list[dict[str, Tensor]], list[dict[str, Tensor]]]:
        """As :meth:`detect_with_proposals`, but the pooled candidates (cut copies
        dropped) in place of the detections, before the head's NMS and limit, as
        :meth:`FasterRCNN.candidates_with_proposals` gives them."""
        return self._detect(images, proposal_limit, before_nms=True)

    def _detect(
        self, images: list[Tensor], proposal_limit: int | None, before_nms: bool
    ) -> tuple[list[dict[str, Tensor]], list[dict[str, Tensor]]]:
        """Per image, one at a time: the merged detections (or candidates) and the
        proposals, in the image's pixels."""
        transform = self.model.transform
        # Checked as one batch first, so that an error names the image's place in it.
        images = rgb_image_list(images)
        validate_images(images)
        validate_image_sizes(images, transform.min_size, transform.max_size)
        found, proposals = [], []
        for image in images:
            batch = self.model.prepare_batch([image])
            candidates, image_proposals = self._windows_detected(batch.images, proposal_limit)
            merged = candidates if before_nms else self.model.roi_heads.select(candidates)
            sizes, original = batch.images.image_sizes, batch.original_sizes
            found += transform.postprocess([merged], sizes, original)
            proposals += transform.postprocess([image_proposals], sizes, original)
        return found, proposals

    def _windows_detected(
        self, prepared: ImageList, proposal_limit: int | None
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """One prepared image's candidates, pooled over its windows with the cut copies
        dropped, and its windows' proposals by decreasing score, both in resized-image
        pixels."""
        (size,) = prepared.image_sizes
        window = window_size(size, self.window)
        rows, columns = (
            _neighbour_overlaps(window_origins(length, side, self.overlap), side)
            for length, side in zip(size, window, strict=True)
        )
        pooled, proposals = [], []
        with _window_proposal_limits(self.model.rpn, window[0] * window[1], size[0] * size[1]):
            for top, above, below in rows:
                for left, before, after in columns:
                    crop = prepared.tensors[0, :, top : top + window[0], left : left + window[1]]
                    cut = ImageList(self.model.transform.batch([crop]), [window])
                    (found,), (proposed,) = self.model.detect_prepared(
                        cut, proposal_limit, before_nms=True
                    )
                    inner = (before, above, after, below)
                    dropped = cut_at_inner_edges(found["boxes"], window, inner)
                    kept = {key: value[~dropped] for key, value in found.items()}
                    pooled.append({**kept, "boxes": _moved(kept["boxes"], top, left)})
                    proposals.append({**proposed, "boxes": _moved(proposed["boxes"], top, left)})
        merged = _joined(proposals)
        order = merged["scores"].argsort(descending=True, stable=True)
        return _joined(pooled), {key: value[order] for key, value in merged.items()}


def window_proposal_limit(limit: int, window_pixels: int, image_pixels: int) -> int:
    """A window's test-time proposal limit (per level before the RPN's NMS, or per image
    after it): the model's ``limit`` for the whole image times the window's share of the
    image's pixels, rounded up to hundreds, at least :data:`WINDOW_PROPOSALS_FLOOR` and at
    most ``limit``."""
    # In integers: a share in floating point can land an ulp above a whole hundred
    # (20000 x 1341^2 / 1490^2 is 16200, and was rounded up to 16300).
    scaled = -(-limit * window_pixels // (image_pixels * 100)) * 100
    return min(limit, max(WINDOW_PROPOSALS_FLOOR, scaled))


@contextmanager
def _window_proposal_limits(
    rpn: RegionProposalNetwork, window_pixels: int, image_pixels: int
) -> Iterator[None]:
    """The RPN's test-time limits scaled to a window of ``window_pixels`` of the image's
    ``image_pixels`` (:func:`window_proposal_limit`) inside the block, its own again after
    it."""
    limits = (rpn._pre_nms_top_n, rpn._post_nms_top_n)
    own = [mode_limits["testing"] for mode_limits in limits]
    for mode_limits, limit in zip(limits, own, strict=True):
        mode_limits["testing"] = window_proposal_limit(limit, window_pixels, image_pixels)
    try:
        yield
    finally:
        for mode_limits, limit in zip(limits, own, strict=True):
            mode_limits["testing"] = limit


def window_origins(length: int, window: int, overlap: float) -> list[int]:
    """Where the windows of side ``window`` start along an axis of ``length`` px: the
    fewest whose neighbours overlap by at least ``overlap`` of ``window`` (steps of at
    least 1 px), spread evenly from 0 to ``length - window``, floored to whole pixels
    (which only shortens a step). One at 0 where a window holds the axis whole."""
    if length <= window:
        return [0]
    step = max(1, math.floor(window * (1 - overlap)))
    count = math.ceil((length - window) / step) + 1
    return [i * (length - window) // (count - 1) for i in range(count)]


def cut_at_inner_edges(
    boxes: Tensor, window: Sequence[int], inner: Sequence[float | None]
) -> Tensor:
    """Which of a window's ``(N, 4)`` boxes (window pixels) are cut copies: each touches
    (within :data:`EDGE_MARGIN` px) a window edge that is not the image's and is no
    longer along that axis than the window's overlap with its neighbour there.

    Args:
        boxes: ``(N, 4)`` as ``x1, y1, x2, y2`` in the window's pixels.
        window: ``(height, width)`` of the window.
        inner: per edge (left, top, right, bottom), the overlap in px with the
            neighbouring window there, ``None`` where the edge is the image's.

    Returns:
        ``(N,)`` bool, True for a box to drop.
    """
    height, width = window
    x1, y1, x2, y2 = boxes.unbind(1)
    widths, heights = x2 - x1, y2 - y1
    touches = (x1 <= EDGE_MARGIN, y1 <= EDGE_MARGIN)
    touches += (x2 >= width - EDGE_MARGIN, y2 >= height - EDGE_MARGIN)
    cut = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    for touching, extent, overlap in zip(touches, (widths, heights) * 2, inner, strict=True):
        if overlap is not None:
            cut |= touching & (extent <= overlap)
    return cut


def _neighbour_overlaps(origins: list[int], side: int) -> list[tuple[int, int | None, int | None]]:
    """Per window along an axis (starting at ``origins``, ``side`` px long): its origin
    and its overlap in px with the window before it and with the one after it, ``None``
    where its edge is the image's."""
    before = [None, *(a + side - b for a, b in pairwise(origins))]
    after = [*before[1:], None]
    return list(zip(origins, before, after, strict=True))


def _moved(boxes: Tensor, top: int, left: int) -> Tensor:
    """``(N, 4)`` boxes of the window at ``(top, left)`` in the resized image's pixels."""
    return boxes + boxes.new_tensor([left, top, left, top])


def _joined(found: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """One image's candidates (or proposals) from every window, as one set."""
    return {key: torch.cat([f[key] for f in found]) for key in found[0]}
