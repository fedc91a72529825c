"""The depth a 16-bit grey image file declares its samples have, when below 16 bits.

Microscope and X-ray cameras store 12- or 14-bit samples in 16-bit grey PNG or TIFF, and
dividing them by 65535 leaves them 16 or 4 times too dark. Two declarations say so:

- PNG's ``sBIT`` chunk (significant bits). PIL does not read it, so it is read here from
  the chunks before the first ``PLTE`` or ``IDAT``, where the PNG spec puts it. The spec
  asks encoders to scale such samples up to 16 bits, which ``sBIT`` then only records;
  some camera software stores them as they are instead. :meth:`SampleDepth.holds`
  tells the two apart.
- TIFF's ``SMaxSampleValue`` (tag 341) or ``MaxSampleValue`` (tag 281) where it is
  ``2**bits - 1``, as camera software writes it. The TIFF spec makes the field a
  statistic of the pixels, and a value of another form is taken as one, which brightens
  nothing.

The pixels are never guessed from: a 16-bit file that declares nothing is white at 65535,
so that a dark image stays dark.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

# The modes PIL gives 16-bit grey images.
_SIXTEEN_BIT_GREY_MODES = frozenset({"I;16", "I;16B", "I;16L"})

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Chunks that come after sBIT, where the PNG spec allows it: the search stops at them.
_PNG_CHUNKS_AFTER_SBIT = frozenset({b"PLTE", b"IDAT", b"IEND"})
# sBIT holds one byte a channel (grey first), four at most.
_SBIT_MOST_BYTES = 4

_TIFF_MAX_SAMPLE_VALUE = 281
_TIFF_SMAX_SAMPLE_VALUE = 341


@dataclass(frozen=True)
class SampleDepth:
    """A 16-bit grey file's declaration that its samples have ``bits`` (1..15) bits.

    Attributes:
        bits: the significant bits; white is ``2**bits - 1``.
        may_be_scaled_up: whether the samples may be stored scaled up to 16 bits
            instead, as the PNG spec asks of encoders (PNG's ``sBIT``).
    """

    bits: int
    may_be_scaled_up: bool

    @property
    def white(self) -> int:
        """``2**bits - 1``."""
        return 2**self.bits - 1

    def holds(self, grey: np.ndarray) -> bool:
        """Whether ``grey`` (``float32[H, W]``, the samples as stored) are samples of
        ``bits`` bits as they are: none is above white, and, where they may be scaled up,
        some has its low ``16 - bits`` bits above 1, which scaling up (by shifting, bit
        replication or the linear formula) leaves in no sample that small. With 15 bits
        the two look alike, and are taken as scaled up.
        """
        if grey.max(initial=0.0) > self.white:
            return False
        low_bits = 2 ** (16 - self.bits) - 1  # the mask of them
        return not self.may_be_scaled_up or bool(np.any((grey.astype(np.uint16) & low_bits) > 1))


def declared_depth(image: Image.Image, path: Path) -> SampleDepth | None:
    """The depth below 16 bits that the file ``path``, open as ``image``, declares its
    16-bit grey samples have; ``None`` for any other image, and for one declaring none.
    """
    if image.mode not in _SIXTEEN_BIT_GREY_MODES:
        return None
    if image.format == "PNG":
        bits = png_significant_bits(path)
        return None if bits is None else SampleDepth(bits, may_be_scaled_up=True)
    if image.format == "TIFF":
        bits = _tiff_max_sample_bits(image)
        return None if bits is None else SampleDepth(bits, may_be_scaled_up=False)
    return None


def png_significant_bits(path: Path) -> int | None:
    """The grey (first) channel's significant bits, 1..15, in a PNG's ``sBIT`` chunk;
    ``None`` where it has none, declares 16, or its header cannot be read, is truncated or
    corrupt (a bad checksum). Only the header is read, never the image data."""
    try:
        with path.open("rb") as file:
            return _sbit_grey_bits(file) if file.read(8) == _PNG_SIGNATURE else None
    except OSError:
        return None


def _sbit_grey_bits(file: BinaryIO) -> int | None:
    """The grey bits in the ``sBIT`` chunk of a PNG read past its signature, from chunk
    headers (each skipping the previous chunk's data) up to the first that follows sBIT."""
    while len(head := file.read(8)) == 8:
        length, kind = struct.unpack(">I4s", head)
        if kind in _PNG_CHUNKS_AFTER_SBIT:
            return None
        if kind == b"sBIT":
            return _checked_sbit_grey(file, length)
        file.seek(length + 4, io.SEEK_CUR)  # the data and its checksum
    return None


def _checked_sbit_grey(file: BinaryIO, length: int) -> int | None:
    """The first byte of the ``sBIT`` chunk of ``length`` bytes ``file`` is at, where its
    checksum holds and it is 1..15; else ``None``."""
    if not 1 <= length <= _SBIT_MOST_BYTES:
        return None
    data, checksum = file.read(length), file.read(4)
    if checksum != struct.pack(">I", zlib.crc32(b"sBIT" + data)) or len(data) < length:
        return None
    return data[0] if 1 <= data[0] < 16 else None


def _tiff_max_sample_bits(image: Image.Image) -> int | None:
    """``bits`` where an open TIFF's ``SMaxSampleValue`` (or, without it,
    ``MaxSampleValue``) of the first sample is ``2**bits - 1`` for ``bits`` in 1..15;
    else ``None``."""
    tags = image.tag_v2  # type: ignore[attr-defined]
    declared = tags.get(_TIFF_SMAX_SAMPLE_VALUE, tags.get(_TIFF_MAX_SAMPLE_VALUE))
    first = declared[0] if isinstance(declared, tuple) and declared else declared
    if not isinstance(first, int | float) or not 0 < first < 65535 or first != int(first):
        return None
    white = int(first)
    return white.bit_length() if (white + 1) & white == 0 else None
