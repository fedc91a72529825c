"""Training targets of the RPN: which anchors are objects, which GT box each one regresses
to, and which anchors enter the loss."""

from __future__ import annotations

import torch
from torch import Tensor

from ..anchors import anchors_crossing_border
from ..config import RPNConfig
from ..matching import BalancedPositiveNegativeSampler, Matcher
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
    """

    def __init__(
        self,
        fg_iou_thresh: float,
        bg_iou_thresh: float,
        allow_low_quality_matches: bool = True,
        allowed_border: float = -1,
    ) -> None:
        self.matcher = Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches)
        self.allowed_border = allowed_border

    @classmethod
    def from_config(cls, cfg: RPNConfig) -> AnchorTargetCreator:
        return cls(
            cfg.fg_iou_thresh, cfg.bg_iou_thresh, cfg.allow_low_quality_matches, cfg.allowed_border
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
            matched_idxs = self.matcher(iou)
            # Negative codes (-1, -2) are clamped to a valid index; their boxes are unused.
            matched_gt_boxes = gt_boxes[matched_idxs.clamp(min=0)]
            labels = (matched_idxs >= 0).to(anchors.dtype)
            labels[matched_idxs == Matcher.BELOW_LOW_THRESHOLD] = 0.0
            labels[matched_idxs == Matcher.BETWEEN_THRESHOLDS] = -1.0
        labels[crossing] = -1.0
        return labels, matched_gt_boxes


class HardNegativeSampler:
    """Balanced sampling that keeps the hardest negatives instead of random ones.

    Positives are drawn at random exactly as by
    :class:`~faster_rcnn.matching.BalancedPositiveNegativeSampler` (same counts, same
    random draws for them); the negatives are the ones with the highest objectness loss,
    ``softplus(logit)`` (binary cross-entropy against label 0), ties going to the lower
    index.

    Args:
        batch_size_per_image: anchors sampled per image.
        positive_fraction: at most this fraction of them positive.
    """

    def __init__(self, batch_size_per_image: int, positive_fraction: float) -> None:
        self.balanced = BalancedPositiveNegativeSampler(batch_size_per_image, positive_fraction)

    def __call__(
        self,
        labels: list[Tensor],
        objectness: list[Tensor],
        generator: torch.Generator | None = None,
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Sample each image's batch.

        Args:
            labels: per image, ``(N_i,)`` labels: >= 1 positive, 0 negative, -1 ignored.
            objectness: per image, ``(N_i,)`` objectness logits (not differentiated).
            generator: random source for the positives; ``None`` uses the global one.

        Returns:
            Two lists of ``(N_i,)`` uint8 masks per image: sampled positives, sampled
            negatives.
        """
        pos_masks, neg_masks = [], []
        for labels_per_image, logits in zip(labels, objectness, strict=True):
            positive = torch.where(labels_per_image >= 1)[0]
            negative = torch.where(labels_per_image == 0)[0]
            num_pos, num_neg = self.balanced.sample_counts(positive.numel(), negative.numel())
            if generator is None:
                order = torch.randperm(positive.numel(), device=positive.device)
            else:
                order = torch.randperm(
                    positive.numel(), generator=generator, device=generator.device
                ).to(positive.device)
            pos_idx = positive[order[:num_pos]]
            # softplus(logit), the loss of a negative, increases with the logit: sorting the
            # logits ranks by loss without softplus's rounding ties at the extremes.
            negative_logits = logits.detach().reshape(-1)[negative]
            hardest = torch.sort(negative_logits, descending=True, stable=True).indices
            neg_idx = negative[hardest[:num_neg]]
            pos_mask = torch.zeros_like(labels_per_image, dtype=torch.uint8)
            neg_mask = torch.zeros_like(labels_per_image, dtype=torch.uint8)
            pos_mask[pos_idx] = 1
            neg_mask[neg_idx] = 1
            pos_masks.append(pos_mask)
            neg_masks.append(neg_mask)
        return pos_masks, neg_masks
