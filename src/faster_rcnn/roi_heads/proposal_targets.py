"""Training targets of the Fast R-CNN head: which proposals to learn from, and what.

Each image's proposals, with its ground-truth boxes appended, are matched to the GT box
they overlap most (with ``gt_jitter`` randomly moved copies of each GT box too); those
with IoU >= ``fg_iou_thresh`` become foreground of the GT box's class, those with best
IoU in ``[bg_iou_thresh_lo, bg_iou_thresh_hi)`` background, the rest are ignored. A
batch of ``batch_size_per_image`` RoIs with at most ``positive_fraction`` foreground is
drawn, and the regression target of each RoI is its GT box encoded against it
(background RoIs get a target too; the loss ignores it).

This is torchvision's ``RoIHeads.select_training_samples``, step for step, with the
paper's lower background bound added (``bg_iou_thresh_lo = 0`` reproduces torchvision).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import torch
from torch import Tensor

from ..config import RoIHeadsConfig, check_setting
from ..matcher import POSITIVE, PROPOSAL_BANDS, Matcher
from ..ops.boxes import BoxCoder, best_box_iou
from ..samplers import BalancedPositiveNegativeSampler, ClassBalancedSampler, ObjectBalancedSampler

# Where torchvision's users find the head's matcher, which labels from each proposal's
# best IoU alone (Matcher.match_best) and so refuses low-quality matches.
PROPOSAL_MATCHER = "roi_heads.proposal_matcher"
# The head's foreground RoI samplers by the name ``RoIHeadsConfig.sampler`` gives, each
# made from the RoIs an image and the foreground fraction.
ROI_SAMPLERS: dict[str, Callable[[int, float], BalancedPositiveNegativeSampler]] = {
    "random": BalancedPositiveNegativeSampler,
    "object_balanced": ObjectBalancedSampler,
    "class_balanced": ClassBalancedSampler,
    "class_sqrt_balanced": partial(ClassBalancedSampler, share_exponent=0.5),
}


class SampledRoIs(NamedTuple):
    """The RoIs drawn for training, per image (``Si`` of them in image ``i``).

    Attributes:
        proposals: ``(Si, 4)`` sampled boxes (proposals and appended GT boxes).
        matched_idxs: ``(Si,)`` int64 index of each RoI's GT box (0 for background RoIs
            and for every RoI of an image without GT).
        labels: ``(Si,)`` int64 class of each RoI, 0 for background.
        regression_targets: ``(Si, 4)`` the matched GT box encoded against the RoI.
    """

    proposals: list[Tensor]
    matched_idxs: list[Tensor]
    labels: list[Tensor]
    regression_targets: list[Tensor]


def add_gt_proposals(proposals: list[Tensor], gt_boxes: list[Tensor]) -> list[Tensor]:
    """Append each image's GT boxes to its proposals, so every GT box is a candidate RoI.

    Args:
        proposals: per image, ``(Pi, 4)`` proposals.
        gt_boxes: per image, ``(Gi, 4)`` GT boxes, same dtype as the proposals.

    Returns:
        Per image, ``(Pi + Gi, 4)`` boxes: the proposals first, then the GT boxes.
    """
    return [torch.cat((p, g)) for p, g in zip(proposals, gt_boxes, strict=True)]


def jittered_boxes(
    boxes: Tensor, copies: int, box_coder: BoxCoder, generator: torch.Generator | None = None
) -> Tensor:
    """``copies`` copies of each box, each moved and resized at random.

    The deltas ``(tx, ty, tw, th)`` are drawn from N(0, 1) in ``box_coder``'s units, that
    is from N(0, 1 / weight): with the head's weights (10, 10, 5, 5), standard deviations
    0.1, 0.1, 0.2, 0.2. Fast R-CNN chose those weights as the spread of its foreground
    proposals' targets, so the copies look like the proposals a trained RPN gives an
    object: nine in ten overlap their box by IoU >= 0.5, half by 0.66 or more.

    Args:
        boxes: ``(G, 4)`` boxes.
        copies: copies of each box.
        box_coder: the coder whose weights scale the deltas.
        generator: random source; ``None`` uses the global one.

    Returns:
        ``(copies * G, 4)`` boxes: the first copy of every box, then the second, ...
    """
    source = generator.device if generator is not None else boxes.device
    shape = (copies * boxes.shape[0], 4)
    codes = torch.randn(shape, generator=generator, dtype=boxes.dtype, device=source)
    return box_coder.decode_single(codes.to(boxes.device), boxes.repeat(copies, 1))


class ProposalTargetCreator:
    """Labels proposals against the ground truth and samples the head's training RoIs.

    Args:
        fg_iou_thresh: proposals with IoU >= this with a GT box are foreground.
        bg_iou_thresh_hi: proposals whose best IoU is below this are background ...
        bg_iou_thresh_lo: ... unless it is also below this, in which case they are
            ignored (paper: 0.1; torchvision: 0, which ignores nothing). An image with
            no GT box is all background whatever this is: it has no other RoIs to learn
            from.
        batch_size_per_image: RoIs drawn per image (paper: 128, torchvision: 512).
        positive_fraction: at most this fraction of them foreground.
        box_coder: encodes the regression targets (weights 10, 10, 5, 5).
        sampler: how the foreground RoIs are drawn: ``"random"``, ``"object_balanced"``,
            ``"class_balanced"`` or ``"class_sqrt_balanced"`` (see :data:`ROI_SAMPLERS`).
        gt_jitter: randomly moved copies of each GT box added to the candidate RoIs
            (:func:`jittered_boxes`); 0 adds none (the paper, torchvision).
    """

    def __init__(
        self,
        fg_iou_thresh: float,
        bg_iou_thresh_hi: float,
        bg_iou_thresh_lo: float,
        batch_size_per_image: int,
        positive_fraction: float,
        box_coder: BoxCoder,
        sampler: str = "random",
        gt_jitter: int = 0,
    ) -> None:
        # Background is IoU in [lo, hi); below lo (paper: 0.1) a proposal overlaps no
        # object even that much and is not sampled; between hi and fg it is ambiguous.
        # Labelled from each proposal's best IoU alone, without rule (i).
        self.proposal_matcher = Matcher(
            (bg_iou_thresh_lo, bg_iou_thresh_hi, fg_iou_thresh),
            PROPOSAL_BANDS,
            best_iou_only=PROPOSAL_MATCHER,
        )
        self.fg_bg_sampler = ROI_SAMPLERS[sampler](batch_size_per_image, positive_fraction)
        self.box_coder = box_coder
        self.gt_jitter = gt_jitter

    def __setattr__(self, name: str, value: object) -> None:
        # Set on the built model (roi_heads.target_creator.gt_jitter = 3, or a sampler of
        # fewer RoIs an image), more copies of a GT box than the RoIs sampled were taken
        # until model.config refused them: checked by the config's rule, each against
        # the other as this creator has it.
        if name == "gt_jitter":
            batch = {"batch_size_per_image": self.fg_bg_sampler.batch_size_per_image}
            check_setting(RoIHeadsConfig, name, value, f"roi_heads.target_creator.{name}", batch)
        if name == "fg_bg_sampler" and isinstance(value, BalancedPositiveNegativeSampler):
            self.check_batch_size(value.batch_size_per_image)
            value.target_creator = self
        super().__setattr__(name, value)

    def check_batch_size(self, batch_size_per_image: object) -> None:
        """Refuse a sampler's ``batch_size_per_image`` that the config refuses with this
        creator's ``gt_jitter``: fewer RoIs an image than the copies of each GT box.

        Raises:
            ValueError: ``"fg_bg_sampler.batch_size_per_image = 2: gt_jitter (3) must be
                in [0, 2], the RoIs sampled an image"``.
        """
        jitter = {"gt_jitter": getattr(self, "gt_jitter", 0)}  # none yet while being made
        where = "fg_bg_sampler.batch_size_per_image"
        check_setting(RoIHeadsConfig, "batch_size_per_image", batch_size_per_image, where, jitter)

    def __call__(
        self,
        proposals: list[Tensor],
        targets: list[dict[str, Tensor]],
        generator: torch.Generator | None = None,
    ) -> SampledRoIs:
        """Draw the training RoIs of a batch and their targets.

        Args:
            proposals: per image, ``(Pi, 4)`` proposals (the RPN's; constants, except in
                non-approximate joint training).
            targets: per image, ``{"boxes": float (Gi, 4), "labels": int64 (Gi,)}``;
                ``Gi = 0`` is allowed.
            generator: random source of the sampler and of the GT boxes' jittered
                copies; ``None`` draws from the global generator in torchvision's order.

        Returns:
            The sampled RoIs with their GT indices, labels and regression targets.
        """
        dtype, device = proposals[0].dtype, proposals[0].device
        gt_boxes = [t["boxes"].to(dtype) for t in targets]
        gt_labels = [t["labels"] for t in targets]

        # Ground-truth boxes join as constants. Matching and the regression targets use
        # the proposals' values only: the targets must not chase the proposals (with
        # differentiable proposals, the RoIs alone carry their gradient).
        proposals = add_gt_proposals(proposals, gt_boxes)
        if self.gt_jitter > 0:
            # Early in training the RPN gives a small object few proposals that overlap
            # it, and the head few foreground RoIs of it to learn from.
            jittered = [
                jittered_boxes(g, self.gt_jitter, self.box_coder, generator) for g in gt_boxes
            ]
            proposals = add_gt_proposals(proposals, jittered)
        constant = [p.detach() for p in proposals]
        matched_idxs, labels = self.assign_targets_to_proposals(constant, gt_boxes, gt_labels)
        pos_masks, neg_masks = self.fg_bg_sampler(labels, matched_idxs, generator)

        sampled_proposals, sampled_matched_idxs, sampled_labels, matched_gt_boxes = [], [], [], []
        for img_proposals, img_matched, img_labels, img_gt, pos, neg in zip(
            proposals, matched_idxs, labels, gt_boxes, pos_masks, neg_masks, strict=True
        ):
            sampled = torch.where(pos | neg)[0]
            img_matched = img_matched[sampled]
            sampled_proposals.append(img_proposals[sampled])
            sampled_matched_idxs.append(img_matched)
            sampled_labels.append(img_labels[sampled])
            if img_gt.numel() == 0:
                # Background RoIs of an image without objects still need a (never used)
                # regression target: encode against a dummy box, as torchvision does.
                img_gt = torch.zeros((1, 4), dtype=dtype, device=device)
            matched_gt_boxes.append(img_gt[img_matched])

        regression_targets = self.box_coder.encode(
            matched_gt_boxes, [p.detach() for p in sampled_proposals]
        )
        return SampledRoIs(
            sampled_proposals, sampled_matched_idxs, sampled_labels, list(regression_targets)
        )

    def assign_targets_to_proposals(
        self, proposals: list[Tensor], gt_boxes: list[Tensor], gt_labels: list[Tensor]
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Match each proposal to a GT box and label it.

        Args:
            proposals: per image, ``(Ni, 4)`` candidate RoIs.
            gt_boxes: per image, ``(Gi, 4)`` GT boxes.
            gt_labels: per image, ``(Gi,)`` int64 GT classes.

        Returns:
            Per image, ``(Ni,)`` int64 matched GT index (0 for all but foreground, as
            torchvision), and ``(Ni,)`` int64 labels: the GT class for foreground, 0 for
            background, -1 ignored.
        """
        matched_idxs, labels = [], []
        for img_proposals, img_gt_boxes, img_gt_labels in zip(
            proposals, gt_boxes, gt_labels, strict=True
        ):
            num = img_proposals.shape[0]
            if img_gt_boxes.numel() == 0:
                device = img_proposals.device
                img_matched = torch.zeros((num,), dtype=torch.int64, device=device)
                img_labels = torch.zeros((num,), dtype=torch.int64, device=device)
            else:
                best = best_box_iou(img_gt_boxes, img_proposals)
                matches, band = self.proposal_matcher.match_best(*best)
                foreground = band == POSITIVE
                img_matched = torch.where(foreground, matches, 0)
                img_labels = torch.where(foreground, img_gt_labels[matches], band)
            matched_idxs.append(img_matched)
            labels.append(img_labels)
        return matched_idxs, labels
