"""Training targets of the RPN (the paper's 0.7 / 0.3 rule): which anchors are objects,
which are background, and which GT box each positive regresses to."""

from __future__ import annotations

import torch
from torch import Tensor

from ..anchors import anchors_crossing_border
from ..config import FasterRCNNConfig
from ..matcher import IGNORED, NEGATIVE, POSITIVE, Matcher
from ..ops.boxes import box_iou


class AnchorTargetCreator:
    """Labels every anchor positive (1), negative (0) or ignored (-1), torchvision's way.

    An anchor is positive when its IoU with some GT box is ``>= fg_iou_thresh``, or (with
    ``allow_low_quality_matches``) when it is among the highest-IoU anchors of some GT box,
    ties included; negative when its IoU with every GT box is ``< bg_iou_thresh``; ignored
    otherwise. An image without GT boxes has only negatives.

    With ``allowed_border >= 0`` anchors crossing the image border by more than that many
    pixels are ignored, as in the paper. As in its code (py-faster-rcnn), they are left out
    of the matching altogether, so the best anchor of a GT box is its best anchor inside the
    image. ``allowed_border < 0`` (the default, torchvision) keeps every anchor.

    Args:
        fg_iou_thresh: positive IoU threshold (0.7).
        bg_iou_thresh: negative IoU threshold (0.3).
        allow_low_quality_matches: the best anchor(s) of each GT box are positive too.
        allowed_border: tolerated overhang of an anchor beyond the image, in pixels.
        low_quality_min_iou: a GT box's best anchors count only at this IoU or more (and
            never at IoU 0).
    """

    def __init__(
        self,
        fg_iou_thresh: float,
        bg_iou_thresh: float,
        allow_low_quality_matches: bool = True,
        allowed_border: float = -1,
        low_quality_min_iou: float = 0.0,
    ) -> None:
        self.matcher = Matcher(
            (bg_iou_thresh, fg_iou_thresh),
            (NEGATIVE, IGNORED, POSITIVE),
            allow_low_quality_matches,
            low_quality_min_iou,
        )
        self.allowed_border = allowed_border

    @classmethod
    def from_config(cls, config: FasterRCNNConfig) -> AnchorTargetCreator:
        rpn = config.rpn
        return cls(
            rpn.fg_iou_thresh,
            rpn.bg_iou_thresh,
            rpn.allow_low_quality_matches,
            rpn.allowed_border,
            rpn.low_quality_min_iou,
        )

    def __call__(
        self, anchors: list[Tensor], gt_boxes: list[Tensor], image_sizes: list[tuple[int, int]]
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Targets of every image (see :meth:`assign_single`).

        Args:
            anchors: per image, ``(A, 4)`` anchors.
            gt_boxes: per image, ``(G_i, 4)`` GT boxes (``G_i = 0`` allowed).
            image_sizes: per image, its own ``(height, width)`` (for the border policy).

        Returns:
            Per image, ``(A,)`` labels and ``(A, 4)`` matched GT boxes.
        """
        labels, matched_gt_boxes = [], []
        for anchors_per_image, gt_per_image, image_size in zip(
            anchors, gt_boxes, image_sizes, strict=True
        ):
            labels_per_image, matched_per_image = self.assign_single(
                anchors_per_image, gt_per_image, image_size
            )
            labels.append(labels_per_image)
            matched_gt_boxes.append(matched_per_image)
        return labels, matched_gt_boxes

    def assign_single(
        self, anchors: Tensor, gt_boxes: Tensor, image_size: tuple[int, int]
    ) -> tuple[Tensor, Tensor]:
        """Targets of one image.

        Args:
            anchors: ``(A, 4)`` anchors.
            gt_boxes: ``(G, 4)`` GT boxes, or any empty tensor for an image without objects.
            image_size: the image's own ``(height, width)``.

        Returns:
            ``(A,)`` labels (1, 0, -1) in the anchors' dtype, and ``(A, 4)`` the GT box of
            each anchor (the best-overlapping one; zeros when the image has no GT box; only
            meaningful for positives).
        """
        crossing = anchors_crossing_border(anchors, image_size, self.allowed_border)
        if gt_boxes.numel() == 0:
            labels = torch.zeros(anchors.shape[0], dtype=anchors.dtype, device=anchors.device)
            matched_gt_boxes = torch.zeros_like(anchors)
        else:
            gt_boxes = gt_boxes.to(dtype=anchors.dtype, device=anchors.device)
            iou = box_iou(gt_boxes, anchors)
            if self.allowed_border >= 0:
                # Below every real IoU: never a match, never the best anchor of a GT box.
                iou = iou.masked_fill(crossing[None, :], -1.0)
            matched_idxs, labels = self.matcher(iou)
            matched_gt_boxes = gt_boxes[matched_idxs]
            labels = labels.to(anchors.dtype)
        labels[crossing] = IGNORED
        return labels, matched_gt_boxes
