"""A run in ``--out`` that did not finish, as its files show: checkpoints written after
the model file, or a metrics file beside none; and so whose the records of the run's data
in ``--out`` are (:data:`~.splits.RECORD_FILES`). A fresh run writes them as it begins,
with its metrics file, so they are those of its checkpoints at once; they are the model
file's only where no run that did not finish began after it."""

from __future__ import annotations

from pathlib import Path

from ..train.checkpoint import MODEL_FILE, STATE_FILE, run_and_stage_of, saved_checkpoints
from ..train.metrics import METRICS_FILE


def stopped_run_metrics(out: Path) -> bool:
    """Whether the metrics file in ``out`` is that of a run that stopped before its first
    checkpoint: there is no checkpoint beside it, and no model file, or one written before
    it, a finished run's that the stopped run had begun to replace (its checkpoints and
    metrics went as that run began; its model file stays until a run writes its own)."""
    metrics, model = out / METRICS_FILE, out / MODEL_FILE
    if not metrics.is_file() or saved_checkpoints(out):
        return False
    return not model.is_file() or metrics.stat().st_mtime > model.stat().st_mtime


def unfinished_checkpoints(out: Path) -> list[Path]:
    """The training checkpoints under ``out`` (one folder a stage) written after its
    model file, or without one: a run that stopped before the end."""
    model = out / MODEL_FILE
    finished = model.stat().st_mtime if model.is_file() else -1.0
    return [c for c in saved_checkpoints(out) if (c / STATE_FILE).stat().st_mtime > finished]


def records_folder(model: Path) -> Path | None:
    """The folder holding the records of the run that wrote the model file ``model``: for
    a training checkpoint's (``<run>/joint/model.safetensors``), its run folder; else the
    folder ``model`` is in, unless a run began there after ``model`` was written and did not
    finish (stopped, or still going): ``None``, the records there are that run's."""
    found = run_and_stage_of(model.parent)
    if found is not None:
        return found[0]
    folder = model.parent
    if unfinished_checkpoints(folder) or stopped_run_metrics(folder):
        return None
    return folder
