"""Output whose reader has gone: the command goes on without it.

A pipe whose reader has exited (``| head``) fails every write with ``BrokenPipeError``, and
a terminal that has hung up (its window closed, its ssh session dropped) with ``EIO``. A
training run's results are its files under ``--out``, its output only a report of them:
losing the report must not end the run, hours of steps with it, at its next line. Nor
must a message on stderr, the last one of a command that a hang-up ended included.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

# A write to a pipe without a reader, and one to a terminal that has hung up.
READER_GONE = (errno.EPIPE, errno.EIO)


class ReaderProof:
    """``stream``, which the first time a write or flush finds its reader gone points its
    file descriptor at the null device (so that the process's later writes go there, its
    C code's, its flush at exit and data-loader workers forked after included) and
    carries on; other errors raise."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except OSError as error:
            self._lost(error)
            return len(text)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError as error:
            self._lost(error)

    def _lost(self, error: OSError) -> None:
        if error.errno not in READER_GONE:
            raise error
        to_null_device(self.stream)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


@contextmanager
def reader_proof(name: str) -> Iterator[None]:
    """While inside, ``sys.<name>`` (``"stdout"`` or ``"stderr"``) is :class:`ReaderProof`;
    the stream comes back after, flushed (where its reader has gone: to the null device)."""
    stream = getattr(sys, name)
    proof = ReaderProof(stream)
    setattr(sys, name, proof)
    try:
        yield
    finally:
        proof.flush()
        setattr(sys, name, stream)


def to_null_device(stream: TextIO) -> None:
    """Point ``stream``'s file descriptor at the null device, so that writing or flushing
    it does not raise the broken pipe again (Python's advice for ``SIGPIPE``); a stream
    with no descriptor (replaced by an object of another kind) is left as it is."""
    try:
        fileno = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fileno)
    os.close(devnull)
