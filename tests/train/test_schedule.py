"""The learning-rate schedule, against values worked out by hand."""

import itertools
import math
import random

import pytest

from faster_rcnn.train.loop import TrainConfig
from faster_rcnn.train.schedule import TimeBudgetPacer, learning_rate


def test_warmup_rises_linearly_from_the_warmup_factor():
    cfg = TrainConfig(steps=100, lr=0.1, warmup_steps=10, warmup_factor=0.1, lr_decay_at=())
    assert learning_rate(cfg, 0) == pytest.approx(0.01)
    assert learning_rate(cfg, 5) == pytest.approx(0.1 * (0.1 + 0.9 * 0.5))
    assert learning_rate(cfg, 9) == pytest.approx(0.1 * (0.1 + 0.9 * 0.9))
    assert learning_rate(cfg, 10) == pytest.approx(0.1)


def test_step_schedule_divides_by_ten_at_each_boundary():
    cfg = TrainConfig(steps=100, lr=0.1, warmup_steps=0, lr_decay_at=(0.5, 0.75))
    expected = {0: 0.1, 49: 0.1, 50: 0.01, 74: 0.01, 75: 0.001, 99: 0.001}
    for step, lr in expected.items():
        assert learning_rate(cfg, step) == pytest.approx(lr), step


def test_cosine_schedule_halves_at_the_midpoint_and_ends_at_zero():
    cfg = TrainConfig(steps=100, lr=0.2, warmup_steps=0, schedule="cosine")
    assert learning_rate(cfg, 0) == pytest.approx(0.2)
    assert learning_rate(cfg, 25) == pytest.approx(0.1 * (1 + math.cos(math.pi / 4)))
    assert learning_rate(cfg, 50) == pytest.approx(0.1)
    assert learning_rate(cfg, 100) == pytest.approx(0.0, abs=1e-12)


def test_warmup_multiplies_the_main_schedule():
    cfg = TrainConfig(steps=10, lr=1.0, warmup_steps=4, warmup_factor=0.5, schedule="cosine")
    main = 0.5 * (1 + math.cos(math.pi * 2 / 10))
    assert learning_rate(cfg, 2) == pytest.approx(main * 0.75)


@pytest.mark.parametrize("schedule", ["step", "cosine"])
def test_rate_never_rises_after_warmup(schedule):
    cfg = TrainConfig(steps=50, lr=0.02, warmup_steps=5, schedule=schedule)
    rates = [learning_rate(cfg, step) for step in range(5, 51)]
    assert all(later <= earlier for earlier, later in itertools.pairwise(rates))


@pytest.mark.parametrize(
    "fields",
    [{"schedule": "linear"}, {"warmup_factor": 0.0}, {"batch_size": 0}, {"checkpoint_every": 0}],
)
def test_bad_settings_are_refused(fields):
    with pytest.raises(ValueError):
        TrainConfig(**fields)


def test_total_steps_overrides_the_planned_length():
    cfg = TrainConfig(steps=100, lr=0.1, warmup_steps=0, lr_decay_at=(0.5,))
    assert learning_rate(cfg, 30, total_steps=60) == pytest.approx(0.01)
    assert learning_rate(cfg, 30) == pytest.approx(0.1)


def test_pacer_keeps_the_plan_without_a_budget_or_before_min_steps():
    assert TimeBudgetPacer(100, None).update(50, 1e9) == 100
    # 10 steps in 100 s of a 120 s budget would project 12 steps, but 10 < min_steps.
    assert TimeBudgetPacer(100, 120.0, min_steps=20).update(10, 100.0) == 100


def test_pacer_follows_the_recent_speed_and_lengthens_only_as_progress_allows():
    pacer = TimeBudgetPacer(1000, max_seconds=100.0, min_steps=20)
    assert pacer.update(0, 0.0) == 1000
    # 20 steps in 10 s: 2 steps / s, 90 s left -> 20 + 180 steps.
    assert pacer.update(20, 10.0) == 200
    # Steps 20..40 took 5 s: 4 steps / s, 85 s left -> 40 + 340. Lengthening is allowed
    # up to 200 * 41 / 21 = 390.
    assert pacer.update(40, 15.0) == 380
    # Steps 20..44 in 5.2 s would fit 44 + 391 steps, but (step + 1) / plan must not
    # fall: at most 380 * 45 // 41 = 417.
    assert pacer.update(44, 15.2) == 417
    # Slower: steps 40..60 took 80 s, 5 s left at 0.25 steps / s -> 60 + 1.
    assert pacer.update(60, 95.0) == 61


def test_paced_learning_rates_never_rise_after_warmup():
    """However the speed changes, the schedule laid over the pacer's plan only falls."""
    generator = random.Random(0)
    for schedule in ("step", "cosine"):
        cfg = TrainConfig(steps=5000, lr=0.02, schedule=schedule, warmup_steps=50)
        for _ in range(20):
            pacer = TimeBudgetPacer(cfg.steps, max_seconds=100.0)
            elapsed, rates = 0.0, []
            # Phases of steady speed, from 5 to 80 steps a second.
            speeds = [generator.uniform(5, 80) for _ in range(4)]
            for step in range(cfg.steps):
                if elapsed > 100.0:
                    break
                plan = pacer.update(step, elapsed)
                rates.append(learning_rate(cfg, step, plan))
                elapsed += 1 / speeds[min(3, int(elapsed / 25))]
            after_warmup = rates[cfg.warmup_steps :]
            assert all(b <= a for a, b in itertools.pairwise(after_warmup))
            assert after_warmup[-1] < cfg.lr * 0.01 + 1e-12  # the schedule was reached


def test_pacer_counts_from_a_resumed_step():
    pacer = TimeBudgetPacer(1000, max_seconds=60.0, start_step=500, min_steps=10)
    # 20 steps of this run in 20 s: 40 s left at 1 step / s -> 520 + 40.
    assert pacer.update(520, 20.0) == 560


def test_an_overrun_budget_ends_the_plan_at_the_next_step():
    pacer = TimeBudgetPacer(1000, max_seconds=10.0, min_steps=1)
    assert pacer.update(30, 12.0) == 31
