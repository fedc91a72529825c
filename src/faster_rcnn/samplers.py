"""Matching boxes to ground truth and sampling a balanced training batch.

Both stages of Faster R-CNN label their candidates the same way: each anchor (RPN) or
proposal (Fast R-CNN head) is matched to the ground-truth box it overlaps most, then
called foreground, background or ignored by IoU thresholds, and a fixed-size batch with a
bounded share of foreground is drawn from the labelled candidates.
"""

from __future__ import annotations

import torch
from torch import Tensor


class Matcher:
    """Assigns each prediction (anchor or proposal) to its best ground-truth box.

    ``matches[i]`` is the index of the GT box that prediction ``i`` overlaps most when that
    IoU is ``>= high_threshold``, :attr:`BELOW_LOW_THRESHOLD` when it is below
    ``low_threshold`` and :attr:`BETWEEN_THRESHOLDS` in between.

    With ``allow_low_quality_matches`` every prediction that reaches the highest IoU any
    prediction has with some GT box is matched as well (ties included), so that each GT
    box gets at least one positive even when no anchor reaches the high threshold (the
    paper's rule (i)). Such a prediction is matched to its own best GT box, as in
    torchvision and py-faster-rcnn; a GT box that overlaps no prediction at all then
    matches every prediction whose IoU with it is 0 but that overlaps nothing else.
    """

    BELOW_LOW_THRESHOLD = -1
    BETWEEN_THRESHOLDS = -2

    def __init__(
        self, high_threshold: float, low_threshold: float, allow_low_quality_matches: bool = False
    ) -> None:
        if low_threshold > high_threshold:
            raise ValueError(
                f"low_threshold ({low_threshold}) must not exceed high_threshold ({high_threshold})"
            )
        self.high_threshold = high_threshold
        self.low_threshold = low_threshold
        self.allow_low_quality_matches = allow_low_quality_matches

    def __call__(self, match_quality_matrix: Tensor) -> Tensor:
        """Match predictions to GT boxes.

        Args:
            match_quality_matrix: ``(G, P)`` IoU of every GT box with every prediction.

        Returns:
            ``(P,)`` int64: a GT index, :attr:`BELOW_LOW_THRESHOLD` or
            :attr:`BETWEEN_THRESHOLDS`. With no GT box every prediction is below the low
            threshold (background).
        """
        num_gt, num_pred = match_quality_matrix.shape
        if num_gt == 0:
            return torch.full(
                (num_pred,),
                self.BELOW_LOW_THRESHOLD,
                dtype=torch.int64,
                device=match_quality_matrix.device,
            )
        matched_vals, all_matches = match_quality_matrix.max(dim=0)
        matches = all_matches.clone()
        matches[matched_vals < self.low_threshold] = self.BELOW_LOW_THRESHOLD
        between = (matched_vals >= self.low_threshold) & (matched_vals < self.high_threshold)
        matches[between] = self.BETWEEN_THRESHOLDS
        if self.allow_low_quality_matches:
            best_per_gt = match_quality_matrix.max(dim=1).values
            is_best = (match_quality_matrix == best_per_gt[:, None]).any(dim=0)
            matches[is_best] = all_matches[is_best]
        return matches


class BalancedPositiveNegativeSampler:
    """Draws a fixed-size batch with at most a given fraction of positives.

    Positives are taken at random up to ``batch_size_per_image * positive_fraction``; the
    rest of the batch is filled with random negatives (the paper's 256 anchors, up to
    1:1). Randomness comes from ``generator``; with ``None`` the global generator is used in
    exactly torchvision's order of calls, so a shared seed gives the same sample.
    """

    def __init__(self, batch_size_per_image: int, positive_fraction: float) -> None:
        if not 0.0 <= positive_fraction <= 1.0:
            raise ValueError(f"positive_fraction must be in [0, 1], got {positive_fraction}")
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction

    def sample_counts(self, num_positive: int, num_negative: int) -> tuple[int, int]:
        """How many positives and negatives to draw from the available ones."""
        num_pos = min(int(self.batch_size_per_image * self.positive_fraction), num_positive)
        num_neg = min(self.batch_size_per_image - num_pos, num_negative)
        return num_pos, num_neg

    def __call__(
        self, labels: list[Tensor], generator: torch.Generator | None = None
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Sample each image's batch.

        Args:
            labels: per image, ``(Ni,)`` labels: >= 1 positive, 0 negative, -1 ignored.
            generator: random source; ``None`` uses the global one.

        Returns:
            Two lists of ``(Ni,)`` uint8 masks per image: the sampled positives and the
            sampled negatives.
        """
        pos_masks, neg_masks = [], []
        for labels_per_image in labels:
            positive = torch.where(labels_per_image >= 1)[0]
            negative = torch.where(labels_per_image == 0)[0]
            num_pos, num_neg = self.sample_counts(positive.numel(), negative.numel())
            pos_idx = positive[
                _random_subset(positive.numel(), num_pos, positive.device, generator)
            ]
            neg_idx = negative[
                _random_subset(negative.numel(), num_neg, negative.device, generator)
            ]
            pos_masks.append(_index_mask(labels_per_image, pos_idx))
            neg_masks.append(_index_mask(labels_per_image, neg_idx))
        return pos_masks, neg_masks


def _random_subset(
    n: int, k: int, device: torch.device, generator: torch.Generator | None
) -> Tensor:
    """``k`` distinct random indices in ``[0, n)``."""
    if generator is None:
        return torch.randperm(n, device=device)[:k]
    return torch.randperm(n, generator=generator, device=generator.device)[:k].to(device)


def _index_mask(like: Tensor, indices: Tensor) -> Tensor:
    mask = torch.zeros_like(like, dtype=torch.uint8)
    mask[indices] = 1
    return mask
