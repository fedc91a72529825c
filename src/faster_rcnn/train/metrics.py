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

    A last line cut off by a crash mid-write (no newline ends it) is left out; any other
    line that is not a JSON record (an object with a ``stage`` and a ``step``) raises
    ``ValueError`` naming the file and the line.
    """
    return _read_records(path)[0]


def drop_records(path: Path, stage: str, from_step: int) -> None:
    """Remove the records of ``stage`` with ``step >= from_step`` from the metrics file
    ``path`` (rewritten atomically; nothing happens when the file does not exist). A last
    line cut off by a crash goes too, with a warning naming it.

    Raises:
        ValueError: a line before the last is not a JSON record, naming the file and line.
    """
    if not path.is_file():
        return
    records, cut_off = _read_records(path)
    if cut_off is not None:
        warnings.warn(
            f"{path}, line {cut_off}: a record cut off mid-write (the run was killed) is dropped",
            stacklevel=2,
        )
    kept = [record for record in records if record["stage"] != stage or record["step"] < from_step]
    if len(kept) == len(records) and path.read_bytes().endswith(b"\n"):
        return
    with atomic_write(path) as temporary:
        temporary.write_text("".join(json.dumps(record) + "\n" for record in kept))


def _read_records(path: Path) -> tuple[list[dict[str, Any]], int | None]:
    """The records of the metrics file ``path``, and the number of its last line where a
    crash cut that off mid-write (``None``: none was)."""
    # After the last newline: nothing, or a line that a crash cut off before its newline.
    *lines, unended = path.read_bytes().split(b"\n")
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(_record(line))
        except ValueError as error:
            raise ValueError(f"{path}, line {number}: not a JSON record ({error})") from error
    if not unended:
        return records, None
    try:
        records.append(_record(unended))  # all written but its newline
    except ValueError:
        return records, len(lines) + 1
    return records, None


def _record(line: bytes) -> dict[str, Any]:
    """The step record the metrics file's ``line`` holds.

    Raises:
        ValueError: it is not JSON (a byte damaged: not even UTF-8), or not an object with
            a string ``stage`` and an integer ``step``.
    """
    record = json.loads(line)
    if not (
        isinstance(record, dict)
        and isinstance(record.get("stage"), str)
        and isinstance(record.get("step"), int)
    ):
        raise ValueError("not an object with a string 'stage' and an integer 'step'")
    return record


def _summary_writer(log_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:
        raise ImportError(
            f"logging to TensorBoard ({log_dir}) needs the tensorboard package: "
            "pip install tensorboard"
        ) from error
    return SummaryWriter(log_dir=str(log_dir))
