"""The trainer every scheme drives: batches in, summed losses, one SGD step, repeated.

Joint training, RPN-only training and each step of the paper's alternating scheme are a
:class:`Trainer` with a different ``compute_losses`` (which losses, from which forward
pass) and a different set of trained parameters. Its parts each live in a file of their
own: the optimizer and random state and their checkpoints (:mod:`.state`), one SGD step
(:mod:`.step`), when checkpoints are written (:mod:`.cadence`), the time budget
(:mod:`.budget`), the progress bar (:mod:`.progress`) and the metrics file
(:mod:`.metrics`).

Given an output folder, a stage writes ``<out_dir>/<stage>/`` (a
:class:`~faster_rcnn.train.checkpoint.TrainingCheckpoint`) every
``cfg.checkpoint_every`` steps and at its end, and appends one record per step to
``<out_dir>/metrics.jsonl``. Resumed, it continues from its checkpoint: the batches and
the learning rate are functions of the step and every random state is restored, so on
the same machine a resumed run ends with the same weights, bit for bit, as one that was
never interrupted.
"""

from __future__ import annotations

import math
import re
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..counted import counted
from ..data.dataset import Sample, UnreadableImageError
from ..data.loader import Batch, iterate_batches
from ..data.unreadable import UnreadableLog
from ..host_memory import give_back_when_short
from ..model import FasterRCNN
from . import distributed
from .budget import TimeBudget
from .cadence import CheckpointCadence
from .checkpoint import MODEL_FILE, STATE_FILE, TrainingCheckpoint
from .metrics import METRICS_FILE, MetricsLogger, drop_records
from .progress import ProgressBar
from .schedule import learning_rate, short_run_scale
from .state import TrainingState, data_signature
from .step import BatchLosses, StepResult, train_step
from .stops import NonFiniteGuard, StopRequest, TrainingInterrupted, saved_words, stop_requests
from .train_config import TrainConfig

LossFn = Callable[
    [FasterRCNN, list[Tensor], list[dict[str, Tensor]], torch.Generator], dict[str, Tensor]
]
# The stage's step callback: (step index, its losses as floats).
OnStep = Callable[[int, dict[str, float]], None]

__all__ = ["LossFn", "OnStep", "Trainer", "detector_losses", "nothing_to_resume"]


def detector_losses(
    model: FasterRCNN,
    images: list[Tensor],
    targets: list[dict[str, Tensor]],
    generator: torch.Generator,
) -> dict[str, Tensor]:
    """All four losses of one forward pass: the paper's approximate joint training (the
    proposals are constants for the Fast R-CNN head)."""
    return model(images, targets, generator=generator)


