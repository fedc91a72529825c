"""The training loop shared by every scheme: batches in, summed losses, one SGD step.

Joint training, RPN-only training and each step of the paper's alternating scheme are
this loop with a different ``compute_losses`` (which losses, from which forward pass)
and a different set of trained parameters.

Given an output folder, a stage writes ``<out_dir>/<stage>/`` (a
:class:`~faster_rcnn.train.checkpoint.TrainingCheckpoint`) every
``cfg.checkpoint_every`` steps and at its end, and appends one record per step to
``<out_dir>/metrics.jsonl``. With ``resume=True`` it continues from its checkpoint: the
batches and the learning rate are functions of the step and every random state is
restored, so on the same machine a resumed run ends with the same weights, bit for bit,
as one that was never interrupted.
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..data.augment import derive_seed
from ..data.dataset import Sample
from ..data.loader import Batch, iterate_batches
from ..model import FasterRCNN
from . import distributed
from .checkpoint import TrainingCheckpoint
from .metrics import METRICS_FILE, MetricsLogger, drop_records
from .schedule import SCHEDULES, TimeBudgetPacer, learning_rate

LossFn = Callable[
    [FasterRCNN, list[Tensor], list[dict[str, Tensor]], torch.Generator], dict[str, Tensor]
]

__all__ = ["LossFn", "Sample", "TrainConfig", "detector_losses", "train_stage"]

# Settings that may change between an interrupted run and its resumption without
# changing what is computed.
_RESUMABLE_CHANGES = frozenset({"max_seconds", "num_workers", "checkpoint_every"})
# Steps over which the progress bar averages the losses it shows.
_PROGRESS_WINDOW = 20


@dataclass
class TrainConfig:
    """Optimisation settings; ``steps`` is the number of SGD iterations.

    The paper's optimiser is SGD with momentum 0.9 and weight decay 0.0005. The learning
    rate follows ``schedule`` (see :mod:`faster_rcnn.train.schedule`): a linear warm-up
    from ``lr * warmup_factor`` over ``warmup_steps``, then ``"step"`` (divided by 10 at
    each fraction of ``steps`` in ``lr_decay_at``) or ``"cosine"`` (down to 0 at
    ``steps``). ``max_seconds`` stops the run early; the schedule is then laid out over the
    steps that fit in it (:class:`~faster_rcnn.train.schedule.TimeBudgetPacer`), so a run
    cut short still ends at its lowest learning rate. Such a run depends on the machine's
    speed: only runs without ``max_seconds`` resume bit for bit.

    Attributes:
        batch_size: images per step and per process (a data-parallel step trains on
            ``batch_size * world_size`` images).
        grad_clip_norm: the gradients' total norm is clipped to this (``None``: never).
        seed: decides the batch order and every random draw of the samplers.
        amp: mixed precision (float16 autocast and a gradient scaler) on CUDA; on other
            devices it is ignored.
        checkpoint_every: with an output folder, steps between checkpoints (``None``:
            only at the end).
        num_workers: DataLoader worker processes that load images (0: in this process).
        group_by_aspect_ratio: batch landscape and portrait images apart.
    """

    steps: int = 1000
    batch_size: int = 4
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: Literal["step", "cosine"] = "step"
    warmup_steps: int = 50
    warmup_factor: float = 0.1
    lr_decay_at: tuple[float, ...] = (0.7, 0.9)
    grad_clip_norm: float | None = 10.0
    max_seconds: float | None = None
    seed: int = 0
    amp: bool = False
    checkpoint_every: int | None = 500
    num_workers: int = 0
    group_by_aspect_ratio: bool = True

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of {SCHEDULES}")
        if self.warmup_steps < 0 or not 0.0 < self.warmup_factor <= 1.0:
            raise ValueError(
                f"need warmup_steps >= 0 and 0 < warmup_factor <= 1, got "
                f"{self.warmup_steps} and {self.warmup_factor}"
            )
        if self.checkpoint_every is not None and self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {self.checkpoint_every}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        self.lr_decay_at = tuple(self.lr_decay_at)


def detector_losses(
    model: FasterRCNN,
    images: list[Tensor],
    targets: list[dict[str, Tensor]],
    generator: torch.Generator,
) -> dict[str, Tensor]:
    """All four losses of one forward pass (approximate joint training)."""
    return model(images, targets, generator=generator)


def train_stage(
    model: FasterRCNN,
    dataset: Sequence[Sample],
    cfg: TrainConfig,
    *,
    compute_losses: LossFn = detector_losses,
    parameters: Sequence[nn.Parameter] | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    stage: str = "joint",
    out_dir: Path | None = None,
    resume: bool = False,
    progress: bool = False,
    tensorboard_dir: Path | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` in place on ``dataset`` (items ``(image, target)``).

    Args:
        model: the detector, on the device to train on; put in training mode here.
        dataset: the training examples (any sequence, or a :mod:`faster_rcnn.data`
            dataset); batches come from :func:`faster_rcnn.data.loader.iterate_batches`.
        cfg: optimisation settings.
        compute_losses: the losses of a batch, summed for the step.
        parameters: the parameters to optimise (default: all that require a gradient).
        on_step: called after every step with the step index and its losses.
        stage: the stage's name, a folder name (letters, digits, ``_`` and ``-``).
        out_dir: where checkpoints (``<out_dir>/<stage>/``) and ``metrics.jsonl`` go;
            ``None`` writes nothing.
        resume: continue from the checkpoint in ``<out_dir>/<stage>/`` when there is one
            (model, optimizer, step, history and random states); a stage that had
            finished runs no step and returns its history.
        progress: show a progress bar (running mean losses, steps/s, time left).
        tensorboard_dir: also log the metrics for TensorBoard there (needs the
            ``tensorboard`` package).

    The samplers draw from a generator seeded with ``cfg.seed`` (and the rank), and the
    batch order depends on ``cfg.seed`` and the step alone, so a run is repeatable on the
    same machine. Inside a ``torch.distributed`` process group the stage trains
    data-parallel (see :mod:`faster_rcnn.train.distributed`).

    Returns:
        Per step since the start of the stage (resumed steps included), the losses and
        their sum (``"loss"``) as floats; averaged over the processes of a data-parallel
        run.

    Raises:
        ValueError: a bad ``stage`` name, ``resume`` without ``out_dir``, or an unusable
            checkpoint.
        ImportError: ``tensorboard_dir`` without TensorBoard installed.
        FloatingPointError: a loss became infinite or NaN.
    """
    if not re.fullmatch(r"[A-Za-z0-9_-]+", stage):
        raise ValueError(f"stage name {stage!r} must be letters, digits, '_' or '-'")
    if resume and out_dir is None:
        raise ValueError("resume=True needs out_dir, where the checkpoint is")
    rank, world_size = distributed.rank_and_world_size()
    is_main = rank == 0
    device = next(model.parameters()).device
    params = (
        list(parameters)
        if parameters is not None
        else [p for p in model.parameters() if p.requires_grad]
    )
    optimisation = _Optimisation(model, cfg, params, stage, rank, world_size)
    stage_dir = Path(out_dir) / stage if out_dir is not None else None
    history: list[dict[str, float]] = []
    if resume and stage_dir is not None and TrainingCheckpoint.find(stage_dir) is not None:
        history = optimisation.resume(stage_dir)
    start_step = len(history)
    metrics_path = Path(out_dir) / METRICS_FILE if is_main and out_dir is not None else None
    if metrics_path is not None:
        drop_records(metrics_path, stage, start_step)

    losses_of: Callable[..., dict[str, Tensor]] = partial(compute_losses, model)
    if world_size > 1:
        # The default loss uses every parameter; others may leave some out.
        find_unused = parameters is not None or compute_losses is not detector_losses
        losses_of = distributed.data_parallel_losses(model, compute_losses, find_unused)
    model.train()
    start = time.perf_counter()
    pacer = TimeBudgetPacer(cfg.steps, cfg.max_seconds, start_step)
    saved_at: int | None = None
    with (
        MetricsLogger(metrics_path, tensorboard_dir if is_main else None) as logger,
        closing(_global_batches(dataset, cfg, world_size, start_step)) as batches,
        tqdm(
            total=cfg.steps,
            initial=start_step,
            desc=stage,
            unit="step",
            disable=not (progress and is_main),
            dynamic_ncols=True,
        ) as bar,
    ):
        recent: deque[dict[str, float]] = deque(maxlen=_PROGRESS_WINDOW)
        for step in range(start_step, cfg.steps):
            tic = time.perf_counter()
            elapsed = _elapsed(cfg, start, world_size, device)
            if cfg.max_seconds is not None and elapsed > cfg.max_seconds:
                break
            planned_steps = pacer.update(step, elapsed)
            bar.total = planned_steps
            all_images, all_targets = next(batches)
            images = [image.to(device) for image in all_images[rank::world_size]]
            targets = [_to_device(target, device) for target in all_targets[rank::world_size]]
            lr = learning_rate(cfg, step, planned_steps)
            record = optimisation.train_step(step, losses_of, images, targets, lr)
            history.append(record)

            seconds = time.perf_counter() - tic
            logger.log(
                {
                    "stage": stage,
                    "step": step,
                    "lr": lr,
                    "losses": record,
                    "seconds": seconds,
                    "images_per_s": len(all_images) / seconds,
                }
            )
            recent.append(record)
            bar.set_postfix(_running_means(recent), refresh=False)
            bar.update()
            every = cfg.checkpoint_every
            if stage_dir is not None and every is not None and (step + 1) % every == 0:
                optimisation.save(stage_dir, history)
                saved_at = len(history)
            if on_step is not None:
                on_step(step, record)
        if stage_dir is not None and saved_at != len(history):
            optimisation.save(stage_dir, history)
    if world_size > 1:
        # The replicas' batch-norm statistics drifted apart in the last step.
        distributed.broadcast_buffers(model)
        distributed.barrier()
    return history


