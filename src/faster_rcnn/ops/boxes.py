"""Box geometry and the paper's box parameterisation.

Boxes are ``(N, 4)`` float tensors of ``x1, y1, x2, y2`` in absolute pixels, continuous
coordinates (no "+1"). The signatures follow ``torchvision.ops`` so either can be used.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from ..config import RPNConfig, check_setting

# tw/th are clamped before exp() so that a wild regression cannot overflow: a box at
# most 1000/16 times its anchor, the value py-faster-rcnn and torchvision use.
DEFAULT_BBOX_XFORM_CLIP = math.log(1000.0 / 16)


def at_least_float32(boxes: Tensor) -> Tensor:
    """``boxes`` in float32 where they are float16 or bfloat16 (a model run in half
    precision), else as they are: float16 holds at most 65504, less than the area of a
    box 256 px a side, whose IoUs then came out 0 and FPN level the last; bfloat16 keeps
    8 bits of an area."""
    if boxes.dtype in (torch.float16, torch.bfloat16):
        return boxes.float()
    return boxes


def box_area(boxes: Tensor) -> Tensor:
    """Area of each box.

    Args:
        boxes: ``(..., 4)`` boxes.

    Returns:
        ``(...)`` areas, in float32 for float16 or bfloat16 boxes
        (:func:`at_least_float32`).
    """
    boxes = at_least_float32(boxes)
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Intersection over union of every pair of boxes.

    Args:
        boxes1: ``(N, 4)`` boxes.
        boxes2: ``(M, 4)`` boxes.

    Returns:
        ``(N, M)`` IoU matrix. A pair whose union is empty (two degenerate boxes) has IoU 0.
    """
    return paired_box_iou(boxes1[:, None, :], boxes2[None, :, :])


# Pairs of boxes whose IoUs best_box_iou measures at once: a block of 2^18 float32 IoUs
# takes 1 MB (its intermediates a few times that), whatever the number of boxes. At 2500
# x 14,500 blocks of 2^20 raised a process's peak by 50-70 MB, these by 7-14, in as long.
BEST_IOU_BLOCK_PAIRS = 1 << 18


def best_box_iou(
    boxes1: Tensor, boxes2: Tensor, block_pairs: int = BEST_IOU_BLOCK_PAIRS
) -> tuple[Tensor, Tensor]:
    """Each box of ``boxes2``'s highest IoU with a box of ``boxes1``, and which:
    ``box_iou(boxes1, boxes2).max(dim=0)``, bit for bit, measured a block of ``boxes2``
    at a time so that no ``(N, M)`` matrix is made (a crowded image's 1000 GT boxes
    against its 2000 proposals and the GT boxes' jittered copies: 7 million IoUs).

    Args:
        boxes1: ``(N, 4)`` boxes, ``N >= 1``.
        boxes2: ``(M, 4)`` boxes.
        block_pairs: at most this many IoUs (and at least one column) at a time.

    Returns:
        ``(M,)`` highest IoUs (no gradient) and ``(M,)`` int64 index of the box of
        ``boxes1`` that gives it (the first of equal ones).
    """
    count, device = boxes2.shape[0], boxes2.device
    # Written in place: each block's results kept apart until the end left the freed
    # blocks' memory in pieces (at 2500 x 14,500 a peak up to 260 MB higher).
    dtype = torch.promote_types(torch.promote_types(boxes1.dtype, boxes2.dtype), torch.float32)
    values = torch.empty(count, dtype=dtype, device=device)
    indices = torch.empty(count, dtype=torch.int64, device=device)
    with torch.no_grad():
        for block, iou in box_iou_blocks(boxes1, boxes2, block_pairs):
            torch.max(iou, dim=0, out=(values[block], indices[block]))
    return values, indices


