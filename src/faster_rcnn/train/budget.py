"""The time budget of a run: its clock, and the run length its schedule is laid over.

A run given ``max_seconds`` starts no step that its recent steps' times say would end
past them; so that it still ends at its lowest learning rate, :class:`TimeBudgetPacer`
re-plans the schedule's length from the speed measured as it runs. :class:`SharedBudget`
splits one budget among the stages of a run (the alternating scheme's four steps).
"""

from __future__ import annotations

import bisect
import statistics
import time
from collections import deque
from collections.abc import Sequence

import torch

from ..counted import counted
from . import distributed

_CPU = torch.device("cpu")
# The steps whose median time predicts the next step's: few, so that a run that slows
# down (a loaded machine) is followed within a step or two, and one slow step (a
# checkpoint written) is not taken for the speed.
RECENT_STEPS = 5


class TimeBudget:
    """The clock of a stage and its plan, read once before every step.

    Args:
        steps: the planned run length.
        max_seconds: the budget (``None``: none; the plan is always ``steps``).
        start_step: the step the run (or its resumption) starts at; the clock starts now.
        world_size: processes of a data-parallel run; with more than one, every rank
            reads rank 0's clock (a collective), so that all plan and stop alike.
        device: where that collective's tensor lives.
        spent: the seconds already counted, by the run a resumption continues (its
            checkpoint's :meth:`seconds_spent`): the clock goes on from them.
        plan: the run length that run had projected (its checkpoint's :attr:`kept_plan`),
            kept until the resumption has timed its own steps.
        step_seconds: that run's last steps' times (its checkpoint's
            :attr:`recent_step_seconds`), which predict the resumption's first step.
    """

    def __init__(
        self,
        steps: int,
        max_seconds: float | None,
        start_step: int = 0,
        world_size: int = 1,
        device: torch.device = _CPU,
        spent: float = 0.0,
        plan: int | None = None,
        step_seconds: Sequence[float] = (),
    ) -> None:
        self.max_seconds = max_seconds
        self.world_size, self.device = world_size, device
        self.pacer = TimeBudgetPacer(steps, max_seconds, start_step, spent=spent, plan=plan)
        self.recent_step_seconds: deque[float] = deque(step_seconds, maxlen=RECENT_STEPS)
        # The elapsed seconds read at the last plan, when the step after it started.
        self._last_read: float | None = None
        self.start = time.perf_counter() - spent

    def plan(self, step: int) -> int | None:
        """The run length to lay the schedule over at step ``step``; ``None`` where the
        step would end past the budget (:meth:`next_step_seconds` from now): it must not
        run. A run's first step runs unless the budget is already spent."""
        elapsed = self.elapsed()
        if self._last_read is not None:
            self.recent_step_seconds.append(elapsed - self._last_read)
        self._last_read = elapsed
        if self.max_seconds is not None and elapsed + self.next_step_seconds() > self.max_seconds:
            return None
        return self.pacer.update(step, elapsed)

    def why_stopped(self) -> str:
        """Why the last plan refused its step, in words: the seconds spent, and the
        step's predicted time where one was timed."""
        spent = f"{_spent_seconds(self._last_read, self.max_seconds)} budget spent"
        timed = len(self.recent_step_seconds)
        if not timed:
            return spent
        return (
            f"{spent}, and a step takes about {_seconds(self.next_step_seconds())} (the "
            f"median of the last {counted(timed, 'step')}): the next would end past the budget"
        )

    def next_step_seconds(self) -> float:
        """The next step's time as predicted: the median of the last
        :data:`RECENT_STEPS` steps' (0 before a step is timed)."""
        if not self.recent_step_seconds:
            return 0.0
        return statistics.median(self.recent_step_seconds)

    @property
    def projected(self) -> bool:
        """Whether the last plan was the run's length as projected from its speed (always,
        without a budget), not the planned length it starts from."""
        return self.pacer.projected

    @property
    def shown_plan(self) -> int | None:
        """The run length to show: the plan once it is the run's as projected (always,
        without a budget); ``None`` before, when the plan is only a bound."""
        return self.pacer.total_steps if self.projected else None

    @property
    def kept_plan(self) -> int | None:
        """The plan a checkpoint keeps: the projected run length, ``None`` before one."""
        return self.pacer.total_steps if self.max_seconds is not None and self.projected else None

    def seconds_spent(self) -> float:
        """Seconds counted so far, on this process's clock (no collective)."""
        return time.perf_counter() - self.start

    def elapsed(self) -> float:
        """Seconds since the start (rank 0's in a data-parallel run with a budget)."""
        elapsed = self.seconds_spent()
        if self.max_seconds is not None and self.world_size > 1:
            elapsed = distributed.value_of_main(elapsed, self.device)
        return elapsed


def _seconds(seconds: float) -> str:
    """``seconds`` to read: ``"168 s"``, ``"2.8 s"``, ``"0.35 s"`` (3 digits, whole from 100)."""
    return f"{seconds:.0f} s" if seconds >= 100 else f"{seconds:.3g} s"


def _spent_seconds(spent: float, budget: float) -> str:
    """``"168 s of the 180 s"``: the seconds ``spent`` of a ``budget``, to a tenth where
    rounded they would read as the whole budget they are under (``"1199.7 s of the 1200
    s"``, not ``"1200 s of the 1200 s"``)."""
    shown, whole = _seconds(spent), _seconds(budget)
    if shown == whole and spent < budget:
        shown = f"{spent:.1f} s"
    return f"{shown} of the {whole}"


