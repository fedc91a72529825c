"""The Fast R-CNN multi-task loss (torchvision's ``fastrcnn_loss``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def fastrcnn_loss(
    class_logits: Tensor,
    box_regression: Tensor,
    labels: list[Tensor],
    regression_targets: list[Tensor],
    beta: float = 1.0 / 9,
) -> tuple[Tensor, Tensor]:
    """Classification and box regression loss over the sampled RoIs.

    The classification loss is the mean cross-entropy over all sampled RoIs. The box loss
    is the smooth-L1 distance between the deltas predicted *for the RoI's GT class* and its
    target, summed over foreground RoIs and divided by the number of all sampled RoIs
    (torchvision's normalisation; background RoIs contribute no box loss).

    Args:
        class_logits: ``(K, num_classes)`` logits of the sampled RoIs of the batch.
        box_regression: ``(K, 4 * num_classes)`` class-specific deltas.
        labels: per image, ``(Ki,)`` int64 labels, 0 background; ``sum Ki = K``.
        regression_targets: per image, ``(Ki, 4)`` encoded targets.
        beta: smooth-L1 transition point (1/9 in torchvision; the paper's sigma = 1
            is beta = 1).

    Returns:
        Scalar classification loss and scalar box loss (both zero when ``K = 0``).
    """
    labels = torch.cat(labels, dim=0)
    regression_targets = torch.cat(regression_targets, dim=0)
    if labels.numel() == 0:
        # No RoI in the batch: images without objects whose proposals all scored under the
        # RPN's score threshold. A mean over no RoIs would be NaN and the step skipped;
        # zero losses that keep the graph let the RPN's losses train on such a batch.
        return class_logits.sum() * 0.0, box_regression.sum() * 0.0

    classification_loss = F.cross_entropy(class_logits, labels)

    positive = torch.where(labels > 0)[0]
    labels_pos = labels[positive]
    num_rois = class_logits.shape[0]
    box_regression = box_regression.reshape(num_rois, box_regression.size(-1) // 4, 4)
    box_loss = F.smooth_l1_loss(
        box_regression[positive, labels_pos],
        regression_targets[positive],
        beta=beta,
        reduction="sum",
    )
    return classification_loss, box_loss / labels.numel()
