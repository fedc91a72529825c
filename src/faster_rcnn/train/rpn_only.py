"""RPN-only training: the backbone and the Region Proposal Network on the RPN losses alone.

The RoI head is not run at all, so a step costs one backbone pass and the RPN. The product
is a proposal network: ``model.rpn.propose(image_list, features)`` gives the proposals of
a prepared batch, and ``model.eval(); model.detect_with_proposals(images)`` gives them in
the input images' pixels (its detections are meaningless, the RoI head being untrained).
This is also step 1 of the paper's alternating training (:mod:`.alternating`).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..data.dataset import Sample
from ..data.unreadable import UnreadableLog
from ..model import FasterRCNN
from .train_config import TrainConfig
from .trainer import OnStep, Trainer

STAGE = "rpn"
# The scheme the stage's checkpoints record where the RPN is trained alone; the
# alternating scheme's first step is a stage "rpn" too.
SCHEME = "rpn"


def rpn_losses(
    model: FasterRCNN,
    images: list[Tensor],
    targets: list[dict[str, Tensor]],
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """The RPN's two losses of a batch: transform -> backbone -> RPN, no RoI head.

    The values equal the ``loss_objectness`` and ``loss_rpn_box_reg`` of the full model's
    training forward with the same generator state: the RPN loss does not depend on the
    RoI head, and the random draws (multi-scale choice, then the anchor sampler) come in
    the same order. Training or eval mode changes only the backbone's batch norms.

    Args:
        model: the detector.
        images: per image, ``float[3, H_i, W_i]`` in 0..1 or ``uint8`` levels.
        targets: per image, ``{"boxes": float[N_i, 4], "labels": int64[N_i]}``,
            ``N_i = 0`` allowed.
        generator: random source of the multi-scale choice and the anchor sampler.

    Returns:
        ``{"loss_objectness": (), "loss_rpn_box_reg": ()}`` scalars.
    """
    batch = model.prepare_batch(images, targets, generator)
    features = model.features(batch.images)
    # Only the anchors' scores: proposal selection (NMS) is not needed for the loss.
    scored = model.rpn.score_anchors(batch.images, features)
    return model.rpn.compute_loss(scored, batch.training_targets(), batch.images, generator)


def rpn_trainer(
    model: FasterRCNN,
    dataset: Sequence[Sample],
    cfg: TrainConfig,
    *,
    out_dir: Path | None = None,
    on_step: OnStep | None = None,
    progress: bool = False,
    unreadable: UnreadableLog | None = None,
    weights: dict[str, Any] | None = None,
    scheme: str = SCHEME,
) -> Trainer:
    """The stage ``"rpn"``: the backbone's trainable layers and the RPN trained on
    :func:`rpn_losses`, in place; the RoI head is neither run nor changed.

    ``trainer.fit()`` returns, per step, ``{"loss_objectness", "loss_rpn_box_reg",
    "loss"}`` as floats.

    Args:
        model: the detector whose RPN is trained.
        dataset: items ``(image float|uint8[3, H, W], {"boxes", "labels"})``.
        cfg: optimisation settings.
        out_dir / on_step / progress / unreadable / weights: as for
            :class:`~faster_rcnn.train.trainer.Trainer`.
        scheme: the scheme the checkpoints record: the RPN trained alone, or
            ``"alternating"`` for that scheme's first step.
    """
    parameters = [
        p for p in chain(model.backbone.parameters(), model.rpn.parameters()) if p.requires_grad
    ]
    return Trainer(
        model,
        dataset,
        cfg,
        compute_losses=rpn_losses,
        parameters=parameters,
        stage=STAGE,
        out_dir=out_dir,
        on_step=on_step,
        progress=progress,
        unreadable=unreadable,
        weights=weights,
        scheme=scheme,
    )
