"""Images stored with an EXIF orientation tag, as phones and cameras save them."""

from __future__ import annotations

from pathlib import Path

from PIL import Image


def save_exif_jpeg(path: Path, size: tuple[int, int], orientation: int) -> None:
    """A blue ``(width, height)`` JPEG with a red left edge (4 px), which shows the turn,
    tagged with the EXIF ``orientation`` (6: shown turned 90 degrees clockwise)."""
    image = Image.new("RGB", size, (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 4, size[1]))
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(path, exif=exif, quality=95)


def save_exif_png(path: Path, size: tuple[int, int], orientation: int) -> None:
    """A blue ``(width, height)`` PNG with a red left edge, its EXIF ``orientation`` in an
    ``eXIf`` chunk before the image data (where PIL writes it)."""
    image = Image.new("RGB", size, (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 4, size[1]))
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(path, exif=exif)


def png_chunks(data: bytes) -> list[bytes]:
    """The chunks of a PNG file's bytes after its signature, each whole (length, type,
    data, CRC)."""
    chunks, start = [], 8
    while start < len(data):
        end = start + 12 + int.from_bytes(data[start : start + 4], "big")
        chunks.append(data[start:end])
        start = end
    return chunks


def move_after_image_data(path: Path, kind: bytes) -> None:
    """Move a PNG file's chunk of type ``kind`` (``b"eXIf"``) from before its image data
    to just before its ``IEND``, where some tools write it."""
    data = path.read_bytes()
    chunks = png_chunks(data)
    moved = next(chunk for chunk in chunks if chunk[4:8] == kind)
    chunks.remove(moved)
    chunks.insert(len(chunks) - 1, moved)
    path.write_bytes(data[:8] + b"".join(chunks))
