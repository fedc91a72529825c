"""The learning-rate schedule, against values worked out by hand."""

import itertools
import math

import pytest

from faster_rcnn.config import FLOAT32_LARGEST, FLOAT32_SMALLEST, ConfigError
from faster_rcnn.train.alternating import paper_step_config
from faster_rcnn.train.schedule import learning_rate, short_run_scale
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


@pytest.mark.parametrize("lr", [1e-320, FLOAT32_SMALLEST / 2, 1e39, 1e308])
def test_a_rate_float32_makes_0_or_cannot_hold_is_refused(lr):
    """The float32 weights take the rate as float32: 1e-320 trained without a word and
    updated nothing, 1e308 stopped the first step with a traceback ("value cannot be
    converted to type float without overflow")."""
    with pytest.raises(ConfigError) as refused:
        TrainConfig(lr=lr)
    assert str(refused.value) == (
        "TrainConfig.lr must be in [1.4e-45, 3.4e+38] (> 0 and finite in float32)"
    )


def test_unusual_rates_and_norms_float32_holds_are_kept_and_a_norm_it_makes_0_is_refused():
    for lr in (FLOAT32_SMALLEST, 1e-30, 1e6, FLOAT32_LARGEST):
        assert TrainConfig(lr=lr).lr == lr
    assert TrainConfig(grad_clip_norm=FLOAT32_SMALLEST).grad_clip_norm == FLOAT32_SMALLEST
    with pytest.raises(ConfigError, match=r"^TrainConfig.grad_clip_norm must be at least 1.4e-45"):
        TrainConfig(grad_clip_norm=1e-320)  # clips every gradient to 0


def test_total_steps_overrides_the_planned_length():
    cfg = TrainConfig(steps=100, lr=0.1, warmup_steps=0, schedule="step", lr_decay_at=(0.5,))
    assert learning_rate(cfg, 30, total_steps=60) == pytest.approx(0.01)
    assert learning_rate(cfg, 30) == pytest.approx(0.1)


def test_warmup_share_caps_the_warmup_at_a_share_of_the_planned_run() -> None:
    # 60 steps with a share of 10: 6 warm-up steps, not 50. A time-limited run whose plan
    # is 1000 steps gets min(50, 100) = 50; without a share the warm-up is always 50.
    capped = TrainConfig(
        steps=60, lr=1.0, warmup_steps=50, warmup_factor=0.1, warmup_share=10,
        schedule="step", lr_decay_at=(),
    )  # fmt: skip
    assert learning_rate(capped, 3) == pytest.approx(0.1 + 0.9 * 3 / 6)
    assert learning_rate(capped, 6) == 1.0
    assert learning_rate(capped, 3, total_steps=1000) == pytest.approx(0.1 + 0.9 * 3 / 50)
    uncapped = capped.replace(warmup_share=None)
    assert learning_rate(uncapped, 3) == pytest.approx(0.1 + 0.9 * 3 / 50)
    # Fewer steps than the share: no warm-up at all.
    assert learning_rate(capped.replace(steps=9), 0) == 1.0


def test_a_run_shorter_than_twice_its_warmup_warms_up_over_half_of_it() -> None:
    # The default warm-up is 50 steps; a run of 30 warms up over 15 and then follows its
    # cosine from step 15, where it used to end still warming up, at 0.1 + 0.9 * 29 / 50 =
    # 62 % of its rate. A run of 100 or more keeps its 50.
    run = TrainConfig(steps=30, lr=1.0)
    assert (run.warmup_steps, run.warmup_factor) == (50, 0.1)

    def cosine(step: int, steps: int = 30) -> float:
        return 0.5 * (1 + math.cos(math.pi * step / steps))

    assert learning_rate(run, 14) == pytest.approx(cosine(14) * (0.1 + 0.9 * 14 / 15))
    assert learning_rate(run, 15) == pytest.approx(cosine(15))
    longer = run.replace(steps=100)
    assert learning_rate(longer, 49) == pytest.approx(cosine(49, 100) * (0.1 + 0.9 * 49 / 50))
    assert learning_rate(longer, 50) == pytest.approx(cosine(50, 100))


def test_alternating_steps_warm_up_for_a_tenth_of_their_planned_length() -> None:
    # 355 steps split 2:1:2:1: the second step has 59, so it warms up for 5.
    stage = paper_step_config(1, total_steps=355)
    assert (stage.steps, stage.warmup_share, stage.schedule) == (59, 10, "cosine")

    def cosine(step: int) -> float:
        return stage.lr * 0.5 * (1 + math.cos(math.pi * step / 59))

    assert learning_rate(stage, 4) == pytest.approx(cosine(4) * (0.1 + 0.9 * 4 / 5))
    assert learning_rate(stage, 5) == pytest.approx(cosine(5))


@pytest.mark.parametrize(
    ("short_run_steps", "total_steps", "scale"),
    [(None, 100, 1.0), (520, 600, 1.0), (520, 520, 1.0), (520, 400, 1.3), (520, 260, 2.0),
     (520, 100, 2.0)],
)  # fmt: skip
def test_a_short_run_scales_its_rate_by_the_steps_it_lacks_at_most_twice(
    short_run_steps, total_steps, scale
):
    cfg = TrainConfig(short_run_steps=short_run_steps)
    assert short_run_scale(cfg, total_steps) == pytest.approx(scale)


def test_short_run_steps_must_be_positive():
    with pytest.raises(ValueError, match="short_run_steps"):
        TrainConfig(short_run_steps=0)
