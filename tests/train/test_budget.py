"""The time budget: its clock, and the pacer that lays the schedule over the steps that
fit (values worked out by hand)."""

import itertools
import random

import pytest

from faster_rcnn.train.budget import SharedBudget, TimeBudget, TimeBudgetPacer
from faster_rcnn.train.schedule import learning_rate
from faster_rcnn.train.train_config import TrainConfig


def test_the_budget_starts_no_step_that_would_end_past_its_seconds(monkeypatch):
    # A clock that reads 10 s later each time it is read; the budget starts at 0 s.
    clock = iter(range(0, 10_000, 10))
    monkeypatch.setattr("faster_rcnn.train.budget.time.perf_counter", lambda: float(next(clock)))
    budget = TimeBudget(steps=1000, max_seconds=35.0)
    assert [budget.plan(step) for step in range(2)] == [1000, 1000]  # 10 s, 20 s + 10 s
    assert budget.plan(2) is None  # 30 s + a 10 s step would end at 40 s > 35 s


def test_the_next_step_is_predicted_from_the_median_of_the_last_five(monkeypatch):
    """Steps of 8, 30, 9, 10 and 10 s after 1 s of setup, in a 70 s budget: each step
    starts while the median of the steps before it says it ends by 70 s; the sixth, at
    68 s with a median of 10 s, would end at 78 s and does not start (it used to, and the
    run overran by most of a step)."""
    readings = iter([0.0, 1.0, 9.0, 39.0, 48.0, 58.0, 68.0])
    monkeypatch.setattr("faster_rcnn.train.budget.time.perf_counter", lambda: next(readings))
    budget = TimeBudget(steps=1000, max_seconds=70.0)
    # Medians 19 (39 + 19 = 58), 9 (48 + 9 = 57) and 9.5 (58 + 9.5 = 67.5) fit. From the
    # third step on, the run fits fewer than 20: 3 + 1 (22 s left at 3 steps in 47 s),
    # then 4 + 0, at least the step about to run.
    assert [budget.plan(step) for step in range(5)] == [1000, 1000, 1000, 4, 5]
    assert budget.plan(5) is None
    assert list(budget.recent_step_seconds) == [8.0, 30.0, 9.0, 10.0, 10.0]
    assert budget.why_stopped() == (
        "68 s of the 70 s budget spent, and a step takes about 10 s (the median of the "
        "last 5 steps): the next would end past the budget"
    )


def test_the_first_step_runs_unless_the_budget_is_spent(monkeypatch):
    readings = iter([0.0, 4.0, 0.0, 6.0])
    monkeypatch.setattr("faster_rcnn.train.budget.time.perf_counter", lambda: next(readings))
    assert TimeBudget(steps=10, max_seconds=5.0).plan(0) == 10  # nothing timed: 4 s < 5 s
    spent = TimeBudget(steps=10, max_seconds=5.0)
    assert spent.plan(0) is None
    assert spent.why_stopped() == "6 s of the 5 s budget spent"


def test_the_seconds_spent_read_as_the_whole_budget_only_where_they_are(monkeypatch):
    """1199.7 s of a 1200 s budget, rounded to whole seconds as from 100 s on, would read
    as the whole of it: they are written to a tenth; 1200.4 s are not."""
    readings = iter([0.0, 1199.7, 0.0, 1200.4])
    monkeypatch.setattr("faster_rcnn.train.budget.time.perf_counter", lambda: next(readings))
    for said in ("1199.7 s of the 1200 s budget spent", "1200 s of the 1200 s budget spent"):
        budget = TimeBudget(steps=10, max_seconds=1200.0, step_seconds=[1.0])
        assert budget.plan(0) is None
        assert budget.why_stopped().startswith(said + ", and a step takes about 1 s")


