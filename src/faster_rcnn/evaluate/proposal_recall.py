"""Proposal recall: how many ground truth boxes the RPN's top proposals cover.

For each limit k, an image's k highest-scoring proposals are assigned to its ground
truth boxes one to one, greedily, as detectron2's ``_evaluate_box_proposals`` does
(after Hosang et al., "What makes for effective detection proposals?"): repeatedly take
the remaining (proposal, box) pair of highest IoU, record that IoU as the box's coverage
and remove both. A box is recalled at threshold t when its coverage is >= t, so a
proposal counts for one box only. Average recall AR@k is the mean recall over the IoU
thresholds 0.50, 0.55, ..., 0.95.

Recall is also kept per object size, with COCO's area edges (32², 96²) measured on the
ground truth box as given (in the input image's pixels), and for the numbers of proposals
of :data:`CURVE_LIMITS`, for the recall-against-proposals curve. A limit is only
*measured* when some image had more proposals than the next smaller limit: otherwise its
figures repeat that limit's (:meth:`RecallCurves.measured`).

Crowd (``"iscrowd"``) and ``"difficult"`` ground truth boxes are left out. Unlike
detectron2, an image without a single proposal still counts its boxes (as missed).
IoUs are computed in float64, so an IoU of exactly t passes threshold t.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..ops.boxes import box_iou
from .inputs import box_flags, check_one_per_image, cpu_boxes, per_box, require_keys

# IoU thresholds of average recall: 0.50:0.05:0.95, each the double nearest its decimal.
AR_IOU_THRESHOLDS = tuple(k / 100 for k in range(50, 100, 5))
# Numbers of proposals per image of the recall-against-proposals curve (with the limits,
# up to the largest).
CURVE_LIMITS = (1, 2, 5, 10, 20, 50, 100, 200, 300, 500, 1000)
# The proposals per image whose recall is reported (recall@K, AR@K).
RECALL_LIMITS = (100, 300, 1000)
# COCO's object sizes: ground truth box area in pixels, [low, high).
SIZE_GROUPS = {
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, math.inf),
}


@dataclass(frozen=True)
class RecallCurves:
    """The numbers behind the recall plots, as :meth:`ProposalRecallEvaluator.recall_curves`
    gives them.

    Attributes:
        limits: the evaluated proposal limits, increasing.
        iou_thresholds: the evaluator's IoU thresholds (0.5, 0.7).
        iou_grid: ``(T,)`` thresholds of ``recall_vs_iou``, 0.50, 0.51, ..., 1.00.
        recall_vs_iou: limit -> ``(T,)`` recall at each threshold of ``iou_grid``.
        proposal_counts: ``(K,)`` increasing numbers of proposals per image.
        recall_vs_proposals: each of ``iou_thresholds`` -> ``(K,)`` recall.
        figures: :meth:`ProposalRecallEvaluator.compute`'s result.
    """

    limits: tuple[int, ...]
    iou_thresholds: tuple[float, ...]
    iou_grid: tuple[float, ...]
    recall_vs_iou: dict[int, tuple[float, ...]]
    proposal_counts: tuple[int, ...]
    recall_vs_proposals: dict[float, tuple[float, ...]]
    figures: dict[str, float]

    @property
    def num_gt(self) -> int:
        """The number of ground truth boxes counted."""
        return int(self.figures["num_gt"])

    @property
    def max_proposals(self) -> int:
        """The most proposals any image had (up to the largest limit)."""
        return int(self.figures["proposals_per_image/max"])

    def measured(self, counts: Sequence[int]) -> tuple[int, ...]:
        """The increasing ``counts`` that were measured: the first, and each whose next
        smaller count some image exceeded (the others repeat that one's figures)."""
        return tuple(
            k for i, k in enumerate(counts) if i == 0 or counts[i - 1] < self.max_proposals
        )

    def not_measured(self) -> tuple[int, ...]:
        """The limits not measured: no image had more proposals than the next smaller."""
        measured = self.measured(self.limits)
        return tuple(k for k in self.limits if k not in measured)

    def size_counts(self) -> dict[str, int]:
        """The number of ground truth boxes of each size group."""
        return {size: int(self.figures[f"num_gt/{size}"]) for size in SIZE_GROUPS}

    def by_size(self, limit: int, threshold: float) -> dict[str, float]:
        """Recall per size group (``"small"``, ...) at ``limit`` and ``threshold``."""
        return {size: self.figures[f"recall@{limit}@{threshold:g}/{size}"] for size in SIZE_GROUPS}


class ProposalRecallEvaluator:
    """Accumulates greedy proposal coverage of the ground truth, image by image.

    Args:
        limits: numbers of top-scoring proposals per image to evaluate.
        iou_thresholds: IoUs at which the recall is reported (AR is always computed).
    """

    def __init__(
        self,
        limits: Sequence[int] = RECALL_LIMITS,
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
        largest = max(self.limits)
        counts = {*self.limits, *(k for k in CURVE_LIMITS if k < largest)}
        # Per number of proposals, per image: (G,) float64 IoU covering each box.
        self._coverage: dict[int, list[Tensor]] = {k: [] for k in sorted(counts)}
        self._areas: list[Tensor] = []  # per image: (G,) float64 box areas
        self._num_proposals: list[int] = []  # per image, up to the largest limit

    def update(self, proposals: list[dict[str, Tensor]], targets: list[dict[str, Tensor]]) -> None:
        """Add a batch of images.

        Args:
            proposals: per image ``{"boxes": (P, 4), "scores": (P,)}``, in any order.
            targets: per image ``{"boxes": (N, 4)}``, optionally ``"iscrowd": bool (N,)``
                and ``"difficult": bool (N,)`` marking boxes to leave out.
        """
        check_one_per_image(proposals, targets, "proposal sets")
        for proposal, target in zip(proposals, targets, strict=True):
            image = len(self._num_proposals)
            boxes = _ranked_proposals(proposal, image, max(self.limits))
            gt_boxes = _countable_ground_truth(target, image).to(torch.float64)
            pairs = ranked_pairs(box_iou(boxes.to(torch.float64), gt_boxes))
            every = pairs.coverage(len(boxes))
            for k, coverage in self._coverage.items():
                coverage.append(every if k >= len(boxes) else pairs.coverage(k))
            self._areas.append((gt_boxes[:, 2:] - gt_boxes[:, :2]).prod(dim=1))
            self._num_proposals.append(len(boxes))

    def compute(self) -> dict[str, float]:
        """Recall per limit and threshold, AR per limit, the same per object size, and the
        number of proposals per image.

        Returns:
            ``"recall@{k}@{t}"`` for each limit and threshold (``"recall@300@0.7"``),
            ``"AR@{k}"`` per limit, ``"num_gt"`` (the boxes counted), per size group
            ``"recall@{k}@{t}/{size}"`` and ``"num_gt/{size}"`` (``size`` "small",
            "medium", "large"), and ``"proposals_per_image/mean"`` and ``"/max"`` (up to
            the largest limit; NaN and 0 without images). Recalls are NaN without boxes.
        """
        result: dict[str, float] = {}
        for k in self.limits:
            coverage = self._all_coverage(k)
            for t in self.iou_thresholds:
                result[f"recall@{k}@{t:g}"] = _recall(coverage, t)
            recalls = [_recall(coverage, t) for t in AR_IOU_THRESHOLDS]
            result[f"AR@{k}"] = sum(recalls) / len(recalls)
        result["num_gt"] = float(self._all_coverage(self.limits[0]).numel())
        result.update(self._by_size())
        counts = self._num_proposals
        result["proposals_per_image/mean"] = sum(counts) / len(counts) if counts else math.nan
        result["proposals_per_image/max"] = float(max(counts, default=0))
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
            curves[k] = (thresholds, _recall_curve(self._all_coverage(k), thresholds))
        return curves

    def recall_vs_proposals(self, iou_threshold: float) -> tuple[Tensor, Tensor]:
        """Recall at ``iou_threshold`` as a function of the number of proposals per image.

        Returns:
            ``(counts (K,) int64, recall (K,) float64)``: the limits and those of
            :data:`CURVE_LIMITS` below the largest limit, increasing; recall NaN without
            boxes.
        """
        counts = list(self._coverage)
        threshold = torch.tensor([iou_threshold], dtype=torch.float64)
        recall = [_recall_curve(self._all_coverage(k), threshold)[0] for k in counts]
        return torch.tensor(counts), torch.stack(recall)

    def recall_curves(self) -> RecallCurves:
        """Everything the recall plots show (see :mod:`faster_rcnn.evaluate.recall_plots`)."""
        by_iou = self.curves()
        thresholds = by_iou[self.limits[0]][0]
        by_count = {t: self.recall_vs_proposals(t) for t in self.iou_thresholds}
        return RecallCurves(
            limits=tuple(sorted(self.limits)),
            iou_thresholds=self.iou_thresholds,
            iou_grid=tuple(thresholds.tolist()),
            recall_vs_iou={k: tuple(recall.tolist()) for k, (_, recall) in by_iou.items()},
            proposal_counts=tuple(self._coverage),
            recall_vs_proposals={t: tuple(r.tolist()) for t, (_, r) in by_count.items()},
            figures=self.compute(),
        )

    def _by_size(self) -> dict[str, float]:
        """``"recall@{k}@{t}/{size}"`` and ``"num_gt/{size}"`` per size group."""
        areas = torch.cat(self._areas) if self._areas else torch.zeros(0, dtype=torch.float64)
        result: dict[str, float] = {}
        for size, (low, high) in SIZE_GROUPS.items():
            in_group = (areas >= low) & (areas < high)
            result[f"num_gt/{size}"] = float(in_group.sum())
            for k in self.limits:
                coverage = self._all_coverage(k)[in_group]
                for t in self.iou_thresholds:
                    result[f"recall@{k}@{t:g}/{size}"] = _recall(coverage, t)
        return result

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
    return ranked_pairs(iou).coverage(iou.shape[0])


@dataclass(frozen=True)
class RankedPairs:
    """The (proposal, box) pairs of an IoU matrix that overlap, in the order the greedy
    assignment takes them: IoU descending, then box, then proposal, ascending.

    A pair of IoU 0 covers its box with 0, as no pair does, so only the overlapping
    pairs are kept: an image's proposals overlap a few boxes each, and the assignment
    walks them once instead of searching the whole matrix for each box it covers.

    Attributes:
        proposal: ``(K,)`` int64 proposal (row) of each pair.
        box: ``(K,)`` int64 box (column) of each pair.
        iou: ``(K,)`` the pairs' IoU.
        num_boxes: ``G``, the matrix's columns.
    """

    proposal: Tensor
    box: Tensor
    iou: Tensor
    num_boxes: int

    def coverage(self, limit: int) -> Tensor:
        """``(G,)`` the IoU with which the greedy assignment of the first ``limit``
        proposals covers each box (0 for a box they leave uncovered)."""
        covered = self.iou.new_zeros(self.num_boxes)
        within = self.proposal < limit
        proposals, boxes = self.proposal[within].tolist(), self.box[within].tolist()
        ious = self.iou[within]
        proposal_taken, box_taken = set(), set()
        taken, chosen = [], []
        most = min(limit, self.num_boxes)
        for index, (proposal, box) in enumerate(zip(proposals, boxes, strict=True)):
            if len(taken) == most:
                break
            if proposal in proposal_taken or box in box_taken:
                continue
            proposal_taken.add(proposal)
            box_taken.add(box)
            taken.append(box)
            chosen.append(index)
        covered[taken] = ious[chosen]
        return covered


def ranked_pairs(iou: Tensor) -> RankedPairs:
    """The overlapping pairs of a ``(P, G)`` IoU matrix (proposals by boxes), ranked as
    the greedy assignment takes them (:class:`RankedPairs`)."""
    proposal, box = (iou > 0).nonzero(as_tuple=True)  # by proposal, then box
    values = iou[proposal, box]
    by_box = torch.sort(box, stable=True).indices
    proposal, box, values = proposal[by_box], box[by_box], values[by_box]
    by_iou = torch.sort(values, descending=True, stable=True).indices
    return RankedPairs(proposal[by_iou], box[by_iou], values[by_iou], iou.shape[1])


def _recall(coverage: Tensor, threshold: float) -> float:
    if coverage.numel() == 0:
        return math.nan
    return float((coverage >= threshold).to(torch.float64).mean())


def _recall_curve(coverage: Tensor, thresholds: Tensor) -> Tensor:
    """``(T,)`` share of the ``(G,)`` coverages at or above each of ``(T,)`` thresholds;
    NaN when ``G = 0``."""
    if coverage.numel() == 0:
        return torch.full_like(thresholds, math.nan)
    return (coverage[None, :] >= thresholds[:, None]).to(torch.float64).mean(dim=1)


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
