"""Ending a stage early without losing it: on SIGINT / SIGTERM / SIGHUP, and on a
diverging loss.

Ctrl-C (SIGINT), a scheduler's SIGTERM or a hang-up (SIGHUP: the terminal or the ssh
session the run was started from has gone) asks the stage to stop: the step under way
finishes, the checkpoint is written, and :class:`TrainingInterrupted` says where it is. A
hang-up ignored when the stage begins (``nohup``, run to outlive its terminal) stays
ignored, and the stage goes on.
A second Ctrl-C stops at once, as Python's default does, without that checkpoint; one
that comes within :data:`DOUBLE_PRESS_SECONDS` of the first is taken for the same
press (a key pressed twice in haste) and ignored. A run of steps whose loss (or
gradient) is not finite ends in :class:`TrainingDiverged`, and so does a finite loss
:data:`LOSS_BLOWUP` times the stage's first or more; the weights that gave them are not
saved, so the checkpoint written before them stays for ``--resume``, as it does where a
signal stops the stage amid such steps.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from ..counted import counted

# SIGHUP where the system has it (not Windows).
HANGUP: int | None = getattr(signal, "SIGHUP", None)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, *([HANGUP] if HANGUP is not None else []))
# A second Ctrl-C sooner than this after the first is the same press, not a new request.
DOUBLE_PRESS_SECONDS = 1.0
# A finite loss this many times the stage's first is a diverged run, whose weights have
# blown up: in healthy runs no loss reached twice the first, and over a 1389-step demo run
# none 8 times the lowest before it; at a rate 2000 times too high (--lr 10) the loss is
# 20000 times its first by the fourth step, and 1e8 by the eighth, and the weights are
# garbage though finite, which the non-finite checks let through to the checkpoints.
LOSS_BLOWUP = 1e4


class TrainingInterrupted(Exception):
    """A stage stopped by a signal after ``steps_done`` steps; ``checkpoint`` is the folder
    it resumes from (``None``: nothing saved). ``kept_steps``: the steps of that
    checkpoint where it was written before the last steps, whose loss or gradient was not
    finite (their weights are not saved); ``None`` where it holds them all."""

    def __init__(
        self,
        stage: str,
        steps_done: int,
        signum: int,
        checkpoint: Path | None,
        kept_steps: int | None = None,
    ):
        self.stage, self.steps_done, self.signum = stage, steps_done, signum
        self.checkpoint = checkpoint
        saved = saved_words(checkpoint, kept_steps)
        name = signal.Signals(signum).name
        super().__init__(f"{stage}: stopped by {name} after {counted(steps_done, 'step')}; {saved}")


def saved_words(checkpoint: Path | None, kept_steps: int | None = None) -> str:
    """What a stage stopped short left to resume from, in words: ``checkpoint`` (``None``:
    nothing), where ``kept_steps`` is not ``None`` the one of that many steps written
    before the last steps, whose loss or gradient was not finite."""
    if checkpoint is None:
        return "nothing saved"
    if kept_steps is None:
        return f"checkpoint in {checkpoint}"
    return (
        f"the checkpoint of step {kept_steps} in {checkpoint}, written before the "
        "non-finite losses or gradients since, is kept"
    )


class TrainingDiverged(FloatingPointError):
    """Too many steps in a row had a non-finite loss, or a loss blew up; the checkpoint
    written before them is kept, not overwritten by the weights that gave them."""


class StopRequest:
    """The stop signal received, if any: :attr:`signum`, set by :meth:`handle`.

    Only the process that made it handles signals: a data-loader worker forked while its
    handler is installed inherits it, and a Ctrl-C reaches every process of the
    terminal's group, but the main process alone decides when training stops (the
    worker loads on until it is shut down) and says so.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._first_press = 0.0
        self._pid = os.getpid()

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._pid:
            return
        if signum == signal.SIGINT and self.signum == signal.SIGINT:
            if time.monotonic() - self._first_press > DOUBLE_PRESS_SECONDS:
                raise KeyboardInterrupt  # a second Ctrl-C: the user does not want to wait
            return  # the same press, twice in haste
        if signum == signal.SIGINT:
            self._first_press = time.monotonic()
            sys.stderr.write(
                "\nstopping after the step under way, with a checkpoint (Ctrl-C again quits "
                "without one)\n"
            )
        self.signum = signum