def test_a_resumed_budget_predicts_its_first_step_from_the_steps_timed_before(monkeypatch):
    """A run that stopped 60 s into a 70 s budget, its last steps 9-12 s: resumed 1 s
    later, its first step would end at 71 s (the median, 10 s) and does not start."""
    readings = iter([0.0, 1.0])
    monkeypatch.setattr("faster_rcnn.train.budget.time.perf_counter", lambda: next(readings))
    budget = TimeBudget(
        steps=1000, max_seconds=70.0, start_step=6, spent=60.0, step_seconds=[9.0, 10.0, 12.0]
    )
    assert budget.plan(6) is None


def test_a_resumed_budget_goes_on_from_the_seconds_counted_and_the_plan_projected(
    monkeypatch,
):
    """A run stopped after 25 s and 30 steps, having projected 60: resumed, its clock
    reads 25 s more than this process's, it keeps the 60 steps until it has timed 3 steps
    of its own that say it fits fewer than 20 more (or 20 steps), and it starts no step
    that would end past the 35 s budget."""
    clock = iter(range(1000, 10_000))  # 1 s a reading; this process starts at 1000 s
    monkeypatch.setattr("faster_rcnn.train.budget.time.perf_counter", lambda: float(next(clock)))
    budget = TimeBudget(steps=1000, max_seconds=35.0, start_step=30, spent=25.0, plan=60)
    assert budget.projected and budget.shown_plan == budget.kept_plan == 60
    assert budget.seconds_spent() == 26.0  # 1 s after the budget was made
    # At step 33 (30 s), 3 steps in 3 s: 5 s left fit 33 + 5.
    assert [budget.plan(step) for step in range(30, 38)] == [60] * 3 + [38] * 5  # 27 ... 34 s
    assert budget.plan(38) is None  # 35 s + a 1 s step > 35 s
    assert TimeBudget(steps=1000, max_seconds=None).kept_plan is None


def test_without_a_budget_the_plan_is_the_configured_length(monkeypatch):
    clock = iter(range(0, 10**9, 10**6))
    monkeypatch.setattr("faster_rcnn.train.budget.time.perf_counter", lambda: float(next(clock)))
    budget = TimeBudget(steps=50, max_seconds=None, start_step=10)
    assert [budget.plan(step) for step in range(10, 50)] == [50] * 40


def test_the_plan_shown_is_none_until_the_budget_projects_the_run(monkeypatch):
    # One step a second: step 20 is planned 21 s in (the clock started at 0), when the
    # 100 s budget fits 20 + 79 = 99 steps.
    clock = iter(range(10_000))
    monkeypatch.setattr("faster_rcnn.train.budget.time.perf_counter", lambda: float(next(clock)))
    budget = TimeBudget(steps=1_000_000, max_seconds=100.0)
    assert budget.shown_plan is None  # the steps are only a bound
    shown = []
    for step in range(21):
        budget.plan(step)
        shown.append(budget.shown_plan)
    assert shown == [None] * 20 + [99]
    assert TimeBudget(steps=50, max_seconds=None).shown_plan == 50


def test_pacer_keeps_the_plan_without_a_budget_or_before_min_steps():
    assert TimeBudgetPacer(100, None).update(50, 1e9) == 100
    # 10 steps in 50 s of a 120 s budget would project 10 + 14 steps, but 10 < min_steps
    # and the 24 steps are not fewer than min_steps.
    pacer = TimeBudgetPacer(100, 120.0, min_steps=20)
    assert pacer.update(10, 50.0) == 100 and not pacer.projected


