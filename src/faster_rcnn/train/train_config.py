"""Optimisation settings of a training stage: one frozen, validated dataclass."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from ..config import FLOAT32_LARGEST, FLOAT32_SMALLEST, check_fields, is_float32_positive, require
from ..counted import counted
from .schedule import warmup_length

# Settings that may change between an interrupted run and its resumption without
# changing what is computed.
RESUMABLE_CHANGES = frozenset(
    {
        "max_seconds",
        "num_workers",
        "checkpoint_every",
        "checkpoint_minutes",
        "max_nonfinite_steps",
        "skip_unreadable",
    }
)
# Settings that change what is computed only through the warm-up's length.
WARMUP_SETTINGS = frozenset({"warmup_steps", "warmup_share"})
# With a time budget and no step count, a run's steps are bounded only for the schedule's
# arithmetic, at more a second than any device runs (a step launches hundreds of
# operators, each costing microseconds at the least): the budget alone ends the run.
MAX_STEPS_PER_SECOND = 1000
# The peak learning rate for each image of a batch (linear scaling, as detectron2's and
# torchvision's references do): 0.01 for 4 images measured best (benchmarks/seed_study.md).
LR_PER_IMAGE = 0.0025
# A run's warm-up takes at most this share of its steps (as planned, under a time
# budget): a run of fewer than twice ``warmup_steps`` (--steps 30, or a budget that fits
# few slow steps) still reaches its peak rate and decays; a longer one keeps its whole
# warm-up.
RUN_WARMUP_SHARE = 2


def steps_bound(seconds: float) -> int:
    """More steps than fit in ``seconds`` on any device (:data:`MAX_STEPS_PER_SECOND`)."""
    return max(1, int(seconds * MAX_STEPS_PER_SECOND))


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; ``steps`` is the number of SGD iterations.

    The paper's optimiser is SGD with momentum 0.9 and weight decay 0.0005. The learning
    rate follows ``schedule`` (see :mod:`faster_rcnn.train.schedule`): a linear warm-up
    from ``lr * warmup_factor`` over ``warmup_steps`` (at most ``1 / warmup_share`` of
    the run as planned: half by default, a tenth in the alternating scheme's short steps;
    ``None`` keeps the whole warm-up), then ``"step"`` (divided by 10 at each fraction of
    ``steps`` in ``lr_decay_at``) or ``"cosine"`` (down to 0 at ``steps``).
    ``max_seconds`` stops the run early (no step starts that its last steps' times say
    would end past it); the schedule is then laid out over the steps that fit in it
    (:class:`~faster_rcnn.train.budget.TimeBudgetPacer`), so a run cut short still ends
    at its lowest learning rate. Such a run depends on the machine's speed: only runs
    without ``max_seconds`` resume bit for bit. A resumed one goes on with the time its
    budget had left and the run length it had projected.

    ``lr = 0.01`` for 4 images a step and ``"cosine"`` won on both a crowded set with a
    small rare class and raccoon's one large object an image, in runs of the steps 20 CPU
    minutes allow (``benchmarks/seed_study.md``). At 0.02 under ``"step"`` raccoon's head
    mostly never learned its class; either change alone left it unstable. Batches of 2 at
    the same rate an image (``LR_PER_IMAGE``, so lr 0.005) fit twice the steps in a budget. In
    20 minutes they were ahead of batches of 4 on the crowded mosaics with the small rare
    class (two seeds: mAP@0.5 +0.014 and +0.007, COCO AP +0.027 and +0.025) and even on
    raccoon and the slides (mAP@0.5 +0.036, -0.004, -0.005; COCO AP +0.008, -0.003,
    +0.006; ``benchmarks/recipe_ab.md``, round 28): hence the defaults. ``train``'s recipe
    doubles the rate for crowded images (:data:`~faster_rcnn.train.recipe.CROWDED_OBJECTS`).

    ``grad_clip_norm = 5``: at the peak rate the gradients' norm runs at 10-15, with
    spikes to 80. Clipped to 10, raccoon runs planned for the 444 steps 20 CPU minutes
    allowed climbed back up in loss once the warm-up ended, and one full run was lost
    (mAP 0.23); clipped to 5 the loss kept falling, and full runs scored as healthy ones
    do on raccoon and on the slides (``benchmarks/recipe_ab.md``, round 19). Steps whose
    norm is below 5 (the first ones; on the slides, most of the second half) are left as
    they were.

    Validated when made (types and ranges); change one with :meth:`replace`.

    Attributes:
        batch_size: images per step and per process (a data-parallel step trains on
            ``batch_size * world_size`` images).
        grad_clip_norm: the gradients' total norm is clipped to this (``None``: never).
        seed: decides the batch order and every random draw of the samplers.
        amp: mixed precision (:mod:`~faster_rcnn.train.precision`): float16 autocast and
            a gradient scaler on CUDA, bfloat16 autocast on a CPU with bfloat16
            instructions; elsewhere it is ignored.
        checkpoint_every: with an output folder, steps between checkpoints (``None``:
            only at the end).
        checkpoint_minutes: ... and a checkpoint whenever this long has passed since the
            last one (``None``: by steps only).
        max_nonfinite_steps: steps with an infinite or NaN loss are skipped (no update);
            this many in a row stop the stage with
            :class:`~faster_rcnn.train.stops.TrainingDiverged`.
        skip_unreadable: an image that cannot be read (corrupt, truncated, vanished) is
            replaced by the next readable one, with a warning; off, it stops the stage.
        num_workers: DataLoader worker processes that load images (0: in this process).
        group_by_aspect_ratio: batch landscape and portrait images apart.
        short_run_steps: a run planned for fewer steps trains at a higher rate, ``lr``
            times ``short_run_steps / steps`` and at most twice ``lr``
            (:func:`~faster_rcnn.train.schedule.short_run_scale`), settled once the time
            budget first projects the run's length (``None``: always ``lr``).
    """

    steps: int = 1000
    batch_size: int = 2
    lr: float = 2 * LR_PER_IMAGE
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: Literal["step", "cosine"] = "cosine"
    warmup_steps: int = 50
    warmup_factor: float = 0.1
    warmup_share: int | None = RUN_WARMUP_SHARE
    lr_decay_at: tuple[float, ...] = (0.7, 0.9)
    grad_clip_norm: float | None = 5.0
    max_seconds: float | None = None
    seed: int = 0
    amp: bool = False
    checkpoint_every: int | None = 500
    checkpoint_minutes: float | None = None
    max_nonfinite_steps: int = 5
    skip_unreadable: bool = True
    num_workers: int = 0
    group_by_aspect_ratio: bool = True
    short_run_steps: int | None = None

    def __post_init__(self) -> None:
        check_fields(self)
        require(self, "steps", self.steps >= 0, ">= 0")
        require(self, "batch_size", self.batch_size >= 1, ">= 1")
        # A rate float32 rounds to 0 updates nothing; one beyond its range does not convert.
        float32 = f"in [{FLOAT32_SMALLEST:.2g}, {FLOAT32_LARGEST:.2g}] (> 0 and finite in float32)"
        require(self, "lr", is_float32_positive(self.lr), float32)
        require(self, "momentum", 0 <= self.momentum < 1, "in [0, 1)")
        require(self, "weight_decay", self.weight_decay >= 0, ">= 0")
        require(self, "warmup_steps", self.warmup_steps >= 0, ">= 0")
        require(self, "warmup_factor", 0 < self.warmup_factor <= 1, "in (0, 1]")
        share = self.warmup_share
        require(self, "warmup_share", share is None or share >= 1, ">= 1 or None")
        require(self, "lr_decay_at", all(0 <= f <= 1 for f in self.lr_decay_at), "in [0, 1]")
        clip = self.grad_clip_norm
        clipping = f"at least {FLOAT32_SMALLEST:.2g} (> 0 in float32)"
        clip_ok = clip is None or clip >= FLOAT32_SMALLEST
        require(self, "grad_clip_norm", clip_ok, clipping, ", or None not to clip")
        budget = self.max_seconds
        require(self, "max_seconds", budget is None or budget > 0, "> 0", " or None")
        every = self.checkpoint_every
        require(self, "checkpoint_every", every is None or every >= 1, ">= 1", " or None")
        minutes = self.checkpoint_minutes
        require(self, "checkpoint_minutes", minutes is None or minutes > 0, "> 0", " or None")
        require(self, "max_nonfinite_steps", self.max_nonfinite_steps >= 1, ">= 1")
        require(self, "num_workers", self.num_workers >= 0, ">= 0")
        short = self.short_run_steps
        require(self, "short_run_steps", short is None or short >= 1, ">= 1 or None")

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def changes_since(self, saved: dict[str, Any]) -> list[str]:
        """The settings that differ from ``saved`` (a checkpoint's ``asdict``) and change
        what a resumed run computes, as ``"name old -> new"``; changed steps as the run's
        length (:func:`_length_change`). The warm-up's settings count only where they
        change its length (:func:`_same_warmup`): a run of twice ``warmup_steps`` or more
        saved while ``warmup_share`` was ``None`` by default resumes under the default of
        2 as it ran."""
        current = dataclasses.asdict(self)
        unchanged = RESUMABLE_CHANGES
        if _same_warmup(saved, current):
            unchanged |= WARMUP_SETTINGS
        return [
            _length_change(saved, current)
            if name == "steps"
            else f"{name} {saved.get(name)!r} -> {current[name]!r}"
            for name in sorted(current.keys() - unchanged)
            if saved.get(name) != current[name]
        ]


