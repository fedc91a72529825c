"""What a training stage updates besides the model, and how it is saved and resumed.

The optimizer (momentum buffers), the mixed-precision gradient scaler, the samplers'
generator and the learning rate's short-run scale, with the global random states, are
what a resumed run needs, beside the weights, to continue exactly as an uninterrupted
one would.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import warnings
from collections.abc import Callable, Sized
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import FasterRCNNConfig, worded_change
from ..counted import counted
from ..data.augment import derive_seed
from ..model import FasterRCNN
from ..models import presets_of_backbone
from . import distributed
from .budget import resumed_plan
from .checkpoint import MODEL_FILE, TrainingCheckpoint, WeightsMismatchError, read_model_config
from .precision import mixed_precision_dtype
from .train_config import TrainConfig


def data_signature(dataset: Sized) -> dict[str, Any]:
    """What a stage trains on, as its checkpoints record it: ``{"images": the dataset's
    length, "files": a SHA-256 of the names of the image files under its wrappers
    (augmentation, repetition), in order, or None where there are none (generated
    data)}``. Names, not paths: a dataset moved elsewhere is the same data."""
    files, inner = None, dataset
    while files is None and inner is not None:
        files = getattr(inner, "image_files", None)
        inner = getattr(inner, "dataset", None)  # the wrapped one
    digest = None
    if files is not None:
        digest = hashlib.sha256("\n".join(Path(f).name for f in files).encode()).hexdigest()
    return {"images": len(dataset), "files": digest}


def weights_record(path: str | Path | None) -> dict[str, str | None]:
    """The initial weights a stage's model was built from, as its checkpoints record them,
    so that a resumed run can tell the file it started from: ``{"file": path}``, the
    absolute path of the weights file (``train --weights``), or ``None`` where the model's
    layers started random."""
    return {"file": str(Path(path).resolve()) if path is not None else None}


def data_changes(then: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """How the data of ``now`` differs from ``then`` (:func:`data_signature`), in the
    words of the resume warning's list of changed settings."""
    if then["images"] != now["images"]:
        return [f"the training images ({then['images']} -> {now['images']})"]
    if then["files"] != now["files"]:
        return [f"the training images (as many, {now['images']}, but other files)"]
    return []


class ChangedSettings(UserWarning):
    """The warning that a stage resumes with other settings than its checkpoint was
    written with: the run will not match an uninterrupted one.

    Attributes:
        stage_dir: the checkpoint's folder.
        changes: what changed, in order: a model setting as ``(name, old, new)``
            (:meth:`~faster_rcnn.config.FasterRCNNConfig.changed_settings`), for a caller
            that set it under another name (a command-line flag) to name it so; anything
            else in words (``"steps 2 -> 3"``).
    """

    def __init__(self, stage_dir: Path, changes: list[str | tuple[str, Any, Any]]) -> None:
        self.stage_dir, self.changes = stage_dir, changes
        super().__init__(self.worded(worded_change))

    def worded(self, setting_change: Callable[[str, Any, Any], str]) -> str:
        """The warning, each model setting's change in the words of ``setting_change``
        (``name, old, new`` -> words)."""
        said = [c if isinstance(c, str) else setting_change(*c) for c in self.changes]
        return (
            f"resuming {self.stage_dir} with changed settings: {', '.join(said)}; the run "
            "will not match an uninterrupted one"
        )


class OtherModelSettings(ValueError):
    """The refusal to resume a checkpoint whose weights do not fit this run's model: the
    settings it was trained with that differ, and for the backbone's stages (which the
    recipe chooses by the data) the option that builds its own. Another backbone is said
    alone, with the presets that build the checkpoint's: every other difference (anchors,
    sizes, heads) follows from the preset, and a list of them hides the one to change.

    Attributes:
        stage_dir: the checkpoint's folder.
        settings: the model settings that differ, by their dotted names
            (``"backbone.returned_layers"``), for a caller that set them under other names
            (command-line flags) to name them so.
        stages: the checkpoint's backbone stages where this run's differ, else ``None``.
        backbones: the checkpoint's backbone and this run's where they differ, else
            ``None``.
        mismatch: how the checkpoint's weights do not fit the model.
    """

    def __init__(
        self,
        stage_dir: Path,
        trained: FasterRCNNConfig,
        now: FasterRCNNConfig,
        mismatch: WeightsMismatchError,
    ) -> None:
        self.stage_dir, self.mismatch = stage_dir, mismatch
        self.settings = sorted({name for name, _, _ in now.changed_settings(trained)})
        stages = trained.backbone.resolved_returned_layers()
        self.stages = stages if stages != now.backbone.resolved_returned_layers() else None
        names = (trained.backbone.name, now.backbone.name)
        self.backbones = names if names[0] != names[1] else None
        super().__init__(self.worded(str, lambda name: f"preset_config({name!r})"))

    def worded(self, setting_name: Callable[[str], str], preset: Callable[[str], str]) -> str:
        """The refusal, each setting named in the words of ``setting_name`` and each
        preset in those of ``preset`` (a name -> how to build it)."""
        if self.backbones is not None:
            trained, now = self.backbones
            builders = " or ".join(map(preset, presets_of_backbone(trained)))
            return (
                f"{self.stage_dir} was trained with backbone {trained}, not {now} as this "
                f"run builds: resume with the options the run was started with"
                + (f" ({builders})" if builders else "")
            )
        message = (
            f"{self.stage_dir} was trained with other model settings than this run builds "
            f"({', '.join(map(setting_name, self.settings))}): resume with the options the run "
            "was started with"
        )
        if self.stages is not None:
            message += (
                f" (its backbone stages: --returned-layers {' '.join(map(str, self.stages))})"
            )
        return f"{message}; {self.mismatch}"


