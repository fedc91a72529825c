"""The RPN loss: objectness classification plus box regression of the positives.

The paper's Eq. (1)::

    L = 1/N_cls sum_i L_cls(p_i, p_i*) + lambda 1/N_reg sum_i p_i* L_reg(t_i, t_i*)

``L_cls`` is binary cross-entropy on the objectness logit and ``L_reg`` smooth-L1 on the
box deltas, summed over the four coordinates; both sums run over the sampled anchors.
Two normalisations are offered:

- ``"per_sample"`` (torchvision): ``N_cls = N_reg =`` the number of sampled anchors of
  the whole batch (``~256`` per image), ``lambda = box_loss_weight`` (1).
- ``"paper"``: ``N_cls`` the same, ``N_reg =`` the number of anchor *locations*
  (``sum_l H_l * W_l``, about 2400 for a 600x1000 image at stride 16) times the number of
  images, ``lambda = box_loss_weight`` (10), so both terms weigh about the same.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor


def rpn_loss(
    objectness: Tensor,
    pred_bbox_deltas: Tensor,
    labels: list[Tensor],
    regression_targets: list[Tensor],
    pos_masks: list[Tensor],
    neg_masks: list[Tensor],
    normalization: Literal["per_sample", "paper"] = "per_sample",
    box_loss_weight: float = 1.0,
    beta: float = 1.0 / 9,
    num_anchor_locations: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Objectness and box-regression losses of the sampled anchors.

    Args:
        objectness: ``(sum_anchors,)`` (or ``(sum_anchors, 1)``) logits of all images,
            image-major, in the order of ``labels``.
        pred_bbox_deltas: ``(sum_anchors, 4)`` predicted deltas, same order.
        labels: per image, ``(A_i,)`` labels (1 positive, 0 negative, -1 ignored).
        regression_targets: per image, ``(A_i, 4)`` encoded GT deltas.
        pos_masks / neg_masks: per image, ``(A_i,)`` masks of the sampled positives and
            negatives.
        normalization: ``"per_sample"`` or ``"paper"`` (see the module docstring).
        box_loss_weight: lambda, multiplying the box loss.
        beta: smooth-L1 transition point (``1/9``: py-faster-rcnn's sigma = 3).
        num_anchor_locations: anchor locations per image, ``sum_l H_l * W_l``; required by
            ``"paper"``.

    Returns:
        ``(loss_objectness, loss_rpn_box_reg)``, scalars. With no anchor sampled at all both
        are zero (and keep the graph), instead of NaN.
    """
    _check_normalization(normalization, num_anchor_locations)
    positives, sampled = _sampled_anchors(pos_masks, neg_masks)
    objectness = objectness.flatten()
    if sampled.numel() == 0:
        zero = objectness.sum() * 0.0 + pred_bbox_deltas.sum() * 0.0
        return zero, zero.clone()
    # Eq. (1)'s p_i* L_reg: only the positives' boxes are regressed.
    box_loss_sum = F.smooth_l1_loss(
        pred_bbox_deltas[positives],
        torch.cat(regression_targets, dim=0)[positives],
        beta=beta,
        reduction="sum",
    )
    n_reg = _n_reg(normalization, sampled.numel(), len(labels), num_anchor_locations)
    box_loss = box_loss_sum / n_reg * box_loss_weight
    objectness_loss = F.binary_cross_entropy_with_logits(
        objectness[sampled], torch.cat(labels, dim=0)[sampled]
    )
    return objectness_loss, box_loss


def _check_normalization(normalization: str, num_anchor_locations: int | None) -> None:
    """Refuse an unknown normalisation, or ``"paper"`` without the anchor locations."""
    if normalization not in ("per_sample", "paper"):
        raise ValueError(f"unknown RPN loss normalization {normalization!r}")
    if normalization == "paper" and num_anchor_locations is None:
        raise ValueError('loss_normalization="paper" needs num_anchor_locations')


def _sampled_anchors(pos_masks: list[Tensor], neg_masks: list[Tensor]) -> tuple[Tensor, Tensor]:
    """The sampled anchors of all images, as indices into the image-major concatenation of
    the ``(A_i,)`` masks: ``(P,)`` the positives and ``(P + Q,)`` every sampled anchor,
    positives first."""
    positives = torch.where(torch.cat(pos_masks, dim=0))[0]
    negatives = torch.where(torch.cat(neg_masks, dim=0))[0]
    return positives, torch.cat([positives, negatives], dim=0)


def _n_reg(
    normalization: str, num_sampled: int, num_images: int, num_anchor_locations: int | None
) -> int:
    """Eq. (1)'s ``N_reg``: the sampled anchors of the batch (``"per_sample"``), or the
    anchor locations of every image (``"paper"``)."""
    if normalization == "per_sample":
        return num_sampled
    assert num_anchor_locations is not None  # checked by _check_normalization
    return num_anchor_locations * num_images
