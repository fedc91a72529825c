"""The progress bar of a training stage: running mean losses, steps/s and time left."""

from __future__ import annotations

import math
from collections import deque

from tqdm.auto import tqdm

# Steps over which the bar averages the losses it shows.
PROGRESS_WINDOW = 20


class ProgressBar:
    """A tqdm bar over a stage's steps, showing each loss's mean over the last
    :data:`PROGRESS_WINDOW` steps (without its ``loss_`` prefix).

    Args:
        stage: the bar's label.
        total: the planned steps (``None``: not known yet, as in a time-limited run
            before its length is first projected).
        initial: the steps already done (a resumed stage).
        enabled: ``False`` shows nothing.
    """

    def __init__(
        self, stage: str, total: int | None, initial: int = 0, enabled: bool = True
    ) -> None:
        self._bar = tqdm(
            total=total,
            initial=initial,
            desc=stage,
            unit="step",
            disable=not enabled,
            dynamic_ncols=True,
        )
        self._recent: deque[dict[str, float]] = deque(maxlen=PROGRESS_WINDOW)

    def update(self, losses: dict[str, float], planned_steps: int | None) -> None:
        """One more step done, with its losses; the plan may have changed (time budget;
        ``None`` while it is not known)."""
        self._recent.append(losses)
        self._bar.total = planned_steps
        self._bar.set_postfix(running_means(self._recent), refresh=False)
        self._bar.update()

    def close(self) -> None:
        self._bar.close()


def running_means(records: deque[dict[str, float]]) -> dict[str, str]:
    """Per loss (without its ``loss_`` prefix), the mean over ``records``, for display.

    Skipped steps' non-finite losses are left out, so that one does not hide the
    progress of the next :data:`PROGRESS_WINDOW` steps; ``"nan"`` when no value is finite.
    """
    means = {}
    for name in records[-1]:
        finite = [r[name] for r in records if math.isfinite(r[name])]
        means[name.removeprefix("loss_")] = f"{sum(finite) / len(finite):.3f}" if finite else "nan"
    return means