class _Optimisation:
    """What a stage updates besides the model: the optimizer, the gradient scaler (mixed
    precision) and the samplers' generator; and their checkpoints."""

    def __init__(
        self,
        model: FasterRCNN,
        cfg: TrainConfig,
        params: list[nn.Parameter],
        stage: str,
        rank: int,
        world_size: int,
    ) -> None:
        self.model, self.cfg, self.params, self.stage = model, cfg, params, stage
        self.rank, self.world_size = rank, world_size
        self.optimizer = torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
        self.use_amp = cfg.amp and next(model.parameters()).device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        # Three keys: never one of the (seed, epoch) streams that order the batches.
        self.generator = torch.Generator().manual_seed(derive_seed(cfg.seed, rank, world_size))

    def train_step(
        self,
        step: int,
        losses_of: Callable[..., dict[str, Tensor]],
        images: list[Tensor],
        targets: list[dict[str, Tensor]],
        lr: float,
    ) -> dict[str, float]:
        """SGD step ``step`` on the summed losses of a batch; returns them as floats with
        their sum (``"loss"``), averaged over the processes.

        Raises:
            FloatingPointError: a loss is infinite or NaN (before it reaches the weights;
                with mixed precision the gradient scaler skips such steps instead).
        """
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        device_type = next(self.model.parameters()).device.type
        with torch.autocast(device_type, enabled=self.use_amp):
            losses = losses_of(images, targets, self.generator)
        total = sum(losses.values())
        values = torch.stack([value.detach().float() for value in (*losses.values(), total)])
        if self.world_size > 1:
            values = distributed.mean_over_ranks(values)
        record = dict(zip([*losses, "loss"], values.tolist(), strict=True))
        if not self.use_amp and not all(map(math.isfinite, record.values())):
            raise FloatingPointError(f"{self.stage}, step {step}: non-finite loss {record}")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        if self.cfg.grad_clip_norm is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return record

    def save(self, stage_dir: Path, history: list[dict[str, float]]) -> None:
        """Checkpoint the model and this state after ``len(history)`` steps (rank 0
        writes; every rank must call it, since the generators' states are gathered)."""
        states = [self.generator.get_state()]
        if self.world_size > 1:
            states = distributed.gather_objects(states[0])
        if self.rank != 0:
            return
        cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        TrainingCheckpoint(
            stage=self.stage,
            step=len(history),
            history=history,
            train_config=dataclasses.asdict(self.cfg),
            optimizer=self.optimizer.state_dict(),
            generator_states=states,
            torch_rng_state=torch.get_rng_state(),
            cuda_rng_states=cuda_states,
            python_rng_state=random.getstate(),
            grad_scaler=self.scaler.state_dict() if self.use_amp else None,
        ).save(stage_dir, self.model)

    def resume(self, stage_dir: Path) -> list[dict[str, float]]:
        """Load the checkpoint in ``stage_dir`` into the model and this state, put the
        global random generators back, and return the history of the steps done."""
        checkpoint = TrainingCheckpoint.load(stage_dir, self.model)
        _check_resumable(checkpoint, self.stage, stage_dir, self.cfg)
        self.optimizer.load_state_dict(checkpoint.optimizer)
        if self.use_amp and checkpoint.grad_scaler is not None:
            self.scaler.load_state_dict(checkpoint.grad_scaler)
        if len(checkpoint.generator_states) == self.world_size:
            self.generator.set_state(checkpoint.generator_states[self.rank])
        else:
            warnings.warn(
                f"{stage_dir} was written by {len(checkpoint.generator_states)} processes, "
                f"resuming with {self.world_size}: the samplers draw afresh",
                stacklevel=3,
            )
            seed = derive_seed(self.cfg.seed, self.rank, self.world_size, checkpoint.step)
            self.generator.manual_seed(seed)
        checkpoint.restore_global_rng()
        return list(checkpoint.history)


