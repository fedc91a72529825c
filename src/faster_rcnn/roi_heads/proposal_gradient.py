"""What moves the proposals in non-approximate joint training: the classification loss
of the foreground RoIs, and nothing else (:mod:`faster_rcnn.train.non_approximate` gives
the reasons and the measurements).

The head pools detached copies of the RoIs (:func:`pooled_boxes`), so that no loss
reaches the proposals through the pooling by itself; :func:`classification_pull` then
adds a term of value 0 whose gradient with respect to each live RoI is the
classification loss's gradient with respect to its pooled copy, on foreground rows.
"""

from __future__ import annotations

import torch
from torch import Tensor


def pooled_boxes(rois: list[Tensor]) -> list[Tensor]:
    """Per image, a detached copy of ``(Ki, 4)`` RoIs that records its own gradient."""
    return [r.detach().requires_grad_() for r in rois]


def classification_pull(
    loss_classifier: Tensor, rois: list[Tensor], pooled: list[Tensor], labels: list[Tensor]
) -> Tensor:
    """A scalar of value 0 whose gradient moves each foreground RoI as the classification
    loss would.

    Args:
        loss_classifier: the head's classification loss, computed on ``pooled``.
        rois: per image, ``(Ki, 4)`` the RoIs with the gradient path to the proposals.
        pooled: per image, ``(Ki, 4)`` the leaf copies the head pooled.
        labels: per image, ``(Ki,)`` int64 class of each RoI, 0 for background.
    """
    grads = torch.autograd.grad(loss_classifier, pooled, retain_graph=True, allow_unused=True)
    pull = loss_classifier.new_zeros(())
    for roi, grad, label in zip(rois, grads, labels, strict=True):
        if grad is None or not roi.requires_grad:
            continue
        term = (roi * torch.where((label > 0)[:, None], grad, 0.0)).sum()
        pull = pull + (term - term.detach())
    return pull