def box_iou_blocks(
    boxes1: Tensor, boxes2: Tensor, block_pairs: int = BEST_IOU_BLOCK_PAIRS
) -> Iterator[tuple[slice, Tensor]]:
    """:func:`box_iou` a block of columns at a time: each block's columns and its
    ``(N, C)`` IoUs, the same numbers as those columns of the whole matrix (each IoU is
    computed alone), in column order.

    Args:
        boxes1: ``(N, 4)`` boxes, ``N >= 1``.
        boxes2: ``(M, 4)`` boxes.
        block_pairs: at most this many IoUs (and at least one column) a block.
    """
    columns = max(1, block_pairs // boxes1.shape[0])
    for first in range(0, boxes2.shape[0], columns):
        block = slice(first, first + columns)
        yield block, box_iou(boxes1, boxes2[block])


def paired_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Intersection over union of boxes paired up position by position.

    Args:
        boxes1: ``(..., 4)`` boxes.
        boxes2: ``(..., 4)`` boxes, broadcastable with ``boxes1``.

    Returns:
        The broadcast shape without its last dimension: the IoU of each pair, 0 where the
        union is empty.
    """
    inter = paired_intersection(boxes1, boxes2)
    union = box_area(boxes1) + box_area(boxes2) - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), 0.0)


def box_ioa(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Intersection over the area of the first box, every pair: how much of each box of
    ``boxes1`` lies inside each box of ``boxes2`` (COCO's overlap of a detection with a
    crowd region).

    Args:
        boxes1: ``(N, 4)`` boxes.
        boxes2: ``(M, 4)`` boxes.

    Returns:
        ``(N, M)`` matrix in ``[0, 1]``; 0 for a box of ``boxes1`` without area.
    """
    inter = paired_intersection(boxes1[:, None, :], boxes2[None, :, :])
    area = box_area(boxes1)[:, None]
    return torch.where(area > 0, inter / area.clamp(min=torch.finfo(area.dtype).tiny), 0.0)


def paired_intersection(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Area of the intersection of boxes paired up position by position.

    Args:
        boxes1: ``(..., 4)`` boxes.
        boxes2: ``(..., 4)`` boxes, broadcastable with ``boxes1``.

    Returns:
        The broadcast shape without its last dimension: each pair's common area (0 where
        they do not overlap), in float32 for float16 or bfloat16 boxes.
    """
    boxes1, boxes2 = at_least_float32(boxes1), at_least_float32(boxes2)
    top_left = torch.max(boxes1[..., :2], boxes2[..., :2])
    bottom_right = torch.min(boxes1[..., 2:], boxes2[..., 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    return wh[..., 0] * wh[..., 1]


def clip_boxes_to_image(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Clip boxes to lie inside an image.

    Args:
        boxes: ``(..., 4)`` boxes.
        size: ``(height, width)`` of the image.

    Returns:
        Boxes of the same shape with x in ``[0, width]`` and y in ``[0, height]``.
    """
    height, width = size
    x = boxes[..., 0::2].clamp(min=0, max=width)
    y = boxes[..., 1::2].clamp(min=0, max=height)
    return torch.stack((x, y), dim=-1).reshape(boxes.shape)


def remove_small_boxes(boxes: Tensor, min_size: float) -> Tensor:
    """Indices of the boxes whose width and height are both at least ``min_size``.

    Args:
        boxes: ``(N, 4)`` boxes.
        min_size: smallest side kept, in pixels.

    Returns:
        ``(K,)`` int64 indices into ``boxes``, in increasing order.
    """
    return torch.where(large_enough(boxes, min_size))[0]


def large_enough(boxes: Tensor, min_size: float) -> Tensor:
    """Whether both sides of each of the ``(..., 4)`` boxes are at least ``min_size``:
    a ``(...)`` bool mask (what :func:`remove_small_boxes` keeps)."""
    return (boxes[..., 2] - boxes[..., 0] >= min_size) & (boxes[..., 3] - boxes[..., 1] >= min_size)


class BoxCoder:
    """Encodes boxes as offsets from reference boxes and back (the paper's Eq. 2).

    For a reference (anchor or proposal) with centre ``(xa, ya)`` and size ``(wa, ha)``
    and a box with centre ``(x, y)`` and size ``(w, h)``::

        tx = wx (x - xa) / wa     ty = wy (y - ya) / ha
        tw = ww log(w / wa)       th = wh log(h / ha)

    The weights ``(wx, wy, ww, wh)`` scale the targets: ``(1, 1, 1, 1)`` for the RPN and
    ``(10, 10, 5, 5)`` for the Fast R-CNN head, which is the same as normalising the
    targets by standard deviations ``(0.1, 0.1, 0.2, 0.2)`` as the paper's code does.
    """

    def __init__(
        self,
        weights: tuple[float, float, float, float],
        bbox_xform_clip: float = DEFAULT_BBOX_XFORM_CLIP,
    ) -> None:
        self.weights = tuple(float(w) for w in weights)
        self.bbox_xform_clip = bbox_xform_clip

    def __setattr__(self, name: str, value: Any) -> None:
        # torchvision's users set them on the built model's coders
        # (``model.roi_heads.box_coder.weights = (5.0, 5.0, 2.0, 2.0)``): the weights are
        # checked by the config's rules, which both stages' configs share; a clamp set there
        # is refused, as checked_box_coder refuses a coder of another clamp.
        if name == "weights":
            check_setting(RPNConfig, "box_coder_weights", value, "box_coder.weights")
        if name == "bbox_xform_clip" and name in vars(self) and value != DEFAULT_BBOX_XFORM_CLIP:
            raise ValueError(
                f"box_coder.bbox_xform_clip = {value!r}: the config records no clamp (a model "
                "file would clamp at log(1000 / 16)); set the weights alone"
            )
        super().__setattr__(name, value)

    def encode(self, reference_boxes: list[Tensor], proposals: list[Tensor]) -> tuple[Tensor, ...]:
        """Per-image :meth:`encode_single`, computed in one pass.

        Args:
            reference_boxes: per image, ``(Ni, 4)`` target boxes.
            proposals: per image, ``(Ni, 4)`` boxes they are encoded relative to.

        Returns:
            Per image, ``(Ni, 4)`` deltas.
        """
        boxes_per_image = [len(b) for b in reference_boxes]
        targets = self.encode_single(torch.cat(reference_boxes), torch.cat(proposals))
        return targets.split(boxes_per_image, 0)

    def encode_single(self, reference_boxes: Tensor, proposals: Tensor) -> Tensor:
        """Deltas that turn each proposal into its reference box.

        Args:
            reference_boxes: ``(N, 4)`` target boxes.
            proposals: ``(N, 4)`` anchors or proposals.

        Returns:
            ``(N, 4)`` deltas ``(tx, ty, tw, th)``, weighted.
        """
        wx, wy, ww, wh = self.weights
        pw = proposals[:, 2] - proposals[:, 0]
        ph = proposals[:, 3] - proposals[:, 1]
        px = proposals[:, 0] + 0.5 * pw
        py = proposals[:, 1] + 0.5 * ph
        gw = reference_boxes[:, 2] - reference_boxes[:, 0]
        gh = reference_boxes[:, 3] - reference_boxes[:, 1]
        gx = reference_boxes[:, 0] + 0.5 * gw
        gy = reference_boxes[:, 1] + 0.5 * gh
        return torch.stack(
            (
                wx * (gx - px) / pw,
                wy * (gy - py) / ph,
                ww * torch.log(gw / pw),
                wh * torch.log(gh / ph),
            ),
            dim=1,
        )

    def decode(self, rel_codes: Tensor, boxes: list[Tensor]) -> Tensor:
        """Decode deltas against the reference boxes of several images at once.

        Args:
            rel_codes: ``(sum Ni, 4 * K)`` deltas, rows in the order of ``boxes``.
            boxes: per image, ``(Ni, 4)`` reference boxes.

        Returns:
            ``(sum Ni, K, 4)`` decoded boxes.
        """
        concat_boxes = torch.cat(boxes, dim=0)
        box_sum = concat_boxes.shape[0]
        if box_sum > 0:
            rel_codes = rel_codes.reshape(box_sum, -1)
        pred_boxes = self.decode_single(rel_codes, concat_boxes)
        return pred_boxes.reshape(box_sum, pred_boxes.shape[-1] // 4, 4)

    def decode_single(self, rel_codes: Tensor, boxes: Tensor) -> Tensor:
        """Apply deltas to reference boxes.

        Args:
            rel_codes: ``(N, 4 * K)`` deltas; with ``K > 1`` (class-specific regression)
                every group of four is decoded against the same reference box.
            boxes: ``(N, 4)`` reference boxes.

        Returns:
            ``(N, 4 * K)`` boxes, in the deltas' dtype, float32 for half-precision ones.
            ``tw`` and ``th`` are clamped from above at ``bbox_xform_clip`` before the
            exponential.
        """
        # In float32 at least, as detectron2 decodes: half-precision deltas (mixed
        # precision) would round the boxes' corners to bfloat16's 4 px steps past 512.
        rel_codes = at_least_float32(rel_codes)
        boxes = boxes.to(rel_codes.dtype)
        widths = boxes[:, 2] - boxes[:, 0]
        heights = boxes[:, 3] - boxes[:, 1]
        ctr_x = boxes[:, 0] + 0.5 * widths
        ctr_y = boxes[:, 1] + 0.5 * heights

        wx, wy, ww, wh = self.weights
        dx = rel_codes[:, 0::4] / wx
        dy = rel_codes[:, 1::4] / wy
        dw = (rel_codes[:, 2::4] / ww).clamp(max=self.bbox_xform_clip)
        dh = (rel_codes[:, 3::4] / wh).clamp(max=self.bbox_xform_clip)

        pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
        pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
        pred_w = torch.exp(dw) * widths[:, None]
        pred_h = torch.exp(dh) * heights[:, None]

        # Half-sizes computed once and subtracted/added, as torchvision does, so that the
        # decoded corners agree with it to the last bit.
        half_w = torch.tensor(0.5, dtype=pred_ctr_x.dtype, device=pred_w.device) * pred_w
        half_h = torch.tensor(0.5, dtype=pred_ctr_y.dtype, device=pred_h.device) * pred_h
        pred = torch.stack(
            (pred_ctr_x - half_w, pred_ctr_y - half_h, pred_ctr_x + half_w, pred_ctr_y + half_h),
            dim=2,
        )
        return pred.flatten(1)


# torchvision's box coder (torchvision.models.detection._utils.BoxCoder): its class's
# module and name; it is converted where it is set (:func:`checked_box_coder`).
_TORCHVISION_BOX_CODER = ("torchvision.models.detection._utils", "BoxCoder")


def checked_box_coder(box_coder: Any, where: str) -> BoxCoder:
    """``box_coder``, set as ``where`` (``"rpn.box_coder"``), where it is a
    :class:`BoxCoder` the config describes (its ``weights``; the clamp is the default's);
    torchvision's ``BoxCoder(weights, bbox_xform_clip)`` becomes one of its numbers.

    Raises:
        TypeError: another class.
        ValueError: a ``bbox_xform_clip`` other than the default, which no config records.
    """
    kind = (type(box_coder).__module__, type(box_coder).__qualname__)
    if kind == _TORCHVISION_BOX_CODER:
        box_coder = BoxCoder(box_coder.weights, box_coder.bbox_xform_clip)
    if not isinstance(box_coder, BoxCoder):
        raise TypeError(
            f"{where} takes faster_rcnn.ops.boxes.BoxCoder, got {'.'.join(kind)}: "
            f"{where} = BoxCoder(weights) (torchvision's weights)"
        )
    if box_coder.bbox_xform_clip != DEFAULT_BBOX_XFORM_CLIP:
        raise ValueError(
            f"{where}: a bbox_xform_clip of {box_coder.bbox_xform_clip!r} is not recorded by "
            f"the config (a model file would clamp at log(1000 / 16)): set the weights alone"
        )
    return box_coder