def _global_batches(
    dataset: Sequence[Sample], cfg: TrainConfig, world_size: int, start_step: int
) -> Iterator[Batch]:
    """The batches of every process together, from step ``start_step`` on.

    Data-parallel batches must split evenly, so partly filled ones are dropped there.
    """
    return iterate_batches(
        dataset,  # type: ignore[arg-type]  # any sequence of samples works
        cfg.batch_size * world_size,
        seed=cfg.seed,
        num_workers=cfg.num_workers,
        group_by_aspect_ratio=cfg.group_by_aspect_ratio,
        drop_last=world_size > 1,
        start_batch=start_step,
    )


def _elapsed(cfg: TrainConfig, start: float, world_size: int, device: torch.device) -> float:
    """Seconds since ``start``; with a time budget and several processes, rank 0's clock
    (a collective), so that every rank plans and stops alike."""
    elapsed = time.perf_counter() - start
    if cfg.max_seconds is not None and world_size > 1:
        elapsed = distributed.value_of_main(elapsed, device)
    return elapsed


def _to_device(target: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """``target`` with its tensors on ``device`` (other entries, e.g. ``image_id``, kept)."""
    return {k: v.to(device) if isinstance(v, Tensor) else v for k, v in target.items()}


def _running_means(records: deque[dict[str, float]]) -> dict[str, str]:
    """Per loss (without its ``loss_`` prefix), the mean over ``records``, for display."""
    return {
        name.removeprefix("loss_"): f"{sum(r[name] for r in records) / len(records):.3f}"
        for name in records[-1]
    }


def _check_resumable(
    checkpoint: TrainingCheckpoint, stage: str, stage_dir: Path, cfg: TrainConfig
) -> None:
    """Refuse another stage's checkpoint; warn when settings that matter have changed."""
    if checkpoint.stage != stage:
        raise ValueError(f"{stage_dir} holds stage {checkpoint.stage!r}, not {stage!r}")
    current = dataclasses.asdict(cfg)
    changed = sorted(
        name
        for name in current.keys() - _RESUMABLE_CHANGES
        if checkpoint.train_config.get(name) != current[name]
    )
    if changed:
        details = ", ".join(
            f"{name} {checkpoint.train_config.get(name)!r} -> {current[name]!r}" for name in changed
        )
        warnings.warn(
            f"resuming {stage_dir} with changed settings: {details}; the run will not "
            "match an uninterrupted one",
            stacklevel=3,
        )
