"""``predict``'s ``detections.json``, written image by image as the detections come.

The records go to ``detections.json.partial`` beside it, one a line, and are not held in
memory: 5,000 images of 100 detections each had held 271 MB of records, and writing them
as one indented JSON text at the end had taken 11.5 s and peaked at 1.4 GB. Closed, the
file becomes ``detections.json`` at once (an earlier run's is replaced whole, never left
half written): at the end of the run, or at a stop signal, with the images detected so
far. A run killed outright (SIGKILL, the machine going down) leaves the partial file,
whose JSON is unfinished, and an earlier ``detections.json`` as it was: the next run into
that folder replaces the partial file, and says so in a warning. A run holds a lock on its
partial file while it writes (where the platform has POSIX file locks), which goes with
its process however it ends: a second run into the same folder meanwhile is refused in
one line, where it had emptied the first's file and written into it too.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from types import TracebackType
from typing import IO, Any

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]


class DetectionsFile:
    """COCO results written as they come to ``path`` + ``.partial``, which becomes
    ``path`` when the ``with`` block ends, or a stop signal ends it (``KeyboardInterrupt``
    and the other exceptions that are not ``Exception``); an error removes it. A partial
    file a killed run left is replaced with a warning; one that a run still writes is
    refused (see the module).

    Attributes:
        path: the file the records end in.
        count: the records written so far.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._partial = path.with_name(path.name + ".partial")
        left, self._file = _locked(self._partial)
        if left:
            warnings.warn(
                f"{self._partial}: the unfinished detections of an earlier run, killed "
                "before it ended, are replaced by this run's",
                stacklevel=1,
            )
        self._file.truncate(0)
        self._file.write("[")  # the closing bracket alone makes it JSON, wherever it stops

    def write(self, records: list[dict[str, Any]]) -> None:
        """Add ``records`` (one image's detections), each on a line of its own."""
        for record in records:
            self._file.write(("\n" if self.count == 0 else ",\n") + json.dumps(record))
            self.count += 1

    def __enter__(self) -> DetectionsFile:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is not None and isinstance(error, Exception):
            self._file.close()
            self._partial.unlink()
            return
        self._file.write("\n]\n")
        self._file.close()
        os.replace(self._partial, self.path)


def _locked(partial: Path) -> tuple[bool, IO[str]]:
    """Whether ``partial`` was there before this run, and the file opened to append and
    locked (:func:`_lock`). Opened again where it was renamed or removed before the lock
    was taken (the run that held it ended meanwhile), which would have been written
    into as that run's ``detections.json`` or lost.

    Raises:
        ValueError: another run holds it.
    """
    while True:
        left = partial.exists()
        # Opened to append, and emptied once locked: another run's file is left whole.
        file = partial.open("a", encoding="utf-8")
        _lock(file, partial)
        if _still_named(file, partial):
            return left, file
        file.close()


def _still_named(file: IO[str], partial: Path) -> bool:
    """Whether the open ``file`` is still the one at ``partial``."""
    try:
        return os.path.samestat(os.fstat(file.fileno()), partial.stat())
    except FileNotFoundError:
        return False


def _lock(file: IO[str], partial: Path) -> None:
    """Take the lock on the open ``partial`` file (closed where another run holds it);
    none where the platform has no POSIX file locks.

    Raises:
        ValueError: another run holds it.
    """
    if fcntl is None:
        return
    try:
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        file.close()
        raise ValueError(
            f"{partial} is being written by another predict run: wait for it to end, or "
            "choose another --out"
        ) from None