@contextmanager
def stop_requests() -> Iterator[StopRequest]:
    """While inside, SIGINT, SIGTERM and SIGHUP (where not ignored: :func:`stop_signals`)
    are recorded in the request instead of stopping the process; the previous handlers
    come back after. Outside the main thread (where Python cannot install handlers)
    signals keep their handlers."""
    request = StopRequest()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in stop_signals():
            previous[signum] = signal.signal(signum, request.handle)
    try:
        yield request
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def stop_signals() -> tuple[int, ...]:
    """The :data:`STOP_SIGNALS` to handle now: all but a hang-up that is ignored, as
    ``nohup`` ignores it for a command to go on after its terminal has gone."""
    ignored = HANGUP is not None and signal.getsignal(HANGUP) == signal.SIG_IGN
    return tuple(signum for signum in STOP_SIGNALS if not (ignored and signum == HANGUP))


class NonFiniteGuard:
    """Counts the steps skipped for a non-finite loss or gradient (their update is not
    applied); ``limit`` of them in a row mean the stage has diverged, and so does a
    finite loss :data:`LOSS_BLOWUP` times the stage's first or more (of the weights it
    started from; read from ``history`` when resumed).

    Args:
        stage: named in warnings and errors.
        limit: skipped steps in a row that stop the stage.
        history: the losses of the steps the stage has done (resumed), as
            ``Trainer.fit`` returns them.
    """

    def __init__(self, stage: str, limit: int, history: Sequence[dict[str, float]] = ()) -> None:
        self.stage, self.limit = stage, limit
        self.in_a_row = 0
        self.skipped = 0
        # The stage's first positive finite loss (a ratio to 0 means nothing).
        self.first_loss = next((r["loss"] for r in history if _usable(r["loss"])), None)
        # The step whose loss blew up, that loss and the first it is compared with.
        self.blown_up: tuple[int, float, float] | None = None

    def check(self, step: int, losses: dict[str, float], updated: bool = True) -> None:
        """Count step ``step`` as good or skipped, by its losses and whether its update
        was applied (one with a finite loss is not where its gradient is not finite)."""
        finite = all(map(math.isfinite, losses.values()))
        if finite:
            self._check_blowup(step, losses["loss"])
        if finite and updated:
            self.in_a_row = 0
            return
        self.in_a_row += 1
        self.skipped += 1
        what = f"gradient (loss {losses['loss']:g})" if finite else f"loss {losses}"
        warnings.warn(
            f"{self.stage}, step {step}: non-finite {what}; the step was skipped",
            stacklevel=3,
        )

    def _check_blowup(self, step: int, loss: float) -> None:
        if self.first_loss is None:
            self.first_loss = loss if _usable(loss) else None
        elif loss >= LOSS_BLOWUP * self.first_loss:
            self.blown_up = (step, loss, self.first_loss)

    @property
    def diverged(self) -> bool:
        return self.in_a_row >= self.limit or self.blown_up is not None

    @property
    def holds_back(self) -> bool:
        """Whether the weights of the last step are not to be saved: their loss was not
        finite, or blew up."""
        return self.in_a_row > 0 or self.blown_up is not None

    def error(self, checkpoint: Path | None, steps: int = 0) -> TrainingDiverged:
        """The error that ends the stage; ``checkpoint``: the one kept (of ``steps``
        steps), written before the non-finite or blown-up losses, or ``None``."""
        kept = (
            f"; the checkpoint of step {steps} in {checkpoint}, written before them, is kept "
            "(--resume goes on from it)"
            if checkpoint is not None
            else ""
        )
        if self.blown_up is not None:
            step, loss, first = self.blown_up
            return TrainingDiverged(
                f"{self.stage}, step {step}: the loss blew up to {loss:.3g}, "
                f"{loss / first:.2g} times the stage's first ({first:.3g}); "
                f"stopped without saving the weights that gave it{kept}. The learning rate "
                "is too high: train with a lower --lr"
            )
        return TrainingDiverged(
            f"{self.stage}: {counted(self.in_a_row, 'step')} in a row had a non-finite loss "
            "or gradient; "
            f"stopped without saving the weights that gave it{kept}. Likely causes: a "
            "learning rate too high for the batch size (--lr), boxes far outside their "
            "images, or float16 overflow"
        )


def _usable(loss: float) -> bool:
    """Whether ``loss`` can be the reference of a blow-up: positive and finite."""
    return math.isfinite(loss) and loss > 0
