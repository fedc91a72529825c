"""When a training stage writes its checkpoint: every so many steps or minutes, and at
its end."""

from __future__ import annotations

import time
from collections.abc import Callable


class CheckpointCadence:
    """Calls ``save`` after every ``every``-th step (or the first step called after it),
    after the first step that ends ``minutes`` or more after the last save, and once more
    at the end of the stage unless the last step's checkpoint is already written.

    Args:
        every: steps between checkpoints (``None``: not by steps).
        save: writes the checkpoint of the steps done so far; ``None`` writes nothing
            (a stage without an output folder).
        saved_at: the steps the checkpoint already on disk holds (a resumed stage), or
            ``None``.
        minutes: time between checkpoints (``None``: not by time).
        clock: seconds, read only with ``minutes`` (data-parallel runs pass rank 0's
            clock, so that every process saves at the same step).
    """

    def __init__(
        self,
        every: int | None,
        save: Callable[[], None] | None,
        saved_at: int | None = None,
        minutes: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.every, self.minutes, self.clock = every, minutes, clock
        self._save = save
        self.saved_at = saved_at
        self._saved_time = clock() if minutes is not None else 0.0

    def after_step(self, steps_done: int) -> None:
        """The stage has done ``steps_done`` steps; write them when one is due."""
        # Past a multiple of ``every`` since the last save: one the trainer held back
        # (its weights' loss was not finite) is written at the next step it calls for.
        by_steps = (
            self.every is not None and steps_done // self.every > (self.saved_at or 0) // self.every
        )
        if by_steps or self._time_is_due():
            self._write(steps_done)

    def at_end(self, steps_done: int) -> None:
        """The stage ends (finished, out of time or stopped) after ``steps_done`` steps."""
        if self.saved_at != steps_done:
            self._write(steps_done)

    def _time_is_due(self) -> bool:
        return self.minutes is not None and self.clock() - self._saved_time >= self.minutes * 60

    def _write(self, steps_done: int) -> None:
        if self._save is not None:
            self._save()
            self.saved_at = steps_done
            if self.minutes is not None:
                self._saved_time = self.clock()
