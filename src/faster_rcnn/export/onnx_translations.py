"""ONNX for the operators of :mod:`faster_rcnn.export.graph_ops` (needs ``onnxscript``).

Each function builds, from ONNX's standard operators, a subgraph that computes what the
PyTorch operator computes: ``NonMaxSuppression`` for greedy NMS, ``RoiAlign`` /
``MaxRoiPool`` level by level for the pooling, ``TopK`` for a stable sort. The ONNX
exporter calls them with its own symbolic tensors (``custom_translation_table`` of
``torch.onnx.export``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
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


def _ints(*values: int) -> Any:
    return op.Constant(value_ints=list(values))


def translation_table() -> dict[Callable[..., Any], Callable[..., Any]]:
    """The exporter's ``custom_translation_table`` for the graph's operators."""
    from . import graph_ops  # noqa: F401  (registers the operators)

    return {
        torch.ops.faster_rcnn.nms_rows.default: nms_rows,
        torch.ops.faster_rcnn.pool_levels.default: pool_levels,
        torch.ops.aten.sort.stable: stable_sort,
    }
