"""One training run (``train``'s or ``demo``'s) at a time in an output folder.

Two runs writing to one ``--out`` at once would each replace the other's checkpoints,
metrics and model file, and both would end "successfully". A run holds an advisory lock
on ``<out>/.training.lock`` (which names its process) while it trains, and a second run
is refused in one line. The lock goes with the process, however it ends: a child it
forks (a data-loader worker) lets go of its copy of the lock file, which would keep the
lock after a kill of the run until the child noticed and ended (a worker: up to 5 s),
refusing an immediate ``--resume``. A platform without POSIX file locks takes none.

The commands train in one process: started by ``torchrun`` as several, each process would
train alone and replace the others' files, so they are refused (:func:`check_one_process`);
data-parallel training is a script's that calls
:func:`faster_rcnn.train.init_distributed`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".training.lock"
# The lock files this process holds, open (one a run).
_held: list[IO[str]] = []


@contextmanager
def training_lock(out: Path) -> Iterator[None]:
    """Hold the lock of ``out`` (created if need be) while inside. A run refused or
    stopped inside before it wrote anything leaves no folder it created behind.

    Raises:
        ValueError: another process holds it, naming that process.
    """
    if not _locks():
        yield
        return
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with open(out / LOCK_FILE, "a+", encoding="utf-8") as file:
            _lock(file, out)
            file.seek(0)
            file.truncate()
            file.write(f"{os.getpid()}\n")
            file.flush()
            _held.append(file)
            try:
                yield
            finally:
                _held.remove(file)
    except BaseException:
        if created and [path.name for path in out.iterdir()] == [LOCK_FILE]:
            (out / LOCK_FILE).unlink()
            out.rmdir()
        raise


def check_one_process(command: str) -> None:
    """Refuse a training ``command`` ("train", "the demo") started as several processes
    (``torchrun --nproc_per_node N``, N > 1, which sets ``WORLD_SIZE``).

    Raises:
        ValueError: ``WORLD_SIZE`` is a number above 1, naming it (an empty or odd one is
            no torchrun's: no process group is made from it).
    """
    processes = os.environ.get("WORLD_SIZE", "1").strip()
    if processes.isdigit() and int(processes) > 1:
        raise ValueError(
            f"{command} trains in one process, and torchrun started {processes} "
            f"(WORLD_SIZE={processes}): each would train alone and write over the others' "
            "files in --out; data-parallel training is a script's that calls "
            "faster_rcnn.train.init_distributed() (README, Using it)"
        )


def check_unlocked(out: Path) -> None:
    """Refuse an ``out`` whose lock another process holds, without creating anything: a
    check of what ``out`` holds must not take a run's files for those of a finished or
    stopped one.

    Raises:
        ValueError: another process holds the lock, naming that process.
    """
    holder = lock_holder(out)
    if holder is not None:
        raise ValueError(_written_by(out, holder))


def lock_holder(out: Path) -> str | None:
    """The process (as the lock file names it) of the training run writing to ``out``
    now; ``None`` where none is."""
    if not _locks() or not (out / LOCK_FILE).is_file():
        return None
    with open(out / LOCK_FILE, encoding="utf-8") as file:
        return _holder(file)  # a lock taken here is released as the file closes


def _let_go_in_child() -> None:
    """In a forked child, close the lock files inherited: a lock (``flock``) belongs to
    the open file, which every copy of it keeps locked."""
    for file in _held:
        file.close()
    _held.clear()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_let_go_in_child)


def _locks() -> bool:
    """Whether runs lock their folder here (see the module)."""
    return fcntl is not None


def _lock(file: IO[str], out: Path) -> None:
    """Take the lock of ``out`` on its open lock ``file``.

    Raises:
        ValueError: another process holds it, naming that process.
    """
    holder = _holder(file)
    if holder is not None:
        raise ValueError(_written_by(out, holder))


def _holder(file: IO[str]) -> str | None:
    """Take the lock on the open lock ``file``; where another process holds it, the
    process the file names instead ("unknown" where it names none)."""
    try:
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        file.seek(0)
        return file.read().strip() or "unknown"
    return None


def _written_by(out: Path, holder: str) -> str:
    return (
        f"{out} is being written by another training run (process {holder}): wait "
        "for it to end, or choose another --out"
    )
