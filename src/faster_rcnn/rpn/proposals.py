"""From dense RPN predictions to a short list of proposals per image."""

from __future__ import annotations

import torch
from torch import Tensor

from ..ops.boxes import clip_boxes_to_image, remove_small_boxes
from ..ops.nms import batched_nms


def top_n_per_level(objectness: Tensor, num_anchors_per_level: list[int], top_n: int) -> Tensor:
    """Indices of the ``top_n`` highest-scoring anchors of every level, per image.

    Args:
        objectness: ``(N, sum_l A_l)`` scores, levels one after another.
        num_anchors_per_level: ``A_l``, anchors of each level per image.
        top_n: kept per level (all of a level's anchors when it has fewer).

    Returns:
        ``(N, sum_l min(top_n, A_l))`` int64 indices into ``objectness``'s second dim,
        level by level, each level's by decreasing score.
    """
    indices = []
    offset = 0
    for level_objectness in objectness.split(num_anchors_per_level, dim=1):
        num_anchors = level_objectness.shape[1]
        _, level_indices = level_objectness.topk(min(top_n, num_anchors), dim=1)
        indices.append(level_indices + offset)
        offset += num_anchors
    return torch.cat(indices, dim=1)


def select_proposals(
    proposals: Tensor,
    objectness: Tensor,
    image_sizes: list[tuple[int, int]],
    num_anchors_per_level: list[int],
    pre_nms_top_n: int,
    post_nms_top_n: int,
    nms_thresh: float,
    score_thresh: float,
    min_size: float,
) -> tuple[list[Tensor], list[Tensor]]:
    """The paper's proposal selection, as torchvision's ``filter_proposals``.

    Per image: keep the ``pre_nms_top_n`` best-scoring boxes of each level, clip them to
    the image, drop boxes with a side below ``min_size`` and those whose objectness
    probability is below ``score_thresh``, run NMS at ``nms_thresh`` independently per
    level, and keep the ``post_nms_top_n`` best. Every choice (top-K, size, score, NMS) is
    made on detached values and not differentiated; the kept boxes are indexed out of
    ``proposals``, so they carry its gradient when it has one (clipping passes none for
    a coordinate clipped to the border).

    Args:
        proposals: ``(N, sum_l A_l, 4)`` decoded boxes, in the order of the anchors.
        objectness: ``(N * sum_l A_l,)`` or ``(N, sum_l A_l)`` logits, same order.
        image_sizes: per image, its own ``(height, width)`` (boxes are clipped to it).
        num_anchors_per_level: ``A_l = H_l * W_l * anchors per location``, per image.
        pre_nms_top_n: boxes kept per level before NMS.
        post_nms_top_n: proposals kept per image after NMS.
        nms_thresh: NMS IoU threshold.
        score_thresh: minimum objectness probability.
        min_size: minimum box side in pixels.

    Returns:
        Per image, ``(P_i, 4)`` proposals and ``(P_i,)`` objectness probabilities, by
        decreasing probability, ``P_i <= post_nms_top_n``.
    """
    objectness = objectness.detach().reshape(proposals.shape[0], -1)
    proposals, logits, levels = _best_per_level(
        proposals, objectness, num_anchors_per_level, pre_nms_top_n
    )
    final_boxes, final_scores = [], []
    for boxes, scores, image_levels, image_size in zip(
        proposals, torch.sigmoid(logits), levels, image_sizes, strict=True
    ):
        boxes, scores = _image_proposals(
            boxes,
            scores,
            image_levels,
            image_size,
            post_nms_top_n,
            nms_thresh,
            score_thresh,
            min_size,
        )
        final_boxes.append(boxes)
        final_scores.append(scores)
    return final_boxes, final_scores


def _best_per_level(
    proposals: Tensor, objectness: Tensor, num_anchors_per_level: list[int], top_n: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Each image's ``top_n`` best-scoring boxes of every level (:func:`top_n_per_level`).

    Args:
        proposals: ``(N, sum_l A_l, 4)`` decoded boxes, in the order of the anchors.
        objectness: ``(N, sum_l A_l)`` detached logits, same order.
        num_anchors_per_level: ``A_l``, anchors of each level per image.
        top_n: kept per level.

    Returns:
        ``(N, K, 4)`` boxes, ``(N, K)`` logits and ``(N, K)`` int64 levels of the kept,
        ``K = sum_l min(top_n, A_l)``, level by level, each level's by decreasing score.
    """
    levels = _anchor_levels(num_anchors_per_level, proposals.device).reshape(1, -1)
    levels = levels.expand_as(objectness)
    top_n_idx = top_n_per_level(objectness, num_anchors_per_level, top_n)
    batch_idx = torch.arange(proposals.shape[0], device=proposals.device)[:, None]
    return (
        proposals[batch_idx, top_n_idx],
        objectness[batch_idx, top_n_idx],
        levels[batch_idx, top_n_idx],
    )


def _anchor_levels(num_anchors_per_level: list[int], device: torch.device) -> Tensor:
    """``(sum_l A_l,)`` int64: the feature level of each anchor of an image."""
    return torch.cat(
        [
            torch.full((n,), level, dtype=torch.int64, device=device)
            for level, n in enumerate(num_anchors_per_level)
        ]
    )


def _image_proposals(
    boxes: Tensor,
    scores: Tensor,
    levels: Tensor,
    image_size: tuple[int, int],
    post_nms_top_n: int,
    nms_thresh: float,
    score_thresh: float,
    min_size: float,
) -> tuple[Tensor, Tensor]:
    """One image's proposals among its best boxes of every level.

    Args:
        boxes: ``(K, 4)`` decoded boxes.
        scores: ``(K,)`` objectness probabilities.
        levels: ``(K,)`` feature level of each box; NMS runs per level.
        image_size: ``(height, width)`` the boxes are clipped to.
        post_nms_top_n / nms_thresh / score_thresh / min_size: as for
            :func:`select_proposals`.

    Returns:
        ``(P, 4)`` proposals and ``(P,)`` probabilities, by decreasing probability.
    """
    boxes = clip_boxes_to_image(boxes, image_size)
    keep = remove_small_boxes(boxes.detach(), min_size)
    boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
    # >= as torchvision: score_thresh = 0 keeps everything.
    keep = torch.where(scores >= score_thresh)[0]
    boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
    keep = batched_nms(boxes.detach(), scores, levels, nms_thresh, max_kept=post_nms_top_n)
    return boxes[keep], scores[keep]
