"""The learning-rate schedule: a pure function of the step, so a resumed run needs no state.

A linear warm-up from ``lr * warmup_factor`` to ``lr`` over ``warmup_steps`` multiplies
the main schedule, which is either

- ``"step"``: ``lr``, divided by 10 at each fraction of ``steps`` in ``lr_decay_at`` (the
  paper: 0.001, then 0.0001 for the last part of training); or
- ``"cosine"``: ``lr * (1 + cos(pi * step / steps)) / 2``, from ``lr`` down to 0 at
  ``steps``.
"""

from __future__ import annotations

import bisect
import math
from typing import Protocol

SCHEDULES = ("step", "cosine")


class ScheduleSettings(Protocol):
    """The fields of :class:`~faster_rcnn.train.loop.TrainConfig` the schedule reads."""

    steps: int
    lr: float
    schedule: str
    warmup_steps: int
    warmup_factor: float
    lr_decay_at: tuple[float, ...]


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
    if step < cfg.warmup_steps:
        lr *= cfg.warmup_factor + (1.0 - cfg.warmup_factor) * step / cfg.warmup_steps
    return lr


class TimeBudgetPacer:
    """The run length a time-limited run lays its schedule out over.

    A run stopped by the clock before ``steps`` would never reach the schedule's decays (or
    the end of its cosine). From ``min_steps`` steps into the run on, the pacer projects how
    many steps fit in the budget at the recent speed - over the last quarter of the steps
    run, and at least ``min_steps`` - and makes that the plan. A slower run shortens the
    plan at once; a faster one lengthens it only as fast as keeps ``(step + 1) / plan``
    from falling, so the schedule never goes back: the learning rate never rises once
    decayed, and a run that speeds up (a cache filled after the first epoch) takes its
    decays later instead of running its last steps at the final rate. When the run
    outlasts its projection, the plan takes in the step about to run.

    Args:
        steps: the planned run length, which the plan never exceeds.
        max_seconds: the time budget (``None``: the plan is always ``steps``).
        start_step: the step the run (or its resumption) starts at.
        min_steps: steps timed before the first projection.
    """

    def __init__(
        self, steps: int, max_seconds: float | None, start_step: int = 0, min_steps: int = 20
    ) -> None:
        self.max_steps = steps
        self.total_steps = steps
        self.max_seconds = max_seconds
        self.start_step = start_step
        self.min_steps = max(1, min_steps)
        # (step, seconds since start_step) at every update, the run's start first.
        self._timeline: list[tuple[int, float]] = [(start_step, 0.0)]

    def update(self, step: int, elapsed: float) -> int:
        """The plan at step ``step``, ``elapsed`` seconds after ``start_step`` began."""
        if self.max_seconds is None:
            return self.total_steps
        last_step = self._timeline[-1][0]
        self._timeline.append((step, elapsed))
        done = step - self.start_step
        if done < self.min_steps:
            return self.total_steps
        window = max(self.min_steps, done // 4)
        # The latest timing at least `window` steps back.
        past = bisect.bisect_right(self._timeline, step - window, key=lambda entry: entry[0])
        since_step, since_seconds = self._timeline[max(past - 1, 0)]
        if elapsed <= since_seconds:
            return self.total_steps
        steps_per_second = (step - since_step) / (elapsed - since_seconds)
        fits = step + int((self.max_seconds - elapsed) * steps_per_second)
        # Lengthening keeps (step + 1) / plan from falling (see the class docstring).
        most = self.total_steps * (step + 1) // (last_step + 1)
        self.total_steps = max(step + 1, min(fits, most, self.max_steps))
        return self.total_steps
