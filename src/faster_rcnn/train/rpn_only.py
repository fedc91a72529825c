"""RPN-only training: the backbone and the Region Proposal Network on the RPN losses alone.

The RoI head is not run at all, so a step costs one backbone pass and the RPN. The product
is a proposal network: ``model.rpn.propose(image_list, features)`` gives the proposals of
a prepared batch, and ``model.eval(); model.detect_with_proposals(images)`` gives them in
the input images' pixels (its detections are meaningless, the RoI head being untrained).
This is also step 1 of the paper's alternating training (:mod:`.alternating`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import chain
from pathlib import Path
from typing import cast

import torch
from torch import Tensor

from ..image_list import ImageList
from ..model import FasterRCNN
from ..validation import validate_images, validate_targets
from .loop import Sample, TrainConfig, train_stage


def prepare_training_batch(
    model: FasterRCNN,
    images: list[Tensor],
    targets: list[dict[str, Tensor]],
    generator: torch.Generator | None = None,
) -> tuple[ImageList, list[dict[str, Tensor]]]:
    """Check a training batch as the model does, then resize, normalise and pad it.

    Args:
        model: supplies the transform and the number of classes.
        images: per image, ``float[3, H_i, W_i]`` in 0..1.
        targets: per image, ``{"boxes": float[N_i, 4], "labels": int64[N_i]}`` in the
            image's pixels.
        generator: random source of the multi-scale choice (the model's order of draws).

    Returns:
        The padded batch and the targets with boxes in resized-image pixels.

    Raises:
        ValueError: naming the image and box at fault.
    """
    validate_images(images)
    validate_targets(targets, len(images), model.num_classes)
    image_list, resized = model.transform(images, targets, generator=generator)
    # Targets in, targets out: the transform returns None only when given none.
    return image_list, cast(list[dict[str, Tensor]], resized)


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
        images: per image, ``float[3, H_i, W_i]`` in 0..1.
        targets: per image, ``{"boxes": float[N_i, 4], "labels": int64[N_i]}``,
            ``N_i = 0`` allowed.
        generator: random source of the multi-scale choice and the anchor sampler.

    Returns:
        ``{"loss_objectness": (), "loss_rpn_box_reg": ()}`` scalars.
    """
    image_list, targets = prepare_training_batch(model, images, targets, generator)
    features = model.features(image_list)
    # Only the anchors' scores: proposal selection (NMS) is not needed for the loss.
    scored = model.rpn.score_anchors(image_list, features)
    return model.rpn.compute_loss(scored, targets, image_list, generator)


def train_rpn_only(
    model: FasterRCNN,
    dataset: Sequence[Sample],
    cfg: TrainConfig,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    *,
    out_dir: Path | None = None,
    resume: bool = False,
    progress: bool = False,
) -> list[dict[str, float]]:
    """Train the backbone's trainable layers and the RPN on :func:`rpn_losses`, in place.

    The RoI head is neither run nor changed.

    Args:
        model: the detector whose RPN is trained.
        dataset: items ``(image float[3, H, W], {"boxes", "labels"})``.
        cfg: optimisation settings.
        on_step: called after every step with the step index and its losses.
        out_dir / resume / progress: as for :func:`~faster_rcnn.train.loop.train_stage`
            (the stage is named ``"rpn"``).

    Returns:
        Per step, ``{"loss_objectness", "loss_rpn_box_reg", "loss"}`` as floats.
    """
    parameters = [
        p for p in chain(model.backbone.parameters(), model.rpn.parameters()) if p.requires_grad
    ]
    return train_stage(
        model,
        dataset,
        cfg,
        compute_losses=rpn_losses,
        parameters=parameters,
        on_step=on_step,
        stage="rpn",
        out_dir=out_dir,
        resume=resume,
        progress=progress,
    )
