"""One training run at a time in an output folder.

Two runs writing to one ``--out`` at once would each replace the other's checkpoints,
metrics and model file, and both would end "successfully". A run holds an advisory lock
on ``<out>/.training.lock`` (which names its process) while it trains, and a second run
is refused in one line. The lock goes with the process, however it ends. A data-parallel
run under ``torchrun``, whose processes share ``--out`` by design, takes none; nor does a
platform without POSIX file locks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".training.lock"


@contextmanager
def training_lock(out: Path) -> Iterator[None]:
    """Hold the lock of ``out`` (created if need be) while inside.

    Raises:
        ValueError: another process holds it, naming that process.
    """
    if fcntl is None or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    with open(out / LOCK_FILE, "a+", encoding="utf-8") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "unknown"
            raise ValueError(
                f"{out} is being written by another training run (process {holder}): wait "
                "for it to end, or choose another --out"
            ) from None
        file.seek(0)
        file.truncate()
        file.write(f"{os.getpid()}\n")
        file.flush()
        yield
