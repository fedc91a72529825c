"""The learning-rate schedule, against values worked out by hand."""

import itertools
import math

import pytest

from faster_rcnn.train.schedule import learning_rate
from faster_rcnn.train.train_config import TrainConfig


def test_warmup_rises_linearly_from_the_warmup_factor():
    cfg = TrainConfig(
        steps=100, lr=0.1, warmup_steps=10, warmup_factor=0.1, schedule="step", lr_decay_at=()
    )
    assert learning_rate(cfg, 0) == pytest.approx(0.01)
    assert learning_rate(cfg, 5) == pytest.approx(0.1 * (0.1 + 0.9 * 0.5))
    assert learning_rate(cfg, 9) == pytest.approx(0.1 * (0.1 + 0.9 * 0.9))
    assert learning_rate(cfg, 10) == pytest.approx(0.1)


def test_step_schedule_divides_by_ten_at_each_boundary():
    cfg = TrainConfig(steps=100, lr=0.1, warmup_steps=0, schedule="step", lr_decay_at=(0.5, 0.75))
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
    cfg = TrainConfig(steps=100, lr=0.1, warmup_steps=0, schedule="step", lr_decay_at=(0.5,))
    assert learning_rate(cfg, 30, total_steps=60) == pytest.approx(0.01)
    assert learning_rate(cfg, 30) == pytest.approx(0.1)
