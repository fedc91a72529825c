"""Proposal recall: how many ground truth boxes the RPN's top proposals cover.

For each limit k, an image's k highest-scoring proposals are assigned to its ground
truth boxes one to one, greedily, as detectron2's ``_evaluate_box_proposals`` does
(after Hosang et al., "What makes for effective detection proposals?"): repeatedly take
the remaining (proposal, box) pair of highest IoU, record that IoU as the box's coverage
and remove both. A box is recalled at threshold t when its coverage is >= t, so a
proposal counts for one box only. Average recall AR@k is the mean recall over the IoU
thresholds 0.50, 0.55, ..., 0.95.

Crowd (``"iscrowd"``) and ``"difficult"`` ground truth boxes are left out. Unlike
detectron2, an image without a single proposal still counts its boxes (as missed).
IoUs are computed in float64, so an IoU of exactly t passes threshold t.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ..ops.boxes import box_iou
from .inputs import box_flags, check_one_per_image, cpu_boxes, per_box, require_keys

# IoU thresholds of average recall: 0.50:0.05:0.95, each the double nearest its decimal.
AR_IOU_THRESHOLDS = tuple(k / 100 for k in range(50, 100, 5))


class ProposalRecallEvaluator:
    """Accumulates greedy proposal coverage of the ground truth, image by image.

    Args:
        limits: numbers of top-scoring proposals per image to evaluate.
        iou_thresholds: IoUs at which the recall is reported (AR is always computed).
    """

    def __init__(
        self,
        limits: Sequence[int] = (100, 300, 1000),
        iou_thresholds: Sequence[float] = (0.5, 0.7),
    ) -> None:
        if not limits or any(int(k) < 1 for k in limits):
            raise ValueError(f"limits must be positive proposal counts, got {tuple(limits)}")
        if any(not 0.0 < t <= 1.0 for t in iou_thresholds):
            raise ValueError(f"iou_thresholds must be in (0, 1], got {tuple(iou_thresholds)}")
        self.limits = tuple(int(k) for k in limits)
        self.iou_thresholds = tuple(float(t) for t in iou_thresholds)
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated so far."""
        # Per limit, per image: (G,) float64 IoU with which each box is covered.
        self._coverage: dict[int, list[Tensor]] = {k: [] for k in self.limits}
        self._num_images = 0

    def update(self, proposals: list[dict[str, Tensor]], targets: list[dict[str, Tensor]]) -> None:
        """Add a batch of images.

        Args:
            proposals: per image ``{"boxes": (P, 4), "scores": (P,)}``, in any order.
            targets: per image ``{"boxes": (N, 4)}``, optionally ``"iscrowd": bool (N,)``
                and ``"difficult": bool (N,)`` marking boxes to leave out.
        """
        check_one_per_image(proposals, targets, "proposal sets")
        for proposal, target in zip(proposals, targets, strict=True):
            image = self._num_images
            boxes = _ranked_proposals(proposal, image, max(self.limits))
            gt_boxes = _countable_ground_truth(target, image)
            iou = box_iou(boxes.to(torch.float64), gt_boxes.to(torch.float64))
            for k in self.limits:
                self._coverage[k].append(greedy_coverage(iou[:k]))
            self._num_images += 1

    def compute(self) -> dict[str, float]:
        """Recall per limit and threshold, and AR per limit.

        Returns:
            ``"recall@{k}@{t}"`` for each limit and threshold (``"recall@300@0.7"``),
            ``"AR@{k}"`` per limit, and ``"num_gt"``, the number of boxes counted. The
            recalls are NaN when there is no box.
        """
        result: dict[str, float] = {}
        for k in self.limits:
            coverage = self._all_coverage(k)
            for t in self.iou_thresholds:
                result[f"recall@{k}@{t:g}"] = _recall(coverage, t)
            recalls = [_recall(coverage, t) for t in AR_IOU_THRESHOLDS]
            result[f"AR@{k}"] = sum(recalls) / len(recalls)
        result["num_gt"] = float(self._all_coverage(self.limits[0]).numel())
        return result

    def curves(
        self, iou_thresholds: Sequence[float] | None = None
    ) -> dict[int, tuple[Tensor, Tensor]]:
        """Recall as a function of the IoU threshold, per limit, for plotting.

        Args:
            iou_thresholds: where to sample the curve; default 0.50, 0.51, ..., 1.00.

        Returns:
            limit -> ``(thresholds (T,), recall (T,))``, float64; recall NaN without boxes.
        """
        if iou_thresholds is None:
            thresholds = torch.arange(50, 101, dtype=torch.float64) / 100
        else:
            thresholds = torch.as_tensor(iou_thresholds, dtype=torch.float64)
        curves: dict[int, tuple[Tensor, Tensor]] = {}
        for k in self.limits:
            coverage = self._all_coverage(k)
            if coverage.numel() == 0:
                recall = torch.full_like(thresholds, math.nan)
            else:
                recall = (coverage[None, :] >= thresholds[:, None]).to(torch.float64).mean(dim=1)
            curves[k] = (thresholds, recall)
        return curves

    def _all_coverage(self, limit: int) -> Tensor:
        parts = self._coverage[limit]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)


def greedy_coverage(iou: Tensor) -> Tensor:
    """One-to-one greedy assignment of proposals to ground truth boxes.

    Repeatedly takes the remaining pair of highest IoU (ties: the first box, then the
    first proposal) and removes its proposal and box, ``min(P, G)`` times.

    Args:
        iou: ``(P, G)`` IoU of proposals (rows) with ground truth boxes (columns).

    Returns:
        ``(G,)`` the IoU with which each box was covered; 0 for a box left without a
        proposal.
    """
    num_proposals, num_gt = iou.shape
    coverage = iou.new_zeros(num_gt)
    remaining = iou.clone()
    for _ in range(min(num_proposals, num_gt)):
        best_iou, best_proposal = remaining.max(dim=0)
        gt_iou, gt = best_iou.max(dim=0)
        coverage[gt] = gt_iou
        remaining[best_proposal[gt], :] = -1.0
        remaining[:, gt] = -1.0
    return coverage


def _recall(coverage: Tensor, threshold: float) -> float:
    if coverage.numel() == 0:
        return math.nan
    return float((coverage >= threshold).to(torch.float64).mean())


def _ranked_proposals(proposal: dict[str, Tensor], image: int, limit: int) -> Tensor:
    """The image's top ``limit`` proposal boxes by score, ``(min(P, limit), 4)``."""
    require_keys(proposal, ("boxes", "scores"), image, "proposal set")
    boxes = cpu_boxes(proposal["boxes"], image, "proposal")
    scores = per_box(proposal["scores"], "scores", boxes.shape[0], image, "proposal")
    order = torch.sort(scores, descending=True, stable=True).indices[:limit]
    return boxes[order]


def _countable_ground_truth(target: dict[str, Tensor], image: int) -> Tensor:
    """The image's ground truth boxes that are neither crowd nor difficult, ``(G, 4)``."""
    require_keys(target, ("boxes",), image, "target")
    boxes = cpu_boxes(target["boxes"], image, "ground truth")
    num = boxes.shape[0]
    left_out = box_flags(target, "iscrowd", num, image) | box_flags(target, "difficult", num, image)
    return boxes[~left_out]
