"""From the head's raw outputs to detections (torchvision's ``postprocess_detections``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..ops.boxes import BoxCoder, clip_boxes_to_image, remove_small_boxes
from ..ops.nms import batched_nms, batched_nms_per_category
from ..ops.soft_nms import batched_soft_nms


def postprocess_detections(
    class_logits: Tensor,
    box_regression: Tensor,
    proposals: list[Tensor],
    image_shapes: list[tuple[int, int]],
    box_coder: BoxCoder,
    score_thresh: float,
    nms_thresh: float,
    detections_per_img: int,
    min_box_size: float,
    class_nms_thresh: Sequence[float] = (),
    soft_nms_sigma: float = 0.0,
    soft_nms_min_score: float = 0.001,
) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
    """Turn every RoI into one candidate detection per class and keep the good ones.

    Per image: the candidates of :func:`detection_candidates`; NMS then runs separately
    per class (greedy, or Gaussian Soft-NMS, which lowers scores instead of removing
    boxes), and the ``detections_per_img`` highest-scoring survivors are returned.

    Args:
        class_logits / box_regression / proposals / image_shapes / box_coder /
            score_thresh / min_box_size: as for :func:`detection_candidates`.
        nms_thresh: per-class NMS IoU threshold.
        detections_per_img: most detections kept per image.
        class_nms_thresh: per class ``1..num_classes-1``, its own NMS IoU threshold in
            place of ``nms_thresh``; empty: ``nms_thresh`` for all.
        soft_nms_sigma: above 0, Gaussian Soft-NMS with this sigma instead of greedy NMS
            (the two thresholds above unused).
        soft_nms_min_score: Soft-NMS drops a detection whose lowered score falls below
            this.

    Returns:
        Per image, ``(D, 4)`` boxes, ``(D,)`` scores (lowered by Soft-NMS, with it) and
        ``(D,)`` int64 labels (``1..num_classes-1``), by decreasing score.
    """
    all_boxes, all_scores, all_labels = [], [], []
    candidates = detection_candidates(
        class_logits,
        box_regression,
        proposals,
        image_shapes,
        box_coder,
        score_thresh,
        min_box_size,
    )
    for boxes, scores, labels in candidates:
        keep, scores = best_after_nms(
            boxes,
            scores,
            labels,
            nms_thresh,
            class_nms_thresh,
            detections_per_img,
            soft_nms_sigma,
            soft_nms_min_score,
        )
        all_boxes.append(boxes[keep])
        all_scores.append(scores)
        all_labels.append(labels[keep])
    return all_boxes, all_scores, all_labels


def detection_candidates(
    class_logits: Tensor,
    box_regression: Tensor,
    proposals: list[Tensor],
    image_shapes: list[tuple[int, int]],
    box_coder: BoxCoder,
    score_thresh: float,
    min_box_size: float,
) -> list[tuple[Tensor, Tensor, Tensor]]:
    """Every RoI as one candidate detection per foreground class, before NMS.

    Per image: each proposal's class-specific deltas are decoded into one box per
    foreground class and clipped to the image; a (box, class) pair is kept when its softmax
    score is strictly above ``score_thresh`` and both sides are at least ``min_box_size``.

    Args:
        class_logits: ``(K, num_classes)`` logits, ``K = sum Ki``.
        box_regression: ``(K, 4 * num_classes)`` deltas.
        proposals: per image, ``(Ki, 4)`` proposals the deltas refer to.
        image_shapes: per image, ``(height, width)`` to clip to.
        box_coder: decodes the deltas (weights 10, 10, 5, 5).
        score_thresh: candidates must score above this.
        min_box_size: smallest side kept, in pixels.

    Returns:
        Per image, ``(C, 4)`` boxes, ``(C,)`` scores and ``(C,)`` int64 labels
        (``1..num_classes-1``), proposal by proposal, classes in order within each.
    """
    num_classes = class_logits.shape[-1]
    boxes_per_image = [p.shape[0] for p in proposals]
    # Shaped explicitly so that a batch without proposals gives (0, num_classes, 4).
    pred_boxes = box_coder.decode_single(box_regression, torch.cat(proposals)).reshape(
        -1, num_classes, 4
    )
    pred_scores = F.softmax(class_logits, -1)
    return [
        _image_candidates(boxes, scores, image_shape, score_thresh, min_box_size)
        for boxes, scores, image_shape in zip(
            pred_boxes.split(boxes_per_image, 0),
            pred_scores.split(boxes_per_image, 0),
            image_shapes,
            strict=True,
        )
    ]


def _image_candidates(
    boxes: Tensor,
    scores: Tensor,
    image_shape: tuple[int, int],
    score_thresh: float,
    min_box_size: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """One image's candidates of its ``(Ki, num_classes, 4)`` decoded boxes and
    ``(Ki, num_classes)`` softmax scores: ``(C, 4)`` boxes clipped to ``image_shape``,
    ``(C,)`` scores and ``(C,)`` int64 labels, as :func:`detection_candidates` returns."""
    boxes, scores, labels = _foreground_pairs(clip_boxes_to_image(boxes, image_shape), scores)
    keep = torch.where(scores > score_thresh)[0]
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    keep = remove_small_boxes(boxes, min_box_size)
    return boxes[keep], scores[keep], labels[keep]


def _foreground_pairs(boxes: Tensor, scores: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Every (proposal, foreground class) pair of ``(Ki, num_classes, 4)`` boxes and
    ``(Ki, num_classes)`` scores, flattened proposal by proposal: ``(Ki * (num_classes -
    1), 4)`` boxes, and as many scores and int64 labels ``1..num_classes-1``."""
    labels = torch.arange(scores.shape[1], device=scores.device).view(1, -1).expand_as(scores)
    # Column 0 is the background class: it is never a detection.
    return boxes[:, 1:].reshape(-1, 4), scores[:, 1:].reshape(-1), labels[:, 1:].reshape(-1)


def best_after_nms(
    boxes: Tensor,
    scores: Tensor,
    labels: Tensor,
    nms_thresh: float,
    class_nms_thresh: Sequence[float],
    detections_per_img: int,
    soft_nms_sigma: float = 0.0,
    soft_nms_min_score: float = 0.001,
) -> tuple[Tensor, Tensor]:
    """Per-class NMS of ``(D, 4)`` boxes, ``(D,)`` scores and ``(D,)`` labels
    ``1..num_classes-1``, class ``k`` at ``class_nms_thresh[k - 1]`` (empty: all at
    ``nms_thresh``), or, with ``soft_nms_sigma`` above 0, Gaussian Soft-NMS down to
    ``soft_nms_min_score``: the indices of the ``detections_per_img`` best kept and their
    scores (as lowered by Soft-NMS), by decreasing score."""
    if soft_nms_sigma > 0:
        keep, lowered = batched_soft_nms(boxes, scores, labels, soft_nms_sigma, soft_nms_min_score)
        return keep[:detections_per_img], lowered[:detections_per_img]
    if class_nms_thresh:
        keep = batched_nms_per_category(
            boxes, scores, labels - 1, class_nms_thresh, max_kept=detections_per_img
        )
    else:
        keep = batched_nms(boxes, scores, labels, nms_thresh, max_kept=detections_per_img)
    return keep, scores[keep]
