"""Test-time augmentation by flips: detect each image as it is and mirrored, and merge.

Every view (the image, and its left-right, top-bottom or both mirrors) goes through the
whole detector. Each view's candidates (every box and class above the score threshold,
before NMS) are mirrored back onto the image and pooled, and the head's own per-class NMS
(or Soft-NMS) and detection limit select the detections among them, as they would among
one view's: an object found in several views is kept once, at its best view's score,
and one that only a mirror finds is kept too. This is how detectron2 merges its
augmented views (NMS over the union), with the candidates taken before NMS so that a
Soft-NMS head lowers each score once.

A view costs a whole detection: two views take twice as long. Detections still come
from one model; its RPN proposals (for drawing and proposal recall) are the unflipped
view's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .data.augment import flip_boxes, flip_image
from .model import FasterRCNN
from .stand_in_detector import StandInDetector
from .windowed_detection import WindowedDetection

# The views each choice runs: per view, the directions it mirrors the image in.
TEST_TIME_FLIPS: dict[str, tuple[tuple[str, ...], ...]] = {
    "horizontal": ((), ("horizontal",)),
    "vertical": ((), ("vertical",)),
    "both": ((), ("horizontal",), ("vertical",), ("horizontal", "vertical")),
}


class TestTimeFlips(StandInDetector):
    """A detector that runs ``model`` on flipped copies of each image and merges them.

    Args:
        model: the detector (plain or :func:`~faster_rcnn.fast_inference.
            optimize_for_inference`'d, or detecting in windows: :class:`~faster_rcnn.
            windowed_detection.WindowedDetection`); left unchanged.
        flips: ``"horizontal"`` (the image and its left-right mirror, 2 views),
            ``"vertical"`` (top-bottom, 2 views) or ``"both"`` (4 views: as is, each
            mirror and both, which is a half turn).

    ``detector(images)`` and :meth:`detect_with_proposals` answer as the model's own
    eval-mode calls do (:class:`~faster_rcnn.stand_in_detector.StandInDetector`).
    """

    __test__ = False  # a name pytest would otherwise collect

    def __init__(self, model: FasterRCNN | WindowedDetection, flips: str = "horizontal") -> None:
        if flips not in TEST_TIME_FLIPS:
            raise ValueError(
                f"test-time flips must be one of {list(TEST_TIME_FLIPS)}, got {flips!r}"
            )
        self.model = model
        self.flips = flips
        self.views = TEST_TIME_FLIPS[flips]

    def describe(self) -> str:
        """One line: the views run and how they are merged."""
        names = {(): "as it is", ("horizontal",): "mirrored left-right"}
        names |= {("vertical",): "mirrored top-bottom", ("horizontal", "vertical"): "turned half"}
        views = ", ".join(names[view] for view in self.views)
        return (
            f"test-time flips ({self.flips}): each image detected {len(self.views)} times "
            f"({views}), the boxes pooled and selected by the model's own NMS"
        )

    @torch.no_grad()
    def detect_with_proposals(
        self, images: list[Tensor], proposal_limit: int | None = None
    ) -> tuple[list[dict[str, Tensor]], list[dict[str, Tensor]]]:
        """The merged detections and the unflipped view's proposals (as
        :meth:`FasterRCNN.detect_with_proposals`, whose arguments these are)."""
        pooled: list[list[dict[str, Tensor]]] = [[] for _ in images]  # per image, per view
        proposals: list[dict[str, Tensor]] = []
        for directions in self.views:
            mirrors = [_mirrored(image, directions) for image in images]
            limit = None if directions else proposal_limit
            candidates, view_proposals = self.model.candidates_with_proposals(mirrors, limit)
            if not directions:
                proposals = view_proposals
            for found, image, image_pool in zip(candidates, images, pooled, strict=True):
                boxes = _boxes_mirrored(found["boxes"], image.shape, directions)
                image_pool.append({**found, "boxes": boxes})
        detections = [self.model.roi_heads.select(_joined(found)) for found in pooled]
        return detections, proposals


def _mirrored(image: Tensor, directions: Sequence[str]) -> Tensor:
    """``(C, H, W)`` mirrored in each of ``directions``."""
    for direction in directions:
        image = flip_image(image, direction)
    return image


def _boxes_mirrored(boxes: Tensor, image_shape: Sequence[int], directions: Sequence[str]) -> Tensor:
    """``(N, 4)`` boxes of an image of ``image_shape`` mirrored in each of ``directions``:
    the mirror's boxes back on the image, mirroring being its own inverse."""
    for direction in directions:
        boxes = flip_boxes(boxes, image_shape, direction)
    return boxes


def _joined(candidates: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """One image's candidates from every view, as one set."""
    return {key: torch.cat([c[key] for c in candidates]) for key in candidates[0]}
