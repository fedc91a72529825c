"""A clock for tests of time budgets that does not hang on the machine's load."""

from __future__ import annotations

import pytest

from faster_rcnn.train.trainer import Trainer


def clock_of_steps(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Make the budget's ``time.perf_counter`` a clock that stands still but for
    ``seconds`` a training step: a time budget then fits as many steps whatever the
    machine's load."""
    now = [0.0]
    take_step = Trainer._step

    def timed_step(self, *args, **kwargs):
        now[0] += seconds
        return take_step(self, *args, **kwargs)

    monkeypatch.setattr("faster_rcnn.train.budget.time.perf_counter", lambda: now[0])
    monkeypatch.setattr(Trainer, "_step", timed_step)