class TimeBudgetPacer:
    """The run length a time-limited run lays its schedule out over.

    A run stopped by the clock before ``steps`` would never reach the schedule's decays (or
    the end of its cosine). From ``min_steps`` steps into the run on, the pacer projects how
    many steps fit in the budget at the recent speed - over the last quarter of the steps
    run, and at least ``min_steps`` - and makes that the plan. A run of slow steps that
    would end before then (the speed of its first ``early_steps`` steps or more says it
    fits fewer than ``min_steps``) is projected from them, from then on: laid over the
    budget's bound, its schedule would never leave the warm-up. A run that fits
    ``min_steps`` or more keeps its plan until then, as it always did. A slower run shortens the
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
        early_steps: steps timed before a projection of a run that fits fewer than
            ``min_steps`` (at most ``min_steps``).
        spent: the seconds the budget had counted at ``start_step`` (a resumption's).
        plan: the run length projected before ``start_step`` (a resumption's): the plan
            until ``min_steps`` more steps are timed (``early_steps`` where they say the
            resumption fits fewer than ``min_steps``).
    """

    def __init__(
        self,
        steps: int,
        max_seconds: float | None,
        start_step: int = 0,
        min_steps: int = 20,
        spent: float = 0.0,
        plan: int | None = None,
        early_steps: int = 3,
    ) -> None:
        self.max_steps = steps
        self.total_steps = steps if plan is None else min(plan, steps)
        self.max_seconds = max_seconds
        self.start_step = start_step
        self.min_steps = max(1, min_steps)
        self.early_steps = min(max(1, early_steps), self.min_steps)
        # Whether the plan is projected before min_steps (a run that fits fewer).
        self._early = False
        # Whether the plan is the run's length as projected (or, without a budget, as set).
        self.projected = max_seconds is None or plan is not None
        # (step, seconds counted) at every update, the run's start first.
        self._timeline: list[tuple[int, float]] = [(start_step, spent)]

    def update(self, step: int, elapsed: float) -> int:
        """The plan at step ``step``, with ``elapsed`` seconds counted."""
        if self.max_seconds is None:
            return self.total_steps
        last_step = self._timeline[-1][0]
        self._timeline.append((step, elapsed))
        done = step - self.start_step
        if done < self.early_steps:
            return self.total_steps
        # Before min_steps, over every step timed (the early projection's).
        window = max(self.min_steps, done // 4) if done >= self.min_steps else done
        fits = self._steps_that_fit(step, elapsed, window)
        if fits is None:
            return self.total_steps
        if done < self.min_steps and not self._early:
            if fits >= self.start_step + self.min_steps:
                return self.total_steps
            self._early = True
        self.projected = True
        # Lengthening keeps (step + 1) / plan from falling (see the class docstring).
        most = self.total_steps * (step + 1) // (last_step + 1)
        self.total_steps = max(step + 1, min(fits, most, self.max_steps))
        return self.total_steps

    def _steps_that_fit(self, step: int, elapsed: float, window: int) -> int | None:
        """The run length the budget fits at step ``step`` (``elapsed`` seconds counted),
        at the speed since the latest timing at least ``window`` steps back; ``None``
        where no time has passed since."""
        assert self.max_seconds is not None  # update() returned before without a budget
        past = bisect.bisect_right(self._timeline, step - window, key=lambda entry: entry[0])
        since_step, since_seconds = self._timeline[max(past - 1, 0)]
        if elapsed <= since_seconds:
            return None
        steps_per_second = (step - since_step) / (elapsed - since_seconds)
        return step + int((self.max_seconds - elapsed) * steps_per_second)


def resumed_plan(plan: int | None, planned_for: float | None, seconds: float | None) -> int | None:
    """The run length a resumed stage starts from, with a budget of ``seconds`` (``None``:
    none), where its checkpoint had projected ``plan`` steps for one of ``planned_for``.

    Where the budget changed (a finished run given more minutes, say), the plan is as many
    steps as the new budget fits at the speed that plan was projected from: kept as it
    was, it would end the schedule at the old length, and every step past it would train
    at the final rate (0 for the cosine). Without a budget the plan is the steps asked for
    (``None``), as in any run without one.
    """
    if seconds is None:
        return None
    if plan is None or not planned_for:
        return plan
    return max(1, round(plan * seconds / planned_for))


class SharedBudget:
    """One time budget for stages run one after another, shared by weight: each stage
    gets its weight's share of the time left when it starts, so time a stage leaves
    unused (it finished its steps early) goes to the stages after it.

    Args:
        seconds: the whole budget (``None``: no stage has one).
        weights: one per stage, in the order they run.
        world_size / device: as for :class:`TimeBudget` (rank 0's clock decides).
        spent: per stage, the seconds it had spent before this process, for a resumed
            run (its checkpoint's); a stage's share is then what it was when the run
            first reached it, and its own :class:`TimeBudget` goes on from its spent
            seconds.
    """

    def __init__(
        self,
        seconds: float | None,
        weights: Sequence[float],
        world_size: int = 1,
        device: torch.device = _CPU,
        spent: Sequence[float] | None = None,
    ) -> None:
        self.seconds, self.weights = seconds, list(weights)
        self.world_size, self.device = world_size, device
        self.spent = list(spent) if spent is not None else [0.0] * len(self.weights)
        self.start = time.perf_counter()

    def seconds_for(self, stage: int) -> float | None:
        """The budget of stage ``stage`` (0-based), starting now (counting its seconds
        spent before a resumption); at least a millisecond, so that a stage reached after
        the budget is spent runs no step."""
        if self.seconds is None:
            return None
        elapsed = time.perf_counter() - self.start
        if self.world_size > 1:
            elapsed = distributed.value_of_main(elapsed, self.device)
        left = self.seconds - sum(self.spent[:stage]) - elapsed
        return max(left * self.weights[stage] / sum(self.weights[stage:]), 1e-3)