class TrainingState:
    """The optimizer, the gradient scaler and the samplers' generator of one stage.

    Args:
        model: the detector being trained.
        cfg: optimisation settings (SGD's, the seed, mixed precision).
        params: the parameters the optimizer updates.
        stage: the stage's name, which its checkpoints carry.
        rank / world_size: this process and the number of processes (1: not distributed).
        data: what the stage trains on (:func:`data_signature`), which its checkpoints
            carry, so that a resumed run on other data is warned of.
        weights: what the model's initial weights came from (:func:`weights_record`),
            which its checkpoints carry (``None``: not said); a resumed stage keeps its
            checkpoint's.
        scheme: the training scheme the stage is part of, which its checkpoints carry
            (``None``: not said).
    """

    def __init__(
        self,
        model: FasterRCNN,
        cfg: TrainConfig,
        params: list[nn.Parameter],
        stage: str,
        rank: int = 0,
        world_size: int = 1,
        data: dict[str, Any] | None = None,
        weights: dict[str, Any] | None = None,
        scheme: str | None = None,
    ) -> None:
        self.model, self.cfg, self.params, self.stage = model, cfg, params, stage
        self.data, self.weights, self.scheme = data, weights, scheme
        self.rank, self.world_size = rank, world_size
        self.optimizer = torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
        self.device_type = next(model.parameters()).device.type
        self.amp_dtype = mixed_precision_dtype(self.device_type) if cfg.amp else None
        # float16's range needs the loss scaled; bfloat16 has float32's.
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        # Three keys: never one of the (seed, epoch) streams that order the batches.
        self.generator = torch.Generator().manual_seed(derive_seed(cfg.seed, rank, world_size))
        # The short-run scale of the rate, once the stage settles it (see Trainer).
        self.lr_scale: float | None = None
        # Where the stage's time budget stands: the seconds it counted, the run length it
        # projected and its last steps' times, so that a resumed run goes on with the time
        # left and the same schedule, and starts no step that would end past it (see
        # TimeBudget).
        self.seconds_spent = 0.0
        self.planned_steps: int | None = None
        self.step_seconds: list[float] = []

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
            grad_scaler=self.scaler.state_dict() if self.scaler.is_enabled() else None,
            lr_scale=self.lr_scale,
            seconds_spent=self.seconds_spent,
            planned_steps=self.planned_steps,
            step_seconds=self.step_seconds,
            data=self.data,
            weights=self.weights,
            scheme=self.scheme,
        ).save(stage_dir, self.model)

    def restore(self, stage_dir: Path) -> list[dict[str, float]]:
        """Load the checkpoint in ``stage_dir`` into the model and this state, put the
        global random generators back, and return the history of the steps done.

        Raises:
            ValueError: the checkpoint is another stage's, or another scheme's (where both
                say theirs), or unreadable.
        """
        found = TrainingCheckpoint.find(stage_dir)
        trained = read_model_config(found / MODEL_FILE) if found is not None else None
        try:
            checkpoint = TrainingCheckpoint.load(stage_dir, self.model)
        except WeightsMismatchError as error:
            if trained is None or trained == self.model.config:
                raise
            raise OtherModelSettings(stage_dir, trained, self.model.config, error) from error
        if checkpoint.stage != self.stage:
            raise ValueError(f"{stage_dir} holds stage {checkpoint.stage!r}, not {self.stage!r}")
        # Stage "rpn" is the RPN trained alone's and the alternating scheme's first step's.
        if None not in (checkpoint.scheme, self.scheme) and checkpoint.scheme != self.scheme:
            raise ValueError(
                f"{stage_dir} was written by the {checkpoint.scheme!r} scheme, not "
                f"{self.scheme!r}: resume it with the scheme it was started with"
            )
        changed: list[str | tuple[str, Any, Any]] = []
        changed += self.cfg.changes_since(checkpoint.train_config)
        if trained is not None:  # the model's settings too: sizes, NMS, sampling...
            changed += self.model.config.changed_settings(trained)
        if checkpoint.data is not None and self.data is not None:
            changed += data_changes(checkpoint.data, self.data)
        if changed:
            warnings.warn(ChangedSettings(stage_dir, changed), stacklevel=3)
        self.optimizer.load_state_dict(checkpoint.optimizer)
        if self.scaler.is_enabled() and checkpoint.grad_scaler is not None:
            self.scaler.load_state_dict(checkpoint.grad_scaler)
        self._restore_generator(checkpoint, stage_dir)
        checkpoint.restore_global_rng()
        self.lr_scale = checkpoint.lr_scale
        self.weights = checkpoint.weights  # the run's start, not this process's
        self.seconds_spent = checkpoint.seconds_spent or 0.0
        self.step_seconds = list(checkpoint.step_seconds or [])
        saved_budget = checkpoint.train_config.get("max_seconds")
        self.planned_steps = resumed_plan(
            checkpoint.planned_steps, saved_budget, self.cfg.max_seconds
        )
        return list(checkpoint.history)

    def _restore_generator(self, checkpoint: TrainingCheckpoint, stage_dir: Path) -> None:
        """This rank's sampler state; afresh when the number of processes changed."""
        if len(checkpoint.generator_states) == self.world_size:
            self.generator.set_state(checkpoint.generator_states[self.rank])
            return
        warnings.warn(
            f"{stage_dir} was written by {counted(len(checkpoint.generator_states), 'process')}, "
            f"resuming with {self.world_size}: the samplers draw afresh",
            stacklevel=4,
        )
        seed = derive_seed(self.cfg.seed, self.rank, self.world_size, checkpoint.step)
        self.generator.manual_seed(seed)
