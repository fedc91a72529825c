"""Training targets of the RPN (the paper's 0.7 / 0.3 rule): which anchors are objects,
which are background, and which GT box each positive regresses to."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from ..anchors import LevelGrid, anchors_crossing_border
from ..config import FasterRCNNConfig, RPNConfig, check_setting
from ..matcher import ANCHOR_BANDS, IGNORED, POSITIVE, Matcher
from ..ops.boxes import best_box_iou, box_iou_blocks, paired_box_iou
from .anchor_windows import AnchorShapes, anchors_reaching

# GT boxes below the negative threshold measured at once against every anchor that
# overlaps them: 64 boxes of 16 px, 250,000 pairs of mobilenet_v2_fpn's anchors.
FAR_BOXES_PER_BLOCK = 64


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
            ANCHOR_BANDS,
            allow_low_quality_matches,
            low_quality_min_iou,
        )
        self.allowed_border = allowed_border

    def __setattr__(self, name: str, value: object) -> None:
        # Set on the built model (rpn.target_creator.allowed_border = 0), a value the
        # config refuses (-5) was taken, and read as -1, until model.config refused it.
        if name == "allowed_border":
            check_setting(RPNConfig, name, value, f"rpn.target_creator.{name}")
        super().__setattr__(name, value)

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
        self,
        anchors: list[Tensor],
        gt_boxes: list[Tensor],
        image_sizes: list[tuple[int, int]],
        levels: Sequence[LevelGrid] | None = None,
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Targets of every image (see :meth:`assign_single`).

        Args:
            anchors: per image, ``(A, 4)`` anchors.
            gt_boxes: per image, ``(G_i, 4)`` GT boxes (``G_i = 0`` allowed).
            image_sizes: per image, its own ``(height, width)`` (for the border policy).
            levels: where each level's anchors lie (the same for every image of a batch);
                ``None`` measures every anchor against every box.

        Returns:
            Per image, ``(A,)`` labels and ``(A, 4)`` matched GT boxes.
        """
        labels, matched_gt_boxes = [], []
        for anchors_per_image, gt_per_image, image_size in zip(
            anchors, gt_boxes, image_sizes, strict=True
        ):
            labels_per_image, matched_per_image = self.assign_single(
                anchors_per_image, gt_per_image, image_size, levels
            )
            labels.append(labels_per_image)
            matched_gt_boxes.append(matched_per_image)
        return labels, matched_gt_boxes

    def assign_single(
        self,
        anchors: Tensor,
        gt_boxes: Tensor,
        image_size: tuple[int, int],
        levels: Sequence[LevelGrid] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Targets of one image.

        Args:
            anchors: ``(A, 4)`` anchors.
            gt_boxes: ``(G, 4)`` GT boxes, or any empty tensor for an image without objects.
            image_size: the image's own ``(height, width)``.
            levels: where each level's anchors lie among ``anchors``; ``None`` measures
                every anchor against every box.

        Returns:
            ``(A,)`` labels (1, 0, -1) in the anchors' dtype, and ``(A, 4)`` the GT box of
            each anchor: for a positive its best-overlapping one; for the others some GT
            box, never used (zeros when the image has no GT box).
        """
        crossing = anchors_crossing_border(anchors, image_size, self.allowed_border)
        if gt_boxes.numel() == 0:
            labels = torch.zeros(anchors.shape[0], dtype=anchors.dtype, device=anchors.device)
            matched_gt_boxes = torch.zeros_like(anchors)
        else:
            gt_boxes = gt_boxes.to(dtype=anchors.dtype, device=anchors.device)
            if levels is None or self.matcher.thresholds[0] <= 0:
                matched_idxs, labels = self._match_all(anchors, gt_boxes, crossing)
            else:
                matched_idxs, labels = self._match_windows(anchors, gt_boxes, crossing, levels)
            matched_gt_boxes = gt_boxes[matched_idxs]
            labels = labels.to(anchors.dtype)
        labels[crossing] = IGNORED
        return labels, matched_gt_boxes

    def _match_all(
        self, anchors: Tensor, gt_boxes: Tensor, crossing: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``(A,)`` matched GT index and label of every anchor, from every IoU, measured a
        block of anchors at a time (:meth:`Matcher.match_blocks`)."""
        blocks = functools.partial(self._iou_blocks, anchors, gt_boxes, crossing)
        return self.matcher.match_blocks(blocks, len(anchors))

    def _iou_blocks(
        self, anchors: Tensor, gt_boxes: Tensor, crossing: Tensor
    ) -> Iterator[tuple[slice, Tensor]]:
        """Each block of anchors and its ``(G, C)`` IoUs with every GT box, those of
        anchors the border policy leaves out at -1."""
        for columns, iou in box_iou_blocks(gt_boxes, anchors):
            if self.allowed_border >= 0:
                # Below every real IoU: never a match, never the best anchor of a GT box.
                iou = iou.masked_fill(crossing[None, columns], -1.0)
            yield columns, iou

    def _match_windows(
        self, anchors: Tensor, gt_boxes: Tensor, crossing: Tensor, levels: Sequence[LevelGrid]
    ) -> tuple[Tensor, Tensor]:
        """:meth:`_match_all`'s labels, and its GT index for every positive, from the
        anchors that can reach the negative threshold.

        Every anchor left out is below it, so its label is the one its IoU would give.
        A GT box whose best IoU is below it too (a small or thin box) is measured against
        every anchor that overlaps it, so that its best anchors are found, ties included.
        Such a best anchor may have its own best GT box among the boxes that were left
        out, so the positives below the threshold are matched against every box.
        """
        floor = self.matcher.thresholds[0]
        shapes = AnchorShapes.of_levels(levels, anchors.device)
        gt, pred, iou = self._pairs(anchors, gt_boxes, crossing, shapes, floor)
        best_of_gt = iou.new_zeros(len(gt_boxes)).scatter_reduce(0, gt, iou, "amax")
        far = (best_of_gt < floor).nonzero().flatten()
        if len(far):
            far_gt, far_pred, far_iou = self._best_pairs(anchors, gt_boxes[far], crossing, shapes)
            near = best_of_gt[gt] >= floor
            gt = torch.cat((gt[near], far[far_gt]))
            pred, iou = torch.cat((pred[near], far_pred)), torch.cat((iou[near], far_iou))
        matches, labels, best = self.matcher.match_pairs(gt, pred, iou, len(gt_boxes), len(anchors))
        unsure = ((labels == POSITIVE) & (best < floor)).nonzero().flatten()
        if len(unsure):
            matches[unsure] = best_box_iou(gt_boxes, anchors[unsure])[1]
        return matches, labels

    @classmethod
    def _best_pairs(
        cls, anchors: Tensor, gt_boxes: Tensor, crossing: Tensor, shapes: AnchorShapes
    ) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`_pairs` at IoU 0 of GT boxes whose every IoU is below the negative
        threshold, less all but each box's best pairs (ties included; none at IoU 0).

        Below the threshold a pair makes its anchor negative unless it is its box's best,
        as no pair does, so only those are kept. Every anchor a small box overlaps is
        measured (8,000 of ``mobilenet_v2_fpn``'s for a 16-px box), so the boxes are
        measured ``FAR_BOXES_PER_BLOCK`` at a time.
        """
        kept = []
        for first in range(0, len(gt_boxes), FAR_BOXES_PER_BLOCK):
            block = gt_boxes[first : first + FAR_BOXES_PER_BLOCK]
            gt, pred, iou = cls._pairs(anchors, block, crossing, shapes, 0.0)
            best_of_gt = iou.new_zeros(len(block)).scatter_reduce(0, gt, iou, "amax")
            at_best = (iou == best_of_gt[gt]) & (iou > 0)
            kept.append((gt[at_best] + first, pred[at_best], iou[at_best]))
        gt, pred, iou = zip(*kept, strict=True)
        return torch.cat(gt), torch.cat(pred), torch.cat(iou)

    @staticmethod
    def _pairs(
        anchors: Tensor, gt_boxes: Tensor, crossing: Tensor, shapes: AnchorShapes, min_iou: float
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(K,)`` GT index, anchor row and IoU of the pairs that can reach ``min_iou``
        (:func:`~faster_rcnn.rpn.anchor_windows.anchors_reaching`), crossing anchors left
        out."""
        gt, pred = anchors_reaching(gt_boxes, shapes, min_iou)
        inside = ~crossing[pred]
        gt, pred = gt[inside], pred[inside]
        return gt, pred, paired_box_iou(gt_boxes[gt], anchors[pred])