class Trainer:
    """Trains ``model`` in place on ``dataset`` (items ``(image, target)``), one stage.

    Args:
        model: the detector, on the device to train on; put in training mode by :meth:`fit`.
        dataset: the training examples (any sequence, or a :mod:`faster_rcnn.data`
            dataset); batches come from :func:`faster_rcnn.data.loader.iterate_batches`.
        cfg: optimisation settings.
        compute_losses: the losses of a batch, summed for the step (default: all four,
            approximate joint training).
        parameters: the parameters to optimise (default: all that require a gradient).
        stage: the stage's name, a folder name (letters, digits, ``_`` and ``-``).
        out_dir: where checkpoints (``<out_dir>/<stage>/``) and ``metrics.jsonl`` go;
            ``None`` writes nothing.
        on_step: called after every step with the step index and its losses.
        progress: show a progress bar (running mean losses, steps/s, time left).
        tensorboard_dir: also log the metrics for TensorBoard there (needs the
            ``tensorboard`` package).
        unreadable: where the unreadable images met are recorded, shared by the stages
            of one run (default: a log of this stage's own, strict unless
            ``cfg.skip_unreadable``, warning on rank 0).
        weights: the initial weights the model was built from, which its checkpoints
            record (:func:`~faster_rcnn.train.state.weights_record`; ``None``: not said).
        scheme: the training scheme the stage is part of (``train --scheme``), which its
            checkpoints record (``None``: not said).

    The samplers draw from a generator seeded with ``cfg.seed`` (and the rank), and the
    batch order depends on ``cfg.seed`` and the step alone, so a run is repeatable on the
    same machine. Inside a ``torch.distributed`` process group the stage trains
    data-parallel (see :mod:`faster_rcnn.train.distributed`).

    Raises:
        ValueError: a bad ``stage`` name.
    """

    def __init__(
        self,
        model: FasterRCNN,
        dataset: Sequence[Sample],
        cfg: TrainConfig,
        *,
        compute_losses: LossFn = detector_losses,
        parameters: Sequence[nn.Parameter] | None = None,
        stage: str = "joint",
        out_dir: Path | None = None,
        on_step: OnStep | None = None,
        progress: bool = False,
        tensorboard_dir: Path | None = None,
        unreadable: UnreadableLog | None = None,
        weights: dict[str, Any] | None = None,
        scheme: str | None = None,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", stage):
            raise ValueError(f"stage name {stage!r} must be letters, digits, '_' or '-'")
        self.model, self.dataset, self.cfg, self.stage = model, dataset, cfg, stage
        self.rank, self.world_size = distributed.rank_and_world_size()
        self.device = next(model.parameters()).device
        trained = [p for p in model.parameters() if p.requires_grad]
        if parameters is not None:
            trained = list(parameters)
        self.state = TrainingState(
            model,
            cfg,
            trained,
            stage,
            self.rank,
            self.world_size,
            data_signature(dataset),
            weights,
            scheme,
        )
        self.compute_losses = compute_losses
        # The default loss uses every parameter; others may leave some out.
        self.may_leave_parameters_out = (
            parameters is not None or compute_losses is not detector_losses
        )
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.stage_dir = self.out_dir / stage if self.out_dir is not None else None
        self.on_step, self.progress, self.tensorboard_dir = on_step, progress, tensorboard_dir
        # Steps of the last fit whose loss or gradient was not finite (no update applied).
        self.skipped_steps = 0
        # The step the last fit resumed at; None when it started afresh.
        self.resumed_at: int | None = None
        # The unreadable images met, each replaced by the next readable one.
        if unreadable is None:
            unreadable = UnreadableLog(strict=not cfg.skip_unreadable, warn=self.rank == 0)
        self.unreadable = unreadable

    def fit(self, resume: bool = False) -> list[dict[str, float]]:
        """Run the stage's steps (those left, resumed) and return their losses.

        SIGINT, SIGTERM and SIGHUP (a hang-up, where ``nohup`` does not ignore it) stop
        the stage after the step under way, with a checkpoint (see :mod:`.stops`); a step
        whose loss is not finite is skipped, and too many in a row stop the stage, keeping
        the checkpoint written before them (none is written while the losses are not
        finite: their weights gave them; a signal or a strict stop at an unreadable image
        amid them keeps it too); so does one finite loss :data:`~.stops.LOSS_BLOWUP` times
        the stage's first. An image that cannot be read is replaced by the next readable
        one, with a warning, and counted in :attr:`unreadable` (with
        ``cfg.skip_unreadable`` off it stops the stage, with a checkpoint).

        Args:
            resume: continue from the checkpoint in ``<out_dir>/<stage>/`` (model,
                optimizer, step, history and random states); a stage that had finished
                runs no step and returns its history.

        Returns:
            Per step since the start of the stage (resumed steps included), the losses and
            their sum (``"loss"``) as floats; averaged over the processes of a
            data-parallel run.

        Raises:
            FileNotFoundError: ``resume`` and no checkpoint to resume from.
            ValueError: ``resume`` without an output folder, or an unusable checkpoint;
                with one, a model its config does not rebuild (a module replaced after
                building: :meth:`~faster_rcnn.FasterRCNN.check_config_rebuilds`), whose
                checkpoints could not be saved.
            ImportError: ``tensorboard_dir`` without TensorBoard installed.
            TrainingInterrupted: SIGINT, SIGTERM or SIGHUP stopped the stage.
            TrainingDiverged: ``cfg.max_nonfinite_steps`` non-finite losses in a row, or
                a loss :data:`~.stops.LOSS_BLOWUP` times the stage's first.
            UnreadableImageError: an unreadable image without ``cfg.skip_unreadable``, or
                no readable image at all.
        """
        self._check_savable()
        history = self._start(resume)
        guard = NonFiniteGuard(self.stage, self.cfg.max_nonfinite_steps, history)
        with stop_requests() as stops, distributed.peers_lost_as_error(self._lost_peers_message):
            unreadable = self._run_steps(history, resume, guard, stops)
            # Also a signal that came during the last step's checkpoint.
            stopped = self._stop_requested(stops)
            self._sync_replicas()
        self.skipped_steps = guard.skipped
        if stopped:
            # Data-parallel, the signal may have reached another process only.
            signum = stops.signum if stops.signum is not None else signal.SIGTERM
            raise TrainingInterrupted(
                self.stage, len(history), signum, *self._left_to_resume(guard, len(history))
            )
        if guard.diverged:
            raise guard.error(*self._kept_checkpoint())
        if unreadable is not None:
            saved = ""
            if self.stage_dir is not None:
                saved = "; " + saved_words(*self._left_to_resume(guard, len(history)))
            raise UnreadableImageError(unreadable.path, f"{unreadable}{saved}")
        return history

    def _run_steps(
        self,
        history: list[dict[str, float]],
        resume: bool,
        guard: NonFiniteGuard,
        stops: StopRequest,
    ) -> UnreadableImageError | None:
        """Append the records of the steps left to ``history`` until the last step, the
        time budget, a stop request, divergence or an unreadable image that must stop the
        stage (returned) ends them; then write the final checkpoint."""
        start_step = len(history)
        budget = self._time_budget(start_step)
        cadence = self._cadence(history, resume, budget)
        losses_of = self._batch_losses()
        self.model.train()
        show = self.progress and self.rank == 0
        unreadable: UnreadableImageError | None = None
        cut_short = False  # by divergence, a stop signal or an unreadable image
        with (
            self._metrics_logger() as logger,
            closing(self._batches(start_step)) as batches,
            closing(ProgressBar(self.stage, budget.shown_plan, start_step, enabled=show)) as bar,
        ):
            for step in range(start_step, self.cfg.steps):
                tic = time.perf_counter()
                planned_steps = budget.plan(step)
                if planned_steps is None:
                    self._say(
                        f"{self.stage}: stopped after {counted(step, 'step')}: "
                        + budget.why_stopped()
                    )
                    break
                batch = next(batches)
                unreadable = self._check_batch(step, batch)
                if unreadable is not None:
                    cut_short = True
                    break
                lr = self._rate_scale(budget, planned_steps) * learning_rate(
                    self.cfg, step, planned_steps
                )
                record, grad_norm = self._step(batch, lr, losses_of)
                give_back_when_short()
                history.append(record)
                guard.check(step, record, updated=grad_norm is not None)
                logger.log(self._metrics(step, lr, record, grad_norm, len(batch[0]), tic))
                bar.update(record, budget.shown_plan)
                if not guard.holds_back:  # weights with a non-finite or blown-up loss
                    cadence.after_step(len(history))
                if self.on_step is not None:
                    self.on_step(step, record)
                cut_short = guard.diverged or self._stop_requested(stops)
                if cut_short:
                    break
            # Not the weights that gave the last losses where they were not finite (or blew
            # up) and the stage stops short of its end: the checkpoint before them stays.
            if not (cut_short and guard.holds_back):
                cadence.at_end(len(history))
        return unreadable

    def _time_budget(self, start_step: int) -> TimeBudget:
        """The stage's steps and ``cfg.max_seconds`` from ``start_step`` on, with what the
        run resumed had spent, planned and timed."""
        return TimeBudget(
            self.cfg.steps,
            self.cfg.max_seconds,
            start_step,
            self.world_size,
            self.device,
            spent=self.state.seconds_spent,
            plan=self.state.planned_steps,
            step_seconds=self.state.step_seconds,
        )

    def _check_savable(self) -> None:
        """Refuse, before any step, a model that its checkpoints could not save: the
        first one would stop the stage, its steps lost."""
        if self.stage_dir is None:
            return
        try:
            self.model.check_config_rebuilds()
        except ValueError as error:
            raise ValueError(
                f"cannot checkpoint {self.stage} in {self.stage_dir}: {error}"
            ) from None

    def _left_to_resume(self, guard: NonFiniteGuard, done: int) -> tuple[Path | None, int | None]:
        """The checkpoint a stage stopped short after ``done`` steps leaves (``None``:
        none) and, where it was written before the last steps (whose loss was not finite:
        ``guard`` held them back), its steps; ``None`` where it holds them all."""
        if not guard.holds_back:
            return self.stage_dir, None
        kept, steps = self._kept_checkpoint()
        return kept, steps if steps != done else None

    def _kept_checkpoint(self) -> tuple[Path | None, int]:
        """The stage's checkpoint on disk and its steps (``None`` and 0: none)."""
        kept = TrainingCheckpoint.find(self.stage_dir) if self.stage_dir is not None else None
        return kept, TrainingCheckpoint.steps_in(kept) if kept is not None else 0

    def _rate_scale(self, budget: TimeBudget, planned_steps: int) -> float:
        """The short-run scale of the rate (``cfg.short_run_steps``): 1 until the budget
        first projects the run's length, then the scale settled from that projection,
        kept for the rest of the stage (its checkpoints carry it), though the plan moves."""
        if self.state.lr_scale is None and budget.projected:
            self.state.lr_scale = short_run_scale(self.cfg, planned_steps)
            if self.state.lr_scale > 1 and self.progress and self.rank == 0:
                tqdm.write(
                    f"{self.stage}: about {counted(planned_steps, 'step')} fit, fewer than "
                    f"{self.cfg.short_run_steps} (train.short_run_steps): the rate rises "
                    f"{self.state.lr_scale:.2f} times, to {self.cfg.lr * self.state.lr_scale:g}"
                )
        return 1.0 if self.state.lr_scale is None else self.state.lr_scale

    def _say(self, line: str) -> None:
        """Write ``line`` above the progress bar, where there is one (rank 0's)."""
        if self.progress and self.rank == 0:
            tqdm.write(line)

    def _lost_peers_message(self, reason: str) -> str:
        """What a data-parallel stage that lost a process says (see
        :func:`.distributed.peers_lost_as_error`)."""
        saved = TrainingCheckpoint.find(self.stage_dir) if self.stage_dir is not None else None
        where = f"resume from the checkpoint in {saved}" if saved else "nothing was saved"
        return f"{self.stage}: lost contact with the other training processes ({reason}); {where}"

    def _check_batch(self, step: int, batch: Batch) -> UnreadableImageError | None:
        """Record the batch's unreadable images; the error that ends the stage (strict,
        or no readable image at all), if any."""
        if not batch[0]:  # not one readable image to replace the batch's with
            first = batch.unreadable[0]
            return UnreadableImageError(
                Path(first.file),
                f"{self.stage}: none of the {counted(len(self.dataset), 'image')} can be read "
                f"({first.reason})",
            )
        try:
            self.unreadable.note(batch.unreadable, f"{self.stage}, step {step}")
        except UnreadableImageError as error:
            return error
        return None

    def _cadence(
        self, history: list[dict[str, float]], resumed: bool, budget: TimeBudget
    ) -> CheckpointCadence:
        """When this stage writes ``history`` and the state, with where ``budget`` stands
        (nothing without a folder)."""
        save = partial(self._save, self.stage_dir, history, budget) if self.stage_dir else None
        return CheckpointCadence(
            self.cfg.checkpoint_every,
            save,
            saved_at=len(history) if resumed else None,
            minutes=self.cfg.checkpoint_minutes,
            clock=self._shared_clock,
        )

    def _save(self, stage_dir: Path, history: list[dict[str, float]], budget: TimeBudget) -> None:
        """Checkpoint the stage in ``stage_dir`` after ``len(history)`` steps, with the
        seconds its budget counted, the run length it projected and its last steps' times."""
        self.state.seconds_spent = budget.seconds_spent()
        self.state.planned_steps = budget.kept_plan
        self.state.step_seconds = list(budget.recent_step_seconds)
        self.state.save(stage_dir, history)

    def _shared_clock(self) -> float:
        """Seconds on rank 0's clock (a collective in a data-parallel run)."""
        if self.world_size > 1:
            return distributed.value_of_main(time.perf_counter(), self.device)
        return time.perf_counter()

    def _stop_requested(self, stops: StopRequest) -> bool:
        """A stop signal reached this process (or, data-parallel, any process)."""
        if self.world_size > 1:
            return distributed.any_over_ranks(stops.signum is not None, self.device)
        return stops.signum is not None

    def _start(self, resume: bool) -> list[dict[str, float]]:
        """The history to continue (empty for a fresh stage); the metrics file loses the
        records of the steps about to be (re)done."""
        history: list[dict[str, float]] = []
        if resume:
            if self.stage_dir is None:
                raise ValueError("resume=True needs out_dir, where the checkpoint is")
            if TrainingCheckpoint.find(self.stage_dir) is None:
                raise FileNotFoundError(nothing_to_resume(self.stage, self.stage_dir))
            history = self.state.restore(self.stage_dir)
            self.resumed_at = len(history)
            if self.progress and self.rank == 0:
                tqdm.write(f"{self.stage}: {self._resuming(len(history))} ({self.stage_dir})")
        if self.out_dir is not None and self.rank == 0:
            drop_records(self.out_dir / METRICS_FILE, self.stage, len(history))
        return history

    def _resuming(self, done: int) -> str:
        """What resuming after ``done`` steps does, in words."""
        if done > self.cfg.steps:
            return f"the checkpoint has {done} steps, more than the {self.cfg.steps} asked"
        # A time-limited run's length is the budget's, not its bound in cfg.steps.
        of = f" of {self.cfg.steps}" if self.cfg.max_seconds is None else ""
        return f"resuming from step {done}{of}"

    def _step(self, batch: Batch, lr: float, losses_of: BatchLosses) -> StepResult:
        """One SGD step on this process's share of the global batch."""
        all_images, all_targets = batch
        images = [image.to(self.device) for image in all_images[self.rank :: self.world_size]]
        targets = [
            _to_device(target, self.device) for target in all_targets[self.rank :: self.world_size]
        ]
        return train_step(self.state, losses_of, images, targets, lr)

    def _batch_losses(self) -> BatchLosses:
        """The losses bound to the model; wrapped for data parallelism when the process
        group has several members (wrapping broadcasts rank 0's weights)."""
        if self.world_size == 1:
            return partial(self.compute_losses, self.model)
        return distributed.data_parallel_losses(
            self.model, self.compute_losses, self.may_leave_parameters_out
        )

    def _batches(self, start_step: int) -> Iterator[Batch]:
        """The batches of every process together, from step ``start_step`` on.

        Data-parallel batches must split evenly, so partly filled ones are dropped there.
        """
        return iterate_batches(
            self.dataset,  # type: ignore[arg-type]  # any sequence of samples works
            self.cfg.batch_size * self.world_size,
            seed=self.cfg.seed,
            num_workers=self.cfg.num_workers,
            group_by_aspect_ratio=self.cfg.group_by_aspect_ratio,
            drop_last=self.world_size > 1,
            start_batch=start_step,
            skip_unreadable=True,  # the stage decides what to do (see _check_batch)
        )

    def _metrics_logger(self) -> MetricsLogger:
        """Rank 0 logs, to ``metrics.jsonl`` (with an output folder) and TensorBoard."""
        if self.rank != 0:
            return MetricsLogger(None)
        path = self.out_dir / METRICS_FILE if self.out_dir is not None else None
        return MetricsLogger(path, self.tensorboard_dir)

    def _metrics(
        self,
        step: int,
        lr: float,
        losses: dict[str, float],
        grad_norm: float | None,
        images: int,
        tic: float,
    ) -> dict[str, Any]:
        seconds = time.perf_counter() - tic
        return {
            "stage": self.stage,
            "step": step,
            "lr": lr,
            # Strict JSON: a skipped step's non-finite losses (and norm) are null.
            "losses": {k: _finite_or_none(v) for k, v in losses.items()},
            "grad_norm": _finite_or_none(grad_norm),
            "seconds": seconds,
            "images_per_s": images / seconds,
        }

    def _sync_replicas(self) -> None:
        """Data-parallel: the replicas' batch-norm statistics drifted apart in the last
        step; rank 0's are everyone's, and all ranks leave together."""
        if self.world_size > 1:
            distributed.broadcast_buffers(self.model)
            distributed.barrier()


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def nothing_to_resume(stage: str, stage_dir: Path) -> str:
    """Why there is no checkpoint of ``stage`` in ``stage_dir`` to resume."""
    held = [name for name in (MODEL_FILE, STATE_FILE) if (stage_dir / name).is_file()]
    if len(held) == 1:
        lacking = STATE_FILE if held == [MODEL_FILE] else MODEL_FILE
        return (
            f"the checkpoint in {stage_dir} is incomplete (it has {held[0]} but no {lacking}) "
            "and cannot be resumed; start without resuming"
        )
    return (
        f"nothing to resume: no checkpoint of stage {stage!r} in {stage_dir}; start without "
        "resuming"
    )


def _to_device(target: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """``target`` with its tensors on ``device`` (other entries, e.g. ``image_id``, kept)."""
    return {k: v.to(device) if isinstance(v, Tensor) else v for k, v in target.items()}