def _same_warmup(saved: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether the resumed run of ``current`` warms up over as many steps with the
    warm-up settings of ``saved`` as with its own (:func:`~.schedule.warmup_length`, for
    its length: a changed length is named apart). Not where a time budget bounds it: the
    share cuts the warm-up of a plan that moves as the run goes."""
    if current["max_seconds"] is not None or saved.get("warmup_steps") is None:
        return False
    steps = current["steps"]
    then = warmup_length(saved["warmup_steps"], saved.get("warmup_share"), steps)
    return then == warmup_length(current["warmup_steps"], current["warmup_share"], steps)


def _length_change(saved: dict[str, Any], current: dict[str, Any]) -> str:
    """``"steps 2 -> 4"``; where a time budget bounds either run, ``"run length 0.1
    minutes -> 0.4 minutes"``: the steps of a run its budget ends are only the budget's
    bound (:func:`steps_bound`), which nobody gave."""
    if saved.get("max_seconds") is None and current["max_seconds"] is None:
        return f"steps {saved.get('steps')!r} -> {current['steps']!r}"
    return f"run length {_run_length(saved)} -> {_run_length(current)}"


def _run_length(settings: dict[str, Any]) -> str:
    """What ends a run of ``settings``: its steps, its budget, or the first of both."""
    steps, seconds = settings.get("steps"), settings.get("max_seconds")
    if seconds is None:
        return counted(steps, "step")
    minutes = counted(float(f"{seconds / 60:.3g}"), "minute")  # a budget's share: 0.175104
    return (
        minutes if steps >= steps_bound(seconds) else f"{minutes}, at most {counted(steps, 'step')}"
    )
