"""Timing a run's training steps before it is planned: the median gap, the first step out."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from faster_rcnn.train import step_timing
from faster_rcnn.train.step_timing import median_step_seconds


class _ClockedTrainer:
    """A trainer whose steps end at the given clock readings."""

    def __init__(self, ends: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
        self.cfg = SimpleNamespace(steps=len(ends))
        self.on_step = None
        self.fitted = 0
        readings = iter(ends)
        monkeypatch.setattr(step_timing.time, "perf_counter", lambda: next(readings))

    def fit(self) -> None:
        self.fitted += 1
        for step in range(self.cfg.steps):
            self.on_step(step, {"loss": 1.0})


def test_the_median_gap_between_step_ends_leaves_the_first_step_out(monkeypatch) -> None:
    # The first step ends at 9 s (building kernels); the gaps after it: 1, 2, 1.5, 6, 1.
    trainer = _ClockedTrainer([9.0, 10.0, 12.0, 13.5, 19.5, 20.5], monkeypatch)
    assert median_step_seconds(trainer) == 1.5  # the median of 1, 1, 1.5, 2, 6
    assert trainer.fitted == 1
    # Four gaps (4, 1, 3, 2): the mean of the middle two.
    assert median_step_seconds(_ClockedTrainer([0.0, 4.0, 5.0, 8.0, 10.0], monkeypatch)) == 2.5


def test_timing_needs_two_steps(monkeypatch) -> None:
    with pytest.raises(ValueError, match="timing steps needs at least 2, got 1"):
        median_step_seconds(_ClockedTrainer([3.0], monkeypatch))