def test_a_run_that_fits_fewer_than_min_steps_is_projected_after_early_steps():
    """Steps of 15 s in a 3-minute budget (the bound: 180000 steps), after 1 s of setup:
    from the third step on, the speed says the run fits fewer than 20 steps, and the plan
    is projected then, not at step 20 (which the run would never reach, its schedule laid
    over 180000 steps: never out of the warm-up, never decayed)."""
    pacer = TimeBudgetPacer(180_000, max_seconds=180.0)
    assert [pacer.update(step, 1.0 + 15 * step) for step in range(3)] == [180_000] * 3
    assert not pacer.projected
    # 3 steps in 45 s since the first: 134 s left fit 3 + 8 steps.
    assert pacer.update(3, 46.0) == 11 and pacer.projected
    # 4 steps in 60 s: 119 s left fit 4 + 7 (7.9).
    assert pacer.update(4, 61.0) == 11
    # A 30 s step: 5 steps in 90 s, 89 s left fit 5 + 4.
    assert pacer.update(5, 91.0) == 9


def test_a_fast_run_keeps_the_plans_it_had_before_early_projections():
    """At 0.5 s a step a 20-minute budget fits 2400 steps: nothing is projected before
    step 20, as before there were early projections, and the plans of a run whose speed
    wanders (the recipe's ~2600 steps in 20 minutes) are those of a pacer that never
    projects early (early_steps = min_steps)."""
    pacer = TimeBudgetPacer(1_200_000, max_seconds=1200.0)
    plans = [pacer.update(step, 0.5 * step) for step in range(2400)]
    assert plans[:20] == [1_200_000] * 20
    assert plans[20:] == [2400] * 2380  # 20 + 1190 s at 2 steps a second, and on
    generator = random.Random(1)
    early, late = (
        TimeBudgetPacer(1_200_000, 1200.0),
        TimeBudgetPacer(1_200_000, 1200.0, early_steps=20),
    )
    elapsed, step = 3.0, 0
    while elapsed <= 1200.0:
        assert early.update(step, elapsed) == late.update(step, elapsed), step
        elapsed += generator.uniform(0.3, 0.7) * (4 if step < 3 else 1)
        step += 1
    assert step > 2000


def test_the_plan_is_projected_from_min_steps_on_or_always_without_a_budget():
    assert TimeBudgetPacer(100, None).projected
    pacer = TimeBudgetPacer(1000, max_seconds=100.0, min_steps=20)
    pacer.update(0, 0.0)
    pacer.update(19, 9.5)
    assert not pacer.projected
    pacer.update(20, 10.0)
    assert pacer.projected


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


def test_a_shared_budget_gives_each_stage_its_share_of_the_time_left(monkeypatch):
    now = [0.0]
    monkeypatch.setattr("faster_rcnn.train.budget.time.perf_counter", lambda: now[0])
    budget = SharedBudget(60.0, (2, 1, 2, 1))
    assert budget.seconds_for(0) == 20.0  # 60 * 2/6
    now[0] = 10.0  # the first stage finished early: its 10 s left go to the others
    assert budget.seconds_for(1) == 12.5  # 50 * 1/4
    now[0] = 25.0
    assert budget.seconds_for(2) == pytest.approx(35 * 2 / 3)
    now[0] = 70.0  # overrun: the last stage runs no step
    assert budget.seconds_for(3) == 1e-3
    assert SharedBudget(None, (1, 1)).seconds_for(0) is None


def test_a_resumed_shared_budget_counts_the_seconds_its_stages_spent_before(monkeypatch):
    """60 s shared 2:1:2:1; before the interruption the first stage spent 18 s and the
    second 4 s of its share. Resumed, the first stage is done, the second's share is what
    it was when first reached (42 * 1/4; its own budget goes on from its 4 s), and the
    third's follows from the 4 + 7 s the second spent in all."""
    now = [0.0]
    monkeypatch.setattr("faster_rcnn.train.budget.time.perf_counter", lambda: now[0])
    budget = SharedBudget(60.0, (2, 1, 2, 1), spent=(18.0, 4.0, 0.0, 0.0))
    assert budget.seconds_for(1) == 10.5  # (60 - 18) * 1/4
    now[0] = 7.0  # the second stage's resumed part
    assert budget.seconds_for(2) == pytest.approx((60 - 18 - 4 - 7) * 2 / 3)
