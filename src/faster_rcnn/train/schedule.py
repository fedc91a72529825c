"""The learning-rate schedule: a pure function of the step, so a resumed run needs no state.

A linear warm-up from ``lr * warmup_factor`` to ``lr`` over ``warmup_steps`` (at most
``1 / warmup_share`` of the run, where a share is set) multiplies the main schedule,
which is either

- ``"step"``: ``lr``, divided by 10 at each fraction of ``steps`` in ``lr_decay_at`` (the
  paper: 0.001, then 0.0001 for the last part of training); or
- ``"cosine"``: ``lr * (1 + cos(pi * step / steps)) / 2``, from ``lr`` down to 0 at
  ``steps``.

A run planned for fewer than ``short_run_steps`` steps multiplies its rate by
:func:`short_run_scale` from the step its length is known on (a time-limited run's first
projection of it; the trainer applies it).
"""

from __future__ import annotations

import math
from typing import Protocol

SCHEDULES = ("step", "cosine")
# A short run's rate rises at most this much: four times the default rate an image on
# crowded images (twice the recipe's) was ahead of twice where few steps fit
# (benchmarks/recipe_ab.md, rounds 35-37), and eight times within a seed's spread of
# four where 5 minutes fitted about 140 steps (round 38).
SHORT_RUN_MAX_SCALE = 2.0


class ScheduleSettings(Protocol):
    """The fields of :class:`~faster_rcnn.train.train_config.TrainConfig` the schedule reads."""

    steps: int
    lr: float
    schedule: str
    warmup_steps: int
    warmup_factor: float
    warmup_share: int | None
    lr_decay_at: tuple[float, ...]
    short_run_steps: int | None


def learning_rate(cfg: ScheduleSettings, step: int, total_steps: int | None = None) -> float:
    """The learning rate of step ``step`` (counted from 0) of a run of ``total_steps``
    (default ``cfg.steps``)."""
    steps = cfg.steps if total_steps is None else total_steps
    if cfg.schedule == "step":
        decays = sum(step >= int(fraction * steps) for fraction in cfg.lr_decay_at)
        lr = cfg.lr * 0.1**decays
    elif cfg.schedule == "cosine":
        progress = min(step / steps, 1.0) if steps > 0 else 1.0
        lr = cfg.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        raise ValueError(f"unknown schedule {cfg.schedule!r}; choose one of {SCHEDULES}")
    # Of the run as planned now: a time-limited run's plan is re-made as it goes.
    warmup = warmup_length(cfg.warmup_steps, cfg.warmup_share, steps)
    if step < warmup:
        lr *= cfg.warmup_factor + (1.0 - cfg.warmup_factor) * step / warmup
    return lr


def warmup_length(warmup_steps: int, warmup_share: int | None, steps: int) -> int:
    """The steps a run of ``steps`` warms up over: ``warmup_steps``, at most ``steps //
    warmup_share`` where a share is set."""
    if warmup_share is None:
        return warmup_steps
    return min(warmup_steps, steps // warmup_share)


def short_run_scale(cfg: ScheduleSettings, total_steps: int) -> float:
    """What a run of ``total_steps`` multiplies its rate by: ``cfg.short_run_steps /
    total_steps``, between 1 and :data:`SHORT_RUN_MAX_SCALE` (1 where unset).

    The sum of a schedule's rates, times the gradients' norm (which the clip bounds),
    bounds how far it can move the weights: half the steps at twice the rate keep it."""
    if cfg.short_run_steps is None or total_steps <= 0:
        return 1.0
    return min(max(cfg.short_run_steps / total_steps, 1.0), SHORT_RUN_MAX_SCALE)
