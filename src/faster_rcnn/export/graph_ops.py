"""The detector's data-dependent steps as opaque operators of fixed output shape.

``torch.export`` cannot trace greedy NMS (its loop runs as long as the boxes say) nor
the per-level RoI pooling (how many boxes a level gets depends on their sizes);
Soft-NMS, traced, would be one copy of its step per detection kept. Traced anyway, such
a step is frozen to the example's choices and silently wrong on other inputs. Here each
is one ``torch.library`` custom operator: in PyTorch it runs the library's exact eager
code; to ``torch.export`` it is a node with a known output shape; the ONNX exporter maps
it to ONNX's own ``NonMaxSuppression`` and ``RoiAlign`` / ``MaxRoiPool``, and Soft-NMS
to a ``Loop`` (:mod:`faster_rcnn.export.onnx_translations`). Every output has a shape
that the input shapes fix, padded where the true count varies, so nothing downstream
depends on data.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..ops.boxes import paired_box_iou
from ..ops.nms import nms
from ..ops.roi_align import roi_align, roi_pool
from ..ops.soft_nms import soft_nms_factor

# The ONNX exporter looks operators up by these names.
NAMESPACE = "faster_rcnn"


@torch.library.custom_op(f"{NAMESPACE}::nms_rows", mutates_args=())
def nms_rows(boxes: Tensor, scores: Tensor, iou_threshold: float, max_output: int) -> Tensor:
    """Greedy NMS in every row independently, the kept indices padded to a fixed count.

    Args:
        boxes: ``(R, M, 4)`` boxes, ``M`` candidates in each of ``R`` rows.
        scores: ``(R, M)`` scores; ``-inf`` marks a candidate that is not one.
        iou_threshold: as in :func:`faster_rcnn.ops.nms`.
        max_output: kept indices returned per row.

    Returns:
        ``(R, max_output)`` int64: per row, the indices (into ``M``) of the first
        ``max_output`` kept boxes by decreasing score, then ``-1``.
    """
    kept = torch.full((boxes.shape[0], max_output), -1, dtype=torch.int64, device=boxes.device)
    for row, (row_boxes, row_scores) in enumerate(zip(boxes, scores, strict=True)):
        candidates = torch.where(row_scores > float("-inf"))[0]
        found = nms(row_boxes[candidates], row_scores[candidates], iou_threshold, max_output)
        keep = candidates[found]
        kept[row, : keep.shape[0]] = keep
    return kept


@nms_rows.register_fake
def _nms_rows_shape(boxes: Tensor, scores: Tensor, iou_threshold: float, max_output: int) -> Tensor:
    return boxes.new_empty((boxes.shape[0], max_output), dtype=torch.int64)


@torch.library.custom_op(f"{NAMESPACE}::soft_nms_rows", mutates_args=())
def soft_nms_rows(
    boxes: Tensor, scores: Tensor, sigma: float, score_threshold: float, max_output: int
) -> tuple[Tensor, Tensor]:
    """Gaussian Soft-NMS (:func:`faster_rcnn.ops.batched_soft_nms`) in every row, its
    first ``max_output`` visits.

    Args:
        boxes: ``(R, M, 4)`` boxes.
        scores: ``(R, M)`` scores; ``-inf`` marks a candidate that is not one.
        sigma / score_threshold: as in :func:`~faster_rcnn.ops.batched_soft_nms`.
        max_output: visits per row (at least 1).

    Returns:
        ``(R, max_output)`` int64 indices (into ``M``) of the boxes visited, by
        decreasing lowered score, then ``-1``; and their ``(R, max_output)`` lowered
        scores, then ``-inf``.
    """
    current = scores
    kept, kept_scores = [], []
    for _ in range(max_output):
        best = current.argmax(dim=1, keepdim=True)  # the first of equal scores
        kept.append(best)
        kept_scores.append(current.gather(1, best))
        best_boxes = boxes.gather(1, best[:, :, None].expand(-1, -1, 4))
        factor = soft_nms_factor(paired_box_iou(best_boxes, boxes), sigma, scores.dtype)
        current = current.scatter(1, best, -torch.inf) * factor
        current = torch.where(current < score_threshold, -torch.inf, current)
    index, lowered = torch.cat(kept, dim=1), torch.cat(kept_scores, dim=1)
    return torch.where(lowered > -torch.inf, index, -1), lowered


@soft_nms_rows.register_fake
def _soft_nms_rows_shape(
    boxes: Tensor, scores: Tensor, sigma: float, score_threshold: float, max_output: int
) -> tuple[Tensor, Tensor]:
    shape = (boxes.shape[0], max_output)
    return boxes.new_empty(shape, dtype=torch.int64), scores.new_empty(shape)


@torch.library.custom_op(f"{NAMESPACE}::pool_levels", mutates_args=())
def pool_levels(
    features: list[Tensor],
    rois: Tensor,
    levels: Tensor,
    spatial_scales: list[float],
    output_size: int,
    sampling_ratio: int,
    aligned: bool,
    max_pool: bool,
) -> Tensor:
    """Pool every RoI from the feature map of its level (RoIAlign, or RoIPool).

    Args:
        features: per level, ``(N, C, H_l, W_l)`` feature maps.
        rois: ``(R, 5)`` rows ``[batch_index, x1, y1, x2, y2]`` in image pixels.
        levels: ``(R,)`` int64 index into ``features`` of each RoI.
        spatial_scales: per level, feature size over image size.
        output_size: side of the pooled grid.
        sampling_ratio / aligned: RoIAlign's (ignored by RoIPool).
        max_pool: RoIPool (the Fast R-CNN paper's) instead of RoIAlign.

    Returns:
        ``(R, C, output_size, output_size)``, RoIs in order.
    """
    first = features[0]
    pooled = first.new_zeros((rois.shape[0], first.shape[1], output_size, output_size))
    for level, (feature, scale) in enumerate(zip(features, spatial_scales, strict=True)):
        members = torch.where(levels == level)[0]
        if max_pool:
            pooled[members] = roi_pool(feature, rois[members], output_size, scale)
        else:
            pooled[members] = roi_align(
                feature, rois[members], output_size, scale, sampling_ratio, aligned
            )
    return pooled


@pool_levels.register_fake
def _pool_levels_shape(
    features: list[Tensor], rois: Tensor, levels: Tensor, scales: list[float], size: int, *_: object
) -> Tensor:
    return features[0].new_empty((rois.shape[0], features[0].shape[1], size, size))
