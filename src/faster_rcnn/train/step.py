"""One SGD step: the losses of a batch, summed, back-propagated, clipped, applied."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from . import distributed
from .state import TrainingState

# The losses of a batch: (images, targets, generator) -> named scalar losses.
BatchLosses = Callable[[list[Tensor], list[dict[str, Tensor]], torch.Generator], dict[str, Tensor]]


class StepResult(NamedTuple):
    """What a step reports.

    Attributes:
        losses: the losses and their sum (``"loss"``) as floats, averaged over the
            processes.
        grad_norm: the gradients' total norm before clipping (``None``: the update was
            skipped). A rising or spiking norm is the first sign of a run going astray.
    """

    losses: dict[str, float]
    grad_norm: float | None


def train_step(
    state: TrainingState,
    losses_of: BatchLosses,
    images: list[Tensor],
    targets: list[dict[str, Tensor]],
    lr: float,
) -> StepResult:
    """One SGD step at learning rate ``lr`` on the summed losses of a batch.

    Args:
        state: the optimizer, gradient scaler and samplers' generator of the stage.
        losses_of: the batch's losses, drawing from ``state.generator``.
        images: this process's images, ``float[3, H_i, W_i]`` (or ``uint8``) on the model's device.
        targets: their ``{"boxes": float[N_i, 4], "labels": int64[N_i]}``.
        lr: the learning rate of this step.

    Returns:
        The losses and the gradients' norm. When a loss or the gradient is infinite or NaN
        the update is skipped (the norm is ``None``; with float16 the gradient scaler
        skips it, and the norm it reports is not finite), so the weights never see it.
    """
    for group in state.optimizer.param_groups:
        group["lr"] = lr
    amp = state.amp_dtype is not None
    with torch.autocast(state.device_type, dtype=state.amp_dtype, enabled=amp):
        losses = losses_of(images, targets, state.generator)
    total = sum(losses.values())
    values = torch.stack([value.detach().float() for value in (*losses.values(), total)])
    if state.world_size > 1:
        values = distributed.mean_over_ranks(values)
    record = dict(zip([*losses, "loss"], values.tolist(), strict=True))
    state.optimizer.zero_grad(set_to_none=True)
    state.scaler.scale(total).backward()
    if not state.scaler.is_enabled() and not all(map(math.isfinite, record.values())):
        # Skipped after the backward pass all the same: data-parallel processes must
        # each finish the gradient reduction the forward pass began.
        state.optimizer.zero_grad(set_to_none=True)
        return StepResult(record, None)
    state.scaler.unscale_(state.optimizer)
    grads = [p.grad for p in state.params if p.grad is not None]
    norm = torch.nn.utils.get_total_norm(grads)
    if not state.scaler.is_enabled() and not math.isfinite(norm):
        # A finite loss whose gradient overflowed: applied (clipped or not), it would turn
        # weights into NaN, and the checkpoints after it would hold them.
        state.optimizer.zero_grad(set_to_none=True)
        return StepResult(record, None)
    if state.cfg.grad_clip_norm is not None:
        torch.nn.utils.clip_grads_with_norm_(state.params, state.cfg.grad_clip_norm, norm)
    state.scaler.step(state.optimizer)
    state.scaler.update()
    return StepResult(record, float(norm))
