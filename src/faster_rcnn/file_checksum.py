"""A checksum that a model file carries in its own header, so that a damaged copy is told.

``torch.load`` and safetensors read a file whose tensors' bytes were changed (a bit
flipped on a disk, in memory or by a copy) without a word, and a model of them detects
differently. A model file (:func:`~faster_rcnn.train.checkpoint.save_model`) therefore
records in its metadata the CRC-32 of its whole bytes (as zip archives, and so
``torch.save``, record one of each file), the checksum's own eight digits counted as
``00000000``; reading the file computes it again. Files written without one (by older
versions, or by others) are read as they are.
"""

from __future__ import annotations

import re
import zlib
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


def write_checksum(path: Path) -> None:
    """Fill in the checksum of the safetensors file ``path``, written with
    ``{KEY: PLACEHOLDER}`` in its metadata, in place (the header keeps its length).

    Raises:
        ValueError: the file's header holds no placeholder entry (or more than one).
    """
    with path.open("r+b") as file:
        start, header = _header(file.read(8), file)
        found = list(_ENTRY.finditer(header))
        if len(found) != 1 or found[0].group(1) != PLACEHOLDER.encode():
            raise ValueError(f"{path}: its header holds no {KEY!r} placeholder to fill in")
        crc = _crc_of_rest(file, zlib.crc32(start + header))
        file.seek(8 + found[0].start(1))
        file.write(f"{crc:08x}".encode())


def check_checksum(path: Path) -> None:
    """Refuse the safetensors file ``path`` if it records a checksum that its bytes no
    longer give; a file that records none passes.

    Raises:
        ValueError: one line naming the file and both checksums.
    """
    with path.open("rb") as file:
        start, header = _header(file.read(8), file)
        found = _ENTRY.search(header)
        if found is None:
            return
        blank = header[: found.start(1)] + PLACEHOLDER.encode() + header[found.end(1) :]
        crc = f"{_crc_of_rest(file, zlib.crc32(start + blank)):08x}"
    recorded = found.group(1).decode()
    if crc != recorded:
        raise ValueError(
            f"{path} is damaged: its bytes give the CRC-32 {crc}, not the {recorded} written "
            "with them (copy it again, or use another checkpoint)"
        )


def _header(start: bytes, file: BinaryIO) -> tuple[bytes, bytes]:
    """The first 8 bytes of a safetensors file (the header's length) and the header, read
    from ``file`` (just past those bytes); an empty header where they are no length."""
    length = int.from_bytes(start, "little") if len(start) == 8 else 0
    return start, file.read(length) if length <= _MAX_HEADER else b""


def _crc_of_rest(file: BinaryIO, crc: int) -> int:
    """``crc`` continued over what ``file`` holds from where it stands to its end."""
    while chunk := file.read(_CHUNK):
        crc = zlib.crc32(chunk, crc)
    return crc
