"""Gaussian Soft-NMS (Bodla et al., "Soft-NMS: Improving Object Detection With One Line of
Code", ICCV 2017).

Greedy NMS deletes every box that overlaps a higher-scoring box of its category beyond a
threshold, so of two objects that overlap that much only one can be found. Soft-NMS
lowers such a box's score instead, the more the closer the overlap: visiting boxes by
decreasing (lowered) score, each visited box multiplies the score of every box of its
category not yet visited by ``exp(-IoU^2 / sigma)``. A duplicate (IoU near 1) falls far
down the ranking; a neighbouring object's box (IoU 0.5) keeps 61 % of its score at the
paper's ``sigma = 0.5``, and is still found. A box whose score falls below the threshold
is dropped.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .boxes import box_iou

# Factors computed at once: a block of 2^20 float32 takes 4 MB, all of up to 1024 boxes'
# at once. All N x N up front took 5.3 of Soft-NMS's 5.5 s at 5000 boxes (1049 visited).
FACTOR_BLOCK_PAIRS = 1 << 20


def batched_soft_nms(
    boxes: Tensor, scores: Tensor, idxs: Tensor, sigma: float, score_threshold: float
) -> tuple[Tensor, Tensor]:
    """Gaussian Soft-NMS run independently within each category.

    Args:
        boxes: ``(N, 4)`` boxes.
        scores: ``(N,)`` scores.
        idxs: ``(N,)`` int64 category of each box; boxes of different categories never
            lower each other's scores.
        sigma: the Gaussian's width: a score is multiplied by ``exp(-IoU^2 / sigma)``.
        score_threshold: boxes whose score is, or falls, below this are dropped.

    Returns:
        ``(K,)`` int64 indices of the kept boxes and their ``(K,)`` lowered scores, by
        decreasing lowered score (over all categories); equal scores keep their index
        order.
    """
    if sigma <= 0:
        raise ValueError(f"Soft-NMS needs sigma > 0, not {sigma}")
    kept, kept_scores = [], []
    for category in idxs.unique():
        members = torch.where(idxs == category)[0]
        found, lowered = _soft_nms(boxes[members], scores[members], sigma, score_threshold)
        kept.append(members[found])
        kept_scores.append(lowered)
    if not kept:
        return idxs.new_empty((0,)), scores.new_empty((0,))
    kept_by_index, order = torch.cat(kept).sort()
    lowered = torch.cat(kept_scores)[order]
    by_score = torch.sort(lowered, descending=True, stable=True).indices
    return kept_by_index[by_score], lowered[by_score]


def _soft_nms(
    boxes: Tensor, scores: Tensor, sigma: float, score_threshold: float
) -> tuple[Tensor, Tensor]:
    """Soft-NMS of one category: the visited indices, in visiting order, and their scores."""
    boxes, scores = boxes.detach(), scores.detach()
    current = scores.masked_fill(scores < score_threshold, float("-inf"))
    # Every box is visited at most once: each box's factors are computed once, when it
    # is visited, a block of the likeliest next ones with it.
    factors: dict[int, Tensor] = {}
    block = max(1, FACTOR_BLOCK_PAIRS // boxes.shape[0])
    visited, visited_scores = [], []
    for _ in range(boxes.shape[0]):
        best = int(current.argmax())  # the first of equal scores: the lower index
        score = current[best].clone()
        if score == float("-inf"):
            break
        if best not in factors:
            factors.update(_factor_rows(boxes, current, best, block, sigma))
        visited.append(best)
        visited_scores.append(score)
        current[best] = float("-inf")
        current.mul_(factors.pop(best))
        current.masked_fill_(current < score_threshold, float("-inf"))
    if not visited:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device), scores.new_empty((0,))
    return torch.tensor(visited, device=boxes.device), torch.stack(visited_scores)


def _factor_rows(
    boxes: Tensor, current: Tensor, best: int, count: int, sigma: float
) -> dict[int, Tensor]:
    """The ``(N,)`` factors (:func:`soft_nms_factor`) of box ``best`` and of the
    ``count - 1`` boxes of the highest ``current`` scores, the next likely visited, by box."""
    rows = current.topk(min(count, len(current)) - 1).indices
    rows = torch.cat((rows.new_tensor([best]), rows))
    factors = soft_nms_factor(box_iou(boxes[rows], boxes), sigma, current.dtype)
    return dict(zip(rows.tolist(), factors.unbind(), strict=True))


def soft_nms_factor(iou: Tensor, sigma: float, dtype: torch.dtype) -> Tensor:
    """What Soft-NMS multiplies a score by at ``iou``: ``exp(-iou^2 / sigma)`` in
    ``dtype``, never 0, so that a dropped box's ``-inf`` stays ``-inf`` (not NaN)."""
    return torch.exp(-(iou**2) / sigma).to(dtype).clamp(min=torch.finfo(dtype).tiny)
