"""The training loop shared by every scheme: batches in, summed losses, one SGD step.

Joint training, RPN-only training and each step of the paper's alternating scheme are
this loop with a different ``compute_losses`` (which losses, from which forward pass)
and a different set of trained parameters.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..model import FasterRCNN

Sample = tuple[Tensor, dict[str, Tensor]]
LossFn = Callable[
    [FasterRCNN, list[Tensor], list[dict[str, Tensor]], torch.Generator], dict[str, Tensor]
]


@dataclass
class TrainConfig:
    """Optimisation settings; ``steps`` is the number of SGD iterations.

    The paper's optimiser is SGD with momentum 0.9 and weight decay 0.0005. The learning
    rate warms up linearly from ``lr / 10`` over ``warmup_steps`` and is divided by 10 at
    each fraction of ``steps`` in ``lr_decay_at``. ``max_seconds`` stops the run early
    (the schedule is still laid out over ``steps``).
    """

    steps: int = 1000
    batch_size: int = 4
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_steps: int = 50
    lr_decay_at: tuple[float, ...] = (0.7, 0.9)
    grad_clip_norm: float | None = 10.0
    max_seconds: float | None = None
    seed: int = 0


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """The learning rate at ``step``: linear warm-up from lr/10, then x0.1 per decay."""
    lr = cfg.lr * 0.1 ** sum(step >= int(f * cfg.steps) for f in cfg.lr_decay_at)
    if step < cfg.warmup_steps:
        lr *= 0.1 + 0.9 * step / cfg.warmup_steps
    return lr


def detector_losses(
    model: FasterRCNN,
    images: list[Tensor],
    targets: list[dict[str, Tensor]],
    generator: torch.Generator,
) -> dict[str, Tensor]:
    """All four losses of one forward pass (approximate joint training)."""
    return model(images, targets, generator=generator)


def train_stage(
    model: FasterRCNN,
    dataset: Sequence[Sample],
    cfg: TrainConfig,
    *,
    compute_losses: LossFn = detector_losses,
    parameters: Sequence[nn.Parameter] | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` in place on ``dataset`` (items ``(image, target)``).

    Args:
        model: the detector; put in training mode here.
        dataset: the training examples.
        cfg: optimisation settings.
        compute_losses: the losses of a batch, summed for the step.
        parameters: the parameters to optimise (default: all that require a gradient).
        on_step: called after every step with the step index and its losses.

    Batches are drawn by a generator seeded with ``cfg.seed``, which also drives the
    samplers, so a run is repeatable on the same machine.

    Returns:
        Per step, the losses and their sum (``"loss"``) as floats.
    """
    gen = torch.Generator().manual_seed(cfg.seed)
    device = next(model.parameters()).device
    params = (
        list(parameters)
        if parameters is not None
        else [p for p in model.parameters() if p.requires_grad]
    )
    optimizer = torch.optim.SGD(
        params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    model.train()
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    order = torch.randperm(len(dataset), generator=gen).tolist()
    cursor = 0
    for step in range(cfg.steps):
        if cfg.max_seconds is not None and time.perf_counter() - start > cfg.max_seconds:
            break
        batch = []
        for _ in range(cfg.batch_size):
            if cursor == len(order):
                order, cursor = torch.randperm(len(dataset), generator=gen).tolist(), 0
            batch.append(dataset[order[cursor]])
            cursor += 1
        images = [img.to(device) for img, _ in batch]
        targets = [{k: v.to(device) for k, v in tgt.items()} for _, tgt in batch]

        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step)
        losses = compute_losses(model, images, targets, gen)
        total = sum(losses.values())
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        if cfg.grad_clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip_norm)
        optimizer.step()

        record = {name: value.item() for name, value in losses.items()}
        record["loss"] = total.item()
        history.append(record)
        if on_step is not None:
            on_step(step, record)
    return history
