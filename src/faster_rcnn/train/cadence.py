"""When a training stage writes its checkpoint: every ``every`` steps, and at its end."""

from __future__ import annotations

from collections.abc import Callable


class CheckpointCadence:
    """Calls ``save`` after every ``every``-th step and once more at the end of the stage,
    unless the last step's checkpoint is already written.

    Args:
        every: steps between checkpoints (``None``: only at the end).
        save: writes the checkpoint of the steps done so far; ``None`` writes nothing
            (a stage without an output folder).
        saved_at: the steps the checkpoint already on disk holds (a resumed stage), or
            ``None``.
    """

    def __init__(
        self, every: int | None, save: Callable[[], None] | None, saved_at: int | None = None
    ) -> None:
        self.every = every
        self._save = save
        self.saved_at = saved_at

    def after_step(self, steps_done: int) -> None:
        """The stage has done ``steps_done`` steps; write them when one is due."""
        if self.every is not None and steps_done % self.every == 0:
            self._write(steps_done)

    def at_end(self, steps_done: int) -> None:
        """The stage ends (finished or out of time) after ``steps_done`` steps."""
        if self.saved_at != steps_done:
            self._write(steps_done)

    def _write(self, steps_done: int) -> None:
        if self._save is not None:
            self._save()
            self.saved_at = steps_done
