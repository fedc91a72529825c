"""How long a training step takes, timed before a run is planned.

Some of the recipe's choices pay only where a run fits enough steps (a finer FPN map: each
step costs more, and in a short run the fewer steps cost more than the map gives). In a
time budget the steps are not known until steps are timed: :func:`median_step_seconds`
times a few of the run's own, on its model, data, batch and precision.
"""

from __future__ import annotations

import statistics
import time
from itertools import pairwise

from .trainer import Trainer

# Steps timed after the first, which builds kernels and fills the allocator's caches.
TIMED_STEPS = 5


def median_step_seconds(trainer: Trainer) -> float:
    """Run ``trainer`` for its ``cfg.steps`` (at least 2) and return the median seconds
    from the end of one step to the end of the next, the first step left out.

    A gap holds all a step of the run costs: reading its batch, the forward and backward
    passes, the update. The trainer's model is trained: time a throwaway one.

    Raises:
        ValueError: ``trainer.cfg.steps`` is under 2 (no gap to time).
    """
    if trainer.cfg.steps < 2:
        raise ValueError(f"timing steps needs at least 2, got {trainer.cfg.steps}")
    ends: list[float] = []
    trainer.on_step = lambda step, record: ends.append(time.perf_counter())
    trainer.fit()
    return statistics.median(after - before for before, after in pairwise(ends))
