"""Per-step training metrics: JSON lines in a file, and TensorBoard scalars on request.

``metrics.jsonl`` holds one JSON object per training step, of every stage of a run::

    {"stage": "joint", "step": 0, "lr": 0.002, "losses": {"loss_classifier": 1.38, ...,
     "loss": 2.91}, "grad_norm": 4.7, "seconds": 0.41, "images_per_s": 9.8}

``grad_norm`` is the gradients' total norm before clipping (null for a skipped step).

A stage first drops its own records from its first step on: a resumed stage those written
after its checkpoint (they are about to be redone), a fresh one all of them, so that the
file ends up with exactly one record per step.
"""

from __future__ import annotations

import json
import os
import warnings
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import Any

from .checkpoint import atomic_write

METRICS_FILE = "metrics.jsonl"


class MetricsLogger:
    """Appends step records to a JSON-lines file and, optionally, to TensorBoard.

    Args:
        path: the JSON-lines file (created with its folder if missing), or ``None``.
        tensorboard_dir: a TensorBoard log folder, or ``None``.

    Raises:
        ImportError: ``tensorboard_dir`` is given but TensorBoard is not installed.
    """

    def __init__(self, path: Path | None, tensorboard_dir: Path | None = None) -> None:
        self._writer = _summary_writer(tensorboard_dir) if tensorboard_dir is not None else None
        self._path, self._file = path, None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def log(self, record: dict[str, Any]) -> None:
        """Write one step's record: ``stage``, ``step``, ``lr``, ``losses`` (a dict of
        floats), ``grad_norm`` (where known), ``seconds`` and ``images_per_s``.

        Raises:
            OSError: the system refused the write (a full disk), naming the file, which
                is closed.
        """
        self._append(json.dumps(record) + "\n")
        if self._writer is not None:
            stage, step = record["stage"], record["step"]
            for name, value in record["losses"].items():
                self._writer.add_scalar(f"{stage}/{name}", value, step)
            self._writer.add_scalar(f"{stage}/lr", record["lr"], step)
            if record.get("grad_norm") is not None:
                self._writer.add_scalar(f"{stage}/grad_norm", record["grad_norm"], step)
            self._writer.add_scalar(f"{stage}/images_per_s", record["images_per_s"], step)

    def _append(self, line: str) -> None:
        """Write ``line`` to the file (if any) and flush it; the system's refusal names
        the file (its own error does not), and closes it without the line."""
        if self._file is None:
            return
        if os.fstat(self._file.fileno()).st_nlink == 0:
            self._start_anew()
        try:
            self._file.write(line)
            self._file.flush()
        except OSError as error:
            file, self._file = self._file, None
            with suppress(OSError):  # closing would flush the line again, refused again
                file.close()
            raise OSError(error.errno, error.strerror or str(error), str(self._path)) from error

    def _start_anew(self) -> None:
        """The file was deleted mid-run (its run folder with it, say), which would take
        every record after it too: go on in a new one at its path, saying so."""
        assert self._file is not None and self._path is not None  # an open file's
        self._file.close()
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self._path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        warnings.warn(
            f"{self._path} was deleted during the run: its records so far are lost, the "
            "next ones go to a new one",
            stacklevel=4,
        )

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics file, in order.

    A last line cut off by a crash is left out; any other line that is not JSON raises
    ``ValueError`` naming the file and the line.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            if number == len(lines):
                break
            raise ValueError(f"{path}, line {number}: not a JSON record ({error})") from error
    return records


def drop_records(path: Path, stage: str, from_step: int) -> None:
    """Remove the records of ``stage`` with ``step >= from_step`` from the metrics file
    ``path`` (rewritten atomically; nothing happens when the file does not exist)."""
    if not path.is_file():
        return
    records = read_metrics(path)
    kept = [
        record
        for record in records
        if record.get("stage") != stage or record.get("step", -1) < from_step
    ]
    if len(kept) == len(records) and path.read_bytes().endswith(b"\n"):
        return
    with atomic_write(path) as temporary:
        temporary.write_text("".join(json.dumps(record) + "\n" for record in kept))


def _summary_writer(log_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:
        raise ImportError(
            f"logging to TensorBoard ({log_dir}) needs the tensorboard package: "
            "pip install tensorboard"
        ) from error
    return SummaryWriter(log_dir=str(log_dir))
