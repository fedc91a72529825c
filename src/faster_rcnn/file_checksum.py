"""A checksum that a model file or an ONNX export carries, so that a damaged copy is told.

``torch.load``, safetensors and ONNX Runtime read a file whose tensors' bytes were changed
(a bit flipped on a disk, in memory or by a copy) without a word, and a model of them
detects differently. A model file (:func:`~faster_rcnn.train.checkpoint.save_model`) and
an ONNX export (:func:`~faster_rcnn.export.export_onnx`) therefore record in their
metadata the CRC-32 of their whole bytes (as zip archives, and so ``torch.save``, record
one of each file), the checksum's own eight digits counted as ``00000000``; reading the
file computes it again. Files written without one (by older versions, or by others) are
read as they are.

Each format says where its entry's digits lie (a :data:`FindDigits`); the rest is shared.
"""

from __future__ import annotations

import io
import re
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

# The metadata entry that holds the checksum, and its value while it is being computed.
KEY = "crc32"
PLACEHOLDER = "00000000"
# Where the entry lies in the header (JSON): a key within a string (the config's JSON)
# is escaped, \"crc32\", and a tensor's value is an object, so only the metadata's entry
# matches.
_ENTRY = re.compile(rb'"' + KEY.encode() + rb'"\s*:\s*"([0-9a-f]{8})"')
_CHUNK = 1 << 24
# The longest header safetensors reads.
_MAX_HEADER = 100_000_000

# Where in a file (offsets) the digits of each checksum entry it holds lie, read from its
# start.
FindDigits = Callable[[BinaryIO], list[int]]


def safetensors_digits(file: BinaryIO) -> list[int]:
    """Where the digits of the ``KEY`` entries of the safetensors ``file``'s header lie."""
    start, header = _header(file.read(8), file)
    return [len(start) + found.start(1) for found in _ENTRY.finditer(header)]


def digits_after(file: BinaryIO, prefix: bytes) -> list[int]:
    """Where the eight hex digits that follow ``prefix`` lie in ``file``, each time it
    holds them; the file is read in chunks, each with the end of the one before."""
    entry = re.compile(re.escape(prefix) + rb"([0-9a-f]{8})")
    found: list[int] = []
    kept, start = b"", 0  # start: where ``kept`` lies in the file
    while chunk := file.read(_CHUNK):
        window = kept + chunk
        found += [start + match.start(1) for match in entry.finditer(window)]
        # One byte short of an entry: too short to hold one found already, long enough
        # to hold the start of one that the next chunk ends.
        kept = window[-(len(prefix) + len(PLACEHOLDER) - 1) :]
        start += len(window) - len(kept)
    return found


def write_checksum(path: Path, find: FindDigits = safetensors_digits) -> None:
    """Fill in the checksum of the file ``path``, written with one placeholder entry
    (``{KEY: PLACEHOLDER}`` in a safetensors file's metadata; ``find`` tells where in
    another format), in place: the file keeps its length.

    Raises:
        ValueError: the file holds no placeholder entry (or more than one).
    """
    with path.open("r+b") as file:
        found = find(file)
        if len(found) != 1 or _digits(file, found[0]) != PLACEHOLDER:
            raise ValueError(f"{path}: it holds no checksum placeholder to fill in")
        crc = _crc_with_placeholder(file, found[0])
        file.seek(found[0])
        file.write(crc.encode())


def check_checksum(
    path: Path, find: FindDigits = safetensors_digits, remedy: str = "use another checkpoint"
) -> None:
    """Refuse the file ``path`` (a safetensors file; ``find`` tells where in another
    format) if it records a checksum that its bytes no longer give; a file that records
    none passes. ``remedy``: what the error says to do besides copying the file again.

    Raises:
        ValueError: one line naming the file and both checksums.
    """
    with path.open("rb") as file:
        found = find(file)
        if not found:
            return
        recorded, crc = _digits(file, found[0]), _crc_with_placeholder(file, found[0])
    if crc != recorded:
        raise ValueError(
            f"{path} is damaged: its bytes give the CRC-32 {crc}, not the {recorded} written "
            f"with them (copy it again, or {remedy})"
        )


def _header(start: bytes, file: BinaryIO) -> tuple[bytes, bytes]:
    """The first 8 bytes of a safetensors file (the header's length) and the header, read
    from ``file`` (just past those bytes); an empty header where they are no length."""
    length = int.from_bytes(start, "little") if len(start) == 8 else 0
    return start, file.read(length) if length <= _MAX_HEADER else b""


def _digits(file: BinaryIO, offset: int) -> str:
    """The checksum's eight digits at ``offset`` of ``file``."""
    file.seek(offset)
    return file.read(len(PLACEHOLDER)).decode("ascii")


def _crc_with_placeholder(file: BinaryIO, offset: int) -> str:
    """The CRC-32 of ``file``'s bytes, the eight at ``offset`` counted as the placeholder:
    eight hex digits."""
    end = file.seek(0, io.SEEK_END)
    file.seek(0)
    crc = zlib.crc32(PLACEHOLDER.encode(), _crc_of(file, offset, 0))
    file.seek(offset + len(PLACEHOLDER))
    return f"{_crc_of(file, end - file.tell(), crc):08x}"


def _crc_of(file: BinaryIO, size: int, crc: int) -> int:
    """``crc`` continued over the next ``size`` bytes of ``file``."""
    while size > 0 and (chunk := file.read(min(size, _CHUNK))):
        crc = zlib.crc32(chunk, crc)
        size -= len(chunk)
    return crc
