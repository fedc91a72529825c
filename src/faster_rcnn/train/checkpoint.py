"""Model files and resumable training checkpoints, written so that a crash never breaks one.

A **model file** is a safetensors file: the weights (the state dict, buffers included)
and, in the header's metadata, ``{"format": "faster-rcnn/1", "config": <the model's
FasterRCNNConfig as JSON>, "crc32": <the file's checksum>}``, so :func:`load_model`
rebuilds the very architecture that wrote it before loading the weights strictly, and
refuses a damaged copy (:mod:`~faster_rcnn.file_checksum`).

A **training checkpoint** is a directory holding ``model.safetensors`` (a model file) and
``state.pt``: the optimizer, the step, the loss history, every random state a run draws
from and the training settings, read back with ``torch.load(weights_only=True)``.

Every file is written to a temporary name in its own directory, flushed to disk and
renamed over the old one (a rename is atomic). A checkpoint's two files must change
together, so a checkpoint is written whole into ``<dir>.partial`` and swapped in by
renames; a crash between those renames leaves the old checkpoint as ``<dir>.previous``,
which :meth:`TrainingCheckpoint.find` falls back to.
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
import shlex
import shutil
import stat
import uuid
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import safetensors.torch
import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor

from .. import file_checksum
from ..config import FasterRCNNConfig
from ..model import FasterRCNN
from ..state_dict_io import (
    HOLDS_CODE,
    PLAIN_PICKLE,
    TORCH_LOAD_ERRORS,
    bytes_before_zip,
    check_finite,
    is_one_pickle,
    safetensors_failure,
    torch_load_failure,
    zip_damage,
)

MODEL_FORMAT = "faster-rcnn/1"
STATE_FORMAT = "faster-rcnn-training/1"
# Fields added to the format since: a state written before them lacks them (defaults).
_ADDED_FIELDS = frozenset(
    {"lr_scale", "seconds_spent", "planned_steps", "step_seconds", "data", "weights", "scheme"}
)
MODEL_FILE = "model.safetensors"
# The metadata of a model whose box head was never trained (the RPN trained alone).
UNTRAINED = "untrained"
STATE_FILE = "state.pt"
# What a checkpoint folder's name ends in while a save replacing it is cut off.
PREVIOUS = ".previous"
# What the folder a checkpoint is written into before it replaces the old one ends in.
PARTIAL = ".partial"
# The temporary file :func:`atomic_write` writes ``<name>`` as: ``.<name>.<pid>.<hex>.tmp``.
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.\d+\.[0-9a-f]{32}\.tmp")


def save_model(model: FasterRCNN, path: str | Path, box_head_trained: bool = True) -> None:
    """Write ``model``'s weights and config to the safetensors file ``path`` atomically.

    Tensors that share storage are written once (``safetensors.torch.save_model``); a
    model in ``channels_last`` memory format is written in the standard layout. A model
    whose box head was never trained (the RPN trained alone) says so in the metadata
    (``"box_head": "untrained"``), and :func:`load_model` warns of it.

    Raises:
        ValueError: ``model`` came from ``optimize_for_inference`` (no batch norms left),
            or its config does not rebuild it (a module replaced after building that no
            config describes: :meth:`FasterRCNN.check_config_rebuilds`), so that the file
            would not load as this model; nothing is written.
    """
    if model.inference_only:
        raise ValueError(
            "this model was rewritten for inference (its batch norms are folded): "
            "save the model it was made from"
        )
    metadata = {
        "format": MODEL_FORMAT,
        "config": model.config.to_json(),
        file_checksum.KEY: file_checksum.PLACEHOLDER,  # filled in once the file is written
    }
    try:
        model.check_config_rebuilds()
    except ValueError as error:
        raise ValueError(f"cannot save {path}: {error}") from None
    if not box_head_trained:
        metadata["box_head"] = UNTRAINED
    with atomic_write(Path(path)) as temporary:
        try:
            safetensors.torch.save_model(
                model, str(temporary), metadata=metadata, force_contiguous=True
            )
        except SafetensorError as error:
            # The system's refusal (a full disk) as the OSError it is, naming ``path``.
            code = re.search(r"\(os error (\d+)\)", str(error))
            if code is None:
                raise
            errno = int(code.group(1))
            raise OSError(errno, os.strerror(errno), str(path)) from error
        file_checksum.write_checksum(temporary)


def read_model_config(path: str | Path) -> FasterRCNNConfig:
    """The config stored in the model file ``path``, without reading the weights.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is a folder, or not a safetensors file written by
            :func:`save_model`, or its config is invalid (out of range, of the wrong type).
    """
    path = Path(path)
    return _config_of(_model_metadata(path), path)


def box_head_trained(path: str | Path) -> bool:
    """Whether the box head of the model file ``path`` was trained: not where the RPN was
    trained alone (:func:`save_model`'s ``box_head_trained``), whose detections mean
    nothing.

    Raises:
        FileNotFoundError / ValueError: as :func:`read_model_config`.
    """
    return _model_metadata(Path(path)).get("box_head") != UNTRAINED


def _config_of(metadata: dict[str, str], path: Path) -> FasterRCNNConfig:
    """The config in the metadata of the model file ``path``, validated; one that does
    not validate is first checked against the file's checksum, so that a damaged byte
    in it (a field name changed) is said as damage, not as settings to mend."""
    try:
        return FasterRCNNConfig.from_json(metadata["config"])
    except ValueError as error:
        file_checksum.check_checksum(path)
        raise ValueError(f"{path}: its config is invalid: {error}") from error


def _model_metadata(path: Path) -> dict[str, str]:
    """The metadata of the model file ``path`` (its ``format`` checked).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is a folder, or not a safetensors file written by
            :func:`save_model`.
    """
    _check_model_file(path)
    if path.suffix.lower() == ".onnx":
        raise ValueError(f"{path} is an exported ONNX model: `predict --onnx` runs it")
    try:
        with safe_open(str(path), framework="pt") as file:
            metadata = file.metadata() or {}
    except SafetensorError as error:
        if _is_torch_save_file(path):
            raise ValueError(_not_a_model_file(path)) from error
        why = safetensors_failure(path)
        raise ValueError(f"{path} is not a readable model file ({why})") from error
    if metadata.get("format") != MODEL_FORMAT or "config" not in metadata:
        raise ValueError(
            f"{path} is not a faster-rcnn model file: its metadata has no "
            f"'format': {MODEL_FORMAT!r} and 'config' (found keys {sorted(metadata)})"
        )
    return metadata


def _not_a_model_file(path: Path) -> str:
    """Why the PyTorch checkpoint ``path`` is refused, and what to pass instead: for a
    training checkpoint's state, the model file of :func:`model_file_of_state`; else
    ``convert``, which makes one of a torchvision Faster R-CNN's; or, for one cut off or
    damaged, that it cannot be read."""
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except TORCH_LOAD_ERRORS as error:
        why = torch_load_failure(path, error)
        if why == PLAIN_PICKLE:
            return f"{path} is a pickle, not a model file (nor a torch.save checkpoint)"
        if why != HOLDS_CODE:  # a pickled model, say, which convert refuses in its words
            return f"{path} cannot be read: a PyTorch checkpoint, {why}"
        content = None
    model_file = _model_file_of(_state_in(content), path)
    if model_file is None:  # not a training state: a torchvision checkpoint, say
        return (
            f"{path} is a PyTorch checkpoint, not a model file: `faster-rcnn convert "
            f"{shlex.quote(str(path))} --preset P` makes one of a torchvision Faster R-CNN's"
        )
    return (
        f"{path} is the state (optimizer, step) of a training checkpoint, not a model file: "
        f"pass {model_file}"
    )


def model_file_of_state(path: Path) -> str | None:
    """Where the model of the training checkpoint whose state file is ``path``
    (``<run>/<stage>/state.pt``) is, as words to follow "pass" or "use": the run's model
    file, or while the run has written none the checkpoint's own beside it (and how the
    run writes its own; the own alone where the checkpoint is out of its run:
    :func:`run_of_checkpoint`); ``None`` where ``path`` is no training state."""
    try:
        return _model_file_of(_read_state(path), path)
    except ValueError:
        return None


def _model_file_of(state: dict[str, Any] | None, path: Path) -> str | None:
    """:func:`model_file_of_state` of the training state ``state`` read from ``path``
    (``None``: none)."""
    if state is None:
        return None
    checkpoint = path.resolve().parent
    run, own = run_of_checkpoint(checkpoint, state.get("stage")), checkpoint / MODEL_FILE
    if run is None:
        return f"the checkpoint's own, {own}"
    if (run / MODEL_FILE).is_file():
        return f"the run's model file, {run / MODEL_FILE}"
    return (
        f"the checkpoint's own, {own} (`train --resume --out {shlex.quote(str(run))}` "
        f"finishes the run and writes {run / MODEL_FILE})"
    )


def run_of_checkpoint(checkpoint: Path, stage: object) -> Path | None:
    """The run folder (``--out``) whose ``stage`` checkpoint is the folder ``checkpoint``,
    as its state records the stage: the folder's parent, where the folder has the
    stage's name, as a run names it (``<run>/joint/``, or ``joint.previous/`` after a cut
    off save); ``None`` where it has another (a copy of it, renamed)."""
    checkpoint = checkpoint.resolve()
    if checkpoint.name.removesuffix(PREVIOUS) != stage:
        return None
    return checkpoint.parent


def run_and_stage_of(checkpoint: Path) -> tuple[Path, str] | None:
    """The run folder (``--out``) and the stage of the training checkpoint in the folder
    ``checkpoint``; ``None`` where it holds no readable training state, or is out of its
    run (:func:`run_of_checkpoint`)."""
    try:
        stage = _read_state(checkpoint / STATE_FILE).get("stage")
    except (OSError, ValueError):
        return None
    run = run_of_checkpoint(checkpoint, stage)
    return None if run is None else (run, stage)


def _run_model_file(checkpoint: Path) -> Path | None:
    """The model file of the run whose checkpoint is the folder ``checkpoint``, where
    the run has written one; ``None`` where it has not, or ``checkpoint`` holds no
    readable training state."""
    found = run_and_stage_of(checkpoint)
    model = None if found is None else found[0] / MODEL_FILE
    return model if model is not None and model.is_file() else None


def _is_torch_save_file(path: Path) -> bool:
    """Whether ``path`` starts as ``torch.save`` writes: a zip archive, or (the legacy
    format) a pickle; or holds a zip archive after other bytes, or is one whole pickle of
    any protocol (those of protocols 0 and 1 start with no PROTO opcode)."""
    with path.open("rb") as file:
        start = file.read(4)
    if start == b"PK\x03\x04" or start[:1] == b"\x80":
        return True
    return bytes_before_zip(path) > 0 or is_one_pickle(path)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> FasterRCNN:
    """Rebuild the model saved by :func:`save_model` at ``path``, in eval mode; warn when
    its box head was never trained (its detections mean nothing, its proposals do).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is a folder or not a model file, or its weights do not fit
            its config or are not all finite.
    """
    path = Path(path)
    metadata = _model_metadata(path)
    model = FasterRCNN.from_config(_config_of(metadata, path))
    load_weights(model, path)
    check_finite(model.state_dict(), path)
    if metadata.get("box_head") == UNTRAINED:
        warnings.warn(
            f"{path}: the RPN was trained alone (--scheme rpn), its box head never was: "
            "its detections mean nothing; its proposals are what it learned (evaluate's "
            "proposal recall, predict's _proposals pictures)",
            stacklevel=2,
        )
    return model.to(device).eval()


def _check_model_file(path: Path) -> None:
    """Refuse a ``path`` that is no file: a folder (naming the model file in it, as in a
    run's folder) is a ``ValueError``, a missing path a ``FileNotFoundError``."""
    if path.is_dir():
        inside = path / MODEL_FILE
        run_model = _run_model_file(path) if inside.is_file() else None
        if run_model is not None:
            raise ValueError(
                f"{path} is a training checkpoint: pass the run's model file, {run_model}"
            )
        if inside.is_file():
            raise ValueError(f"{path} is a folder: pass the model file in it, {inside}")
        last = _last_checkpoint_in(path)
        if last is not None:
            raise UnfinishedRunError(path, last)
        raise ValueError(f"{path} is a folder with no {MODEL_FILE} in it: pass a model file")
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")


def _last_checkpoint_in(run: Path) -> Path | None:
    """The checkpoint written last among the folder ``run``'s sub-folders (the stages of
    an unfinished run), if any."""
    found = saved_checkpoints(run)
    return max(found, key=lambda c: (c / STATE_FILE).stat().st_mtime, default=None)


def saved_checkpoints(out: Path) -> list[Path]:
    """The training checkpoints under ``out``, one folder a stage: the stage's own, or its
    ``.previous`` where a save cut off left none; one still assembled (``.partial``) is
    none, though a kill before its renames left it whole."""
    folders = (folder for folder in sorted(out.iterdir()) if folder.is_dir())
    stages = dict.fromkeys(
        folder.name.removesuffix(PREVIOUS) for folder in folders if folder.suffix != PARTIAL
    )
    found = (TrainingCheckpoint.find(out / stage) for stage in stages)
    return [checkpoint for checkpoint in found if checkpoint is not None]


def remove_cut_off_saves(out: Path, stages: Iterable[str], files: Iterable[str]) -> None:
    """Tidy the run folder ``out`` of what saves that a kill cut off left: a swap of
    checkpoints cut off between its renames is finished (:func:`_finish_swap`); the
    other ``.partial`` folders of ``stages`` (a checkpoint not swapped in) go, and a
    ``.previous`` one beside the stage's checkpoint (the old one, left at the last rename),
    and the temporary files of :func:`atomic_write` that were to become ``files`` (the
    model file, the metrics file). The files of a save under way go too: only a run
    holding ``out``'s lock may call this. An ``out`` not made yet (a fresh run where no
    lock makes it first: Windows) holds nothing to tidy."""
    if not out.is_dir():
        return
    for stage in stages:
        directory = out / stage
        partial, previous = _siblings(directory)
        _finish_swap(partial, directory)
        shutil.rmtree(partial, ignore_errors=True)
        if TrainingCheckpoint.find(directory) == directory:
            shutil.rmtree(previous, ignore_errors=True)
    names = set(files)
    for path in out.iterdir():
        written = _TEMPORARY.fullmatch(path.name)
        if written is not None and written["name"] in names and path.is_file():
            path.unlink()


def _finish_swap(partial: Path, directory: Path) -> None:
    """Rename ``partial`` to ``directory`` where :func:`_swap_in` was cut off between its
    renames: the old checkpoint moved to ``.previous`` and ``directory`` not there, which
    the first rename does only once the new one is written whole in ``partial``."""
    previous = _siblings(directory)[1]
    if not directory.exists() and previous.is_dir() and TrainingCheckpoint.find(partial):
        os.replace(partial, directory)
        _fsync_directory(directory.parent)


class UnfinishedRunError(ValueError):
    """A run folder given as a model file whose run has written no model file yet:
    ``last_checkpoint`` is the folder of its last checkpoint."""

    def __init__(self, run: Path, last_checkpoint: Path) -> None:
        super().__init__(
            f"{run} holds no {MODEL_FILE}: the training run there did not finish; add "
            "--resume to its train command to finish it, or pass the model file of its "
            f"last checkpoint, {last_checkpoint / MODEL_FILE}"
        )
        self.run, self.last_checkpoint = run, last_checkpoint


class WeightsMismatchError(ValueError):
    """A model file whose tensors' names or shapes differ from the model's."""


def load_weights(model: FasterRCNN, path: str | Path) -> None:
    """Load the weights of the model file ``path`` into ``model`` in place, strictly.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        WeightsMismatchError: its tensors' names or shapes differ from ``model``'s.
        ValueError: ``path`` is a folder, or the file is unreadable, or damaged (its
            bytes fail the checksum written with them: :mod:`~faster_rcnn.file_checksum`).
    """
    path = Path(path)
    _check_model_file(path)
    try:
        safetensors.torch.load_model(model, path, strict=True)
    except SafetensorError as error:
        why = safetensors_failure(path)
        raise ValueError(f"{path} is not a readable model file ({why})") from error
    except RuntimeError as error:
        # torch lists every mismatched tensor on a line of its own: the first one, counted.
        problems = [line.strip() for line in str(error).splitlines()[1:] if line.strip()]
        first = problems[0] if problems else str(error)
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        message = f"the weights in {path} do not fit the model: {first}{more}"
        raise WeightsMismatchError(message) from error
    # After the load, which words a file cut off or not safetensors at all.
    file_checksum.check_checksum(path)


@dataclass
class TrainingCheckpoint:
    """The state of a training stage after ``step`` steps, besides the model weights.

    Attributes:
        stage: the name of the training stage.
        step: the number of steps done; a resumed run continues with this one.
        history: per step done, the losses (as ``Trainer.fit`` returns them).
        train_config: the ``TrainConfig`` as a dict (``dataclasses.asdict``).
        optimizer: the optimizer's state dict (momentum buffers included).
        generator_states: the training generator's state on each rank (one entry per
            process of a data-parallel run), ``uint8`` tensors.
        torch_rng_state: the global CPU generator's state.
        cuda_rng_states: the global generators' states of all CUDA devices (may be empty).
        python_rng_state: ``random.getstate()``.
        grad_scaler: the mixed-precision gradient scaler's state dict, when one is used.
        lr_scale: the short-run scale of the learning rate, once the run settled it
            (:func:`~faster_rcnn.train.schedule.short_run_scale`); absent from the states
            of older versions.
        seconds_spent: the seconds the stage's time budget had counted; absent from
            older versions' states.
        planned_steps: the run length its time budget had projected (the schedule's
            length), ``None`` before a projection; absent from older versions' states.
        step_seconds: the last steps' times (at most
            :data:`~faster_rcnn.train.budget.RECENT_STEPS`), which predict whether a
            resumed run's first step fits its budget; absent from older versions' states.
        data: what the stage trained on (:func:`data_signature`); absent from older
            versions' states.
        weights: the initial weights the stage's model was built from
            (:func:`~faster_rcnn.train.state.weights_record`); absent from older versions'
            states, and ``None`` where the trainer was not told.
        scheme: the training scheme whose stage this is (``train --scheme``: ``"joint"``,
            ``"rpn"``, ``"alternating"``...), which tells the RPN trained alone from the
            alternating scheme's first step, both a stage ``"rpn"``; absent from older
            versions' states, and ``None`` where the trainer was not told.
    """

    stage: str
    step: int
    history: list[dict[str, float]]
    train_config: dict[str, Any]
    optimizer: dict[str, Any]
    generator_states: list[Tensor]
    torch_rng_state: Tensor
    cuda_rng_states: list[Tensor]
    python_rng_state: tuple[Any, ...]
    grad_scaler: dict[str, Any] | None = None
    lr_scale: float | None = None
    seconds_spent: float | None = None
    planned_steps: int | None = None
    step_seconds: list[float] | None = None
    data: dict[str, Any] | None = None
    weights: dict[str, Any] | None = None
    scheme: str | None = None

    def restore_global_rng(self) -> None:
        """Put the global torch, CUDA and ``random`` generators back as they were."""
        torch.set_rng_state(self.torch_rng_state)
        if self.cuda_rng_states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(self.cuda_rng_states)
        random.setstate(self.python_rng_state)

    def save(self, directory: str | Path, model: FasterRCNN) -> None:
        """Write ``model`` and this state to ``directory``, replacing what is there whole.

        Raises:
            OSError: the system refused a write (a full disk, a read-only folder), naming
                ``directory``, not the temporary file that was removed with its
                ``.partial`` folder; the checkpoint there before is left as it was.
        """
        directory = Path(directory)
        partial = _siblings(directory)[0]
        try:
            self._write(partial, model)
            _swap_in(partial, directory)
        except OSError as error:
            shutil.rmtree(partial, ignore_errors=True)
            raise OSError(error.errno, error.strerror or str(error), str(directory)) from error
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise

    def _write(self, partial: Path, model: FasterRCNN) -> None:
        """Write ``model`` and this state into the new folder ``partial``."""
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        # Shallow: ``dataclasses.asdict`` would deep-copy every optimizer tensor.
        state: dict[str, Any] = {"format": STATE_FORMAT}
        state.update((field.name, getattr(self, field.name)) for field in dataclasses.fields(self))
        save_model(model, partial / MODEL_FILE)
        _torch_save(state, partial / STATE_FILE)

    @staticmethod
    def find(directory: str | Path) -> Path | None:
        """The complete checkpoint ``directory`` names, if any.

        That is ``directory`` itself, or its ``.previous`` sibling when a save was cut off
        between its final renames; ``None`` when neither holds both files.
        """
        directory = Path(directory)
        for candidate in (directory, _siblings(directory)[1]):
            if (candidate / MODEL_FILE).is_file() and (candidate / STATE_FILE).is_file():
                return candidate
        return None

    @classmethod
    def recorded_in(cls, directory: str | Path, name: str) -> Any:
        """The field ``name`` of the state of the checkpoint in ``directory``, its weights
        unread; ``None`` where there is no checkpoint, or its state lacks the field (an
        older version's).

        Raises:
            ValueError: the state file is unreadable.
        """
        found = cls.find(directory)
        return None if found is None else _read_state(found / STATE_FILE).get(name)

    @classmethod
    def seconds_spent_in(cls, directory: str | Path) -> float:
        """The seconds the time budget of the checkpoint in ``directory`` had counted (0:
        none, or not said)."""
        return float(cls.recorded_in(directory, "seconds_spent") or 0.0)

    @classmethod
    def train_config_in(cls, directory: str | Path) -> dict[str, Any]:
        """The training settings (``TrainConfig`` as a dict) of the checkpoint in
        ``directory`` (empty: none)."""
        return dict(cls.recorded_in(directory, "train_config") or {})

    @classmethod
    def steps_in(cls, directory: str | Path) -> int:
        """The steps the stage of the checkpoint in ``directory`` had run (0: none)."""
        return int(cls.recorded_in(directory, "step") or 0)

    @classmethod
    def weights_in(cls, directory: str | Path) -> dict[str, Any] | None:
        """The initial weights the checkpoint in ``directory`` records
        (:func:`~faster_rcnn.train.state.weights_record`; ``None``: none, or not said)."""
        return cls.recorded_in(directory, "weights")

    @classmethod
    def scheme_in(cls, directory: str | Path) -> str | None:
        """The training scheme the checkpoint in ``directory`` records (``None``: none,
        or not said: an older version's)."""
        return cls.recorded_in(directory, "scheme")

    @classmethod
    def load(cls, directory: str | Path, model: FasterRCNN) -> TrainingCheckpoint:
        """Load the checkpoint in ``directory``: weights into ``model``, the rest returned.

        Raises:
            FileNotFoundError: no complete checkpoint in ``directory`` (see :meth:`find`).
            ValueError: a file is corrupt, or the weights do not fit ``model``.
        """
        found = cls.find(directory)
        if found is None:
            raise FileNotFoundError(
                f"no training checkpoint in {directory} (expected {MODEL_FILE} and {STATE_FILE})"
            )
        state_path = found / STATE_FILE
        state = _read_state(state_path)
        damage = zip_damage(state_path)  # what torch.load read unchecked: its tensors
        if damage is not None:
            raise ValueError(f"{state_path} is not a readable training state ({damage})")
        fields = {field.name for field in dataclasses.fields(cls)}
        if not fields - _ADDED_FIELDS <= set(state) <= fields:
            raise ValueError(
                f"{state_path} holds the fields {sorted(state)}; expected {sorted(fields)}"
            )
        _check_same_classes(found, model)
        load_weights(model, found / MODEL_FILE)
        return cls(**state)


def _read_state(path: Path) -> dict[str, Any]:
    """The fields of the training state file ``path``, its format mark removed.

    Raises:
        ValueError: the file is unreadable, or not a faster-rcnn training state.
    """
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except TORCH_LOAD_ERRORS as error:
        why = torch_load_failure(path, error)
        raise ValueError(f"{path} is not a readable training state ({why})") from error
    # The fields, checked on every read: resuming takes the run's scheme, steps and time
    # spent from them (recorded_in) before the whole state is loaded and checked.
    damage = zip_damage(path, only="data.pkl")
    if damage is not None:
        raise ValueError(f"{path} is not a readable training state ({damage})")
    state = _state_in(content)
    if state is None:
        raise ValueError(f"{path} is not a faster-rcnn training state")
    return state


def _state_in(content: object) -> dict[str, Any] | None:
    """The fields of the training state that ``content``, read from a state file, is, its
    format mark removed; ``None`` where it is none."""
    if not isinstance(content, dict) or content.get("format") != STATE_FORMAT:
        return None
    return {name: value for name, value in content.items() if name != "format"}


def _check_same_classes(checkpoint: Path, model: FasterRCNN) -> None:
    """Refuse to resume a run on other classes: weights learnt for one list of names,
    in one order, would go on training as the names of another (same count, no error)."""
    saved = read_model_config(checkpoint / MODEL_FILE).class_names
    names = model.config.class_names
    if saved and names and saved != names:
        raise ValueError(
            f"{checkpoint} was trained on the classes {list(saved)}, not {list(names)}: "
            "resume with the data it was trained on, or train afresh in another --out"
        )


def _swap_in(partial: Path, directory: Path) -> None:
    """Rename the checkpoint written whole in ``partial`` to ``directory``, the old one
    there kept as ``<directory>.previous`` until the new one is in place."""
    previous = _siblings(directory)[1]
    if directory.exists():
        shutil.rmtree(previous, ignore_errors=True)
        os.replace(directory, previous)
    os.replace(partial, directory)
    _fsync_directory(directory.parent)
    shutil.rmtree(previous, ignore_errors=True)


def _siblings(directory: Path) -> tuple[Path, Path]:
    """Where a checkpoint of ``directory`` is assembled, and where the old one waits."""
    return (
        directory.with_name(directory.name + PARTIAL),
        directory.with_name(directory.name + PREVIOUS),
    )


@contextmanager
def atomic_write(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; once written, flush it and rename it over
    ``path``. On an error the temporary file is removed and ``path`` left untouched; an
    OSError of the temporary file (a read-only folder, a full disk) names ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        # The usual permissions (0o666 less the umask), kept: safetensors writes its files
        # readable by their owner alone, which a model file shared with others must not be.
        temporary.touch()
        mode = stat.S_IMODE(temporary.stat().st_mode)
        yield temporary
        os.chmod(temporary, mode)
        with open(temporary, "rb") as file:
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        # A write's error names no file; the temporary one named is gone.
        if error.filename not in (None, str(temporary)):
            raise
        raise OSError(error.errno, error.strerror or str(error), str(path)) from error
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` ``obj`` to ``path`` atomically; a write the system refuses (a full
    disk) raises its OSError naming ``path``, which torch's own writer would report as
    "unexpected pos 704 vs 598"."""
    with atomic_write(path) as temporary:
        refused: OSError | None = None
        try:
            with open(temporary, "wb") as file:
                writer = _WriteErrors(file)
                torch.save(obj, writer)
        except RuntimeError:
            if writer.error is None:
                raise
            refused = writer.error
        except OSError as error:  # a write's, or the buffer's flushed on closing
            if error.errno is None:
                raise
            refused = error
        if refused is not None:
            raise OSError(refused.errno, refused.strerror, str(path)) from None


class _WriteErrors:
    """A binary file that keeps the OSError a write raised (in :attr:`error`)."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self.file.write(data)
        except OSError as error:
            self.error = error
            raise

    def flush(self) -> None:
        self.file.flush()


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX; other systems cannot open folders)."""
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
