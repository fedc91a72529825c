"""ONNX for the operators of :mod:`faster_rcnn.export.graph_ops` (needs ``onnxscript``).

Each function builds, from ONNX's standard operators, a subgraph that computes what the
PyTorch operator computes: ``NonMaxSuppression`` for greedy NMS, a ``Loop`` for Soft-NMS
(ONNX has no such operator), ``RoiAlign`` / ``MaxRoiPool`` level by level for the
pooling, ``TopK`` for a stable sort. The ONNX exporter calls them with its own symbolic
tensors (``custom_translation_table`` of ``torch.onnx.export``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from onnxscript import FLOAT, INT64, script
from onnxscript import opset18 as op

# ONNX's NonMaxSuppression drops boxes scoring below its threshold: below every finite
# float, it drops exactly the -inf the graph marks non-candidates with.
_LOWEST_FLOAT32 = float(torch.finfo(torch.float32).min)
_FLOAT = 1  # onnx.TensorProto.FLOAT
_INT64 = 7  # onnx.TensorProto.INT64


def nms_rows(boxes: Any, scores: Any, iou_threshold: float, max_output: int) -> Any:
    """``faster_rcnn::nms_rows``: ``(R, M, 4)`` boxes, ``(R, M)`` scores -> ``(R, max_output)``.

    ``NonMaxSuppression`` with every row a batch item of one class gives the kept boxes
    as ``(row, 0, index)`` triples, row by row, each row's by decreasing score. A triple's
    place within its row is its rank: the ``(R, K)`` table that holds ``-k`` at
    ``(row_k, k)`` and ``-inf`` elsewhere, sorted by ``TopK`` per row, lists each row's
    triples in that order; the box index of each is then looked up, and the rows are
    padded with ``-1`` to ``max_output``.
    """
    selected = op.NonMaxSuppression(
        boxes,
        op.Unsqueeze(scores, _ints(1)),
        _ints(max_output),
        op.Constant(value_floats=[iou_threshold]),
        op.Constant(value_floats=[_LOWEST_FLOAT32]),
    )
    rows = op.Gather(selected, op.Constant(value_int=0), axis=1)
    indices = op.Gather(selected, op.Constant(value_int=2), axis=1)
    count = op.Shape(selected, start=0, end=1)
    position = op.Range(
        op.Constant(value_int=0), op.Squeeze(count, _ints(0)), op.Constant(value_int=1)
    )
    table_shape = op.Concat(op.Shape(boxes, start=0, end=1), count, axis=0)
    cells = op.Concat(op.Unsqueeze(rows, _ints(1)), op.Unsqueeze(position, _ints(1)), axis=1)
    order = op.ScatterND(
        op.Expand(op.Constant(value_floats=[float("-inf")]), table_shape),
        cells,
        op.Neg(op.Cast(position, to=_FLOAT)),
    )
    box_of_cell = op.ScatterND(op.Expand(_ints(-1), table_shape), cells, indices)
    taken = op.Min(count, _ints(max_output))
    _, cell = op.TopK(order, taken, axis=1, largest=1, sorted=1)
    kept = op.GatherElements(box_of_cell, cell, axis=1)
    padding = op.Concat(_ints(0, 0, 0), op.Sub(_ints(max_output), taken), axis=0)
    return op.Pad(kept, padding, op.Constant(value_int=-1))


def pool_levels(
    features: Sequence[Any],
    rois: Any,
    levels: Any,
    spatial_scales: Sequence[float],
    output_size: int,
    sampling_ratio: int,
    aligned: bool,
    max_pool: bool,
) -> Any:
    """``faster_rcnn::pool_levels``: each level pools its own RoIs (found with ``NonZero``)
    into their rows of the ``(R, C, S, S)`` output (``ScatterND``)."""
    first = features[0]
    output_shape = op.Concat(
        op.Shape(rois, start=0, end=1),
        op.Shape(first, start=1, end=2),
        _ints(output_size, output_size),
        axis=0,
    )
    pooled = op.Expand(op.Constant(value_floats=[0.0]), output_shape)
    boxes = op.Slice(rois, _ints(1), _ints(5), _ints(1))
    image_index = op.Cast(
        op.Squeeze(op.Slice(rois, _ints(0), _ints(1), _ints(1)), _ints(1)), to=_INT64
    )
    for level, (feature, scale) in enumerate(zip(features, spatial_scales, strict=True)):
        members = op.Transpose(op.NonZero(op.Equal(levels, _ints(level))), perm=[1, 0])
        member_boxes = op.GatherND(boxes, members)
        if max_pool:
            level_rois = op.Concat(
                op.Unsqueeze(op.Cast(op.GatherND(image_index, members), to=_FLOAT), _ints(1)),
                member_boxes,
                axis=1,
            )
            level_pooled = op.MaxRoiPool(
                feature,
                level_rois,
                pooled_shape=[output_size, output_size],
                spatial_scale=scale,
            )
        else:
            level_pooled = op.RoiAlign(
                feature,
                member_boxes,
                op.GatherND(image_index, members),
                mode="avg",
                output_height=output_size,
                output_width=output_size,
                # ONNX's 0 is torchvision's adaptive -1.
                sampling_ratio=max(sampling_ratio, 0),
                spatial_scale=scale,
                coordinate_transformation_mode="half_pixel" if aligned else "output_half_pixel",
            )
        pooled = op.ScatterND(pooled, members, level_pooled)
    return pooled


def stable_sort(
    values: Any, stable: bool | None = None, dim: int = -1, descending: bool = False
) -> tuple[Any, Any]:
    """``aten::sort.stable`` (the exporter has none): ``TopK`` over the whole axis, which
    ONNX defines to list equal values by increasing index, so stable either way."""
    length = op.Shape(values, start=dim, end=dim + 1 if dim != -1 else None)
    return op.TopK(values, length, axis=dim, largest=int(descending), sorted=1)


@script()
def soft_nms_rows(
    boxes: FLOAT, scores: FLOAT, sigma: float, score_threshold: float, max_output: int
) -> tuple[INT64, FLOAT]:
    """``faster_rcnn::soft_nms_rows``: ``(R, M, 4)`` boxes, ``(R, M)`` scores ->
    ``(R, max_output)`` indices and lowered scores, by an ONNX ``Loop`` of ``max_output``
    visits. Each visit records every row's best score, multiplies the rest of the row by
    ``exp(-IoU^2 / sigma)`` with that box (at least the smallest normal float, as
    :func:`~faster_rcnn.ops.soft_nms.soft_nms_factor`) and sets scores under the
    threshold to ``-inf``; the indices and scores grow by a column each."""
    rows = op.Shape(scores, start=0, end=1)
    no_columns = op.Concat(rows, op.Constant(value_ints=[0]), axis=0)
    kept = op.Expand(op.Constant(value_ints=[0]), no_columns)
    lowered = op.Expand(op.Constant(value_floats=[0.0]), no_columns)
    width_of_gaussian = op.Constant(value_float=sigma)
    lowest_kept = op.Constant(value_float=score_threshold)
    visits = op.Constant(value_int=max_output)
    zero = op.Constant(value_float=0.0)
    dropped = op.Constant(value_floats=[float("-inf")])
    x1, y1, x2, y2 = op.Split(boxes, axis=2, num_outputs=4)
    areas = op.Mul(op.Sub(x2, x1), op.Sub(y2, y1))
    for _ in range(visits):
        best = op.ArgMax(scores, axis=1, keepdims=1)
        kept = op.Concat(kept, best, axis=1)
        lowered = op.Concat(lowered, op.GatherElements(scores, best, axis=1), axis=1)
        at = op.Unsqueeze(best, op.Constant(value_ints=[2]))
        bx1 = op.GatherElements(x1, at, axis=1)
        by1 = op.GatherElements(y1, at, axis=1)
        bx2 = op.GatherElements(x2, at, axis=1)
        by2 = op.GatherElements(y2, at, axis=1)
        width = op.Max(op.Sub(op.Min(bx2, x2), op.Max(bx1, x1)), zero)
        height = op.Max(op.Sub(op.Min(by2, y2), op.Max(by1, y1)), zero)
        inter = op.Mul(width, height)
        union = op.Sub(op.Add(op.GatherElements(areas, at, axis=1), areas), inter)
        iou = op.Squeeze(
            op.Where(op.Greater(union, zero), op.Div(inter, union), zero),
            op.Constant(value_ints=[2]),
        )
        factor = op.Max(
            op.Exp(op.Div(op.Neg(op.Mul(iou, iou)), width_of_gaussian)),
            op.Constant(value_float=1.1754943508222875e-38),
        )
        scores = op.ScatterElements(scores, best, op.Expand(dropped, op.Shape(best)), axis=1)
        scores = op.Mul(scores, factor)
        scores = op.Where(
            op.Less(scores, lowest_kept), op.Expand(dropped, op.Shape(scores)), scores
        )
    found = op.Greater(lowered, op.Constant(value_float=float("-inf")))
    indices = op.Where(found, kept, op.Constant(value_int=-1))
    return indices, lowered


def _ints(*values: int) -> Any:
    return op.Constant(value_ints=list(values))


def translation_table() -> dict[Callable[..., Any], Callable[..., Any]]:
    """The exporter's ``custom_translation_table`` for the graph's operators."""
    from . import graph_ops  # noqa: F401  (registers the operators)

    return {
        torch.ops.faster_rcnn.nms_rows.default: nms_rows,
        torch.ops.faster_rcnn.soft_nms_rows.default: soft_nms_rows,
        torch.ops.faster_rcnn.pool_levels.default: pool_levels,
        torch.ops.aten.sort.stable: stable_sort,
    }
